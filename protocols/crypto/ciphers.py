"""Block-cipher keys that own their cipher contexts: single DES, two-key 3DES and SM4.

Why objects and not functions of raw key bytes: creating a ``cryptography`` cipher context costs about ten times
as much as pushing a block through an existing one, and a purse transaction is only a handful of blocks. A key
object creates each context it needs on first use and keeps it, so a master key serves thousands of
diversifications with one context, and a session key made for one transaction costs exactly one context (its
CBC-MAC chain). Contexts per key object, at most:

* ECB encryptor: ``encrypt`` (diversification, session-key derivation, 80FA encryption, the key check value);
* CBC encryptor: ``cbc_last`` (every MAC);
* ECB decryptor: ``decrypt`` (rare; 80FA decryption).

The raw key lives only inside its object (no process-wide cache); ``repr``/``str`` show a key check value instead.
A key object is not thread-safe: it belongs to one holder (a card, a PSAM, one worker thread).
"""

from __future__ import annotations

from typing import Any, ClassVar

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.ciphers import Cipher, CipherAlgorithm, algorithms, modes

try:  # cryptography >= 43 keeps TripleDES here; importing it does not warn.
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
except ImportError:  # older releases only have it beside the modern algorithms
    from cryptography.hazmat.primitives.ciphers.algorithms import (  # type: ignore[attr-defined,no-redef,unused-ignore]
        TripleDES,
    )

from ..errors import ProtocolError, YktError
from ..hexutil import to_hex

_BYTES = (bytes, bytearray)
_ECB = modes.ECB()
_CBC_FROM_ZERO = {8: modes.CBC(bytes(8)), 16: modes.CBC(bytes(16))}  # mode objects are immutable: one serves all


