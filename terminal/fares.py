"""Fares: what one tap costs, decided from the fare file and from what the card's own records say.

The engine is pure (no I/O, no clock: the time of the tap comes in the :class:`FareContext`) and is asked once per
tap, so everything that does not depend on the card is worked out when the file is loaded. The tap state machine
asks :meth:`FareRules.needs_for` what to read from the card, calls :meth:`FareRules.quote`, and then, in one composite
purchase of ``quote.amount``, writes ``quote.bus_record`` (when there is one) to file 0x1A and a 0x1E record of type
``quote.record_type``, which it builds itself.

Rules applied in order, each documented in ``docs/fares.md``: the line's fare (flat, or tap-on / tap-off sections),
then the card type's rule (percent, fixed, free or refused), then the transfer discount.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from protocols.card_files import (
    BusProcessRecord,
    BusStop,
    TradeState,
    TransitRecord,
    TransitRecordType,
    alight_bus,
    blank_bus_record,
    board_bus,
)

from .fare_config import (
    CardTypeRule,
    FareTable,
    FlatFare,
    SectionFares,
    TransferRule,
    card_type_label,
    encode_line,
    line_name,
    read_fares,
)

NEED_TRANSIT_RECORD = "transit_record"
"""Read the newest 0x1E record (``00 B2 01 F4 30``): transfer discounts are decided from it."""

NEED_BUS_RECORD = "bus_record"
"""Read the 0x1A bus record (``00 B2 02 D4 80``): tap-on / tap-off fares are decided from it."""

SINGLE_FARE = TransitRecordType.SINGLE_FARE.value
BOARD = TransitRecordType.BOARD.value
ALIGHT = TransitRecordType.ALIGHT.value

_RIDES = frozenset({ALIGHT, SINGLE_FARE})  # a 0x1E record of a finished ride; a tap-on is not one yet
_BOARDED = TradeState.BOARDED.value
_NO_TIME = dt.timedelta(0)


@dataclass(frozen=True, slots=True)
class FareContext:
    """Everything a fare depends on for one tap.

    ``card_type`` is byte 10 of file 0x17; ``stop`` is the validator's place (made once per stop and reused);
    ``transit_record`` is the card's newest 0x1E record and ``bus_record`` its 0x1A bus record, each ``None`` when it
    was not read (not in :meth:`FareRules.needs_for`) or the card has none.
    """

    card_type: int
    now: dt.datetime
    stop: BusStop
    transit_record: TransitRecord | None = None
    bus_record: BusProcessRecord | None = None


@dataclass(frozen=True, slots=True)
class FareQuote:
    """What to charge and what to write.

    ``amount`` (fen) is the whole debit, ``penalty`` included: the part of it that settles an earlier trip the rider
    never tapped off. ``rule`` says why, for the journal (``flat, student 50%, transfer -100``). ``record_type`` is the
    0x1E type to write (06 single fare, 03 board, 04 alight); ``bus_record`` is the new 0x1A bus record, or ``None``
    when the tap does not touch it. The tap state machine may set its ``transaction_serial`` before writing it.
    """

    amount: int
    rule: str
    record_type: int
    bus_record: BusProcessRecord | None = None
    penalty: int = 0


@dataclass(frozen=True, slots=True)
class FareRefusal:
    """The card cannot ride here: ``reason`` is the text for the display and the journal.

    ``kind`` is ``"card_type"`` (the fare file refuses the card type) or ``"line"`` (the file has no fare for the
    validator's line: a set-up fault rather than the rider's).
    """

    reason: str
    kind: Literal["card_type", "line"]


@dataclass(frozen=True, slots=True)
class _Card:
    """One card type code, as the loaded rules treat it."""

    code: int
    rule: CardTypeRule | None  # None: full fare
    note: str  # ", student 50%", or "" for full fare
    transfer: bool  # whether the transfer discount is open to this card type
    refusal: FareRefusal | None

    def fare(self, full: int) -> int:
        return full if self.rule is None else self.rule.apply(full)


def _card(code: int, table: FareTable) -> _Card:
    rule = table.card_rule(code)
    label = card_type_label(code)
    transfer = table.transfer is not None and table.transfer.applies_to(code)
    if rule is None or (rule.kind == "percent" and rule.value == 100):
        return _Card(code, None, "", transfer, None)
    if rule.kind == "refuse":
        return _Card(code, rule, "", False, FareRefusal(rule.reason or f"{label} card not accepted", "card_type"))
    return _Card(code, rule, f", {label} {rule.note}", transfer, None)


class _FlatLine:
    """A flat-fare line: every quote depends only on the card type and on whether a transfer applies, so each one is
    made once, on first use, and handed out again."""

    __slots__ = ("base", "transfer", "_quotes")

    def __init__(self, fare: FlatFare, transfer: TransferRule | None) -> None:
        self.base = fare.base
        self.transfer = transfer
        self._quotes: dict[int, tuple[FareQuote, FareQuote | None]] = {}

    def _make(self, card: _Card) -> tuple[FareQuote, FareQuote | None]:
        amount = card.fare(self.base)
        plain = FareQuote(amount, "flat" + card.note, SINGLE_FARE)
        transferred = None
        if self.transfer is not None and card.transfer and amount:
            transferred = FareQuote(self.transfer.apply(amount), f"flat{card.note}, {self.transfer.note}", SINGLE_FARE)
        pair = self._quotes[card.code] = (plain, transferred)
        return pair

    def quote(self, rules: FareRules, ctx: FareContext, card: _Card) -> FareQuote:
        plain, transferred = self._quotes.get(card.code) or self._make(card)
        if transferred is not None and rules.transfer_due(ctx):
            return transferred
        return plain


class _SectionLine:
    """A tap-on / tap-off line: the card's 0x1A bus record says whether this tap boards, alights, or first settles a
    trip the rider never tapped off."""

    __slots__ = ("fares", "transfer", "_max_trip", "_blank", "_by_stations")

    def __init__(self, fares: SectionFares, transfer: TransferRule | None) -> None:
        self.fares = fares
        self.transfer = transfer
        self._max_trip = dt.timedelta(minutes=fares.max_trip_minutes)
        self._blank = blank_bus_record()  # only ever copied, never handed out
        self._by_stations = not fares.matrix

    def quote(self, rules: FareRules, ctx: FareContext, card: _Card) -> FareQuote:
        record = ctx.bus_record
        if record is None:
            return self._board(rules, ctx, card, self._blank, 0)
        if record.trade_state != _BOARDED:
            return self._board(rules, ctx, card, record, 0)
        stop = ctx.stop
        boarded = record.boarding_time
        if (record.boarding_line == stop.line and record.boarding_vehicle == stop.vehicle
                and boarded is not None and ctx.now - boarded <= self._max_trip):
            return self._alight(ctx, card, record)
        # An open trip this validator cannot close: the rider never tapped off, and owes the marked fare.
        return self._board(rules, ctx, card, record, max(0, record.max_fare - record.trade_amount))

    def _board(self, rules: FareRules, ctx: FareContext, card: _Card, record: BusProcessRecord,
               penalty: int) -> FareQuote:
        """Tap-on: charge the boarding fare and mark the card with the fare owed if the rider never taps off.

        The record's trade amount is set to what this tap counts toward the trip (the boarding fare, plus what is left
        of a fixed transfer discount the boarding fare could not use up), which the tap-off subtracts.
        """
        charge = credit = card.fare(self.fares.boarding_fare)
        marked = card.fare(self.fares.max_fare)
        note = card.note
        transfer = self.transfer
        if transfer is not None and card.transfer and marked and (transfer.off or charge) and rules.transfer_due(ctx):
            charge = transfer.apply(charge)
            if transfer.off is not None:
                credit = max(credit, transfer.off)  # what the boarding fare could not absorb counts at tap-off
            note = f"{note}, {transfer.note}"
        new = board_bus(record, ctx.stop, ctx.now, marked)
        new.trade_amount = credit
        rule = f"missed tap-off {penalty}, board{note}" if penalty else f"board{note}"
        return FareQuote(penalty + charge, rule, BOARD, new, penalty)

    def _alight(self, ctx: FareContext, card: _Card, record: BusProcessRecord) -> FareQuote:
        """Tap-off: the section fare, never more than the fare the card was marked with at tap-on, less what was
        counted at tap-on; the record keeps the trip's fare as its trade amount."""
        boarded, alighted = record.boarding_station, ctx.stop.station
        stations = abs(alighted - boarded)
        fare = min(card.fare(self.fares.fare(boarded, alighted)), record.max_fare)
        new = alight_bus(record, ctx.stop, ctx.now, fare, distance=stations)
        where = (f"{stations} station" + ("" if stations == 1 else "s")) if self._by_stations \
            else f"{boarded}-{alighted}"
        return FareQuote(max(0, fare - record.trade_amount), f"alight {where}{card.note}", ALIGHT, new)


