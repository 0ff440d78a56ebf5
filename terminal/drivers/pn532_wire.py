"""The host side of a PN532's serial (HSU) link: one command at a time, acknowledged, answered, checked.

The rules are the PN532 user manual's (UM0701-02 §6.2): the chip acknowledges every frame it received whole with
ACK, then sends its answer; a frame it could not receive whole gets no ACK, and a host that sees no ACK in time sends
the same frame again; the host's NACK asks the chip to send its last answer again (nothing runs twice); the host's
ACK aborts the command the chip is running; an application-level error (a command the chip cannot parse) is ACK and
then the error frame. Bytes get lost or damaged on a real UART, so on top of those rules:

- Every wait has a deadline, and a whole call ends within ``timeout + 2 × (retries + 1) × ack_timeout`` (plus the line
  time of the frames), in an answer or a typed error.
- A frame counts only once its postamble has come (the checksums are sums, blind to a lost ``00`` inside a frame),
  and a frame that stops part-way is noticed by the silence after it (``gap_timeout``).
- A damaged answer is asked for again with NACK (``retries`` times); a NACK that brings nothing is sent again.
- A command the chip did not acknowledge, when not a byte came back, was not received: a ``repeatable`` command is
  sent again. Any other command is sent again only when the chip proves it never took it: asked with NACK for its
  last answer, it sends the answer of the previous command, byte for byte as the host last received it. An answer
  to this command instead is taken; anything else leaves it unknown, and the call ends in
  :class:`AnswerLost` (a :class:`~terminal.errors.LinkTimeout`) so that the caller can settle it (a DEBIT is then
  pending in the journal, never sent twice).
- Noise where the ACK should be shows the chip got the command (it answers a frame it received whole, and only
  then); the call waits for the answer. Silence once the answer is due is asked about with NACK before the command
  is aborted with ACK: a lost answer comes again; a chip still working (a poll waiting for a card) is aborted and the
  call ends in :class:`~terminal.errors.LinkTimeout`.
- The error frame means the chip parsed nothing and ran nothing: the frame is sent again (damage the checksums
  missed), then :class:`Pn532Error`.
- A chip that acknowledges nothing at all, NACK included, raises :class:`ChipSilent`: the link reopens the port and
  sets the chip up again.
"""

from __future__ import annotations

import collections
import enum
import time
from collections.abc import Callable
from typing import Protocol, TypeGuard

import serial

from protocols.errors import ProtocolError
from protocols.pn532 import (
    HSU_WAKEUP,
    TFI_CHIP,
    BadFrame,
    ControlFrame,
    Event,
    Frame,
    FrameDecoder,
    FrameFault,
    format_status,
    host_frame,
    name_of,
)

from ..errors import LinkTimeout, ReaderGone

try:
    from termios import (
        error as _TermiosError,  # pyserial's POSIX port lets termios.error through (tcflush)
    )
except ImportError:  # not a POSIX system
    _PORT_ERRORS: tuple[type[BaseException], ...] = (serial.SerialException, OSError)
else:
    _PORT_ERRORS = (serial.SerialException, OSError, _TermiosError)

ACK = ControlFrame.ACK.to_bytes()
NACK = ControlFrame.NACK.to_bytes()
_CUT_SHORT = BadFrame(FrameFault.LENGTH, b"")  # what silence inside a frame is reported as


class SerialPort(Protocol):
    """What the driver needs of a serial port: pyserial's ``Serial`` has it, and so does a test's fake."""

    timeout: float | None

    @property
    def in_waiting(self) -> int: ...

    def read(self, size: int = 1) -> bytes: ...

    def write(self, data: bytes) -> int | None: ...

    def reset_input_buffer(self) -> None: ...

    def close(self) -> None: ...


class Pn532Error(ProtocolError):
    """The PN532 reported an error: a status byte other than success, or the error frame (``status`` is ``None``).

    The message names the command and the meaning of the status (NXP's error table).
    """

    def __init__(self, command: int, status: int | None) -> None:
        if status is None:
            super().__init__(f"PN532 {name_of(command)}: the chip answered the error frame (it rejected the command)")
        else:
            super().__init__(f"PN532 {name_of(command)}: status {format_status(status)}")
        self.command = command
        self.status = status


