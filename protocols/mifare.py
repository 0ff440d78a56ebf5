"""MIFARE Classic (M1) structures: memory geometry, value blocks, sector trailers and access conditions, and the
command frames a PN532 takes in InDataExchange.

Crypto1 is not here: the reader chip runs it. Through a PN532 the host sends ``60/61 block key uid`` to authenticate
and then plain READ/WRITE/value commands, which is the level a simulated card works at too.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import ClassVar

import construct as c

from .errors import ProtocolError
from .iso14443 import classic_size_from_sak
from .layout import Layout

BLOCK_SIZE = 16
KEY_SIZE = 6


# --- memory geometry ----------------------------------------------------------------------------------------------

class CardSize(enum.IntEnum):
    """Memory size in bytes. Sectors 0..31 have 4 blocks; the 4K's sectors 32..39 have 16."""

    MINI = 320
    K1 = 1024
    K4 = 4096

    @property
    def blocks(self) -> int:
        return self // BLOCK_SIZE

    @property
    def sectors(self) -> int:
        return {CardSize.MINI: 5, CardSize.K1: 16, CardSize.K4: 40}[self]

    @classmethod
    def from_sak(cls, sak: int) -> CardSize:
        size = classic_size_from_sak(sak)
        if size is None:
            raise ProtocolError(f"SAK {sak:02X} does not announce a MIFARE Classic")
        return cls(size)


_SMALL_SECTORS = 32  # sectors with 4 blocks, before the 4K's 16-block sectors


def _check_block(block: int, size: CardSize) -> None:
    if not 0 <= block < size.blocks:
        raise ProtocolError(f"block {block} is outside a MIFARE Classic {size.name} (0..{size.blocks - 1})")


def _check_sector(sector: int, size: CardSize) -> None:
    if not 0 <= sector < size.sectors:
        raise ProtocolError(f"sector {sector} is outside a MIFARE Classic {size.name} (0..{size.sectors - 1})")


def sector_of(block: int, size: CardSize = CardSize.K1) -> int:
    _check_block(block, size)
    return block // 4 if block < 4 * _SMALL_SECTORS else _SMALL_SECTORS + (block - 4 * _SMALL_SECTORS) // 16


def blocks_in_sector(sector: int, size: CardSize = CardSize.K1) -> int:
    _check_sector(sector, size)
    return 4 if sector < _SMALL_SECTORS else 16


def first_block(sector: int, size: CardSize = CardSize.K1) -> int:
    _check_sector(sector, size)
    return 4 * sector if sector < _SMALL_SECTORS else 4 * _SMALL_SECTORS + 16 * (sector - _SMALL_SECTORS)


def trailer_block(sector: int, size: CardSize = CardSize.K1) -> int:
    """The sector trailer: the last block of the sector."""
    return first_block(sector, size) + blocks_in_sector(sector, size) - 1


def is_trailer(block: int, size: CardSize = CardSize.K1) -> bool:
    return block == trailer_block(sector_of(block, size), size)


def access_group(block: int, size: CardSize = CardSize.K1) -> int:
    """Which of the four access conditions governs ``block``: 0..2 for data, 3 for the trailer.

    In a 16-block sector each data condition covers five blocks (0-4, 5-9, 10-14).
    """
    sector = sector_of(block, size)
    offset = block - first_block(sector, size)
    if blocks_in_sector(sector, size) == 4:
        return offset
    return 3 if offset == 15 else offset // 5


# --- access conditions --------------------------------------------------------------------------------------------

class Keys(enum.IntFlag):
    """Which keys grant a right: ``A``, ``B``, both, or ``NEVER``."""

    NEVER = 0
    A = 1
    B = 2


_AB = Keys.A | Keys.B
_N = Keys.NEVER


@dataclass(slots=True, frozen=True)
class DataBlockRights:
    """What a data block's condition allows; ``decrement`` also covers transfer and restore."""

    read: Keys
    write: Keys
    increment: Keys
    decrement: Keys


