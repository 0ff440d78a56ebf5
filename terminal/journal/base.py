"""What every journal shares: its errors, the row it stores, the state rules, and the public debit protocol.

The protocol (DESIGN, "Money is conserved"): a debit's intent is journaled *before* DEBIT goes to the card, so a debit
the card commits is never unknown to the validator; the row then ends ``complete`` (with the card's TAC), ``void``
(the card proved it never debited) or ``unconfirmed`` (the card did not come back in time; the back office settles it
from the card's own counters). A late proof may still settle an ``unconfirmed`` row.

Rows are kept in one shape by every backend: a list in :data:`COLUMNS` order, byte strings as upper-case hex and
date-times as ISO 8601 text, i.e. the SQLite row itself. Hex text binds to SQLite several times faster than ``bytes``
(which goes through sqlite3's adaptation lookup) and reads well in the ``sqlite3`` shell. Backends implement only
storage (:meth:`Journal._insert`, :meth:`Journal._change`, :meth:`Journal._rows`); validation lives here, once.
"""

from __future__ import annotations

import abc
import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from protocols.errors import YktError
from terminal.clock import Clock, SystemClock
from terminal.records import DebitRecord, DebitState


class JournalError(YktError):
    """The journal refused an operation or could not be read or written."""


class InvalidDebit(JournalError):
    """A record or a completion is malformed (the message names the field); nothing was written."""


class DuplicateDebit(JournalError):
    """The debit is already journaled: same (card serial, offline ATC) as a row that is not void, or same (terminal,
    TSN) as any row. ``existing`` is the row already holding the key, when known; ``rejected`` the row ids a group
    commit had handed out and then could not write."""

    def __init__(self, message: str, *, existing: int | None = None, rejected: tuple[int, ...] = ()) -> None:
        super().__init__(message)
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


COLUMNS = ("id", "card_serial", "issuer_id", "card_type", "offline_atc", "amount", "balance_before", "trans_type",
           "terminal_id", "tsn", "txn_time", "key_version", "algorithm", "mac1", "fare_note",
           "state", "tac", "mac2", "mac2_verified", "reason", "changed_at")
"""A row, in storage order. Positions used below: the key fields, then what a state change rewrites."""
ID, CARD, ATC, TERMINAL, TSN, STATE = 0, 1, 4, 8, 9, 15
CHANGE = slice(15, 20)  # what a state change rewrites: state, tac, mac2, mac2_verified, reason
CHANGED_AT = 20

SOURCES: dict[DebitState, tuple[str, ...]] = {
    DebitState.COMPLETE: ("pending", "unconfirmed"),
    DebitState.VOID: ("pending", "unconfirmed"),
    DebitState.UNCONFIRMED: ("pending",),
}
"""The states each change may start from: ``complete`` and ``void`` are final, ``unconfirmed`` still takes a late
proof."""

OPEN_STATES = ("pending", "unconfirmed")

_BYTE_FIELDS = (("card_serial", 10), ("issuer_id", 8), ("terminal_id", 6), ("mac1", 4))
_INT_FIELDS = (("card_type", 0xFF), ("offline_atc", 0xFFFF), ("amount", 0xFFFFFFFF), ("trans_type", 0xFF),
               ("tsn", 0xFFFFFFFF), ("key_version", 0xFF), ("algorithm", 0xFF))
_BALANCE_LIMIT = 0xFFFFFFFF  # a 4-byte balance; negative values (overdraft shown signed) down to -this


