"""Reading a card without keys, and making sense of a capture of what a card said.

:func:`read_card` sends everything a CPU card offers without keys, as public card readers do: SELECT of the PPSE and of
the purse application (T-Union first, then whatever the PPSE lists, then the other schemes' purses), READ BINARY of
files 0x15, 0x16 and 0x17, GET BALANCE of the purse and the passbook, INITIALIZE FOR PURCHASE (amount 0) and FOR
LOAD (amount 1, as nfsee sends it) for the counters, and READ RECORD of the 0x18 log and the 0x1A and 0x1E records
until the card says there are no more. INITIALIZE changes nothing on a card: it opens a transaction in the card's
RAM that the next command drops. The channel's tracer sees every exchange, so a :class:`~terminal.tracefile.TraceWriter`
on it saves the capture.

:func:`interpret` turns the exchanges of a capture (made so, or by a validator's tap, or typed from a log) into what
the card holds as it came into the field (:class:`CardReading`). A capture that contradicts itself is a
:class:`CaptureError` naming the exchange: two reads of a file that disagree, an answer of another card, a balance
or a counter that does not follow from what came before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from protocols import card_commands as cc
from protocols import card_files as cf
from protocols.errors import ProtocolError, YktError
from protocols.fci import PPSE_NAME, T_UNION_EP_AID, Fci
from protocols.hexutil import to_hex
from protocols.schemes import PURSE_AIDS, Scheme, scheme_of
from protocols.status import SW1_BYTES_WAITING, SW1_WRONG_LE, CardStatus

from .channel import Channel
from .link import Activation
from .selection import PURSE_FID

TERMINAL_ZERO = bytes(6)
"""The terminal number a reader without a PSAM sends in INITIALIZE (nfsee's)."""
KEY_INDEX = 1
MAX_PROCESS_RECORDS = 32
_RECORD_FILES = ((cf.SFI_TRANSACTION_LOG, cf.TRANSACTION_LOG_RECORDS), (cf.SFI_PROCESS, MAX_PROCESS_RECORDS),
                 (cf.SFI_TRANSIT_LOG, cf.TRANSIT_RECORDS))
_BINARY_FILES = (cf.SFI_PUBLIC_APP_INFO, cf.SFI_CARDHOLDER, cf.SFI_MANAGEMENT)
_SELECTED = (CardStatus.OK, CardStatus.APPLICATION_BLOCKED)  # selected, but the application may be blocked
_UNCHANGED = ", and the card did not change between them"
_PURCHASE_TYPES = frozenset((cf.TransactionType.EP_PURCHASE, cf.TransactionType.COMPOSITE_PURCHASE))


class CaptureError(YktError):
    """A capture that contradicts itself, or that lacks what is asked of it; the message names the exchange."""


def read_card(channel: Channel, *, initialize: bool = True) -> None:
    """Read everything the card on ``channel`` offers without keys (module notes); the card must be activated.

    ``initialize``: also send INITIALIZE FOR PURCHASE and FOR LOAD, which give the counters, the overdraft limit and
    the key version. Errors of the card are part of what is read; link errors (the card left) go to the caller.
    """
    ppse = channel.transmit(cc.SelectByName(PPSE_NAME, le=256).to_bytes())
    listed: list[bytes] = []
    if ppse.sw == CardStatus.OK and ppse.data:
        try:
            listed = [entry.aid for entry in Fci.parse(ppse.data).directory]
        except ProtocolError:
            listed = []
    candidates = list(dict.fromkeys([T_UNION_EP_AID, *listed, *PURSE_AIDS]))
    if not any(channel.transmit(cc.SelectByName(aid, le=256).to_bytes()).sw in _SELECTED for aid in candidates) \
            and channel.transmit(cc.SelectByFid(PURSE_FID).to_bytes()).sw not in _SELECTED:
        return
    for sfi in _BINARY_FILES:
        channel.transmit(cc.ReadBinary(sfi, 0, 256).to_bytes())
    for purse in (cc.Purse.EP, cc.Purse.ED):
        channel.transmit(cc.GetBalance(purse).to_bytes())
    if initialize:
        channel.transmit(cc.InitializeForPurchase(KEY_INDEX, 0, TERMINAL_ZERO).to_bytes())
        channel.transmit(cc.InitializeForLoad(KEY_INDEX, 1, TERMINAL_ZERO).to_bytes())
    for sfi, most in _RECORD_FILES:
        for number in range(1, most + 1):
            if channel.transmit(cc.ReadRecord(sfi, number, le=256).to_bytes()).sw != CardStatus.OK:
                break


# --- making sense of a capture ---------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Captured:
    """One exchange of a capture: where it is (``exchange 12``, ``exchange 3 (line 7)``), the command, the answer
    (``None``: the exchange failed) and why it failed."""

    where: str
    command: bytes
    response: bytes | None
    error: str | None = None


@dataclass(slots=True)
class CardReading:
    """What a capture shows of one card as it came into the field, and where each fact came from.

    ``files`` hold the transparent files as read (0x15 from READ BINARY or the FCI's 9F0C), possibly shorter than
    the file; ``records`` the records by SFI and record number (0x1A also by the id in the record's byte 1 in
    ``process_records``); the purse numbers come from GET BALANCE and INITIALIZE. ``notes`` say what was left out
    and why. ``sources`` maps each fact (``"file 15"``, ``"balance"``, ...) to the exchange it came from.
    """

    activation: Activation | None = None
    aid: bytes | None = None
    scheme: Scheme | None = None
    fci: bytes | None = None
    ppse: bytes | None = None
    blocked: bool = False
    files: dict[int, bytes] = field(default_factory=dict)
    records: dict[int, dict[int, bytes]] = field(default_factory=dict)
    records_asked: set[int] = field(default_factory=set)  # the SFIs READ RECORD asked for, whatever the answer
    process_records: dict[int, bytes] = field(default_factory=dict)
    balance: int | None = None
    passbook_balance: int | None = None
    purchase_init: cc.PurchaseInitResponse | None = None
    load_init: cc.LoadInitResponse | None = None
    notes: list[str] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def serial(self) -> bytes | None:
        """The application serial (0x15 bytes 10..19) of a T-Union card, when the capture holds it."""
        info = self.files.get(cf.SFI_PUBLIC_APP_INFO, b"")
        return info[10:20] if self.scheme is not None and self.scheme.file15 is cf.PUBLIC_APP_INFO and \
            len(info) >= 20 else None


class _Interpreter:
    """Walks a capture's exchanges once, keeping the card's state and checking each answer against it."""

    def __init__(self, reading: CardReading) -> None:
        self.reading = reading
        self.changed: str | None = None  # the exchange after which the card is no longer as it came
        self.uncertain = False  # a change of unknown outcome (a torn debit): later purse answers are not checked
        self.balance_delta = 0  # what committed debits and loads did to the purse since
        self.offline_done = 0  # debits committed since the card came
        self.online_done = 0
        self.open_init: tuple[str, cc.Command, int] | None = None  # an INITIALIZE and its amount, for DEBIT/CREDIT
        self.current: bytes | None = None  # the DF name of the selected application
        self.waiting: tuple[str, bytes, bytes] | None = None  # 61xx: where, command, data so far

    # -- the walk -------------------------------------------------------------------------------------------------

    def exchange(self, item: Captured) -> None:
        response = item.response
        if response is None:
            self._failed(item)
            return
        if len(response) < 2:
            raise CaptureError(f"{item.where}: an answer of {len(response)} bytes has no status word")
        command = item.command
        if command[1:2] == b"\xc0" and self.waiting is not None:  # GET RESPONSE bringing an announced answer
            where, command, data = self.waiting
            response = data + response
            item = Captured(where, command, response)
        self.waiting = None
        if response[-2] == SW1_BYTES_WAITING:
            self.waiting = (item.where, command, response[:-2])
            return
        if response[-2] == SW1_WRONG_LE:
            return  # wrong Le: the reader sends the command again with the right one
        try:
            parsed = cc.parse_card_command(command)
        except ProtocolError:
            self.note(f"{item.where}: {to_hex(command[:4])} is not a card command; left out")
            return
        handler = _HANDLERS.get(type(parsed))
        if handler is not None:
            handler(self, item.where, parsed, response[:-2], (response[-2] << 8) | response[-1])

    def _failed(self, item: Captured) -> None:
        self.waiting = None
        command = item.command
        if command[:2] in (b"\x80\x54", b"\x80\x52", b"\x84\x1e") and not self.uncertain:
            self.changed, self.uncertain = self.changed or item.where, True
            self.note(f"{item.where}: no answer ({item.error or 'the exchange failed'}); whether the card committed "
                      f"it is unknown, so nothing read after it is used")

    def note(self, text: str) -> None:
        self.reading.notes.append(text)

    def _source(self, what: str, where: str) -> None:
        self.reading.sources.setdefault(what, where)

    # -- selection -------------------------------------------------------------------------------------------------

    def select(self, where: str, command: cc.SelectByName | cc.SelectByFid, data: bytes, sw: int) -> None:
        reading = self.reading
        if sw not in _SELECTED:
            if isinstance(command, cc.SelectByName) and command.aid == T_UNION_EP_AID and reading.aid is None:
                self.note(f"{where}: the card has no T-Union purse ({sw:04X})")
            return
        name = command.aid if isinstance(command, cc.SelectByName) else None
        fci = None
        if data:
            try:
                fci = Fci.parse(data)
            except ProtocolError as exc:
                self.note(f"{where}: SELECT answered a malformed FCI ({exc}); left out")
            else:
                name = fci.df_name
        if name == PPSE_NAME:
            self.current = PPSE_NAME
            self._same("PPSE", where, data, reading.ppse)
            reading.ppse = reading.ppse or data
            return
        if name is None:
            self.current = None
            return
        scheme = scheme_of(name)
        self.current = name
        if reading.aid is None and scheme is not None and scheme.kind == "purse":
            reading.aid, reading.scheme = name, scheme
            self._source("application", where)
        if name != reading.aid:
            return
        if sw == CardStatus.APPLICATION_BLOCKED:
            reading.blocked = True
        if fci is not None:
            issuer_data = fci.discretionary_data
            if issuer_data is not None and scheme is not None and scheme.file15 is not None:
                self._file(where, cf.SFI_PUBLIC_APP_INFO, 0, issuer_data)
            self._same("the FCI", where, data, reading.fci)
            reading.fci = reading.fci or data

    def _same(self, what: str, where: str, data: bytes, before: bytes | None, why: str = "") -> None:
        """``data`` must be what the capture showed of ``what`` before (``why`` says why it cannot have changed)."""
        if before is not None and data != before:
            raise CaptureError(f"{where}: {what} is {to_hex(data)}, but {self.reading.sources[what]} gave "
                               f"{to_hex(before)}{why}")
        self._source(what, where)

    # -- files and records -----------------------------------------------------------------------------------------

    def _in_purse(self, where: str) -> bool:
        if self.current is None or self.current != self.reading.aid:
            self.note(f"{where}: read outside the purse application; left out")
            return False
        return True

    def read_binary(self, where: str, command: cc.ReadBinary, data: bytes, sw: int) -> None:
        if sw == CardStatus.OK and self._in_purse(where):
            self._file(where, command.sfi, command.offset, data)

    def _file(self, where: str, sfi: int, offset: int, data: bytes) -> None:
        """Merge a read of ``data`` at ``offset`` into what is known of the file; bytes read twice must agree."""
        files = self.reading.files
        known = files.get(sfi, b"")
        what = f"file {sfi:02X}"
        overlap = known[offset:offset + len(data)]
        if overlap != data[:len(overlap)]:
            serial = slice(10, 20)
            if self.reading.serial is not None and sfi == cf.SFI_PUBLIC_APP_INFO and offset == 0 and \
                    len(data) >= 20 and overlap[serial] != data[serial]:
                raise CaptureError(f"{where}: another card (serial {to_hex(data[serial])}) than the one "
                                   f"{self.reading.sources[what]} read (serial {to_hex(overlap[serial])}): a capture "
                                   f"holds one card")
            raise CaptureError(f"{where}: {what} at byte {offset} reads {to_hex(data[:len(overlap)])}, but "
                               f"{self.reading.sources[what]} read {to_hex(overlap)}")
        if offset > len(known):
            self.note(f"{where}: {what} read from byte {offset}, past the {len(known)} bytes known; left out")
            return
        files[sfi] = known[:offset] + data if offset + len(data) > len(known) else known
        self._source(what, where)

    def read_record(self, where: str, command: cc.ReadRecord, data: bytes, sw: int) -> None:
        if self.current is not None and self.current == self.reading.aid:
            self.reading.records_asked.add(command.sfi)
        if sw != CardStatus.OK or not self._in_purse(where):
            return
        sfi = command.sfi
        if self.changed is not None:
            self.note(f"{where}: record {command.record} of {sfi:02X} read after the card changed "
                      f"({self.changed}); left out")
            return
        if command.mode is cc.RecordMode.IDENTIFIER:
            if sfi == cf.SFI_PROCESS:
                self._process_record(where, command.record, data)
            return
        records = self.reading.records.setdefault(sfi, {})
        what = f"record {command.record} of {sfi:02X}"
        self._same(what, where, data, records.get(command.record), _UNCHANGED)
        records[command.record] = data
        if sfi == cf.SFI_PROCESS and len(data) > 1:
            self._process_record(where, data[1], data)

    def _process_record(self, where: str, record_id: int, data: bytes) -> None:
        if len(data) < 2 or data[1] != record_id:
            raise CaptureError(f"{where}: a 0x1A record asked for by id {record_id:02X} starts {to_hex(data[:2])}")
        self._same(f"0x1A record {record_id:02X}", where, data, self.reading.process_records.get(record_id),
                   _UNCHANGED)
        self.reading.process_records[record_id] = data

    # -- the purse ---------------------------------------------------------------------------------------------------

    def _balance(self, where: str, value: int, what: str, before: int | None) -> int | None:
        """The balance as the card came, from a balance seen now; checked against the one known."""
        if self.uncertain:
            return before
        arrived = (value - self.balance_delta) & 0xFFFFFFFF
        if before is not None and arrived != before:
            source, delta = self.reading.sources["balance"], self.balance_delta
            if delta:
                raise CaptureError(f"{where}: {what} {value} fen, but the card came with {before} ({source}) and "
                                   f"{delta:+d} fen were committed since: {(before + delta) & 0xFFFFFFFF} was due")
            raise CaptureError(f"{where}: {what} {value} fen, but {source} gave {before}")
        self._source("balance", where)
        return arrived

    def get_balance(self, where: str, command: cc.GetBalance, data: bytes, sw: int) -> None:
        if sw != CardStatus.OK or len(data) != 4 or not self._in_purse(where):
            return
        value = int.from_bytes(data, "big")
        if command.purse == cc.Purse.EP:
            self.reading.balance = self._balance(where, value, "GET BALANCE says", self.reading.balance)
        elif self.changed is None:
            self.reading.passbook_balance = value
            self._source("passbook balance", where)

    def initialize(self, where: str, command: cc.Command, data: bytes, sw: int) -> None:
        self.open_init = None
        if (sw != CardStatus.OK or not self._in_purse(where)
                or getattr(command, "purse", cc.Purse.EP) != cc.Purse.EP):
            return
        reading = self.reading
        try:
            if isinstance(command, cc.InitializeForLoad):
                answer: cc.PurchaseInitResponse | cc.LoadInitResponse = cc.LOAD_INIT_RESPONSE.parse(data)
            else:
                answer = cc.PURCHASE_INIT_RESPONSE.parse(data)
        except ProtocolError as exc:
            raise CaptureError(f"{where}: INITIALIZE answered {to_hex(data)}: {exc}") from None
        reading.balance = self._balance(where, answer.balance, "INITIALIZE says the balance is", reading.balance)
        self.open_init = (where, command, command.amount)  # type: ignore[attr-defined]
        if self.uncertain:
            return
        if isinstance(answer, cc.LoadInitResponse):
            self._counter(where, "online ATC", answer.online_atc - self.online_done,
                          None if reading.load_init is None else reading.load_init.online_atc)
            reading.load_init = reading.load_init or answer
        else:
            self._counter(where, "offline ATC", answer.offline_atc - self.offline_done,
                          None if reading.purchase_init is None else reading.purchase_init.offline_atc)
            reading.purchase_init = reading.purchase_init or answer

    def _counter(self, where: str, what: str, arrived: int, before: int | None) -> None:
        if before is not None and arrived != before:
            raise CaptureError(f"{where}: the {what} does not follow from {self.reading.sources[what]} "
                               f"({before} as the card came, {arrived} now)")
        self._source(what, where)

    def debit(self, where: str, command: cc.Command, data: bytes, sw: int) -> None:
        opened, self.open_init = self.open_init, None
        if sw != CardStatus.OK or opened is None:
            return
        loading = isinstance(command, cc.CreditForLoad)
        if loading != isinstance(opened[1], cc.InitializeForLoad):
            return
        self.balance_delta += opened[2] if loading else -opened[2]
        if loading:
            self.online_done += 1
        else:
            self.offline_done += 1
        if self.changed is None:
            self.changed = where

    def block(self, where: str, command: cc.Command, data: bytes, sw: int) -> None:
        if sw == CardStatus.OK and self.changed is None:
            self.changed = where

    def finish(self) -> None:
        """Checks that need the whole capture: the counter is past every purchase the log holds."""
        reading = self.reading
        if reading.purchase_init is None:
            return
        atc = reading.purchase_init.offline_atc
        for number, raw in sorted(reading.records.get(cf.SFI_TRANSACTION_LOG, {}).items()):
            try:
                record = cf.TRANSACTION_LOG_RECORD.parse(raw)
            except ProtocolError:
                continue
            if record.transaction_type in _PURCHASE_TYPES and record.atc >= atc:
                where = reading.sources[f"record {number} of 18"]
                raise CaptureError(f"{where}: record {number} of 0x18 is a purchase with ATC {record.atc}, but "
                                   f"{reading.sources['offline ATC']} says the card's counter is {atc}")


_HANDLERS: dict[type, Callable[..., None]] = {
    cc.SelectByName: _Interpreter.select,
    cc.SelectByFid: _Interpreter.select,
    cc.ReadBinary: _Interpreter.read_binary,
    cc.ReadRecord: _Interpreter.read_record,
    cc.GetBalance: _Interpreter.get_balance,
    cc.InitializeForPurchase: _Interpreter.initialize,
    cc.InitializeForCappPurchase: _Interpreter.initialize,
    cc.InitializeForLoad: _Interpreter.initialize,
    cc.DebitForPurchase: _Interpreter.debit,
    cc.CreditForLoad: _Interpreter.debit,
    cc.ApplicationBlock: _Interpreter.block,
}


def interpret(exchanges: Iterable[Captured], activations: Sequence[Activation] = ()) -> CardReading:
    """What the card of a capture holds as it came into the field (module notes); :class:`CaptureError` names the
    exchange that contradicts the others."""
    reading = CardReading(activation=activations[0] if activations else None)
    if len({(a.uid, a.ats) for a in activations}) > 1:
        reading.notes.append("the card's UID or ATS changed between activations (random UIDs); the first is kept")
    walker = _Interpreter(reading)
    for item in exchanges:
        walker.exchange(item)
    walker.finish()
    return reading
