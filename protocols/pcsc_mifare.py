"""MIFARE Classic through PC/SC: the storage-card pseudo-APDUs (PC/SC part 3, as ACR122U-class readers take them),
their translation into the MIFARE commands a reader chip sends, and the ATR such a reader shows for the card.

A PC/SC reader with a MIFARE Classic in its field accepts commands of class ``FF`` that its firmware turns into MIFARE
commands (:mod:`protocols.mifare`); one translator, :class:`MifareBridge`, does that for every place here that plays
the reader: the simulated reader, the vpcd server (the reader's firmware to pcscd) and, with the PN532's
InDataExchange behind it, the PN532 driver.

=====================================  ================================================================  ========
pseudo-APDU                            what the reader does                                               answer
=====================================  ================================================================  ========
``FF CA 00 00 Le``                     the card's UID (``01``: the ATS; a Classic has none: 6A81)          UID 9000
``FF 82 00 nn 06 key``                 load a 6-byte key into volatile slot nn (00 or 01)                  9000
``FF 86 00 00 05 01 00 bb tt nn``      AUTH ``tt`` (60 key A, 61 key B) of block bb with slot nn's key      9000
``FF 88 00 bb tt nn``                  the same, the older form                                            9000
``FF B0 00 bb 10``                     READ block bb                                                       16 bytes
``FF D6 00 bb 10 data``                WRITE block bb                                                      9000
``FF D7 00 bb 05 op value``            op 00: WRITE a value block holding ``value`` (address byte bb);     9000
                                       01/02: INCREMENT/DECREMENT by ``value`` and TRANSFER to bb
``FF D7 00 ss 02 03 tt``               RESTORE ss and TRANSFER to tt (copy a value block in a sector)      9000
``FF B1 00 bb 04``                     READ bb and answer its value, 4 bytes signed, most significant first  value
=====================================  ================================================================  ========

Any failure of the card (NAK, no answer, a block that is not a value block) is ``63 00``, as the ACR122U API says;
a Le other than the answer's size is ``6Cxx`` (GET DATA with a larger Le gets the UID and ``62 82``); a wrong length
is ``67 00``, an instruction the reader does not know ``6A 81``, a class other than FF ``6E 00``. ``value`` is
most significant byte first in the pseudo-APDU and least significant first on the air.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import reduce
from operator import xor
from typing import Any, ClassVar, assert_never

import construct as c

from .errors import ProtocolError
from .iso14443 import CLASSIC_SAKS, classic_size_from_sak
from .layout import Layout
from .mifare import (
    ACK,
    BLOCK_SIZE,
    KEY_SIZE,
    KeyType,
    Read,
    Transfer,
    ValueBlock,
    ValueCommand,
    ValueOperation,
    Write,
    auth_uid,
)
from .mifare import (
    Authenticate as MifareAuthenticate,
)

OK = 0x9000
FAILED = 0x6300
END_REACHED = 0x6282
WRONG_LENGTH = 0x6700
NOT_SUPPORTED = 0x6A81
CLASS_NOT_SUPPORTED = 0x6E00
KEY_SLOTS = 2
"""Volatile key locations 00 and 01, as the ACR122U has."""


class ValueOp(enum.IntEnum):
    """The operation byte of ``FF D7`` (ACR122U: VB_OP)."""

    STORE = 0x00
    INCREMENT = 0x01
    DECREMENT = 0x02
    RESTORE = 0x03  # the copy form, ``FF D7 00 ss 02 03 tt``


class _Pseudo:
    """A storage-card pseudo-APDU; each class has its own Layout."""

    __slots__ = ()
    LAYOUT: ClassVar[Layout]

    def to_bytes(self) -> bytes:
        return self.LAYOUT.build(self)


@dataclass(slots=True)
class GetData(_Pseudo):
    """``FF CA p1 00 Le``: p1 00 the UID, 01 the ATS."""

    p1: int = 0
    le: int = 0


@dataclass(slots=True)
class LoadKey(_Pseudo):
    """``FF 82 structure number 06 key``: structure 00 is the reader's volatile memory."""

    structure: int
    number: int
    key: bytes = field(repr=False)


@dataclass(slots=True)
class GeneralAuthenticate(_Pseudo):
    """``FF 86 00 00 05 01 00 block type number``: authenticate with the key in slot ``number``."""

    block: int
    key_type: int  # 60 key A, 61 key B
    key_number: int


@dataclass(slots=True)
class LegacyAuthenticate(_Pseudo):
    """``FF 88 00 block type number``: the older AUTHENTICATE, same meaning."""

    block: int
    key_type: int
    key_number: int


@dataclass(slots=True)
class ReadBlock(_Pseudo):
    """``FF B0 00 block Le`` (READ BINARY of one block)."""

    block: int
    le: int = BLOCK_SIZE


