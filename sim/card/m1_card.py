"""The simulated MIFARE Classic 1K/4K card: its memory image, and the card answering MIFARE commands over it.

The unit is an authenticated block operation, as the commands arrive in a PN532's InDataExchange (Crypto1 on the air
is not modeled): ``60/61 block key uid`` (AUTH), ``30`` READ, ``A0`` WRITE, ``C0/C1/C2`` DECREMENT, INCREMENT,
RESTORE with a 4-byte operand, ``B0`` TRANSFER. What the card enforces, after NXP's MF1S50/MF1S70 datasheets:

* AUTH compares the key with the sector trailer's key A or B (and the UID the reader sends with the card's); a
  failed AUTH gets no answer and the card is silent until it is selected again (:meth:`M1Card.power_on`). A good
  AUTH opens its sector and ends any other; operations on a block of another sector are refused.
* Access bits per block and key (:class:`protocols.mifare.AccessConditions`): read, write, increment, and
  decrement/transfer/restore each for key A, key B, both or neither; key B that the trailer lets be read is data and
  grants nothing. Block 0 (manufacturer) is never written. A trailer reads key A as zeros and key B as zeros unless
  readable; a WRITE to a trailer changes only the parts the key may write (keys, access bits with the GPB) and is
  refused when it may write none, or when its access bits are malformed (a real card would lock the sector).
* Value operations need a well-formed value block (value three times, address four times); the result, kept with
  the source's address byte, goes to the transfer buffer (volatile), which TRANSFER writes to a block. The buffer
  lasts until the next value operation, AUTH or power-on. A result outside a signed 32-bit value is refused (the
  datasheet does not say what a card does: UNCONFIRMED).
* Answers: READ the 16 bytes; anything else that went through :data:`~protocols.mifare.ACK`; a refusal a one-byte
  NAK (:class:`~protocols.mifare.Nak`: invalid operation, with or without a valid transfer buffer).

``execute`` never raises; each WRITE and TRANSFER changes one block of the image, at once, so the image after any
command (or after a tear after any command) is one a real card can hold.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from protocols.errors import ProtocolError
from protocols.iso14443 import CLASSIC_SAKS, check_uid
from protocols.m1.layout import ISSUANCE_BLOCK, PURSE_BLOCK
from protocols.mifare import (
    ACK,
    BLOCK_SIZE,
    NO_ANSWER,
    AccessConditions,
    Authenticate,
    CardSize,
    Keys,
    KeyType,
    Nak,
    Read,
    Transfer,
    ValueBlock,
    ValueCommand,
    ValueOperation,
    Write,
    access_group,
    auth_uid,
    is_trailer,
    parse_command,
    sector_of,
    trailer_block,
)
from terminal.link import Activation

log = logging.getLogger(__name__)

_KEY_B = slice(10, 16)
_VALUE_LIMITS = (-0x8000_0000, 0x7FFF_FFFF)


def classic_atqa(uid: bytes, size: CardSize) -> bytes:
    """ATQA, most significant byte first: UID size in bits 8..7 (40: double), and 04 (1K, Mini) or 02 (4K) in bits
    5..1, as NXP cards answer (``00 04``, ``00 44``, ``00 02``, ``00 42``)."""
    return bytes((0x00, (0x40 if len(uid) == 7 else 0x00) | (0x02 if size is CardSize.K4 else 0x04)))


def classic_sak(size: CardSize) -> int:
    return CLASSIC_SAKS[size]


@dataclass(slots=True)
class M1Image:
    """What a MIFARE Classic keeps: its anticollision data and its memory, every trailer with its real keys.

    ``memory`` is the card's bytes, 16 per block (1024 for a 1K, 4096 for a 4K), changed in place by the card.
    """

    uid: bytes
    atqa: bytes
    sak: int
    memory: bytearray
    description: str = ""

    def __post_init__(self) -> None:
        check_uid(self.uid)
        if len(self.uid) == 10:
            raise ProtocolError("a MIFARE Classic has a 4- or 7-byte UID")
        if len(self.memory) not in (CardSize.K1, CardSize.K4):
            raise ProtocolError(f"a MIFARE Classic 1K or 4K holds 1024 or 4096 bytes, not {len(self.memory)}")

    @property
    def size(self) -> CardSize:
        return CardSize(len(self.memory))

    def block(self, number: int) -> bytes:
        return bytes(self.memory[BLOCK_SIZE * number:BLOCK_SIZE * (number + 1)])

    def set_block(self, number: int, data: bytes) -> None:
        if len(data) != BLOCK_SIZE or not 0 <= number < len(self.memory) // BLOCK_SIZE:
            raise ProtocolError(f"block {number}: {len(data)} bytes do not make a block of this card")
        self.memory[BLOCK_SIZE * number:BLOCK_SIZE * (number + 1)] = data

    def access(self, sector: int) -> AccessConditions:
        return AccessConditions.parse(self.block(trailer_block(sector, self.size))[6:9])


class M1Card:
    """A MIFARE Classic in software; implements :class:`sim.device.Device` with MIFARE commands for APDUs.

    ``internal_errors`` counts commands that hit a bug in the simulator (answered with a NAK and logged).
    """

    def __init__(self, image: M1Image) -> None:
        self.image = image
        self.internal_errors = 0
        self._activation = Activation("MIFARE", uid=image.uid, atqa=image.atqa, sak=image.sak)
        self._auth_uid = auth_uid(image.uid)
        self._selected = False  # answering (selected); False before power-on and after a failed AUTH
        self._sector: int | None = None  # the authenticated sector
        self._key: KeyType | None = None
        self._buffer: ValueBlock | None = None  # the transfer buffer

    # --- Device -----------------------------------------------------------------------------------------------------

    def power_on(self) -> Activation:
        """Enter the field and be selected: authentication and the transfer buffer are lost."""
        self._selected = True
        self._sector = self._key = self._buffer = None
        return self._activation

    def execute(self, command: bytes) -> bytes:
        """Answer one MIFARE command (see the module notes); never raises."""
        if not self._selected:
            return NO_ANSWER
        try:
            try:
                parsed = parse_command(bytes(command))
            except ProtocolError:
                return self._nak()
            return _HANDLERS[type(parsed)](self, parsed)
        except Exception:  # the device contract: an answer for anything; a bug is counted and logged, not raised
            self.internal_errors += 1
            log.exception("simulated MIFARE Classic: internal error on %s", bytes(command[:2]).hex().upper())
            return self._nak()

    # --- state ------------------------------------------------------------------------------------------------------

    @property
    def serial(self) -> bytes:
        """The purse's card number (block 4: city, industry, issuer serial), as a CPU card's serial is shown."""
        return self.image.block(ISSUANCE_BLOCK)[:8]

    @property
    def balance(self) -> int | None:
        """The purse (block 9) in fen; ``None`` when the block is not a value block."""
        try:
            return ValueBlock.parse(self.image.block(PURSE_BLOCK)).value
        except ProtocolError:
            return None

    @property
    def authenticated(self) -> tuple[int, KeyType] | None:
        """The open sector and the key it was opened with."""
        return None if self._sector is None or self._key is None else (self._sector, self._key)

    def _nak(self) -> bytes:
        return bytes((Nak.INVALID_OPERATION if self._buffer is not None else Nak.INVALID_OPERATION_NO_BUFFER,))

    def _holder(self, block: int) -> Keys | None:
        """The key the open sector was authenticated with, when ``block`` is in it; ``None`` otherwise."""
        size = self.image.size
        if not 0 <= block < size.blocks or self._sector != sector_of(block, size) or self._key is None:
            return None
        return Keys.A if self._key is KeyType.A else Keys.B

    # --- commands ---------------------------------------------------------------------------------------------------

    def _authenticate(self, cmd: Authenticate) -> bytes:
        image = self.image
        self._sector = self._key = self._buffer = None
        if cmd.block >= image.size.blocks or cmd.uid != self._auth_uid:
            self._selected = False
            return NO_ANSWER
        sector = sector_of(cmd.block, image.size)
        trailer = image.block(trailer_block(sector, image.size))
        stored = trailer[0:6] if cmd.key_type is KeyType.A else trailer[_KEY_B]
        if stored != cmd.key:
            self._selected = False
            return NO_ANSWER
        self._sector, self._key = sector, cmd.key_type
        return ACK

    def _read(self, cmd: Read) -> bytes:
        holder = self._holder(cmd.block)
        if holder is None:
            return self._nak()
        image = self.image
        block = image.block(cmd.block)
        access = image.access(sector_of(cmd.block, image.size))  # the authenticated sector
        if is_trailer(cmd.block, image.size):
            rights = access.trailer_rights()
            access_bytes = block[6:10] if rights.access_read & holder else bytes(4)
            key_b = block[_KEY_B] if rights.key_b_read & holder else bytes(6)
            return bytes(6) + access_bytes + key_b
        if not access.data_rights(access_group(cmd.block, image.size)).read & holder:
            return self._nak()
        return block

    def _write(self, cmd: Write) -> bytes:
        holder = self._holder(cmd.block)
        if holder is None or cmd.block == 0:
            return self._nak()
        image = self.image
        access = image.access(sector_of(cmd.block, image.size))  # the authenticated sector
        if is_trailer(cmd.block, image.size):
            return self._write_trailer(cmd, access, holder)
        if not access.data_rights(access_group(cmd.block, image.size)).write & holder:
            return self._nak()
        image.set_block(cmd.block, cmd.data)
        return ACK

    def _write_trailer(self, cmd: Write, access: AccessConditions, holder: Keys) -> bytes:
        rights = access.trailer_rights()
        parts = ((slice(0, 6), rights.key_a_write), (slice(6, 10), rights.access_write), (_KEY_B, rights.key_b_write))
        allowed = [where for where, keys in parts if keys & holder]
        if not allowed:
            return self._nak()
        new = bytearray(self.image.block(cmd.block))
        for where in allowed:
            new[where] = cmd.data[where]
        try:
            AccessConditions.parse(bytes(new[6:9]))
        except ProtocolError:
            return self._nak()
        self.image.set_block(cmd.block, bytes(new))
        return ACK

    def _value(self, cmd: ValueCommand) -> bytes:
        holder = self._holder(cmd.block)
        image = self.image
        self._buffer = None
        if holder is None or is_trailer(cmd.block, image.size):
            return self._nak()
        rights = image.access(sector_of(cmd.block, image.size)).data_rights(access_group(cmd.block, image.size))
        allowed = rights.increment if cmd.operation is ValueOperation.INCREMENT else rights.decrement
        if not allowed & holder:
            return self._nak()
        try:
            source = ValueBlock.parse(image.block(cmd.block))
        except ProtocolError:
            return self._nak()
        if cmd.operation is ValueOperation.INCREMENT:
            value = source.value + cmd.operand
        elif cmd.operation is ValueOperation.DECREMENT:
            value = source.value - cmd.operand
        else:
            value = source.value
        if not _VALUE_LIMITS[0] <= value <= _VALUE_LIMITS[1]:
            return self._nak()
        self._buffer = ValueBlock(value, source.address)
        return ACK

    def _transfer(self, cmd: Transfer) -> bytes:
        holder = self._holder(cmd.block)
        image = self.image
        if holder is None or self._buffer is None or is_trailer(cmd.block, image.size) or cmd.block == 0:
            return self._nak()
        rights = image.access(sector_of(cmd.block, image.size)).data_rights(access_group(cmd.block, image.size))
        if not rights.decrement & holder:
            return self._nak()
        image.set_block(cmd.block, self._buffer.to_bytes())
        return ACK


_HANDLERS: dict[type, Callable[..., bytes]] = {
    Authenticate: M1Card._authenticate,
    Read: M1Card._read,
    Write: M1Card._write,
    ValueCommand: M1Card._value,
    Transfer: M1Card._transfer,
}

