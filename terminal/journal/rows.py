"""The stored shape of a journal row and of a journal event, and their decoding with every field checked.

A row is a list in :data:`COLUMNS` order, byte strings as upper-case hex and date-times as ISO 8601 text: the SQLite
row itself. Decoding checks each field's type, size, range and text, and the fields against the row's state, so a
row changed on disk (one character of a date, a hex digit, a state, a type byte of the record) is a
:class:`~terminal.journal.errors.DamagedRow` naming the row and the field, never a ``ValueError`` from deep inside.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass
from typing import Any, NoReturn

from terminal.records import DebitRecord, DebitState, Evidence, Technology

from .errors import DamagedRow

COLUMNS = ("id", "card_serial", "issuer_id", "card_type", "offline_atc", "amount", "balance_before", "trans_type",
           "terminal_id", "tsn", "txn_time", "key_version", "algorithm", "mac1", "fare_note",
           "state", "tac", "mac2", "mac2_verified", "reason", "evidence", "changed_at", "technology", "card_uid")
"""A row, in storage order. Positions used below: the key fields, then what a state change rewrites."""
ID, CARD, ATC, TERMINAL, TSN, STATE, EVIDENCE = 0, 1, 4, 8, 9, 15, 20
CHANGE = slice(15, 21)  # what a state change rewrites: state, tac, mac2, mac2_verified, reason, evidence
CHANGED_AT, TECHNOLOGY, CARD_UID = 21, 22, 23

EVENT_COLUMNS = ("id", "at", "kind", "card_serial", "row_ref", "detail")

OPEN_STATES = ("pending", "unconfirmed")
LOG_RECORD_SIZES = {Technology.CPU: 23, Technology.M1: 16}
"""The card's own record that settled a row (a CPU card's 0x18 record, an M1 card's trip record), kept in hex as the
row's reason."""
UID_SIZES = (4, 7)
BALANCE_LIMIT = 0xFFFFFFFF  # a 4-byte balance; negative values (overdraft shown signed) down to -this

_STATES = {s.value: s for s in DebitState}
_EVIDENCE = {e.value: e for e in Evidence}
_TECHNOLOGIES = {t.value: t for t in Technology}
_SIZES = {CARD: 10, 2: 8, TERMINAL: 6, 13: 4}  # hex fields: card serial, issuer, terminal, MAC1
_INTS = {3: 0xFF, ATC: 0xFFFF, 5: 0xFFFFFFFF, 7: 0xFF, TSN: 0xFFFFFFFF, 11: 0xFF, 12: 0xFF}
_WITH_TAC = frozenset((Evidence.DEBIT, Evidence.PROVE, Evidence.NONE))  # NONE: a complete row of schema version 1
_EVIDENCE_BY_STATE = {
    Technology.CPU: {
        DebitState.PENDING: frozenset((Evidence.NONE,)),
        DebitState.COMPLETE: frozenset((Evidence.DEBIT, Evidence.PROVE, Evidence.LOG, Evidence.NONE)),
        DebitState.VOID: frozenset((Evidence.DEBIT, Evidence.LOG, Evidence.COUNTER, Evidence.NONE)),
        DebitState.UNCONFIRMED: frozenset((Evidence.NONE, Evidence.UNPROVABLE)),
    },
    Technology.M1: {  # no schema-1 rows, and no GET TRANSACTION PROVE
        DebitState.PENDING: frozenset((Evidence.NONE,)),
        DebitState.COMPLETE: frozenset((Evidence.DEBIT, Evidence.LOG)),
        DebitState.VOID: frozenset((Evidence.DEBIT, Evidence.LOG, Evidence.COUNTER)),
        DebitState.UNCONFIRMED: frozenset((Evidence.NONE, Evidence.UNPROVABLE)),
    },
}


class EventKind(str, enum.Enum):
    """What an event tells the operator."""

    DUPLICATE_CARD = "duplicate_card"  # a card showed a counter already journaled: a copy, or a restored card image
    COUNTER_BACKWARDS = "counter_backwards"  # a card's counter is below a debit journaled for it: a restored image
    EXCHANGE_CARD = "exchange_card"  # a card the cut-over policy refuses tapped: the rider was asked to exchange it
    DAMAGED_ROW = "damaged_row"  # a journal row set aside (quarantined) because it could not be read
    PSAM_SERIAL_REPEAT = "psam_serial_repeat"  # the PSAM gave a transaction serial the journal already holds


