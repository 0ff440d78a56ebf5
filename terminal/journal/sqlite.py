"""The validator's journal in SQLite, the embedded default.

Durability. The database runs in WAL mode with ``synchronous=FULL``. By default every call that writes commits
before it returns, so a debit's intent is on disk before DEBIT goes to the card, and a completion is on disk before the
validator shows "paid". That costs one fsync per call (milliseconds on flash).

Group commit (``group_commit=N``, for benchmarks). Writes go into a batch held in memory under the same rules, and the
batch is committed in one transaction when the (N+1)-th intent arrives, on :meth:`SqliteJournal.flush` and on
:meth:`SqliteJournal.close`. A change counts as acknowledged only once its batch is committed
(:attr:`~terminal.journal.base.Journal.acknowledged`, the return of ``flush``). What a crash (process killed, power
lost) loses in this mode: the whole open batch, i.e. up to N debits whose intents and completions were never
acknowledged, including debits the cards did commit. That breaks "money is conserved" for those N debits, which is
why it is a benchmark mode and never a validator's. Row ids handed out for a batch are provisional until it is
committed. A duplicate within the batch is refused at once, as in the default mode; a duplicate of a row already on
disk is found only when the batch is written, judged by the row's state then (a row voided before its batch is
written no longer holds its card counter): the rest of the batch is committed, the duplicate is dropped, and the next
explicit :meth:`~SqliteJournal.flush` (or :meth:`~SqliteJournal.close`) raises
:class:`~terminal.journal.base.DuplicateDebit` naming every row dropped since the last one. While a batch is open this
journal holds SQLite's write lock; readers (export, verification) are not blocked, other writers wait.

Identity. A journal file carries ``application_id`` ``0x594B544A`` ("YKTJ") and ``user_version`` (the schema version,
:data:`SCHEMA_VERSION`). A file that is not SQLite, is another application's database, has another schema version,
or is corrupt raises :class:`~terminal.journal.errors.JournalStorageError` naming the file; the file is left
untouched. Version 2 added each row's ``evidence`` and the ``event`` table, version 3 each row's card ``technology``
(``cpu`` or ``m1``) and ``card_uid`` (an M1 card's UID): an older journal is upgraded in place (one transaction) when
it is opened for writing, and read as it is (its rows as CPU rows) when opened read-only.

Rows: see :data:`terminal.journal.rows.COLUMNS`. Byte strings are stored as upper-case hex text, date-times as ISO
8601 text: ``txn_time`` is the card's local date-time as sent to it (also when the intent was written),
``changed_at`` the journal clock's local time of the last state change. Keys never appear in a row.

Damage. Text that is not UTF-8 is read as it is (each bad byte kept as a lone surrogate) so that the row's decoding,
not sqlite3, names it; a row whose fields are not what the journal writes is a
:class:`~terminal.journal.errors.DamagedRow` (or, under the ``quarantine`` policy, set aside). When a page of the
table cannot be read, a full read (export, verification) goes on row by row under ``quarantine``: every row id the
journal's (terminal, TSN) index names that cannot be read is set aside as unreadable; under ``stop`` the read ends
in a :class:`~terminal.journal.errors.JournalStorageError` naming the last row read.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from terminal.clock import Clock
from terminal.records import DebitState
from terminal.sqlitedb import inserted_id

from .base import SOURCES, Journal, refuse_change
from .errors import DamagedRow, DuplicateDebit, JournalError, JournalStorageError
from .memory import RowStore
from .rows import COLUMNS, EVENT_COLUMNS, OPEN_STATES, STATE

APPLICATION_ID = 0x594B544A  # "YKTJ"
SCHEMA_VERSION = 3
_READABLE_VERSIONS = (1, 2, 3)
_ERRORS = (sqlite3.Error, UnicodeDecodeError)
"""What sqlite3 raises: its own errors, and UnicodeDecodeError when a message it builds quotes damaged schema text."""

_EVENTS = """
CREATE TABLE event (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    kind TEXT NOT NULL,  -- duplicate_card, counter_backwards, exchange_card, damaged_row, psam_serial_repeat
    card_serial TEXT,
    row_ref INTEGER,
    detail TEXT NOT NULL
)
"""
_SCHEMA = """
CREATE TABLE debit (
    -- evidence: debit, prove, log, counter, unprovable, or empty while not settled
    -- technology: cpu or m1, card_uid: an M1 card's UID (NULL for a CPU card)
    id INTEGER PRIMARY KEY,
    card_serial TEXT NOT NULL,
    issuer_id TEXT NOT NULL,
    card_type INTEGER NOT NULL,
    offline_atc INTEGER NOT NULL,
    amount INTEGER NOT NULL,
    balance_before INTEGER NOT NULL,
    trans_type INTEGER NOT NULL,
    terminal_id TEXT NOT NULL,
    tsn INTEGER NOT NULL,
    txn_time TEXT NOT NULL,
    key_version INTEGER NOT NULL,
    algorithm INTEGER NOT NULL,
    mac1 TEXT NOT NULL,
    fare_note TEXT NOT NULL,
    state TEXT NOT NULL,  -- pending, complete, void, unconfirmed (checked by the journal, a CHECK costs ~30%)
    tac TEXT,
    mac2 TEXT,
    mac2_verified INTEGER,
    reason TEXT NOT NULL,
    changed_at TEXT,
    evidence TEXT NOT NULL DEFAULT '',
    technology TEXT NOT NULL DEFAULT 'cpu',
    card_uid TEXT
);
-- no debit is journaled twice: a card's counter value once (a void row frees it for the retry), a PSAM serial once
CREATE UNIQUE INDEX debit_card_atc ON debit (card_serial, offline_atc) WHERE state != 'void';
CREATE UNIQUE INDEX debit_terminal_tsn ON debit (terminal_id, tsn);
CREATE INDEX debit_open ON debit (card_serial) WHERE state IN ('pending', 'unconfirmed');
""" + _EVENTS
_UPGRADES = {
    1: ("ALTER TABLE debit ADD COLUMN evidence TEXT NOT NULL DEFAULT ''", _EVENTS),
    2: ("ALTER TABLE debit ADD COLUMN technology TEXT NOT NULL DEFAULT 'cpu'",
        "ALTER TABLE debit ADD COLUMN card_uid TEXT"),
}
"""What brings a journal of each version to the next."""
# Group commit writes thousands of rows per transaction. Each lands at a random place in the (card serial, ATC) index,
# so a batch dirties about one index page per row once the index outgrows the page cache, and every commit then
# copies those pages to the WAL and, at each checkpoint, back into the database. A larger cache and rarer checkpoints
# (a WAL of up to ~80 MB) halve the cost per row in a journal of a million rows.
_BULK_PRAGMAS = ("PRAGMA cache_size = -65536", "PRAGMA wal_autocheckpoint = 20000")
_OPEN_TERM = "state IN ('pending', 'unconfirmed')"  # the debit_open index's condition, verbatim, so the planner uses it

_INSERT = f"INSERT INTO debit ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
_UPDATE = ("UPDATE debit SET state = ?, tac = ?, mac2 = ?, mac2_verified = ?, reason = ?, evidence = ?, changed_at = ? "
           "WHERE id = ? AND state IN (?, ?)")
_ADDED = {"evidence": (2, "''"), "technology": (3, "'cpu'"), "card_uid": (3, "NULL")}
"""Columns added after version 1: the version that added each, and what an older journal's rows read as."""
_SELECTS = {version: "SELECT " + ", ".join(f"{_ADDED[c][1]} AS {c}" if c in _ADDED and _ADDED[c][0] > version else c
                                           for c in COLUMNS) + " FROM debit"
            for version in _READABLE_VERSIONS}
