"""What every journal shares: the state rules, the public debit protocol, the operator's events, and what reading a
damaged row does.

The protocol (DESIGN, "Money is conserved"): a debit's intent is journaled *before* DEBIT goes to the card, so a debit
the card commits is never unknown to the validator; the row then ends ``complete`` (the card's TAC, or its own 0x18
record of the debit), ``void`` (the card proved it never debited) or ``unconfirmed`` (the card did not come back within
the recovery window: the row is reported to the back office). An ``unconfirmed`` row stays open: when the card comes
back, however late, its proof still settles the row. Every settled row keeps its :class:`~terminal.records.Evidence`.

Rows are kept in one shape by every backend (:mod:`terminal.journal.rows`): a list in ``COLUMNS`` order, byte strings
as upper-case hex and date-times as ISO 8601 text, i.e. the SQLite row itself. Hex text binds to SQLite several times
faster than ``bytes`` (which goes through sqlite3's adaptation lookup) and reads well in the ``sqlite3`` shell.
Backends implement only storage (``_insert``, ``_change``, ``_rows``, ``_insert_event``, ``_event_rows``,
``_highest_tsn``); validation lives here and in :mod:`terminal.journal.rows`, once.
"""

from __future__ import annotations

import abc
import datetime as dt
from collections.abc import Iterable, Iterator
from typing import Any, NoReturn, Self

from terminal.clock import Clock, SystemClock
from terminal.records import DebitRecord, DebitState, Evidence, Technology

from .errors import (
    BadTransition,
    DamagedRow,
    DuplicateDebit,
    InvalidDebit,
    JournalError,
    JournalStorageError,
    UnknownRow,
)
from .rows import (
    BALANCE_LIMIT,
    COLUMNS,
    LOG_RECORD_SIZES,
    OPEN_STATES,
    UID_SIZES,
    EventKind,
    JournalEntry,
    JournalEvent,
    decode_entry,
    decode_event,
    storable,
)

__all__ = [
    "COLUMNS",
    "DAMAGE_POLICIES",
    "OPEN_STATES",
    "SOURCES",
    "BadTransition",
    "DamagedRow",
    "DuplicateDebit",
    "EventKind",
    "InvalidDebit",
    "Journal",
    "JournalEntry",
    "JournalError",
    "JournalEvent",
    "JournalStorageError",
    "UnknownRow",
    "refuse_change",
]


SOURCES: dict[DebitState, tuple[str, ...]] = {
    DebitState.COMPLETE: ("pending", "unconfirmed"),
    DebitState.VOID: ("pending", "unconfirmed"),
    DebitState.UNCONFIRMED: ("pending",),
}
"""The states each change may start from: ``complete`` and ``void`` are final, ``unconfirmed`` still takes a late
proof (and may be given up as unprovable)."""

DAMAGE_POLICIES = ("stop", "quarantine")
"""What reading a damaged row does: ``stop`` raises :class:`DamagedRow` naming the row and the field; ``quarantine``
sets the row aside (it stays in the file untouched, is listed in :attr:`Journal.quarantined`, and every reader
reports it) and goes on with the others."""

_BYTE_FIELDS = (("card_serial", 10), ("issuer_id", 8), ("terminal_id", 6), ("mac1", 4))
_INT_FIELDS = (("card_type", 0xFF), ("offline_atc", 0xFFFF), ("amount", 0xFFFFFFFF), ("trans_type", 0xFF),
               ("tsn", 0xFFFFFFFF), ("key_version", 0xFF), ("algorithm", 0xFF))