@dataclass(slots=True)
class JournalEntry:
    """One journal row as the validator and the back office read it.

    ``changed_at``: when the state last changed, by the journal's clock (``None`` while the row is still pending;
    the intent's own time is ``record.when``, the date-time sent to the card); ``reason``: why a void row was voided or
    an unconfirmed one given up, in words; for a row settled from the card's log (evidence ``log``), the 0x18 record in
    hex (:attr:`card_record`); empty otherwise.
    """

    row_id: int
    record: DebitRecord
    changed_at: dt.datetime | None
    reason: str

    @property
    def card_record(self) -> bytes | None:
        """The card's own record that settled this row (evidence ``log``: a CPU card's 0x18 record, an M1 card's trip
        record), else ``None``."""
        return bytes.fromhex(self.reason) if self.record.evidence is Evidence.LOG else None

    @property
    def searchable(self) -> bool:
        """Still open and still worth asking the card about: pending, or unconfirmed and not given up."""
        rec = self.record
        return rec.state is DebitState.PENDING or (rec.state is DebitState.UNCONFIRMED
                                                  and rec.evidence is Evidence.NONE)


@dataclass(frozen=True, slots=True)
class JournalEvent:
    """Something the operator must hear of that is not a debit: a duplicated card, a quarantined row.

    ``at``: the journal clock's local time; ``card_serial`` and ``row_ref`` (a debit row the event is about) may be
    absent."""

    event_id: int
    at: dt.datetime
    kind: str
    card_serial: bytes | None
    row_ref: int | None
    detail: str


