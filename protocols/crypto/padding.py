"""ISO/IEC 9797-1 padding method 2, the PBOC MAC padding: append ``80``, then ``00`` bytes to a whole block.

The ``80`` is always appended, even to data that already fills whole blocks, so padding is reversible and a MAC
over ``x`` never equals a MAC over ``x ‖ 80``.
"""

from __future__ import annotations

from ..errors import ProtocolError
from .ciphers import describe_length

_TAILS = tuple(b"\x80" + bytes(n) for n in range(16))  # _TAILS[n]: 80 then n zeros; 16 covers SM4 blocks


def pad(data: bytes, block: int = 8) -> bytes:
    """``data ‖ 80 ‖ 00…`` up to a multiple of ``block`` (8: DES/3DES, 16: SM4); adds 1 to ``block`` bytes."""
    if type(data) is not bytes:
        if not isinstance(data, bytearray):
            raise ProtocolError(f"padding: data must be bytes, got {describe_length(data)}")
        data = bytes(data)
    if not 0 < block <= len(_TAILS):
        raise ProtocolError(f"padding: block size must be 1 to {len(_TAILS)}, got {block}")
    return data + _TAILS[block - 1 - len(data) % block]


def unpad(data: bytes, block: int = 8) -> bytes:
    """Undo :func:`pad`; data that is not whole blocks ending in ``80 00…`` (under one block of it) is refused."""
    if not 0 < block <= len(_TAILS):
        raise ProtocolError(f"unpadding: block size must be 1 to {len(_TAILS)}, got {block}")
    if not isinstance(data, (bytes, bytearray)) or not data or len(data) % block:
        raise ProtocolError(f"unpadding: expected a positive multiple of {block} bytes, got {describe_length(data)}")
    body = bytes(data).rstrip(b"\0")
    if not body.endswith(b"\x80") or len(data) - len(body) >= block:
        raise ProtocolError("unpadding: data does not end with ISO 9797-1 method 2 padding (80 00…)")
    return body[:-1]
