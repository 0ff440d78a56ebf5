"""The validator's journal of debits: every debit a card commits is journaled exactly once, with its TAC.

:class:`SqliteJournal` is the embedded default (durable per call, or group commit for benchmarks);
:class:`MemoryJournal` keeps the same rules in memory for benchmarks and tests. The protocol and its rules are in
:mod:`terminal.journal.base`, the stored shape of a row and its checks in :mod:`terminal.journal.rows`.
"""

from .base import DAMAGE_POLICIES, Journal
from .errors import (
                     BadTransition,
                     DamagedRow,
                     DuplicateDebit,
                     InvalidDebit,
                     JournalError,
                     JournalStorageError,
                     UnknownRow,
)
from .memory import MemoryJournal
from .rows import COLUMNS, EventKind, JournalEntry, JournalEvent
from .sqlite import APPLICATION_ID, SCHEMA_VERSION, SqliteJournal

__all__ = [
    "APPLICATION_ID", "COLUMNS", "DAMAGE_POLICIES", "SCHEMA_VERSION",
    "BadTransition", "DamagedRow", "DuplicateDebit", "EventKind", "InvalidDebit", "Journal", "JournalEntry",
    "JournalError", "JournalEvent", "JournalStorageError", "MemoryJournal", "SqliteJournal", "UnknownRow",
]
