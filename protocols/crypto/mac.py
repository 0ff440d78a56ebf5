"""PBOC MACs: single-DES CBC-MAC, ISO 9797-1 algorithm 3 (retail MAC), SM4 CBC-MAC, and the line-protection MAC.

The key's type picks the algorithm, as a card or PSAM does from the key's length and kind:

* :class:`DesKey` (8 bytes: session keys, the TAC key): DES CBC over every block;
* :class:`TdesKey` (16 bytes: maintenance and line-protection keys): DES CBC under K_L over all but the last block,
  then 3DES on the last, i.e. ISO/IEC 9797-1 MAC algorithm 3;
* :class:`Sm4Key`: SM4 CBC with 16-byte blocks. The SM4 MAC (IV of 16 zero bytes, padding to 16-byte blocks, left
  4 bytes kept) is the plausible reading, UNCONFIRMED against a real card: ``iv`` and :func:`mac_block` let a caller
  try another IV or truncation.

The data is padded with ISO/IEC 9797-1 method 2 unless ``pad=False`` (80FA callers that pad themselves, test
vectors without padding). The MAC a purse command carries is the left 4 bytes; :func:`mac_block` gives the whole
last block, since 80FA may answer 8 bytes.
"""

from __future__ import annotations

import hmac

from ..errors import ProtocolError
from . import padding
from .ciphers import BlockKey, TdesKey, describe_length


def mac_block(key: BlockKey, data: bytes, *, iv: bytes | None = None, pad: bool = True) -> bytes:
    """The full last block of the MAC of ``data`` (8 bytes for DES/3DES keys, 16 for SM4); IV zeros unless given."""
    if pad:
        data = padding.pad(data, key.block_size)
    if not isinstance(key, TdesKey):
        return key.cbc_last(data, iv)
    if not isinstance(data, (bytes, bytearray)) or not data or len(data) % 8:
        raise ProtocolError(f"retail MAC input must be a positive multiple of 8 bytes, got {describe_length(data)}")
    if len(data) > 8:
        iv = key.left.cbc_last(data[:-8], iv)
    return key.cbc_last(data[-8:], iv)


def pboc_mac(key: BlockKey, data: bytes, *, iv: bytes | None = None, pad: bool = True) -> bytes:
    """The 4-byte MAC PBOC commands carry: the left 4 bytes of :func:`mac_block`."""
    return mac_block(key, data, iv=iv, pad=pad)[:4]


def line_protection_mac(key: TdesKey, challenge: bytes, command: bytes) -> bytes:
    """The MAC that protects a command such as APPLICATION BLOCK (spec §3.6).

    ``challenge`` is the card's GET CHALLENGE answer (4 bytes, zero-extended to the IV, or 8); ``command`` is what the
    MAC covers, the APDU header and Lc (``84 1E 00 00 04``). ``key`` is the card's diversified maintenance key.
    """
    if not isinstance(key, TdesKey):
        raise ProtocolError(f"line-protection MAC needs a 16-byte 3DES key, got {type(key).__name__}")
    if not isinstance(challenge, (bytes, bytearray)) or len(challenge) not in (4, 8):
        raise ProtocolError(f"line-protection challenge must be 4 or 8 bytes, got {describe_length(challenge)}")
    return pboc_mac(key, command, iv=bytes(challenge).ljust(8, b"\0"))


def macs_equal(expected: bytes, received: bytes) -> bool:
    """Compare MACs or TACs in constant time, as a check of a presented MAC should."""
    if not isinstance(expected, (bytes, bytearray)) or not isinstance(received, (bytes, bytearray)):
        raise ProtocolError("MAC comparison needs bytes on both sides")
    return hmac.compare_digest(expected, received)
