"""M1 rows in the journal (schema 3): the stored row exactly, what settles one, what a damaged one is, their export,
and verification of the PSAM's transaction MAC against the layout document's example (MAC B67AFE80)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from terminal.journal import DamagedRow, InvalidDebit, Journal
from terminal.journal.rows import decode_entry
from terminal.keyset import load_keyset
from terminal.records import (
    DebitRecord,
    DebitState,
    Evidence,
    Technology,
    m1_card_number,
    m1_serial,
)
from terminal.settlement import export, verify

from .test_journal import BACKENDS, FakeClock, open_journal
from .test_keyset import DEMO

CARD_NUMBER = bytes.fromhex("3640000100000042")
UID = bytes.fromhex("40C2AB5C")
WHEN = dt.datetime(2025, 3, 14, 8, 30)
MAC = bytes.fromhex("B67AFE80")  # docs/m1-purse-layout.md: the transaction MAC of this debit under the demo keys
RECORD = bytes.fromhex("0001 06 0000C8 002710 20250314083000")  # its trip record (counter 1, 2.00 from 100.00)


def m1_record(**changes: object) -> DebitRecord:
    """The layout document's example debit (counter 0 to 1, 2.00 from 100.00, TSN 0x57) as an M1 intent."""
    rec = DebitRecord(card_serial=m1_serial(CARD_NUMBER), issuer_id=bytes.fromhex("36400001FFFFFFFF"), card_type=1,
                      offline_atc=0, amount=200, balance_before=10000, trans_type=0x06,
                      terminal_id=bytes.fromhex("200041599997"), tsn=0x57, when=WHEN, key_version=1, algorithm=0,
                      mac1=MAC, fare_note="flat", technology=Technology.M1, card_uid=UID)
    return dataclasses.replace(rec, **changes)  # type: ignore[arg-type]


@pytest.fixture(params=BACKENDS)
def journal(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Journal]:
    opened = open_journal(request.param, tmp_path / "journal.db")
    yield opened
    opened.close()


def test_serial_of_an_m1_card() -> None:
    assert m1_serial(CARD_NUMBER).hex().upper() == "00003640000100000042"
    assert m1_card_number(m1_serial(CARD_NUMBER)) == CARD_NUMBER


