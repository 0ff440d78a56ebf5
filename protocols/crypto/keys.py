"""Card-key diversification (分散): from a master key and the card's factors to the card's own key (spec §3.1).

One level, 8-byte factor F: ``DK = E(MK, F ‖ ~F)``. For 3DES that is ECB over two blocks, ``E(MK,F) ‖ E(MK,~F)``;
for SM4 it is one 16-byte block. Both come out as a 16-byte key of the master's kind.

Several levels: factors are given **lowest level first** (card serial, then issuer, then province), the order in
which a PSAM receives them in 801A and 8070, and applied highest level first:
``K_issuer = Div(MPK, issuer)``, ``DPK = Div(K_issuer, serial)``. That application order is what T-Union validators
imply and what the spec's end-to-end example uses; it is UNCONFIRMED against the JT/T 978 text.

Cost: each level makes one new key object, whose context is created only when that key is used. A PSAM that keeps
``K_issuer`` per issuer pays one context per card (the card key's, at its first use).
"""

from __future__ import annotations

from typing import TypeVar

from ..errors import ProtocolError
from .ciphers import Sm4Key, TdesKey, describe_length, require_bytes

# Bound to the union, not constrained to its members: a caller holding either kind (a key set's master) gets that
# union back, a caller holding one kind gets that kind.
MasterKey = TypeVar("MasterKey", bound=TdesKey | Sm4Key)

_INVERT = bytes(range(255, -1, -1))  # bytes.translate table: each byte to its bitwise NOT


def diversify(master: MasterKey, *factors: bytes) -> MasterKey:
    """The key of one card (or issuer) under ``master``; ``factors`` lowest level first, 8 bytes each."""
    if not isinstance(master, (TdesKey, Sm4Key)):
        raise ProtocolError(f"diversification needs a 16-byte 3DES or SM4 master key, got {type(master).__name__}")
    if not factors:
        raise ProtocolError("diversification needs at least one factor")
    key = master
    for factor in reversed(factors):
        require_bytes(factor, 8, "diversification factor")
        key = type(master)(key.encrypt(bytes(factor) + factor.translate(_INVERT)))
    return key


def serial_factor(app_serial: bytes) -> bytes:
    """The card-level factor: the last 8 bytes of the 10-byte application serial (file 0x15 bytes 10..19)."""
    if not isinstance(app_serial, (bytes, bytearray)) or len(app_serial) != 10:
        raise ProtocolError(f"application serial must be 10 bytes, got {describe_length(app_serial)}")
    return bytes(app_serial[2:])
