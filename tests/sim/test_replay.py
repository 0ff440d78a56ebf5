"""``ykt replay``: the terminal against a recording (first divergence: exchange number, expected, got), and a
recording's card commands against a fixture card."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from protocols.hexutil import to_hex
from sim.cli import run
from sim.fixture import load_image, save_fixture
from sim.replay import replay_card, replay_settings, replay_terminal, tap_times
from terminal.tracefile import parse_trace, read_trace

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "sim" / "fixtures"
DEMO_CARD = FIXTURES / "demo-card.json"
AT = "2026-03-02 08:00:00"


def tap_trace(tmp_path: Path, fixture: Path = DEMO_CARD, name: str = "t.jsonl") -> Path:
    path = tmp_path / name
    assert run(["tap", "--card", str(fixture), "--at", AT, "--trace", str(path), "--json"]) == 0
    return path


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def save(path: Path, docs: list[dict]) -> Path:
    path.write_text("".join(json.dumps(doc) + "\n" for doc in docs), encoding="utf-8")
    return path


def replayed(capsys, path: Path, *args: str) -> tuple[int, dict]:
    capsys.readouterr()
    code = run(["replay", str(path), "--json", *args])
    return code, json.loads(capsys.readouterr().out)


def exchange_lines(docs: list[dict]) -> list[dict]:
    return [doc for doc in docs if doc.get("event") == "exchange"]


# --- the terminal against the recording -------------------------------------------------------------------------------

def test_a_demo_session_with_tears_replays_without_divergence(tmp_path, capsys):
    path = tmp_path / "d.jsonl"
    assert run(["demo", "--taps", "150", "--seed", "3", "--tear-share", "0.25", "--journal", str(tmp_path / "d.db"),
                "--trace", str(path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["retried"] > 10 and summary["recovered"] > 0 and summary["declined"] > 0
    trace = read_trace(path)
    assert any(e.response is None for e in trace.exchanges("reader"))  # tears are in the recording
    code, report = replayed(capsys, path)
    assert code == 0 and report["divergence"] is None and report["stopped"] is None
    assert report["psam"] == "scripted" and report["settings"] == "settings: the trace; fares: the trace"
    assert report["taps"] == sum(1 for e in trace.events if not hasattr(e, "command") and e.link == "reader")
    assert report["exchanges"] == len(trace.exchanges())


def test_a_mixed_session_of_m1_and_cpu_cards_replays_without_divergence(tmp_path, capsys):
    """M1 taps replay too: the recording holds the pseudo-APDUs the terminal sent, the keys zeroed in LOAD KEY and in
    the PSAM's answer alike, so the replayed terminal sends what was recorded."""
    path = tmp_path / "m.jsonl"
    assert run(["demo", "--taps", "120", "--seed", "4", "--cards", "mixed", "--tear-share", "0.25", "--journal",
                str(tmp_path / "m.db"), "--trace", str(path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["by_kind"]["m1"]["accepted"] > 20 and summary["retried"] > 5
    trace = read_trace(path)
    assert any(e.command[:2] == b"\xff\x82" for e in trace.exchanges("reader"))
    code, report = replayed(capsys, path)
    assert code == 0 and report["divergence"] is None and report["stopped"] is None


def test_replayed_outcomes_are_the_recorded_ones(tmp_path):
    path = tap_trace(tmp_path)
    trace = read_trace(path)
    config, fares, source = replay_settings(trace)
    report = replay_terminal(trace, config, fares)
    assert source == "settings: the trace; fares: the trace" and report.divergence is None
    [outcome] = report.outcomes
    debit = next(e for e in trace.exchanges("reader") if e.command[:2] == b"\x80\x54")
    assert outcome.accepted and outcome.tac == debit.response[:4] and outcome.balance_after == 9800
    assert [e.command for e in outcome.exchanges] == [e.command for e in trace.exchanges()[4:]]


def test_a_tampered_answer_diverges_where_the_terminal_sends_something_else(tmp_path, capsys):
    """The card said its balance was 200.00, not 100.00: the 0x1E record the terminal writes then carries 198.00 after
    the fare, and the first command that differs is exchange 10, UPDATE CAPP DATA CACHE, at the balance's bytes."""
    docs = lines(tap_trace(tmp_path))
    exchanges = exchange_lines(docs)
    init = exchanges[6]
    assert init["command"].startswith("805003020B") and init["response"].startswith("00002710")
    init["response"] = "00004E20" + init["response"][8:]
    update = exchanges[9]["command"]
    assert update.startswith("80DC00F030") and update[52:60] == "00002648"  # APDU bytes 26..29: 98.00 after the fare
    path = save(tmp_path / "tampered.jsonl", docs)
    code, report = replayed(capsys, path)
    got = update[:52] + "00004D58" + update[60:]  # 198.00
    assert code == 1 and report["divergence"] == {
        "exchange": 10, "link": "reader", "role": "card", "expected": update,
        "expected_command": "UPDATE CAPP DATA CACHE 0x1E", "got": got, "first_difference": 28, "after": None,
        "message": f"exchange 10 (card link 'reader', UPDATE CAPP DATA CACHE 0x1E): expected {update}, got {got} "
                   f"(first difference at byte 28)"}
    capsys.readouterr()
    assert run(["replay", str(path)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out == ["replayed 1 tap over 12 recorded exchanges; PSAM: scripted from the trace; settings: the trace; "
                   "fares: the trace", f"divergence: {report['divergence']['message']}"]


def test_a_tampered_psam_answer_and_a_tampered_command(tmp_path, capsys):
    docs = lines(tap_trace(tmp_path))
    exchanges = exchange_lines(docs)
    exchanges[3]["response"] = "029000"  # the PSAM's key index: 02, so INITIALIZE names key 02
    code, report = replayed(capsys, save(tmp_path / "a.jsonl", docs))
    expected = exchanges[6]["command"]
    assert code == 1 and report["divergence"]["exchange"] == 7
    assert report["divergence"]["got"] == expected[:10] + "02" + expected[12:]
    assert report["divergence"]["first_difference"] == 5

    docs = lines(tap_trace(tmp_path, name="b.jsonl"))
    exchange_lines(docs)[0]["command"] = "00B0960008"  # the recording says the terminal read 8 bytes
    code, report = replayed(capsys, save(tmp_path / "b2.jsonl", docs))
    assert code == 1 and report["divergence"]["exchange"] == 1 and report["divergence"]["role"] == "sam"
    assert (report["divergence"]["expected"], report["divergence"]["got"]) == ("00B0960008", "00B0960006")
    assert report["divergence"]["message"] == ("exchange 1 (PSAM link 'psam', READ BINARY 0x16): expected 00B0960008, "
                                               "got 00B0960006 (first difference at byte 4)")


def test_the_terminal_sends_more_or_less_than_recorded(tmp_path, capsys):
    docs = lines(tap_trace(tmp_path))
    last_psam = exchange_lines(docs)[11]
    assert last_psam["command"].startswith("8072")
    code, report = replayed(capsys, save(tmp_path / "short.jsonl", [d for d in docs if d is not last_psam]))
    assert code == 1 and report["divergence"]["exchange"] is None and report["divergence"]["after"] == 9
    assert report["divergence"]["message"] == (f"after exchange 9, the last on PSAM link 'psam': expected nothing "
                                               f"more, got {last_psam['command']} (CREDIT SAM FOR PURCHASE)")

    extra = dict(exchange_lines(docs)[10], command="805C000204", response="000026489000")
    code, report = replayed(capsys, save(tmp_path / "long.jsonl", docs + [extra]))
    assert code == 1 and report["divergence"] == {
        "exchange": 13, "link": "reader", "role": "card", "expected": "805C000204", "expected_command": "GET BALANCE",
        "got": None, "first_difference": None, "after": None,
        "message": "exchange 13 (card link 'reader', GET BALANCE): expected 805C000204, got nothing (the terminal "
                   "never sent it)"}


def test_a_trace_of_the_card_link_alone_gets_the_demo_psam(tmp_path, capsys):
    docs = lines(tap_trace(tmp_path))
    docs[0]["links"] = [{"name": "reader", "role": "card"}]
    card_only = [docs[0]] + [d for d in docs[1:] if d["link"] == "reader"]
    debit = next(d for d in card_only if d.get("command", "").startswith("8054"))
    debit["command"] = debit["command"][:10] + "DEADBEEF" + debit["command"][18:32] + "CAFEBABE" + debit["command"][40:]
    code, report = replayed(capsys, save(tmp_path / "card.jsonl", card_only))
    assert code == 0 and report["psam"] == "demo" and report["divergence"] is None and report["exchanges"] == 5
    debit["command"] = debit["command"][:18] + "20270302" + debit["command"][26:]  # the date is no wildcard
    code, report = replayed(capsys, save(tmp_path / "card2.jsonl", card_only))
    assert code == 1 and report["divergence"]["expected_command"] == "UPDATE CAPP DATA CACHE 0x1E"


def test_the_clock_of_each_tap():
    """8070/8054 carry the time the validator used; else the clock recorded at activation; else the previous tap's."""
    header = ('{"format": "yikatong-trace", "version": 1, "created": "2026-03-02T00:00:00+00:00", "tool": "t", '
              '"links": [{"name": "r", "role": "card"}, {"name": "s", "role": "sam"}]}')

    def activation(clock: str | None) -> str:
        extra = "" if clock is None else f', "clock": "{clock}"'
        return '{"event": "activation", "link": "r", "t_ns": 0, "activation": {"protocol": "T=CL"}' + extra + "}"

    def exchange(link: str, command: str) -> str:
        return (f'{{"event": "exchange", "link": "{link}", "t_ns": 0, "duration_ns": 0, "command": "{command}", '
                f'"response": "9000"}}')

    sam_8070 = "8070000024" + "11223344" + "0001" + "000000C8" + "09" + "20260302091500" + "0100" + "00" * 16
    debit = "805401000F" + "00000001" + "20260302101010" + "AABBCCDD" + "08"
    text = "\n".join([header, activation("2026-03-02T08:59:59"), exchange("r", "00A4040008A000000632010105"),
                      exchange("s", sam_8070), activation(None), exchange("r", debit),
                      activation("2026-03-02T11:00:00"),
                      activation(None), exchange("r", "00B097003C")]) + "\n"
    assert tap_times(parse_trace(text, "t"), "r") == [
        dt.datetime(2026, 3, 2, 9, 15), dt.datetime(2026, 3, 2, 10, 10, 10), dt.datetime(2026, 3, 2, 11),
        dt.datetime(2026, 3, 2, 11)]


def test_replay_needs_one_card_link(tmp_path, capsys):
    path = tmp_path / "t.jsonl"
    path.write_text('{"format": "yikatong-trace", "version": 1, "created": "2026-03-02T00:00:00+00:00", "tool": "t", '
                    '"links": [{"name": "s", "role": "sam"}]}\n', encoding="utf-8")
    assert run(["replay", str(path)]) == 2
    assert capsys.readouterr().err == "ykt: a replay needs exactly one card link; the trace has 0\n"


def test_settings_given_on_the_command_line_win(tmp_path, capsys):
    path = tap_trace(tmp_path)
    fares = tmp_path / "fares.toml"
    fares.write_text((ROOT / "sim" / "fares" / "demo-flat.toml").read_text().replace("base = 200", "base = 300"))
    code, report = replayed(capsys, path, "--fares", str(fares))
    assert code == 1 and report["settings"] == f"settings: the trace; fares: {fares}"
    assert report["divergence"]["exchange"] == 7 and report["divergence"]["got"][12:20] == "0000012C"


# --- the commands against a fixture card ---------------------------------------------------------------------------

def test_the_recorded_card_answers_byte_for_byte(tmp_path, capsys):
    path = tap_trace(tmp_path)
    report = replay_card(read_trace(path), load_image(DEMO_CARD))
    assert (report.matched, report.differences, report.unanswered, report.other_taps) == (5, [], [], 0)
    code, out = replayed(capsys, path, "--card", str(DEMO_CARD))
    assert code == 0 and out == {"link": "reader", "matched": 5, "differences": [], "unanswered": [], "other_taps": 0}


def test_a_fixture_in_another_state_answers_differently(tmp_path, capsys):
    path = tap_trace(tmp_path)
    image = load_image(DEMO_CARD)
    image.purse.balance = 5000
    fixture = tmp_path / "poorer.json"
    save_fixture(image, fixture)
    init = read_trace(path).exchanges("reader")[2]
    code, out = replayed(capsys, path, "--card", str(fixture))
    got = "00001388" + to_hex(init.response)[8:]  # 50.00: the only answer that differs (TAC and MAC2 do not cover it)
    assert code == 1 and out["matched"] == 4 and out["differences"] == [
        {"exchange": 7, "command": "INITIALIZE FOR CAPP PURCHASE", "apdu": to_hex(init.command),
         "recorded": to_hex(init.response), "got": got}]
    capsys.readouterr()
    assert run(["replay", str(path), "--card", str(fixture)]) == 1
    assert capsys.readouterr().out.splitlines() == [
        f"replayed the card commands of link 'reader' against {fixture}: 4 answers as recorded, 1 different",
        f"exchange 7 INITIALIZE FOR CAPP PURCHASE: {to_hex(init.command)}", f"  recorded {to_hex(init.response)}",
        f"  got      {got}"]


def test_unanswered_commands_and_other_cards_are_not_sent(tmp_path, capsys):
    ours = lines(tap_trace(tmp_path))
    theirs = lines(tap_trace(tmp_path, FIXTURES / "low-balance-student.json", "other.jsonl"))
    exchange_lines(ours)[10].update(response=None, error="CardRemoved: reader: the card left the field")  # DEBIT
    docs = ours + [d for d in theirs[1:] if d["link"] == "reader"]
    code, out = replayed(capsys, save(tmp_path / "both.jsonl", docs), "--card", str(DEMO_CARD))
    assert code == 0 and out == {"link": "reader", "matched": 4, "differences": [], "unanswered": [11],
                                 "other_taps": 1}


def test_card_replay_refuses_terminal_options(tmp_path, capsys):
    path = tap_trace(tmp_path)
    assert run(["replay", str(path), "--card", str(DEMO_CARD), "--fares", str(path)]) == 2
    assert "--config and --fares shape the terminal" in capsys.readouterr().err


@pytest.mark.parametrize("fixture", ["blocked-card.json", "expired-shanghai.json", "torn-debit.json"])
def test_every_fixture_replays_both_ways(tmp_path, capsys, fixture):
    path = tap_trace(tmp_path, FIXTURES / fixture)
    code, report = replayed(capsys, path)
    assert code == 0 and report["divergence"] is None
    code, report = replayed(capsys, path, "--card", str(FIXTURES / fixture))
    assert code == 0 and report["differences"] == []
