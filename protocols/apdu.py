"""ISO 7816-4 command and response APDUs, short and extended.

Le is kept as the number of bytes expected: a short ``00`` means 256 and an extended ``0000`` 65536, as the
standard says; ``None`` means no Le field. The encoding chosen on the wire (short or extended) is part of the value,
so bytes survive a parse and build unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ProtocolError
from .status import CardStatus


@dataclass(slots=True)
class CommandAPDU:
    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes = b""
    le: int | None = None
    extended: bool = False

    def __post_init__(self) -> None:
        cla, ins, p1, p2, le = self.cla, self.ins, self.p1, self.p2, self.le
        if not (0 <= cla <= 0xFF and 0 <= ins <= 0xFF and 0 <= p1 <= 0xFF and 0 <= p2 <= 0xFF):
            for name, value in (("cla", cla), ("ins", ins), ("p1", p1), ("p2", p2)):
                if not 0 <= value <= 0xFF:
                    raise ProtocolError(f"APDU {name.upper()} must be one byte, got {value}")
        size = len(self.data)
        if size > 65535:
            raise ProtocolError(f"APDU data of {size} bytes exceeds 65535")
        if le is not None and not 1 <= le <= 65536:
            raise ProtocolError(f"APDU Le must be 1..65536 or absent, got {le}")
        if size > 255 or (le or 0) > 256:
            self.extended = True
        elif not size and le is None:
            self.extended = False  # case 1 has a single encoding

    @property
    def header(self) -> bytes:
        return bytes((self.cla, self.ins, self.p1, self.p2))

    @property
    def case(self) -> int:
        """ISO 7816-3 case: 1 no data no Le, 2 Le only, 3 data only, 4 data and Le."""
        return 1 + (self.le is not None) + 2 * bool(self.data)

    def to_bytes(self) -> bytes:
        out = bytearray(self.header)
        lc, le = len(self.data), self.le
        if not self.extended:
            if lc:
                out.append(lc)
                out += self.data
            if le is not None:
                out.append(le & 0xFF)
            return bytes(out)
        if lc:
            out += b"\0" + lc.to_bytes(2, "big") + self.data
            if le is not None:
                out += (le & 0xFFFF).to_bytes(2, "big")
        elif le is not None:
            out += b"\0" + (le & 0xFFFF).to_bytes(2, "big")
        return bytes(out)

    @classmethod
    def _wire(cls, cla: int, ins: int, p1: int, p2: int, data: bytes, le: int | None, extended: bool) -> CommandAPDU:
        """A command read off the wire: its fields are in range by construction, so the constructor's checks are not
        run again (every command a card or PSAM answers comes through here)."""
        apdu = _new(cls)
        apdu.cla, apdu.ins, apdu.p1, apdu.p2, apdu.data, apdu.le, apdu.extended = cla, ins, p1, p2, data, le, extended
        return apdu

    @classmethod
    def parse(cls, raw: bytes) -> CommandAPDU:
        """Bytes to a command, telling the four cases apart by length as ISO 7816-3 does."""
        data, le, extended = split_command(raw)
        return cls._wire(raw[0], raw[1], raw[2], raw[3], data, le, extended)


def split_command(raw: bytes) -> tuple[bytes, int | None, bool]:
    """The data field, Le (``None`` when absent, 256 or 65536 for zeros) and whether the length fields are extended
    of a raw command APDU, telling the four cases apart by length as ISO 7816-3 does; ProtocolError (6700) when the
    lengths do not add up."""
    n = len(raw)
    if n < 4:
        raise ProtocolError(f"command APDU of {n} bytes is shorter than its 4-byte header", sw=CardStatus.WRONG_LENGTH)
    if n == 4:
        return b"", None, False
    b0 = raw[4]
    if n == 5:
        return b"", b0 or 256, False
    if b0:
        if n == 5 + b0:
            return raw[5:], None, False
        if n == 6 + b0:
            return raw[5:-1], raw[-1] or 256, False
        raise ProtocolError(f"command APDU: Lc={b0} does not match its {n - 5} bytes of body",
                            sw=CardStatus.WRONG_LENGTH)
    if n == 7:
        return b"", int.from_bytes(raw[5:7], "big") or 65536, True
    if n < 7:
        raise ProtocolError(f"command APDU: extended length field cut short ({n} bytes)", sw=CardStatus.WRONG_LENGTH)
    lc = int.from_bytes(raw[5:7], "big")
    if lc and n == 7 + lc:
        return raw[7:], None, True
    if lc and n == 9 + lc:
        return raw[7:-2], int.from_bytes(raw[-2:], "big") or 65536, True
    raise ProtocolError(f"command APDU: extended Lc={lc} does not match its {n - 7} bytes of body",
                        sw=CardStatus.WRONG_LENGTH)


_new = object.__new__


@dataclass(slots=True)
class ResponseAPDU:
    data: bytes
    sw: int

    @property
    def sw1(self) -> int:
        return self.sw >> 8

    @property
    def sw2(self) -> int:
        return self.sw & 0xFF

    @property
    def ok(self) -> bool:
        return self.sw == CardStatus.OK

    def to_bytes(self) -> bytes:
        return self.data + self.sw.to_bytes(2, "big")

    @classmethod
    def parse(cls, raw: bytes) -> ResponseAPDU:
        if len(raw) < 2:
            raise ProtocolError(f"response APDU of {len(raw)} bytes has no status word")
        return cls(raw[:-2], (raw[-2] << 8) | raw[-1])


def ends_with_data_sw(data: bytes) -> bool:
    """Whether ``data`` ends with a status word that can follow response data: 9000, or a 62xx/63xx warning."""
    return len(data) >= 2 and (data[-2:] == b"\x90\x00" or data[-2] in (0x62, 0x63))


def split_status_word(data: bytes, size: int | None = None) -> tuple[bytes, int | None]:
    """Captured response data with or without its trailing status word: the data and the word (``None`` when there
    is none).

    The last two bytes are taken as the status word when ``data`` is not exactly ``size`` bytes (the size of what
    is expected, when it has one) and they are a word that follows data (:func:`ends_with_data_sw`), or when they
    are all there is and look like a status word (SW1 6x or 9x). Callers show which they took.
    """
    if size is not None and len(data) == size:
        return data, None
    if ends_with_data_sw(data) or (len(data) == 2 and data[0] >> 4 in (0x6, 0x9)):
        return data[:-2], (data[-2] << 8) | data[-1]
    return data, None