def test_the_stored_m1_row_exactly(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    journal = open_journal("sqlite", path)
    journal.complete_m1(journal.record_intent(m1_record()), MAC)
    second = journal.record_intent(m1_record(offline_atc=1, tsn=0x58, balance_before=9800))
    journal.settle_from_log(second, RECORD, made=False)
    journal.close()
    conn = sqlite3.connect(path)
    rows = conn.execute("SELECT * FROM debit ORDER BY id").fetchall()
    conn.close()
    assert rows == [
        (1, "00003640000100000042", "36400001FFFFFFFF", 1, 0, 200, 10000, 6, "200041599997", 0x57,
         "2025-03-14T08:30:00", 1, 0, "B67AFE80", "flat", "complete", "B67AFE80", None, None, "",
         "2018-03-13T16:43:30", "debit", "m1", "40C2AB5C"),
        (2, "00003640000100000042", "36400001FFFFFFFF", 1, 1, 200, 9800, 6, "200041599997", 0x58,
         "2025-03-14T08:30:00", 1, 0, "B67AFE80", "flat", "void", None, None, None, RECORD.hex().upper(),
         "2018-03-13T16:43:31", "log", "m1", "40C2AB5C"),
    ]


def test_m1_rows_round_trip_in_every_state(journal: Journal) -> None:
    done = journal.record_intent(m1_record())
    journal.complete_m1(done, MAC)
    logged = journal.record_intent(m1_record(offline_atc=1, tsn=0x58))
    journal.settle_from_log(logged, RECORD, made=True, mac=MAC)
    void = journal.record_intent(m1_record(offline_atc=2, tsn=0x59))
    journal.void(void, "no decrement: the card's counter had not moved", evidence=Evidence.COUNTER)
    open_row = journal.record_intent(m1_record(offline_atc=3, tsn=0x5A, card_uid=bytes.fromhex("04112233445566")))
    journal.flush()
    got = {e.row_id: e for e in journal.entries()}
    assert (got[done].record.state, got[done].record.tac, got[done].record.mac2) == (DebitState.COMPLETE, MAC, None)
    assert got[done].record.evidence is Evidence.DEBIT and got[done].record.technology is Technology.M1
    assert (got[logged].record.tac, got[logged].card_record) == (MAC, RECORD)
    assert (got[void].record.state, got[void].record.tac) == (DebitState.VOID, None)
    assert got[open_row].record.card_uid == bytes.fromhex("04112233445566")
    assert [e.row_id for e in journal.open_rows(m1_serial(CARD_NUMBER))] == [open_row]


@pytest.mark.parametrize("changes,message", [
    ({"card_uid": None}, "card_uid must be 4 or 7 bytes for a m1 card"),
    ({"card_uid": bytes(5)}, "card_uid must be 4 or 7 bytes for a m1 card"),
    ({"technology": Technology.CPU}, "card_uid must be None for a cpu card"),
    ({"technology": "m1"}, "technology must be a Technology"),
])
def test_malformed_m1_intents_are_refused(journal: Journal, changes: dict, message: str) -> None:
    with pytest.raises(InvalidDebit, match=message):
        journal.record_intent(m1_record(**changes))


def test_what_settles_an_m1_row_is_checked(journal: Journal) -> None:
    row = journal.record_intent(m1_record())
    with pytest.raises(InvalidDebit, match="an M1 debit's MAC must be 4 bytes"):
        journal.complete_m1(row, b"\x00")
    with pytest.raises(InvalidDebit, match="own record is 23 or 16 bytes"):
        journal.settle_from_log(row, RECORD[:15], made=True, mac=MAC)
    with pytest.raises(InvalidDebit, match="only an M1 debit proven made"):
        journal.settle_from_log(row, RECORD, made=False, mac=MAC)


GOOD = [1, "00003640000100000042", "36400001FFFFFFFF", 1, 0, 200, 10000, 6, "200041599997", 0x57,
        "2025-03-14T08:30:00", 1, 0, "B67AFE80", "flat", "complete", "B67AFE80", None, None, "", "debit",
        "2025-03-14T08:30:01", "m1", "40C2AB5C"]


@pytest.mark.parametrize("index,value,field,reason", [
    (22, "nfc", "technology", "unknown technology text 'nfc'"),
    (23, None, "card_uid", "a row of technology m1 has a card UID, found NULL"),
    (23, "40C2AB", "card_uid", "4 bytes of hex expected"),
    (17, "CAEC0601", "mac2", "a complete M1 row has a TAC and no MAC2 (evidence debit)"),
    (16, None, "tac", "a complete M1 row has a TAC and no MAC2 (evidence debit)"),
    (18, 1, "mac2_verified", "without MAC2 has no MAC2 check"),
    (20, "prove", "evidence", "is not evidence a complete row of technology m1 can have"),
    (20, "log", "reason", "16 bytes of hex expected"),
])
def test_a_damaged_m1_row_names_the_field(index: int, value: object, field: str, reason: str) -> None:
    decode_entry(GOOD)
    row = list(GOOD)
    row[index] = value
    with pytest.raises(DamagedRow, match=f"journal row 1: {field}: .*{reason}".replace("(", r"\(").replace(")", r"\)")):
        decode_entry(row)
    cpu = GOOD[:22] + ["cpu", "40C2AB5C"]
    with pytest.raises(DamagedRow, match="card_uid: a row of technology cpu has no card UID"):
        decode_entry(cpu)


def test_export_and_verify_m1_rows() -> None:
    journal = open_journal("memory", Path("unused"), FakeClock())
    journal.complete_m1(journal.record_intent(m1_record()), MAC)
    logged = journal.record_intent(m1_record(offline_atc=1, tsn=0x58, balance_before=9800))
    journal.settle_from_log(logged, RECORD, made=True, mac=bytes.fromhex("00000000"))  # a wrong MAC, for verify
    out = io.StringIO()
    export(journal, out)
    lines = out.getvalue().splitlines()
    assert lines[1] == ("1,B67AFE80,00003640000100000042,36400001FFFFFFFF,0,87,200,06,200041599997,"
                        "2025-03-14T08:30:00,complete,,01,00,debit,,m1,40C2AB5C")
    assert lines[2].endswith(f",complete,,01,00,log,{RECORD.hex().upper()},m1,40C2AB5C")
    report = verify(journal, load_keyset(DEMO))
    assert report.verified == 1 and report.from_log == []
    [mismatch] = report.mismatches
    assert (mismatch.row_id, mismatch.journaled) == (logged, bytes(4)) and mismatch.expected != bytes(4)
