"""The M1 purse flow: a legacy MIFARE Classic city card's value-block debit (``docs/m1-purse-layout.md``).

The card is reached with PC/SC part 3 pseudo-APDUs, through every reader alike (:mod:`protocols.pcsc_mifare`). Its
sector keys come from the PSAM (M1 SECTOR KEYS), once a tap, for the sectors the purse uses. A tap:

1. identify: sector 1's issuance and validity blocks; the issuer's authentication code over them, recomputed by the
   PSAM (a card whose code does not match is a forgery or a copy on another card: declined); the purse's state
   (public info and its backup, the purse and its backup, the newest trip record), assessed by
   :func:`protocols.m1.debit.assess`, and its repairs run: a debit torn at any validator is finished or rolled back
   before anything else, so the card's counter says whether it was taken;
2. settle the card's open journal rows: its counter still at a row's, the debit never happened (void); past it, the
   card's trip record of the counter after the row's says which debit took it (this one: complete, with the PSAM's
   MAC journaled with the intent; another: void); no record left, the row is given up to the back office;
3. check: the enable flag, the black flag, the dates, the card's city (M1 cards are not interoperable);
4. the fare: transfers and the line-wide repeat-tap rule read the card's last ride (block 26) as they read a CPU
   card's 0x1E record; tap-on/tap-off fares need a CPU card's 0x1A record, which an M1 card has no room for;
5. the debit, in the tear-safe order of :func:`protocols.m1.debit.plan_debit`: the PSAM's transaction MAC and TSN
   first, the journal's intent, the trip record and the last ride, both public copies marked "debiting", the purse's
   decrement (the money moves), the purse backup and both public copies marked "done". A card that leaves before the
   decrement has paid nothing (the row is void, the card rolls back at its next tap); during it, the row stays open
   for the card's next tap to settle; after it, the debit is taken and journaled (the card finishes its bookkeeping
   at its next tap). A free ride (a zero fare) takes nothing and writes nothing: the purse's records have no zero
   debit.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TypeVar

from protocols.card_files import TransitRecord
from protocols.errors import ProtocolError
from protocols.iso14443 import classic_size_from_sak
from protocols.layout import Layout
from protocols.m1.crypto import auth_code_data
from protocols.m1.debit import (
    Decrement,
    Outcome,
    Step,
    assess,
    blacklist_steps,
    open_sector,
    plan_debit,
    public_in_force,
)
from protocols.m1.keys import ISSUANCE_SECTOR
from protocols.m1.layout import (
    BLACK_FLAG,
    ISSUANCE,
    ISSUANCE_BLOCK,
    LAST_RIDE,
    LAST_RIDE_BLOCK,
    PUBLIC_BACKUP_BLOCK,
    PUBLIC_BLOCK,
    PURSE_BACKUP_BLOCK,
    PURSE_BLOCK,
    RECORD_BLOCKS,
    RECORD_RING,
    TRIP_RECORD,
    VALIDITY,
    VALIDITY_BLOCK,
    EnableFlag,
    Issuance,
    LastRide,
    PublicInfo,
    RecordType,
    TripRecord,
)
from protocols.mifare import BLOCK_SIZE, auth_uid, sector_of
from protocols import pcsc_mifare
from protocols.pcsc_mifare import ReadBlock, is_storage_atr

from ..errors import LinkError, StatusError
from ..fares import NEED_BUS_RECORD, NEED_TRANSIT_RECORD, FareQuote
from ..journal import JournalEntry
from ..link import Activation
from ..outcome import Decline, TapOutcome, TapStatus
from ..records import DebitRecord, Evidence, Technology, m1_serial
from .base import CardView, FlowHost, Records, TapStop

PURSE_SECTORS = (ISSUANCE_SECTOR, 2, 3, 4, 5, 6)
"""The sectors whose keys a tap asks the PSAM for: issuance, purse, the record ring, public info."""
_ISSUER_PAD = b"\xff" * 4
_ENABLE_DECLINES = {EnableFlag.NOT_ENABLED: (Decline.NOT_YET_VALID, "not enabled by its issuer"),
                    EnableFlag.STOPPED: (Decline.CARD_LOCKED, "stopped by its issuer"),
                    EnableFlag.BLACKLISTED: (Decline.CARD_LOCKED, "blacklisted by its issuer")}
T = TypeVar("T")
_DONE_DETAIL = "debit taken; the card left before its backup copies were written: its next tap finishes them"


@dataclass(slots=True)
class M1Card(CardView):
    """An M1 card as a tap reads it: its UID, issuance and validity blocks, the purse's state once repaired, its
    sector keys and the sector now authenticated."""

    uid: bytes = b""
    issuance: Issuance | None = None
    valid_from: dt.date | None = None
    valid_to: dt.date | None = None
    info: PublicInfo | None = None
    balance: int = 0
    newest: bytes = b""
    keys: dict[int, bytes] = field(default_factory=dict)
    sector: int | None = None


class M1Flow:
    """The purse flow of MIFARE Classic 1K/4K city cards (the activation says ``MIFARE``, or a PC/SC reader shows the
    storage-card ATR)."""

    technology = Technology.M1.value

    def __init__(self, host: FlowHost) -> None:
        self.host = host
        self._key_version = 0x01  # the key version of the last card: most cards share one, so keys come in one call

    def takes(self, activation: Activation) -> bool:
        if activation.protocol != "MIFARE":
            return activation.atr is not None and is_storage_atr(activation.atr)
        return activation.sak is None or classic_size_from_sak(activation.sak) is not None

    def start(self) -> None:
        """Nothing to check: the PSAM's M1 masters are asked for on the first M1 tap."""

    # -- the card's blocks -------------------------------------------------------------------------------------------

    def _call(self, apdu: bytes, what: str) -> bytes:
        answer = self.host.card.transmit(apdu)
        if answer.sw != pcsc_mifare.OK:
            raise StatusError(what, answer.sw)
        return answer.data

    def _open(self, card: M1Card, sector: int) -> None:
        """LOAD KEY and AUTHENTICATE ``sector`` unless it is the one open."""
        if card.sector == sector:
            return
        card.sector = None
        load, authenticate = open_sector(sector, card.keys)
        self._call(load, "LOAD KEY")
        self._call(authenticate, f"AUTHENTICATE sector {sector}")
        card.sector = sector

    def _read(self, card: M1Card, block: int) -> bytes:
        self._open(card, sector_of(block))
        data = self._call(ReadBlock(block).to_bytes(), f"READ block {block}")
        if len(data) != BLOCK_SIZE:
            raise ProtocolError(f"READ block {block} answered {len(data)} bytes, a block has {BLOCK_SIZE}")
        return data

    def _run(self, card: M1Card, steps: tuple[Step, ...]) -> None:
        for step in steps:
            self._open(card, step.sector)
            self._call(step.to_apdu(), f"M1 {type(step).__name__.lower()} in sector {step.sector}")

    # -- identify and check ------------------------------------------------------------------------------------------

    def identify(self, activation: Activation, now: dt.datetime) -> M1Card:
        host = self.host
        uid = activation.uid
        if len(uid) not in (4, 7):
            raise TapStop(TapOutcome(TapStatus.DECLINED, Decline.CARD_ERROR,
                                     f"the reader gave no MIFARE Classic UID ({uid.hex().upper() or 'none'})"))
        card = M1Card(self.technology, b"", uid=uid)
        card.keys = host.psam.m1_sector_keys(auth_uid(uid), PURSE_SECTORS, key_version=self._key_version)
        try:
            issuance_raw = self._read(card, ISSUANCE_BLOCK)
        except StatusError as exc:  # not keyed by our issuer's rule: some other MIFARE Classic
            raise TapStop(TapOutcome(TapStatus.DECLINED, Decline.NOT_TRANSIT_CARD,
                                     f"a MIFARE Classic that is not one of this purse's cards ({exc})")) from None
        validity_raw = self._read(card, VALIDITY_BLOCK)
        issuance, validity = ISSUANCE.parse(issuance_raw), VALIDITY.parse(validity_raw)
        card.serial, card.card_type, card.issuance = m1_serial(issuance.card_number), issuance.card_type, issuance
        card.valid_from, card.valid_to = validity.start_date, validity.expiry_date
        expected = host.psam.m1_auth_code(issuance.card_number, issuance.key_version,
                                          auth_code_data(uid, issuance_raw, validity_raw))
        if expected != issuance.auth_code:
            raise host.decline(Decline.CARD_NOT_AUTHENTIC, card.serial, "the issuer's authentication code does not "
                               "match the card", card_type=issuance.card_type)
        if issuance.key_version != self._key_version:
            self._key_version = issuance.key_version
            card.keys.update(host.psam.m1_sector_keys(auth_uid(uid), PURSE_SECTORS[1:],
                                                      key_version=issuance.key_version))
        self._state(card)
        return card

    def _state(self, card: M1Card) -> None:
        """Read the purse's state, run the repairs :func:`assess` asks for, and keep what the card holds after them."""
        main, backup = self._read(card, PUBLIC_BLOCK), self._read(card, PUBLIC_BACKUP_BLOCK)
        in_force = public_in_force(main, backup)
        purse, purse_backup = self._read(card, PURSE_BLOCK), self._read(card, PURSE_BACKUP_BLOCK)
        newest = bytes(BLOCK_SIZE) if in_force is None else self._read(card, RECORD_BLOCKS[in_force.record_pointer])
        state = assess(main, backup, purse, purse_backup, newest)
        if state.outcome is Outcome.DAMAGED:
            raise self.host.decline(Decline.CARD_ERROR, card.serial, f"the card's purse is damaged: {state.reason}",
                                    card_type=card.card_type)
        self._run(card, state.repairs)
        assert state.info is not None and state.balance is not None
        card.info, card.balance = state.info, state.balance
        if state.outcome is Outcome.ROLL_BACK:  # the card points at the record before the rolled-back one
            newest = self._read(card, RECORD_BLOCKS[state.info.record_pointer])
        card.newest = newest

    def check(self, card: CardView, now: dt.datetime) -> None:
        assert isinstance(card, M1Card) and card.issuance is not None and card.info is not None
        host, issuance, serial = self.host, card.issuance, card.serial
        if issuance.enable_flag != EnableFlag.NORMAL:
            reason, detail = _ENABLE_DECLINES.get(issuance.enable_flag,  # type: ignore[call-overload]
                                                  (Decline.CARD_INVALID, f"enable flag {issuance.enable_flag:02X}"))
            raise host.decline(reason, serial, detail, card_type=issuance.card_type)
        if card.info.black_flag == BLACK_FLAG:
            raise host.decline(Decline.CARD_LOCKED, serial, "black flag set", card_type=issuance.card_type)
        today = now.date()
        if card.valid_from is not None and today < card.valid_from:
            raise host.decline(Decline.NOT_YET_VALID, serial, f"valid from {card.valid_from.isoformat()}",
                               card_type=issuance.card_type)
        if card.valid_to is None or today > card.valid_to:
            shown = card.valid_to.isoformat() if card.valid_to else "no date"
            raise host.decline(Decline.EXPIRED, serial, f"expired {shown}", card_type=issuance.card_type)
        if issuance.city != host.config.place.city_code:
            raise host.decline(Decline.NOT_INTEROPERABLE, serial, f"M1 card of city {issuance.city.hex()}",
                               card_type=issuance.card_type)

    def block(self, card: CardView) -> str:
        """The black flag in both public copies, main first."""
        assert isinstance(card, M1Card) and card.info is not None
        try:
            self._run(card, blacklist_steps(card.info))
        except (LinkError, StatusError, ProtocolError) as exc:
            return f"blocking failed: {exc}"
        return "black flag set"

    def records(self, card: CardView, needs: frozenset[str], line_scope: bool) -> Records:
        """The last ride as a transit record (its amount the newest trip record's), when it is the card's newest."""
        assert isinstance(card, M1Card) and card.info is not None
        if NEED_BUS_RECORD in needs:
            raise self.host.decline(Decline.NO_FARE, card.serial, "tap-on/tap-off fares need a CPU card",
                                    card_type=card.card_type)
        if NEED_TRANSIT_RECORD not in needs and not line_scope:
            return None, None
        ride, newest = _decoded(LAST_RIDE, self._read(card, LAST_RIDE_BLOCK)), _decoded(TRIP_RECORD, card.newest)
        if ride is None or newest is None or not ride.counter == newest.counter == card.info.counter != 0:
            return None, None
        return TransitRecord(ride.record_type, bytes(8), 0, ride.line, bytes(2), ride.operator, 0, newest.amount,
                             newest.balance_before - newest.amount, ride.when, ride.city, bytes(8), bytes(6)), None

    # -- the debit ---------------------------------------------------------------------------------------------------

    def purchase(self, card: CardView, quote: FareQuote, now: dt.datetime,
                 unsettled: list[JournalEntry]) -> TapOutcome:
        assert isinstance(card, M1Card) and card.issuance is not None and card.info is not None and not unsettled
        host, issuance, info, balance = self.host, card.issuance, card.info, card.balance
        serial, amount, card_type = card.serial, quote.amount, issuance.card_type
        outcome = TapOutcome(TapStatus.ACCEPTED, card_serial=serial, card_type=card_type, fare=amount, rule=quote.rule,
                             balance_before=balance, balance_after=balance - amount)
        if amount == 0:
            return outcome  # a free ride: nothing to take, nothing to journal
        if amount > balance:
            raise host.decline(Decline.INSUFFICIENT_FUNDS, serial, f"fare {amount / 100:.2f}", fare=amount,
                               card_type=card_type, balance_before=balance)
        stop = host.stop
        assert stop is not None
        ride = LAST_RIDE.build(LastRide(info.counter + 1, quote.record_type, stop.line, stop.operator_code,
                                        stop.city_code, now))
        debit = plan_debit(info, balance, amount, now, last_ride=ride)
        tsn, mac = host.psam.m1_purchase_mac(
            key_version=issuance.key_version, card_number=issuance.card_number, uid=auth_uid(card.uid),
            counter=debit.counter, balance_before=balance, amount=amount, transaction_type=RecordType.PURCHASE,
            when=now)
        record = DebitRecord(serial, issuance.city + issuance.industry + _ISSUER_PAD, card_type, info.counter, amount,
                             balance, int(RecordType.PURCHASE), host.psam.terminal_id, tsn, now, issuance.key_version,
                             0, mac, fare_note=quote.rule, technology=Technology.M1, card_uid=card.uid)
        row = outcome.journal_row = host.record_intent(record)
        at = next(i for i, step in enumerate(debit.steps) if isinstance(step, Decrement))  # where the money moves
        decrement = debit.steps[at]
        try:
            self._run(card, debit.steps[:at])
            self._open(card, decrement.sector)
        except (LinkError, StatusError, ProtocolError) as exc:
            host.journal.void(row, f"the card's purse was not touched: {exc}", evidence=Evidence.DEBIT)
            raise
        try:
            self._call(decrement.to_apdu(), "M1 decrement")
        except (LinkError, StatusError, ProtocolError) as exc:
            # The decrement may or may not have reached the card: the row stays open until the card says which.
            host.torn(row, record, now)
            outcome.status, outcome.detail = TapStatus.RETRY, f"purse decrement unanswered: {exc}"
            return outcome
        host.journal.complete_m1(row, mac)
        outcome.tac = mac
        try:
            self._run(card, debit.steps[at + 1:])
        except (LinkError, StatusError, ProtocolError):
            outcome.detail = _DONE_DETAIL
        return outcome

    # -- torn debits -------------------------------------------------------------------------------------------------

    def settle(self, card: CardView, rows: list[JournalEntry]) -> tuple[list[JournalEntry], TapOutcome | None]:
        """Each open row from the card's trip record of the counter after it, when the card is past the row and the
        ring still holds that record; the card's counter settles the rest (:meth:`FlowHost.settle_by_counter`)."""
        assert isinstance(card, M1Card) and card.info is not None
        host, counter = self.host, card.info.counter
        by_counter: list[JournalEntry] = []
        ride: TapOutcome | None = None
        for entry in rows:
            rec = entry.record
            back = counter - (rec.offline_atc + 1)  # how many records after the one of this row's debit
            raw = self._ring_record(card, back) if 0 <= back < RECORD_RING else None
            found = None if raw is None else _decoded(TRIP_RECORD, raw)
            if raw is None or found is None or found.counter != rec.offline_atc + 1 \
                    or found.kind != RecordType.PURCHASE:
                by_counter.append(entry)  # no record of that counter left: the counter alone decides
                continue
            made = _shows(found, rec)
            host.journal.settle_from_log(entry.row_id, raw, made=made, mac=rec.mac1 if made else None)
            host.settled(entry)
            if made and back == 0:
                ride = host.recovered(entry)
                ride.tac = rec.mac1
        host.settle_by_counter(by_counter, counter, card.card_type)
        return [], ride

    def _ring_record(self, card: M1Card, back: int) -> bytes:
        """The trip record ``back`` debits before the newest."""
        assert card.info is not None
        if back == 0:
            return card.newest
        return self._read(card, RECORD_BLOCKS[(card.info.record_pointer - back) % RECORD_RING])


def _decoded(layout: Layout[T], raw: bytes) -> T | None:
    """A block as ``layout`` reads it, ``None`` when it does not decode (a block no debit of this layout wrote)."""
    try:
        return layout.parse(raw)
    except ProtocolError:
        return None


def _shows(found: TripRecord, rec: DebitRecord) -> bool:
    """Whether the card's trip record is this row's debit: same amount, balance before and date-time."""
    return found.amount == rec.amount and found.balance_before == rec.balance_before and found.when == rec.when

