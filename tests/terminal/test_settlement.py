"""Settlement export (exact bytes) and TAC verification against the spec's end-to-end example, through the API and the
``ykt journal`` commands."""

from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path

import pytest

from protocols.bcd import encode_datetime
from protocols.crypto import TdesKey, diversify, purchase_tac, serial_factor, tac_key
from sim.cli import run
from terminal.journal import JournalStorageError, MemoryJournal, SqliteJournal
from terminal.keyset import load_keyset, parse_keyset
from terminal.records import DebitRecord
from terminal.settlement import EXPORT_FIELDS, SettlementError, export, verify

from .test_journal import MAC2, TAC, FakeClock, spec_record
from .test_keyset import DEMO, MTK, good

OTHER_CARD = bytes.fromhex("03104991585000022222")


def card_tac(rec: DebitRecord) -> bytes:
    """The TAC a card personalised from the demo key set answers, computed from the primitives (not via the key set)."""
    dtk = diversify(TdesKey(bytes.fromhex(MTK)), serial_factor(rec.card_serial), rec.issuer_id)
    return purchase_tac(tac_key(dtk), rec.amount, rec.trans_type, rec.terminal_id, rec.tsn, encode_datetime(rec.when))


def fill(journal: SqliteJournal | MemoryJournal) -> None:
    """Five debits, one in each state and both MAC2 outcomes."""
    assert card_tac(spec_record()) == TAC  # the spec's end-to-end TAC, F252E12F
    journal.complete(journal.record_intent(spec_record()), TAC, MAC2, True)
    journal.record_intent(spec_record(offline_atc=0x37, tsn=0x58, amount=150, trans_type=0x06))
    journal.void(journal.record_intent(spec_record(offline_atc=0x38, tsn=0x59)), "no proof")
    journal.mark_unconfirmed(journal.record_intent(spec_record(card_serial=OTHER_CARD, offline_atc=7, tsn=0x5A)))
    fifth = spec_record(card_serial=OTHER_CARD, offline_atc=8, tsn=0x5B, amount=0x12345)
    journal.complete(journal.record_intent(fifth), card_tac(fifth), MAC2, None)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "journal.db"
    with SqliteJournal(path, clock=FakeClock()) as journal:
        fill(journal)
    return path


EXPECTED_CSV = (
    "row,tac,card_serial,issuer,atc,tsn,amount,type,terminal,datetime,state,mac2_verified,key_version,algorithm,"
    "evidence,card_record,technology,card_uid\n"
    "1,F252E12F,03104991585000011383,02403640FFFFFFFF,54,87,200,09,200041599997,2018-03-13T16:43:29,complete,true,"
    "01,00,debit,,cpu,\n"
    "2,,03104991585000011383,02403640FFFFFFFF,55,88,150,06,200041599997,2018-03-13T16:43:29,pending,,01,00,,,cpu,\n"
    "3,,03104991585000011383,02403640FFFFFFFF,56,89,200,09,200041599997,2018-03-13T16:43:29,void,,01,00,debit,,cpu,"
    "\n"
    "4,,03104991585000022222,02403640FFFFFFFF,7,90,200,09,200041599997,2018-03-13T16:43:29,unconfirmed,,01,00,,,cpu,"
    "\n"
    f"5,{card_tac(spec_record(card_serial=OTHER_CARD, offline_atc=8, tsn=0x5B, amount=0x12345)).hex().upper()},"
    "03104991585000022222,02403640FFFFFFFF,8,91,74565,09,200041599997,2018-03-13T16:43:29,complete,,01,00,debit,,"
    "cpu,\n"
)


def test_csv_export_exact_bytes(db: Path) -> None:
    out = io.StringIO()
    assert export(db, out) == 5
    assert out.getvalue() == EXPECTED_CSV
    assert out.getvalue().splitlines()[0].split(",") == list(EXPORT_FIELDS)