@dataclass(slots=True, frozen=True)
class TrailerRights:
    """What the trailer's condition allows on the keys and the access bits (key A itself is never readable)."""

    key_a_write: Keys
    access_read: Keys
    access_write: Keys
    key_b_read: Keys
    key_b_write: Keys

    @property
    def key_a_read(self) -> Keys:
        return Keys.NEVER


# Indexed by the condition C1C2C3 read as a 3-bit number (C1 the high bit), as in NXP's MF1S50/MF1S70 tables.
_DATA_RIGHTS = (
    DataBlockRights(_AB, _AB, _AB, _AB),      # 000 transport configuration
    DataBlockRights(_AB, _N, _N, _AB),        # 001 value block, debit only
    DataBlockRights(_AB, _N, _N, _N),         # 010 read only
    DataBlockRights(Keys.B, Keys.B, _N, _N),  # 011 read/write with key B
    DataBlockRights(_AB, Keys.B, _N, _N),     # 100 read/write block
    DataBlockRights(Keys.B, _N, _N, _N),      # 101 read with key B
    DataBlockRights(_AB, Keys.B, Keys.B, _AB),  # 110 value block, top up with key B
    DataBlockRights(_N, _N, _N, _N),          # 111 locked
)
_TRAILER_RIGHTS = (
    TrailerRights(Keys.A, Keys.A, _N, Keys.A, Keys.A),       # 000
    TrailerRights(Keys.A, Keys.A, Keys.A, Keys.A, Keys.A),   # 001 transport configuration
    TrailerRights(_N, Keys.A, _N, Keys.A, _N),               # 010
    TrailerRights(Keys.B, _AB, Keys.B, _N, Keys.B),          # 011
    TrailerRights(Keys.B, _AB, _N, _N, Keys.B),              # 100
    TrailerRights(_N, _AB, Keys.B, _N, _N),                  # 101
    TrailerRights(_N, _AB, _N, _N, _N),                      # 110
    TrailerRights(_N, _AB, _N, _N, _N),                      # 111
)


@dataclass(slots=True, frozen=True)
class AccessConditions:
    """The four C1C2C3 conditions of a sector (data groups 0..2, trailer 3), each a 3-bit number C1·4+C2·2+C3."""

    conditions: tuple[int, int, int, int]

    def __post_init__(self) -> None:
        if len(self.conditions) != 4 or any(not 0 <= cond <= 7 for cond in self.conditions):
            raise ProtocolError(f"access conditions {self.conditions!r}: four values 0..7 expected")

    def to_bytes(self) -> bytes:
        """The three access-bit bytes 6..8 of the trailer, each bit stored once plain and once inverted."""
        c1 = c2 = c3 = 0
        for block, cond in enumerate(self.conditions):
            c1 |= (cond >> 2 & 1) << block
            c2 |= (cond >> 1 & 1) << block
            c3 |= (cond & 1) << block
        return bytes(((~c2 & 0xF) << 4 | (~c1 & 0xF), c1 << 4 | (~c3 & 0xF), c3 << 4 | c2))

    @classmethod
    def parse(cls, raw: bytes) -> AccessConditions:
        if len(raw) != 3:
            raise ProtocolError(f"access bits: expected 3 bytes, got {len(raw)}")
        c1, c2, c3 = raw[1] >> 4, raw[2] & 0xF, raw[2] >> 4
        if raw[0] != ((~c2 & 0xF) << 4 | (~c1 & 0xF)) or raw[1] & 0xF != ~c3 & 0xF:
            raise ProtocolError(f"access bits {raw.hex().upper()}: inverted copies do not match")
        group0, group1, group2, trailer = ((c1 >> b & 1) << 2 | (c2 >> b & 1) << 1 | (c3 >> b & 1) for b in range(4))
        return cls((group0, group1, group2, trailer))

    @property
    def key_b_readable(self) -> bool:
        """When the trailer lets key B be read, key B is plain data and cannot authenticate."""
        return self.trailer_rights().key_b_read != Keys.NEVER

    def data_rights(self, group: int) -> DataBlockRights:
        """Rights on data group 0..2, with key B's rights dropped when key B is readable."""
        if not 0 <= group <= 2:
            raise ProtocolError(f"data access group {group} is not 0..2")
        rights = _DATA_RIGHTS[self.conditions[group]]
        if not self.key_b_readable:
            return rights
        return DataBlockRights(rights.read & Keys.A, rights.write & Keys.A, rights.increment & Keys.A,
                               rights.decrement & Keys.A)

    def trailer_rights(self) -> TrailerRights:
        return _TRAILER_RIGHTS[self.conditions[3]]


