"""The purse transaction cryptography: session keys, MAC1, MAC2 and TAC for purchase and load (spec §3.2, §3.4).

Amounts, balances, counters and the transaction type are integers; the card random, terminal number and BCD
date-time are the bytes that travel in the APDUs. The key's type selects 3DES or SM4, and the algorithm-id byte of
the INITIALIZE response selects the key (:func:`algorithm_for`).

Cipher contexts created per purchase (the floor a benchmark compares against; see :mod:`.ciphers`):

* card: 1, the session key's CBC context (MAC1 check, MAC2). Its DPK and TAC key are made once per card;
* PSAM: 2, the card's DPK (one diversification from a ``K_issuer`` kept per issuer; its ECB context derives the
  session key) and the session key's CBC context (MAC1, MAC2 check); 3 if it diversifies from MPK every time.

SM4 details marked UNCONFIRMED below are the plausible readings, each a parameter, until a real SM4 exchange is
captured.
"""

from __future__ import annotations

import enum
import struct

from ..errors import ProtocolError
from .ciphers import DesKey, Sm4Key, TdesKey, require_bytes
from .padding import pad

CardKey = TdesKey | Sm4Key
"""A card's DPK, DLK or DTK: 16-byte two-key 3DES or SM4."""
SessionKey = DesKey | Sm4Key
"""A process key (过程密钥) or TAC key: single DES for 3DES cards, SM4 for SM4 cards."""

ALG_ID_TDES = 0x00
"""Algorithm id of 3DES cards in the INITIALIZE response (the only value observed)."""
ALG_ID_SM4 = 0x04
"""Algorithm id commonly cited for SM4. UNCONFIRMED, so :func:`algorithm_for` takes it as a parameter."""

SM4_PURCHASE_PAD = b"\x80" + bytes(7)
"""UNCONFIRMED: what extends the 8-byte purchase session input to an SM4 block. The 3DES load input
(random ‖ ATC ‖ ``80 00``) reads as 6 bytes padded with ``80 00…``; the same rule applied to a 16-byte block gives
this value for purchase and :data:`SM4_LOAD_PAD` for load."""
SM4_LOAD_PAD = bytes(8)
"""UNCONFIRMED: what extends the 8-byte load session input (already ending ``80 00``) to an SM4 block."""


class Algorithm(enum.Enum):
    """The card-key algorithm a transaction runs under."""

    TDES = "3DES"
    SM4 = "SM4"

    @property
    def key_type(self) -> type[TdesKey] | type[Sm4Key]:
        return TdesKey if self is Algorithm.TDES else Sm4Key

    def key(self, raw: bytes) -> CardKey:
        """A master or card key of this algorithm from its 16 raw bytes."""
        return self.key_type(raw)

    def alg_id(self, *, sm4_id: int = ALG_ID_SM4) -> int:
        """The byte a card of this algorithm puts in its INITIALIZE response."""
        return ALG_ID_TDES if self is Algorithm.TDES else sm4_id


def algorithm_for(alg_id: int, *, sm4_id: int = ALG_ID_SM4) -> Algorithm:
    """The algorithm named by the algorithm-id byte of an INITIALIZE response (echoed to the PSAM in 8070)."""
    if alg_id == ALG_ID_TDES:
        return Algorithm.TDES
    if alg_id == sm4_id:
        return Algorithm.SM4
    shown = f"{alg_id:02X}" if isinstance(alg_id, int) else repr(alg_id)
    raise ProtocolError(f"algorithm id {shown} is neither 3DES ({ALG_ID_TDES:02X}) nor SM4 ({sm4_id:02X})")


