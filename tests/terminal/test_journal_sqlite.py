"""The SQLite journal's own promises: the stored row, durability across restarts and SIGKILL, group commit, and typed
errors for files that are not (or no longer) a journal."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from terminal.journal import (APPLICATION_ID, SCHEMA_VERSION, DuplicateDebit, JournalError, JournalStorageError,
                              SqliteJournal, UnknownRow)
from terminal.records import DebitState, Evidence

from .test_journal import MAC2, TAC, FakeClock, spec_record

REPO = Path(__file__).resolve().parents[2]


def raw(path: Path, query: str) -> list[tuple]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(query).fetchall()
    finally:
        conn.close()


def test_the_stored_row_exactly(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    with SqliteJournal(path, clock=FakeClock()) as journal:
        row = journal.record_intent(spec_record())
        journal.complete(row, TAC, MAC2, True)
        journal.void(journal.record_intent(spec_record(offline_atc=0x37, tsn=0x58, fare_note="")), "no proof")
    assert raw(path, "SELECT * FROM debit ORDER BY id") == [
        (1, "03104991585000011383", "02403640FFFFFFFF", 1, 0x36, 200, 5000, 9, "200041599997", 0x57,
         "2018-03-13T16:43:29", 1, 0, "2B1D974F", "flat", "complete", "F252E12F", "CAEC0601", 1, "",
         "2018-03-13T16:43:30", "debit", "cpu", None),
        (2, "03104991585000011383", "02403640FFFFFFFF", 1, 0x37, 200, 5000, 9, "200041599997", 0x58,
         "2018-03-13T16:43:29", 1, 0, "2B1D974F", "", "void", None, None, None, "no proof", "2018-03-13T16:43:31",
         "debit", "cpu", None),
    ]


def test_identity_pragmas_and_durable_settings(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    journal = SqliteJournal(path)
    assert journal._conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert journal._conn.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
    journal.close()
    assert raw(path, "PRAGMA application_id") == [(APPLICATION_ID,)]
    assert raw(path, "PRAGMA user_version") == [(SCHEMA_VERSION,)] == [(3,)]


def test_group_commit_keeps_fsync_and_widens_cache_and_checkpoints(tmp_path: Path) -> None:
    journal = SqliteJournal(tmp_path / "j.db", group_commit=1000)
    assert journal._conn.execute("PRAGMA synchronous").fetchone() == (2,)  # a committed batch is on disk
    assert journal._conn.execute("PRAGMA cache_size").fetchone() == (-65536,)
    assert journal._conn.execute("PRAGMA wal_autocheckpoint").fetchone() == (20000,)
    journal.close()
    durable = SqliteJournal(tmp_path / "j.db")
    assert durable._conn.execute("PRAGMA wal_autocheckpoint").fetchone() == (1000,)
    durable.close()


def test_durable_calls_are_committed_when_they_return(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    journal = SqliteJournal(path)
    row = journal.record_intent(spec_record())
    assert raw(path, "SELECT id, state FROM debit") == [(row, "pending")]  # another connection sees it at once
    journal.complete(row, TAC, MAC2, False)
    assert raw(path, "SELECT state, mac2_verified FROM debit") == [("complete", 0)]
    assert journal.acknowledged == 1
    journal.close()


def test_pending_rows_survive_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    with SqliteJournal(path) as journal:
        first = journal.record_intent(spec_record())
        journal.complete(journal.record_intent(spec_record(offline_atc=0x37, tsn=0x58)), TAC, MAC2, True)
    with SqliteJournal(path) as journal:
        assert [(e.row_id, e.record) for e in journal.pending()] == [(first, spec_record())]
        journal.complete(first, TAC, MAC2, True)
        assert journal.record_intent(spec_record(offline_atc=0x38, tsn=0x59)) == 3


_CHILD = textwrap.dedent("""
    import sys, time
    from tests.terminal.test_journal import spec_record, TAC, MAC2
    from terminal.journal import SqliteJournal
    group = int(sys.argv[2]) or None
    journal = SqliteJournal(sys.argv[1], group_commit=group)
    for i in range(int(sys.argv[3])):
        row = journal.record_intent(spec_record(offline_atc=i, tsn=i))
        if i % 2 == 0:
            journal.complete(row, TAC, MAC2, True)
        print(row, journal.acknowledged, flush=True)
    time.sleep(60)  # killed here, never closing the journal
