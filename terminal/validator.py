"""The validator: one tap at a time, whatever the card's purse technology, and recovery of debits torn mid-flight.

A tap runs the same steps for every card; what depends on the technology is a purse flow's (:mod:`terminal.flows`: a
CPU card's composite purchase, an M1 card's value-block debit), chosen by the card's activation:

1. the flow identifies the card (a CPU card's SELECT and file 0x15; an M1 card's issuance and purse blocks);
2. the card's open journal rows are settled from its own evidence, before anything more is charged to it;
3. the repeat-tap rule; the flow's checks (dates, state, city; the card type); the blacklist (the flow marks the card
   blocked); the cut-over policy for the card's technology and type (:mod:`terminal.cutover`);
4. the fare, from the fare rules and what the flow reads of the card's earlier rides;
5. the flow's debit: the journal's intent goes before the step that takes the money, the completion after it.

Money is conserved: a card that leaves while its debit's fate is unknown leaves an open row, and nothing more is
charged to that card until the card itself has settled it, however late it comes back (also after a restart: open
rows are found in the journal by card serial). A debit proven to be the card's newest purchase makes this tap that
ride's (accepted, "recovered", nothing charged) when the card is back within ``retap_same_ride_s`` of it; later, the
rider walked away with that ride and this tap is a new one, charged. The recovery window only says when a row still
pending is reported to the back office as unconfirmed.

One card never stops the validator: a card showing a counter the journal already holds (a copy of a card, a restored
card image) is declined and journaled as an event for the operator. Only the validator's own faults (its PSAM missing,
silent or repeating a transaction serial; its journal unwritable or damaged under the ``stop`` policy) put it out of
service.

The validator is driven by its caller, one :meth:`Validator.poll` at a time: it never sleeps, starts no thread, and
reads time only from the injected clock.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from protocols.card_files import BusStop, TransitRecord, TransitRecordType
from protocols.errors import ProtocolError

from .blacklist import Blacklist
from .channel import Channel
from .clock import Clock
from .config import ValidatorConfig
from .errors import (
    CardRemoved,
    ConfigError,
    LinkError,
    LinkTimeout,
    OutOfService,
    ReaderGone,
    StatusError,
)
from .fares import FareContext, FareQuote, FareRefusal, FareRules
from .flows import CardView, CpuFlow, FlowHost, M1Flow, PurseFlow, TapStop
from .journal import DuplicateDebit, EventKind, Journal, JournalEntry, JournalError
from .link import Activation, Link
from .open_debits import OpenDebits
from .outcome import Decline, TapOutcome, TapStatus
from .psam import Psam
from .records import DebitRecord, Evidence
from .trace import ExchangeLog, Tracer, Tracers

_RECENT_LIMIT = 4096  # remembered accepted cards before expired ones are pruned
_SINGLE_FARE = TransitRecordType.SINGLE_FARE

FlowFactory = Callable[[FlowHost], PurseFlow]
DEFAULT_FLOWS: tuple[FlowFactory, ...] = (M1Flow, CpuFlow)
"""The purse flows a validator runs unless told otherwise, tried in order on each activation."""


@dataclass(slots=True)
class _Pending:
    """A debit torn mid-flight whose recovery window still runs."""

    row_id: int
    record: DebitRecord
    deadline: dt.datetime


class Validator:
    """A bus validator: a card reader, a PSAM, fare rules, a journal, a blacklist and a clock.

    Call :meth:`start` once (it raises :class:`OutOfService` when the PSAM is missing or silent, and the journal's
    :class:`~terminal.journal.DamagedRow` under the ``stop`` policy), then :meth:`poll` in the validator's loop.
    ``tracer`` sees every card and PSAM exchange (a trace file, a live display); ``keep_exchanges`` keeps each tap's
    in its outcome (:attr:`TapOutcome.exchanges`), which a validator whose taps nobody reads exchange by exchange
    turns off: with neither, no exchange is recorded at all. The validator reads its journal under
    its ``damaged_rows`` setting. ``flows`` make the purse flows it runs (:data:`DEFAULT_FLOWS`), each given the
    validator as its :class:`~terminal.flows.FlowHost`.
    """

    def __init__(self, card: Link, sam: Link, fares: FareRules, journal: Journal, *, clock: Clock,
                 blacklist: Blacklist | None = None, config: ValidatorConfig | None = None,
                 tracer: Tracer | None = None, keep_exchanges: bool = True,
                 flows: Sequence[FlowFactory] = DEFAULT_FLOWS) -> None:
        self.config = config or ValidatorConfig()
        self.fares = fares
        self.journal = journal
        self.blacklist = blacklist
        self.clock = clock
        self._log = ExchangeLog() if keep_exchanges else None
        observer = tracer
        if self._log is not None:
            observer = self._log if tracer is None else Tracers(self._log, tracer)
        self.card = Channel(card, peer="card", timeout=self.config.card_timeout_s, tracer=observer)
        self.psam = Psam(Channel(sam, peer="PSAM", timeout=self.config.sam_timeout_s, tracer=observer),
                         two_level=self.config.psam_two_level,
                         maintenance_key_version=self.config.maintenance_key_version)
        self.out_of_service: str | None = "not started"
        self.stop: BusStop | None = None
        self.needs: frozenset[str] = frozenset()
        self._open = OpenDebits(journal)
        self._pending: dict[int, _Pending] = {}  # rows whose recovery window still runs, by row id
        self._reported: set[int] = set()  # quarantined rows already journaled as events
        self._recent: dict[bytes, dt.datetime] = {}
        self._window = dt.timedelta(seconds=self.config.recovery_window_s)
        self._repeat = dt.timedelta(seconds=self.config.repeat_tap_s)
        self._same_ride = dt.timedelta(seconds=self.config.retap_same_ride_s)
        self.flows: tuple[PurseFlow, ...] = tuple(make(self) for make in flows)

    # -- life cycle -------------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the PSAM and take up the debits a previous run left open."""
        place = self.config.place
        line = self.fares.line_code(place.line)
        self.needs = self.fares.needs_for(line)
        for flow in self.flows:
            flow.start()
        try:
            self.psam.start()
        except OutOfService as exc:
            self.out_of_service = str(exc)
            raise
        self.stop = BusStop(place.city_code, place.institution_id, place.operator_code, line, place.station,
                            place.vehicle, b"\0\0" + self.psam.terminal_id)
        self.journal.damaged = self.config.damaged_rows
        try:
            self._reported = {e.row_ref for e in self.journal.events()
                              if e.kind == EventKind.DAMAGED_ROW.value and e.row_ref is not None}
            pending = self._open.load()
            self._report_quarantined()
        except JournalError as exc:
            self.out_of_service = f"journal: {exc}"
            raise
        self._pending = {e.row_id: _Pending(e.row_id, e.record, e.record.when + self._window) for e in pending}
        self.out_of_service = None

    def arrive(self, station: int) -> None:
        """The bus reached ``station`` (from the driver's console or GPS): taps from now on board or alight here."""
        if self.stop is None:
            raise OutOfService("not started")
        if not 0 <= station <= 0xFF:
            raise ConfigError(f"station must be 0..255, got {station}")
        self.stop = dataclasses.replace(self.stop, station=station)

    @property
    def pending(self) -> list[DebitRecord]:
        """The torn debits whose recovery window still runs."""
        return [p.record for p in self._pending.values()]

    def expire(self) -> int:
        """Report the torn debits whose recovery window has ended to the back office (``unconfirmed``: they stay
        open, and their cards still settle them); returns how many."""
        if not self._pending:
            return 0
        now = self.clock.now()
        expired = [p for p in self._pending.values() if p.deadline <= now]
        for p in expired:
            self.journal.mark_unconfirmed(p.row_id)
            del self._pending[p.row_id]
        return len(expired)

    def poll(self, timeout: float = 0.0) -> TapOutcome | None:
        """Look for a card once; when one is there, run its tap and return the outcome, else ``None``.

        Raises :class:`OutOfService` while the validator cannot take fares (its PSAM or its journal failed: call
        :meth:`start` to try again) and :class:`terminal.errors.ReaderGone` when the card reader fails (a driver that
        recovers by itself, as the PN532's does, raises it only once that has failed; the next poll tries the reader
        again). Nothing else: a card never puts the validator out of service, an activation that goes wrong on the
        line is no tap (``None``), and whatever a tap meets (a card taken away, a lost answer, a malformed one) ends
        in its outcome.
        """
        if self.out_of_service is not None:
            raise OutOfService(self.out_of_service)
        try:
            self.expire()
        except JournalError as exc:
            self.out_of_service = f"journal: {exc}"
            raise OutOfService(self.out_of_service) from None
        try:
            activation = self.card.activate(timeout)
        except ReaderGone:
            raise
        except (LinkError, ProtocolError):
            return None  # a card that answered its activation wrongly, or a line that garbled it: looked for again
        if activation is None:
            return None
        log = self._log
        if log is not None:
            log.exchanges = []
        flow = self._flow_for(activation)
        outcome = self._tap(flow, activation)
        if flow is not None:
            outcome.technology = flow.technology
        if log is not None:
            outcome.exchanges = log.exchanges
        try:
            self.card.link.deactivate()
        except LinkError:
            pass
        return outcome

    # -- one tap ----------------------------------------------------------------------------------------------------

    def _flow_for(self, activation: Activation) -> PurseFlow | None:
        return next((flow for flow in self.flows if flow.takes(activation)), None)

    def _tap(self, flow: PurseFlow | None, activation: Activation) -> TapOutcome:
        serial: bytes | None = None
        try:
            now = self.clock.now()
            if flow is None:
                raise TapStop(TapOutcome(TapStatus.DECLINED, Decline.NOT_TRANSIT_CARD,
                                         f"no purse flow takes a {activation.protocol} card"))
            card = flow.identify(activation, now)
            serial = card.serial
            unsettled = self._settle_open(flow, card, now)
            last = self._recent.get(serial)
            if last is not None and now - last < self._repeat:
                raise TapStop(TapOutcome(TapStatus.DECLINED, Decline.REPEAT_TAP, card_serial=serial))
            flow.check(card, now)
            if self.blacklist is not None and serial in self.blacklist:
                raise self.decline(Decline.BLACKLISTED, serial, flow.block(card), card_type=card.card_type)
            self._check_cutover(flow, card, now)
            quote = self._quote(flow, card, now)
            outcome = flow.purchase(card, quote, now, unsettled)
            if outcome.accepted:
                self._remember(serial, now)
            return outcome
        except TapStop as stop:
            return stop.outcome
        except (CardRemoved, LinkTimeout) as exc:
            return TapOutcome(TapStatus.DECLINED, Decline.CARD_REMOVED, str(exc), card_serial=serial)
        except StatusError as exc:
            reason = Decline.SAM_REFUSED if exc.peer == "PSAM" else Decline.CARD_ERROR
            return TapOutcome(TapStatus.DECLINED, reason, str(exc), card_serial=serial)
        except ProtocolError as exc:
            return TapOutcome(TapStatus.DECLINED, Decline.CARD_ERROR, f"malformed answer: {exc}", card_serial=serial)
        except OutOfService as exc:
            self.out_of_service = str(exc)
            return TapOutcome(TapStatus.OUT_OF_SERVICE, detail=str(exc), card_serial=serial)
        except JournalError as exc:  # the validator's own journal failed: a fault of the validator, not of the card
            self.out_of_service = f"journal: {exc}"
            return TapOutcome(TapStatus.OUT_OF_SERVICE, detail=self.out_of_service, card_serial=serial)

    def decline(self, reason: Decline, serial: bytes, detail: str = "", **fields: Any) -> TapStop:
        """The stop that declines this tap for ``reason``."""
        return TapStop(TapOutcome(TapStatus.DECLINED, reason, detail, card_serial=serial, **fields))

    def _check_cutover(self, flow: PurseFlow, card: CardView, now: dt.datetime) -> None:
        """A card the cut-over policy no longer accepts: declined, asked to be exchanged, and counted in the journal's
        events."""
        assert card.card_type is not None
        refused = self.config.cutover.refusal(flow.technology, card.card_type, now.date())
        if refused is not None:
            self.journal.record_event(EventKind.EXCHANGE_CARD, refused, card_serial=card.serial)
            raise self.decline(Decline.EXCHANGE_CARD, card.serial, refused, card_type=card.card_type)

    def _quote(self, flow: PurseFlow, card: CardView, now: dt.datetime) -> FareQuote:
        line_scope = self.config.repeat_tap_scope == "line"
        transit, bus = flow.records(card, self.needs, line_scope)
        card_type = card.card_type
        assert self.stop is not None and card_type is not None
        if line_scope and transit is not None:
            self._paid_on_line(transit, card.serial, card_type, now)
        quote = self.fares.quote(FareContext(card_type, now, self.stop, transit, bus))
        if isinstance(quote, FareRefusal):
            reason = Decline.CARD_TYPE_REFUSED if quote.kind == "card_type" else Decline.NO_FARE
            raise self.decline(reason, card.serial, quote.reason, card_type=card_type)
        return quote

    def _paid_on_line(self, transit: TransitRecord, serial: bytes, card_type: int, now: dt.datetime) -> None:
        """The repeat-tap rule over the card's own newest transit record: a single fare paid on this operator's line
        less than ``repeat_tap_s`` ago (at any of its validators, a torn debit included) is not charged again."""
        stop = self.stop
        assert stop is not None
        when = transit.transaction_time
        if transit.record_type == _SINGLE_FARE and transit.operator_code == stop.operator_code \
                and transit.line == stop.line and when is not None and dt.timedelta(0) <= now - when < self._repeat:
            raise self.decline(Decline.REPEAT_TAP, serial, f"paid on this line at {when.time().isoformat()} "
                               f"(terminal {transit.device_id[2:].hex().upper()})", card_type=card_type)

    # -- the journal's part of a debit ---------------------------------------------------------------------------------

    def record_intent(self, record: DebitRecord) -> int:
        """Journal the intent. A card showing a counter the journal already holds is a copy of a card or a restored
        card image: declined, and journaled as an event. A PSAM repeating a transaction serial is the validator's own
        fault: out of service."""
        try:
            return self.journal.record_intent(record)
        except DuplicateDebit as dup:
            if dup.key == "card":
                self.journal.record_event(
                    EventKind.DUPLICATE_CARD, f"ATC {record.offline_atc} is already journaled as row {dup.existing}: "
                    "a copy of the card, or a card image restored from a copy", card_serial=record.card_serial,
                    row_ref=dup.existing)
                raise self.decline(Decline.DUPLICATE_CARD, record.card_serial,
                                   f"ATC {record.offline_atc} already journaled as row {dup.existing}",
                                   card_type=record.card_type) from None
            if dup.key != "terminal":
                raise
            terminal = record.terminal_id.hex().upper()
            self.journal.record_event(
                EventKind.PSAM_SERIAL_REPEAT, f"terminal {terminal} TSN {record.tsn} is already journaled as row "
                f"{dup.existing}", row_ref=dup.existing)
            raise OutOfService(f"the PSAM's transaction serial {record.tsn} is already journaled for terminal "
                               f"{terminal} (row {dup.existing}): the PSAM is behind this journal (a replaced or "
                               "restored PSAM, or another validator's journal)") from None

    def torn(self, row: int, record: DebitRecord, now: dt.datetime) -> None:
        """The card left while its debit's fate was unknown: the row stays open until the card proves which."""
        self._pending[row] = _Pending(row, record, now + self._window)
        self._open.opened(record.card_serial, row)

    def _remember(self, serial: bytes, now: dt.datetime) -> None:
        recent = self._recent
        if len(recent) >= _RECENT_LIMIT:
            cutoff = now - self._repeat
            for key in [k for k, when in recent.items() if when <= cutoff]:
                del recent[key]
        recent[serial] = now

    # -- torn debits -------------------------------------------------------------------------------------------------

    def _settle_open(self, flow: PurseFlow, card: CardView, now: dt.datetime) -> list[JournalEntry]:
        """Before anything is charged to a card with open rows, the flow settles each from the card's own evidence. A
        debit proven to be the card's newest purchase, made less than ``retap_same_ride_s`` ago, ends the tap: this tap
        is that ride's (accepted, recovered); an older one was the ride the rider walked away with, and this tap is a
        new ride. Returns the rows the flow left for its purchase to settle (a CPU card's counter at INITIALIZE). A
        card that leaves meanwhile ends the tap with "please tap again"; what was settled stays settled.
        """
        rows = self._open.rows(card.serial)
        if self.journal.quarantined:
            self._report_quarantined()
        if not rows:
            return rows
        try:
            unsettled, ride = flow.settle(card, rows)
        except (CardRemoved, LinkTimeout) as exc:
            last = rows[-1]
            raise TapStop(TapOutcome(TapStatus.RETRY, detail=f"settling a torn debit: {exc}", card_serial=card.serial,
                                     fare=last.record.amount, journal_row=last.row_id)) from None
        if ride is not None and any(e.row_id == ride.journal_row and now - e.record.when < self._same_ride
                                    for e in rows):
            self._remember(card.serial, now)
            raise TapStop(ride)
        return unsettled

    def settle_by_counter(self, rows: list[JournalEntry], counter: int, card_type: int | None) -> None:
        """The rows no other evidence settled, against the card's counter (before its next debit): still at the
        row's counter, the debit never happened (void); past it with no evidence left, only the back office can tell
        (given up, unconfirmed); below it, this is a copy or an older image of the card (declined)."""
        for entry in rows:
            rec = entry.record
            if counter == rec.offline_atc:
                self.journal.void(entry.row_id, "no proof from the card and its counter had not moved",
                                  evidence=Evidence.COUNTER)
            elif counter > rec.offline_atc:
                self.journal.give_up(entry.row_id, f"the card's counter is at {counter} and its log holds no "
                                     f"record of counter {rec.offline_atc}: settle from the clearing data")
            else:
                self.journal.record_event(
                    EventKind.COUNTER_BACKWARDS, f"counter {counter} is below row {entry.row_id}'s "
                    f"{rec.offline_atc}: a copy of the card, or a card image restored from a copy",
                    card_serial=rec.card_serial, row_ref=entry.row_id)
                raise self.decline(Decline.DUPLICATE_CARD, rec.card_serial,
                                   f"counter {counter} below row {entry.row_id}'s {rec.offline_atc}",
                                   card_type=card_type)
            self.settled(entry)

    def recovered(self, entry: JournalEntry) -> TapOutcome:
        """The outcome of a tap that a proven torn debit paid for."""
        rec = entry.record
        return TapOutcome(TapStatus.ACCEPTED, card_serial=rec.card_serial, card_type=rec.card_type, fare=rec.amount,
                          rule=rec.fare_note, balance_before=rec.balance_before,
                          balance_after=rec.balance_before - rec.amount, recovered=True, journal_row=entry.row_id)

    def settled(self, entry: JournalEntry) -> None:
        """An open row was settled or given up: no card is asked about it again."""
        self._pending.pop(entry.row_id, None)
        self._open.settled(entry.record.card_serial, entry.row_id)

    def _report_quarantined(self) -> None:
        """Journal an event for each row the ``quarantine`` policy set aside since the last look."""
        for row_id, damage in self.journal.quarantined.items():
            if row_id not in self._reported:
                self._reported.add(row_id)
                self.journal.record_event(EventKind.DAMAGED_ROW, f"set aside: {damage}",
                                          row_ref=row_id if row_id > 0 else None)
