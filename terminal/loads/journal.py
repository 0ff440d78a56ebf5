"""The load terminal's journal: every load it asks for, durable before each step that depends on it.

A load's row goes through these states (docs/load-host.md, "The load terminal's journal")::

    requested --(host answered MAC2)--> authorized --(card answered the TAC)--> credited --> confirmed | flagged
        |                                   |
        +--> void (refused, host           +--> void (the card proved it was not credited)
             unreachable, interrupted)     +--> unconfirmed (the card's counter moved without a proof)

``requested`` is written before the host is asked, ``authorized`` before CREDIT FOR LOAD goes to the card, ``credited``
as soon as the card's TAC is in hand (before the host is told), so a crash or a tear at any point leaves a row that
says what is owed: an ``authorized`` row waits for its card (GET TRANSACTION PROVE at its next tap), a ``credited``
row for the host (the TAC is sent again), a ``requested`` row left by a crash never reached the card (CREDIT is sent
only once ``authorized`` is on disk) and is voided at the next start.

The file is SQLite (WAL, ``synchronous=FULL``, one commit per change: the purchase journal's durability) with its own
identity: ``application_id`` ``0x594B544C`` ("YKTL"), ``user_version`` :data:`SCHEMA_VERSION`. Byte strings are
upper-case hex text, date-times ISO 8601 text. Keys never appear in a row.
"""

from __future__ import annotations

import datetime as dt
import enum
import os
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from protocols.errors import YktError
from protocols.hexutil import to_hex
from terminal.clock import Clock, SystemClock
from terminal.sqlitedb import FileKind, SqliteFile, failure, inserted_id, write_transaction

APPLICATION_ID = 0x594B544C  # "YKTL"
SCHEMA_VERSION = 1


class LoadJournalError(YktError):
    """The load journal refused a change, or could not be read or written (the message names the file or the row)."""


class DuplicateLoad(LoadJournalError):
    """A new load for a card counter the journal already holds in a live row: the card is a copy of a card, or a card
    image restored from a copy (or its answer was not what the card said)."""


class LoadState(str, enum.Enum):
    REQUESTED = "requested"  # written before the host is asked; CREDIT not sent
    AUTHORIZED = "authorized"  # the host's MAC2 is in hand; CREDIT may have reached the card
    CREDITED = "credited"  # the card answered the TAC; the host is not told yet
    CONFIRMED = "confirmed"  # the host verified the TAC
    FLAGGED = "flagged"  # the host refused the TAC: the card was credited, the host investigates
    VOID = "void"  # the card was not credited
    UNCONFIRMED = "unconfirmed"  # the card's online counter moved past the load without proving it


SOURCES: dict[LoadState, tuple[LoadState, ...]] = {
    LoadState.AUTHORIZED: (LoadState.REQUESTED,),
    LoadState.CREDITED: (LoadState.AUTHORIZED,),
    LoadState.CONFIRMED: (LoadState.CREDITED,),
    LoadState.FLAGGED: (LoadState.CREDITED,),
    LoadState.VOID: (LoadState.REQUESTED, LoadState.AUTHORIZED),
    LoadState.UNCONFIRMED: (LoadState.AUTHORIZED,),
}
"""The states each change may start from."""

CARD_CREDITED = (LoadState.CREDITED, LoadState.CONFIRMED, LoadState.FLAGGED)
"""The states of a load whose card was credited (its TAC is in the row)."""


@dataclass(slots=True)
class LoadRecord:
    """One load as the terminal journals it. ``online_atc`` is the counter INITIALIZE FOR LOAD answered (the card's
    counter before the load); ``load_id`` and ``mac2`` come from the host, ``tac`` from the card."""

    request_id: str
    card_serial: bytes
    issuer_id: bytes
    online_atc: int
    amount: int
    balance_before: int
    trans_type: int
    terminal_id: bytes
    when: dt.datetime
    key_version: int
    algorithm: int
    random: bytes
    mac1: bytes
    state: LoadState = LoadState.REQUESTED
    load_id: int | None = None
    mac2: bytes | None = None
    tac: bytes | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class LoadEntry:
    row_id: int
    record: LoadRecord
    changed_at: dt.datetime | None


