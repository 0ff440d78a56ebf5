"""The cryptography floor of each flow: the cipher operations of one transaction and nothing else.

A floor is written straight against the ``cryptography`` library's public API, as lean as it allows: a cipher context
per key, held as its holder holds the key (a card's own keys and a PSAM's or load host's issuer-level keys keep their
contexts from one transaction to the next; keys made per transaction, the diversified card key a PSAM or host derives
and every session key, get a new context each time), whole messages through one ``update`` call, constant-time
compares. It makes, operation for operation, what the card and its counterpart (the PSAM, the load host) make in a
real transaction; tests count the contexts and ``update`` calls of a real tap and of the floor and require them
equal. :func:`measure_floor` times a floor; a transaction's cost is reported as a ratio to it.

The floors are those of 3DES cards (the demo key set's algorithm). The M1 debit's floor still goes through
``protocols.crypto``'s key objects (its sector-key rule and retail MAC are not written out against the library here).
"""

from __future__ import annotations

import datetime as dt
import hmac
import statistics
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from cryptography.hazmat.primitives.ciphers import Cipher, modes

from protocols.card_files import TransactionType
from protocols.crypto import Algorithm, CardKey, diversify, mac_block, pad, serial_factor
from protocols.crypto.ciphers import BlockKey, TripleDES
from protocols.m1.crypto import PURCHASE_MAC_DATA, auth_code_data, purchase_mac
from protocols.m1.keys import KeyRule
from protocols.m1.layout import ISSUANCE, ISSUANCE_BLOCK, VALIDITY_BLOCK, RecordType
from protocols.mifare import KeyType, auth_uid
from terminal.flows.m1 import PURSE_SECTORS
from terminal.keyset import Keyset, KeyUsage

from ..card import SimCard
from ..card.m1_card import M1Card
from ..psam import SimPsam
from .spec import BenchError

_COMPOSITE = int(TransactionType.COMPOSITE_PURCHASE)
_EP_LOAD = int(TransactionType.EP_LOAD)
_WHEN = bytes.fromhex("20260302060000")
_WORD = 0xFFFFFFFF
_ECB = modes.ECB()
_CBC = modes.CBC(bytes(8))
_INVERT = bytes(range(255, -1, -1))
# The MAC inputs of spec §3.4, each padded (ISO 9797-1 method 2) to whole blocks by the constant tail after it.
_PURCHASE_SK = struct.Struct(">4sHH")  # random, offline ATC, TSN low 2 bytes
_LOAD_SK = struct.Struct(">4sH")  # random, online ATC; then 80 00
_TRANSACTION = struct.Struct(">IB6s7s")  # purchase MAC1, load MAC2 (18 bytes)
_PURCHASE_TAC = struct.Struct(">IB6sI7s")  # 22 bytes
_LOAD_MAC1 = struct.Struct(">IIB6s")  # 15 bytes
_LOAD_TAC = struct.Struct(">IHIB6s7s")  # 24 bytes
_PAD_18, _PAD_22, _PAD_15, _PAD_24 = b"\x80" + bytes(5), b"\x80\x00", b"\x80", b"\x80" + bytes(7)
_AMOUNT_PADDED = struct.Struct(">I4s")  # purchase MAC2: the amount, 80 00 00 00
_AMOUNT_PAD = b"\x80\x00\x00\x00"
Key = TypeVar("Key", bound=BlockKey)