_COMPLETE_EVIDENCE = {Evidence.DEBIT: "debit", Evidence.PROVE: "prove"}  # stored values, without Enum.value per call
_VOID_EVIDENCE = {Evidence.DEBIT: "debit", Evidence.COUNTER: "counter"}


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
    if type(rec.balance_before) is not int or not -BALANCE_LIMIT <= rec.balance_before <= BALANCE_LIMIT:
        return f"balance_before must be an integer within ±{BALANCE_LIMIT:X} (hex), got {rec.balance_before!r}"
    if type(rec.when) is not dt.datetime:
        return f"when must be a datetime, got {type(rec.when).__name__}"
    if rec.state is not DebitState.PENDING or rec.tac is not None or rec.mac2 is not None \
            or rec.mac2_verified is not None or rec.evidence is not Evidence.NONE:
        return f"an intent is pending with no TAC, MAC2, MAC2 check or evidence yet (state is {rec.state!r})"
    if type(rec.fare_note) is not str or not storable(rec.fare_note):
        return f"fare_note must be text that UTF-8 can encode, got {type(rec.fare_note).__name__}"
    if not isinstance(rec.technology, Technology):
        return f"technology must be a Technology, got {rec.technology!r}"
    m1 = rec.technology is Technology.M1
    if m1 != (type(rec.card_uid) is bytes and len(rec.card_uid) in UID_SIZES) or (not m1 and rec.card_uid is not None):
        return f"card_uid must be {'4 or 7 bytes' if m1 else 'None'} for a {rec.technology.value} card"
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
              and 0 <= rec.algorithm <= 0xFF and -BALANCE_LIMIT <= rec.balance_before <= BALANCE_LIMIT
              and type(rec.card_type) is type(rec.offline_atc) is type(rec.amount) is type(rec.trans_type)
              is type(rec.tsn) is type(rec.key_version) is type(rec.algorithm) is type(rec.balance_before) is int
              and type(rec.when) is dt.datetime
              and type(rec.fare_note) is str and (rec.fare_note.isascii() or storable(rec.fare_note))
              and rec.state is DebitState.PENDING and rec.tac is None and rec.mac2 is None
              and rec.mac2_verified is None and rec.evidence is Evidence.NONE
              and ((rec.technology is Technology.CPU and rec.card_uid is None)
                   or (rec.technology is Technology.M1 and type(rec.card_uid) is bytes
                       and len(rec.card_uid) in UID_SIZES)))
    except TypeError:  # a comparison with a value of the wrong type
        ok = False
    if not ok:
        raise InvalidDebit(f"debit intent: {_bad_field(rec) or 'malformed record'}")


def _check_mac(value: Any, name: str) -> str:
    if type(value) is not bytes or len(value) != 4:
        shown = f"{len(value)} bytes" if isinstance(value, (bytes, bytearray)) else type(value).__name__
        raise InvalidDebit(f"{name} must be 4 bytes, got {shown}")
    return value.hex().upper()


def _check_text(value: Any, what: str, *, empty: bool = False) -> str:
    if type(value) is not str or (not empty and not value.strip()) or not storable(value):
        raise InvalidDebit(f"{what} must be {'' if empty else 'non-empty '}text that UTF-8 can encode")
    return value


