"""A PN532 in software, without I/O: host bytes in, chip bytes out, with a simulated card in its field.

It answers what libnfc (``nfc-list``, ``nfc-poll``, ``nfc_initiator_transceive_bytes``) and
:class:`terminal.drivers.pn532.Pn532Link` send. Every well-formed host frame is acknowledged with ACK, then answered;
a host ACK aborts a command still running (a poll waiting for a card); a host NACK gets the last answer again; a
damaged host frame gets no ACK (the host sends it again); a command the chip cannot parse gets ACK and the error
frame (UM0701-02 §6.2). A frame counts once its postamble has come (its sum checksums miss a lost ``00``, which
would shift the command's bytes), and a frame left unfinished for :data:`RECEIVE_GAP` is dropped, so that the
host's next frame is not taken for its missing bytes: whether a real PN532 checks the postamble and times out a
partial frame is not in the manual (UNCONFIRMED).

The card in the field:

- InListPassiveTarget (type A, 106 kbit/s) powers the field on, activates the card (``Device.power_on``) and
  reports UID, ATQA, SAK and, when SetParameters asked for automatic RATS, the ATS. A card that is halted (after
  InDeselect or InRelease) is not listed again until the field goes off and on or the card leaves and re-enters the
  field: libnfc's listing loop relies on that second listing finding nothing.
  When no card answers, the answer ``4B 00`` comes after the chip's retries (``try_time`` each, MxRtyPassiveActivation
  from RFConfiguration item 05); with ``FF`` (retry forever) the command waits until a card comes or the host aborts.
- InDataExchange hands the APDU to ``Device.execute``; data flagged MI is collected first, and an answer longer than
  one frame goes out in pieces flagged MI, the host fetching each with ``40 Tg``. A device that raises
  :class:`~terminal.errors.CardRemoved` has left the field: the chip answers status ``01`` (time-out).
- A MIFARE Classic target (activation ``MIFARE``) takes MIFARE commands in InDataExchange instead (``60/61 block
  key uid``, ``30``, ``A0``, ``C0``-``C2``, ``B0``; the chip runs the two-part WRITE and value commands itself): a
  READ answers its 16 bytes, anything the card acknowledged status 00 and no data. A failed authentication is
  status ``14``, and the card, back in IDLE, answers nothing (time-out) until it is listed again, as libnfc's tools do
  after trying a wrong key. A Classic ignores an ISO-DEP block (InCommunicateThru, e.g. a RATS: time-out) and goes
  back to IDLE too: the chip drops the target. A card's NAK is status ``05``, "framing error during a MIFARE
  operation" (which status a PN532 gives a NAK is UNCONFIRMED).
- InCommunicateThru carries ISO-DEP blocks the host frames itself: an R-block (``nfc-poll``'s presence check ``B2``)
  is answered with R(ACK) or the last I-block, as ISO 14443-4's rules say, an I-block with its answer, S(DESELECT)
  halts the card. Without an active card it answers status ``01``.
- InAutoPoll reports the card under the first requested type it matches (``20`` for ISO 14443-4 A, with the ATS;
  ``10`` and ``00`` for any type A card, without it), or answers no target after ``PollNr × Period × 150 ms`` per
  type (``FF``: forever).
- ReadRegister answers the values written (0 for a register never written), without a status byte, as a PN532 does;
  Diagnose echoes the line test and reports card presence; GetGeneralStatus, SAMConfiguration, SetParameters,
  RFConfiguration, InDeselect, InRelease, InSelect and PowerDown answer as the chip's manual says.

Time is passed in (``now``, seconds on any monotonic clock), so the chip runs the same in a test and behind a pty.
"""

from __future__ import annotations

import collections
import logging
from dataclasses import dataclass

