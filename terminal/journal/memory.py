"""Rows held in memory under the journal's rules: the whole of a :class:`MemoryJournal`, and the open batch of a
group-commit :class:`terminal.journal.sqlite.SqliteJournal`."""

from __future__ import annotations

from typing import Any

from terminal.clock import Clock
from terminal.records import DebitState

from .base import SOURCES, Journal, refuse_change
from .errors import DuplicateDebit, UnknownRow
from .rows import ATC, CARD, CHANGE, CHANGED_AT, ID, OPEN_STATES, STATE, TERMINAL, TSN


class RowStore:
    """Rows by id with the two uniqueness rules and the state rules enforced as rows arrive and change.

    Lookups are dictionary hits, so the rules cost well under a microsecond per debit; ``open`` keeps the ids of
    pending and unconfirmed rows so that finding a card's pending debit does not scan every row.
    """

    __slots__ = ("_card_atc", "_freeze", "_highest", "_open", "_terminal_tsn", "rows")

    def __init__(self, *, freeze: bool = True) -> None:
        """``freeze``: keep final rows as tuples (a store that lives long); a group-commit batch, written and dropped
        within a second, does not need to."""
        self.rows: dict[int, list[Any] | tuple[Any, ...]] = {}
        self._freeze = freeze
        self._card_atc: dict[tuple[str, int], int] = {}  # rows that are not void
        self._terminal_tsn: dict[tuple[str, int], int] = {}
        self._open: dict[int, None] = {}  # ids of pending and unconfirmed rows, in id order
        self._highest: dict[str, int] = {}  # the highest TSN of each terminal

    def __len__(self) -> int:
        return len(self.rows)

    def add(self, row_id: int, row: list[Any]) -> None:
        """Keep a new pending row as ``row_id``; :class:`DuplicateDebit` if either key is taken."""
        card_atc = (row[CARD], row[ATC])
        terminal_tsn = (row[TERMINAL], row[TSN])
        existing = self._card_atc.get(card_atc)
        if existing is not None:
            raise DuplicateDebit(f"card {row[CARD]} ATC {row[ATC]} is already journaled as row {existing}",
                                 key="card", existing=existing)
        existing = self._terminal_tsn.get(terminal_tsn)
        if existing is not None:
            raise DuplicateDebit(f"terminal {row[TERMINAL]} TSN {row[TSN]} is already journaled as row {existing}",
                                 key="terminal", existing=existing)
        row[ID] = row_id
        self.rows[row_id] = row
        self._card_atc[card_atc] = row_id
        self._terminal_tsn[terminal_tsn] = row_id
        self._open[row_id] = None
        if row[TSN] > self._highest.get(row[TERMINAL], -1):
            self._highest[row[TERMINAL]] = row[TSN]

    def highest_tsn(self, terminal: str) -> int | None:
        return self._highest.get(terminal)

    def change(self, row_id: int, target: DebitState, values: list[Any], stamp: str,
               sources: tuple[str, ...] | None = None) -> bool:
        """Apply a state change to a row held here; ``False`` when the row is not held here."""
        row = self.rows.get(row_id)
        if row is None:
            return False
        if isinstance(row, tuple) or row[STATE] not in (SOURCES[target] if sources is None else sources):
            refuse_change(row_id, row[STATE], target)  # a row kept as a tuple is final
        row[CHANGE] = values
        row[CHANGED_AT] = stamp
        if target is DebitState.VOID:
            del self._card_atc[(row[CARD], row[ATC])]
        if target is not DebitState.UNCONFIRMED:
            del self._open[row_id]
            if self._freeze:
                # a final row never changes again: as a tuple of plain values the garbage collector stops tracking
                # it, which keeps collections cheap in a journal of millions of rows
                self.rows[row_id] = tuple(row)
        return True

    def select(self, *, states: tuple[str, ...] | None = None, card: str | None = None,
               row_id: int | None = None) -> list[list[Any] | tuple[Any, ...]]:
        """Rows in id order, filtered like :meth:`terminal.journal.base.Journal._rows`."""
        if row_id is not None:
            row = self.rows.get(row_id)
            candidates = [] if row is None else [row]
        elif states is not None and set(states) <= set(OPEN_STATES):
            candidates = [self.rows[i] for i in self._open]
        else:
            candidates = list(self.rows.values())
        return [r for r in candidates
                if (states is None or r[STATE] in states) and (card is None or r[CARD] == card)]


class MemoryJournal(Journal):
    """A journal that lives and dies with the process: for benchmarks (``ykt bench --journal memory``) and tests.

    Same protocol and rules as the SQLite journal; nothing survives the process, so it must never back a real
    validator.
    """

    def __init__(self, *, clock: Clock | None = None, damaged: str = "stop") -> None:
        super().__init__(clock, damaged=damaged)
        self._store = RowStore()
        self._next_id = 1
        self._events: list[list[Any]] = []

    def __len__(self) -> int:
        return len(self._store)

    def _insert(self, row: list[Any]) -> int:
        row_id = self._next_id
        self._store.add(row_id, row)
        self._next_id = row_id + 1
        return row_id

    def _change(self, row_id: int, target: DebitState, values: list[Any],
                sources: tuple[str, ...] | None = None) -> None:
        if not self._store.change(row_id, target, values, self._stamp(), sources):
            raise UnknownRow(f"no journal row {row_id}")
        if target is DebitState.COMPLETE:
            self.acknowledged += 1

    def _rows(self, *, states: tuple[str, ...] | None = None, card: str | None = None,
              row_id: int | None = None) -> list[list[Any] | tuple[Any, ...]]:
        return self._store.select(states=states, card=card, row_id=row_id)

    def _highest_tsn(self, terminal: str) -> int | None:
        return self._store.highest_tsn(terminal)

    def _insert_event(self, row: list[Any]) -> int:
        row[ID] = len(self._events) + 1
        self._events.append(row)
        return row[ID]

    def _event_rows(self) -> list[list[Any]]:
        return list(self._events)
