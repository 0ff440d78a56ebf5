"""MIFARE Classic through a PN532: authenticate, read, write and value operations as InDataExchange commands.

The chip runs Crypto1: the host sends ``60/61 block key uid`` once per sector and then plain commands
(:mod:`protocols.mifare` builds them). A failed authentication halts the card (the chip answers status ``14``,
raised as :class:`~terminal.drivers.pn532.MifareAuthError`); activate it again before the next try.

Sector trailers hold the keys and the access bits, and a wrong trailer locks its sector for good, so a trailer is
written only with :meth:`MifareClassic.write_trailer` from a :class:`~protocols.mifare.SectorTrailer`, never as
raw bytes.
"""

from __future__ import annotations

from protocols.errors import ProtocolError
from protocols.mifare import (
    BLOCK_SIZE,
    SECTOR_TRAILER,
    Authenticate,
    CardSize,
    KeyType,
    Read,
    SectorTrailer,
    Transfer,
    ValueBlock,
    ValueCommand,
    ValueOperation,
    Write,
    auth_uid,
    is_trailer,
    trailer_block,
)

from .pn532 import Pn532Link


class MifareClassic:
    """The MIFARE Classic that ``link`` has activated. ``timeout`` is each command's (the link adds the card's
    minimum). Block numbers are checked against the size the SAK announces."""

    def __init__(self, link: Pn532Link, *, timeout: float = 0.1) -> None:
        activation = link.activation
        if activation is None or activation.sak is None:
            raise ProtocolError(f"{link.name}: no card is activated")
        self.link = link
        self.timeout = timeout
        self.size = CardSize.from_sak(activation.sak)
        self.uid = auth_uid(activation.uid)

    def _run(self, command: bytes) -> bytes:
        return self.link.exchange(command, self.timeout)

    def _done(self, command: bytes, what: str) -> None:
        answer = self._run(command)
        if answer:
            raise ProtocolError(f"MIFARE {what}: expected no data, got {answer.hex().upper()}")

    def _block(self, block: int) -> int:
        is_trailer(block, self.size)  # raises ProtocolError outside the card
        return block

    def authenticate(self, block: int, key: bytes, key_type: KeyType = KeyType.A) -> None:
        """Authenticate the sector of ``block`` with a 6-byte key."""
        self._done(Authenticate(key_type, self._block(block), key, self.uid).to_bytes(), "AUTH")

    def read_block(self, block: int) -> bytes:
        data = self._run(Read(self._block(block)).to_bytes())
        if len(data) != BLOCK_SIZE:
            raise ProtocolError(f"MIFARE READ {block}: {len(data)} bytes, a block has {BLOCK_SIZE}")
        return data

    def write_block(self, block: int, data: bytes) -> None:
        """Write a data block (16 bytes); trailers go through :meth:`write_trailer`."""
        if is_trailer(block, self.size):
            raise ProtocolError(f"block {block} is a sector trailer: use write_trailer")
        self._done(Write(block, data).to_bytes(), f"WRITE {block}")

    def read_trailer(self, sector: int) -> SectorTrailer:
        """The trailer as the card reads it back (key A as zeros, key B as zeros unless readable)."""
        return SECTOR_TRAILER.parse(self.read_block(trailer_block(sector, self.size)))

    def write_trailer(self, sector: int, trailer: SectorTrailer) -> None:
        block = trailer_block(sector, self.size)
        self._done(Write(block, SECTOR_TRAILER.build(trailer)).to_bytes(), f"WRITE trailer {block}")

    def read_value(self, block: int) -> ValueBlock:
        return ValueBlock.parse(self.read_block(block))

    def write_value(self, block: int, value: int, address: int | None = None) -> None:
        """Format ``block`` as a value block (``address`` defaults to the block number)."""
        self.write_block(block, ValueBlock(value, block if address is None else address).to_bytes())

    def _value(self, operation: ValueOperation, block: int, operand: int, to: int | None) -> None:
        self._done(ValueCommand(operation, self._block(block), operand).to_bytes(), operation.name)
        self.transfer(block if to is None else to)

    def increment(self, block: int, amount: int, *, to: int | None = None) -> None:
        """Add ``amount`` to a value block and store the result in ``to`` (default: the same block)."""
        self._value(ValueOperation.INCREMENT, block, amount, to)

    def decrement(self, block: int, amount: int, *, to: int | None = None) -> None:
        self._value(ValueOperation.DECREMENT, block, amount, to)

    def restore(self, block: int, *, to: int) -> None:
        """Copy a value block to ``to`` (RESTORE then TRANSFER): how a backup copy of a purse is kept."""
        self._value(ValueOperation.RESTORE, block, 0, to)

    def transfer(self, block: int) -> None:
        self._done(Transfer(self._block(block)).to_bytes(), f"TRANSFER {block}")