def measure_floor(run: Callable[[int], None], iterations: int, rounds: int = 5) -> float:
    """Microseconds per transaction of ``run(iterations)``: the median of ``rounds`` timed runs."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        run(iterations)
        times.append((time.perf_counter() - start) / iterations * 1e6)
    return statistics.median(times)


def _card_key_context(key: bytes) -> Any:
    """An ECB context of a 16-byte two-key 3DES key (K1 K2 K1)."""
    return Cipher(TripleDES(key + key[:8]), _ECB).encryptor()


def _session_context(key: bytes) -> Any:
    """The CBC-MAC context of an 8-byte single-DES key (K K K), from a zero IV."""
    return Cipher(TripleDES(key * 3), _CBC).encryptor()


class _Mac:
    """One key's CBC-MAC context, which keeps chaining from message to message: the first block of each new message
    goes in XORed with the last block of the one before, which starts the chain afresh from the zero IV."""

    __slots__ = ("context", "last")

    def __init__(self, context: Any) -> None:
        self.context = context
        self.last = 0

    def __call__(self, padded: bytes) -> bytes:
        if self.last:
            padded = (int.from_bytes(padded[:8], "big") ^ self.last).to_bytes(8, "big") + padded[8:]
        block = self.context.update(padded)[-8:]
        self.last = int.from_bytes(block, "big")
        return block[:4]


def _diversify(context: Any, factor: bytes) -> bytes:
    """A card's 16-byte key from the ECB context of the key above it: E(K, F) ‖ E(K, ~F)."""
    return context.update(factor + factor.translate(_INVERT))


def _issuer_context(keyset: Keyset, usage: KeyUsage, version: int, issuer: bytes) -> Any:
    """The ECB context of the issuer-level key a PSAM or a load host keeps per issuer (the master key with one level
    of diversification, or the master itself for one-level key sets)."""
    if keyset.algorithm is not Algorithm.TDES:
        raise BenchError("the cryptography floor is that of 3DES cards; this key set is SM4")
    master = _card_key_context(keyset.master(usage, version).export())
    return master if keyset.levels == 1 else _card_key_context(_diversify(master, issuer))


def _copy(key: Key) -> Key:
    """A fresh key object equal to ``key``, without its contexts."""
    return type(key)(key.export())


def _equal(expected: bytes, received: bytes, what: str) -> None:
    if not hmac.compare_digest(expected, received):
        raise BenchError(f"cryptography floor: {what}")


# --- the composite purchase -------------------------------------------------------------------------------------------

@dataclass(slots=True)
class FloorKeys:
    """The key contexts of one purchase, held as their holders hold them: the PSAM's issuer-level purchase key (kept per
    issuer), the card's DPK and TAC key (made once per card); the card's diversification factor and the terminal."""

    issuer: Any
    card_dpk: Any
    card_tac: _Mac
    factor: bytes
    terminal: bytes


def floor_purchase(keys: FloorKeys, random: bytes, atc: int, tsn: int, amount: int, when: bytes) -> bytes:
    """The cryptography of one composite purchase and nothing else, operation for operation as the PSAM and the card
    do it; returns the TAC.

    PSAM, INIT SAM FOR PURCHASE: the card's DPK from the issuer-level key (one ECB call), a context for it, the session
    key (its ECB call), the session key's CBC context, MAC1. Card, DEBIT: its session key (one ECB call on its DPK), a
    CBC context for it, MAC1 checked, MAC2, the TAC (its TAC key's context). PSAM, CREDIT SAM FOR PURCHASE: MAC2
    checked.
    """
    session_input = _PURCHASE_SK.pack(random, atc, tsn & 0xFFFF)
    mac1_input = _TRANSACTION.pack(amount, _COMPOSITE, keys.terminal, when) + _PAD_18
    mac2_input = _AMOUNT_PADDED.pack(amount, _AMOUNT_PAD)
    dpk = _card_key_context(_diversify(keys.issuer, keys.factor))
    psam = _Mac(_session_context(dpk.update(session_input)))
    mac1 = psam(mac1_input)
    card = _Mac(_session_context(keys.card_dpk.update(session_input)))
    _equal(card(mac1_input), mac1, "the card's MAC1 differs from the PSAM's")
    mac2 = card(mac2_input)
    tac = keys.card_tac(_PURCHASE_TAC.pack(amount, _COMPOSITE, keys.terminal, tsn, when) + _PAD_22)
    _equal(psam(mac2_input), mac2, "the PSAM's MAC2 differs from the card's")
    return tac


