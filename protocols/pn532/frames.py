"""PN532 host-link frames: information frames (normal and extended), ACK, NACK and the error frame, and an incremental
decoder for a byte stream.

Layout of an information frame (LEN counts TFI and the data; LEN + LCS and TFI + data + DCS are both 0 mod 256)::

    normal    00 00 FF LEN LCS TFI PD0..PDn DCS 00
    extended  00 00 FF FF FF LENM LENL LCS TFI PD0..PDn DCS 00

A serial line hands over bytes in arbitrary pieces, may start mid-frame and may corrupt bytes, so :class:`FrameDecoder`
buffers, skips noise before a start code, and reports a damaged frame as a :class:`BadFrame` event instead of raising,
then resumes the search two bytes later so that one bad byte never costs the frames behind it.

The checksums are sums, blind to a lost ``00`` inside a frame: the postamble slides into the DCS and the frame
decodes with its data shifted by one byte. ``FrameDecoder(postamble=True)`` therefore holds an information frame (and
the error frame) back until the byte after its DCS has come: ``00`` completes it, anything else makes it a damaged
frame. The receiver decides how long to wait for that byte (a frame whose postamble never comes is a broken frame
once the line has been silent a while): :attr:`FrameDecoder.pending` counts the bytes held back.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ..errors import ProtocolError

TFI_HOST = 0xD4
"""Frame identifier of host → PN532 frames."""
TFI_CHIP = 0xD5
"""Frame identifier of PN532 → host frames."""
MAX_LENGTH = 265
"""Largest LEN (TFI + data) the PN532 handles; libnfc switches to extended frames above 255."""
_NORMAL_MAX = 0xFF
_START = b"\x00\xff"

HSU_WAKEUP = b"\x55\x55" + bytes(14)
"""What libnfc writes on a UART (HSU) before its first command to wake a PN532 from power-down."""


class ControlFrame(enum.Enum):
    """The fixed frames: ACK and NACK go both ways; ERROR is the chip's answer to a frame it cannot understand."""

    ACK = bytes.fromhex("0000FF00FF00")
    NACK = bytes.fromhex("0000FFFF0000")
    ERROR = bytes.fromhex("0000FF01FF7F8100")

    def to_bytes(self) -> bytes:
        return self.value


@dataclass(slots=True)
class Frame:
    """An information frame. ``data`` is PD0..PDn (the command or response code, then its parameters).

    ``extended`` is part of the value so that bytes survive parse and build; it is forced on when LEN exceeds 255.
    """

    tfi: int
    data: bytes
    extended: bool = False

    def __post_init__(self) -> None:
        if self.tfi not in (TFI_HOST, TFI_CHIP):
            raise ProtocolError(f"PN532 frame TFI {self.tfi:#04x} is neither D4 (host) nor D5 (chip)")
        if not self.data:
            raise ProtocolError("PN532 information frame without a command code")
        if len(self.data) + 1 > MAX_LENGTH:
            raise ProtocolError(f"PN532 frame of {len(self.data)} data bytes exceeds the chip's {MAX_LENGTH - 1}")
        if len(self.data) + 1 > _NORMAL_MAX:
            self.extended = True

    @property
    def code(self) -> int:
        """The command code (host frames) or response code (chip frames)."""
        return self.data[0]

    def to_bytes(self) -> bytes:
        n = len(self.data) + 1
        if self.extended:
            head = bytes((0x00, 0x00, 0xFF, 0xFF, 0xFF, n >> 8, n & 0xFF, -((n >> 8) + (n & 0xFF)) & 0xFF))
        else:
            head = bytes((0x00, 0x00, 0xFF, n, -n & 0xFF))
        dcs = -(self.tfi + sum(self.data)) & 0xFF
        return b"%s%c%s%c\x00" % (head, self.tfi, self.data, dcs)


def host_frame(data: bytes) -> bytes:
    """Host → chip frame bytes for a command (code and parameters)."""
    return Frame(TFI_HOST, data).to_bytes()


def chip_frame(data: bytes) -> bytes:
    """Chip → host frame bytes for a response (code and parameters)."""
    return Frame(TFI_CHIP, data).to_bytes()


class FrameFault(enum.Enum):
    LENGTH_CHECKSUM = "length checksum (LCS)"
    DATA_CHECKSUM = "data checksum (DCS)"
    LENGTH = "length out of range"
    TFI = "unknown frame identifier (TFI)"
    POSTAMBLE = "no postamble after the data checksum"


@dataclass(slots=True, frozen=True)
class BadFrame:
    """A damaged frame: what failed, and the bytes from its start code up to where the check failed."""

    fault: FrameFault
    data: bytes


Event = Frame | ControlFrame | BadFrame