def _storable(text: str) -> bool:
    """Whether SQLite can store ``text`` (UTF-8 cannot encode lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _bad_field(rec: DebitRecord) -> str:
    """Why ``rec`` cannot be journaled as an intent (the slow path: only called once the quick check failed)."""
    if not isinstance(rec, DebitRecord):
        return f"expected a DebitRecord, got {type(rec).__name__}"
    for name, size in _BYTE_FIELDS:
        value = getattr(rec, name)
        if type(value) is not bytes or len(value) != size:
            shown = f"{len(value)} bytes" if isinstance(value, (bytes, bytearray)) else type(value).__name__
            return f"{name} must be {size} bytes, got {shown}"
    for name, top in _INT_FIELDS:
        value = getattr(rec, name)
        if type(value) is not int or not 0 <= value <= top:
            return f"{name} must be an integer 0..{top:X} (hex), got {value!r}"
    if type(rec.balance_before) is not int or not -_BALANCE_LIMIT <= rec.balance_before <= _BALANCE_LIMIT:
        return f"balance_before must be an integer within ±{_BALANCE_LIMIT:X} (hex), got {rec.balance_before!r}"
    if type(rec.when) is not dt.datetime:
        return f"when must be a datetime, got {type(rec.when).__name__}"
    if rec.state is not DebitState.PENDING or rec.tac is not None or rec.mac2 is not None \
            or rec.mac2_verified is not None:
        return f"an intent is pending with no TAC, MAC2 or MAC2 check yet (state is {rec.state!r})"
    if type(rec.fare_note) is not str or not _storable(rec.fare_note):
        return f"fare_note must be text that UTF-8 can encode, got {type(rec.fare_note).__name__}"
    return ""


def _check_intent(rec: DebitRecord) -> None:
    """Raise :class:`InvalidDebit` unless ``rec`` is a well-formed pending intent.

    The quick test is one chained expression (a few hundred ns); the field-by-field diagnosis runs only on failure.
    """
    try:
        ok = (type(rec) is DebitRecord
              and type(rec.card_serial) is bytes and len(rec.card_serial) == 10
              and type(rec.issuer_id) is bytes and len(rec.issuer_id) == 8
              and type(rec.terminal_id) is bytes and len(rec.terminal_id) == 6
              and type(rec.mac1) is bytes and len(rec.mac1) == 4
              and 0 <= rec.card_type <= 0xFF and 0 <= rec.offline_atc <= 0xFFFF and 0 <= rec.amount <= 0xFFFFFFFF
              and 0 <= rec.trans_type <= 0xFF and 0 <= rec.tsn <= 0xFFFFFFFF and 0 <= rec.key_version <= 0xFF
              and 0 <= rec.algorithm <= 0xFF and -_BALANCE_LIMIT <= rec.balance_before <= _BALANCE_LIMIT
              and type(rec.card_type) is type(rec.offline_atc) is type(rec.amount) is type(rec.trans_type)
              is type(rec.tsn) is type(rec.key_version) is type(rec.algorithm) is type(rec.balance_before) is int
              and type(rec.when) is dt.datetime
              and type(rec.fare_note) is str and (rec.fare_note.isascii() or _storable(rec.fare_note))
              and rec.state is DebitState.PENDING and rec.tac is None and rec.mac2 is None
              and rec.mac2_verified is None)
    except TypeError:  # a comparison with a value of the wrong type
        ok = False
    if not ok:
        raise InvalidDebit(f"debit intent: {_bad_field(rec) or 'malformed record'}")


def _check_mac(value: Any, name: str) -> str:
    if type(value) is not bytes or len(value) != 4:
        shown = f"{len(value)} bytes" if isinstance(value, (bytes, bytearray)) else type(value).__name__
        raise InvalidDebit(f"{name} must be 4 bytes, got {shown}")
    return value.hex().upper()


@dataclass(slots=True)
class JournalEntry:
    """One journal row as the validator and the back office read it.

    ``changed_at``: when the state last changed, by the journal's clock (``None`` while the row is still pending;
    the intent's own time is ``record.when``, the date-time sent to the card); ``reason``: why a void row was voided
    (empty otherwise).
    """

    row_id: int
    record: DebitRecord
    changed_at: dt.datetime | None
    reason: str


def _opt_bytes(text: str | None) -> bytes | None:
    return None if text is None else bytes.fromhex(text)


def entry_from_row(row: list[Any] | tuple[Any, ...]) -> JournalEntry:
    """The stored row (in :data:`COLUMNS` order) back into a :class:`JournalEntry`."""
    verified = row[18]
    record = DebitRecord(
        card_serial=bytes.fromhex(row[1]), issuer_id=bytes.fromhex(row[2]), card_type=row[3], offline_atc=row[4],
        amount=row[5], balance_before=row[6], trans_type=row[7], terminal_id=bytes.fromhex(row[8]), tsn=row[9],
        when=dt.datetime.fromisoformat(row[10]), key_version=row[11], algorithm=row[12], mac1=bytes.fromhex(row[13]),
        fare_note=row[14], state=DebitState(row[15]), tac=_opt_bytes(row[16]), mac2=_opt_bytes(row[17]),
        mac2_verified=None if verified is None else bool(verified))
    changed = row[20]
    return JournalEntry(row[0], record, None if changed is None else dt.datetime.fromisoformat(changed), row[19])


class _IsoCache:
    """ISO 8601 text of a date-time, remembering the last one: at thousands of debits a second, most share a second
    with the previous one, and ``isoformat`` costs more than the rest of an intent's checks."""

    __slots__ = ("_last", "_text")

    def __init__(self) -> None:
        self._last: dt.datetime | None = None
        self._text = ""

    def __call__(self, value: dt.datetime) -> str:
        if value != self._last:
            self._text = value.isoformat()
            self._last = value
        return self._text


