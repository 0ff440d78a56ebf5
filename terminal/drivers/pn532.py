"""A PN532 reader on a serial line (HSU), as a :class:`~terminal.link.Link` for ISO 14443-A cards.

Opening the link wakes the chip (``55 55`` and zeros), puts it in normal mode (SAMConfiguration), checks that it is a
PN532 (GetFirmwareVersion), asks it to send RATS and return the ATS itself (SetParameters ``14``, as libnfc does),
switches the RF field off and on (a card left halted by an earlier session answers again) and sets the passive
activation retries. The chip does anticollision, RATS and the ISO-DEP block protocol (chaining, WTX, R-blocks)
itself; the host sees whole APDUs in InDataExchange.

- :meth:`Pn532Link.activate` lists one type A target with InListPassiveTarget, trying until the caller's timeout
  (each try waits at least ``list_timeout``, the time a chip with finite retries needs to answer "none").
- :meth:`Pn532Link.transceive` sends an APDU with InDataExchange. An APDU longer than one frame's 262 bytes goes
  in pieces flagged MI (more information); an answer flagged MI is fetched piece by piece with ``40 Tg``. To a
  MIFARE Classic the link speaks as a PC/SC reader does: it takes PC/SC part 3 pseudo-APDUs (``FF 82`` load key,
  ``FF 86`` authenticate, ``FF B0``/``FF D6`` read/write, ``FF D7`` value operations) and sends the MIFARE commands
  each becomes (:class:`protocols.pcsc_mifare.MifareBridge`, the translation every reader of this project shares),
  so the validator's M1 flow runs the same on a PN532 as on a PC/SC reader; :meth:`Pn532Link.exchange` sends a
  MIFARE command as it is.
  The wait for each answer is the caller's timeout, but never less than what a card may take by the rules:
  its frame waiting time (from the ATS) plus the answer's time on the serial line plus ``exchange_margin``.
- Status bytes: time-out (``01``), "card disappeared" (``2B``) and "released" (``29``) mean the card is gone
  (:class:`~terminal.errors.CardRemoved`); a MIFARE authentication failure (``14``) is :class:`MifareAuthError`;
  any other error is :class:`Pn532Error` with NXP's meaning in its message. A pseudo-APDU whose MIFARE command the
  chip refused (failed authentication, a card's NAK) is answered ``63 00``, as a PC/SC reader answers it.
- :meth:`Pn532Link.deactivate` releases the target (InRelease ``52 00``); the card is then halted and is not listed
  again until the field is cycled or the card re-enters it, as with a real card left on a reader.

Recovery from lost and damaged bytes is :mod:`terminal.drivers.pn532_wire`'s. An APDU goes again on its own only
when sending it twice does no harm (:func:`protocols.card_commands.repeatable`, :func:`protocols.mifare.repeatable`:
SELECT, reads, INITIALIZE, GET CHALLENGE, never DEBIT or CREDIT) or when the chip proved it never took it; an answer
that is lost otherwise ends in :class:`~terminal.drivers.pn532_wire.AnswerLost`, a
:class:`~terminal.errors.LinkTimeout`.

When the chip stops answering (it lost power or was reset) or the serial port fails, the link opens the port again,
wakes the chip and sets it up afresh; the card is then no longer activated (:class:`~terminal.errors.CardRemoved`
for an exchange under way, a new tap for the next :meth:`Pn532Link.activate`). Only when that fails too is it
:class:`~terminal.errors.ReaderGone`, and the next :meth:`Pn532Link.activate` tries again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import serial

from protocols import card_commands, mifare
from protocols.errors import ProtocolError
from protocols.iso14443 import Ats, fwt, sak_iso14443_4
from protocols.pcsc_mifare import MifareBridge
from protocols.pn532 import (
    ERROR_MASK,
    MAX_EXCHANGE_DATA,
    ChipError,
    Command,
    FirmwareVersion,
    GetFirmwareVersion,
    InDataExchange,
    InDataExchangeResponse,
    InListPassiveTarget,
    InRelease,
    Modulation,
    ParameterFlags,
    RFConfiguration,
    SAMConfiguration,
    SamMode,
    SetParameters,
    TargetA,
    chip_frame,
    describe_error,
)

from ..errors import CardRemoved, LinkError, LinkTimeout, ReaderGone
from ..link import Activation, Link
from .pn532_wire import Pn532Error, Pn532Wire, SerialPort

__all__ = ["MifareAuthError", "Pn532Error", "Pn532Link", "activation_of"]

PN532_IC = 0x32
"""The IC byte a PN532 answers in GetFirmwareVersion (a PN533 answers 33)."""
DEFAULT_FWT = fwt(4)
"""ISO 14443-4's frame waiting time when no ATS says otherwise (FWI 4, about 4.8 ms)."""
MAX_ANSWER = 65538
"""Largest answer put together from MI pieces: an extended-length APDU's 65536 data bytes and its status word."""