_Line = _FlatLine | _SectionLine


class FareRules:
    """A loaded fare file, ready to quote taps; build it once (``load_fares``) and share it.

    ``needs`` is what some line of the file needs read from the card; :meth:`needs_for` says it for one line.
    """

    __slots__ = ("table", "transfer", "needs", "_cards", "_lines", "_default", "_needs_by_line", "_window")

    def __init__(self, table: FareTable) -> None:
        self.table = table
        self.transfer = table.transfer
        self._window = dt.timedelta(minutes=table.transfer.window_minutes) if table.transfer else _NO_TIME
        self._cards = tuple(_card(code, table) for code in range(256))
        self._lines: dict[bytes, _Line] = {line: self._plan(fare) for line, fare in table.lines.items()}
        self._default = self._plan(table.default) if table.default is not None else None
        self._needs_by_line: Mapping[bytes, frozenset[str]] = {
            line: self._needs(plan) for line, plan in self._lines.items()}
        plans = list(self._lines.values()) + ([self._default] if self._default else [])
        self.needs: frozenset[str] = frozenset().union(*(self._needs(p) for p in plans))

    def _plan(self, fare: FlatFare | SectionFares) -> _Line:
        if isinstance(fare, FlatFare):
            return _FlatLine(fare, self.transfer)
        return _SectionLine(fare, self.transfer)

    def _needs(self, plan: _Line) -> frozenset[str]:
        needs = {NEED_TRANSIT_RECORD} if self.transfer is not None else set()
        if isinstance(plan, _SectionLine):
            needs.add(NEED_BUS_RECORD)
        return frozenset(needs)

    def needs_for(self, line: bytes) -> frozenset[str]:
        """What a validator on ``line`` (2 bytes, as in :class:`BusStop`) must read from the card before quoting:
        a subset of {NEED_TRANSIT_RECORD, NEED_BUS_RECORD}; empty for a plain flat fare."""
        needs = self._needs_by_line.get(line)
        if needs is not None:
            return needs
        return self._needs(self._default) if self._default is not None else frozenset()

    def line_code(self, number: int) -> bytes:
        """A line number as this file's networks store it on cards (``line_numbers``), for :class:`BusStop`."""
        return encode_line(number, self.table.line_numbers)

    def transfer_due(self, ctx: FareContext) -> bool:
        """Whether this tap is a transfer: the card's newest 0x1E record is a finished, paid ride (type 04 or 06,
        amount above zero) in this city, on another line, at most ``window_minutes`` before now."""
        record = ctx.transit_record
        if record is None or record.amount <= 0 or record.record_type not in _RIDES:
            return False
        stop = ctx.stop
        if record.line == stop.line or record.acceptor_city != stop.city_code:
            return False
        when = record.transaction_time
        return when is not None and _NO_TIME <= ctx.now - when <= self._window

    def quote(self, ctx: FareContext) -> FareQuote | FareRefusal:
        """The fare of one tap, or why the card cannot ride."""
        card = self._cards[ctx.card_type]
        if card.refusal is not None:
            return card.refusal
        plan = self._lines.get(ctx.stop.line, self._default)
        if plan is None:
            return FareRefusal(f"no fare for line {line_name(ctx.stop.line, self.table.line_numbers)}", "line")
        return plan.quote(self, ctx, card)


def load_fares(path: str | Path) -> FareRules:
    """Read, validate and prepare a fare file; a bad file is a :class:`terminal.errors.ConfigError` naming the field."""
    return FareRules(read_fares(path))