def _scan(buf: bytes | bytearray, i: int) -> tuple[Event | None, int]:
    """Decode the frame whose start code ``00 FF`` is at ``buf[i]``.

    Returns the event and the index just past it (past DCS; the postamble is the caller's), or ``(None, i)`` when more
    bytes are needed. A bad frame ends at ``i + 2`` so that the search resumes right after its start code.
    """
    n = len(buf)
    if n < i + 4:
        return None, i
    b2, b3 = buf[i + 2], buf[i + 3]
    if b2 == 0x00 and b3 == 0xFF:
        return ControlFrame.ACK, i + 4
    if b2 == 0xFF and b3 == 0x00:
        return ControlFrame.NACK, i + 4
    if b2 == 0xFF and b3 == 0xFF:
        if n < i + 7:
            return None, i
        length, body = buf[i + 4] << 8 | buf[i + 5], i + 7
        if (buf[i + 4] + buf[i + 5] + buf[i + 6]) & 0xFF:
            return BadFrame(FrameFault.LENGTH_CHECKSUM, bytes(buf[i:i + 7])), i + 2
        if not 2 <= length <= MAX_LENGTH:
            return BadFrame(FrameFault.LENGTH, bytes(buf[i:i + 7])), i + 2
        extended = True
    else:
        length, body = b2, i + 4
        if (b2 + b3) & 0xFF:
            return BadFrame(FrameFault.LENGTH_CHECKSUM, bytes(buf[i:i + 4])), i + 2
        if length == 0:
            return BadFrame(FrameFault.LENGTH, bytes(buf[i:i + 4])), i + 2
        extended = False
    end = body + length + 1
    if n < end:
        return None, i
    if sum(buf[body:end]) & 0xFF:
        return BadFrame(FrameFault.DATA_CHECKSUM, bytes(buf[i:end])), i + 2
    tfi = buf[body]
    if length == 1:
        if tfi == 0x7F and not extended:
            return ControlFrame.ERROR, end
        return BadFrame(FrameFault.LENGTH, bytes(buf[i:end])), i + 2
    if tfi not in (TFI_HOST, TFI_CHIP):
        return BadFrame(FrameFault.TFI, bytes(buf[i:end])), i + 2
    return Frame(tfi, bytes(buf[body + 1:end - 1]), extended), end


def parse_frame(raw: bytes) -> Frame | ControlFrame:
    """Exactly one frame, preamble ``00`` to postamble ``00``, as :meth:`Frame.to_bytes` writes it."""
    if raw[:3] != b"\x00\x00\xff":
        raise ProtocolError(f"PN532 frame {raw[:8].hex().upper()}: does not open with 00 00 FF")
    event, end = _scan(raw, 1)
    if event is None:
        raise ProtocolError(f"PN532 frame of {len(raw)} bytes is truncated")
    if isinstance(event, BadFrame):
        raise ProtocolError(f"PN532 frame: bad {event.fault.value}")
    if raw[end:] != b"\x00":
        raise ProtocolError(f"PN532 frame: expected the postamble 00 after byte {end}, got {raw[end:].hex().upper()}")
    return event


def _carries_data(event: Event) -> bool:
    return isinstance(event, Frame) or event is ControlFrame.ERROR


class FrameDecoder:
    """Feed bytes as they arrive; get back the frames completed so far.

    Zeros between frames are preamble and postamble fill; any other byte outside a frame is noise, counted in
    ``discarded``. Call :meth:`reset` after a timeout so that a half-received frame does not swallow the next answer.
    ``postamble``: a frame counts only once the ``00`` after its DCS has come (see the module docstring).
    """

    __slots__ = ("_buf", "_postamble", "_postamble_due", "discarded")

    def __init__(self, *, postamble: bool = False) -> None:
        self._buf = bytearray()
        self._postamble_due = False  # a frame ended the last feed: a leading 00 now is its postamble
        self._postamble = postamble
        self.discarded = 0

    @property
    def pending(self) -> int:
        """Bytes held back as the start of an unfinished frame."""
        return len(self._buf)

    def reset(self) -> None:
        self._buf.clear()
        self._postamble_due = False

    def feed(self, data: bytes) -> list[Event]:
        buf = self._buf
        buf += data
        events: list[Event] = []
        pos = 1 if self._postamble_due and buf[:1] == b"\x00" else 0
        if buf:
            self._postamble_due = False
        while True:
            start = buf.find(_START, pos)
            if start < 0:
                keep = len(buf) - 1 if len(buf) > pos and buf[-1] == 0 else len(buf)  # may open a start code
                self._skip(buf, pos, keep)
                pos = keep
                break
            self._skip(buf, pos, start)
            event, end = _scan(buf, start)
            if event is None or (self._postamble and end == len(buf) and _carries_data(event)):
                pos = start
                break
            if self._postamble and _carries_data(event):
                if buf[end]:
                    events.append(BadFrame(FrameFault.POSTAMBLE, bytes(buf[start:end + 1])))
                    pos = start + 2
                    continue
                events.append(event)
                pos = end + 1
                continue
            events.append(event)
            pos = end
            if not isinstance(event, BadFrame):
                if end == len(buf):
                    self._postamble_due = True
                elif buf[end] == 0:
                    pos += 1
        del buf[:pos]
        return events

    def _skip(self, buf: bytearray, start: int, end: int) -> None:
        if end > start:
            self.discarded += end - start - buf.count(0, start, end)
