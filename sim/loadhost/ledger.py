"""The load host's ledger: every load it authorized, with everything an auditor needs to recompute MAC1, MAC2 and the
TAC from the master keys, and every answer it gave, so that a retried request gets the same answer.

SQLite (WAL, ``synchronous=FULL``): a change is on disk before the host answers, and survives a restart. Its identity:
``application_id`` ``0x594B5448`` ("YKTH"), ``user_version`` :data:`SCHEMA_VERSION`. Each host operation is one
``BEGIN IMMEDIATE`` transaction (:meth:`LoadLedger.transaction`), so concurrent requests, from threads or from
several host processes on one file, are serialized: no lost or duplicated row. Layout: docs/load-host.md, "The ledger".

States: ``authorized`` (MAC2 given), ``confirmed`` (the card's TAC verified), ``flagged`` (a wrong TAC came: for
investigation, never accepted), ``void`` (the card showed the same online counter again at a later request, so this
MAC2 was never used: it is superseded by that request's load).
"""

from __future__ import annotations

import enum
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from protocols.errors import YktError
from protocols.hexutil import to_hex
from terminal.sqlitedb import FileKind, SqliteFile, failure, inserted_id, write_transaction

APPLICATION_ID = 0x594B5448  # "YKTH"
SCHEMA_VERSION = 1


class LedgerError(YktError):
    """The ledger could not be opened, read or written; the message names the file."""


class LedgerState(str, enum.Enum):
    AUTHORIZED = "authorized"
    CONFIRMED = "confirmed"
    FLAGGED = "flagged"
    VOID = "void"


@dataclass(frozen=True, slots=True)
class LedgerLoad:
    """One load in the ledger. Bytes are bytes here; :meth:`to_json` gives the auditor's view."""

    load_id: int
    state: LedgerState
    request_id: str
    terminal: bytes
    issuer: bytes
    serial: bytes
    key_version: int
    online_counter: int
    random: bytes
    balance_before: int
    amount: int
    transaction_type: int
    datetime: str  # YYYYMMDDhhmmss, as the terminal sent it and MAC2 covers it
    mac1: bytes
    mac2: bytes
    tac: bytes | None  # the verified TAC (confirmed), or the wrong one received (flagged)
    note: str
    authorized_at: str
    changed_at: str

    def to_json(self) -> dict[str, Any]:
        return {"load_id": self.load_id, "state": self.state.value, "issuer": to_hex(self.issuer),
                "serial": to_hex(self.serial), "online_counter": self.online_counter, "random": to_hex(self.random),
                "balance_before": self.balance_before, "amount": self.amount,
                "transaction_type": self.transaction_type, "terminal": to_hex(self.terminal),
                "datetime": self.datetime, "mac1": to_hex(self.mac1), "mac2": to_hex(self.mac2),
                "tac": None if self.tac is None else to_hex(self.tac), "key_version": self.key_version,
                "request_id": self.request_id, "note": self.note, "authorized_at": self.authorized_at,
                "changed_at": self.changed_at}


_COLUMNS = ("load_id", "state", "request_id", "terminal", "issuer", "serial", "key_version", "online_counter",
            "random", "balance_before", "amount", "transaction_type", "datetime", "mac1", "mac2", "tac", "note",
            "authorized_at", "changed_at")
_BYTES = frozenset({"terminal", "issuer", "serial", "random", "mac1", "mac2", "tac"})

_SCHEMA = """
CREATE TABLE load (
    load_id INTEGER PRIMARY KEY,
    state TEXT NOT NULL CHECK (state IN ('authorized', 'confirmed', 'flagged', 'void')),
    request_id TEXT NOT NULL,
    terminal TEXT NOT NULL,
    issuer TEXT NOT NULL,
    serial TEXT NOT NULL,
    key_version INTEGER NOT NULL,
    online_counter INTEGER NOT NULL,
    random TEXT NOT NULL,
    balance_before INTEGER NOT NULL,
    amount INTEGER NOT NULL,
    transaction_type INTEGER NOT NULL,
    datetime TEXT NOT NULL,
    mac1 TEXT NOT NULL,
    mac2 TEXT NOT NULL,
    tac TEXT,
    note TEXT NOT NULL,
    authorized_at TEXT NOT NULL,
    changed_at TEXT NOT NULL
);
-- one live load per card counter: a superseded one is void first
CREATE UNIQUE INDEX load_card_counter ON load (issuer, serial, transaction_type, online_counter)
    WHERE state != 'void';
CREATE INDEX load_card ON load (issuer, serial, transaction_type);
-- every answer to an authenticated, well-formed request, so that a retry gets the same answer
CREATE TABLE answer (
    terminal TEXT NOT NULL,
    request_id TEXT NOT NULL,
    digest TEXT NOT NULL,
    status INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (terminal, request_id)
)
"""