@dataclass(slots=True)
class UpdateBlock(_Pseudo):
    """``FF D6 00 block 10 data`` (UPDATE BINARY of one block)."""

    block: int
    data: bytes


@dataclass(slots=True)
class ValueBlockOperation(_Pseudo):
    """``FF D7 00 block 05 op value``: store, increment or decrement (``value`` signed, most significant first)."""

    block: int
    operation: int
    value: int


@dataclass(slots=True)
class RestoreValueBlock(_Pseudo):
    """``FF D7 00 source 02 03 target``: copy a value block to another of the same sector."""

    source: int
    target: int


@dataclass(slots=True)
class ReadValueBlock(_Pseudo):
    """``FF B1 00 block Le``: the value of a value block."""

    block: int
    le: int = 4


GetData.LAYOUT = GET_DATA = Layout(GetData, c.Const(b"\xff\xca"), "p1" / c.Int8ub, c.Const(b"\x00"), "le" / c.Int8ub,
                                   examples=(("FFCA000000", GetData(0, 0)),))
LoadKey.LAYOUT = LOAD_KEY = Layout(
    LoadKey, c.Const(b"\xff\x82"), "structure" / c.Int8ub, "number" / c.Int8ub, c.Const(b"\x06"),
    "key" / c.Bytes(KEY_SIZE),
    examples=(("FF82000006FFFFFFFFFFFF", LoadKey(0, 0, b"\xff" * 6)),),  # the ACR122U API's example
)
GeneralAuthenticate.LAYOUT = GENERAL_AUTHENTICATE = Layout(
    GeneralAuthenticate, c.Const(bytes.fromhex("FF860000050100")), "block" / c.Int8ub, "key_type" / c.Int8ub,
    "key_number" / c.Int8ub,
    examples=(("FF860000050100046000", GeneralAuthenticate(4, 0x60, 0)),),  # the ACR122U API's example
)
LegacyAuthenticate.LAYOUT = LEGACY_AUTHENTICATE = Layout(
    LegacyAuthenticate, c.Const(bytes.fromhex("FF8800")), "block" / c.Int8ub, "key_type" / c.Int8ub,
    "key_number" / c.Int8ub, examples=(("FF8800046000", LegacyAuthenticate(4, 0x60, 0)),),
)
ReadBlock.LAYOUT = READ_BLOCK = Layout(ReadBlock, c.Const(b"\xff\xb0\x00"), "block" / c.Int8ub, "le" / c.Int8ub,
                                       examples=(("FFB0000410", ReadBlock(4, 16)),))
UpdateBlock.LAYOUT = UPDATE_BLOCK = Layout(
    UpdateBlock, c.Const(b"\xff\xd6\x00"), "block" / c.Int8ub, c.Const(b"\x10"), "data" / c.Bytes(BLOCK_SIZE),
    examples=(("FFD6000410000102030405060708090A0B0C0D0E0F", UpdateBlock(4, bytes(range(16)))),),
)
ValueBlockOperation.LAYOUT = VALUE_BLOCK_OPERATION = Layout(
    ValueBlockOperation, c.Const(b"\xff\xd7\x00"), "block" / c.Int8ub, c.Const(b"\x05"), "operation" / c.Int8ub,
    "value" / c.Int32sb,
    examples=(("FFD700050500 00000001".replace(" ", ""), ValueBlockOperation(5, ValueOp.STORE, 1)),  # ACR122U API
              ("FFD700050501 00000005".replace(" ", ""), ValueBlockOperation(5, ValueOp.INCREMENT, 5)),
              ("FFD700090502 000000C8".replace(" ", ""), ValueBlockOperation(9, ValueOp.DECREMENT, 200))),
)
RestoreValueBlock.LAYOUT = RESTORE_VALUE_BLOCK = Layout(
    RestoreValueBlock, c.Const(b"\xff\xd7\x00"), "source" / c.Int8ub, c.Const(b"\x02\x03"), "target" / c.Int8ub,
    examples=(("FFD70005020306", RestoreValueBlock(5, 6)),),  # the ACR122U API's example
)
ReadValueBlock.LAYOUT = READ_VALUE_BLOCK = Layout(
    ReadValueBlock, c.Const(b"\xff\xb1\x00"), "block" / c.Int8ub, "le" / c.Int8ub,
    examples=(("FFB1000504", ReadValueBlock(5, 4)),),
)

StorageCommand = (GetData | LoadKey | GeneralAuthenticate | LegacyAuthenticate | ReadBlock | UpdateBlock
                  | ValueBlockOperation | RestoreValueBlock | ReadValueBlock)