def _check_serial(card_serial: Any) -> str:
    if type(card_serial) is not bytes or len(card_serial) != 10:
        raise InvalidDebit("card_serial must be 10 bytes")
    return card_serial.hex().upper()


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

    ``damaged`` chooses what reading a damaged row does (:data:`DAMAGE_POLICIES`); rows set aside are in
    :attr:`quarantined`, by row id. A journal object belongs to one thread (the validator loop or one benchmark
    worker).
    """

    def __init__(self, clock: Clock | None = None, *, damaged: str = "stop") -> None:
        if damaged not in DAMAGE_POLICIES:
            raise JournalError(f"damaged must be one of {', '.join(DAMAGE_POLICIES)}, got {damaged!r}")
        self._clock = clock if clock is not None else SystemClock()
        self._when_iso = _IsoCache()
        self._stamp_iso = _IsoCache()
        self.damaged = damaged
        self.quarantined: dict[int, DamagedRow] = {}
        """Rows set aside by the ``quarantine`` policy, by id, with what is wrong with each."""
        self.quarantined_events: dict[int, DamagedRow] = {}
        """Events set aside by the ``quarantine`` policy, by id."""
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
               "pending", None, None, None, "", "", None, rec.technology.value,
               None if rec.card_uid is None else rec.card_uid.hex().upper()]
        return self._insert(row)

    def complete(self, row_id: int, tac: bytes, mac2: bytes, mac2_verified: bool | None, *,
                 evidence: Evidence = Evidence.DEBIT) -> None:
        """The card answered DEBIT (``evidence`` ``debit``), or GET TRANSACTION PROVE proved the debit (``prove``):
        keep its TAC and MAC2.

        ``mac2_verified``: whether the PSAM accepted MAC2 (8072); ``None`` when it was not asked.
        """
        if mac2_verified is not None and type(mac2_verified) is not bool:
            raise InvalidDebit(f"mac2_verified must be True, False or None, got {mac2_verified!r}")
        stored = _COMPLETE_EVIDENCE.get(evidence) if isinstance(evidence, Evidence) else None
        if stored is None:
            raise InvalidDebit(f"a debit with a TAC is proven by DEBIT or GET TRANSACTION PROVE, not {evidence!r}")
        self._change(row_id, DebitState.COMPLETE,
                     ["complete", _check_mac(tac, "TAC"), _check_mac(mac2, "MAC2"),
                      None if mac2_verified is None else int(mac2_verified), "", stored])

    def settle_from_log(self, row_id: int, record: bytes, *, made: bool, mac: bytes | None = None) -> None:
        """The card's own record of the row's counter settles it: ``made`` when the record is this debit (complete),
        else the counter went to another debit (void). The record, as the card gave it (a CPU card's 0x18 record of 23
        bytes: the card can no longer give the debit's TAC; an M1 card's trip record of 16 bytes: ``mac``, the PSAM's
        transaction MAC journaled with the intent, becomes the row's TAC), is kept as the row's reason, in hex."""
        sizes = tuple(LOG_RECORD_SIZES.values())
        if type(record) is not bytes or len(record) not in sizes:
            raise InvalidDebit(f"a card's own record is {' or '.join(map(str, sizes))} bytes, got {record!r:.60}")
        m1 = len(record) == LOG_RECORD_SIZES[Technology.M1]
        tac = _check_mac(mac, "an M1 debit's MAC") if made and m1 else None
        if mac is not None and tac is None:
            raise InvalidDebit("only an M1 debit proven made by its trip record takes a MAC here")
        state = "complete" if made else "void"
        self._change(row_id, DebitState(state), [state, tac, None, None, record.hex().upper(), Evidence.LOG.value])

    def complete_m1(self, row_id: int, mac: bytes) -> None:
        """An M1 card acknowledged the decrement of its purse: the debit is taken (evidence ``debit``). ``mac`` is the
        PSAM's transaction MAC journaled with the intent (the row's ``mac1``), kept as the row's TAC; there is no
        MAC2."""
        self._change(row_id, DebitState.COMPLETE, ["complete", _check_mac(mac, "an M1 debit's MAC"), None, None, "",
                                                   "debit"])

    def void(self, row_id: int, reason: str, *, evidence: Evidence = Evidence.DEBIT) -> None:
        """The card proved it never made this debit: it refused DEBIT (``evidence`` ``debit``) or its counter never
        moved past the row's (``counter``). Nothing is owed; ``reason`` says how that was known. (A 0x18 record showing
        the counter spent on another debit: :meth:`settle_from_log`.)"""
        stored = _VOID_EVIDENCE.get(evidence) if isinstance(evidence, Evidence) else None
        if stored is None:
            raise InvalidDebit(f"a void is proven by DEBIT or the card's counter, not {evidence!r}")
        try:
            _check_text(reason, "a void's reason")
        except InvalidDebit:
            raise InvalidDebit("a void needs a reason (text that UTF-8 can encode)") from None
        self._change(row_id, DebitState.VOID, ["void", None, None, None, reason, stored])

    def mark_unconfirmed(self, row_id: int) -> None:
        """The recovery window ended without the card: the row is reported to the back office, and stays open for the
        card's proof should it come back."""
        self._change(row_id, DebitState.UNCONFIRMED, ["unconfirmed", None, None, None, "", ""])

    def give_up(self, row_id: int, reason: str) -> None:
        """The card can no longer prove or disprove this debit (its counter is past the row's and its log no longer
        holds that counter): the row stays ``unconfirmed`` for the back office, with ``reason``, and the validator
        stops asking the card about it (evidence ``unprovable``). From ``pending`` or ``unconfirmed``."""
        self._change(row_id, DebitState.UNCONFIRMED,
                     ["unconfirmed", None, None, None, _check_text(reason, "the reason"), Evidence.UNPROVABLE.value],
                     OPEN_STATES)

    # -- reading ------------------------------------------------------------------------------------------------------

    def pending(self) -> list[JournalEntry]:
        """Every pending row, oldest first: what a validator restarting mid-transaction must resolve."""
        return list(self._decoded(self._rows(states=("pending",))))

    def find_pending(self, card_serial: bytes, *, include_unconfirmed: bool = False) -> list[JournalEntry]:
        """The pending rows of one card (and its unconfirmed ones if asked), oldest first."""
        states = OPEN_STATES if include_unconfirmed else ("pending",)
        return list(self._decoded(self._rows(states=states, card=_check_serial(card_serial))))

    def open_rows(self, card_serial: bytes | None = None) -> Iterator[JournalEntry]:
        """The rows a card may still settle (pending, and unconfirmed ones not given up), oldest first; of one card,
        or of every card. The journal's open-row index finds them."""
        card = None if card_serial is None else _check_serial(card_serial)
        return (e for e in self._decoded(self._rows(states=OPEN_STATES, card=card)) if e.searchable)

    def entries(self, states: Iterable[DebitState | str] | None = None) -> Iterator[JournalEntry]:
        """Every row (or those in ``states``), in row-id order: what export and verification read."""
        try:
            wanted = None if states is None else tuple(DebitState(s).value for s in states)
        except ValueError:
            raise InvalidDebit(f"unknown state in {states!r}") from None
        return self._decoded(self._rows(states=wanted))

    def get(self, row_id: int) -> JournalEntry:
        """One row by id; :class:`UnknownRow` if there is none, :class:`DamagedRow` if it is damaged (under either
        policy: the caller asked for that row)."""
        for row in self._rows(row_id=row_id):
            return decode_entry(row)
        raise UnknownRow(f"no journal row {row_id}")

    def highest_tsn(self, terminal_id: bytes) -> int | None:
        """The highest PSAM transaction serial journaled for ``terminal_id`` (6 bytes), ``None`` when it has none."""
        if type(terminal_id) is not bytes or len(terminal_id) != 6:
            raise InvalidDebit("terminal_id must be 6 bytes")
        return self._highest_tsn(terminal_id.hex().upper())

    def _decoded(self, rows: Iterable[list[Any] | tuple[Any, ...]]) -> Iterator[JournalEntry]:
        """Decode stored rows under the damage policy."""
        for row in rows:
            try:
                yield decode_entry(row)
            except DamagedRow as damage:
                self.set_aside(damage)

    def set_aside(self, damage: DamagedRow) -> None:
        """Under ``quarantine``, keep ``damage`` in :attr:`quarantined` and go on; under ``stop``, raise it."""
        if self.damaged == "stop":
            raise damage
        (self.quarantined if damage.table == "debit" else self.quarantined_events).setdefault(damage.row_id, damage)

    # -- events -------------------------------------------------------------------------------------------------------

    def record_event(self, kind: EventKind, detail: str, *, card_serial: bytes | None = None,
                     row_ref: int | None = None) -> int:
        """Journal something the operator must hear of (a duplicated card, a quarantined row); returns its id."""
        if not isinstance(kind, EventKind):
            raise InvalidDebit(f"unknown event kind {kind!r}")
        if row_ref is not None and (type(row_ref) is not int or row_ref < 1):
            raise InvalidDebit(f"row_ref must be a row id, got {row_ref!r}")
        card = None if card_serial is None else _check_serial(card_serial)
        return self._insert_event([None, self._stamp(), kind.value, card, row_ref,
                                   _check_text(detail, "an event's detail")])

    def events(self) -> Iterator[JournalEvent]:
        """Every event, in id order (damaged ones under the damage policy, like rows)."""
        for row in self._event_rows():
            try:
                yield decode_event(row)
            except DamagedRow as damage:
                self.set_aside(damage)

    # -- life cycle ---------------------------------------------------------------------------------------------------

    def flush(self) -> int:
        """Make every write so far durable; returns how many completions this made durable (0 when each call already
        was). Only group-commit journals have anything to do."""
        return 0

    def close(self) -> None:
        """Flush and release the storage."""
        self.flush()

    def __enter__(self) -> Self:
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
    def _change(self, row_id: int, target: DebitState, values: list[Any],
                sources: tuple[str, ...] | None = None) -> None:
        """Move a row to ``target`` from one of ``sources`` (default ``SOURCES[target]``): ``values`` are state, tac,
        mac2, mac2_verified, reason and evidence; the backend adds ``changed_at``. Unknown rows and other states
        raise."""

    @abc.abstractmethod
    def _rows(self, *, states: tuple[str, ...] | None = None, card: str | None = None,
              row_id: int | None = None) -> Iterable[list[Any] | tuple[Any, ...]]:
        """Stored rows in id order, filtered by state, card serial (hex) and id."""

    @abc.abstractmethod
    def _highest_tsn(self, terminal: str) -> int | None:
        """The highest integer TSN stored for ``terminal`` (hex)."""

    @abc.abstractmethod
    def _insert_event(self, row: list[Any]) -> int:
        """Store a new event (``row[0]`` is ``None``); return its id."""

    @abc.abstractmethod
    def _event_rows(self) -> Iterable[list[Any] | tuple[Any, ...]]:
        """Stored events in id order."""


def refuse_change(row_id: int, current: object, target: DebitState) -> NoReturn:
    """Raise the error for a change that found the row missing (``current`` is None) or in the wrong state."""
    if current is None:
        raise UnknownRow(f"no journal row {row_id}")
    try:
        state = DebitState(current)
    except ValueError:
        raise DamagedRow(row_id, "state", f"unknown state {current!r}") from None
    raise BadTransition(row_id, state, target)