TRANSPORT_ACCESS = AccessConditions((0, 0, 0, 1))
"""The factory setting, access bytes ``FF 07 80``: data blocks open to both keys, trailer managed with key A."""


class _AccessBitsField(c.Adapter):
    """The trailer's bytes 6..8 as :class:`AccessConditions` (context-free, so the fast engine can run it too)."""

    def _decode(self, obj: bytes, context: object, path: str) -> AccessConditions:
        return AccessConditions.parse(obj)

    def _encode(self, obj: AccessConditions, context: object, path: str) -> bytes:
        return obj.to_bytes()


@dataclass(slots=True)
class SectorTrailer:
    """The last block of a sector. A card reads key A back as zeros, and key B too unless the access bits allow."""

    key_a: bytes = field(repr=False)
    access: AccessConditions
    gpb: int
    key_b: bytes = field(repr=False)


SECTOR_TRAILER = Layout(
    SectorTrailer,
    "key_a" / c.Bytes(KEY_SIZE),
    "access" / _AccessBitsField(c.Bytes(3)),
    "gpb" / c.Int8ub,
    "key_b" / c.Bytes(KEY_SIZE),
    examples=(
        ("FFFFFFFFFFFF FF0780 69 FFFFFFFFFFFF".replace(" ", ""),
         SectorTrailer(b"\xff" * 6, TRANSPORT_ACCESS, 0x69, b"\xff" * 6)),
        ("000000000000 7F0788 69 000000000000".replace(" ", ""),
         SectorTrailer(bytes(6), AccessConditions((0, 0, 0, 3)), 0x69, bytes(6))),
    ),
)


# --- value blocks -------------------------------------------------------------------------------------------------

@dataclass(slots=True)
class ValueBlock:
    """A value block: a signed 32-bit value and a one-byte address, each stored with redundancy.

    Not a :class:`Layout`: the 16 bytes hold two values three and four times over, and the point of parsing is to
    check that the copies agree. Bytes: value, ~value, value (little-endian), then addr, ~addr, addr, ~addr.
    """

    value: int
    address: int

    def __post_init__(self) -> None:
        if not -0x8000_0000 <= self.value <= 0x7FFF_FFFF:
            raise ProtocolError(f"value {self.value} does not fit a signed 32-bit value block")
        if not 0 <= self.address <= 0xFF:
            raise ProtocolError(f"value block address {self.address} is not a byte")

    def to_bytes(self) -> bytes:
        value = self.value.to_bytes(4, "little", signed=True)
        inverted = (self.value & 0xFFFF_FFFF ^ 0xFFFF_FFFF).to_bytes(4, "little")
        address, inverted_address = self.address, self.address ^ 0xFF
        return value + inverted + value + bytes((address, inverted_address, address, inverted_address))

    @classmethod
    def parse(cls, raw: bytes) -> ValueBlock:
        if len(raw) != BLOCK_SIZE:
            raise ProtocolError(f"value block: expected 16 bytes, got {len(raw)}")
        value, inverted, copy = raw[0:4], raw[4:8], raw[8:12]
        if value != copy or int.from_bytes(value, "little") ^ int.from_bytes(inverted, "little") != 0xFFFF_FFFF:
            raise ProtocolError(f"value block {raw.hex().upper()}: value copies disagree")
        address = raw[12]
        if raw[14] != address or raw[13] != address ^ 0xFF or raw[15] != address ^ 0xFF:
            raise ProtocolError(f"value block {raw.hex().upper()}: address copies disagree")
        return cls(int.from_bytes(value, "little", signed=True), address)