COLUMNS = ("id", "request_id", "card_serial", "issuer_id", "online_atc", "amount", "balance_before", "trans_type",
           "terminal_id", "txn_time", "key_version", "algorithm", "random", "mac1", "state", "load_id", "mac2", "tac",
           "reason", "changed_at")

_SCHEMA = """
CREATE TABLE load (
    id INTEGER PRIMARY KEY,
    request_id TEXT NOT NULL UNIQUE,
    card_serial TEXT NOT NULL,
    issuer_id TEXT NOT NULL,
    online_atc INTEGER NOT NULL,
    amount INTEGER NOT NULL,
    balance_before INTEGER NOT NULL,
    trans_type INTEGER NOT NULL,
    terminal_id TEXT NOT NULL,
    txn_time TEXT NOT NULL,
    key_version INTEGER NOT NULL,
    algorithm INTEGER NOT NULL,
    random TEXT NOT NULL,
    mac1 TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN
        ('requested', 'authorized', 'credited', 'confirmed', 'flagged', 'void', 'unconfirmed')),
    load_id INTEGER,
    mac2 TEXT,
    tac TEXT,
    reason TEXT NOT NULL,
    changed_at TEXT NOT NULL
);
-- a card's online counter is loaded once (a void row frees it for the retry), one load of a card waits at a time
CREATE UNIQUE INDEX load_card_atc ON load (card_serial, trans_type, online_atc) WHERE state != 'void';
CREATE UNIQUE INDEX load_waiting ON load (card_serial) WHERE state = 'authorized';
CREATE INDEX load_open ON load (state) WHERE state IN ('requested', 'authorized', 'credited')
"""

KIND = FileKind("load journal", APPLICATION_ID, SCHEMA_VERSION, _SCHEMA, LoadJournalError)

_SELECT = f"SELECT {', '.join(COLUMNS)} FROM load"