"""A row's select by schema version: an older journal's rows read a column it lacks as its default."""
_INSERT_EVENT = f"INSERT INTO event ({', '.join(EVENT_COLUMNS)}) VALUES ({', '.join('?' * len(EVENT_COLUMNS))})"
_SELECT_EVENTS = f"SELECT {', '.join(EVENT_COLUMNS)} FROM event ORDER BY id"


def _text(raw: bytes) -> str:
    """Stored text as it is: bytes that are not UTF-8 become lone surrogates, which the row's decoding names."""
    return raw.decode("utf-8", "surrogateescape")


class SqliteJournal(Journal):
    """A journal in one SQLite file, created on first open. See the module docstring for durability and group commit.

    ``readonly=True`` opens an existing journal for reading only (export, verification), beside a running validator.
    ``damaged``: what reading a damaged row does (:data:`~terminal.journal.base.DAMAGE_POLICIES`).
    """

    def __init__(self, path: str | os.PathLike[str], *, group_commit: int | None = None, clock: Clock | None = None,
                 readonly: bool = False, damaged: str = "stop") -> None:
        super().__init__(clock, damaged=damaged)
        if group_commit is not None and (type(group_commit) is not int or group_commit < 1):
            raise JournalError(f"group_commit must be a positive integer, got {group_commit!r}")
        self.path = os.fspath(path)
        self.group_commit = group_commit
        self.version = SCHEMA_VERSION
        self._batch: RowStore | None = None
        self._batch_intents = 0
        self._batch_completions = 0
        self._next_id = 1
        self._rejected: list[int] = []
        self._conn = self._connect(readonly)
        self._cur = self._conn.cursor()

    # -- opening --------------------------------------------------------------------------------------------------

    def _connect(self, readonly: bool) -> sqlite3.Connection:
        conn = None
        try:
            if readonly:
                conn = sqlite3.connect(f"{Path(self.path).absolute().as_uri()}?mode=ro", uri=True,
                                       isolation_level=None)
            else:
                conn = sqlite3.connect(self.path, isolation_level=None)
            conn.text_factory = _text
            if self._is_empty(conn):
                if readonly:
                    raise JournalStorageError(f"{self.path}: empty file, not a yikatong journal")
                self._create(conn)
            self.version = self._check_identity(conn)
            if not readonly:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = FULL")
                if self.version != SCHEMA_VERSION:
                    self._upgrade(conn)
                if self.group_commit is not None:
                    for pragma in _BULK_PRAGMAS:
                        conn.execute(pragma)
            return conn
        except _ERRORS as exc:
            if conn is not None:
                conn.close()
            raise self._failed("cannot open the journal", exc) from None
        except JournalError:
            if conn is not None:
                conn.close()
            raise

    @staticmethod
    def _is_empty(conn: sqlite3.Connection) -> bool:
        return conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0 and \
            conn.execute("PRAGMA application_id").fetchone()[0] == 0

    def _create(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            if self._is_empty(conn):  # still empty now that we hold the write lock
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _upgrade(self, conn: sqlite3.Connection) -> None:
        """Bring an older journal to this version in one transaction (:data:`_UPGRADES`, one version after another)."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]  # as it is now that we hold the write lock
            if version != SCHEMA_VERSION:
                for step in range(version, SCHEMA_VERSION):
                    for statement in _UPGRADES[step]:
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        self.version = SCHEMA_VERSION

    def _check_identity(self, conn: sqlite3.Connection) -> int:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        if app_id != APPLICATION_ID:
            raise JournalStorageError(f"{self.path}: not a yikatong journal (SQLite application_id {app_id:#x}, "
                                      f"expected {APPLICATION_ID:#x})")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version not in _READABLE_VERSIONS:
            raise JournalStorageError(f"{self.path}: journal schema version {version} is unknown "
                                      f"(this software reads versions {', '.join(map(str, _READABLE_VERSIONS))})")
        return int(version)

    def _failed(self, what: str, exc: BaseException) -> JournalStorageError:
        reason = str(exc)
        if isinstance(exc, UnicodeDecodeError):
            reason = f"corrupt database: text that is not UTF-8 in the schema ({reason})"
        elif isinstance(exc, sqlite3.DatabaseError) and ("not a database" in reason or "malformed" in reason):
            reason = f"corrupt or not a SQLite database ({reason})"
        return JournalStorageError(f"{self.path}: {what}: {reason}")

    # -- writing --------------------------------------------------------------------------------------------------

    def _insert(self, row: list[Any]) -> int:
        if self.group_commit is None:
            try:
                self._cur.execute(_INSERT, row)
            except sqlite3.IntegrityError as exc:
                raise self._duplicate(row, exc) from None
            except _ERRORS as exc:
                raise self._failed("record_intent", exc) from None
            return inserted_id(self._cur, JournalStorageError)
        if self._batch_intents >= self.group_commit:
            self._commit_batch()
        batch = self._batch if self._batch is not None else self._open_batch()
        row_id = self._next_id
        batch.add(row_id, row)
        self._next_id = row_id + 1
        self._batch_intents += 1
        return row_id

    def _change(self, row_id: int, target: DebitState, values: list[Any],
                sources: tuple[str, ...] | None = None) -> None:
        stamp = self._stamp()
        if self.group_commit is not None:
            batch = self._batch if self._batch is not None else self._open_batch()
            if batch.change(row_id, target, values, stamp, sources):
                if target is DebitState.COMPLETE:
                    self._batch_completions += 1
                return
        sources = SOURCES[target] if sources is None else sources
        try:
            self._cur.execute(_UPDATE, (*values, stamp, row_id, sources[0], sources[-1]))
            if self._cur.rowcount == 0:
                found = self._cur.execute("SELECT state FROM debit WHERE id = ?", (row_id,)).fetchone()
                refuse_change(row_id, None if found is None else found[0], target)
        except _ERRORS as exc:
            raise self._failed(f"{target.value} row {row_id}", exc) from None
        if target is DebitState.COMPLETE:
            if self.group_commit is None:
                self.acknowledged += 1
            else:
                self._batch_completions += 1

    def _duplicate(self, row: list[Any], exc: sqlite3.IntegrityError) -> JournalError:
        """The error for an INSERT the uniqueness rules refused, naming the row already there."""
        try:
            found = self._cur.execute("SELECT id FROM debit WHERE card_serial = ? AND offline_atc = ? "
                                      "AND state != 'void'", (row[1], row[4])).fetchone()
            if found is not None:
                return DuplicateDebit(f"card {row[1]} ATC {row[4]} is already journaled as row {found[0]}",
                                      key="card", existing=found[0])
            found = self._cur.execute("SELECT id FROM debit WHERE terminal_id = ? AND tsn = ?",
                                      (row[8], row[9])).fetchone()
        except _ERRORS as lookup:
            return self._failed("record_intent", lookup)
        if found is not None:
            return DuplicateDebit(f"terminal {row[8]} TSN {row[9]} is already journaled as row {found[0]}",
                                  key="terminal", existing=found[0])
        return self._failed("record_intent", exc)

    def _insert_event(self, row: list[Any]) -> int:
        try:
            self._cur.execute(_INSERT_EVENT, row)
        except _ERRORS as exc:
            raise self._failed("record_event", exc) from None
        return inserted_id(self._cur, JournalStorageError)

    def _open_batch(self) -> RowStore:
        """The open batch, starting one (and taking the write lock) if there is none."""
        batch = self._batch
        if batch is None:
            try:
                self._cur.execute("BEGIN IMMEDIATE")
                on_disk = self._cur.execute("SELECT coalesce(max(id), 0) + 1 FROM debit").fetchone()[0]
            except _ERRORS as exc:
                self._rollback()
                raise self._failed("cannot start a batch", exc) from None
            self._next_id = max(self._next_id, on_disk)  # ids of dropped duplicates are not handed out again
            batch = self._batch = RowStore(freeze=False)
            self._batch_intents = 0
            self._batch_completions = 0
        return batch

    def flush(self) -> int:
        """Commit the open batch (group commit); returns how many completions that made durable.

        Raises :class:`~terminal.journal.errors.DuplicateDebit` (``rejected``: the row ids) when this or an earlier
        automatic commit dropped rows that duplicate rows already on disk.
        """
        done = self._commit_batch()
        if self._rejected:
            ids, self._rejected = tuple(self._rejected), []
            raise DuplicateDebit(f"rows {', '.join(map(str, ids))} were not journaled: each duplicates a row already "
                                 "on disk (same card serial and ATC, or same terminal and TSN)", rejected=ids)
        return done

    def _commit_batch(self) -> int:
        batch = self._batch
        if batch is None:
            return 0
        self._batch = None
        rejected: list[list[Any] | tuple[Any, ...]] = []
        try:
            self._cur.execute("SAVEPOINT batch")
            try:
                self._cur.executemany(_INSERT, batch.rows.values())
            except sqlite3.IntegrityError:  # a row duplicates one on disk: find which, write the rest
                self._cur.execute("ROLLBACK TO batch")
                for row in batch.rows.values():
                    try:
                        self._cur.execute(_INSERT, row)
                    except sqlite3.IntegrityError:
                        rejected.append(row)
            self._cur.execute("RELEASE batch")
            self._cur.execute("COMMIT")
        except _ERRORS as exc:
            self._rollback()
            raise self._failed(f"batch of {len(batch)} rows not written", exc) from None
        done = self._batch_completions - sum(row[STATE] == "complete" for row in rejected)
        self.acknowledged += done
        self._rejected.extend(row[0] for row in rejected)
        return done

    def _rollback(self) -> None:
        if self._conn.in_transaction:
            try:
                self._conn.execute("ROLLBACK")
            except _ERRORS:
                pass  # the connection is failing already; the caller reports the first error

    def close(self) -> None:
        """Commit the open batch, then close the file. Closing twice is harmless; any later call raises
        :class:`~terminal.journal.errors.JournalStorageError`."""
        try:
            self.flush()
        finally:
            self._conn.close()

    # -- reading --------------------------------------------------------------------------------------------------

    def _rows(self, *, states: tuple[str, ...] | None = None, card: str | None = None,
              row_id: int | None = None) -> Iterator[Any]:
        terms: list[str] = []
        params: list[Any] = []
        if states is not None:
            if set(states) <= set(OPEN_STATES):
                terms.append(_OPEN_TERM)
            # the states are DebitState values checked by the caller, so they are safe to inline
            terms.append(f"state IN ({', '.join(repr(s) for s in states)})")
        if card is not None:
            terms.append("card_serial = ?")
            params.append(card)
        if row_id is not None:
            terms.append("id = ?")
            params.append(row_id)
        select = _SELECTS[self.version]
        query = f"{select}{' WHERE ' if terms else ''}{' AND '.join(terms)} ORDER BY id"
        batch = [] if self._batch is None else self._batch.select(states=states, card=card, row_id=row_id)
        last = 0
        try:
            for row in self._conn.execute(query, params):
                last = row[0]
                yield row
        except _ERRORS as exc:
            if self.damaged == "stop" or card is not None or row_id is not None:
                raise self._failed(f"read stopped after row {last}" if last else "read", exc) from None
            yield from self._rows_one_by_one(select, last, states, exc)
        yield from batch

    def _rows_one_by_one(self, select: str, last: int, states: tuple[str, ...] | None,
                         failure: BaseException) -> Iterator[Any]:
        """The rest of a full read that hit an unreadable page, row by row: each id the (terminal, TSN) index names
        is read alone, and one that cannot be read is set aside as unreadable."""
        try:
            ids = [r[0] for r in self._conn.execute(
                "SELECT id FROM debit INDEXED BY debit_terminal_tsn WHERE id > ? ORDER BY id", (last,))]
        except _ERRORS as exc:
            raise self._failed(f"read stopped after row {last} ({failure}), and the index cannot list the rest",
                               exc) from None
        single = f"{select} WHERE id = ?"
        for row_id in ids:
            try:
                found = self._conn.execute(single, (row_id,)).fetchone()
            except _ERRORS as exc:
                found, why = None, str(exc)
            else:
                why = "the index names it but the table does not hold it"
            if found is None:
                self.set_aside(DamagedRow(row_id, "row", f"unreadable ({why}): a damaged page"))
            elif states is None or found[STATE] in states:
                yield found

    def _highest_tsn(self, terminal: str) -> int | None:
        try:
            found = self._conn.execute("SELECT max(tsn) FROM debit WHERE terminal_id = ? AND typeof(tsn) = 'integer'",
                                       (terminal,)).fetchone()[0]
        except _ERRORS as exc:
            raise self._failed("read the highest TSN", exc) from None
        batch = None if self._batch is None else self._batch.highest_tsn(terminal)
        return max((t for t in (found, batch) if t is not None), default=None)

    def _event_rows(self) -> Iterator[Any]:
        if self.version < 2:
            return
        try:
            yield from self._conn.execute(_SELECT_EVENTS)
        except _ERRORS as exc:
            raise self._failed("read the events", exc) from None