from protocols.errors import ProtocolError
from protocols.hexutil import to_hex
from protocols.iso14443 import Pcb, cascade_levels, sak_iso14443_4
from protocols.mifare import ACK as MIFARE_ACK
from protocols.mifare import BLOCK_SIZE, KeyType, without_key
from protocols.pn532 import (
    ERROR_MASK,
    MAX_EXCHANGE_DATA,
    STATUS_MI,
    TFI_HOST,
    TYPE_A_TARGETS,
    AutoPollTarget,
    BadFrame,
    ChipError,
    ControlFrame,
    Diagnose,
    DiagnoseResponse,
    DiagnoseTest,
    FirmwareVersion,
    Frame,
    FrameDecoder,
    GeneralStatus,
    GetFirmwareVersion,
    GetGeneralStatus,
    InAutoPoll,
    InAutoPollResponse,
    InCommunicateThru,
    InDataExchange,
    InDeselect,
    InListPassiveTarget,
    InListPassiveTargetResponse,
    InRelease,
    InSelect,
    Modulation,
    ParameterFlags,
    PowerDown,
    ReadRegister,
    ReadRegisterResponse,
    RFConfiguration,
    RFItem,
    SAMConfiguration,
    SetParameters,
    TargetA,
    TargetStatus,
    TargetType,
    WriteRegister,
    chip_frame,
    name_of,
    parse_command,
)
from protocols.pn532.commands import Command
from terminal.errors import CardRemoved
from terminal.link import Activation

from ..device import Device

log = logging.getLogger("sim.pn532")

ACK = ControlFrame.ACK.to_bytes()
ERROR_FRAME = ControlFrame.ERROR.to_bytes()
PN532_V16 = FirmwareVersion(0x32, 1, 6, 7)
"""What a PN532 v1.6 answers to GetFirmwareVersion: IC 32, version 1.6, ISO 14443-A, -B and ISO 18092."""
AUTOPOLL_PERIOD = 0.15
"""InAutoPoll's period unit: 150 ms."""
_RETRY_FOREVER = 0xFF
_RECHECK = 0.05  # how often a command waiting for a card looks again (a card may be put in meanwhile)
RECEIVE_GAP = 0.03
"""Silence after which a host frame still unfinished is dropped (well under a host's ACK timeout, 15 ms by the
manual and more in practice, after which the host sends the frame again)."""
_TG = 1  # the number of the one target this chip lists


@dataclass(slots=True)
class _Waiting:
    """A command waiting for a card: tried again on each :meth:`Pn532Chip.due`, given up at ``deadline``."""

    command: Command
    deadline: float | None
    give_up: bytes


