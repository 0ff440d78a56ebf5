"""The validator's journal of debits: every debit a card commits is journaled exactly once, with its TAC.

:class:`SqliteJournal` is the embedded default (durable per call, or group commit for benchmarks);
:class:`MemoryJournal` keeps the same rules in memory for benchmarks and tests. The protocol and its rules are in
:mod:`terminal.journal.base`.
"""

from .base import (COLUMNS, BadTransition, DuplicateDebit, InvalidDebit, Journal, JournalEntry, JournalError,
                   JournalStorageError, UnknownRow)
from .memory import MemoryJournal
from .sqlite import APPLICATION_ID, SCHEMA_VERSION, SqliteJournal

__all__ = [
    "APPLICATION_ID", "COLUMNS", "SCHEMA_VERSION",
    "BadTransition", "DuplicateDebit", "InvalidDebit", "Journal", "JournalEntry", "JournalError",
    "JournalStorageError", "MemoryJournal", "SqliteJournal", "UnknownRow",
]