_BY_INS: dict[int, Layout[Any]] = {
    0xCA: GET_DATA, 0x82: LOAD_KEY, 0x86: GENERAL_AUTHENTICATE, 0x88: LEGACY_AUTHENTICATE, 0xB0: READ_BLOCK,
    0xD6: UPDATE_BLOCK, 0xB1: READ_VALUE_BLOCK,
}
_VALUE_FORMS: dict[int, Layout[Any]] = {0x05: VALUE_BLOCK_OPERATION, 0x02: RESTORE_VALUE_BLOCK}  # FF D7, by Lc


def parse_storage_command(raw: bytes) -> StorageCommand:
    """A pseudo-APDU as its command object; :class:`ProtocolError` with the reader's status word otherwise."""
    if len(raw) < 4:
        raise ProtocolError(f"pseudo-APDU of {len(raw)} bytes: a header is 4", sw=WRONG_LENGTH)
    if raw[0] != 0xFF:
        raise ProtocolError(f"class {raw[0]:02X}: a MIFARE Classic takes reader commands of class FF only",
                            sw=CLASS_NOT_SUPPORTED)
    layout = _VALUE_FORMS.get(raw[4]) if raw[1] == 0xD7 and len(raw) > 4 else _BY_INS.get(raw[1])
    if layout is None:
        raise ProtocolError(f"FF {raw[1]:02X}: not a storage-card command this reader knows", sw=NOT_SUPPORTED)
    return layout.parse(raw)


def without_key(apdu: bytes) -> bytes:
    """``apdu`` with the key of a LOAD KEY (``FF 82``) replaced by zeros, for logs and traces: the one pseudo-APDU
    that carries a key in the clear. Any other APDU as it is."""
    if len(apdu) == LOAD_KEY.size and apdu[:2] == b"\xff\x82":
        return apdu[:5] + bytes(KEY_SIZE)
    return apdu


# --- the reader's translation ---------------------------------------------------------------------------------------

def _sw(word: int) -> bytes:
    return word.to_bytes(2, "big")


_OK, _FAILED = _sw(OK), _sw(FAILED)
_KEY_TYPES = {0x60: KeyType.A, 0x61: KeyType.B}

Exchange = Callable[[bytes], bytes]
"""Send one MIFARE command to the card and return its answer: 16 bytes for READ, :data:`~protocols.mifare.ACK` for
a command that went through, a one-byte NAK, or ``b""`` when the card does not answer."""