class _Input:
    """One fixed input of spec §3.4: its :mod:`struct` layout, and for a MAC the ISO 9797-1 method 2 padding of its
    size for each block size, worked out once (:func:`~protocols.crypto.padding.pad` of that many bytes), so a MAC is
    the packed values, the tail and one CBC call. Lengths of the byte fields are checked by hand: struct's ``"Ns"``
    would silently pad or cut them."""

    __slots__ = ("_layout", "_what", "_tails")

    def __init__(self, layout: str, what: str) -> None:
        self._layout = struct.Struct(layout)
        self._what = what
        size = self._layout.size
        self._tails = {block: pad(bytes(size), block)[size:] for block in (8, 16)}  # DES/3DES, SM4

    def pack(self, *values: object) -> bytes:
        try:
            return self._layout.pack(*values)
        except struct.error:
            raise self._refused() from None

    def _refused(self) -> ProtocolError:
        return ProtocolError(f"{self._what}: a number is out of range or not an integer "
                             "(amounts, balances and TSN 0..FFFFFFFF, ATC 0..FFFF, type 0..FF)")

    def mac(self, key: SessionKey, *values: object, iv: bytes | None) -> bytes:
        """The 4-byte MAC a purse command carries, under a session key or a TAC key: a plain CBC-MAC over the values
        padded, the single-DES case of :func:`~protocols.crypto.mac.pboc_mac` (no retail MAC here: these keys are
        never two-key 3DES)."""
        if isinstance(key, TdesKey):
            raise ProtocolError("purse MACs are made under a single-DES or SM4 session or TAC key, "
                                "not a 16-byte 3DES key")
        try:
            data = self._layout.pack(*values)
        except struct.error:
            raise self._refused() from None
        return key.cbc_last(data + self._tails[key.block_size], iv)[:4]


_PURCHASE_SK = _Input(">4sHH", "purchase session input")            # random, offline ATC, TSN low 2 bytes
_LOAD_SK = _Input(">4sH2s", "load session input")                   # random, online ATC, 80 00
_PURCHASE_MAC1 = _Input(">IB6s7s", "purchase MAC1 input")           # amount, type, terminal, date-time
_LOAD_MAC2 = _Input(">IB6s7s", "load MAC2 input")                   # the same fields
_PURCHASE_MAC2 = _Input(">I", "purchase MAC2 input")                # amount
_PURCHASE_TAC = _Input(">IB6sI7s", "purchase TAC input")            # amount, type, terminal, TSN, date-time
_LOAD_MAC1 = _Input(">IIB6s", "load MAC1 input")                    # old balance, amount, type, terminal
_LOAD_TAC = _Input(">IHIB6s7s", "load TAC input")  # new balance, online ATC before the load, then as MAC1's


def _terminal(value: bytes) -> bytes:
    return require_bytes(value, 6, "terminal number")


def _when(value: bytes) -> bytes:
    return require_bytes(value, 7, "date-time (BCD YYYYMMDDhhmmss)")


def _terminal_and_when(terminal: bytes, when: bytes) -> None:
    """The terminal number and the BCD date-time must be 6 and 7 bytes (struct would pad or cut them silently)."""
    if type(terminal) is not bytes or len(terminal) != 6 or type(when) is not bytes or len(when) != 7:
        _terminal(terminal)
        _when(when)


def _session_key(card_key: CardKey, block: bytes, sm4_pad: bytes) -> SessionKey:
    if isinstance(card_key, TdesKey):
        return DesKey(card_key.encrypt(block))
    if isinstance(card_key, Sm4Key):
        return Sm4Key(card_key.encrypt(block + require_bytes(sm4_pad, 8, "SM4 session-key padding")))
    raise ProtocolError(f"session keys come from a 16-byte 3DES or SM4 card key, got {type(card_key).__name__}")


def purchase_session_key(dpk: CardKey, random: bytes, atc: int, tsn: int, *,
                         sm4_pad: bytes = SM4_PURCHASE_PAD) -> SessionKey:
    """Purchase process key: ``E(DPK, random ‖ offline ATC ‖ TSN low 2 bytes)``.

    3DES: the 8-byte result is a single-DES key. SM4: the input is extended with ``sm4_pad`` (UNCONFIRMED, see
    :data:`SM4_PURCHASE_PAD`) and the 16-byte result is the SM4 session key.
    """
    if not isinstance(tsn, int) or not 0 <= tsn <= 0xFFFFFFFF:
        raise ProtocolError(f"TSN must be an integer 0..FFFFFFFF, got {tsn!r}")
    block = _PURCHASE_SK.pack(require_bytes(random, 4, "card random"), atc, tsn & 0xFFFF)
    return _session_key(dpk, block, sm4_pad)