def _card_contexts(card: SimCard, key_index: int, usage: str) -> tuple[Any, _Mac]:
    """The ECB context of the card's key of ``usage`` (its DPK or DLK) and the CBC-MAC context of its TAC key, made
    afresh from the card's key bytes."""
    slot = card.image.keys[key_index]
    key = getattr(slot, usage)
    if key is None or slot.tac is None:
        raise BenchError(f"the card has no {usage} or TAC key at key index {key_index}")
    return _card_key_context(key.export()), _Mac(_session_context(slot.tac_key().export()))


def floor_keys(card: SimCard, psam: SimPsam) -> FloorKeys:
    """Key contexts equal to those ``card`` and ``psam`` use in a purchase."""
    info = card.info
    version = card.image.keys[psam.key_index].version
    card_dpk, card_tac = _card_contexts(card, psam.key_index, "purchase")
    return FloorKeys(_issuer_context(psam.keyset, KeyUsage.PURCHASE, version, info.issuer_id), card_dpk, card_tac,
                     info.diversification_factor, psam.terminal_number)


def purchase_floor(card: SimCard, psam: SimPsam) -> Callable[[int], None]:
    """``run(n)``: n composite purchases' cryptography over key contexts equal to ``card``'s and ``psam``'s."""
    keys = floor_keys(card, psam)

    def run(iterations: int) -> None:
        for i in range(iterations):
            floor_purchase(keys, i.to_bytes(4, "big"), i & 0xFFFF, i, 200, _WHEN)
    return run


# --- the M1 debit -----------------------------------------------------------------------------------------------------

@dataclass(slots=True)
class M1FloorKeys:
    """The keys of one M1 debit, held as the PSAM holds them: its M1 masters (key A of the sectors, the auth code's,
    the transaction MAC's; long-lived, their contexts made), the key rule, the card's UID and number, and the data
    the two MACs cover. The card has no cryptography of its own here: Crypto1 is the reader chip's."""

    key_a: CardKey
    auth: CardKey
    tac: CardKey
    rule: KeyRule
    uid: bytes
    card_number: bytes
    auth_data: bytes


def floor_m1_debit(keys: M1FloorKeys, tsn: int, counter: int, balance: int, amount: int, when: dt.datetime,
                   terminal: bytes) -> bytes:
    """The cryptography of one M1 debit and nothing else, as the PSAM does it; returns the transaction MAC.

    M1 SECTOR KEYS: each purse sector's key A diversified from the master (one ECB call, a new key object each).
    The auth code: the card's auth key from its master (a new key object), the MAC of the padded data (a CBC context).
    M1 PURCHASE MAC: the card's MAC key (a new key object), the MAC of the debit (a CBC context)."""
    for sector in PURSE_SECTORS:
        keys.rule.key(keys.key_a, keys.uid, sector, KeyType.A)
    mac_block(diversify(keys.auth, keys.card_number), pad(keys.auth_data), iv=bytes(8), pad=False)
    data = PURCHASE_MAC_DATA.pack(keys.card_number, keys.uid, counter, balance, amount, RecordType.PURCHASE, terminal,
                                  tsn, when)
    return purchase_mac(diversify(keys.tac, keys.card_number), data)


def m1_floor_keys(card: M1Card, psam: SimPsam) -> M1FloorKeys:
    """Fresh master key objects equal to those ``psam`` uses for ``card``, their contexts made."""
    issuance = ISSUANCE.parse(card.image.block(ISSUANCE_BLOCK))
    keyset, version = psam.keyset, issuance.key_version
    key_a, auth, tac = (_copy(keyset.master(usage, version))
                        for usage in (KeyUsage.M1_KEY_A, KeyUsage.M1_AUTH, KeyUsage.M1_TAC))
    for master in (key_a, auth, tac):
        master.check_value()
    uid = auth_uid(card.image.uid)
    data = auth_code_data(uid, card.image.block(ISSUANCE_BLOCK), card.image.block(VALIDITY_BLOCK))
    return M1FloorKeys(key_a, auth, tac, keyset.m1_rule, uid, issuance.card_number, data)


