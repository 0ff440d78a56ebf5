"""The fault campaign's own parts: the key ring and scan, the fuzzing engine's sorting of what a target does, the
power scenario's checks of the files, the campaign's verdict. (``ykt faults --quick`` itself runs in
``tests/peers/test_faults.py``: it opens ptys.)"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import strategies as st

from protocols.errors import ProtocolError
from sim.cli import run
from sim.faults import fuzz
from sim.faults.campaign import Campaign, Figures, run_campaign
from sim.faults.keyring import KeyRing
from sim.faults.keyscan import scan_for_keys
from sim.faults.parsers import Target, all_layouts
from sim.faults.power import _Card, _check
from sim.fixture import save_fixture
from sim.issuing import issue_card, load_demo_keyset
from sim.tears import START
from terminal.journal import SqliteJournal
from terminal.records import DebitRecord

KEY = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")


def campaign(tmp_path: Path) -> Campaign:
    return Campaign(True, 1, tmp_path / "work", show_progress=False)


def test_the_ring_finds_a_key_in_hex_either_case_raw_and_as_a_bytes_literal() -> None:
    ring = KeyRing()
    ring.add(KEY)
    assert ring.count_bytes(b"x" + KEY.hex().upper().encode() + b"y" + KEY.hex().encode()) == 2
    assert ring.count_bytes(b"\x00" + KEY + b"\x00") == 1
    assert ring.count_bytes(KEY.hex().encode()[:-2] + b"zz") == 0
    assert ring.count_text(f"bad key {KEY!r}") == 1
    assert ring.count_text("nothing here: 0123456789ABCDEF") == 0


def test_the_ring_holds_the_key_set_and_a_card_s_own_keys_but_not_public_m1_keys() -> None:
    keyset = load_demo_keyset()
    card = issue_card(keyset, serial="03103640000000000042")
    ring = KeyRing()
    ring.add_keyset(keyset, issuers=(card.image.public_info[:8],))
    ring.add_card(card.image)
    ring.add(bytes.fromhex("FFFFFFFFFFFF"), bytes.fromhex("A0A1A2A3A4A5"))
    slot = card.image.keys[1]
    assert {slot.purchase.export(), slot.load.export(), slot.tac.export()} <= ring.keys
    assert not {bytes.fromhex("FFFFFFFFFFFF"), bytes.fromhex("A0A1A2A3A4A5")} & ring.keys
    assert len(ring) > 3


def test_the_key_scan_counts_a_key_written_anywhere_but_in_the_card_fixtures(tmp_path: Path) -> None:
    work = campaign(tmp_path)
    work.keys.add(KEY)
    (work.workdir / "journal.log").write_text(f"row 7 tac 1234 key {KEY.hex()}\n")
    (work.cards / "card.json").write_text(f'{{"keys": "{KEY.hex().upper()}"}}\n')
    work.said(f"ProtocolError: {KEY.hex().upper()}")
    figures = scan_for_keys(work)
    assert (figures.values["key_strings_in_files"], figures.values["key_strings_in_messages"]) == (1, 1)
    assert figures.values["files_scanned"] == 1
    assert figures.problems == ["key_strings_in_files = 1", "key_strings_in_messages = 1"]


def test_the_fuzzing_engine_sorts_typed_errors_untyped_exceptions_hangs_and_keys(monkeypatch) -> None:
    monkeypatch.setattr(fuzz, "LIMIT_S", 0.2)
    ring = KeyRing()
    ring.add(KEY)

    def target(value: int | bytes) -> None:
        if isinstance(value, bytes):
            raise ProtocolError(f"not a block: {value.hex()}")  # echoes its input, which carries a key
        if value == 1:
            raise ProtocolError("not a card")
        if value == 2:
            raise ValueError("a library's exception")
        if value == 3:
            while True:
                pass
        if value == 4:
            raise ProtocolError(f"bad key {KEY.hex()}")

    tally = fuzz.run_target(Target("t", st.sampled_from([0, 1, 2, 3, 4, b"\xff" + KEY]), target), 60, 1, ring)
    # hypothesis stops once it has drawn all six values: the inputs counted are the inputs run
    assert (tally.inputs, tally.typed, tally.untyped, tally.hangs) == (6, 3, 1, 1)
    assert (tally.keys_in_messages, tally.echoed_keys) == (1, 1)
    assert any("ValueError: a library's exception" in note for note in tally.notes)
    assert any("no answer in 0.2 s" in note for note in tally.notes)


def test_every_layout_of_protocols_is_a_target() -> None:
    names = [name for name, _ in all_layouts()]
    assert "protocols.card_commands.PURCHASE_INIT_RESPONSE" in names and "protocols.mifare.SECTOR_TRAILER" in names
    assert len(names) > 30


def _row(serial: bytes, atc: int, tsn: int) -> DebitRecord:
    return DebitRecord(serial, bytes.fromhex("02403640FFFFFFFF"), 1, atc, 200, 10_000, 9,
                       bytes.fromhex("200041599997"), tsn, START, 1, 0, bytes(4))


def test_the_power_check_finds_a_debit_on_the_card_that_no_row_holds(tmp_path: Path) -> None:
    card = issue_card(load_demo_keyset(), serial="03103640000000000042", balance=10_000)
    fixture = tmp_path / "card.json"
    save_fixture(card, fixture)
    before = _Card(fixture, 0, 10_000)
    journal = tmp_path / "journal.db"
    with SqliteJournal(journal) as db:
        db.complete(db.record_intent(_row(card.serial, 0, 1)), bytes(4), bytes(4), True)
    card.image.purse.offline_atc, card.image.purse.balance = 2, 9_600  # two debits made, one journaled
    save_fixture(card, fixture)
    counts: Counter[str] = Counter()
    _check(journal, [before], counts, Figures("power", "power"), 0, dt.datetime(2000, 1, 1))
    assert counts["committed_debits_not_journaled"] == 1
    assert (counts["integrity_check_failures"], counts["balances_off"], counts["duplicate_rows"]) == (0, 0, 0)


def test_a_scenario_that_fails_is_a_problem_and_no_traceback(tmp_path: Path) -> None:
    def broken(_: Campaign) -> Figures:
        raise KeyError("oops")

    def lossy(_: Campaign) -> Figures:
        figures = Figures("lossy", "loses money")
        figures.must_be_zero("lost_debits", 2)
        figures.must_hold("money_balanced", False)
        return figures

    report = run_campaign([("broken", broken), ("lossy", lossy)], campaign(tmp_path))
    assert report.problems == ["broken: harness_failure = 1", "lossy: lost_debits = 2",
                               "lossy: money_balanced: does not hold"]
    assert report.scenarios[0].notes == ["KeyError: 'oops'"]
    assert not report.as_dict()["ok"]


def test_ykt_faults_refuses_an_unknown_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["faults", "--quick", "--only", "nothing"]) == 2
    assert "unknown scenario nothing" in capsys.readouterr().err


def test_a_later_run_on_the_same_work_directory_looks_for_the_keys_of_the_earlier_one(tmp_path: Path) -> None:
    first = campaign(tmp_path)

    def uses_a_card(work: Campaign) -> Figures:
        work.keys.add(KEY)
        return Figures("cards", "uses a card")

    run_campaign([("cards", uses_a_card)], first)
    later = campaign(tmp_path)
    assert KEY in later.keys.keys
    (later.workdir / "late.log").write_text(KEY.hex())
    assert scan_for_keys(later).values["key_strings_in_files"] == 1


def test_the_fuzzing_s_inputs_are_shared_by_weight_and_at_least_what_was_asked(tmp_path: Path) -> None:
    every = [Target("light", st.just(b""), len, 0.5), Target("heavy", st.just(b""), len, 2.0)]
    assert fuzz._shares(every, campaign(tmp_path)) == {"light": 40, "heavy": 40}
    full = Campaign(False, 1, tmp_path / "full", show_progress=False)
    assert fuzz._shares(every, full) == {"light": 200_001, "heavy": 800_001}
    asked = Campaign(True, 1, tmp_path / "asked", inputs=1_000, show_progress=False)
    assert fuzz._shares(every, asked) == {"light": 201, "heavy": 801}


def test_ykt_faults_inputs_sizes_the_fuzzing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["faults", "--quick", "--only", "fuzz", "--inputs", "100", "--json", "--workdir",
                str(tmp_path / "work")]) == 0
    figures = json.loads(capsys.readouterr().out)["scenarios"]["fuzz"]["figures"]
    # each target's share is rounded, plus one: the whole is what was asked and at most 1.5 more a target
    assert figures["targets"] == 46 and 100 <= figures["inputs"] <= 100 + 1.5 * 46
    assert figures["inputs_per_target"]["layouts"] > figures["inputs_per_target"]["loader.keyset"]