def describe_length(value: object) -> str:
    """``"5 bytes"`` for bytes-like values, the type name otherwise: error messages never quote the content."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"{len(value)} bytes"
    return type(value).__name__


def require_bytes(value: Any, length: int, what: str) -> bytes:
    """``value`` if it is ``length`` bytes (a bytearray as bytes), else a :class:`ProtocolError` naming ``what``
    (never the bytes)."""
    if type(value) is bytes and len(value) == length:
        return value
    if isinstance(value, bytearray) and len(value) == length:
        return bytes(value)
    raise ProtocolError(f"{what} must be {length} bytes, got {describe_length(value)}")


class BlockKey:
    """A secret key and the cipher contexts made from it; subclasses name the algorithm and the sizes."""

    __slots__ = ("_key", "_ecb", "_dec", "_cbc", "_chain")
    key_size: ClassVar[int]
    block_size: ClassVar[int]

    def __init__(self, key: bytes) -> None:
        if type(key) is not bytes or len(key) != self.key_size:
            key = bytes(require_bytes(key, self.key_size, f"{type(self).__name__} key"))
        self._key = key
        self._ecb: Any = None
        self._dec: Any = None
        self._cbc: Any = None
        self._chain = 0  # last block the CBC context produced, as an int (see cbc_last)

    def _algorithm(self) -> CipherAlgorithm:
        raise NotImplementedError

    def _context(self, mode: modes.Mode, *, decrypt: bool = False) -> Any:
        try:
            cipher: Cipher[Any] = Cipher(self._algorithm(), mode)
        except UnsupportedAlgorithm:
            raise YktError(f"{type(self).__name__}: the cipher is not available in this OpenSSL build") from None
        return cipher.decryptor() if decrypt else cipher.encryptor()

    def _refuse(self, data: Any, what: str) -> ProtocolError:
        """The error for ``data`` that is not whole blocks (built only on the error path)."""
        name = type(self).__name__
        if not isinstance(data, (bytes, bytearray)):
            return ProtocolError(f"{name} {what} must be bytes, got {describe_length(data)}")
        return ProtocolError(f"{name} {what} must be a positive multiple of {self.block_size} bytes, got {len(data)}")

    def encrypt(self, data: bytes) -> bytes:
        """ECB encryption of whole blocks (usually one: a session-key input, a diversification factor pair)."""
        if not isinstance(data, _BYTES) or not data or len(data) % self.block_size:
            raise self._refuse(data, "plaintext")
        if self._ecb is None:
            self._ecb = self._context(_ECB)
        return self._ecb.update(data)

    def decrypt(self, data: bytes) -> bytes:
        """ECB decryption of whole blocks."""
        if not isinstance(data, _BYTES) or not data or len(data) % self.block_size:
            raise self._refuse(data, "ciphertext")
        if self._dec is None:
            self._dec = self._context(_ECB, decrypt=True)
        return self._dec.update(data)

    def cbc_last(self, data: bytes, iv: bytes | None = None) -> bytes:
        """The last block of the CBC encryption of ``data`` (whole blocks) from ``iv`` (zeros if None): a CBC-MAC.

        One CBC context serves every chain. It keeps chaining across calls, so the first block of a new chain is fed
        XORed with the previous chain's last block as well as the IV, which cancels the carried-over state; the whole
        chain then goes through in a single call, cheaper than one ECB call per block.
        """
        bs = self.block_size
        if not isinstance(data, _BYTES) or not data or len(data) % bs:
            raise self._refuse(data, "MAC input")
        chain = self._chain
        if iv is not None:
            chain ^= int.from_bytes(require_bytes(iv, bs, f"{type(self).__name__} IV"), "big")
        if chain:  # zero on a fresh context with a zero IV: the data goes in as it is
            data = (int.from_bytes(data[:bs], "big") ^ chain).to_bytes(bs, "big") + data[bs:]
        cbc = self._cbc
        if cbc is None:
            cbc = self._cbc = self._context(_CBC_FROM_ZERO[bs])
        last = cbc.update(data)[-bs:]
        self._chain = int.from_bytes(last, "big")
        return last

    def check_value(self) -> bytes:
        """Key check value: the first 3 bytes of the key's encryption of a zero block (safe to show)."""
        return self.encrypt(bytes(self.block_size))[:3]

    def export(self) -> bytes:
        """The raw key, for a key store or a test; never for logs, traces or messages."""
        return self._key

    def __repr__(self) -> str:
        return f"{type(self).__name__}(kcv={to_hex(self.check_value())})"

    def __reduce__(self) -> tuple[type[BlockKey], tuple[bytes]]:
        # copy/deepcopy/pickle rebuild from the key, so a copy never shares a context (and its chain) with the original
        return type(self), (self._key,)


class DesKey(BlockKey):
    """Single DES (8-byte key): the purse session keys and the 3DES TAC key. Runs as TripleDES with K‖K‖K."""

    __slots__ = ()
    key_size = 8
    block_size = 8

    def _algorithm(self) -> CipherAlgorithm:
        return TripleDES(self._key * 3)


class TdesKey(BlockKey):
    """Two-key 3DES EDE (16-byte key K_L‖K_R): card master and diversified keys, line-protection keys."""

    __slots__ = ("_left",)
    key_size = 16
    block_size = 8

    def __init__(self, key: bytes) -> None:
        super().__init__(key)
        self._left: DesKey | None = None

    def _algorithm(self) -> CipherAlgorithm:
        return TripleDES(self._key + self._key[:8])  # K1‖K2‖K1: 16-byte TripleDES keys are deprecated

    @property
    def left(self) -> DesKey:
        """Single DES under K_L, made once: the retail MAC chains all but its last block with it."""
        if self._left is None:
            self._left = DesKey(self._key[:8])
        return self._left

    def xor_halves(self) -> DesKey:
        """K_L ⊕ K_R as a single-DES key: how a 3DES card turns its DTK into the TAC key."""
        folded = int.from_bytes(self._key[:8], "big") ^ int.from_bytes(self._key[8:], "big")
        return DesKey(folded.to_bytes(8, "big"))


class Sm4Key(BlockKey):
    """SM4 (GB/T 32907), 16-byte key and block: the 国密 variant of the card keys and session keys."""

    __slots__ = ()
    key_size = 16
    block_size = 16

    def _algorithm(self) -> CipherAlgorithm:
        return algorithms.SM4(self._key)
