"""``ykt read`` on the simulated reader and ``ykt card import``: a capture becomes a twin fixture whose files are the
card's and whose tap gets the card's outcome; a plain log of a real card's answers makes a twin too; a capture that
contradicts itself, or of a card of another scheme, is an error naming the exchange.

The real answers are those of a Beijing T-Union card and a Shenzhen Tong card as Trip Reader's card emulator
(domosekai/cardemulator, HCEService.kt) plays them back to card readers.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from protocols.hexutil import parse_hex
from sim.card import SimCard
from sim.card_import import load_capture, make_twin, parse_log
from sim.cli import run
from sim.fixture import image_to_dict, load_fixture, load_image, save_fixture
from sim.issuing import issue_card, load_demo_keyset
from sim.psam import demo_psam
from sim.reader import SimReader, SimSamSlot
from terminal.clock import ManualClock
from terminal.fares import load_fares
from terminal.journal import MemoryJournal
from terminal.outcome import TapOutcome
from terminal.readout import CaptureError
from terminal.validator import Validator

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "sim" / "fixtures"
FARES = ROOT / "sim" / "fares" / "demo-flat.toml"
WHEN = dt.datetime(2026, 3, 2, 8, 0, 0)
KEYSET = load_demo_keyset()

# TRIP: a Beijing T-Union card, one exchange a line as a reader logged it (nfsee's short read of 0x17 among them).
BEIJING_LOG = """\
# Trip Reader's card emulator (domosekai/cardemulator): a Beijing T-Union card
00A4040008A00000063201010500 -> 6F318408A000000632010105A5259F0801029F0C1E01011000FFFFFFFF0201031051700101709079842019080620401231 0000 9000
00B0950000 -> 01011000FFFFFFFF02010310517001017090798420190806204012310000 9000
00B097000B -> 0000015610001000000101 9000
805C000204 -> 00000B22 9000
00B201C400 -> 001A000000000000A00900003101165220200301002723 9000
00B202C400 -> 6A83
00B201F400 -> 0400000000182115030100180021000000000001900000085C20201227140456290012002900FFFFFFFF000000000000 9000
00B202F400 -> 030000000018221A550100180022000000000000000000085C20201227140056290012002900FFFFFFFF000000000000 9000
00B203F400 -> 6A83
"""  # noqa: E501 (a reader's log as it was written, one exchange a line)


def tap(card: SimCard) -> TapOutcome:
    validator = Validator(SimReader(card, timing=None), SimSamSlot(demo_psam(), timing=None), load_fares(FARES),
                          MemoryJournal(), clock=ManualClock(WHEN))
    validator.start()
    outcome = validator.poll()
    assert outcome is not None
    return outcome


def same_outcome(a: TapOutcome, b: TapOutcome) -> tuple:
    return tuple(getattr(a, name) == getattr(b, name) for name in (
        "status", "decline", "card_serial", "card_type", "fare", "balance_before", "balance_after"))


def read_and_import(tmp_path: Path, fixture: Path, *, name: str = "twin.json") -> tuple[Path, Path]:
    capture, twin = tmp_path / f"{fixture.stem}.jsonl", tmp_path / name
    assert run(["read", "--reader", f"sim:{fixture}", "--out", str(capture), "--json"]) == 0
    assert run(["card", "import", str(capture), "--out", str(twin), "--json"]) == 0
    return capture, twin


@pytest.mark.parametrize("fixture", ["demo-card.json", "blocked-card.json", "expired-shanghai.json",
                                     "low-balance-student.json", "torn-debit.json"])
def test_read_import_twin_shows_the_same_files_and_taps_the_same(tmp_path, capsys, fixture):
    path = FIXTURES / fixture
    _, twin_path = read_and_import(tmp_path, path)
    capsys.readouterr()
    shown = {}
    for which in (path, twin_path):
        assert run(["card", "show", str(which), "--json", "--records", "30"]) == 0
        shown[which] = json.loads(capsys.readouterr().out)
    blocked = shown[path]["blocked"]  # a blocked card does not tell its balance: its twin holds 0
    for key in ("serial", "uid", "ats", "blocked", "public_info", "cardholder", "management", "transaction_log",
                "process_records", "transit_log", "offline_atc", "online_atc", "overdraft_limit",
                *(() if blocked else ("balance",))):
        assert shown[twin_path][key] == shown[path][key], key
    assert all(same_outcome(tap(load_fixture(path)), tap(load_fixture(twin_path))))
    original, twin = image_to_dict(load_image(path)), image_to_dict(load_image(twin_path))
    differ = {k for k in original if original[k] != twin[k]}
    assert differ <= {"description", "proofs", *(("purse",) if blocked else ())}  # the same keys, derived alike
    assert twin["description"].startswith(f"Twin of card {shown[path]['card_number']}, imported from trace ")


def test_read_prints_the_card_decoded(tmp_path, capsys):
    assert run(["read", "--reader", f"sim:{FIXTURES / 'torn-debit.json'}"]) == 0
    out = capsys.readouterr().out
    for line in ("reader: sim:" + str(FIXTURES / "torn-debit.json"), "scheme: T-Union purse 交通联合",
                 "balance: 98.00 CNY (9800 fen)", "  offline_atc: 55",
                 "      transaction_type_name: composite_purchase", "      record_type_name: entry/board",
                 "exchanges: 16", "capture: -"):
        assert line + "\n" in out, line
    assert run(["read", "--reader", f"sim:{FIXTURES / 'demo-card.json'}", "--json", "--no-initialize"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["counters"]["offline_atc"] is None and doc["files"]["17"]["card_type_name"] == "normal"
    assert doc["exchanges"] == 12 and doc["notes"] == []


def test_the_capture_is_a_trace_that_trace_show_reads(tmp_path, capsys):
    capture, _ = read_and_import(tmp_path, FIXTURES / "demo-card.json")
    capsys.readouterr()
    assert run(["trace", "show", str(capture), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["trace"]["tool"].startswith("ykt read (yikatong ")
    exchanges = [e for e in doc["events"] if e["event"] == "exchange"]
    assert [e["command"]["name"] for e in exchanges[:5]] == [
        "SELECT 325041592E5359532E4444463031", "SELECT A000000632010105", "READ BINARY 0x15", "READ BINARY 0x16",
        "READ BINARY 0x17"]
    assert exchanges[1]["response"]["decoded"]["scheme"] == "T-Union purse 交通联合"
    assert exchanges[4]["response"]["decoded"]["card_type_name"] == "normal"
    assert doc["events"][0]["event"] == "activation"


def test_a_real_cards_plain_log_makes_a_twin_that_pays(tmp_path, capsys):
    log = tmp_path / "beijing.log"
    log.write_text(BEIJING_LOG)
    twin_path = tmp_path / "twin.json"
    assert run(["card", "import", str(log), "--out", str(twin_path)]) == 0
    out, err = capsys.readouterr()
    assert out == (f"{twin_path}: twin of card 3105170010170907984 from {log} (9 exchanges), balance 28.50 CNY "
                   f"(2850 fen), records 18: 1, 1A: 0, 1E: 2\n")
    assert err.splitlines() == [
        "note: no ISO 14443-4 activation in the capture: UID, ATQA, SAK and ATS are an issued card's",
        "note: file 0x16: all of it not in the capture; filled as an anonymous holder's",
        ("note: file 0x17: bytes 11..59 not in the capture; filled as an issued card's (China, the issuer's city, "
         "interoperable, normal card)"),
        "note: the overdraft limit is not in the capture (no INITIALIZE FOR PURCHASE answer): 0",
        "note: the offline ATC is not in the capture (no INITIALIZE answer): one past 0x18 record 1's, 27",
        "note: the online ATC is not in the capture (no INITIALIZE answer, no record of its kind): 0",
        "note: file 0x1A: no record of it is read in the capture; the twin holds none",
        "note: the demo key set is test-only: the twin is for simulation only"]
    image = load_image(twin_path)
    assert image.public_info == parse_hex("01011000FFFFFFFF02010310517001017090798420190806204012310000")
    assert image.management[:11] == parse_hex("0000015610001000000101")
    assert (image.purse.balance, image.purse.offline_atc) == (2850, 27) and len(image.transit_log) == 2
    outcome = tap(load_fixture(twin_path))  # the Beijing card pays the demo flat fare at the demo validator
    assert (outcome.accepted, outcome.fare, outcome.balance_before, outcome.balance_after) == (True, 200, 2850, 2650)


def test_a_trace_of_a_tap_makes_the_card_as_it_came(tmp_path, capsys):
    card = tmp_path / "card.json"
    save_fixture(issue_card(KEYSET, serial="03103640000000000042", balance=5000), card)
    trace = tmp_path / "tap.jsonl"
    assert run(["validate", "--reader", f"sim:{card}", "--sam", "sim:psam", "--taps", "1", "--journal",
                str(tmp_path / "v.db"), "--trace", str(trace), "--json"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[0])["balance_after"] == 4800
    twin = make_twin(load_capture(trace), KEYSET)
    assert twin.capture.kind == "trace"
    assert (twin.image.purse.balance, twin.image.purse.offline_atc) == (5000, 0)  # before the tap
    assert twin.image.uid == load_image(card).uid and twin.image.transaction_log == []
    assert "file 0x1A: no record of it is read in the capture; the twin holds none" in twin.notes
    save_fixture(twin.image, tmp_path / "twin.json")
    assert same_outcome(tap(load_fixture(card)), tap(SimCard(twin.image)))
    capsys.readouterr()  # the tap's commands, replayed on the twin as it was imported: answered alike
    assert run(["replay", str(trace), "--card", str(tmp_path / "twin.json")]) == 0
    assert "5 answers as recorded, 0 different" in capsys.readouterr().out


@pytest.mark.parametrize("text, message", [
    ("00A4040008A000000632010105",
     "log: line 1: expected a command and its response, got '00A4040008A000000632010105'"),
    ("00A4 | 9000", "log: line 1: a command has at least 4 bytes and a response its status word"),
    ("# nothing\n\n", "log: no exchange in it"),
    ("00A4040008A000000632010105 | 6Z82", "log: line 1: response: 'Z' is not a hex digit"),
])
def test_bad_logs(text, message):
    with pytest.raises(CaptureError, match=f"^{message}$"):
        parse_log(text)


def test_log_separators():
    for line in ("00B0950000 -> 6A82", "00B0950000 => 6A82", "00B0950000|6A82", "00B0950000, 6A82",
                 "00B0950000\t6A82", "00B0950000 6A82", "00 B0 95 00 00 ; 6A 82"):
        [captured] = parse_log(line).exchanges
        assert (captured.command, captured.response, captured.where) == \
            (parse_hex("00B0950000"), parse_hex("6A82"), "exchange 1 (line 1)")


def test_a_capture_of_another_scheme_or_that_contradicts_itself_makes_no_twin(tmp_path, capsys):
    szt = tmp_path / "szt.log"
    szt.write_text("00A4040008A000000632010105 -> 6A82\n"
                   "00A40400075041592E535A54 -> 6F3284075041592E535A54A5279F0801029F0C200000000000000000FD4400005180"
                   "0000E63C1D292017120120271201101000009000\n"
                   "805C000204 -> 800000649000\n")
    assert run(["card", "import", str(szt), "--out", str(tmp_path / "t.json")]) == 2
    assert capsys.readouterr().err == (f"ykt: {szt}: the card is a Shenzhen Tong 深圳通 card (exchange 2 (line 2)); "
                                       "twins are T-Union purse cards, the ones the simulator plays\n")
    # the same card's READ BINARY 0x15, as Trip Reader's emulator answers it, disagrees with its FCI in one byte
    szt.write_text(szt.read_text() + "00B095001C -> 0000000000000000FD44000051800000D63C1D2920171201202712019000\n")
    assert run(["card", "import", str(szt), "--out", str(tmp_path / "t.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ykt: exchange 4 (line 4): file 15 at byte 0 reads ") and "exchange 2 (line 2)" in err
    assert not (tmp_path / "t.json").exists()


def test_a_log_without_the_balance_or_the_public_file(tmp_path, capsys):
    log = tmp_path / "short.log"
    log.write_text(BEIJING_LOG.split("805C")[0])
    with pytest.raises(CaptureError, match="the card's balance is not in it"):
        make_twin(load_capture(log), KEYSET)
    log.write_text("00A4040008A000000632010105 -> 9000\n805C000204 -> 00000B229000\n")
    with pytest.raises(CaptureError, match="file 0x15 is 0 bytes in it; the twin needs its 30"):
        make_twin(load_capture(log), KEYSET)
    assert run(["card", "import", str(tmp_path / "none.log"), "--out", str(tmp_path / "t.json")]) == 2
    assert "none.log: cannot read (No such file or directory)" in capsys.readouterr().err


def test_the_balance_with_its_top_bit_set_is_noted(tmp_path):
    log = tmp_path / "top.log"
    log.write_text(BEIJING_LOG.replace("00000B22 9000", "80000B22 9000"))
    twin = make_twin(load_capture(log), KEYSET)
    assert twin.image.purse.balance == 0x0B22
    assert "the balance 80000B22 has its top bit set, which some schemes use as a flag: the twin holds the other 31 " \
           "bits, 2850 fen" in twin.notes


def test_read_without_a_card_leaves_no_capture(tmp_path, capsys, monkeypatch):
    import sim.devices

    monkeypatch.setattr(sim.devices, "open_link", lambda spec, role: SimReader(name="sim:empty"))
    capture = tmp_path / "none.jsonl"
    assert run(["read", "--reader", "sim:random", "--out", str(capture), "--wait", "0"]) == 2
    assert capsys.readouterr().err == "ykt: sim:empty: no card within 0 s\n"
    assert not capture.exists()
