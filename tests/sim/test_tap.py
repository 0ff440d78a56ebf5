"""``ykt tap``: one tap of a fixture card, every printed figure the timing model's, and its timeline picture."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from protocols.iso14443 import FC_HZ
from protocols.mifare import KeyType
from sim.cli import run
from sim.fixture import load_image
from sim.tap import LIMIT_US
from sim.timing import FDT_MIN_FC, ContactlessTiming, ContactTiming
from terminal.trace import Exchange
from terminal.tracefile import TraceActivation, read_trace

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "sim" / "fixtures"
DEMO_CARD = FIXTURES / "demo-card.json"
AT = "2026-03-02 08:00:00"
ROW = re.compile(r"^ +(\d+)  (card|PSAM) +(.+?) +([\d.]+) +([\d.]+|-) +([\d.]+|-) +([\d.]+) +([\d.]+)$")


def ms(us: float) -> str:
    return f"{us / 1000:.3f}"


def tap(capsys, *args: str) -> tuple[int, str]:
    capsys.readouterr()
    code = run(["tap", "--at", AT, *args])
    return code, capsys.readouterr().out


def modeled(trace_path: Path, kbps: int, baud: int):
    """Each exchange of the tap, recomputed from the timing model: (peer, line µs, device µs); and the activation."""
    trace = read_trace(trace_path)
    card_activation = next(e for e in trace.events if isinstance(e, TraceActivation) and e.link == "reader")
    tap_events = trace.events[trace.events.index(card_activation) + 1:]
    air, line = ContactlessTiming(kbps=kbps).model(card_activation.activation), ContactTiming(baud=baud).model()
    steps = []
    for exchange in tap_events:
        assert isinstance(exchange, Exchange) and exchange.response is not None
        model = (air if exchange.link == "reader" else line).exchange(exchange.command, exchange.response)
        steps.append(("card" if exchange.link == "reader" else "PSAM", model.line_us, model.device_us))
    return air.activation(card_activation.activation).line_us, steps


@pytest.mark.parametrize("kbps, baud", [(106, 9600), (424, 38400), (848, 115200)])
def test_every_printed_figure_is_the_timing_models(tmp_path, capsys, kbps, baud):
    trace = tmp_path / "t.jsonl"
    code, out = tap(capsys, "--card", str(DEMO_CARD), "--bitrate", str(kbps), "--baud", str(baud),
                    "--trace", str(trace))
    assert code == 0
    activation_us, steps = modeled(trace, kbps, baud)
    rows = [ROW.match(line) for line in out.splitlines()]
    rows = [row.groups() for row in rows if row]
    assert len(rows) == len(steps) == 8
    # INIT SAM FOR PURCHASE and its GET RESPONSE (4, 5) go ahead: the card stages 0x1E (6) meanwhile, on its own
    # line; DEBIT (7) needs MAC1, so it starts when both are done
    at, free, mac1_at = activation_us, {"card": activation_us, "PSAM": activation_us}, 0.0
    for number, ((_, peer, _label, line, card, psam, total, start), (exp_peer, exp_line, exp_device)) in enumerate(
            zip(rows, steps, strict=True), 1):
        if number == 7:
            at = max(at, mac1_at)
        begin = max(at, free[exp_peer])
        free[exp_peer] = end = begin + exp_line + exp_device
        if number in (4, 5):
            mac1_at = end
        else:
            at = end
        assert (peer, line, total, start) == (exp_peer, ms(exp_line), ms(exp_line + exp_device), ms(begin))
        assert (card, psam) == ((ms(exp_device), "-") if peer == "card" else ("-", ms(exp_device)))
    at = max(at, *free.values())
    side_by_side = activation_us + sum(line + device for _, line, device in steps) - at
    assert side_by_side > 0 and f"  side by side       -{ms(side_by_side):>10} ms" in out
    air = activation_us + sum(line for peer, line, _ in steps if peer == "card")
    totals = {"air (contactless)": air,
              "card computing": sum(device for peer, _, device in steps if peer == "card"),
              "PSAM contact line": sum(line for peer, line, _ in steps if peer == "PSAM"),
              "PSAM computing": sum(device for peer, _, device in steps if peer == "PSAM")}
    for name, value in totals.items():
        assert re.search(rf"^  {re.escape(name)} +{re.escape(ms(value))} ms$", out, re.M), name
    assert f"  total               {ms(at):>10} ms of the 400 ms DB31/T 239-2020 allows for one purchase: within it, " \
           f"{ms(LIMIT_US - at)} ms to spare" in out
    assert f"the card at {kbps} kbit/s in and {kbps} kbit/s out; PSAM T=0 at {baud} baud" in out


def test_the_figures_worked_by_hand_at_106_kbits(capsys):
    """SELECT of the demo card at 106 kbit/s: a 13-byte APDU in one 16-byte frame (3 + 9·16 etu from the reader), the
    53-byte FCI answer in one 56-byte frame (2 + 9·56 etu from the card), each followed by the 1172/fc frame delay;
    the card computes 2 ms. The activation: REQA (7 bits) and ATQA, one cascade level (ANTICOLLISION 2 bytes, UID 5,
    SELECT 9, SAK 3), RATS 4 and the 5-byte ATS with CRC, no start-up guard time (ATS TB 70: SFGI 0)."""
    code, out = tap(capsys, "--card", str(DEMO_CARD))
    etu, fdt = 128 / FC_HZ * 1e6, FDT_MIN_FC / FC_HZ * 1e6

    def reader(n: int) -> float:
        return (3 + 9 * n) * etu + fdt

    def card(n: int) -> float:
        return (2 + 9 * n) * etu + fdt

    select = reader(16) + card(56)
    assert ms(select) == "6.337"
    assert code == 0 and f"   1  card  {'SELECT A000000632010105':<34}{ms(select):>12}     2.000         -" in out
    activation = (3 + 7) * etu + fdt + card(2) + reader(2) + card(5) + reader(9) + card(3) + reader(4) + card(7)
    assert ms(activation) == "3.665"
    assert f"      card  {'activation (REQA to ATS)':<34}{ms(activation):>12}         -         -" in out


def test_json_and_the_limit(tmp_path, capsys):
    code, out = tap(capsys, "--card", str(DEMO_CARD), "--baud", "1200", "--json")
    doc = json.loads(out)
    totals = doc["totals"]
    assert code == 0 and doc["outcome"]["status"] == "accepted" and doc["outcome"]["balance_after"] == 9800
    assert totals["overlap_us"] > 0 and totals["total_us"] == pytest.approx(
        doc["activation_us"] + sum(e["total_us"] for e in doc["exchanges"]) - totals["overlap_us"])
    starts = {e["command"]: e["start_us"] for e in doc["exchanges"]}
    assert starts["UPDATE CAPP DATA CACHE 0x1E"] == starts["INIT SAM FOR PURCHASE"]  # the card goes on meanwhile
    assert totals["total_us"] > LIMIT_US and totals["within_limit"] is False and totals["limit_us"] == LIMIT_US
    assert [e["command"] for e in doc["exchanges"]] == [
        "SELECT A000000632010105", "READ BINARY 0x17", "INITIALIZE FOR CAPP PURCHASE", "INIT SAM FOR PURCHASE",
        "GET RESPONSE", "UPDATE CAPP DATA CACHE 0x1E", "DEBIT FOR PURCHASE", "CREDIT SAM FOR PURCHASE"]
    code, out = tap(capsys, "--card", str(DEMO_CARD), "--baud", "1200")
    over = totals["total_us"] - LIMIT_US
    assert f"allows for one purchase: OVER it by {ms(over)} ms" in out


def test_a_declined_card_is_tapped_too(capsys):
    code, out = tap(capsys, "--card", str(FIXTURES / "expired-shanghai.json"), "--json")
    doc = json.loads(out)
    assert code == 0 and doc["outcome"]["decline"] == "expired"
    assert [e["command"] for e in doc["exchanges"]] == ["SELECT A000000632010105"]


def test_the_fixture_changes_only_with_save(tmp_path, capsys):
    fixture = tmp_path / "card.json"
    fixture.write_bytes(DEMO_CARD.read_bytes())
    assert tap(capsys, "--card", str(fixture))[0] == 0
    assert fixture.read_bytes() == DEMO_CARD.read_bytes()
    code, out = tap(capsys, "--card", str(fixture), "--save")
    image = load_image(fixture)
    assert code == 0 and f"card saved to: {fixture}" in out
    assert (image.purse.balance, image.purse.offline_atc, len(image.transit_log)) == (9800, 1, 1)


def test_timeline_pictures(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    png, svg = tmp_path / "t.png", tmp_path / "t.svg"
    assert tap(capsys, "--card", str(DEMO_CARD), "--timeline", str(png))[0] == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    code, out = tap(capsys, "--card", str(DEMO_CARD), "--timeline", str(svg), "--json")
    text = svg.read_text(encoding="utf-8")
    assert code == 0 and text.lstrip().startswith("<?xml") and "<svg" in text
    for label in ("activation", "1 SELECT A000000632010105", "7 DEBIT FOR PURCHASE", "8 CREDIT SAM FOR PURCHASE",
                  "400 ms: DB31/T 239-2020 limit for one purchase", "air", "card", "PSAM computing"):
        assert label in text, label
    total = json.loads(out)["totals"]["total_us"]
    assert f"total {total / 1000:.1f} ms" in text


def test_timeline_needs_a_picture_file_and_matplotlib(tmp_path, capsys, monkeypatch):
    code = run(["tap", "--card", str(DEMO_CARD), "--timeline", str(tmp_path / "t.pdf")])
    assert code == 2 and "the picture is a .png or an .svg file" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    code = run(["tap", "--card", str(DEMO_CARD), "--timeline", str(tmp_path / "t.png")])
    assert code == 2
    assert capsys.readouterr().err == "ykt: drawing a timeline needs matplotlib: pip install 'yikatong[plot]'\n"
    assert not (tmp_path / "t.png").exists()


def test_an_m1_tap_shows_its_modeled_timeline(tmp_path, capsys):
    """An M1 fixture: every pseudo-APDU named with its block and priced by the MIFARE commands it became (READ: a
    command frame and the 16-byte answer; UPDATE and the value operations: EEPROM writes), the PSAM's part at the
    rate its ATR offers; the trace of the tap holds no key; --save keeps the debit."""
    from sim.card.m1_issuing import issue_m1_card
    from sim.fixture import load_fixture, save_fixture
    from sim.issuing import load_demo_keyset
    from sim.timing import DEFAULT_MIFARE

    fixture, trace = tmp_path / "m1.json", tmp_path / "tap.trace"
    card = issue_m1_card(load_demo_keyset(), issuer_serial=bytes.fromhex("00000042"), balance=5000)
    save_fixture(card, fixture)
    code, out = tap(capsys, "--card", str(fixture), "--json", "--trace", str(trace), "--save")
    assert code == 0
    report = json.loads(out)
    assert (report["outcome"]["status"], report["outcome"]["technology"], report["kbps_to_card"]) == (
        "accepted", "m1", 106)
    labels = [(e["peer"], e["command"]) for e in report["exchanges"]]
    reads = [("card", "LOAD KEY"), ("card", "AUTHENTICATE 24"), ("card", "READ BLOCK 24"), ("card", "READ BLOCK 25"),
             ("card", "LOAD KEY"), ("card", "AUTHENTICATE 8"), ("card", "READ BLOCK 9"), ("card", "READ BLOCK 10"),
             ("card", "LOAD KEY"), ("card", "AUTHENTICATE 20"), ("card", "READ BLOCK 22")]
    assert labels == [("PSAM", "M1 SECTOR KEYS"), ("PSAM", "GET RESPONSE"), ("card", "LOAD KEY"),
                      ("card", "AUTHENTICATE 4"), ("card", "READ BLOCK 4"), ("card", "READ BLOCK 5"),
                      ("PSAM", "DES INIT"), ("PSAM", "DES MAC"), ("PSAM", "GET RESPONSE"), *reads,
                      ("PSAM", "M1 PURCHASE MAC"), ("PSAM", "GET RESPONSE"),
                      ("card", "LOAD KEY"), ("card", "AUTHENTICATE 12"), ("card", "UPDATE BLOCK 12"),
                      ("card", "LOAD KEY"), ("card", "AUTHENTICATE 24"), ("card", "UPDATE BLOCK 26"),
                      ("card", "UPDATE BLOCK 24"), ("card", "UPDATE BLOCK 25"), ("card", "LOAD KEY"),
                      ("card", "AUTHENTICATE 8"),
                      ("card", "DECREMENT 9"), ("card", "COPY VALUE 9 TO 10"), ("card", "LOAD KEY"),
                      ("card", "AUTHENTICATE 24"), ("card", "UPDATE BLOCK 24"), ("card", "UPDATE BLOCK 25")]
    by_label = {e["command"]: e for e in report["exchanges"]}
    assert by_label["LOAD KEY"]["total_us"] == 0  # stays in the reader: nothing on the air
    assert by_label["UPDATE BLOCK 25"]["device_us"] == DEFAULT_MIFARE.eeprom_write_us
    assert by_label["DECREMENT 9"]["device_us"] == DEFAULT_MIFARE.eeprom_write_us  # the TRANSFER's write
    assert by_label["AUTHENTICATE 4"]["device_us"] == DEFAULT_MIFARE.auth_us
    # the PSAM's line at the 115200 baud its ATR offers (PPS at start-up); at 9600 it took most of 300 ms
    assert report["totals"]["within_limit"] is True and report["totals"]["total_us"] > 100_000
    assert sum(e["total_us"] for e in report["exchanges"]) + report["activation_us"] == \
        pytest.approx(report["totals"]["total_us"])
    assert "FF82000006000000000000" in trace.read_text()  # every LOAD KEY, its key zeroed
    for sector in range(16):
        key = load_demo_keyset().m1_sector_key(KeyType.A, card.image.uid, sector, 1).hex().upper()
        assert sector == 0 or key not in trace.read_text()
    assert load_fixture(fixture).balance == 4800  # type: ignore[union-attr]
    code, text = tap(capsys, "--card", str(fixture))
    assert code == 0 and "activation (REQA to SAK)" in text and "paid 2.00, balance 46.00" in text
