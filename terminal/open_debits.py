"""The debits a card may still settle, found by card serial on every tap, for as long as they stay open.

A row stays open (pending, or unconfirmed and not given up) until the card itself settles it, which may be months
later: the journal's open-row index is the authority, so nothing is forgotten across restarts and memory does not grow
with the rows a validator collects. Nearly every tap is of a card with nothing open, so the serials of up to ``limit``
open rows are also kept here: such a tap costs a dictionary lookup, not a query. Past the limit, every tap asks the
journal, until fewer than half the limit are open again.
"""

from __future__ import annotations

from terminal.journal import Journal, JournalEntry
from terminal.records import DebitState

DEFAULT_LIMIT = 4096


class OpenDebits:
    """Open rows by card serial, backed by ``journal``; call :meth:`load` before the first tap."""

    def __init__(self, journal: Journal, *, limit: int = DEFAULT_LIMIT) -> None:
        self.journal = journal
        self.limit = limit
        self.count = 0
        """Open rows known (exact after :meth:`load`, kept up to date by :meth:`opened` and :meth:`settled`)."""
        self._by_card: dict[bytes, set[int]] | None = {}

    @property
    def in_memory(self) -> bool:
        """Whether every open row's serial is held here (else each tap asks the journal)."""
        return self._by_card is not None

    def load(self) -> list[JournalEntry]:
        """Read the open rows from the journal; returns the pending ones (their recovery windows may still run)."""
        by_card: dict[bytes, set[int]] | None = {}
        pending: list[JournalEntry] = []
        count = 0
        for entry in self.journal.open_rows():
            count += 1
            if entry.record.state is DebitState.PENDING:
                pending.append(entry)
            if by_card is not None:
                if count > self.limit:
                    by_card = None
                else:
                    by_card.setdefault(entry.record.card_serial, set()).add(entry.row_id)
        self._by_card, self.count = by_card, count
        return pending

    def rows(self, serial: bytes) -> list[JournalEntry]:
        """The open rows of the card ``serial``, oldest first (usually none, found without a query)."""
        if self._by_card is not None and serial not in self._by_card:
            return []
        return list(self.journal.open_rows(serial))

    def opened(self, serial: bytes, row_id: int) -> None:
        """A debit was torn: its row is open."""
        self.count += 1
        if self._by_card is not None:
            if self.count > self.limit:
                self._by_card = None
            else:
                self._by_card.setdefault(serial, set()).add(row_id)

    def settled(self, serial: bytes, row_id: int) -> None:
        """A row was settled (complete, void) or given up: no card will settle it any more."""
        self.count = max(0, self.count - 1)
        if self._by_card is None:
            if self.count <= self.limit // 2:
                self.load()
            return
        rows = self._by_card.get(serial)
        if rows is not None:
            rows.discard(row_id)
            if not rows:
                del self._by_card[serial]