_CARD_GONE = frozenset((ChipError.TIMEOUT, ChipError.CARD_DISAPPEARED, ChipError.RELEASED_BY_INITIATOR))
_ANSWER_FRAME = len(chip_frame(bytes(2 + MAX_EXCHANGE_DATA)))  # 41, status, the most data one frame carries
_LIST_A = InListPassiveTarget(1, Modulation.ISO14443A_106)


class MifareAuthError(Pn532Error):
    """MIFARE Classic authentication failed (wrong key or key type); the card is halted until activated again."""


def activation_of(target: TargetA) -> Activation:
    """The link's activation data for a listed type A target: ``T=CL`` when the SAK announces ISO 14443-4,
    ``MIFARE`` otherwise (MIFARE Classic and other cards without ISO-DEP)."""
    protocol = "T=CL" if sak_iso14443_4(target.sak) else "MIFARE"
    return Activation(protocol, uid=target.uid, atqa=target.atqa, sak=target.sak, ats=target.ats)


def _frame_waiting_time(ats: bytes | None) -> float:
    """The card's FWT from its ATS; an absent or malformed ATS leaves ISO 14443-4's default."""
    if ats is None:
        return DEFAULT_FWT
    try:
        return Ats.parse(ats).fwt
    except ProtocolError:
        return DEFAULT_FWT


