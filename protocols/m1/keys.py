"""Per-card, per-sector M1 keys: from a sector master key and the card's UID, by a documented, configurable rule.

The rule (:class:`KeyRule`): for sector ``s`` of the card with (authentication) UID ``u`` (4 bytes; the last four of a
7-byte UID, as AUTH takes them), the key is the left 6 bytes of the card key diversified from the master by the
factor ``u ‖ s ‖ C``, where ``C`` is a 3-byte constant of the issuer's (default ``000000``)::

    key = left6( E(master, u ‖ s ‖ C) )        3DES: two-key EDE on one block
    key = left6( SM4(master, F ‖ ~F) )          SM4, F = u ‖ s ‖ C (the SM4 diversification of spec §3.1)

i.e. :func:`protocols.crypto.diversify` with that factor, which is the same operation a PSAM runs for CPU cards.
Key A and key B come from masters of their own (key-set usages ``m1_key_a`` and ``m1_key_b``). Which master version
keys a sector: sectors 0 and 1 (directory, issuance) always the rule's ``issuance_version``, since the card's key
version is read from sector 1; sectors 2 and up the key version in block 4. Sector 0's key A is the public
``A0A1A2A3A4A5`` (the directory is read with it, as MIFARE's application directory convention and the Tianjin
validator do).

Real cities use other rules (the Tianjin validator derives keys from the UID, the issuer code, the auth code and the
directory byte of each sector, or asks its PSAM); a different rule is a different :class:`KeyRule`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..crypto import CardKey, diversify
from ..errors import ProtocolError
from ..mifare import KEY_SIZE, KeyType, auth_uid

PUBLIC_KEY_A = bytes.fromhex("A0A1A2A3A4A5")
"""Sector 0's key A: public, so anyone can read the sector directory."""
DIRECTORY_SECTOR = 0
ISSUANCE_SECTOR = 1


@dataclass(frozen=True, slots=True)
class KeyRule:
    """How a card's sector keys come from the masters: ``issuance_version`` keys sectors 0 and 1, ``constant`` ends
    every factor."""

    issuance_version: int = 0x01
    constant: bytes = bytes(3)

    def __post_init__(self) -> None:
        if not isinstance(self.issuance_version, int) or not 0 <= self.issuance_version <= 0xFF:
            raise ProtocolError("M1 key rule: issuance_version is one byte")
        if not isinstance(self.constant, bytes) or len(self.constant) != 3:
            raise ProtocolError("M1 key rule: the constant is 3 bytes")

    def version(self, sector: int, card_version: int) -> int:
        """The master version that keys ``sector`` of a card whose block 4 names ``card_version``."""
        return self.issuance_version if sector <= ISSUANCE_SECTOR else card_version

    def factor(self, uid: bytes, sector: int) -> bytes:
        """``u ‖ s ‖ C``, 8 bytes."""
        if not isinstance(sector, int) or not 0 <= sector <= 0xFF:
            raise ProtocolError(f"M1 key rule: sector {sector!r} is not a byte")
        return auth_uid(uid) + bytes((sector,)) + self.constant

    def key(self, master: CardKey, uid: bytes, sector: int, key_type: KeyType) -> bytes:
        """The 6-byte key of ``sector`` (``key_type`` A or B) of the card with ``uid``, under ``master`` (the master
        of that key type and of :meth:`version`)."""
        if sector == DIRECTORY_SECTOR and key_type is KeyType.A:
            return PUBLIC_KEY_A
        factor = self.factor(uid, sector)
        key = diversify(master, factor)
        return key.export()[:KEY_SIZE]
