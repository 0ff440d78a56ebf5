"""The CPU-card purse flow: a T-Union (JT/T 978, PBOC electronic purse) composite purchase.

In as few exchanges as possible: SELECT (the FCI's 9F0C stands in for READ BINARY 0x15), READ BINARY 0x17 (card
type, interoperability), only the records the fare rules need, INITIALIZE FOR CAPP PURCHASE (it gives the balance),
the PSAM's MAC1, UPDATE CAPP DATA CACHE for 0x1A (section fares) and 0x1E, the journal's intent, DEBIT, the PSAM's
MAC2 check, the journal's completion.

A torn debit's row is settled from the card's own evidence, in this order: GET TRANSACTION PROVE for ATC+1 (MAC2 and
TAC: the debit happened); else its 0x18 log, the record of that counter matched by amount, type, terminal and
date-time (the debit happened, with no TAC; or the counter went to another debit: void); else its counter at the next
INITIALIZE (the validator's rule for counters).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from protocols import card_commands as cc
from protocols.bcd import encode_datetime
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
    ManagementInfo,
    PublicAppInfo,
    TransactionLogRecord,
    TransactionType,
    build_process_record,
    parse_process_record,
)
from protocols.errors import ProtocolError
from protocols.fci import T_UNION_EP_AID, Fci, t_union_file15
from protocols.schemes import scheme_of
from protocols.status import CardStatus, format_sw

from ..errors import ConfigError, LinkError, OutOfService, StatusError
from ..fares import NEED_BUS_RECORD, NEED_TRANSIT_RECORD, FareQuote
from ..journal import JournalEntry
from ..link import Activation
from ..outcome import Decline, TapOutcome, TapStatus
from ..records import DebitRecord, Evidence
from ..selection import identify_scheme
from .base import CardView, FlowHost, Records, TapStop

_SELECT = cc.SelectByName(T_UNION_EP_AID).to_bytes()
_READ_15 = cc.ReadBinary(SFI_PUBLIC_APP_INFO, 0, 30).to_bytes()
_READ_17 = cc.ReadBinary(SFI_MANAGEMENT, 0, 60).to_bytes()
_READ_1E = cc.ReadRecord(SFI_TRANSIT_LOG, 1, le=TRANSIT_RECORD.size).to_bytes()
_READ_1A = cc.ReadRecord(SFI_PROCESS, BUS_RECORD_ID, le=128).to_bytes()
_GET_BALANCE = cc.GetBalance().to_bytes()
_GET_CHALLENGE = cc.GetChallenge(4).to_bytes()
_UPDATE_1E = cc.UpdateCappDataCache(SFI_TRANSIT_LOG, 0, bytes(TRANSIT_RECORD.size)).to_bytes()[:5]
"""``80 DC 00 F0 30``: what goes before every 0x1E record, which is always TRANSIT_RECORD.size bytes."""
_DEBIT = cc.DebitForPurchase(0, dt.datetime(2000, 1, 1), bytes(4)).to_bytes()
_DEBIT_HEADER, _DEBIT_LE = _DEBIT[:5], _DEBIT[-1:]
"""``80 54 01 00 0F`` and ``08``: what goes around every DEBIT's TSN, date-time and MAC1."""
_INITIALIZE_KEPT = 256  # INITIALIZE commands kept by amount: a fare file has a handful of amounts
_NO_RECORD = (CardStatus.RECORD_NOT_FOUND, CardStatus.FILE_NOT_FOUND)
_SELECT_DECLINES: dict[int, Decline] = {
    CardStatus.APPLICATION_BLOCKED: Decline.CARD_LOCKED, CardStatus.APPLICATION_LOCKED: Decline.CARD_INVALID,
    CardStatus.APPLICATION_INVALID: Decline.CARD_INVALID, CardStatus.FILE_NOT_FOUND: Decline.NOT_TRANSIT_CARD,
    CardStatus.NOT_SUPPORTED: Decline.NOT_TRANSIT_CARD}
