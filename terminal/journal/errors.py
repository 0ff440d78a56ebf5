"""The journal's errors: everything it raises is a :class:`JournalError`."""

from __future__ import annotations

from protocols.errors import YktError
from terminal.records import DebitState


class JournalError(YktError):
    """The journal refused an operation or could not be read or written."""


class InvalidDebit(JournalError):
    """A record or a completion is malformed (the message names the field); nothing was written."""


class DuplicateDebit(JournalError):
    """The debit is already journaled: same (card serial, offline ATC) as a row that is not void (``key`` is
    ``"card"``), or same (terminal, TSN) as any row (``key`` is ``"terminal"``). ``existing`` is the row already
    holding the key, when known; ``rejected`` the row ids a group commit had handed out and then could not write."""

    def __init__(self, message: str, *, key: str = "", existing: int | None = None,
                 rejected: tuple[int, ...] = ()) -> None:
        super().__init__(message)
        self.key = key
        self.existing = existing
        self.rejected = rejected


class UnknownRow(JournalError):
    """No row has this id."""


class BadTransition(JournalError):
    """The row is not in a state this change may start from (e.g. completing a void debit)."""

    def __init__(self, row_id: int, current: DebitState, target: DebitState) -> None:
        super().__init__(f"row {row_id} is {current.value}: it cannot become {target.value}")
        self.row_id = row_id
        self.current = current
        self.target = target


class JournalStorageError(JournalError):
    """The journal file is not a yikatong journal, has an unknown schema version, or is corrupt or unreadable."""


class DamagedRow(JournalStorageError):
    """A stored row (or event) whose field cannot be what the journal wrote: a changed character, a wrong type, text
    that is not UTF-8, a page SQLite cannot read. ``table`` is ``debit`` or ``event``, ``row_id`` the row's id,
    ``field`` the column (``row`` when the whole row is unreadable), ``reason`` what is wrong."""

    def __init__(self, row_id: int, field: str, reason: str, *, table: str = "debit") -> None:
        what = "journal row" if table == "debit" else f"journal {table}"
        super().__init__(f"{what} {row_id}: {field}: {reason}")
        self.table = table
        self.row_id = row_id
        self.field = field
        self.reason = reason