def test_jsonl_export_exact_bytes(db: Path) -> None:
    out = io.StringIO()
    assert export(db, out, format="jsonl", states=["complete", "pending"]) == 3
    lines = out.getvalue().splitlines(keepends=True)
    assert lines[0] == ('{"row":1,"tac":"F252E12F","card_serial":"03104991585000011383","issuer":"02403640FFFFFFFF",'
                        '"atc":54,"tsn":87,"amount":200,"type":"09","terminal":"200041599997",'
                        '"datetime":"2018-03-13T16:43:29","state":"complete","mac2_verified":true,'
                        '"key_version":"01","algorithm":"00","evidence":"debit","card_record":null,'
                        '"technology":"cpu","card_uid":null}\n')
    assert lines[1] == ('{"row":2,"tac":null,"card_serial":"03104991585000011383","issuer":"02403640FFFFFFFF",'
                        '"atc":55,"tsn":88,"amount":150,"type":"06","terminal":"200041599997",'
                        '"datetime":"2018-03-13T16:43:29","state":"pending","mac2_verified":null,'
                        '"key_version":"01","algorithm":"00","evidence":null,"card_record":null,'
                        '"technology":"cpu","card_uid":null}\n')
    assert [json.loads(line)["row"] for line in lines] == [1, 2, 5]
    assert all(list(json.loads(line)) == list(EXPORT_FIELDS) for line in lines)


def test_export_of_a_memory_journal_matches_the_sqlite_one(db: Path) -> None:
    journal = MemoryJournal(clock=FakeClock())
    fill(journal)
    out = io.StringIO()
    export(journal, out)
    assert out.getvalue() == EXPECTED_CSV


def test_export_filters_by_state(db: Path) -> None:
    out = io.StringIO()
    assert export(db, out, states=["void", "unconfirmed"]) == 2
    assert [line.split(",")[0] for line in out.getvalue().splitlines()] == ["row", "3", "4"]


def test_export_refuses_unknown_format_and_state(db: Path) -> None:
    with pytest.raises(SettlementError, match="unknown export format 'xml' \\(known: csv, jsonl\\)"):
        export(db, io.StringIO(), format="xml")
    with pytest.raises(SettlementError, match="unknown state 'paid'"):
        export(db, io.StringIO(), states=["complete", "paid"])


def test_verify_the_spec_example_and_list_open_rows(db: Path) -> None:
    report = verify(db, load_keyset(DEMO))
    assert report.ok and report.verified == 2 and report.void == 1
    assert report.mismatches == [] and report.unverifiable == []
    assert [(e.row_id, e.record.state.value) for e in report.open] == [(2, "pending"), (4, "unconfirmed")]
    assert report.test_only_keys


def _tamper(db: Path, query: str) -> None:
    conn = sqlite3.connect(db)
    conn.execute(query)
    conn.commit()
    conn.close()


def test_verify_reports_a_tampered_amount(db: Path) -> None:
    _tamper(db, "UPDATE debit SET amount = 100 WHERE id = 1")
    report = verify(db, load_keyset(DEMO))
    assert not report.ok and report.verified == 1
    [bad] = report.mismatches
    assert (bad.row_id, bad.card_serial, bad.atc, bad.journaled) == (1, spec_record().card_serial, 0x36, TAC)
    assert bad.expected == card_tac(spec_record(amount=100)) != TAC


def test_verify_reports_a_tampered_tac(db: Path) -> None:
    _tamper(db, "UPDATE debit SET tac = 'F252E12E' WHERE id = 1")
    [bad] = verify(db, load_keyset(DEMO)).mismatches
    assert (bad.expected, bad.journaled) == (TAC, bytes.fromhex("F252E12E"))