def storable(text: str) -> bool:
    """Whether SQLite can store ``text`` (UTF-8 cannot encode lone surrogates, which is also how text read from a
    file that was not UTF-8 comes back)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class _Fields:
    """Field checks of one stored row; each failure is a :class:`DamagedRow` naming the field."""

    __slots__ = ("names", "row", "row_id", "table")

    def __init__(self, row: list[Any] | tuple[Any, ...], names: tuple[str, ...], table: str) -> None:
        self.row = row
        self.names = names
        self.table = table
        row_id = row[0] if len(row) == len(names) else None
        if type(row_id) is not int:
            raise DamagedRow(-1 if row_id is None or type(row_id) is not int else row_id, "row",
                             f"{len(row)} fields where {len(names)} are stored" if len(row) != len(names)
                             else f"id is {type(row_id).__name__}", table=table)
        self.row_id = row_id

    def fail(self, index: int, reason: str) -> NoReturn:
        raise DamagedRow(self.row_id, self.names[index], reason, table=self.table)

    def text(self, index: int, *, empty: bool = True) -> str:
        value = self.row[index]
        if type(value) is not str:
            self.fail(index, f"text expected, found {_kind(value)}")
        if not empty and not value:
            self.fail(index, "empty")
        if not value.isascii() and not storable(value):
            self.fail(index, "not UTF-8 text")
        return value

    def hex(self, index: int, size: int) -> bytes:
        value = self.row[index]
        if type(value) is not str or len(value) != 2 * size:
            self.fail(index, f"{size} bytes of hex expected, found {_kind(value)}")
        try:
            raw = bytes.fromhex(value)
        except ValueError:
            raw = b""
        if len(raw) != size:
            self.fail(index, f"not hex: {value!r}")
        return raw

    def optional_hex(self, index: int, size: int) -> bytes | None:
        return None if self.row[index] is None else self.hex(index, size)

    def integer(self, index: int, low: int, high: int) -> int:
        value = self.row[index]
        if type(value) is not int:
            self.fail(index, f"integer expected, found {_kind(value)}")
        if not low <= value <= high:
            self.fail(index, f"{value} is outside {low}..{high}")
        return value

    def when(self, index: int) -> dt.datetime:
        value = self.text(index, empty=False)
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            self.fail(index, f"not an ISO 8601 date-time: {value!r}")
        if parsed.tzinfo is not None:
            self.fail(index, f"a local date-time has no offset: {value!r}")
        return parsed

    def optional_when(self, index: int) -> dt.datetime | None:
        return None if self.row[index] is None else self.when(index)


def _kind(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:40] + "..."
        return f"text {shown!r}" if storable(shown) else "text that is not UTF-8"
    if isinstance(value, bytes):
        return f"a blob of {len(value)} bytes"
    return f"{type(value).__name__} {value!r}"


def decode_entry(row: list[Any] | tuple[Any, ...]) -> JournalEntry:
    """The stored row (in :data:`COLUMNS` order) back into a :class:`JournalEntry`; :class:`DamagedRow` when any
    field is not what the journal writes."""
    f = _Fields(row, COLUMNS, "debit")
    technology = _TECHNOLOGIES.get(row[TECHNOLOGY])
    if technology is None:
        f.fail(TECHNOLOGY, f"unknown technology {_kind(row[TECHNOLOGY])}")
    m1 = technology is Technology.M1
    stored_uid = row[CARD_UID]
    long_uid = type(stored_uid) is str and len(stored_uid) == 2 * UID_SIZES[1]
    card_uid = f.optional_hex(CARD_UID, UID_SIZES[long_uid])
    if m1 != (card_uid is not None):
        f.fail(CARD_UID, f"a row of technology {technology.value} {'has a' if m1 else 'has no'} card UID, "
               f"found {_kind(stored_uid)}")
    state = _STATES.get(row[STATE])
    if state is None:
        f.fail(STATE, f"unknown state {_kind(row[STATE])}")
    evidence = _EVIDENCE.get(row[EVIDENCE])
    if evidence is None or evidence not in _EVIDENCE_BY_STATE[technology][state]:
        f.fail(EVIDENCE, f"{_kind(row[EVIDENCE])} is not evidence a {state.value} row of technology {technology.value} "
               "can have")
    verified = row[18]
    if verified not in (None, 0, 1) or type(verified) not in (type(None), int):
        f.fail(18, f"0, 1 or NULL expected, found {_kind(verified)}")
    tac, mac2 = f.optional_hex(16, 4), f.optional_hex(17, 4)
    has_tac = state is DebitState.COMPLETE and (m1 or evidence in _WITH_TAC)
    has_mac2 = has_tac and not m1  # an M1 row's TAC is the PSAM's transaction MAC: there is no MAC2
    if (tac is None) == has_tac or (mac2 is None) == has_mac2:
        shown = (f"{'has a' if has_tac else 'has no'} TAC and no MAC2" if m1
                 else f"{'has' if has_tac else 'has no'} TAC and MAC2")
        f.fail(16 if (tac is None) == has_tac else 17,
               f"a {state.value} {'M1 ' if m1 else ''}row {shown} (evidence {evidence.value or 'none'})")
    if verified is not None and not has_mac2:
        f.fail(18, f"a {state.value} row without MAC2 has no MAC2 check")
    record = DebitRecord(
        card_serial=f.hex(CARD, 10), issuer_id=f.hex(2, 8), card_type=f.integer(3, 0, 0xFF),
        offline_atc=f.integer(ATC, 0, 0xFFFF), amount=f.integer(5, 0, 0xFFFFFFFF),
        balance_before=f.integer(6, -BALANCE_LIMIT, BALANCE_LIMIT), trans_type=f.integer(7, 0, 0xFF),
        terminal_id=f.hex(TERMINAL, 6), tsn=f.integer(TSN, 0, 0xFFFFFFFF), when=f.when(10),
        key_version=f.integer(11, 0, 0xFF), algorithm=f.integer(12, 0, 0xFF), mac1=f.hex(13, 4),
        fare_note=f.text(14), state=state, tac=tac, mac2=mac2,
        mac2_verified=None if verified is None else bool(verified), evidence=evidence, technology=technology,
        card_uid=card_uid)
    changed = f.optional_when(CHANGED_AT)
    if (changed is None) != (state is DebitState.PENDING):
        f.fail(CHANGED_AT, f"a {state.value} row {'has no' if changed is None else 'has a'} time of change")
    if evidence is Evidence.LOG:
        f.hex(19, LOG_RECORD_SIZES[technology])
    return JournalEntry(f.row_id, record, changed, f.text(19))


def decode_event(row: list[Any] | tuple[Any, ...]) -> JournalEvent:
    """A stored event (in :data:`EVENT_COLUMNS` order) back into a :class:`JournalEvent`; :class:`DamagedRow`
    (table ``event``) when a field is not what the journal writes."""
    f = _Fields(row, EVENT_COLUMNS, "event")
    row_ref = row[4]
    if row_ref is not None:
        f.integer(4, 1, 2**63 - 1)
    return JournalEvent(f.row_id, f.when(1), f.text(2, empty=False), f.optional_hex(3, 10), row_ref, f.text(5))