class Pn532Chip:
    """An emulated PN532 with ``card`` (a :class:`~sim.device.Device` answering ISO 14443-A activation) in its field.

    Feed host bytes to :meth:`receive`; write what it returns to the host. When :attr:`deadline` is not ``None``,
    call :meth:`due` at that time for the answer of a command that waited. ``received`` keeps the most recent host
    commands (data of each frame), newest last, for tests and traces.
    """

    def __init__(self, card: Device | None = None, *, firmware: FirmwareVersion = PN532_V16,
                 try_time: float = 0.01) -> None:
        self.card = card
        self.firmware = firmware
        self.try_time = try_time
        self.field = False
        self.halted = False
        """The card is in HALT: not listed until the field is cycled or it re-enters the field."""
        self.target: Activation | None = None
        """The activated card (target 1), ``None`` when none is."""
        self.deselected = False
        """Target 1 was deselected (InDeselect) and InSelect may bring it back."""
        self.parameters = ParameterFlags.AUTOMATIC_ATR_RES | ParameterFlags.AUTOMATIC_RATS
        self.passive_retries = _RETRY_FOREVER
        self.registers: dict[int, int] = {}
        self.last_error = ChipError.NONE
        self.received: collections.deque[bytes] = collections.deque(maxlen=256)
        self.commands = 0
        """Host commands handled."""
        self.apdus = 0
        """Commands the card processed (InDataExchange, InCommunicateThru I-blocks)."""
        self._decoder = FrameDecoder(postamble=True)
        self._heard_at = 0.0
        self._last_answer: bytes | None = None
        self._waiting: _Waiting | None = None
        self._next_check: float | None = None
        self._chained = bytearray()  # InDataExchange data flagged MI, waiting for the rest
        self._rest = b""  # the part of an answer that did not fit a frame
        self._picc_block = 1  # ISO 14443-4 block number of the card
        self._last_i_block: bytes | None = None

    # --- the card in the field ------------------------------------------------------------------------------------

    def put(self, card: Device) -> None:
        """A card enters the field (replacing any other): it answers the next poll."""
        self.take()
        self._drop_target()
        self.card = card

    def take(self) -> Device | None:
        """The card leaves the field; returns it. The chip still takes it for its target, as a real chip does
        until it polls again: exchanges with it time out (status ``01``)."""
        card, self.card = self.card, None
        self.halted = False
        return card

    def _drop_target(self) -> None:
        self.target = None
        self.deselected = False
        self._chained.clear()
        self._rest = b""
        self._last_i_block = None

    def _set_field(self, on: bool) -> None:
        if on == self.field:
            return
        self.field = on
        self._drop_target()
        self.halted = False  # power lost: a card wakes up IDLE, not HALT

    def _activate(self, match: bytes = b"") -> Activation | None:
        """Power the field, wake the card if it is there and not halted, and make it target 1."""
        self._set_field(True)
        card = self.card
        if card is None or self.halted:
            return None
        activation = card.power_on()
        if activation.sak is None or not activation.uid or len(activation.atqa) != 2:
            log.error("the device in the field is not a contactless card: %r", activation)
            return None
        if match and match not in (activation.uid, b"".join(cascade_levels(activation.uid))):
            return None
        self._drop_target()
        self.target = activation
        self._picc_block = 1
        return activation

    def _target_a(self, activation: Activation) -> TargetA:
        iso = sak_iso14443_4(activation.sak or 0)
        ats = activation.ats if iso and self.parameters & ParameterFlags.AUTOMATIC_RATS else None
        return TargetA(_TG, activation.atqa, activation.sak or 0, activation.uid, ats)

    def _halt(self) -> None:
        self._drop_target()
        self.halted = True

    # --- bytes in, bytes out --------------------------------------------------------------------------------------

    @property
    def deadline(self) -> float | None:
        """When :meth:`due` should run next; ``None`` when no command is waiting."""
        if self._waiting is None:
            return None
        if self._waiting.deadline is None:
            return self._next_check
        return min(self._waiting.deadline, self._next_check or self._waiting.deadline)

    def receive(self, data: bytes, now: float) -> bytes:
        """Host bytes in; the chip's bytes to send back at once."""
        if self._decoder.pending and now - self._heard_at > RECEIVE_GAP:
            self._decoder.reset()  # an unfinished frame: its missing bytes will not come
        self._heard_at = now
        out = bytearray()
        for event in self._decoder.feed(data):
            if isinstance(event, Frame):
                if event.tfi == TFI_HOST:
                    out += self._frame(event.data, now)
            elif event is ControlFrame.ACK:
                if self._waiting is not None:
                    log.debug("host ACK: %s aborted", name_of(self._waiting.command.CODE))
                    self._waiting = None
            elif event is ControlFrame.NACK:
                if self._last_answer is not None:
                    out += self._last_answer
            elif isinstance(event, BadFrame):
                log.debug("damaged host frame (%s): no ACK", event.fault.value)
        return bytes(out)

    def due(self, now: float) -> bytes:
        """The answer of a waiting command, when a card has come or its time is up; ``b""`` otherwise."""
        waiting = self._waiting
        if waiting is None:
            return b""
        answer = self._retry(waiting.command)
        if answer is None and waiting.deadline is not None and now >= waiting.deadline:
            answer = waiting.give_up
        if answer is None:
            self._next_check = now + _RECHECK
            return b""
        self._waiting = None
        return self._answer(answer)

    def _frame(self, data: bytes, now: float) -> bytes:
        self.received.append(data)
        self.commands += 1
        self._waiting = None  # a new command ends one still running
        try:
            command = parse_command(data)
        except ProtocolError as exc:
            log.warning("host command %s refused with the error frame: %s", to_hex(data), exc)
            self._last_answer = ERROR_FRAME
            return ACK + ERROR_FRAME
        shown = data[:2] + without_key(data[2:]) if data[:1] == b"\x40" else data  # no MIFARE key in the log
        log.debug("host > %s %s", name_of(data[0]), to_hex(shown))
        answer = self._run(command, now)
        if answer is None:
            return ACK
        return ACK + self._answer(answer)

    def _answer(self, answer: bytes) -> bytes:
        log.debug("chip < %s %s", name_of(answer[0]), to_hex(answer))
        frame = chip_frame(answer)
        self._last_answer = frame
        return frame

    def _wait(self, command: Command, now: float, duration: float | None, give_up: bytes) -> None:
        self._waiting = _Waiting(command, None if duration is None else now + duration, give_up)
        self._next_check = now + min(_RECHECK, duration) if duration is not None else now + _RECHECK

    def _retry(self, command: Command) -> bytes | None:
        if isinstance(command, InListPassiveTarget):
            return self._try_list(command)
        if isinstance(command, InAutoPoll):
            return self._try_auto_poll(command)
        return None

    # --- commands -------------------------------------------------------------------------------------------------

    def _run(self, command: Command, now: float) -> bytes | None:
        """The answer of the handler of ``command``'s class (``None``: answered later, or never)."""
        match command:
            case Diagnose():
                return self._diagnose(command, now)
            case GetFirmwareVersion():
                return self._firmware_version(command, now)
            case GetGeneralStatus():
                return self._general_status(command, now)
            case ReadRegister():
                return self._read_register(command, now)
            case WriteRegister():
                return self._write_register(command, now)
            case SetParameters():
                return self._set_parameters(command, now)
            case SAMConfiguration():
                return self._bare(command, now)
            case PowerDown():
                return self._power_down(command, now)
            case RFConfiguration():
                return self._rf_configuration(command, now)
            case InListPassiveTarget():
                return self._list(command, now)
            case InDataExchange():
                return self._data_exchange(command, now)
            case InCommunicateThru():
                return self._communicate_thru(command, now)
            case InDeselect():
                return self._deselect(command, now)
            case InRelease():
                return self._release(command, now)
            case InSelect():
                return self._select(command, now)
            case InAutoPoll():
                return self._auto_poll(command, now)
        raise ProtocolError(f"the emulated PN532 has no handler for {type(command).__name__}")

    def _bare(self, command: Command, now: float) -> bytes:
        return command.bare_response()

    def _diagnose(self, command: Diagnose, now: float) -> bytes:
        if command.test == DiagnoseTest.COMMUNICATION_LINE:
            return command.echo().to_bytes()
        if command.test == DiagnoseTest.CARD_PRESENCE:
            present = self.target is not None and self.card is not None
            return DiagnoseResponse(bytes((ChipError.NONE if present else ChipError.TIMEOUT,))).to_bytes()
        return DiagnoseResponse(b"\x00").to_bytes()

    def _firmware_version(self, command: GetFirmwareVersion, now: float) -> bytes:
        return self.firmware.to_bytes()

    def _general_status(self, command: GetGeneralStatus, now: float) -> bytes:
        targets = (TargetStatus(_TG, 0, 0, Modulation.ISO14443A_106),) if self.target is not None else ()
        return GeneralStatus(self.last_error, self.field, targets, 0).to_bytes()

    def _read_register(self, command: ReadRegister, now: float) -> bytes:
        return ReadRegisterResponse(bytes(self.registers.get(address, 0) for address in command.addresses)).to_bytes()

    def _write_register(self, command: WriteRegister, now: float) -> bytes:
        for address, value in command.writes:
            self.registers[address] = value
        return command.bare_response()

    def _set_parameters(self, command: SetParameters, now: float) -> bytes:
        self.parameters = ParameterFlags(command.flags)
        return command.bare_response()

    def _power_down(self, command: PowerDown, now: float) -> bytes:
        self._set_field(False)
        return self._status(command, ChipError.NONE)

    def _rf_configuration(self, command: RFConfiguration, now: float) -> bytes:
        if command.item == RFItem.FIELD:
            self._set_field(bool(command.data[0] & 0x01))
        elif command.item == RFItem.MAX_RETRIES:
            self.passive_retries = command.data[2]
        return command.bare_response()

    def _list(self, command: InListPassiveTarget, now: float) -> bytes | None:
        answer = self._try_list(command)
        if answer is not None:
            return answer
        retries = self.passive_retries
        duration = None if retries == _RETRY_FOREVER else (retries + 1) * self.try_time
        self._wait(command, now, duration, InListPassiveTargetResponse().to_bytes())
        return None

    def _try_list(self, command: InListPassiveTarget) -> bytes | None:
        if command.modulation != Modulation.ISO14443A_106:
            self._set_field(True)
            return None  # no FeliCa, type B or Jewel card here
        activation = self._activate(command.initiator_data)
        if activation is None:
            return None
        return InListPassiveTargetResponse((self._target_a(activation),)).to_bytes()

    def _auto_poll(self, command: InAutoPoll, now: float) -> bytes | None:
        answer = self._try_auto_poll(command)
        if answer is not None:
            return answer
        duration = None
        if command.poll_count != _RETRY_FOREVER:
            duration = command.poll_count * command.period * AUTOPOLL_PERIOD * len(command.types)
        self._wait(command, now, duration, InAutoPollResponse().to_bytes())
        return None

    def _try_auto_poll(self, command: InAutoPoll) -> bytes | None:
        kinds = [kind for kind in command.types if kind in TYPE_A_TARGETS]
        activation = self._activate() if kinds else None
        if activation is None:
            self._set_field(True)
            return None
        iso = sak_iso14443_4(activation.sak or 0)
        for kind in kinds:
            if kind == TargetType.ISO14443_4A_106 and not iso:
                continue
            target = self._target_a(activation)
            if kind != TargetType.ISO14443_4A_106:
                target.ats = None
            return InAutoPollResponse((AutoPollTarget(kind, target),)).to_bytes()
        self._drop_target()
        return None

    def _deselect(self, command: InDeselect, now: float) -> bytes:
        if self.target is not None and command.tg in (0, _TG):
            self._halt()
            self.deselected = True
        return self._status(command, ChipError.NONE)

    def _release(self, command: InRelease, now: float) -> bytes:
        if (self.target is not None or self.deselected) and command.tg in (0, _TG):
            self._halt()
        return self._status(command, ChipError.NONE)

    def _select(self, command: InSelect, now: float) -> bytes:
        if command.tg == _TG and self.deselected and self.card is not None:
            self.halted = False
            if self._activate() is not None:
                return self._status(command, ChipError.NONE)
        return self._status(command, ChipError.WRONG_CONTEXT)

    def _status(self, command: Command, status: int, data: bytes = b"") -> bytes:
        """The answer of a command that reports a status byte (and, for the exchanges, the card's data)."""
        self.last_error = ChipError(status & ERROR_MASK)
        response = command.RESPONSE
        assert response is not None
        answer = response(status, data) if data else response(status)  # type: ignore[call-arg]  # a status response
        return answer.to_bytes()

    def _execute(self, apdu: bytes) -> bytes | None:
        """The card's answer, or ``None`` when it has left the field."""
        card = self.card
        if card is None:
            return None
        self.apdus += 1
        try:
            return card.execute(apdu)
        except CardRemoved as exc:
            log.info("the card left the field: %s", exc)
            self.take()
            return None

    def _data_exchange(self, command: InDataExchange, now: float) -> bytes:
        if self.target is None or command.tg != _TG:
            return self._status(command, ChipError.WRONG_CONTEXT)
        if self.target.protocol == "MIFARE":
            return self._mifare_exchange(command)
        if command.more:
            self._chained += command.data
            return self._status(command, ChipError.NONE)
        if not command.data and self._rest:
            piece, self._rest = self._rest[:MAX_EXCHANGE_DATA], self._rest[MAX_EXCHANGE_DATA:]
            return self._status(command, STATUS_MI if self._rest else ChipError.NONE, piece)
        apdu = bytes(self._chained) + command.data
        self._chained.clear()
        answer = self._execute(apdu)
        if answer is None:
            return self._status(command, ChipError.TIMEOUT)
        self._picc_block ^= 1
        self._last_i_block = bytes((Pcb("I", self._picc_block).to_byte(),)) + answer
        if len(answer) > MAX_EXCHANGE_DATA:
            self._rest = answer[MAX_EXCHANGE_DATA:]
            return self._status(command, STATUS_MI, answer[:MAX_EXCHANGE_DATA])
        return self._status(command, ChipError.NONE, answer)

    def _mifare_exchange(self, command: InDataExchange) -> bytes:
        """A MIFARE command to a Classic target (see the module notes)."""
        answer = self._execute(command.data)
        if answer is None:
            return self._status(command, ChipError.TIMEOUT)
        if answer == MIFARE_ACK:
            return self._status(command, ChipError.NONE)
        if len(answer) == BLOCK_SIZE:
            return self._status(command, ChipError.NONE, answer)
        if answer:
            return self._status(command, ChipError.FRAMING)
        auth = command.data[:1] in (bytes((KeyType.A,)), bytes((KeyType.B,)))  # no answer: the card is in IDLE
        return self._status(command, ChipError.MIFARE_AUTHENTICATION if auth else ChipError.TIMEOUT)

    def _communicate_thru(self, command: InCommunicateThru, now: float) -> bytes:
        if self.target is not None and self.target.protocol == "MIFARE":
            self._drop_target()  # a Classic does not speak ISO-DEP: it ignores the block and goes back to IDLE
            return self._status(command, ChipError.TIMEOUT)
        if self.target is None or self.card is None or not command.data:
            return self._status(command, ChipError.TIMEOUT)
        try:
            pcb = Pcb.parse(command.data[0])
        except ProtocolError:
            return self._status(command, ChipError.TIMEOUT)
        head = command.data[:2] if pcb.cid else command.data[:1]
        cid = head[1:]
        if pcb.kind == "R":
            if pcb.nak and pcb.block_number == self._picc_block and self._last_i_block is not None:
                return self._status(command, ChipError.NONE, self._last_i_block)
            ack = Pcb("R", self._picc_block, cid=pcb.cid).to_byte()
            return self._status(command, ChipError.NONE, bytes((ack,)) + cid)
        if pcb.kind == "S":
            if pcb.wtx:
                return self._status(command, ChipError.TIMEOUT)
            self._halt()
            return self._status(command, ChipError.NONE, head)
        if pcb.chaining or pcb.nad:
            return self._status(command, ChipError.TIMEOUT)  # chained or NAD-addressed blocks: not emulated
        answer = self._execute(command.data[len(head):])
        if answer is None:
            return self._status(command, ChipError.TIMEOUT)
        self._picc_block = pcb.block_number
        block = bytes((Pcb("I", self._picc_block, cid=pcb.cid).to_byte(),)) + cid + answer
        self._last_i_block = block
        return self._status(command, ChipError.NONE, block)
