"""The host side of a PN532's serial (HSU) link: one command at a time, acknowledged, answered, checked.

The PN532 acknowledges every well-formed host frame with ACK and then sends its answer. Bytes get lost or damaged
on a real UART, so every read has a deadline, a damaged answer is asked for again with NACK (the chip keeps its
last answer and sends it again; nothing runs twice), and an answer that is still missing when its deadline passes
is abandoned with ACK, which aborts the command in the chip, before :class:`~terminal.errors.LinkTimeout` is raised.

Whether a command frame is sent again when no ACK comes is the caller's choice (``repeatable``). Configuration
commands are: running one twice is harmless. A command that reaches the card (InDataExchange) is not, as the chip
may have received it and lost only its ACK: the wire waits for the answer instead, and a card command either gets
its answer or ends in ``LinkTimeout``, never in a second debit.

A frame that stops part-way (a dropped byte), or whose start code was damaged, is noticed by the silence after it:
when no byte follows for ``gap_timeout`` the broken frame is dropped and a NACK asks for the answer again. The
checksums are sums, blind to a lost 00 when the postamble slides into its place, so an answer counts only once its
postamble has been seen.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from typing import Protocol

import serial

from protocols.errors import ProtocolError
from protocols.pn532 import (
    HSU_WAKEUP,
    TFI_CHIP,
    BadFrame,
    ControlFrame,
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


class Pn532Wire:
    """Commands and answers over a serial port, with the recovery the module docstring describes.

    ``ack_timeout`` bounds the wait for ACK once the command frame is on the line (its transmission time at
    ``baud`` is added), ``gap_timeout`` the silence inside a frame, ``retries`` how often a command frame is sent
    again (configuration commands) and how often a damaged answer is asked for again. ``timer`` is the clock
    deadlines are measured on (a test's fake clock advances as its fake port times out).
    """

    def __init__(self, port: SerialPort, *, baud: int = 115200, name: str = "PN532", ack_timeout: float = 0.1,
                 gap_timeout: float = 0.05, retries: int = 2,
                 timer: Callable[[], float] = time.monotonic) -> None:
        self.port = port
        self.baud = baud
        self.name = name
        self.ack_timeout = ack_timeout
        self.gap_timeout = gap_timeout
        self.retries = retries
        self.timer = timer
        self.decoder = FrameDecoder()
        self.nacks_sent = 0
        """NACKs sent to ask for a damaged answer again (diagnostics)."""
        self.resent = 0
        """Command frames sent again after a missing ACK (diagnostics)."""
        self._events: collections.deque = collections.deque()
        self._heard = bytearray()  # bytes received for the command under way
        self._noise = 0  # the decoder's discarded count when it began

    # --- the port, with every OS and pyserial fault turned into ReaderGone ------------------------------------------

    def _fault(self, exc: Exception) -> ReaderGone:
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

    def _next(self, deadline: float, answer: bytes = b"") -> Frame | ControlFrame | BadFrame | None:
        """The next frame, ACK, NACK, error frame or damaged frame; ``None`` once ``deadline`` has passed.

        Silence after the start of a frame is reported as a damaged frame once it has lasted ``gap_timeout``: the
        chip has stopped sending part-way (a byte was lost), and a NACK gets the answer again. So is silence after
        noise that holds ``answer`` (``D5`` and the expected answer code): an answer whose start code was damaged.
        Other noise is not: it cannot be told from line noise while the chip is still working, and a NACK then
        would fetch the previous command's answer.
        """
        while not self._events:
            now = self.timer()
            if now >= deadline:
                return None
            wait = deadline - now
            # a lone 00 pending is fill, or the preamble of a frame not yet begun
            broken = self.decoder.pending > 1 or (
                bool(answer) and self.decoder.discarded > self._noise and answer in self._heard)
            if broken:
                wait = min(wait, self.gap_timeout)
            chunk = self._read(wait)
            if chunk:
                self._heard += chunk
                self._events.extend(self.decoder.feed(chunk))
            elif broken:
                self._restart()
                return _CUT_SHORT  # the frame stopped part-way, or lost its start code
        return self._events.popleft()

    # --- one command ----------------------------------------------------------------------------------------------

    def wake(self) -> None:
        """The HSU wake-up: ``55 55`` and zeros, as libnfc sends them before the first command."""
        self.write(HSU_WAKEUP)

    def call(self, command: bytes, timeout: float, *, repeatable: bool = True,
             ack_timeout: float | None = None) -> bytes:
        """Send ``command`` (code and parameters); return the answer (code + 1 and parameters).

        ``timeout`` is how long the answer may take after the ACK. Raises :class:`LinkTimeout` when it does not
        come (the command is aborted), :class:`ReaderGone` when the chip never acknowledges a repeatable command or
        keeps damaging its answer, :class:`Pn532Error` for the error frame.
        """
        frame = host_frame(command)
        code = command[0]
        expected = code + 1
        ack_wait = (self.ack_timeout if ack_timeout is None else ack_timeout) + self.line_time(len(frame))
        self.flush_input()
        self.write(frame)
        sends = 1
        ack_deadline = self.timer() + ack_wait
        # ACK phase: anything the chip sends here shows it got the command; only silence is a reason to send again.
        while True:
            event = self._next(ack_deadline)
            if event is None:
                if repeatable and sends <= self.retries:
                    self.resent += 1
                    sends += 1
                    self.flush_input()
                    self.write(frame)
                    ack_deadline = self.timer() + ack_wait
                    continue
                if repeatable:
                    raise ReaderGone(f"{self.name}: no ACK to {name_of(code)} after {sends} tries")
                break  # the ACK may be lost: wait for the answer all the same
            if event is ControlFrame.ERROR:
                raise Pn532Error(code, None)
            if isinstance(event, Frame):
                if self._is_answer(event, expected):
                    self._events.appendleft(event)  # the ACK was lost, the answer was not
                    break
                continue  # a late answer to an earlier command
            break  # ACK, or something damaged in its place: the chip got the command
        return self._answer(code, expected, self.timer() + timeout)

    @staticmethod
    def _is_answer(frame: Frame, expected: int) -> bool:
        return frame.tfi == TFI_CHIP and frame.data[0] == expected

    def _whole(self, frame: Frame, deadline: float) -> bool:
        """Whether the frame was received as sent, postamble included.

        The checksums are sums, so a lost 00 data byte goes unnoticed when the postamble 00 slides into the DCS:
        the frame then decodes with its data shifted and no postamble after it.
        """
        sent = frame.to_bytes()[1:]  # from the start code: the preamble is mere fill
        while sent not in self._heard:
            now = self.timer()
            if now >= deadline:
                return False
            chunk = self._read(min(self.gap_timeout, deadline - now))
            if not chunk:
                return False
            self._heard += chunk
            self._events.extend(self.decoder.feed(chunk))
        return True

    def _answer(self, code: int, expected: int, deadline: float) -> bytes:
        nacks = 0
        marker = bytes((TFI_CHIP, expected))
        while True:
            event = self._next(deadline, marker)
            if event is None:
                self.write(ACK)  # abort the command in the chip so that its late answer cannot be taken for the next
                raise LinkTimeout(f"{self.name}: no answer to {name_of(code)} in time")
            if isinstance(event, Frame):
                if not self._is_answer(event, expected):
                    continue  # a late answer to an earlier command
                if self._whole(event, deadline):
                    return event.data
                fault = "no postamble after it"
            elif isinstance(event, BadFrame):
                fault = "cut short" if event is _CUT_SHORT else event.fault.value
            elif event is ControlFrame.ERROR:
                raise Pn532Error(code, None)
            else:
                continue  # a late ACK, or a NACK from the chip: not an answer
            if nacks >= self.retries:
                raise ReaderGone(f"{self.name}: the answer to {name_of(code)} arrived damaged {nacks + 1} times "
                                 f"({fault})")
            nacks += 1
            self.nacks_sent += 1
            self._restart()
            self.write(NACK)