class AnswerLost(LinkTimeout):
    """The chip took the command (or may have), and its answer never came whole: whether the card ran it is unknown."""


class ChipSilent(ReaderGone):
    """The chip acknowledged nothing the host sent: it lost power, was reset or is no longer on the line."""


class _Heard(enum.Enum):
    """What the host made of the chip's reaction to a command frame or a NACK."""

    NOTHING = "not a byte"
    TAKEN = "the chip took the command"
    NOT_TAKEN = "the chip never took the command"
    REFUSED = "the error frame"
    DAMAGED = "an answer that never came whole"
    UNKNOWN = "nothing that tells"


class Pn532Wire:
    """Commands and answers over a serial port, with the recovery the module docstring describes.

    ``ack_timeout`` bounds the wait for ACK once the command frame is on the line (its transmission time at
    ``baud`` is added), ``gap_timeout`` the silence inside a frame, ``retries`` how often a frame is sent again and
    how often a damaged answer is asked for again. ``timer`` is the clock deadlines are measured on (a test's fake
    clock advances as its fake port times out).
    """

    def __init__(self, port: SerialPort, *, baud: int = 115200, name: str = "PN532", ack_timeout: float = 0.1,
                 gap_timeout: float = 0.05, retries: int = 8,
                 timer: Callable[[], float] = time.monotonic) -> None:
        self.port = port
        self.baud = baud
        self.name = name
        self.ack_timeout = ack_timeout
        self.gap_timeout = gap_timeout
        self.retries = retries
        self.timer = timer
        self.decoder = FrameDecoder(postamble=True)
        self.nacks_sent = 0
        """NACKs sent to ask for an answer again, damaged or missing (diagnostics)."""
        self.resent = 0
        """Command frames sent again (diagnostics)."""
        self.last_answer: bytes | None = None
        """The chip's last answer as this host received it, what a NACK brings back; ``None`` when unknown (a
        command ended without its answer)."""
        self._events: collections.deque[Event] = collections.deque()
        self._heard = bytearray()  # bytes received since the last restart
        self._noise = 0  # the decoder's discarded count at the last restart

    # --- the port, with every OS and pyserial fault turned into ReaderGone ------------------------------------------

    def _fault(self, exc: BaseException) -> ReaderGone:
        return ReaderGone(f"{self.name}: serial port failed: {exc}")

    def write(self, data: bytes) -> None:
        try:
            self.port.write(data)
        except _PORT_ERRORS as exc:
            raise self._fault(exc) from exc

    def _read(self, wait: float) -> bytes:
        try:
            self.port.timeout = wait
            return self.port.read(self.port.in_waiting or 1)
        except _PORT_ERRORS as exc:
            raise self._fault(exc) from exc

    def flush_input(self) -> None:
        """Drop whatever the chip sent that nobody asked for (a late answer to an abandoned command)."""
        try:
            self.port.reset_input_buffer()
        except _PORT_ERRORS as exc:
            raise self._fault(exc) from exc
        self._restart()

    def _restart(self) -> None:
        """Forget what was received: after a flush, or before the chip sends its answer again."""
        self.decoder.reset()
        self._events.clear()
        self._heard.clear()
        self._noise = self.decoder.discarded

    def close(self) -> None:
        try:
            self.port.close()
        except _PORT_ERRORS:
            pass  # closing a port that already failed: nothing left to give back

    def line_time(self, size: int) -> float:
        """Seconds ``size`` bytes take on the line (8N1: ten bits a byte)."""
        return size * 10 / self.baud

    # --- events ---------------------------------------------------------------------------------------------------

    def _next(self, deadline: float, answer: bytes = b"") -> Event | None:
        """The next frame, ACK, NACK, error frame or damaged frame; ``None`` once ``deadline`` has passed.

        Silence after the start of a frame (or after a frame held for its postamble) is reported as a damaged frame
        once it has lasted ``gap_timeout``: the chip stopped sending part-way (a byte was lost). So is silence after
        noise that holds ``answer`` (``D5`` and the expected answer code): an answer whose start code was damaged.
        Other noise is not: it cannot be told from line noise while the chip is still working.
        """
        while not self._events:
            now = self.timer()
            if now >= deadline:
                return None
            # a lone 00 pending is fill, or the preamble of a frame not yet begun
            broken = self.decoder.pending > 1 or (
                bool(answer) and self.decoder.discarded > self._noise and answer in self._heard)
            chunk = self._read(min(deadline - now, self.gap_timeout) if broken else deadline - now)
            if chunk:
                self._heard += chunk
                self._events.extend(self.decoder.feed(chunk))
            elif broken:
                self._restart()
                self._heard.append(0)  # something was heard all the same
                return _CUT_SHORT
        return self._events.popleft()

    # --- one command ----------------------------------------------------------------------------------------------

    def wake(self) -> None:
        """The HSU wake-up: ``55 55`` and zeros, as libnfc sends them before the first command."""
        self.write(HSU_WAKEUP)

    def call(self, command: bytes, timeout: float, *, repeatable: bool = True, waits: bool = False,
             ack_timeout: float | None = None) -> bytes:
        """Send ``command`` (code and parameters); return the answer (code + 1 and parameters).

        ``timeout`` is how long the answer may take after the ACK; ``repeatable`` says that running the command
        twice does no harm; ``waits`` that the chip may rightly still be working at the deadline (a poll for a
        card), so that silence then is not asked about. Raises :class:`ChipSilent` when nothing the host sends is
        acknowledged, :class:`AnswerLost` when the answer never comes whole (or whether the chip took a command that
        is not repeatable cannot be told), :class:`~terminal.errors.LinkTimeout` when the chip is still working at
        the deadline (the command is aborted with ACK) or never took the command, :class:`Pn532Error` for the error
        frame, :class:`ReaderGone` for a port fault.
        """
        frame = host_frame(command)
        code = command[0]
        expected = code + 1
        ack_wait = (self.ack_timeout if ack_timeout is None else ack_timeout) + self.line_time(len(frame))
        end = self.timer() + timeout + 2 * (self.retries + 1) * ack_wait  # each send, and a NACK after it
        previous, self.last_answer = self.last_answer, None
        heard = _Heard.NOTHING
        for send in range(self.retries + 1):
            if send:
                self.resent += 1
            self.flush_input()
            self.write(frame)
            heard, answer = self._acknowledged(expected, min(self.timer() + ack_wait, end))
            if heard is _Heard.NOTHING and not repeatable:
                heard, answer = self._ask_again(expected, previous, ack_wait, end)
                if heard is _Heard.NOTHING:
                    break  # not even NACK is answered
            if heard is _Heard.TAKEN and answer is None:
                heard, answer = self._answer(expected, previous, min(self.timer() + timeout, end), ack_wait, end,
                                             waits=waits)
            if answer is not None:
                self.last_answer = answer
                return answer
            if heard is _Heard.UNKNOWN:
                raise AnswerLost(f"{self.name}: no ACK to {name_of(code)}, and whether the chip took it cannot be "
                                 f"told")
            if heard is _Heard.DAMAGED and not repeatable:
                raise AnswerLost(f"{self.name}: the answer to {name_of(code)} never came whole")
            if heard is _Heard.TAKEN and (waits or not repeatable):
                if waits:
                    raise LinkTimeout(f"{self.name}: no answer to {name_of(code)} in time")
                raise AnswerLost(f"{self.name}: no answer to {name_of(code)} in time")
            if self.timer() >= end:
                break
            # sent again: the chip never took it, refused it with the error frame, or it is repeatable
        if heard is _Heard.TAKEN:
            raise LinkTimeout(f"{self.name}: no answer to {name_of(code)} in time")
        if heard is _Heard.REFUSED:
            raise Pn532Error(code, None)
        if heard is _Heard.DAMAGED:
            raise AnswerLost(f"{self.name}: the answer to {name_of(code)} arrived damaged every time")
        if heard is _Heard.NOT_TAKEN:
            raise LinkTimeout(f"{self.name}: the chip did not take {name_of(code)} in {send + 1} tries")
        raise ChipSilent(f"{self.name}: no ACK to {name_of(code)} after {send + 1} tries")

    @staticmethod
    def _is_answer(event: Event | None, expected: int) -> TypeGuard[Frame]:
        return isinstance(event, Frame) and event.tfi == TFI_CHIP and event.data[0] == expected

    def _acknowledged(self, expected: int, deadline: float) -> tuple[_Heard, bytes | None]:
        """The ACK phase: ACK (or noise in its place) says the chip took the command; the answer may come before
        a lost ACK; only silence says it did not."""
        while True:
            event = self._next(deadline)
            if event is None:  # noise, or a frame begun, where the ACK should be; a stale whole frame says nothing
                noise = self.decoder.discarded > self._noise or self.decoder.pending > 1
                return (_Heard.TAKEN if noise else _Heard.NOTHING), None
            if event is ControlFrame.ERROR:
                return _Heard.REFUSED, None
            if self._is_answer(event, expected):
                return _Heard.TAKEN, event.data  # the ACK was lost, the answer was not
            if event is ControlFrame.ACK or isinstance(event, BadFrame):
                return _Heard.TAKEN, None
            # a NACK (the chip sends none) or a late answer to an earlier command: not an acknowledgement

    def _answer(self, expected: int, previous: bytes | None, deadline: float, ack_wait: float, end: float, *,
                waits: bool) -> tuple[_Heard, bytes | None]:
        """The answer phase, once the chip took the command. A damaged answer is asked for again with NACK, and a
        NACK that brings nothing whole within ``ack_wait`` is sent again; the previous command's answer coming back
        instead shows the chip still working. Silence at the deadline is asked about with NACK (a lost answer comes
        again) unless the command ``waits``; a command still running then is aborted with ACK."""
        nacks = 0
        due = deadline  # when the answer is due: the deadline, or soon after a NACK
        marker = bytes((TFI_CHIP, expected))
        while True:
            event = self._next(due, marker)
            if event is None and due == deadline:
                heard, answer = (_Heard.TAKEN, None) if waits else \
                    self._ask_again(expected, previous, ack_wait, end, taken=True)
                if answer is None:
                    self.write(ACK)  # abort the command in the chip, so that its late answer is not taken for the next
                return heard, answer
            if self._is_answer(event, expected):
                return _Heard.TAKEN, event.data
            if event is ControlFrame.ERROR:
                return _Heard.REFUSED, None
            if isinstance(event, Frame) and event.data == previous:
                due = deadline  # the NACK brought the previous answer: the chip is still working
                continue
            if event is not None and not isinstance(event, BadFrame):
                continue  # a late ACK, or a late answer to an earlier command
            if nacks >= self.retries or self.timer() >= end:
                return _Heard.DAMAGED, None
            nacks += 1
            self._nack()
            due = min(self.timer() + ack_wait, deadline if waits else end)

    def _nack(self) -> None:
        self.nacks_sent += 1
        self._restart()
        self.write(NACK)

    def _ask_again(self, expected: int, previous: bytes | None, ack_wait: float, end: float, *,
                   taken: bool = False) -> tuple[_Heard, bytes | None]:
        """NACK: the chip sends its last answer again. This command's answer is taken. The previous command's answer,
        byte for byte as the host last received it, shows that the chip never took this one (or, ``taken``, that it
        is still working on it); anything else tells nothing. A NACK that brings nothing whole is sent again."""
        for _ in range(self.retries + 1):
            self._nack()
            deadline = min(self.timer() + ack_wait, end)
            event = self._next(deadline)
            while event is not None and not isinstance(event, BadFrame):
                if isinstance(event, Frame) and event.tfi == TFI_CHIP and previous is not None:
                    if event.data == previous:
                        return (_Heard.TAKEN if taken else _Heard.NOT_TAKEN), None
                    if self._is_answer(event, expected):
                        return _Heard.TAKEN, event.data
                if isinstance(event, Frame) or event is ControlFrame.ERROR:
                    return (_Heard.TAKEN if taken else _Heard.UNKNOWN), None
                event = self._next(deadline)  # an ACK or a NACK: not an answer
            if self.timer() >= end:
                break
        return (_Heard.TAKEN if taken else _Heard.NOTHING), None