class LoadJournal(SqliteFile):
    """The load terminal's journal in one SQLite file, created on first open; every change is committed before the
    call returns. ``readonly=True`` opens an existing journal for reading beside a running terminal."""

    KIND = KIND

    def __init__(self, path: str | os.PathLike[str], *, clock: Clock | None = None, readonly: bool = False) -> None:
        super().__init__(path, readonly=readonly)
        self.clock = clock or SystemClock()

    # -- writing ------------------------------------------------------------------------------------------------------

    def record_request(self, record: LoadRecord) -> int:
        """Journal a load about to be asked for (state ``requested``); returns its row id."""
        if record.state is not LoadState.REQUESTED:
            raise LoadJournalError(f"a new load is journaled as requested, not {record.state.value}")
        row = (record.request_id, to_hex(record.card_serial), to_hex(record.issuer_id), record.online_atc,
               record.amount, record.balance_before, record.trans_type, to_hex(record.terminal_id),
               record.when.isoformat(), record.key_version, record.algorithm, to_hex(record.random),
               to_hex(record.mac1), record.state.value, None, None, None, record.reason, self._stamp())
        try:
            with write_transaction(self._conn) as cur:
                cur.execute(f"INSERT INTO load ({', '.join(COLUMNS[1:])}) VALUES ({', '.join('?' * len(row))})", row)
                return inserted_id(cur, LoadJournalError)
        except sqlite3.IntegrityError:
            raise DuplicateLoad(f"card {to_hex(record.card_serial)} online counter {record.online_atc} is already "
                                "journaled") from None
        except sqlite3.Error as exc:
            raise failure(KIND, self.path, "cannot journal the load", exc) from None

    def authorized(self, row_id: int, load_id: int, mac2: bytes) -> None:
        self._change(row_id, LoadState.AUTHORIZED, load_id=load_id, mac2=to_hex(mac2))

    def credited(self, row_id: int, tac: bytes) -> None:
        self._change(row_id, LoadState.CREDITED, tac=to_hex(tac))

    def confirmed(self, row_id: int) -> None:
        self._change(row_id, LoadState.CONFIRMED)

    def flagged(self, row_id: int, reason: str) -> None:
        self._change(row_id, LoadState.FLAGGED, reason=reason)

    def void(self, row_id: int, reason: str) -> None:
        self._change(row_id, LoadState.VOID, reason=reason)

    def unconfirmed(self, row_id: int, reason: str) -> None:
        self._change(row_id, LoadState.UNCONFIRMED, reason=reason)

    def _change(self, row_id: int, target: LoadState, **values: Any) -> None:
        sources = SOURCES[target]
        assignments = ", ".join(f"{name} = ?" for name in values)
        query = (f"UPDATE load SET state = ?, {assignments + ', ' if values else ''}changed_at = ? "
                 f"WHERE id = ? AND state IN ({', '.join('?' * len(sources))})")
        try:
            with write_transaction(self._conn) as cur:
                cur.execute(query, (target.value, *values.values(), self._stamp(), row_id, *(s.value for s in sources)))
                if cur.rowcount == 0:
                    found = cur.execute("SELECT state FROM load WHERE id = ?", (row_id,)).fetchone()
                    if found is None:
                        raise LoadJournalError(f"{self.path}: no load row {row_id}")
                    raise LoadJournalError(f"load row {row_id} is {found[0]}: it cannot become {target.value}")
        except sqlite3.IntegrityError:
            raise LoadJournalError(f"load row {row_id}: another load of its card already waits for the card") from None
        except sqlite3.Error as exc:
            raise failure(KIND, self.path, f"row {row_id} not made {target.value}", exc) from None

    def _stamp(self) -> str:
        return self.clock.now().isoformat()

    # -- reading ------------------------------------------------------------------------------------------------------

    def get(self, row_id: int) -> LoadEntry:
        for entry in self._select("WHERE id = ?", (row_id,)):
            return entry
        raise LoadJournalError(f"{self.path}: no load row {row_id}")

    def waiting_for(self, card_serial: bytes) -> LoadEntry | None:
        """The load of this card that waits for it (``authorized``: CREDIT may have reached it), if any."""
        for entry in self._select("WHERE card_serial = ? AND state = 'authorized'", (to_hex(card_serial),)):
            return entry
        return None

    def entries(self, states: Iterable[LoadState] | None = None) -> Iterator[LoadEntry]:
        """Rows in id order, only those in ``states`` when given."""
        if states is None:
            return self._select("", ())
        chosen = tuple(LoadState(s).value for s in states)
        return self._select(f"WHERE state IN ({', '.join('?' * len(chosen))})", chosen)

    def _select(self, where: str, params: tuple[Any, ...]) -> Iterator[LoadEntry]:
        try:
            rows = self._conn.execute(f"{_SELECT} {where} ORDER BY id", params).fetchall()
        except sqlite3.Error as exc:
            raise failure(KIND, self.path, "read", exc) from None
        entries = []
        for row in rows:
            try:
                entries.append(_entry(row))
            except (ValueError, TypeError) as exc:  # a field changed on disk: not what the journal wrote
                raise LoadJournalError(f"{self.path}: load journal row {row[0]}: damaged: {exc}") from None
        return iter(entries)


def _bytes(text: str | None) -> bytes | None:
    return None if text is None else bytes.fromhex(text)


def _entry(row: tuple[Any, ...]) -> LoadEntry:
    (row_id, request_id, serial, issuer, atc, amount, balance, kind, terminal, when, key_version, algorithm, random,
     mac1, state, load_id, mac2, tac, reason, changed_at) = row
    record = LoadRecord(request_id, bytes.fromhex(serial), bytes.fromhex(issuer), atc, amount, balance, kind,
                        bytes.fromhex(terminal), dt.datetime.fromisoformat(when), key_version, algorithm,
                        bytes.fromhex(random), bytes.fromhex(mac1), LoadState(state), load_id, _bytes(mac2),
                        _bytes(tac), reason)
    return LoadEntry(row_id, record, dt.datetime.fromisoformat(changed_at) if changed_at else None)