class Pn532Link(Link):
    """A PN532 on serial port ``path`` at ``baud``; the port opens, and the chip is set up, on construction.

    ``port`` passes an already open serial-like object instead (tests, or a port opened with a pyserial URL); the link
    cannot open such a port again, so its recovery is the wake-up and set-up alone.
    Timeouts in seconds: ``command_timeout`` for configuration commands, ``wake_timeout`` for the first command
    after the wake-up (a chip waking from power-down is slow), ``list_timeout`` the least wait for one
    InListPassiveTarget, ``exchange_margin`` what is added to a card's frame waiting time; ``ack_timeout``,
    ``gap_timeout`` and ``retries`` are :class:`~terminal.drivers.pn532_wire.Pn532Wire`'s (8 retries: at 1% of bytes
    damaged, a 60-byte frame is damaged one time in two). ``passive_retries`` is
    the chip's MxRtyPassiveActivation (``02`` as libnfc lists targets; ``FF`` polls until a card comes, and each
    try is then cut short by the list timeout with an abort). ``reopened`` counts the recoveries.
    """

    def __init__(self, path: str, baud: int = 115200, *, port: SerialPort | None = None,
                 command_timeout: float = 0.5, wake_timeout: float = 1.0, list_timeout: float = 0.3,
                 exchange_margin: float = 0.05, ack_timeout: float = 0.1, gap_timeout: float = 0.05,
                 retries: int = 8, passive_retries: int = 0x02,
                 timer: Callable[[], float] = time.monotonic) -> None:
        self.name = f"pn532:{path}"
        self.path = path
        self.baud = baud
        self.command_timeout = command_timeout
        self.wake_timeout = wake_timeout
        self.list_timeout = list_timeout
        self.exchange_margin = exchange_margin
        self.passive_retries = passive_retries
        self.timer = timer
        self.firmware: FirmwareVersion | None = None
        self.activation: Activation | None = None
        """The activated card, ``None`` when there is none."""
        self._tg: int | None = None
        self._fwt = DEFAULT_FWT
        self._bridge = MifareBridge()  # a MIFARE Classic's pseudo-APDUs; its key slots live as long as the link
        self._closed = False
        self._broken = False  # the chip or the port failed and the recovery did not work: activate tries again
        self._reopen = port is None
        self.reopened = 0
        if port is None:
            port = self._open(path, baud)
        self.wire = Pn532Wire(port, baud=baud, name=self.name, ack_timeout=ack_timeout, gap_timeout=gap_timeout,
                              retries=retries, timer=timer)
        try:
            self._set_up()
        except ReaderGone:
            self.wire.close()
            self._closed = True
            raise
        except (LinkError, ProtocolError) as exc:
            self.wire.close()
            self._closed = True
            raise ReaderGone(f"{self.name}: not a working PN532: {exc}") from exc

    @staticmethod
    def _open(path: str, baud: int) -> SerialPort:
        try:
            return serial.Serial(path, baud, timeout=0.1, exclusive=True)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise ReaderGone(f"pn532:{path}: cannot open the serial port: {exc}") from exc

    def _set_up(self) -> None:
        self.wire.wake()
        self._configure(SAMConfiguration(SamMode.NORMAL), ack_timeout=self.wake_timeout)
        firmware: FirmwareVersion = self._command(GetFirmwareVersion(), recover=False)
        if firmware.ic != PN532_IC:
            raise ProtocolError(f"GetFirmwareVersion answered IC {firmware.ic:02X} ({firmware.name}), "
                                f"a PN532 answers {PN532_IC:02X}")
        self.firmware = firmware
        self._configure(SetParameters(ParameterFlags.AUTOMATIC_ATR_RES | ParameterFlags.AUTOMATIC_RATS))
        self._configure(RFConfiguration.field(False))
        self._configure(RFConfiguration.field(True))
        self._configure(RFConfiguration.max_retries(0xFF, 0x01, self.passive_retries))

    # --- commands -------------------------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ReaderGone(f"{self.name} is closed")

    def _command(self, command: Command, timeout: float | None = None, *, repeatable: bool = True,
                 waits: bool = False, ack_timeout: float | None = None, recover: bool = True) -> Any:
        """Send a command, return its parsed answer (the type its ``RESPONSE`` names).

        When the chip stops answering or the port fails, the link recovers (:meth:`_recover`) and sends a
        ``repeatable`` command once more; any other command then ends in :class:`CardRemoved`, as the card lost
        the field with the chip's reset.
        """
        self._check_open()
        wait = self.command_timeout if timeout is None else timeout
        try:
            answer = self.wire.call(command.to_bytes(), wait, repeatable=repeatable, waits=waits,
                                    ack_timeout=ack_timeout)
        except ReaderGone as exc:
            if not recover:
                raise
            self._recover(exc)
            if not repeatable:
                raise CardRemoved(f"{self.name}: the reader was reset ({exc}); the card must be tapped again") \
                    from exc
            answer = self.wire.call(command.to_bytes(), wait, repeatable=True, waits=waits, ack_timeout=ack_timeout)
        return command.parse_response(answer)

    def _recover(self, cause: ReaderGone) -> None:
        """Open the port again (when the link opened it), wake the chip and set it up afresh; :class:`ReaderGone`
        when that fails too. Whatever card was activated is not any more."""
        self.activation, self._tg = None, None
        self._broken = True
        try:
            if self._reopen:
                self.wire.close()
                self.wire.port = self._open(self.path, self.baud)
            self.wire.flush_input()
            self._set_up()
        except (LinkError, ProtocolError) as exc:
            raise ReaderGone(f"{self.name}: the reader stopped answering ({cause}) and could not be set up again: "
                             f"{exc}") from exc
        self._broken = False
        self.reopened += 1

    def _configure(self, command: Command, *, ack_timeout: float | None = None) -> None:
        self._command(command, ack_timeout=ack_timeout, recover=False)

    def exchange_timeout(self) -> float:
        """The least wait for an InDataExchange answer: the card's FWT, the longest answer's time on the line, the
        margin. The chip itself gives up on a silent card after the FWT and answers status ``01``."""
        return self._fwt + self.wire.line_time(_ANSWER_FRAME) + self.exchange_margin

    # --- Link -----------------------------------------------------------------------------------------------------

    def activate(self, timeout: float) -> Activation | None:
        """List one type A target, trying until ``timeout``; ``None`` when none answers. A listing that goes wrong
        on the line (a lost or garbled answer, the error frame) is tried again; only :class:`ReaderGone` is raised.
        A reader that failed earlier is set up again first."""
        self._check_open()
        self.activation, self._tg = None, None
        if self._broken:
            self._recover(ReaderGone(f"{self.name} failed earlier"))
        deadline = self.timer() + timeout
        while True:
            wait = max(deadline - self.timer(), self.list_timeout)
            try:
                listed = self._command(_LIST_A, wait, waits=True)
            except (LinkTimeout, ProtocolError):
                listed = None  # no card before the wait ended (the poll was aborted), or the line garbled it
            if listed is not None and listed.targets:
                target = listed.targets[0]
                self.activation = activation_of(target)
                self._bridge.select(target.uid)
                self._tg = target.tg
                self._fwt = _frame_waiting_time(target.ats)
                return self.activation
            if self.timer() >= deadline:
                return None

    def transceive(self, apdu: bytes, timeout: float) -> bytes:
        activation = self.activation
        if activation is not None and activation.protocol == "MIFARE":
            return self._bridge.execute(apdu, lambda command: self._mifare(command, timeout))
        return self.exchange(apdu, timeout)

    def _mifare(self, command: bytes, timeout: float) -> bytes:
        """One MIFARE command as the bridge takes its answer: a READ's 16 bytes, the ACK of a command the chip says
        went through (it answers those with no data), nothing for one it refused."""
        try:
            answer = self.exchange(command, timeout)
        except Pn532Error:  # a failed authentication (the card is halted), a card's NAK
            return mifare.NO_ANSWER
        return answer or mifare.ACK

    def exchange(self, data: bytes, timeout: float) -> bytes:
        """One InDataExchange with the activated card, however long ``data`` and the answer: an APDU for an
        ISO-DEP card, a MIFARE command (``protocols.mifare``) for a Classic. Returns the card's answer."""
        tg = self._tg
        if tg is None:
            self._check_open()
            raise CardRemoved(f"{self.name}: no card is activated")
        repeatable = len(data) <= MAX_EXCHANGE_DATA and self._repeatable(data)
        if len(data) > MAX_EXCHANGE_DATA:
            pieces = [data[start:start + MAX_EXCHANGE_DATA] for start in range(0, len(data), MAX_EXCHANGE_DATA)]
            for piece in pieces[:-1]:
                self._data_exchange(InDataExchange(tg, piece, more=True), timeout)
            data = pieces[-1]
        answer = self._data_exchange(InDataExchange(tg, data), timeout, repeatable=repeatable)
        if not answer.more:
            return answer.data
        collected = bytearray(answer.data)
        while answer.more:
            answer = self._data_exchange(InDataExchange(tg), timeout)
            collected += answer.data
            if len(collected) > MAX_ANSWER:
                raise ProtocolError(f"{self.name}: the card's answer runs past {MAX_ANSWER} bytes")
        return bytes(collected)

    def _repeatable(self, data: bytes) -> bool:
        """Whether the card command may go again when the chip cannot tell what became of it."""
        activation = self.activation
        if activation is not None and activation.protocol == "MIFARE":
            return mifare.repeatable(data)
        return card_commands.repeatable(data)

    def _data_exchange(self, command: InDataExchange, timeout: float, *,
                       repeatable: bool = False) -> InDataExchangeResponse:
        """One InDataExchange frame. Pieces flagged MI, and the empty frame that fetches the next piece of an
        answer, never go twice: the chip would add or skip a piece."""
        answer = self._command(command, max(timeout, self.exchange_timeout()), repeatable=repeatable)
        if answer.status & ERROR_MASK:
            raise self._status_error(command.CODE, answer.status)
        return answer

    def _status_error(self, code: int, status: int) -> LinkError | Pn532Error:
        error = status & ERROR_MASK
        if error in _CARD_GONE:
            self.activation, self._tg = None, None
            return CardRemoved(f"{self.name}: the card left the field ({describe_error(error)})")
        if error == ChipError.MIFARE_AUTHENTICATION:
            return MifareAuthError(code, status)
        return Pn532Error(code, status)

    def deactivate(self) -> None:
        """Release the card (InRelease of every target). A card that has already gone is not an error."""
        active = self._tg is not None
        self.activation, self._tg = None, None
        if self._closed or not active:
            return
        try:
            self._command(InRelease(0))
        except (LinkTimeout, CardRemoved, ProtocolError):
            pass  # the card, or the chip's answer, is gone; the next activation starts afresh anyway

    def close(self) -> None:
        """Switch the field off and give the port back; later calls raise ReaderGone."""
        if self._closed:
            return
        try:
            self._configure(RFConfiguration.field(False))
        except (LinkError, ProtocolError):
            pass  # closing a reader that fails: nothing more to do for it
        self._closed = True
        self.activation, self._tg = None, None
        self.wire.close()