def load_session_key(dlk: CardKey, random: bytes, atc: int, *, sm4_pad: bytes = SM4_LOAD_PAD) -> SessionKey:
    """Load process key: ``E(DLK, random ‖ online ATC ‖ 80 00)``.

    SM4 extends the input with ``sm4_pad`` (UNCONFIRMED, see :data:`SM4_LOAD_PAD`).
    """
    block = _LOAD_SK.pack(require_bytes(random, 4, "card random"), atc, b"\x80\x00")
    return _session_key(dlk, block, sm4_pad)


def tac_key(dtk: CardKey) -> SessionKey:
    """The key TACs are computed with.

    3DES: ``DTK_L ⊕ DTK_R`` as a single-DES key. SM4: the 16-byte DTK itself, UNCONFIRMED (halves folded together
    would make 8 bytes, not an SM4 key); a caller holding another reading passes its own key to the TAC functions.
    """
    if isinstance(dtk, TdesKey):
        return dtk.xor_halves()
    if isinstance(dtk, Sm4Key):
        return dtk
    raise ProtocolError(f"a TAC key comes from a 16-byte 3DES or SM4 DTK, got {type(dtk).__name__}")


def purchase_mac1(sk: SessionKey, amount: int, tx_type: int, terminal: bytes, when: bytes, *,
                  iv: bytes | None = None) -> bytes:
    """MAC1 (PSAM 8070, checked by the card in 8054) over amount ‖ type ‖ terminal ‖ date ‖ time."""
    _terminal_and_when(terminal, when)
    return _PURCHASE_MAC1.mac(sk, amount, tx_type, terminal, when, iv=iv)


def purchase_mac2(sk: SessionKey, amount: int, *, iv: bytes | None = None) -> bytes:
    """MAC2 (card 8054, checked by the PSAM in 8072) over the amount."""
    return _PURCHASE_MAC2.mac(sk, amount, iv=iv)


def purchase_tac(key: SessionKey, amount: int, tx_type: int, terminal: bytes, tsn: int, when: bytes, *,
                 iv: bytes | None = None) -> bytes:
    """Purchase TAC (card 8054) over amount ‖ type ‖ terminal ‖ TSN ‖ date ‖ time, under :func:`tac_key`."""
    _terminal_and_when(terminal, when)
    return _PURCHASE_TAC.mac(key, amount, tx_type, terminal, tsn, when, iv=iv)


def load_mac1(sk: SessionKey, balance: int, amount: int, tx_type: int, terminal: bytes, *,
              iv: bytes | None = None) -> bytes:
    """Load MAC1 (card, INITIALIZE FOR LOAD) over old balance ‖ amount ‖ type ‖ terminal."""
    return _LOAD_MAC1.mac(sk, balance, amount, tx_type, _terminal(terminal), iv=iv)


def load_mac2(sk: SessionKey, amount: int, tx_type: int, terminal: bytes, when: bytes, *,
              iv: bytes | None = None) -> bytes:
    """Load MAC2 (load host, sent in CREDIT FOR LOAD) over amount ‖ type ‖ terminal ‖ date ‖ time."""
    return _LOAD_MAC2.mac(sk, amount, tx_type, _terminal(terminal), _when(when), iv=iv)


def load_tac(key: SessionKey, new_balance: int, atc: int, amount: int, tx_type: int, terminal: bytes, when: bytes, *,
             iv: bytes | None = None) -> bytes:
    """Load TAC (card, CREDIT FOR LOAD).

    Over new balance ‖ online ATC before the load ‖ amount ‖ type ‖ terminal ‖ date ‖ time. The layout comes from
    one applet only: UNCONFIRMED by any test vector.
    """
    return _LOAD_TAC.mac(key, new_balance, atc, amount, tx_type, _terminal(terminal), _when(when), iv=iv)
