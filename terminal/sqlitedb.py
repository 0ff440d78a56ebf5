"""One durable SQLite file of one kind: created with its schema on first open, recognised by its identity after that.

A file carries SQLite's ``application_id`` (what kind of file it is) and ``user_version`` (its schema version). Opening
a file that is not SQLite, is another application's database, has another schema version, or is corrupt raises the
caller's error type naming the file, and leaves the file untouched. Writers get WAL mode with ``synchronous=FULL``:
a transaction is on disk when COMMIT returns. ``busy_timeout`` lets several processes share one file (one writer at a
time; ``BEGIN IMMEDIATE`` takes the write lock before any read that a write depends on).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from protocols.errors import YktError

BUSY_TIMEOUT_MS = 10_000


@dataclass(frozen=True, slots=True)
class FileKind:
    """What a file of this kind is: its name in messages, its SQLite identity, its schema, the error it raises."""

    name: str  # "load journal", "load ledger"
    application_id: int
    version: int
    schema: str  # statements separated by ";"
    error: type[YktError]


def open_database(path: str | os.PathLike[str], kind: FileKind, *, readonly: bool = False) -> sqlite3.Connection:
    """Open (and on first use create) a file of ``kind``; autocommit mode, transactions are the caller's."""
    source = os.fspath(path)
    conn = None
    try:
        if readonly:
            if not Path(source).is_file():
                raise kind.error(f"{source}: no such {kind.name}")
            conn = sqlite3.connect(f"{Path(source).absolute().as_uri()}?mode=ro", uri=True, isolation_level=None,
                                   check_same_thread=False)
        else:
            conn = sqlite3.connect(source, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if _is_empty(conn):
            if readonly:
                raise kind.error(f"{source}: empty file, not a yikatong {kind.name}")
            _create(conn, kind)
        _check_identity(conn, kind, source)
        if not readonly:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
        return conn
    except (sqlite3.Error, UnicodeDecodeError) as exc:  # the latter when SQLite's message quotes damaged schema text
        if conn is not None:
            conn.close()
        raise failure(kind, source, f"cannot open the {kind.name}", exc) from None
    except YktError:
        if conn is not None:
            conn.close()
        raise


class SqliteFile:
    """A file of one :class:`FileKind`, open on one connection until :meth:`close` (or the end of a ``with``)."""

    KIND: FileKind

    def __init__(self, path: str | os.PathLike[str], *, readonly: bool = False) -> None:
        self.path = os.fspath(path)
        self._conn = open_database(self.path, self.KIND, readonly=readonly)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._conn.close()


def failure(kind: FileKind, source: str, what: str, exc: sqlite3.Error | UnicodeDecodeError) -> YktError:
    """The caller's error for an SQLite failure, naming the file; a file that is no database is said to be so."""
    reason = str(exc)
    if isinstance(exc, UnicodeDecodeError):
        reason = f"corrupt database: text that is not UTF-8 in the schema ({reason})"
    elif isinstance(exc, sqlite3.DatabaseError) and ("not a database" in reason or "malformed" in reason):
        reason = f"corrupt or not a SQLite database ({reason})"
    return kind.error(f"{source}: {what}: {reason}")


def inserted_id(cur: sqlite3.Cursor, error: type[YktError]) -> int:
    """The id of the row the INSERT just run on ``cur`` added (sqlite3 has no id before its first INSERT)."""
    row_id = cur.lastrowid
    if row_id is None:
        raise error("the row was inserted but SQLite gave it no id")
    return row_id


@contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Cursor]:
    """``BEGIN IMMEDIATE`` … ``COMMIT``, rolled back on any exception: reads inside see what the write will change."""
    cur = conn.cursor()
    cur.execute("BEGIN IMMEDIATE")
    try:
        yield cur
    except BaseException:
        if conn.in_transaction:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # the first error is the one to report
        raise
    cur.execute("COMMIT")


def _is_empty(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0 and \
        conn.execute("PRAGMA application_id").fetchone()[0] == 0


def _create(conn: sqlite3.Connection, kind: FileKind) -> None:
    with write_transaction(conn) as cur:
        if _is_empty(conn):  # still empty now that this connection holds the write lock
            for statement in kind.schema.split(";"):
                if statement.strip():
                    cur.execute(statement)
            cur.execute(f"PRAGMA application_id = {kind.application_id}")
            cur.execute(f"PRAGMA user_version = {kind.version}")


def _check_identity(conn: sqlite3.Connection, kind: FileKind, source: str) -> None:
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    if app_id != kind.application_id:
        raise kind.error(f"{source}: not a yikatong {kind.name} (SQLite application_id {app_id:#x}, "
                         f"expected {kind.application_id:#x})")
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version != kind.version:
        raise kind.error(f"{source}: {kind.name} schema version {version} is unknown "
                         f"(this software reads version {kind.version})")
