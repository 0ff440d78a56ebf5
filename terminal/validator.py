"""The validator: one tap at a time, from SELECT to the journaled TAC, and recovery of debits torn mid-flight.

A composite purchase (spec §5.2) in as few exchanges as possible: SELECT (the FCI's 9F0C stands in for READ BINARY
0x15), READ BINARY 0x17 (card type, interoperability), only the records the fare rules need, INITIALIZE FOR CAPP
PURCHASE (it gives the balance), the PSAM's MAC1, UPDATE CAPP DATA CACHE for 0x1A (section fares) and 0x1E, the
journal's intent, DEBIT, the PSAM's MAC2 check, the journal's completion.

Money is conserved: the intent is journaled before DEBIT is sent. A card that leaves during DEBIT leaves an open row,
and nothing more is charged to that card until the card itself has settled it, however late it comes back (also after
a restart: open rows are found in the journal by card serial). The card's own evidence, in this order: GET TRANSACTION
PROVE for ATC+1 (MAC2 and TAC: the debit happened); else its 0x18 log, the record of that counter matched by amount,
type, terminal and date-time (the debit happened, with no TAC; or the counter went to another debit: void); else its
counter at the next INITIALIZE (unchanged: the debit never happened, void; moved on with no record left: the row is
given up to the back office). A debit proven to be the card's newest purchase makes this tap that ride's: accepted,
"recovered", nothing charged. The recovery window only says when a row still pending is reported to the back office as
unconfirmed.

One card never stops the validator: a card showing a counter the journal already holds (a copy of a card, a restored
card image) is declined and journaled as an event for the operator. Only the validator's own faults (its PSAM missing,
silent or repeating a transaction serial; its journal unwritable or damaged under the ``stop`` policy) put it out of
service.

The validator is driven by its caller, one :meth:`Validator.poll` at a time: it never sleeps, starts no thread, and reads
time only from the injected clock.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from protocols import card_commands as cc
from protocols.card_files import (
    BUS_RECORD_ID,
    MANAGEMENT_INFO,
    PUBLIC_APP_INFO,
    SFI_MANAGEMENT,
    SFI_PROCESS,
    SFI_PUBLIC_APP_INFO,
    SFI_TRANSACTION_LOG,
    SFI_TRANSIT_LOG,
    TRANSACTION_LOG_RECORD,
    TRANSACTION_LOG_RECORDS,
    TRANSIT_RECORD,
    BusProcessRecord,
    BusStop,
    ManagementInfo,
    PublicAppInfo,
    TransactionLogRecord,
    TransactionType,
    TransitRecord,
    TransitRecordType,
    build_process_record,
    parse_process_record,
)
from protocols.errors import ProtocolError
from protocols.fci import T_UNION_EP_AID, Fci
from protocols.schemes import scheme_of
from protocols.status import format_sw

from .blacklist import Blacklist
from .channel import Channel
from .clock import Clock
from .config import ValidatorConfig
from .errors import CardRemoved, ConfigError, LinkError, LinkTimeout, OutOfService, StatusError
from .fares import NEED_BUS_RECORD, NEED_TRANSIT_RECORD, FareContext, FareQuote, FareRefusal, FareRules
from .journal import DuplicateDebit, EventKind, Journal, JournalEntry, JournalError
from .link import Link
from .open_debits import OpenDebits
from .outcome import Decline, TapOutcome, TapStatus
from .psam import Psam
from .records import DebitRecord, Evidence
from .selection import identify_scheme
from .trace import ExchangeLog, Tracer, Tracers

_SELECT = cc.SelectByName(T_UNION_EP_AID).to_bytes()
_READ_15 = cc.ReadBinary(SFI_PUBLIC_APP_INFO, 0, 30).to_bytes()
_READ_17 = cc.ReadBinary(SFI_MANAGEMENT, 0, 60).to_bytes()
_READ_1E = cc.ReadRecord(SFI_TRANSIT_LOG, 1, le=TRANSIT_RECORD.size).to_bytes()
_READ_1A = cc.ReadRecord(SFI_PROCESS, BUS_RECORD_ID, le=128).to_bytes()
_GET_BALANCE = cc.GetBalance().to_bytes()
_GET_CHALLENGE = cc.GetChallenge(4).to_bytes()
_UPDATE_1E = cc.UpdateCappDataCache(SFI_TRANSIT_LOG, 0, bytes(TRANSIT_RECORD.size)).to_bytes()[:5]
"""``80 DC 00 F0 30``: what goes before every 0x1E record, which is always TRANSIT_RECORD.size bytes."""
_INITIALIZE_KEPT = 256  # INITIALIZE commands kept by amount: a fare file has a handful of amounts
_NO_RECORD = (0x6A83, 0x6A82)
_SELECT_DECLINES = {0x6283: Decline.CARD_LOCKED, 0x6284: Decline.CARD_INVALID, 0x9303: Decline.CARD_INVALID,
                    0x6A82: Decline.NOT_TRANSIT_CARD, 0x6A81: Decline.NOT_TRANSIT_CARD}
_RECENT_LIMIT = 4096  # remembered accepted cards before expired ones are pruned
_READ_18 = tuple(cc.ReadRecord(SFI_TRANSACTION_LOG, number, le=TRANSACTION_LOG_RECORD.size).to_bytes()
                 for number in range(1, TRANSACTION_LOG_RECORDS + 1))
_SINGLE_FARE = TransitRecordType.SINGLE_FARE
_MAC2_FLAGGED = "MAC2 not verified by the PSAM: debit kept, flagged for the back office"
_EP_PURCHASES = frozenset((TransactionType.EP_PURCHASE, TransactionType.COMPOSITE_PURCHASE))
"""Transaction types on the purse's offline counter: the 0x18 records a validator's debit can be."""


class _Stop(Exception):
    """Ends a tap early with its outcome (a decline, a retry, a recovered debit)."""

    def __init__(self, outcome: TapOutcome) -> None:
        super().__init__(outcome.status.value)
        self.outcome = outcome


@dataclass(slots=True)
class _Pending:
    """A debit torn mid-flight whose recovery window still runs."""

    row_id: int
    record: DebitRecord
    deadline: dt.datetime


@dataclass(frozen=True, slots=True)
class _LogRecord:
    """A purse purchase in the card's 0x18 log: the bytes the card gave, and parsed."""

    raw: bytes
    record: TransactionLogRecord

    def shows(self, rec: DebitRecord) -> bool:
        """Whether this is the record of ``rec``'s debit: same counter, amount, type, terminal and date-time."""
        log = self.record
        return (log.atc == rec.offline_atc and log.amount == rec.amount and log.transaction_type == rec.trans_type
                and log.terminal_number == rec.terminal_id and log.when == rec.when)


