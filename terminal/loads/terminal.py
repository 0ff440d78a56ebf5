"""The load terminal (圈存): a top-up machine, a shop counter or a phone held to the card, all the same PBOC load.

One tap: SELECT (file 0x15 from the FCI), INITIALIZE FOR LOAD (the card's balance, online counter and MAC1), the
host's MAC2 (:class:`~terminal.loads.host.LoadHost`: the terminal holds no load key), CREDIT FOR LOAD (the card's TAC),
and the TAC handed to the host. Every step that matters is journaled first (:mod:`terminal.loads.journal`).

Money is conserved:

* the host is asked only after the request is journaled, and CREDIT goes to the card only once the host's MAC2 is
  journaled; a host that refuses or cannot be reached leaves the card untouched (the load is void);
* a card torn away after CREDIT was sent leaves the load ``authorized``: at that card's next tap the terminal asks GET
  TRANSACTION PROVE for the counter after the load. A proof whose MAC2 is this load's proves it (the TAC goes to the
  host, the tap ends there: it finishes the load the rider asked for); no proof, and INITIALIZE FOR LOAD showing the
  same online counter, proves it was not credited (void, and the new load goes ahead); a counter that moved without
  a proof leaves it ``unconfirmed`` for the back office;
* a TAC the host could not be told yet stays ``credited`` and is sent again at :meth:`LoadTerminal.start` and before
  every tap;
* a card showing an online counter the journal already holds (a copy of a card, a restored card image) is refused
  (``duplicate_card``): one card never stops the terminal.

Like the validator, the terminal is driven by its caller one :meth:`LoadTerminal.load` at a time; it never sleeps and
reads time only from the injected clock.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field

from protocols import card_commands as cc
from protocols.card_files import PUBLIC_APP_INFO, SFI_PUBLIC_APP_INFO, PublicAppInfo, TransactionType
from protocols.errors import ProtocolError
from protocols.fci import T_UNION_EP_AID, Fci
from protocols.status import CardStatus, format_sw
from terminal.channel import Channel
from terminal.clock import Clock
from terminal.errors import CardRemoved, ConfigError, LinkError, LinkTimeout, StatusError
from terminal.link import Link
from terminal.trace import Exchange, ExchangeLog, Tracer, Tracers

from .errors import HostUnreachable, LoadRefused
from .host import LoadHost
from .journal import DuplicateLoad, LoadEntry, LoadJournal, LoadRecord, LoadState
from .messages import LoadRequest

_SELECT = cc.SelectByName(T_UNION_EP_AID).to_bytes()
_READ_15 = cc.ReadBinary(SFI_PUBLIC_APP_INFO, 0, 30).to_bytes()
_LOAD_TYPE = {cc.Purse.EP: TransactionType.EP_LOAD.value, cc.Purse.ED: TransactionType.ED_LOAD.value}
MAX_AMOUNT = 0x7FFFFFFF

# Why a card or the terminal refused, by status word of SELECT and INITIALIZE FOR LOAD.
_SELECT_REFUSALS: dict[int, str] = {
    CardStatus.APPLICATION_BLOCKED: "card_blocked", CardStatus.APPLICATION_LOCKED: "card_invalid",
    CardStatus.APPLICATION_INVALID: "card_invalid", CardStatus.FILE_NOT_FOUND: "not_transit_card",
    CardStatus.NOT_SUPPORTED: "not_transit_card"}
_INIT_REFUSALS: dict[int, str] = {
    CardStatus.WRONG_DATA: "over_max_balance", CardStatus.KEY_INDEX_UNSUPPORTED: "no_load_key",
    CardStatus.COUNTER_EXHAUSTED: "counter_exhausted", CardStatus.CONDITIONS_NOT_SATISFIED: "card_blocked"}


class LoadStatus(str, enum.Enum):
    LOADED = "loaded"  # the card was credited: now, or proven now after a tear
    RETRY = "retry"  # the card left: tap it again (``pending``: a load waits for its proof)
    REFUSED = "refused"  # not loaded: the host or the card refused (``reason`` says which and why)
    FAILED = "failed"  # not loaded: the host could not be reached, or the card answered an error


@dataclass(slots=True)
class LoadOutcome:
    """One tap at a load terminal. Amounts are fen. ``reason`` is a code: the host's refusal code (``bad_mac1``,
    ``over_limit``, ...) or the terminal's (``card_blocked``, ``card_expired``, ``over_max_balance``,
    ``host_unreachable``, ``mac2_refused``, ``card_error``, ``duplicate_card``, ...). ``confirmed`` is whether the
    host has verified the TAC (``None`` before there is one); ``pending``: a load of this card waits for its proof."""

    status: LoadStatus
    reason: str | None = None
    detail: str = ""
    card_serial: bytes | None = None
    amount: int = 0
    balance_before: int | None = None
    balance_after: int | None = None
    load_id: int | None = None
    tac: bytes | None = None
    confirmed: bool | None = None
    recovered: bool = False
    pending: bool = False
    journal_row: int | None = None
    exchanges: list[Exchange] = field(default_factory=list)

    @property
    def loaded(self) -> bool:
        return self.status is LoadStatus.LOADED

    @property
    def message(self) -> str:
        """One line for the display."""
        if self.status is LoadStatus.LOADED:
            shown = f"loaded {self.amount / 100:.2f}"
            if self.balance_after is not None:
                shown += f", balance {(self.balance_after & 0x7FFFFFFF) / 100:.2f}"
            if self.recovered:
                shown += " (recovered)"
            if self.confirmed is False:
                shown += f" ({self.detail})"
            return shown
        if self.status is LoadStatus.RETRY:
            return "please tap again" + (f" ({self.detail})" if self.detail else "")
        return f"not loaded: {self.detail or self.reason}"


class _Stop(Exception):
    """Ends a tap early with its outcome."""

    def __init__(self, outcome: LoadOutcome) -> None:
        super().__init__(outcome.status.value)
        self.outcome = outcome


class LoadTerminal:
    """A load terminal: a card reader, a load host, a journal and a clock.

    ``terminal_id`` is the terminal's 6-byte number (sent in INITIALIZE FOR LOAD and covered by MAC1, MAC2 and the TAC;
    the host checks it against the terminal's token). ``key_index`` is the card key index INITIALIZE names, ``purse``
    the purse loaded (EP, transaction type 02; ED, type 01).
    """

    def __init__(self, card: Link, host: LoadHost, journal: LoadJournal, *, clock: Clock, terminal_id: bytes,
                 key_index: int = 0x01, purse: cc.Purse = cc.Purse.EP, card_timeout_s: float = 0.5,
                 tracer: Tracer | None = None) -> None:
        if not isinstance(terminal_id, bytes) or len(terminal_id) != 6:
            raise ConfigError(f"a load terminal's number is 6 bytes, got {terminal_id!r}")
        if not 0 <= key_index <= 0xFF:
            raise ConfigError(f"key index must be one byte, got {key_index}")
        self.host = host
        self.journal = journal
        self.clock = clock
        self.terminal_id = terminal_id
        self.key_index = key_index
        self.purse = cc.Purse(purse)
        self.transaction_type = _LOAD_TYPE[self.purse]
        self._log = ExchangeLog()
        observer: Tracer = self._log if tracer is None else Tracers(self._log, tracer)
        self.card = Channel(card, peer="card", timeout=card_timeout_s, tracer=observer)

    # -- life cycle ---------------------------------------------------------------------------------------------------

    def start(self) -> int:
        """Void the loads a crash left before the host answered (CREDIT never went out), then send the TACs the host
        was not told yet; returns how many TACs still wait for the host."""
        for entry in self.journal.entries([LoadState.REQUESTED]):
            self.journal.void(entry.row_id, "interrupted before the host answered: CREDIT was never sent")
        return self.confirm_backlog()

    def confirm_backlog(self) -> int:
        """Hand the host every TAC it has not acknowledged; stops at the first unreachable host. Returns how many
        still wait."""
        waiting = list(self.journal.entries([LoadState.CREDITED]))
        for done, entry in enumerate(waiting):
            if self._confirm(entry.row_id, entry.record) is None:
                return len(waiting) - done
        return 0

    @property
    def waiting(self) -> list[LoadRecord]:
        """Loads that wait for their card (torn after CREDIT was sent)."""
        return [entry.record for entry in self.journal.entries([LoadState.AUTHORIZED])]

    def load(self, amount: int, timeout: float = 0.0) -> LoadOutcome | None:
        """Look for a card once; when one is there, load ``amount`` fen onto it (or finish its torn load) and return
        the outcome, else ``None``. Raises :class:`terminal.errors.ReaderGone` when the reader fails."""
        if type(amount) is not int or not 1 <= amount <= MAX_AMOUNT:
            raise ConfigError(f"a load amount is 1..{MAX_AMOUNT} fen, got {amount!r}")
        self.confirm_backlog()
        if self.card.activate(timeout) is None:
            return None
        self._log.exchanges = []
        outcome = self._tap(amount)
        outcome.exchanges = self._log.exchanges
        try:
            self.card.link.deactivate()
        except LinkError:
            pass
        return outcome

    # -- one tap ------------------------------------------------------------------------------------------------------

    def _tap(self, amount: int) -> LoadOutcome:
        serial: bytes | None = None
        try:
            info = self._select()
            serial = info.serial
            self._check_dates(info)
            waiting = self.journal.waiting_for(serial)
            if waiting is not None and self._recover(waiting, info):
                waiting = None
            return self._load(info, amount, waiting)
        except _Stop as stop:
            return stop.outcome
        except (CardRemoved, LinkTimeout) as exc:
            waits = serial is not None and self.journal.waiting_for(serial) is not None
            return LoadOutcome(LoadStatus.RETRY, "card_removed", str(exc), card_serial=serial, amount=amount,
                               pending=waits)
        except StatusError as exc:
            return LoadOutcome(LoadStatus.FAILED, "card_error", str(exc), card_serial=serial, amount=amount)
        except ProtocolError as exc:
            return LoadOutcome(LoadStatus.FAILED, "card_error", f"malformed answer: {exc}", card_serial=serial,
                               amount=amount)

    def _stop(self, status: LoadStatus, reason: str, detail: str, **fields: object) -> _Stop:
        return _Stop(LoadOutcome(status, reason, detail, **fields))  # type: ignore[arg-type]

    def _select(self) -> PublicAppInfo:
        answer = self.card.transmit(_SELECT)
        if answer.sw != CardStatus.OK:
            reason = _SELECT_REFUSALS.get(answer.sw, "card_error")
            status = LoadStatus.FAILED if reason == "card_error" else LoadStatus.REFUSED
            raise self._stop(status, reason, f"SELECT: {format_sw(answer.sw)}")
        raw = Fci.parse(answer.data).file15
        if raw is None:
            raw = self.card.call(_READ_15, "READ BINARY 0x15").data
        return PUBLIC_APP_INFO.parse(raw)

    def _check_dates(self, info: PublicAppInfo) -> None:
        today = self.clock.now().date()
        if info.start_date is not None and today < info.start_date:
            raise self._stop(LoadStatus.REFUSED, "card_not_yet_valid", f"valid from {info.start_date.isoformat()}",
                             card_serial=info.serial)
        if info.expiry_date is None or today > info.expiry_date:
            shown = info.expiry_date.isoformat() if info.expiry_date else "no date"
            raise self._stop(LoadStatus.REFUSED, "card_expired", f"expired {shown}", card_serial=info.serial)

    def _load(self, info: PublicAppInfo, amount: int, waiting: LoadEntry | None) -> LoadOutcome:
        serial = info.serial
        init_command = cc.InitializeForLoad(self.key_index, amount, self.terminal_id, self.purse).to_bytes()
        answer = self.card.transmit(init_command)
        if answer.sw != CardStatus.OK:
            reason = _INIT_REFUSALS.get(answer.sw, "card_error")
            return LoadOutcome(LoadStatus.FAILED if reason == "card_error" else LoadStatus.REFUSED, reason,
                               f"INITIALIZE FOR LOAD: {format_sw(answer.sw)}", card_serial=serial, amount=amount,
                               pending=waiting is not None)
        init = cc.LOAD_INIT_RESPONSE.parse(answer.data)
        balance = init.balance - (1 << 32) if init.balance & 0x80000000 else init.balance
        if waiting is not None:
            self._settle_unproven(waiting, init.online_atc)
        now = self.clock.now()
        record = LoadRecord(uuid.uuid4().hex, serial, info.issuer_id, init.online_atc, amount, balance,
                            self.transaction_type, self.terminal_id, now, init.key_version, init.algorithm_id,
                            init.random, init.mac1)
        try:
            row = self.journal.record_request(record)
        except DuplicateLoad as exc:  # one card never stops the terminal
            return LoadOutcome(LoadStatus.REFUSED, "duplicate_card", f"{exc}: a copy of the card, or a card image "
                               "restored from a copy", card_serial=serial, amount=amount, balance_before=balance,
                               balance_after=balance)
        outcome = LoadOutcome(LoadStatus.LOADED, card_serial=serial, amount=amount, balance_before=balance,
                              balance_after=balance + amount, journal_row=row)
        request = LoadRequest(record.request_id, self.terminal_id, info.issuer_id, serial, balance, amount,
                              init.online_atc, init.random, now, init.mac1, init.key_version, self.transaction_type)
        try:
            authorization = self.host.authorize(request)
        except LoadRefused as exc:
            self.journal.void(row, f"the host refused: {exc.code}: {exc.reason}")
            return self._not_loaded(outcome, LoadStatus.REFUSED, exc.code, exc.reason)
        except HostUnreachable as exc:
            self.journal.void(row, f"host unreachable; CREDIT not sent: {exc}")
            return self._not_loaded(outcome, LoadStatus.FAILED, "host_unreachable",
                                    f"{exc}; the card was not credited")
        self.journal.authorized(row, authorization.load_id, authorization.mac2)
        outcome.load_id = authorization.load_id
        try:
            answer = self.card.transmit(cc.CreditForLoad(now, authorization.mac2).to_bytes())
            if answer.sw != CardStatus.OK:
                self.journal.void(row, f"CREDIT FOR LOAD answered {format_sw(answer.sw)}")
                reason = "mac2_refused" if answer.sw == CardStatus.MAC_INVALID else "card_error"
                return self._not_loaded(outcome, LoadStatus.FAILED, reason, f"CREDIT FOR LOAD: {format_sw(answer.sw)}")
            tac = cc.CREDIT_RESPONSE.parse(answer.data).tac
        except (LinkError, ProtocolError) as exc:
            # The card may or may not have been credited: the row waits for the card's proof.
            outcome.status, outcome.reason, outcome.pending = LoadStatus.RETRY, "card_removed", True
            outcome.detail = f"CREDIT FOR LOAD unanswered: {exc}"
            return outcome
        self.journal.credited(row, tac)
        outcome.tac = tac
        self._tell_host(outcome, row, self.journal.get(row).record)
        return outcome

    def _not_loaded(self, outcome: LoadOutcome, status: LoadStatus, reason: str, detail: str) -> LoadOutcome:
        outcome.status, outcome.reason, outcome.detail = status, reason, detail
        outcome.balance_after = outcome.balance_before
        return outcome

    def _tell_host(self, outcome: LoadOutcome, row: int, record: LoadRecord) -> None:
        """Hand the TAC to the host and say in the outcome what came of it."""
        state = self._confirm(row, record)
        outcome.confirmed = state is LoadState.CONFIRMED
        if state is None:
            outcome.detail = "the host was not told yet; the TAC is kept and sent again"
        elif state is LoadState.FLAGGED:
            outcome.detail = "the host refused the TAC: the load is flagged for investigation"

    def _confirm(self, row: int, record: LoadRecord) -> LoadState | None:
        """Send one journaled TAC; the row's new state, ``None`` when the host could not be reached."""
        assert record.load_id is not None and record.tac is not None
        try:
            self.host.confirm(record.load_id, record.tac)
        except HostUnreachable:
            return None
        except LoadRefused as exc:
            self.journal.flagged(row, f"the host refused the TAC: {exc.code}: {exc.reason}")
            return LoadState.FLAGGED
        self.journal.confirmed(row)
        return LoadState.CONFIRMED

    # -- torn loads ---------------------------------------------------------------------------------------------------

    def _recover(self, entry: LoadEntry, info: PublicAppInfo) -> bool:
        """The card of a torn load is back: GET TRANSACTION PROVE for the counter after it.

        This load's proof ends the tap with the load done; a proof of another load, whose MAC2 is not this load's,
        shows this one was never credited at that counter (void: returns True). No proof: the counter INITIALIZE
        answers settles it (returns False)."""
        rec = entry.record
        prove = cc.GetTransactionProve(rec.trans_type, (rec.online_atc + 1) & 0xFFFF).to_bytes()
        try:
            answer = self.card.transmit(prove)
        except (CardRemoved, LinkTimeout) as exc:
            raise self._stop(LoadStatus.RETRY, "card_removed", f"GET TRANSACTION PROVE unanswered: {exc}",
                             card_serial=rec.card_serial, amount=rec.amount, pending=True,
                             journal_row=entry.row_id) from None
        if answer.sw != CardStatus.OK:
            return False
        proof = cc.PROVE_RESPONSE.parse(answer.data)
        if proof.mac2 != rec.mac2:
            self.journal.void(entry.row_id, "the card's proof for that counter is of another load")
            return True
        self.journal.credited(entry.row_id, proof.tac)
        outcome = LoadOutcome(LoadStatus.LOADED, card_serial=rec.card_serial, amount=rec.amount,
                              balance_before=rec.balance_before, balance_after=rec.balance_before + rec.amount,
                              load_id=rec.load_id, tac=proof.tac, recovered=True, journal_row=entry.row_id)
        self._tell_host(outcome, entry.row_id, self.journal.get(entry.row_id).record)
        raise _Stop(outcome)

    def _settle_unproven(self, entry: LoadEntry, online_atc: int) -> None:
        """A torn load the card gave no proof for: the same online counter shows it was never credited (void); a
        counter that moved means the card was loaded since, which only the card's log can tell apart (unconfirmed)."""
        if online_atc == entry.record.online_atc:
            self.journal.void(entry.row_id, "not credited: the card's online counter had not moved")
        else:
            self.journal.unconfirmed(entry.row_id, f"no proof, and the card's online counter moved to {online_atc}")