def m1_debit_floor(card: M1Card, psam: SimPsam) -> Callable[[int], None]:
    """``run(n)``: n M1 debits' cryptography over fresh keys equal to ``psam``'s for ``card``."""
    keys = m1_floor_keys(card, psam)
    when = dt.datetime(2026, 3, 2, 6, 0)

    def run(iterations: int) -> None:
        for i in range(iterations):
            floor_m1_debit(keys, i, (i & 0xFFFE) + 1, 100_000, 200, when, psam.terminal_number)
    return run


# --- the load ---------------------------------------------------------------------------------------------------------

@dataclass(slots=True)
class LoadFloorKeys:
    """The key contexts of one load, held as their holders hold them: the host's issuer-level load and TAC keys (kept
    per issuer, as its key set keeps them), the card's DLK and TAC key (made once per card); the card's
    diversification factor and the terminal."""

    issuer_load: Any
    issuer_tac: Any
    card_dlk: Any
    card_tac: _Mac
    factor: bytes
    terminal: bytes


def floor_load(keys: LoadFloorKeys, random: bytes, atc: int, balance: int, amount: int, when: bytes) -> bytes:
    """The cryptography of one load and nothing else, operation for operation as the card and the load host do it;
    returns the TAC.

    Card, INITIALIZE FOR LOAD: its session key (one ECB call on its DLK), the session key's CBC context, MAC1. Host,
    authorizing: the card's DLK from the issuer-level load key (one ECB call), a context for it, the session key (its
    ECB call), the session key's CBC context, MAC1 checked, MAC2. Card, CREDIT FOR LOAD: MAC2 checked, the TAC (its
    TAC key's context). Host, confirming: the card's DTK from the issuer-level TAC key (one ECB call), its halves
    folded into the TAC key, a CBC context for it, the TAC checked.
    """
    session_input = _LOAD_SK.pack(random, atc) + b"\x80\x00"
    mac1_input = _LOAD_MAC1.pack(balance, amount, _EP_LOAD, keys.terminal) + _PAD_15
    mac2_input = _TRANSACTION.pack(amount, _EP_LOAD, keys.terminal, when) + _PAD_18
    card = _Mac(_session_context(keys.card_dlk.update(session_input)))
    mac1 = card(mac1_input)
    dlk = _card_key_context(_diversify(keys.issuer_load, keys.factor))
    host = _Mac(_session_context(dlk.update(session_input)))
    _equal(host(mac1_input), mac1, "the host's MAC1 differs from the card's")
    mac2 = host(mac2_input)
    _equal(card(mac2_input), mac2, "the card's MAC2 differs from the host's")
    tac_input = _LOAD_TAC.pack((balance + amount) & _WORD, atc, amount, _EP_LOAD, keys.terminal, when) + _PAD_24
    tac = keys.card_tac(tac_input)
    dtk = _diversify(keys.issuer_tac, keys.factor)
    folded = int.from_bytes(dtk[:8], "big") ^ int.from_bytes(dtk[8:], "big")
    host_tac = _Mac(_session_context(folded.to_bytes(8, "big")))
    _equal(host_tac(tac_input), tac, "the host's TAC differs from the card's")
    return tac


def load_floor_keys(card: SimCard, keyset: Keyset, terminal: bytes, key_index: int = 1) -> LoadFloorKeys:
    """Key contexts equal to those ``card`` and a load host holding ``keyset`` use in a load at ``terminal``."""
    version = card.image.keys[key_index].version
    issuer = card.info.issuer_id
    card_dlk, card_tac = _card_contexts(card, key_index, "load")
    return LoadFloorKeys(_issuer_context(keyset, KeyUsage.LOAD, version, issuer),
                         _issuer_context(keyset, KeyUsage.TAC, version, issuer), card_dlk, card_tac,
                         serial_factor(card.serial), terminal)


def load_floor(card: SimCard, keyset: Keyset, terminal: bytes) -> Callable[[int], None]:
    """``run(n)``: n loads' cryptography over key contexts equal to ``card``'s and a load host's holding ``keyset``."""
    keys = load_floor_keys(card, keyset, terminal)

    def run(iterations: int) -> None:
        for i in range(iterations):
            floor_load(keys, i.to_bytes(4, "big"), i & 0xFFFF, 0, 100, _WHEN)
    return run