def is_value_block(raw: bytes) -> bool:
    """Whether a 16-byte block holds a well-formed value block (a data block mostly will not)."""
    try:
        ValueBlock.parse(raw)
    except ProtocolError:
        return False
    return True


# --- commands through InDataExchange ------------------------------------------------------------------------------

class KeyType(enum.IntEnum):
    """The key to authenticate with; the value is the AUTH command code."""

    A = 0x60
    B = 0x61


class ValueOperation(enum.IntEnum):
    """Value commands; each works on the card's transfer buffer, which TRANSFER then writes to a block."""

    DECREMENT = 0xC0
    INCREMENT = 0xC1
    RESTORE = 0xC2


READ, WRITE, TRANSFER = 0x30, 0xA0, 0xB0

ACK = b"\x0a"
"""The card's 4-bit acknowledge, as one byte: a WRITE, value operation, TRANSFER or authentication went through."""


class Nak(enum.IntEnum):
    """The card's 4-bit negative acknowledges (MF1S50 datasheet §9.3), by transfer-buffer validity and cause."""

    INVALID_OPERATION = 0x0  # transfer buffer valid
    PARITY_OR_CRC = 0x1  # transfer buffer valid
    INVALID_OPERATION_NO_BUFFER = 0x4  # transfer buffer not valid
    PARITY_OR_CRC_NO_BUFFER = 0x5  # transfer buffer not valid


NO_ANSWER = b""
"""What a card that does not answer gives: after a failed authentication, or before it is selected again."""


class _EnumByte(c.Adapter):
    """One byte that must be a member of ``enum_type``."""

    def __init__(self, enum_type: type[enum.IntEnum]) -> None:
        super().__init__(c.Int8ub)
        self._enum = enum_type

    def _decode(self, obj: int, context: object, path: str) -> enum.IntEnum:
        try:
            return self._enum(obj)
        except ValueError:
            raise ProtocolError(f"{obj:02X} is not a {self._enum.__name__}") from None

    def _encode(self, obj: int, context: object, path: str) -> int:
        return int(self._decode(obj, context, path))


class _Command:
    """A MIFARE command as the data of an InDataExchange; each class has its own Layout."""

    __slots__ = ()
    LAYOUT: ClassVar[Layout]

    def to_bytes(self) -> bytes:
        return self.LAYOUT.build(self)


@dataclass(slots=True)
class Authenticate(_Command):
    """``60/61 block key(6) uid(4)``: the PN532 runs the Crypto1 authentication with these."""

    key_type: KeyType
    block: int
    key: bytes = field(repr=False)
    uid: bytes


@dataclass(slots=True)
class Read(_Command):
    """``30 block``; the card answers the 16 bytes of the block."""

    block: int


@dataclass(slots=True)
class Write(_Command):
    """``A0 block data(16)``; the PN532 sends the two-step write for the host."""

    block: int
    data: bytes


@dataclass(slots=True)
class ValueCommand(_Command):
    """``C0/C1/C2 block operand(4, little-endian)``: load the block into the transfer buffer and apply the operand
    (RESTORE ignores it; by convention it is zero)."""

    operation: ValueOperation
    block: int
    operand: int


@dataclass(slots=True)
class Transfer(_Command):
    """``B0 block``: write the transfer buffer to a value block."""

    block: int