KIND = FileKind("load ledger", APPLICATION_ID, SCHEMA_VERSION, _SCHEMA, LedgerError)


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    digest: str  # of the request it answered
    status: int
    body: str  # JSON


class LedgerTransaction:
    """One host operation's reads and writes, inside the ledger's write lock."""

    def __init__(self, cur: sqlite3.Cursor) -> None:
        self._cur = cur

    def answer(self, terminal: bytes, request_id: str) -> StoredAnswer | None:
        row = self._cur.execute("SELECT digest, status, body FROM answer WHERE terminal = ? AND request_id = ?",
                                (to_hex(terminal), request_id)).fetchone()
        return None if row is None else StoredAnswer(*row)

    def remember(self, terminal: bytes, request_id: str, answer: StoredAnswer) -> None:
        self._cur.execute("INSERT INTO answer (terminal, request_id, digest, status, body) VALUES (?, ?, ?, ?, ?)",
                          (to_hex(terminal), request_id, answer.digest, answer.status, answer.body))

    def card_loads(self, issuer: bytes, serial: bytes, transaction_type: int) -> list[LedgerLoad]:
        """The card's loads of this type that are not void."""
        return _loads(self._cur, "WHERE issuer = ? AND serial = ? AND transaction_type = ? AND state != 'void'",
                      (to_hex(issuer), to_hex(serial), transaction_type))

    def get(self, load_id: int) -> LedgerLoad | None:
        found = _loads(self._cur, "WHERE load_id = ?", (load_id,))
        return found[0] if found else None

    def insert(self, **values: Any) -> int:
        names = [name for name in _COLUMNS if name != "load_id"]
        row = [_stored(name, values[name]) for name in names]
        self._cur.execute(f"INSERT INTO load ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})", row)
        return inserted_id(self._cur, LedgerError)

    def change(self, load_id: int, state: LedgerState, *, note: str, changed_at: str, tac: bytes | None = None) -> None:
        """Set a load's state and note (and the TAC it received, when given)."""
        if tac is None:
            self._cur.execute("UPDATE load SET state = ?, note = ?, changed_at = ? WHERE load_id = ?",
                              (state.value, note, changed_at, load_id))
        else:
            self._cur.execute("UPDATE load SET state = ?, note = ?, changed_at = ?, tac = ? WHERE load_id = ?",
                              (state.value, note, changed_at, to_hex(tac), load_id))


class LoadLedger(SqliteFile):
    """The ledger file, created on first open. One connection, shared by the host's threads under the host's lock."""

    KIND = KIND

    @contextmanager
    def transaction(self) -> Iterator[LedgerTransaction]:
        """One host operation, all or nothing; a storage failure is a :class:`LedgerError` naming the file."""
        try:
            with write_transaction(self._conn) as cur:
                yield LedgerTransaction(cur)
        except sqlite3.Error as exc:
            raise failure(KIND, self.path, "write", exc) from None

    def loads(self) -> list[LedgerLoad]:
        """Every load, in id order."""
        try:
            return _loads(self._conn.cursor(), "", ())
        except sqlite3.Error as exc:
            raise failure(KIND, self.path, "read", exc) from None

    def confirmed_fen(self) -> int:
        """The money the ledger says was loaded onto cards: the sum of the confirmed loads."""
        return sum(load.amount for load in self.loads() if load.state is LedgerState.CONFIRMED)


def _stored(name: str, value: Any) -> Any:
    if name in _BYTES:
        return None if value is None else to_hex(value)
    if isinstance(value, enum.Enum):
        return value.value
    return value


def _loads(cur: sqlite3.Cursor, where: str, params: tuple[Any, ...]) -> list[LedgerLoad]:
    rows = cur.execute(f"SELECT {', '.join(_COLUMNS)} FROM load {where} ORDER BY load_id", params).fetchall()
    loads = []
    for row in rows:
        try:
            values: dict[str, Any] = {name: (None if value is None else bytes.fromhex(value)) if name in _BYTES
                                      else value for name, value in zip(_COLUMNS, row, strict=True)}
            values["state"] = LedgerState(values["state"])
        except (ValueError, TypeError) as exc:  # a field changed on disk: not what the ledger wrote
            raise LedgerError(f"ledger load {row[0]}: damaged: {exc}") from None
        loads.append(LedgerLoad(**values))
    return loads