class Journal(abc.ABC):
    """The validator's journal of debits. Subclasses store rows; this class holds the protocol and its checks.

    A journal object belongs to one thread (the validator loop or one benchmark worker).
    """

    def __init__(self, clock: Clock | None = None) -> None:
        self._clock = clock if clock is not None else SystemClock()
        self._when_iso = _IsoCache()
        self._stamp_iso = _IsoCache()
        self.acknowledged = 0
        """How many ``complete`` changes are durable: in a group-commit SQLite journal, only those whose batch is on
        disk; elsewhere every completion as soon as the call returns. A benchmark counts these, not calls made."""

    # -- the debit protocol -------------------------------------------------------------------------------------------

    def record_intent(self, rec: DebitRecord) -> int:
        """Journal a debit about to be sent to the card; returns its row id. Call it *before* DEBIT.

        Raises :class:`InvalidDebit` for a malformed record and :class:`DuplicateDebit` when the (card serial, offline
        ATC) or (terminal, TSN) is already journaled.
        """
        _check_intent(rec)
        row = [None, rec.card_serial.hex().upper(), rec.issuer_id.hex().upper(), rec.card_type, rec.offline_atc,
               rec.amount, rec.balance_before, rec.trans_type, rec.terminal_id.hex().upper(), rec.tsn,
               self._when_iso(rec.when), rec.key_version, rec.algorithm, rec.mac1.hex().upper(), rec.fare_note,
               "pending", None, None, None, "", None]
        return self._insert(row)

    def complete(self, row_id: int, tac: bytes, mac2: bytes, mac2_verified: bool | None) -> None:
        """The card answered DEBIT, or GET TRANSACTION PROVE proved the debit: keep its TAC and MAC2.

        ``mac2_verified``: whether the PSAM accepted MAC2 (8072); ``None`` when it was not asked.
        """
        if mac2_verified is not None and type(mac2_verified) is not bool:
            raise InvalidDebit(f"mac2_verified must be True, False or None, got {mac2_verified!r}")
        self._change(row_id, DebitState.COMPLETE,
                     ["complete", _check_mac(tac, "TAC"), _check_mac(mac2, "MAC2"),
                      None if mac2_verified is None else int(mac2_verified), ""])

    def void(self, row_id: int, reason: str) -> None:
        """The card proved it never made this debit (GET TRANSACTION PROVE answered no proof, or its counter never
        moved past the row's ATC): nothing is owed. ``reason`` says how that was known."""
        if type(reason) is not str or not reason.strip() or not _storable(reason):
            raise InvalidDebit("a void needs a reason (text that UTF-8 can encode)")
        self._change(row_id, DebitState.VOID, ["void", None, None, None, reason])

    def mark_unconfirmed(self, row_id: int) -> None:
        """The recovery window ended without the card: the back office settles the row from the card's records."""
        self._change(row_id, DebitState.UNCONFIRMED, ["unconfirmed", None, None, None, ""])

    def pending(self) -> list[JournalEntry]:
        """Every pending row, oldest first: what a validator restarting mid-transaction must resolve."""
        return [entry_from_row(r) for r in self._rows(states=("pending",))]

    def find_pending(self, card_serial: bytes, *, include_unconfirmed: bool = False) -> list[JournalEntry]:
        """The pending rows of one card (and its unconfirmed ones if asked), oldest first."""
        if type(card_serial) is not bytes or len(card_serial) != 10:
            raise InvalidDebit("card_serial must be 10 bytes")
        states = OPEN_STATES if include_unconfirmed else ("pending",)
        return [entry_from_row(r) for r in self._rows(states=states, card=card_serial.hex().upper())]

    def entries(self, states: Iterable[DebitState | str] | None = None) -> Iterator[JournalEntry]:
        """Every row (or those in ``states``), in row-id order: what export and verification read."""
        try:
            wanted = None if states is None else tuple(DebitState(s).value for s in states)
        except ValueError:
            raise InvalidDebit(f"unknown state in {states!r}") from None
        return (entry_from_row(r) for r in self._rows(states=wanted))

    def get(self, row_id: int) -> JournalEntry:
        """One row by id; :class:`UnknownRow` if there is none."""
        for row in self._rows(row_id=row_id):
            return entry_from_row(row)
        raise UnknownRow(f"no journal row {row_id}")

    def flush(self) -> int:
        """Make every write so far durable; returns how many completions this made durable (0 when each call already
        was). Only group-commit journals have anything to do."""
        return 0

    def close(self) -> None:
        """Flush and release the storage."""
        self.flush()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- what a backend provides --------------------------------------------------------------------------------------

    def _stamp(self) -> str:
        return self._stamp_iso(self._clock.now())

    @abc.abstractmethod
    def _insert(self, row: list[Any]) -> int:
        """Store a new row (``row[0]`` is ``None``), enforcing both uniqueness rules; return its id."""

    @abc.abstractmethod
    def _change(self, row_id: int, target: DebitState, values: list[Any]) -> None:
        """Move a row to ``target`` from one of ``SOURCES[target]``: ``values`` are state, tac, mac2, mac2_verified
        and reason; the backend adds ``changed_at``. Unknown rows and other states raise."""

    @abc.abstractmethod
    def _rows(self, *, states: tuple[str, ...] | None = None, card: str | None = None,
              row_id: int | None = None) -> Iterable[list[Any] | tuple[Any, ...]]:
        """Stored rows in id order, filtered by state, card serial (hex) and id."""


def refuse_change(row_id: int, current: str | None, target: DebitState) -> None:
    """Raise the error for a change that found the row missing (``current`` is None) or in the wrong state."""
    if current is None:
        raise UnknownRow(f"no journal row {row_id}")
    raise BadTransition(row_id, DebitState(current), target)