class Validator:
    """A bus validator: a card reader, a PSAM, fare rules, a journal, a blacklist and a clock.

    Call :meth:`start` once (it raises :class:`OutOfService` when the PSAM is missing or silent, and the journal's
    :class:`~terminal.journal.DamagedRow` under the ``stop`` policy), then :meth:`poll` in the validator's loop.
    ``tracer`` sees every card and PSAM exchange (a trace file, a live display). The validator reads its journal under
    its ``damaged_rows`` setting.
    """

    def __init__(self, card: Link, sam: Link, fares: FareRules, journal: Journal, *, clock: Clock,
                 blacklist: Blacklist | None = None, config: ValidatorConfig | None = None,
                 tracer: Tracer | None = None) -> None:
        self.config = config or ValidatorConfig()
        self.fares = fares
        self.journal = journal
        self.blacklist = blacklist
        self.clock = clock
        self._log = ExchangeLog()
        observer: Tracer = self._log if tracer is None else Tracers(self._log, tracer)
        self.card = Channel(card, peer="card", timeout=self.config.card_timeout_s, tracer=observer)
        self.psam = Psam(Channel(sam, peer="PSAM", timeout=self.config.sam_timeout_s, tracer=observer),
                         two_level=self.config.psam_two_level,
                         maintenance_key_version=self.config.maintenance_key_version)
        self.composite = self.config.purchase == "composite"
        self.out_of_service: str | None = "not started"
        self.stop: BusStop | None = None
        self._needs: frozenset[str] = frozenset()
        self._open = OpenDebits(journal)
        self._pending: dict[int, _Pending] = {}  # rows whose recovery window still runs, by row id
        self._reported: set[int] = set()  # quarantined rows already journaled as events
        self._initialize: dict[int, bytes] = {}  # INITIALIZE by amount, for this PSAM's key index and terminal
        self._recent: dict[bytes, dt.datetime] = {}
        self._window = dt.timedelta(seconds=self.config.recovery_window_s)
        self._repeat = dt.timedelta(seconds=self.config.repeat_tap_s)

    # -- life cycle -------------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the PSAM and take up the debits a previous run left open."""
        place = self.config.place
        line = self.fares.line_code(place.line)
        needs = self.fares.needs_for(line)
        if NEED_BUS_RECORD in needs and not self.composite:
            raise ConfigError(f"line {place.line} has tap-on/tap-off fares, which need purchase = \"composite\"")
        try:
            self.psam.start()
        except OutOfService as exc:
            self.out_of_service = str(exc)
            raise
        self._needs = needs
        self._initialize = {}
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
        :meth:`start` to try again) and :class:`terminal.errors.ReaderGone` when the card reader fails. A card never
        puts the validator out of service.
        """
        if self.out_of_service is not None:
            raise OutOfService(self.out_of_service)
        try:
            self.expire()
        except JournalError as exc:
            self.out_of_service = f"journal: {exc}"
            raise OutOfService(self.out_of_service) from None
        if self.card.activate(timeout) is None:
            return None
        self._log.exchanges = []
        outcome = self._tap()
        outcome.exchanges = self._log.exchanges
        try:
            self.card.link.deactivate()
        except LinkError:
            pass
        return outcome

    # -- one tap ----------------------------------------------------------------------------------------------------

    def _tap(self) -> TapOutcome:
        serial: bytes | None = None
        try:
            now = self.clock.now()
            info = self._select()
            serial = info.serial
            unsettled = self._settle_open(info, now)
            last = self._recent.get(serial)
            if last is not None and now - last < self._repeat:
                raise _Stop(TapOutcome(TapStatus.DECLINED, Decline.REPEAT_TAP, card_serial=serial))
            self._check_application(info, now)
            management = self._management(info)
            if self.blacklist is not None and serial in self.blacklist:
                self._block(info, management)
            quote = self._quote(info, management, now)
            return self._purchase(info, management, quote, now, unsettled)
        except _Stop as stop:
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

    def _decline(self, reason: Decline, serial: bytes, detail: str = "", **fields: Any) -> _Stop:
        return _Stop(TapOutcome(TapStatus.DECLINED, reason, detail, card_serial=serial, **fields))

    def _select(self) -> PublicAppInfo:
        """SELECT the purse application; file 0x15 comes from the FCI's 9F0C, or by READ BINARY when it is absent.

        A card without a T-Union purse is declined as a card of its own scheme when it names one (its FCI, or
        :func:`~terminal.selection.identify_scheme`), else as not a T-Union card."""
        answer = self.card.transmit(_SELECT)
        if answer.sw != 0x9000:
            reason = _SELECT_DECLINES.get(answer.sw, Decline.CARD_ERROR)
            scheme = identify_scheme(self.card) if reason is Decline.NOT_TRANSIT_CARD else None
            if scheme is not None:
                raise _Stop(TapOutcome(TapStatus.DECLINED, Decline.SCHEME_NOT_ACCEPTED, scheme.name))
            raise _Stop(TapOutcome(TapStatus.DECLINED, reason, f"SELECT: {format_sw(answer.sw)}"))
        fci = Fci.parse(answer.data)
        if fci.df_name != T_UNION_EP_AID:
            scheme = scheme_of(fci.df_name)
            raise _Stop(TapOutcome(TapStatus.DECLINED, Decline.SCHEME_NOT_ACCEPTED,
                                   fci.df_name.hex().upper() if scheme is None else scheme.name))
        raw = fci.file15
        if raw is None:
            raw = self.card.call(_READ_15, "READ BINARY 0x15").data
        return PUBLIC_APP_INFO.parse(raw)

    def _check_application(self, info: PublicAppInfo, now: dt.datetime) -> None:
        serial = info.serial
        if info.app_type not in self.config.application_types or \
                info.app_version < self.config.min_application_version:
            raise self._decline(Decline.BAD_APPLICATION, serial,
                                f"type {info.app_type:02X} version {info.app_version:02X}")
        today = now.date()
        if info.start_date is not None and today < info.start_date:
            raise self._decline(Decline.NOT_YET_VALID, serial, f"valid from {info.start_date.isoformat()}")
        if info.expiry_date is None or today > info.expiry_date:
            shown = info.expiry_date.isoformat() if info.expiry_date else "no date"
            raise self._decline(Decline.EXPIRED, serial, f"expired {shown}")
        accepted = self.config.accepted_issuers
        if accepted and info.issuer_id not in accepted:
            raise self._decline(Decline.ISSUER_NOT_ACCEPTED, serial, info.issuer_id.hex().upper())

    def _management(self, info: PublicAppInfo) -> ManagementInfo:
        management = MANAGEMENT_INFO.parse(self.card.call(_READ_17, "READ BINARY 0x17").data)
        if info.city_code != self.config.place.city_code and management.interop_class == 0:
            raise self._decline(Decline.NOT_INTEROPERABLE, info.serial, f"issuer city {info.city_code.hex()}",
                                card_type=management.card_type)
        return management

    def _block(self, info: PublicAppInfo, management: ManagementInfo) -> None:
        """A blacklisted card is blocked (APPLICATION BLOCK with the PSAM's line-protection MAC), then declined."""
        detail = "application blocked"
        try:
            challenge = self.card.call(_GET_CHALLENGE, "GET CHALLENGE").data
            mac = self.psam.block_mac(challenge[:4], info.diversification_factor, info.issuer_id)
            self.card.call(cc.ApplicationBlock(mac).to_bytes(), "APPLICATION BLOCK")
        except (LinkError, StatusError, ProtocolError) as exc:
            detail = f"blocking failed: {exc}"
        raise self._decline(Decline.BLACKLISTED, info.serial, detail, card_type=management.card_type)

    def _record(self, command: bytes, what: str) -> bytes | None:
        answer = self.card.transmit(command)
        if answer.sw in _NO_RECORD:
            return None
        if answer.sw != 0x9000:
            raise StatusError(what, answer.sw)
        return answer.data

    def _quote(self, info: PublicAppInfo, management: ManagementInfo, now: dt.datetime) -> FareQuote:
        transit = bus = None
        line_scope = self.config.repeat_tap_scope == "line"
        if NEED_TRANSIT_RECORD in self._needs or line_scope:
            raw = self._record(_READ_1E, "READ RECORD 0x1E")
            transit = None if raw is None else TRANSIT_RECORD.parse(raw)
            if line_scope and transit is not None:
                self._paid_on_line(transit, info.serial, management.card_type, now)
        if NEED_BUS_RECORD in self._needs:
            raw = self._record(_READ_1A, "READ RECORD 0x1A")
            record = None if raw is None else parse_process_record(raw)
            bus = record if isinstance(record, BusProcessRecord) else None
        assert self.stop is not None
        quote = self.fares.quote(FareContext(management.card_type, now, self.stop, transit, bus))
        if isinstance(quote, FareRefusal):
            reason = Decline.CARD_TYPE_REFUSED if quote.kind == "card_type" else Decline.NO_FARE
            raise self._decline(reason, info.serial, quote.reason, card_type=management.card_type)
        return quote

    def _paid_on_line(self, transit: TransitRecord, serial: bytes, card_type: int, now: dt.datetime) -> None:
        """The repeat-tap rule over the card's own newest 0x1E record: a single fare paid on this operator's line less
        than ``repeat_tap_s`` ago (at any of its validators, a torn debit included) is not charged again."""
        stop = self.stop
        assert stop is not None
        when = transit.transaction_time
        if transit.record_type == _SINGLE_FARE and transit.operator_code == stop.operator_code \
                and transit.line == stop.line and when is not None and dt.timedelta(0) <= now - when < self._repeat:
            raise self._decline(Decline.REPEAT_TAP, serial, f"paid on this line at {when.time().isoformat()} "
                                f"(terminal {transit.device_id[2:].hex().upper()})", card_type=card_type)

    # -- the debit ---------------------------------------------------------------------------------------------------

    def _purchase(self, info: PublicAppInfo, management: ManagementInfo, quote: FareQuote, now: dt.datetime,
                  unsettled: list[JournalEntry]) -> TapOutcome:
        serial, amount = info.serial, quote.amount
        terminal_id = self.psam.terminal_id
        command = self._initialize.get(amount)
        if command is None:  # the bytes depend only on the amount once the PSAM is started: made once per amount
            init_class = cc.InitializeForCappPurchase if self.composite else cc.InitializeForPurchase
            command = init_class(self.psam.key_index, amount, terminal_id).to_bytes()
            if len(self._initialize) < _INITIALIZE_KEPT:
                self._initialize[amount] = command
        answer = self.card.transmit(command)
        if answer.sw == 0x9401:
            raise self._decline(Decline.INSUFFICIENT_FUNDS, serial, f"fare {amount / 100:.2f}", fare=amount,
                                card_type=management.card_type, balance_before=self._balance())
        if answer.sw != 0x9000:
            raise StatusError("INITIALIZE FOR PURCHASE", answer.sw)
        init = cc.PURCHASE_INIT_RESPONSE.parse(answer.data)
        if unsettled:
            self._settle_by_counter(unsettled, init.offline_atc, management.card_type)
        trans_type = TransactionType.COMPOSITE_PURCHASE if self.composite else TransactionType.EP_PURCHASE
        tsn, mac1 = self.psam.purchase_mac1(
            random=init.random, offline_atc=init.offline_atc, amount=amount, transaction_type=trans_type, when=now,
            key_version=init.key_version, algorithm_id=init.algorithm_id, card_serial=info.diversification_factor,
            issuer_id=info.issuer_id)
        balance_after = init.balance - amount
        if self.composite:
            self._stage_records(quote, tsn, balance_after, now)
        record = DebitRecord(serial, info.issuer_id, management.card_type, init.offline_atc, amount, init.balance,
                             int(trans_type), terminal_id, tsn, now, init.key_version, init.algorithm_id, mac1,
                             fare_note=quote.rule)
        row = self._record_intent(record, management.card_type)
        outcome = TapOutcome(TapStatus.ACCEPTED, card_serial=serial, card_type=management.card_type, fare=amount,
                             rule=quote.rule, balance_before=init.balance, balance_after=balance_after, journal_row=row)
        try:
            answer = self.card.transmit(cc.DebitForPurchase(tsn, now, mac1).to_bytes())
            if answer.sw != 0x9000:
                self.journal.void(row, f"DEBIT answered {format_sw(answer.sw)}", evidence=Evidence.DEBIT)
                reason = Decline.MAC1_REJECTED if answer.sw == 0x9302 else Decline.CARD_ERROR
                return TapOutcome(TapStatus.DECLINED, reason, f"DEBIT: {format_sw(answer.sw)}", card_serial=serial,
                                  card_type=management.card_type, fare=amount, balance_before=init.balance)
            debit = cc.DEBIT_RESPONSE.parse(answer.data)
        except (LinkError, ProtocolError) as exc:
            # The card may or may not have debited: the row stays open until the card proves which.
            self._pending[row] = _Pending(row, record, now + self._window)
            self._open.opened(serial, row)
            outcome.status, outcome.detail = TapStatus.RETRY, f"DEBIT unanswered: {exc}"
            return outcome
        outcome.tac = debit.tac
        self._finish(outcome, row, debit.tac, debit.mac2)
        self._remember(serial, now)
        return outcome

    def _record_intent(self, record: DebitRecord, card_type: int) -> int:
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
                raise self._decline(Decline.DUPLICATE_CARD, record.card_serial,
                                    f"ATC {record.offline_atc} already journaled as row {dup.existing}",
                                    card_type=card_type) from None
            if dup.key != "terminal":
                raise
            terminal = record.terminal_id.hex().upper()
            self.journal.record_event(
                EventKind.PSAM_SERIAL_REPEAT, f"terminal {terminal} TSN {record.tsn} is already journaled as row "
                f"{dup.existing}", row_ref=dup.existing)
            raise OutOfService(f"the PSAM's transaction serial {record.tsn} is already journaled for terminal "
                               f"{terminal} (row {dup.existing}): the PSAM is behind this journal (a replaced or "
                               "restored PSAM, or another validator's journal)") from None

    def _balance(self) -> int | None:
        """The balance to show with an insufficient-funds decline; ``None`` when the card will not say."""
        try:
            answer = self.card.transmit(_GET_BALANCE)
            return cc.BALANCE_RESPONSE.parse(answer.data).balance if answer.sw == 0x9000 else None
        except (LinkError, ProtocolError):
            return None

    def _stage_records(self, quote: FareQuote, tsn: int, balance_after: int, now: dt.datetime) -> None:
        """UPDATE CAPP DATA CACHE: the card stages these and commits them with the debit, or drops them."""
        stop = self.stop
        assert stop is not None
        if quote.bus_record is not None:
            bus = dataclasses.replace(quote.bus_record, transaction_serial=tsn.to_bytes(8, "big"))
            self.card.call(cc.UpdateCappDataCache(SFI_PROCESS, bus.record_id, build_process_record(bus)).to_bytes(),
                           "UPDATE CAPP DATA CACHE 0x1A")
        transit = TRANSIT_RECORD.pack(quote.record_type, stop.device, self.config.place.industry_code, stop.line,
                                      stop.station.to_bytes(2, "big"), stop.operator_code, 0, quote.amount,
                                      balance_after, now, stop.city_code, stop.institution_id, bytes(6))
        self.card.call(_UPDATE_1E + transit, "UPDATE CAPP DATA CACHE 0x1E")

    def _finish(self, outcome: TapOutcome, row: int, tac: bytes, mac2: bytes) -> None:
        """Journal a debit the card answered. The PSAM checks MAC2 first; if the PSAM fails here the debit is journaled
        anyway (the card has paid) and the validator goes out of service."""
        verified: bool | None = None
        failure: OutOfService | None = None
        try:
            verified = self.psam.check_mac2(mac2)
        except OutOfService as exc:
            failure = exc
        self.journal.complete(row, tac, mac2, verified)
        outcome.tac, outcome.mac2_verified = tac, verified
        if verified is False:
            outcome.detail = _MAC2_FLAGGED
        if failure is not None:
            self.out_of_service = str(failure)
            outcome.detail = f"debit journaled; then {failure}"

    def _remember(self, serial: bytes, now: dt.datetime) -> None:
        recent = self._recent
        if len(recent) >= _RECENT_LIMIT:
            cutoff = now - self._repeat
            for key in [k for k, when in recent.items() if when <= cutoff]:
                del recent[key]
        recent[serial] = now

    # -- torn debits -------------------------------------------------------------------------------------------------

    def _settle_open(self, info: PublicAppInfo, now: dt.datetime) -> list[JournalEntry]:
        """Before anything is charged to a card with open rows, settle each from the card's own evidence
        (:meth:`_settle`). A debit proven to be the card's newest purchase ends the tap: this tap is that ride's
        (accepted, recovered). Returns the rows the card's proof and log did not settle: its counter at INITIALIZE
        decides those (:meth:`_settle_by_counter`). A card that leaves meanwhile ends the tap with "please tap again";
        what was settled stays settled.
        """
        rows = self._open.rows(info.serial)
        if self.journal.quarantined:
            self._report_quarantined()
        if not rows:
            return rows
        lowest = min(e.record.offline_atc for e in rows)
        records: list[_LogRecord] | None = None

        def log() -> list[_LogRecord]:
            nonlocal records
            if records is None:
                records = self._read_log(lowest)
            return records

        unsettled: list[JournalEntry] = []
        ride: TapOutcome | None = None
        try:
            for entry in rows:
                settled, paid = self._settle(entry, log)
                if not settled:
                    unsettled.append(entry)
                ride = paid or ride
        except (CardRemoved, LinkTimeout) as exc:
            last = rows[-1]
            raise _Stop(TapOutcome(TapStatus.RETRY, detail=f"settling a torn debit: {exc}", card_serial=info.serial,
                                   fare=last.record.amount, journal_row=last.row_id)) from None
        if ride is not None:
            self._remember(info.serial, now)
            raise _Stop(ride)
        return unsettled

    def _settle(self, entry: JournalEntry, log: Callable[[], list[_LogRecord]]) -> tuple[bool, TapOutcome | None]:
        """Settle one open row from the card, if it can tell; returns whether it did, and the tap's outcome when this
        debit is the card's newest purchase (this tap is that ride's).

        GET TRANSACTION PROVE answers for whichever debit took the counter, so a proof is this row's only when MAC2
        verifies under this debit's PSAM session, or when the card's 0x18 record of the counter is this debit (a record
        of another debit voids the row, whatever the proof). Without a proof, a record of this debit completes the row
        with no TAC.
        """
        rec = entry.record
        answer = self.card.transmit(cc.GetTransactionProve(rec.trans_type, (rec.offline_atc + 1) & 0xFFFF).to_bytes())
        proof = cc.PROVE_RESPONSE.parse(answer.data) if answer.sw == 0x9000 else None
        verified: bool | None = None
        if proof is not None and self.psam.session_tsn == rec.tsn:
            verified = self.psam.check_mac2(proof.mac2)
        found = None if verified else next((r for r in log() if r.record.atc == rec.offline_atc), None)
        if found is not None and not found.shows(rec):
            self.journal.settle_from_log(entry.row_id, found.raw, made=False)
            self._settled(entry)
            return True, None
        if proof is None and found is None:
            return False, None
        outcome = self._recovered(entry)
        if proof is not None:
            self.journal.complete(entry.row_id, proof.tac, proof.mac2, verified, evidence=Evidence.PROVE)
            outcome.tac, outcome.mac2_verified = proof.tac, verified
            if verified is False:
                outcome.detail = _MAC2_FLAGGED
        else:
            assert found is not None  # neither a proof nor a record returned above
            self.journal.settle_from_log(entry.row_id, found.raw, made=True)
        self._settled(entry)
        newest = found is None or found is log()[0]
        return True, outcome if newest else None

    def _read_log(self, lowest_atc: int) -> list[_LogRecord]:
        """The card's purse purchases in its 0x18 log, newest first, down to the counter ``lowest_atc``."""
        found: list[_LogRecord] = []
        for command in _READ_18:
            raw = self._record(command, "READ RECORD 0x18")
            if raw is None:
                break
            record = TRANSACTION_LOG_RECORD.parse(raw)
            if record.date is None:  # a slot the card has not written yet
                break
            if record.transaction_type in _EP_PURCHASES:
                found.append(_LogRecord(raw, record))
                if record.atc <= lowest_atc:
                    break
        return found

    def _settle_by_counter(self, rows: list[JournalEntry], offline_atc: int, card_type: int) -> None:
        """The rows neither the card's proof nor its log settled, against its counter from INITIALIZE: still at the
        row's counter, the debit never happened (void); past it with no record left, only the back office can tell
        (given up, unconfirmed); below it, this is a copy or an older image of the card (declined)."""
        for entry in rows:
            rec = entry.record
            if offline_atc == rec.offline_atc:
                self.journal.void(entry.row_id, "no proof from the card and its counter had not moved",
                                  evidence=Evidence.COUNTER)
            elif offline_atc > rec.offline_atc:
                self.journal.give_up(entry.row_id, f"the card's counter is at {offline_atc} and its 0x18 log holds no "
                                     f"record of counter {rec.offline_atc}: settle from the clearing data")
            else:
                self.journal.record_event(
                    EventKind.COUNTER_BACKWARDS, f"counter {offline_atc} is below row {entry.row_id}'s "
                    f"{rec.offline_atc}: a copy of the card, or a card image restored from a copy",
                    card_serial=rec.card_serial, row_ref=entry.row_id)
                raise self._decline(Decline.DUPLICATE_CARD, rec.card_serial,
                                    f"counter {offline_atc} below row {entry.row_id}'s {rec.offline_atc}",
                                    card_type=card_type)
            self._settled(entry)

    def _recovered(self, entry: JournalEntry) -> TapOutcome:
        """The outcome of a tap that a proven torn debit paid for."""
        rec = entry.record
        return TapOutcome(TapStatus.ACCEPTED, card_serial=rec.card_serial, card_type=rec.card_type, fare=rec.amount,
                          rule=rec.fare_note, balance_before=rec.balance_before,
                          balance_after=rec.balance_before - rec.amount, recovered=True, journal_row=entry.row_id)

    def _settled(self, entry: JournalEntry) -> None:
        self._pending.pop(entry.row_id, None)
        self._open.settled(entry.record.card_serial, entry.row_id)

    def _report_quarantined(self) -> None:
        """Journal an event for each row the ``quarantine`` policy set aside since the last look."""
        for row_id, damage in self.journal.quarantined.items():
            if row_id not in self._reported:
                self._reported.add(row_id)
                self.journal.record_event(EventKind.DAMAGED_ROW, f"set aside: {damage}",
                                          row_ref=row_id if row_id > 0 else None)