def test_rows_the_key_set_cannot_verify(tmp_path: Path) -> None:
    journal = MemoryJournal()
    journal.complete(journal.record_intent(spec_record(key_version=2)), TAC, MAC2, True)
    journal.complete(journal.record_intent(spec_record(offline_atc=1, tsn=1, algorithm=4)), TAC, MAC2, True)
    journal.complete(journal.record_intent(spec_record(offline_atc=2, tsn=2, trans_type=0x02)), TAC, MAC2, True)
    journal.complete(journal.record_intent(spec_record(offline_atc=3, tsn=3, algorithm=7)), TAC, MAC2, True)
    report = verify(journal, load_keyset(DEMO))
    assert not report.ok and report.verified == 0 and report.mismatches == []
    assert [(u.row_id, u.reason) for u in report.unverifiable] == [
        (1, "the key set has no tac key with version/index 02"),
        (2, "the card used SM4 (algorithm id 04), the key set is 3DES"),
        (3, "transaction type 02 has no purchase TAC"),
        (4, "algorithm id 07 is neither 3DES (00) nor SM4 (04)"),
    ]


def test_one_level_key_set_verifies_one_level_cards() -> None:
    keyset = parse_keyset(good() | {"diversification_levels": 1})
    rec = spec_record()
    dtk = diversify(TdesKey(bytes.fromhex(MTK)), serial_factor(rec.card_serial))
    tac = purchase_tac(tac_key(dtk), rec.amount, rec.trans_type, rec.terminal_id, rec.tsn, encode_datetime(rec.when))
    journal = MemoryJournal()
    journal.complete(journal.record_intent(rec), tac, MAC2, True)
    assert verify(journal, keyset).verified == 1
    assert len(verify(journal, load_keyset(DEMO)).mismatches) == 1  # the two-level set gives another key


# -- the commands ------------------------------------------------------------------------------------------------------

def test_cli_export_to_stdout_and_file(db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["journal", "export", str(db)]) == 0
    captured = capsys.readouterr()
    assert captured.out == EXPECTED_CSV
    assert captured.err == f"{db}: exported 5 rows\n"
    out = tmp_path / "settle.jsonl"
    assert run(["journal", "export", "--format", "jsonl", "--state", "void", "--state", "pending", "--out", str(out),
                str(db)]) == 0
    assert [json.loads(line)["row"] for line in out.read_text().splitlines()] == [2, 3]
    assert capsys.readouterr().out == ""


def test_cli_verify_exit_codes(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["journal", "verify", str(db), "--keys", str(DEMO)]) == 0
    captured = capsys.readouterr()
    assert captured.out == (
        "OPEN row 2 (pending): card 03104991585000011383 ATC 55 TSN 88 amount 150 at 2018-03-13T16:43:29\n"
        "OPEN row 4 (unconfirmed): card 03104991585000022222 ATC 7 TSN 90 amount 200 at 2018-03-13T16:43:29\n"
        f"{db}: 2 verified, 0 mismatched, 0 unverifiable, 0 from the card's log, 2 open, 1 void\n")
    assert "test-only key set" in captured.err
    _tamper(db, "UPDATE debit SET amount = 100 WHERE id = 1")
    assert run(["journal", "verify", str(db), "--keys", str(DEMO)]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"MISMATCH row 1: card 03104991585000011383 ATC 54: expected TAC "
                          f"{card_tac(spec_record(amount=100)).hex().upper()}, journaled F252E12F\n")
    assert out.endswith(f"{db}: 1 verified, 1 mismatched, 0 unverifiable, 0 from the card's log, 2 open, 1 void\n")


def test_cli_errors_are_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bogus = tmp_path / "bogus.db"
    bogus.write_text("not a journal\n" * 300)
    assert run(["journal", "export", str(bogus)]) == 2
    assert capsys.readouterr().err == f"ykt: {bogus}: cannot open the journal: corrupt or not a SQLite database " \
                                      "(file is not a database)\n"
    keys = tmp_path / "keys.json"
    keys.write_text("{}")
    assert run(["journal", "verify", str(bogus), "--keys", str(keys)]) == 2
    assert capsys.readouterr().err == f"ykt: {keys}: format: missing\n"


def test_verify_refuses_a_file_that_is_not_a_journal(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    path.write_bytes(b"\0" * 100)
    with pytest.raises(JournalStorageError, match=str(path)):
        verify(path, load_keyset(DEMO))