Authenticate.LAYOUT = AUTHENTICATE = Layout(
    Authenticate, "key_type" / _EnumByte(KeyType), "block" / c.Int8ub, "key" / c.Bytes(KEY_SIZE), "uid" / c.Bytes(4),
    examples=(("6004FFFFFFFFFFFF01020304", Authenticate(KeyType.A, 4, b"\xff" * 6, bytes.fromhex("01020304"))),
              ("6107A0A1A2A3A4A5DEADBEEF",
               Authenticate(KeyType.B, 7, bytes.fromhex("A0A1A2A3A4A5"), bytes.fromhex("DEADBEEF")))),
)
Read.LAYOUT = READ_BLOCK = Layout(Read, c.Const(bytes((READ,))), "block" / c.Int8ub,
                                  examples=(("3004", Read(4)),))
Write.LAYOUT = WRITE_BLOCK = Layout(
    Write, c.Const(bytes((WRITE,))), "block" / c.Int8ub, "data" / c.Bytes(BLOCK_SIZE),
    examples=(("A00501000000FEFFFFFF0100000001FE01FE",
               Write(5, bytes.fromhex("01000000FEFFFFFF0100000001FE01FE"))),),
)
ValueCommand.LAYOUT = VALUE_COMMAND = Layout(
    ValueCommand, "operation" / _EnumByte(ValueOperation), "block" / c.Int8ub, "operand" / c.Int32ul,
    examples=(("C0050A000000", ValueCommand(ValueOperation.DECREMENT, 5, 10)),
              ("C10564000000", ValueCommand(ValueOperation.INCREMENT, 5, 100)),
              ("C20500000000", ValueCommand(ValueOperation.RESTORE, 5, 0))),
)
Transfer.LAYOUT = TRANSFER_BLOCK = Layout(Transfer, c.Const(bytes((TRANSFER,))), "block" / c.Int8ub,
                                          examples=(("B005", Transfer(5)),))

MifareCommand = Authenticate | Read | Write | ValueCommand | Transfer

_BY_CODE: dict[int, Layout] = {
    KeyType.A: AUTHENTICATE, KeyType.B: AUTHENTICATE, READ: READ_BLOCK, WRITE: WRITE_BLOCK, TRANSFER: TRANSFER_BLOCK,
    **{op: VALUE_COMMAND for op in ValueOperation},
}


def parse_command(raw: bytes) -> MifareCommand:
    """A MIFARE Classic command as an emulated card or a PN532 emulator receives it in InDataExchange."""
    if not raw:
        raise ProtocolError("empty MIFARE command")
    layout = _BY_CODE.get(raw[0])
    if layout is None:
        raise ProtocolError(f"{raw[0]:02X} is not a MIFARE Classic command")
    return layout.parse(raw)


def without_key(command: bytes) -> bytes:
    """``command`` with the key of an AUTH (``60/61 block key uid``) replaced by zeros, for logs and traces; any
    other command as it is."""
    if len(command) == AUTHENTICATE.size and command[0] in (KeyType.A, KeyType.B):
        return command[:2] + bytes(KEY_SIZE) + command[2 + KEY_SIZE:]
    return command


def auth_uid(uid: bytes) -> bytes:
    """The four UID bytes that AUTH takes: the UID itself, or the last four of a 7-byte UID (its cascade level 2)."""
    if len(uid) not in (4, 7):
        raise ProtocolError(f"a MIFARE Classic UID has 4 or 7 bytes, not {len(uid)}")
    return uid[-4:]


REPEATABLE = frozenset((KeyType.A, KeyType.B, READ, WRITE, ValueOperation.RESTORE))
"""Commands a card may be sent twice with no other effect than once: authentication, READ, WRITE (the same 16
bytes), RESTORE (the block into the transfer buffer again). INCREMENT and DECREMENT change the buffer on each run;
TRANSFER is left out because a card may refuse a second one."""


def repeatable(command: bytes) -> bool:
    """Whether a reader may send ``command`` again when it cannot tell whether the card got it."""
    return bool(command) and command[0] in REPEATABLE
