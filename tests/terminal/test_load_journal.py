"""The load terminal's journal: its states and the changes allowed between them, durable rows, its own file identity,
and the uniqueness of a card's counter."""

from __future__ import annotations

import dataclasses
import datetime as dt
import sqlite3
from pathlib import Path

import pytest

from protocols.hexutil import parse_hex as h
from terminal.clock import ManualClock
from terminal.journal import SqliteJournal
from terminal.loads import LoadJournal, LoadJournalError, LoadRecord, LoadState

WHEN = dt.datetime(2026, 3, 2, 9, 15, 0)
RECORD = LoadRecord("req-1", h("03103640000000000077"), h("02403640FFFFFFFF"), 4, 2000, 5000, 0x02,
                    h("200041590001"), WHEN, 1, 0, h("11223344"), h("2988AE5A"))


@pytest.fixture
def journal(tmp_path: Path):
    with LoadJournal(tmp_path / "loads.db", clock=ManualClock(WHEN)) as opened:
        yield opened


def test_a_load_goes_through_its_states_and_survives_reopening(journal: LoadJournal, tmp_path: Path) -> None:
    row = journal.record_request(RECORD)
    journal.authorized(row, 17, h("3A845BF0"))
    assert journal.waiting_for(RECORD.card_serial).row_id == row  # type: ignore[union-attr]
    journal.credited(row, h("6314E5F5"))
    assert journal.waiting_for(RECORD.card_serial) is None
    journal.confirmed(row)
    journal.close()
    with LoadJournal(tmp_path / "loads.db", readonly=True) as again:
        entry = again.get(row)
    assert entry.record == dataclasses.replace(RECORD, state=LoadState.CONFIRMED, load_id=17, mac2=h("3A845BF0"),
                                               tac=h("6314E5F5"))
    assert entry.changed_at == WHEN
    row_text = sqlite3.connect(tmp_path / "loads.db").execute("SELECT * FROM load").fetchone()
    assert row_text[1:15] == ("req-1", "03103640000000000077", "02403640FFFFFFFF", 4, 2000, 5000, 2, "200041590001",
                              "2026-03-02T09:15:00", 1, 0, "11223344", "2988AE5A", "confirmed")


@pytest.mark.parametrize(("steps", "change", "message"), [
    ((), "credited", "is requested: it cannot become credited"),
    ((), "unconfirmed", "is requested: it cannot become unconfirmed"),
    (("authorized",), "confirmed", "is authorized: it cannot become confirmed"),
    (("authorized", "credited"), "void", "is credited: it cannot become void"),
    (("void",), "authorized", "is void: it cannot become authorized"),
])
def test_changes_outside_the_rules_are_refused(journal: LoadJournal, steps, change: str, message: str) -> None:
    row = journal.record_request(RECORD)
    calls = {"authorized": lambda: journal.authorized(row, 1, bytes(4)),
             "credited": lambda: journal.credited(row, bytes(4)), "confirmed": lambda: journal.confirmed(row),
             "void": lambda: journal.void(row, "why"),
             "unconfirmed": lambda: journal.unconfirmed(row, "why")}
    for step in steps:
        calls[step]()
    before = journal.get(row)
    with pytest.raises(LoadJournalError, match=message):
        calls[change]()
    assert journal.get(row) == before
    with pytest.raises(LoadJournalError, match="no load row 99"):
        journal.void(99, "why")


def test_a_cards_counter_is_journaled_once(journal: LoadJournal) -> None:
    row = journal.record_request(RECORD)
    with pytest.raises(LoadJournalError, match="online counter 4 is already journaled"):
        journal.record_request(dataclasses.replace(RECORD, request_id="req-2"))
    journal.void(row, "not credited")
    again = journal.record_request(dataclasses.replace(RECORD, request_id="req-2"))  # a void row frees the counter
    journal.authorized(again, 2, bytes(4))
    third = journal.record_request(dataclasses.replace(RECORD, request_id="req-3", online_atc=5))
    with pytest.raises(LoadJournalError, match="another load of its card already waits for the card"):
        journal.authorized(third, 3, bytes(4))  # one load of a card waits at a time
    with pytest.raises(LoadJournalError, match="journaled as requested"):
        journal.record_request(dataclasses.replace(RECORD, state=LoadState.VOID))
    assert [e.record.state for e in journal.entries()] == [LoadState.VOID, LoadState.AUTHORIZED, LoadState.REQUESTED]
    assert [e.row_id for e in journal.entries([LoadState.AUTHORIZED])] == [again]


def test_the_file_is_recognised(tmp_path: Path) -> None:
    SqliteJournal(tmp_path / "debits.db").close()
    with pytest.raises(LoadJournalError, match=r"not a yikatong load journal \(SQLite application_id 0x594b544a"):
        LoadJournal(tmp_path / "debits.db")
    LoadJournal(tmp_path / "loads.db").close()
    connection = sqlite3.connect(tmp_path / "loads.db")
    connection.execute("PRAGMA user_version = 9")
    connection.close()
    with pytest.raises(LoadJournalError, match="load journal schema version 9 is unknown"):
        LoadJournal(tmp_path / "loads.db")
    (tmp_path / "junk.db").write_bytes(b"\x00junk" * 500)
    with pytest.raises(LoadJournalError, match="corrupt or not a SQLite database"):
        LoadJournal(tmp_path / "junk.db")
    (tmp_path / "empty.db").write_bytes(b"")
    with pytest.raises(LoadJournalError, match="empty file, not a yikatong load journal"):
        LoadJournal(tmp_path / "empty.db", readonly=True)