""")


def _run_and_kill(path: Path, group: int, count: int) -> list[tuple[int, int]]:
    """Start a writer, read what it reports after each debit, SIGKILL it; returns (row id, acknowledged) lines."""
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(path), str(group), str(count)], cwd=REPO,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        lines = [tuple(map(int, child.stdout.readline().split())) for _ in range(count)]
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    return lines  # type: ignore[return-value]


def test_durable_rows_survive_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    lines = _run_and_kill(path, 0, 5)
    assert lines == [(1, 1), (2, 1), (3, 2), (4, 2), (5, 3)]
    with SqliteJournal(path) as journal:
        entries = {e.row_id: e.record for e in journal.entries()}
        assert sorted(entries) == [1, 2, 3, 4, 5]
        assert [e.row_id for e in journal.pending()] == [2, 4]
        assert entries[1] == spec_record(offline_atc=0, tsn=0, state=DebitState.COMPLETE, tac=TAC, mac2=MAC2,
                                         mac2_verified=True, evidence=Evidence.DEBIT)
        assert entries[2] == spec_record(offline_atc=1, tsn=1)


def test_group_commit_crash_loses_only_the_unacknowledged_batch(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    lines = _run_and_kill(path, 3, 7)
    # the batch of rows 1-3 was committed when row 4's intent arrived, rows 4-6 when row 7's did
    assert lines == [(1, 0), (2, 0), (3, 0), (4, 2), (5, 2), (6, 2), (7, 3)]
    with SqliteJournal(path) as journal:
        assert [(e.row_id, e.record.state.value) for e in journal.entries()] == [
            (1, "complete"), (2, "pending"), (3, "complete"), (4, "pending"), (5, "complete"), (6, "pending")]
        assert sum(e.record.state is DebitState.COMPLETE for e in journal.entries()) == lines[-1][1]


def test_group_commit_writes_nothing_until_the_batch_is_full_or_flushed(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    journal = SqliteJournal(path, group_commit=2, clock=FakeClock())
    rows = [journal.record_intent(spec_record(offline_atc=i, tsn=i)) for i in range(2)]
    for row in rows:
        journal.complete(row, TAC, MAC2, True)
    assert journal.acknowledged == 0
    assert raw(path, "SELECT count(*) FROM debit") == [(0,)]
    assert [e.record.state for e in journal.entries()] == [DebitState.COMPLETE] * 2  # readable before the commit
    third = journal.record_intent(spec_record(offline_atc=2, tsn=2))  # the third intent commits the first two
    assert journal.acknowledged == 2
    assert raw(path, "SELECT id, state FROM debit") == [(1, "complete"), (2, "complete")]
    journal.complete(third, TAC, MAC2, True)
    assert journal.flush() == 1
    assert journal.acknowledged == 3
    assert journal.flush() == 0
    journal.close()


def test_group_commit_changes_rows_of_earlier_batches(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    journal = SqliteJournal(path, group_commit=5)
    row = journal.record_intent(spec_record())
    journal.flush()
    journal.complete(row, TAC, MAC2, True)
    assert raw(path, "SELECT state FROM debit") == [("pending",)]
    assert journal.flush() == 1
    assert raw(path, "SELECT state FROM debit") == [("complete",)]
    journal.close()


def test_group_commit_drops_duplicates_of_disk_rows_and_reports_them(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    journal = SqliteJournal(path, group_commit=10)
    journal.complete(journal.record_intent(spec_record()), TAC, MAC2, True)
    journal.flush()
    journal.record_intent(spec_record(offline_atc=0x40, tsn=0x40))
    with pytest.raises(DuplicateDebit):  # a duplicate within the batch is refused at once
        journal.record_intent(spec_record(offline_atc=0x40, tsn=0x41))
    dup = journal.record_intent(spec_record(tsn=0x99))  # same card and ATC as row 1, on disk: not seen yet
    journal.complete(dup, TAC, MAC2, True)
    with pytest.raises(DuplicateDebit) as err:
        journal.flush()
    assert err.value.rejected == (dup,)
    assert journal.acknowledged == 1
    assert raw(path, "SELECT id, offline_atc FROM debit ORDER BY id") == [(1, 0x36), (2, 0x40)]
    with pytest.raises(UnknownRow):
        journal.void(dup, "gone")
    assert journal.record_intent(spec_record(offline_atc=0x41, tsn=0x42)) == dup + 1  # ids are not reused
    journal.close()


def test_group_commit_reports_drops_of_automatic_commits_at_the_next_flush(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    journal = SqliteJournal(path, group_commit=1)
    journal.record_intent(spec_record())
    journal.record_intent(spec_record(offline_atc=1, tsn=1))  # commits row 1
    journal.record_intent(spec_record(tsn=2))  # commits row 2; row 3 duplicates row 1 on disk
    journal.record_intent(spec_record(offline_atc=3, tsn=3))  # commits: row 3 dropped, nothing raised
    with pytest.raises(DuplicateDebit) as err:
        journal.close()
    assert err.value.rejected == (3,)
    assert raw(path, "SELECT id FROM debit ORDER BY id") == [(1,), (2,), (4,)]


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_group_commit_size_must_be_positive(tmp_path: Path, bad: object) -> None:
    with pytest.raises(JournalError, match="group_commit must be a positive integer"):
        SqliteJournal(tmp_path / "j.db", group_commit=bad)  # type: ignore[arg-type]


# -- files that are not a journal -------------------------------------------------------------------------------------

def _assert_refused_untouched(path: Path, match: str) -> None:
    before = path.read_bytes()
    with pytest.raises(JournalStorageError, match=match) as err:
        SqliteJournal(path)
    assert str(path) in str(err.value)
    assert path.read_bytes() == before
    assert not Path(f"{path}-wal").exists()


def test_not_sqlite_at_all(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"these are not the pages you are looking for\n" * 100)
    _assert_refused_untouched(path, "corrupt or not a SQLite database")


def test_another_applications_database(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE debit (id INTEGER PRIMARY KEY)")
    conn.commit()
    conn.close()
    _assert_refused_untouched(path, r"not a yikatong journal \(SQLite application_id 0x0, expected 0x594b544a\)")


def test_unknown_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    SqliteJournal(path).close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 4")
    conn.close()
    _assert_refused_untouched(path, "journal schema version 4 is unknown \\(this software reads versions 1, 2, 3\\)")


def test_corrupt_pages_are_a_typed_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    with SqliteJournal(path) as journal:
        for i in range(200):
            journal.record_intent(spec_record(offline_atc=i, tsn=i))
    page = raw(path, "PRAGMA page_size")[0][0]
    data = bytearray(path.read_bytes())
    data[page:] = b"\xA5" * (len(data) - page)  # every page but the header page
    path.write_bytes(bytes(data))
    with pytest.raises(JournalStorageError, match="corrupt") as err:
        journal = SqliteJournal(path)
        list(journal.entries())
    assert str(path) in str(err.value)


def test_readonly_reads_beside_a_writer_and_refuses_writes(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    writer = SqliteJournal(path, group_commit=100)
    writer.record_intent(spec_record())
    writer.flush()
    writer.record_intent(spec_record(offline_atc=1, tsn=1))  # an open batch holds the write lock
    reader = SqliteJournal(path, readonly=True)
    assert [e.row_id for e in reader.entries()] == [1]
    with pytest.raises(JournalStorageError, match="readonly"):
        reader.record_intent(spec_record(offline_atc=2, tsn=2))
    reader.close()
    writer.close()


def test_readonly_needs_an_existing_journal(tmp_path: Path) -> None:
    with pytest.raises(JournalStorageError, match="cannot open") as err:
        SqliteJournal(tmp_path / "missing.db", readonly=True)
    assert "missing.db" in str(err.value)
    empty = tmp_path / "empty.db"
    empty.touch()
    with pytest.raises(JournalStorageError, match="empty file, not a yikatong journal"):
        SqliteJournal(empty, readonly=True)


def test_a_closed_journal_raises_typed_errors(tmp_path: Path) -> None:
    journal = SqliteJournal(tmp_path / "j.db")
    journal.close()
    journal.close()
    with pytest.raises(JournalStorageError):
        journal.record_intent(spec_record())
    with pytest.raises(JournalStorageError):
        journal.pending()


def test_unwritable_location(tmp_path: Path) -> None:
    with pytest.raises(JournalStorageError, match="cannot open the journal") as err:
        SqliteJournal(tmp_path / "no-such-dir" / "j.db")
    assert "no-such-dir" in str(err.value)


def test_find_pending_uses_the_open_index(tmp_path: Path) -> None:
    journal = SqliteJournal(tmp_path / "j.db")
    query = ("EXPLAIN QUERY PLAN SELECT * FROM debit WHERE state IN ('pending', 'unconfirmed') "
             "AND state IN ('pending') AND card_serial = ? ORDER BY id")
    plan = " ".join(str(r) for r in journal._conn.execute(query, ("00",)).fetchall())
    assert "debit_open" in plan
    journal.close()


def test_os_fspath_is_kept(tmp_path: Path) -> None:
    journal = SqliteJournal(tmp_path / "j.db")
    assert journal.path == os.fspath(tmp_path / "j.db")
    journal.close()