class MifareBridge:
    """The reader firmware's side of PC/SC part 3 for MIFARE Classic: key slots and the card's UID, and the MIFARE
    commands each pseudo-APDU becomes. ``exchange`` reaches the card; the bridge holds no I/O of its own.

    Keys stay loaded while the reader is in use (the ACR122U forgets them when unplugged), so one bridge serves every
    card the reader sees: :meth:`select` tells it the UID of the card now in the field.
    """

    def __init__(self) -> None:
        self.keys: list[bytes | None] = [None] * KEY_SLOTS
        self.uid = b""

    def select(self, uid: bytes) -> None:
        """A card was activated: its UID is what AUTH carries from now on."""
        self.uid = uid

    def execute(self, apdu: bytes, exchange: Exchange) -> bytes:
        """The response APDU to one pseudo-APDU, running its MIFARE commands through ``exchange``."""
        try:
            command = parse_storage_command(apdu)
        except ProtocolError as exc:
            return _sw(FAILED if exc.sw is None else exc.sw)
        match command:
            case GetData():
                return self._get_data(command, exchange)
            case LoadKey():
                return self._load_key(command, exchange)
            case GeneralAuthenticate() | LegacyAuthenticate():
                return self._authenticate(command, exchange)
            case ReadBlock():
                return self._read(command, exchange)
            case UpdateBlock():
                return self._update(command, exchange)
            case ValueBlockOperation():
                return self._value(command, exchange)
            case RestoreValueBlock():
                return self._restore(command, exchange)
            case ReadValueBlock():
                return self._read_value(command, exchange)
            case _:
                assert_never(command)

    def _get_data(self, cmd: GetData, exchange: Exchange) -> bytes:
        if cmd.p1 != 0 or not self.uid:
            return _sw(NOT_SUPPORTED)  # p1 01 asks for the ATS, which a MIFARE Classic does not have
        uid, le = self.uid, cmd.le
        if le == 0 or le == len(uid):
            return uid + _OK
        return _sw(0x6C00 | len(uid)) if le < len(uid) else uid + _sw(END_REACHED)

    def _load_key(self, cmd: LoadKey, exchange: Exchange) -> bytes:
        if cmd.structure != 0 or cmd.number >= KEY_SLOTS:
            return _FAILED
        self.keys[cmd.number] = cmd.key
        return _OK

    def _authenticate(self, cmd: GeneralAuthenticate | LegacyAuthenticate, exchange: Exchange) -> bytes:
        key_type = _KEY_TYPES.get(cmd.key_type)
        key = self.keys[cmd.key_number] if cmd.key_number < KEY_SLOTS else None
        if key_type is None or key is None or len(self.uid) not in (4, 7):
            return _FAILED
        answer = exchange(MifareAuthenticate(key_type, cmd.block, key, auth_uid(self.uid)).to_bytes())
        return _OK if answer == ACK else _FAILED

    def _read(self, cmd: ReadBlock, exchange: Exchange) -> bytes:
        if cmd.le not in (0, BLOCK_SIZE):
            return _sw(0x6C00 | BLOCK_SIZE)
        answer = exchange(Read(cmd.block).to_bytes())
        return answer + _OK if len(answer) == BLOCK_SIZE else _FAILED

    def _update(self, cmd: UpdateBlock, exchange: Exchange) -> bytes:
        return _OK if exchange(Write(cmd.block, cmd.data).to_bytes()) == ACK else _FAILED

    def _value(self, cmd: ValueBlockOperation, exchange: Exchange) -> bytes:
        if cmd.operation == ValueOp.STORE:
            return self._update(UpdateBlock(cmd.block, ValueBlock(cmd.value, cmd.block).to_bytes()), exchange)
        if cmd.operation not in (ValueOp.INCREMENT, ValueOp.DECREMENT) or cmd.value < 0:
            return _FAILED
        operation = ValueOperation.INCREMENT if cmd.operation == ValueOp.INCREMENT else ValueOperation.DECREMENT
        return self._then_transfer(ValueCommand(operation, cmd.block, cmd.value), cmd.block, exchange)

    def _restore(self, cmd: RestoreValueBlock, exchange: Exchange) -> bytes:
        return self._then_transfer(ValueCommand(ValueOperation.RESTORE, cmd.source, 0), cmd.target, exchange)

    @staticmethod
    def _then_transfer(command: ValueCommand, target: int, exchange: Exchange) -> bytes:
        if exchange(command.to_bytes()) != ACK:
            return _FAILED
        return _OK if exchange(Transfer(target).to_bytes()) == ACK else _FAILED

    def _read_value(self, cmd: ReadValueBlock, exchange: Exchange) -> bytes:
        if cmd.le not in (0, 4):
            return _sw(0x6C04)
        answer = exchange(Read(cmd.block).to_bytes())
        try:
            value = ValueBlock.parse(answer)
        except ProtocolError:
            return _FAILED
        return value.value.to_bytes(4, "big", signed=True) + _OK


# --- the ATR a PC/SC reader shows ---------------------------------------------------------------------------------

_RID = bytes.fromhex("A000000306")  # PC/SC Workgroup
_ISO14443A_PART3 = 0x03
_CARD_NAMES = {1024: 0x0001, 4096: 0x0002, 320: 0x0026}  # MIFARE Classic 1K, 4K, Mini


def storage_atr(sak: int) -> bytes:
    """The ATR a PC/SC reader makes up for the MIFARE Classic a SAK announces (PC/SC part 3, storage cards):
    ``3B 8F 80 01 80 4F 0C`` RID ``03`` (ISO 14443 A part 3) card name ``00 00 00 00`` TCK; ``…00 01…6A`` for a 1K."""
    size = classic_size_from_sak(sak)
    if size is None:
        raise ProtocolError(f"SAK {sak:02X} does not announce a MIFARE Classic")
    historical = b"\x80\x4f\x0c" + _RID + bytes((_ISO14443A_PART3,)) + _CARD_NAMES[size].to_bytes(2, "big") + bytes(4)
    body = b"\x8f\x80\x01" + historical
    return b"\x3b" + body + bytes((reduce(xor, body, 0),))


def is_storage_atr(atr: bytes) -> bool:
    """Whether ``atr`` is the PC/SC part 3 ATR of a storage card on ISO 14443 A part 3 (a MIFARE Classic, say)."""
    return len(atr) == 20 and atr[:8] == b"\x3b\x8f\x80\x01\x80\x4f\x0c" + _RID[:1] and atr[8:12] == _RID[1:] \
        and atr[12] == _ISO14443A_PART3 and reduce(xor, atr[1:], 0) == 0


def storage_sak(atr: bytes) -> int | None:
    """The SAK of the MIFARE Classic a storage-card ATR names (1K, 4K, Mini), ``None`` for another card name or an
    ATR that is not a storage card's."""
    if not is_storage_atr(atr):
        return None
    name = int.from_bytes(atr[13:15], "big")
    size = next((size for size, code in _CARD_NAMES.items() if code == name), None)
    return None if size is None else CLASSIC_SAKS[size]