_READ_18 = tuple(cc.ReadRecord(SFI_TRANSACTION_LOG, number, le=TRANSACTION_LOG_RECORD.size).to_bytes()
                 for number in range(1, TRANSACTION_LOG_RECORDS + 1))
_MAC2_FLAGGED = "MAC2 not verified by the PSAM: debit kept, flagged for the back office"
_EP_PURCHASES = frozenset((TransactionType.EP_PURCHASE, TransactionType.COMPOSITE_PURCHASE))
"""Transaction types on the purse's offline counter: the 0x18 records a validator's debit can be."""


@dataclass(slots=True)
class CpuCard(CardView):
    """A CPU card's purse application: file 0x15 (from the FCI or READ BINARY), and file 0x17 once checked."""

    info: PublicAppInfo | None = None
    management: ManagementInfo | None = None


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


class CpuFlow:
    """The purse flow of ISO 14443-4 (and contact) CPU cards: every activation that is not a MIFARE Classic."""

    technology = "cpu"

    def __init__(self, host: FlowHost) -> None:
        self.host = host
        self.composite = host.config.purchase == "composite"
        self._initialize: dict[int, bytes] = {}  # INITIALIZE by amount, for this PSAM's key index and terminal

    def takes(self, activation: Activation) -> bool:
        return activation.protocol != "MIFARE"

    def start(self) -> None:
        host = self.host
        if NEED_BUS_RECORD in host.needs and not self.composite:
            raise ConfigError(f"line {host.config.place.line} has tap-on/tap-off fares, which need "
                              "purchase = \"composite\"")
        self._initialize = {}

    # -- identify and check -----------------------------------------------------------------------------------------

    def identify(self, activation: Activation, now: dt.datetime) -> CpuCard:
        """SELECT the purse application; file 0x15 comes from the FCI's 9F0C, or by READ BINARY when it is absent.

        A card without a T-Union purse is declined as a card of its own scheme when it names one (its FCI, or
        :func:`~terminal.selection.identify_scheme`), else as not a T-Union card."""
        card = self.host.card
        answer = card.transmit(_SELECT)
        if answer.sw != CardStatus.OK:
            reason = _SELECT_DECLINES.get(answer.sw, Decline.CARD_ERROR)
            scheme = identify_scheme(card) if reason is Decline.NOT_TRANSIT_CARD else None
            if scheme is not None:
                raise TapStop(TapOutcome(TapStatus.DECLINED, Decline.SCHEME_NOT_ACCEPTED, scheme.name))
            raise TapStop(TapOutcome(TapStatus.DECLINED, reason, f"SELECT: {format_sw(answer.sw)}"))
        raw = t_union_file15(answer.data)  # the FCI nearly every T-Union card sends, read by its fixed bytes
        if raw is None:
            raw = self._file15(answer.data)
        info = PUBLIC_APP_INFO.parse(raw)
        return CpuCard(self.technology, info.serial, info=info)

    def _file15(self, data: bytes) -> bytes:
        """File 0x15 of any other FCI: its 9F0C, else READ BINARY 0x15; an FCI of another application declines."""
        fci = Fci.parse(data)
        if fci.df_name != T_UNION_EP_AID:
            scheme = scheme_of(fci.df_name)
            raise TapStop(TapOutcome(TapStatus.DECLINED, Decline.SCHEME_NOT_ACCEPTED,
                                     fci.df_name.hex().upper() if scheme is None else scheme.name))
        raw = fci.file15
        if raw is None:
            raw = self.host.card.call(_READ_15, "READ BINARY 0x15").data
        return raw

    def check(self, card: CardView, now: dt.datetime) -> None:
        """Application type and version, dates, issuer; then file 0x17: the card type, and the interoperability of a
        card from another city."""
        assert isinstance(card, CpuCard) and card.info is not None
        host, info, serial = self.host, card.info, card.serial
        config = host.config
        if info.app_type not in config.application_types or info.app_version < config.min_application_version:
            raise host.decline(Decline.BAD_APPLICATION, serial,
                               f"type {info.app_type:02X} version {info.app_version:02X}")
        today = now.date()
        if info.start_date is not None and today < info.start_date:
            raise host.decline(Decline.NOT_YET_VALID, serial, f"valid from {info.start_date.isoformat()}")
        if info.expiry_date is None or today > info.expiry_date:
            shown = info.expiry_date.isoformat() if info.expiry_date else "no date"
            raise host.decline(Decline.EXPIRED, serial, f"expired {shown}")
        accepted = config.accepted_issuers
        if accepted and info.issuer_id not in accepted:
            raise host.decline(Decline.ISSUER_NOT_ACCEPTED, serial, info.issuer_id.hex().upper())
        management = MANAGEMENT_INFO.parse(host.card.call(_READ_17, "READ BINARY 0x17").data)
        card.management, card.card_type = management, management.card_type
        if info.city_code != config.place.city_code and management.interop_class == 0:
            raise host.decline(Decline.NOT_INTEROPERABLE, serial, f"issuer city {info.city_code.hex()}",
                               card_type=management.card_type)

    def block(self, card: CardView) -> str:
        """APPLICATION BLOCK with the PSAM's line-protection MAC."""
        assert isinstance(card, CpuCard) and card.info is not None
        host, info = self.host, card.info
        try:
            challenge = host.card.call(_GET_CHALLENGE, "GET CHALLENGE").data
            mac = host.psam.block_mac(challenge[:4], info.diversification_factor, info.issuer_id)
            host.card.call(cc.ApplicationBlock(mac).to_bytes(), "APPLICATION BLOCK")
        except (LinkError, StatusError, ProtocolError) as exc:
            return f"blocking failed: {exc}"
        return "application blocked"

    def _record(self, command: bytes, what: str) -> bytes | None:
        answer = self.host.card.transmit(command)
        if answer.sw in _NO_RECORD:
            return None
        if answer.sw != CardStatus.OK:
            raise StatusError(what, answer.sw)
        return answer.data

    def records(self, card: CardView, needs: frozenset[str], line_scope: bool) -> Records:
        """READ RECORD 0x1E (transfers, the line-wide repeat-tap rule) and 0x1A (section fares), as needed."""
        transit = bus = None
        if NEED_TRANSIT_RECORD in needs or line_scope:
            raw = self._record(_READ_1E, "READ RECORD 0x1E")
            transit = None if raw is None else TRANSIT_RECORD.parse(raw)
        if NEED_BUS_RECORD in needs:
            raw = self._record(_READ_1A, "READ RECORD 0x1A")
            record = None if raw is None else parse_process_record(raw)
            bus = record if isinstance(record, BusProcessRecord) else None
        return transit, bus

    # -- the debit ---------------------------------------------------------------------------------------------------

    def purchase(self, card: CardView, quote: FareQuote, now: dt.datetime,
                 unsettled: list[JournalEntry]) -> TapOutcome:
        assert isinstance(card, CpuCard) and card.info is not None and card.management is not None
        host, info, card_type = self.host, card.info, card.management.card_type
        serial, amount = info.serial, quote.amount
        psam = host.psam
        terminal_id = psam.terminal_id
        stamp = encode_datetime(now)  # the date-time 8070, the 0x1E record and DEBIT carry, encoded once
        command = self._initialize.get(amount)
        if command is None:  # the bytes depend only on the amount once the PSAM is started: made once per amount
            init_class = cc.InitializeForCappPurchase if self.composite else cc.InitializeForPurchase
            command = init_class(psam.key_index, amount, terminal_id).to_bytes()
            if len(self._initialize) < _INITIALIZE_KEPT:
                self._initialize[amount] = command
        answer = host.card.transmit(command)
        if answer.sw == CardStatus.INSUFFICIENT_BALANCE:
            raise host.decline(Decline.INSUFFICIENT_FUNDS, serial, f"fare {amount / 100:.2f}", fare=amount,
                               card_type=card_type, balance_before=self._balance())
        if answer.sw != CardStatus.OK:
            raise StatusError("INITIALIZE FOR PURCHASE", answer.sw)
        init = cc.PURCHASE_INIT_RESPONSE.parse(answer.data)
        if unsettled:
            host.settle_by_counter(unsettled, init.offline_atc, card_type)
        trans_type = TransactionType.COMPOSITE_PURCHASE if self.composite else TransactionType.EP_PURCHASE
        mac1_coming = psam.send_purchase_mac1(
            random=init.random, offline_atc=init.offline_atc, amount=amount, transaction_type=trans_type, when=stamp,
            key_version=init.key_version, algorithm_id=init.algorithm_id, card_serial=info.diversification_factor,
            issuer_id=info.issuer_id)
        balance_after = init.balance - amount
        if self.composite and quote.bus_record is None:
            # the 0x1E record needs nothing of the PSAM's: the card stages it while the PSAM computes MAC1
            self._stage_transit_record(quote, balance_after, stamp)
            tsn, mac1 = mac1_coming.result()
        else:
            tsn, mac1 = mac1_coming.result()
            if self.composite:  # the 0x1A bus record carries the TSN: it waits for the PSAM, and 0x1E follows it
                self._stage_bus_record(quote, tsn)
                self._stage_transit_record(quote, balance_after, stamp)
        record = DebitRecord(serial, info.issuer_id, card_type, init.offline_atc, amount, init.balance,
                             int(trans_type), terminal_id, tsn, now, init.key_version, init.algorithm_id, mac1,
                             fare_note=quote.rule)
        row = host.record_intent(record)
        outcome = TapOutcome(TapStatus.ACCEPTED, card_serial=serial, card_type=card_type, fare=amount,
                             rule=quote.rule, balance_before=init.balance, balance_after=balance_after, journal_row=row)
        try:
            answer = host.card.transmit(_DEBIT_HEADER + cc.DEBIT_DATA.pack_wire(tsn, stamp, mac1) + _DEBIT_LE)
            if answer.sw != CardStatus.OK:
                host.journal.void(row, f"DEBIT answered {format_sw(answer.sw)}", evidence=Evidence.DEBIT)
                reason = Decline.MAC1_REJECTED if answer.sw == CardStatus.MAC_INVALID else Decline.CARD_ERROR
                return TapOutcome(TapStatus.DECLINED, reason, f"DEBIT: {format_sw(answer.sw)}", card_serial=serial,
                                  card_type=card_type, fare=amount, balance_before=init.balance)
            debit = cc.DEBIT_RESPONSE.parse(answer.data)
        except (LinkError, ProtocolError) as exc:
            # The card may or may not have debited: the row stays open until the card proves which.
            host.torn(row, record, now)
            outcome.status, outcome.detail = TapStatus.RETRY, f"DEBIT unanswered: {exc}"
            return outcome
        outcome.tac = debit.tac
        self._finish(outcome, row, debit.tac, debit.mac2)
        return outcome

    def _balance(self) -> int | None:
        """The balance to show with an insufficient-funds decline; ``None`` when the card will not say."""
        try:
            answer = self.host.card.transmit(_GET_BALANCE)
            return cc.BALANCE_RESPONSE.parse(answer.data).balance if answer.sw == CardStatus.OK else None
        except (LinkError, ProtocolError):
            return None

    def _stage_bus_record(self, quote: FareQuote, tsn: int) -> None:
        """UPDATE CAPP DATA CACHE 0x1A with the PSAM's TSN: the card stages it and commits it with the debit, or drops
        it."""
        assert quote.bus_record is not None
        bus = dataclasses.replace(quote.bus_record, transaction_serial=tsn.to_bytes(8, "big"))
        self.host.card.call(cc.UpdateCappDataCache(SFI_PROCESS, bus.record_id, build_process_record(bus)).to_bytes(),
                            "UPDATE CAPP DATA CACHE 0x1A")

    def _stage_transit_record(self, quote: FareQuote, balance_after: int, stamp: bytes) -> None:
        """UPDATE CAPP DATA CACHE 0x1E: staged likewise. ``stamp`` is the tap's BCD date-time."""
        host = self.host
        stop = host.stop
        assert stop is not None
        transit = TRANSIT_RECORD.pack_wire(quote.record_type, stop.device, host.config.place.industry_code, stop.line,
                                           stop.station.to_bytes(2, "big"), stop.operator_code, 0, quote.amount,
                                           balance_after, stamp, stop.city_code, stop.institution_id, bytes(6))
        host.card.call(_UPDATE_1E + transit, "UPDATE CAPP DATA CACHE 0x1E")

    def _finish(self, outcome: TapOutcome, row: int, tac: bytes, mac2: bytes) -> None:
        """Journal a debit the card answered. The PSAM checks MAC2 first; if the PSAM fails here the debit is journaled
        anyway (the card has paid) and the validator goes out of service."""
        host = self.host
        verified: bool | None = None
        failure: OutOfService | None = None
        try:
            verified = host.psam.check_mac2(mac2)
        except OutOfService as exc:
            failure = exc
        host.journal.complete(row, tac, mac2, verified)
        outcome.tac, outcome.mac2_verified = tac, verified
        if verified is False:
            outcome.detail = _MAC2_FLAGGED
        if failure is not None:
            host.out_of_service = str(failure)
            outcome.detail = f"debit journaled; then {failure}"

    # -- torn debits -------------------------------------------------------------------------------------------------

    def settle(self, card: CardView, rows: list[JournalEntry]) -> tuple[list[JournalEntry], TapOutcome | None]:
        """Each open row from the card's proof or its 0x18 log (read once, only when a proof does not do); the rest
        waits for the counter at INITIALIZE."""
        lowest = min(e.record.offline_atc for e in rows)
        records: list[_LogRecord] | None = None

        def log() -> list[_LogRecord]:
            nonlocal records
            if records is None:
                records = self._read_log(lowest)
            return records

        unsettled: list[JournalEntry] = []
        ride: TapOutcome | None = None
        for entry in rows:
            settled, paid = self._settle(entry, log)
            if not settled:
                unsettled.append(entry)
            ride = paid or ride
        return unsettled, ride

    def _settle(self, entry: JournalEntry, log: Callable[[], list[_LogRecord]]) -> tuple[bool, TapOutcome | None]:
        """Settle one open row from the card, if it can tell; returns whether it did, and the tap's outcome when this
        debit is the card's newest purchase (this tap is that ride's).

        GET TRANSACTION PROVE answers for whichever debit took the counter, so a proof is this row's only when MAC2
        verifies under this debit's PSAM session, or when the card's 0x18 record of the counter is this debit (a record
        of another debit voids the row, whatever the proof). Without a proof, a record of this debit completes the row
        with no TAC.
        """
        host, rec = self.host, entry.record
        answer = host.card.transmit(cc.GetTransactionProve(rec.trans_type, (rec.offline_atc + 1) & 0xFFFF).to_bytes())
        proof = cc.PROVE_RESPONSE.parse(answer.data) if answer.sw == CardStatus.OK else None
        verified: bool | None = None
        if proof is not None and host.psam.session_tsn == rec.tsn:
            verified = host.psam.check_mac2(proof.mac2)
        found = None if verified else next((r for r in log() if r.record.atc == rec.offline_atc), None)
        if found is not None and not found.shows(rec):
            host.journal.settle_from_log(entry.row_id, found.raw, made=False)
            host.settled(entry)
            return True, None
        if proof is None and found is None:
            return False, None
        outcome = host.recovered(entry)
        if proof is not None:
            host.journal.complete(entry.row_id, proof.tac, proof.mac2, verified, evidence=Evidence.PROVE)
            outcome.tac, outcome.mac2_verified = proof.tac, verified
            if verified is False:
                outcome.detail = _MAC2_FLAGGED
        else:
            assert found is not None  # neither a proof nor a record returned above
            host.journal.settle_from_log(entry.row_id, found.raw, made=True)
        host.settled(entry)
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
