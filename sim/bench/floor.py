"""The cryptography floor of each flow: the cipher operations of one transaction and nothing else.

Each floor makes, operation for operation, what the card and its counterpart (the PSAM, the load host) make in a real
transaction, with key objects held as their holders hold them: long-lived keys (a card's own keys, a PSAM's
issuer-level key) keep their cipher contexts, keys made per transaction (diversified card keys, session keys) are new
objects. Tests count the operations of a real tap and of the floor and require them equal. :func:`measure_floor`
times a floor; a transaction's cost is reported as a ratio to it.
"""

from __future__ import annotations

import datetime as dt
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from protocols.card_files import TransactionType
from protocols.crypto import (
    CardKey,
    SessionKey,
    diversify,
    load_mac1,
    load_mac2,
    load_session_key,
    load_tac,
    mac_block,
    macs_equal,
    pad,
    purchase_mac1,
    purchase_mac2,
    purchase_session_key,
    purchase_tac,
    serial_factor,
    tac_key,
)
from protocols.crypto.ciphers import BlockKey
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
Key = TypeVar("Key", bound=BlockKey)


def measure_floor(run: Callable[[int], None], iterations: int, rounds: int = 5) -> float:
    """Microseconds per transaction of ``run(iterations)``: the median of ``rounds`` timed runs."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        run(iterations)
        times.append((time.perf_counter() - start) / iterations * 1e6)
    return statistics.median(times)


def _issuer_key(keyset: Keyset, usage: KeyUsage, version: int, issuer: bytes) -> CardKey:
    """The issuer-level key a PSAM or a load host keeps per issuer (the master key itself with one level of
    diversification), its ECB context made."""
    master = keyset.master(usage, version)
    key = diversify(master, issuer) if keyset.levels == 2 else master  # type: ignore[type-var]
    key.check_value()
    return key


def _copy(key: Key) -> Key:
    """A fresh key object equal to ``key``, without its contexts."""
    return type(key)(key.export())


# --- the composite purchase -------------------------------------------------------------------------------------------

@dataclass(slots=True)
class FloorKeys:
    """The keys of one purchase, held as their holders hold them: the PSAM's issuer-level purchase key (kept per
    issuer), the card's DPK and TAC key (made once per card), the card's diversification factor and the terminal."""

    issuer_key: CardKey
    card_dpk: CardKey
    card_tac: SessionKey
    factor: bytes
    terminal: bytes


def floor_purchase(keys: FloorKeys, random: bytes, atc: int, tsn: int, amount: int, when: bytes) -> bytes:
    """The cryptography of one composite purchase and nothing else, operation for operation as the PSAM and the card
    do it; returns the TAC.

    PSAM, INIT SAM FOR PURCHASE: the card's DPK from the issuer-level key (one ECB call, a new key object), the
    session key (the DPK's ECB context, one call), MAC1 (the session key's CBC context). Card, DEBIT: its session key
    (one ECB call on its DPK), MAC1 checked (a CBC context), MAC2, TAC. PSAM, CREDIT SAM FOR PURCHASE: MAC2 checked.
    """
    dpk = diversify(keys.issuer_key, keys.factor)  # type: ignore[type-var]
    psam_session = purchase_session_key(dpk, random, atc, tsn)
    mac1 = purchase_mac1(psam_session, amount, _COMPOSITE, keys.terminal, when)
    card_session = purchase_session_key(keys.card_dpk, random, atc, tsn)
    if not macs_equal(purchase_mac1(card_session, amount, _COMPOSITE, keys.terminal, when), mac1):
        raise BenchError("cryptography floor: the card's MAC1 differs from the PSAM's")
    mac2 = purchase_mac2(card_session, amount)
    tac = purchase_tac(keys.card_tac, amount, _COMPOSITE, keys.terminal, tsn, when)
    if not macs_equal(purchase_mac2(psam_session, amount), mac2):
        raise BenchError("cryptography floor: the PSAM's MAC2 differs from the card's")
    return tac


def floor_keys(card: SimCard, psam: SimPsam) -> FloorKeys:
    """Fresh key objects equal to those ``card`` and ``psam`` use in a purchase, their long-lived contexts made."""
    slot = card.image.keys[psam.key_index]
    info = card.info
    assert slot.purchase is not None, "the card has no purchase key at the PSAM's key index"
    card_dpk = _copy(slot.purchase)
    card_dpk.check_value()  # the ECB context a card's long-lived key already has
    card_tac = _copy(slot.tac_key())
    card_tac.cbc_last(bytes(card_tac.block_size))  # and the TAC key's CBC context
    return FloorKeys(_issuer_key(psam.keyset, KeyUsage.PURCHASE, slot.version, info.issuer_id), card_dpk, card_tac,
                     info.diversification_factor, psam.terminal_number)


def purchase_floor(card: SimCard, psam: SimPsam) -> Callable[[int], None]:
    """``run(n)``: n composite purchases' cryptography over fresh keys equal to ``card``'s and ``psam``'s."""
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
    mac_block(diversify(keys.auth, keys.card_number), pad(keys.auth_data), iv=bytes(8), pad=False)  # type: ignore[type-var]
    data = PURCHASE_MAC_DATA.pack(keys.card_number, keys.uid, counter, balance, amount, RecordType.PURCHASE, terminal,
                                  tsn, when)
    return purchase_mac(diversify(keys.tac, keys.card_number), data)  # type: ignore[type-var]


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
    """The keys of one load, held as their holders hold them: the host's issuer-level load and TAC keys (kept per
    issuer, as its key set keeps them), the card's DLK and TAC key (made once per card), the card's diversification
    factor and the terminal."""

    issuer_load: CardKey
    issuer_tac: CardKey
    card_dlk: CardKey
    card_tac: SessionKey
    factor: bytes
    terminal: bytes


def floor_load(keys: LoadFloorKeys, random: bytes, atc: int, balance: int, amount: int, when: bytes) -> bytes:
    """The cryptography of one load and nothing else, operation for operation as the card and the load host do it;
    returns the TAC.

    Card, INITIALIZE FOR LOAD: its session key (one ECB call on its DLK, a new key object), MAC1 (the session key's CBC
    context). Host, authorizing: the card's DLK from the issuer-level load key (one ECB call, a new key object), the
    session key (the DLK's ECB context, one call), MAC1 checked (a CBC context), MAC2. Card, CREDIT FOR LOAD: MAC2
    checked, the TAC (its TAC key's CBC context). Host, confirming: the card's DTK from the issuer-level TAC key (one
    ECB call, a new key object), the TAC key (its halves folded, a new key object), the TAC checked (a CBC context).
    """
    card_session = load_session_key(keys.card_dlk, random, atc)
    mac1 = load_mac1(card_session, balance, amount, _EP_LOAD, keys.terminal)
    host_session = load_session_key(diversify(keys.issuer_load, keys.factor), random, atc)  # type: ignore[type-var]
    if not macs_equal(load_mac1(host_session, balance, amount, _EP_LOAD, keys.terminal), mac1):
        raise BenchError("cryptography floor: the host's MAC1 differs from the card's")
    mac2 = load_mac2(host_session, amount, _EP_LOAD, keys.terminal, when)
    if not macs_equal(load_mac2(card_session, amount, _EP_LOAD, keys.terminal, when), mac2):
        raise BenchError("cryptography floor: the card's MAC2 differs from the host's")
    new_balance = (balance + amount) & _WORD
    tac = load_tac(keys.card_tac, new_balance, atc, amount, _EP_LOAD, keys.terminal, when)
    host_tac = tac_key(diversify(keys.issuer_tac, keys.factor))  # type: ignore[type-var]
    if not macs_equal(load_tac(host_tac, new_balance, atc, amount, _EP_LOAD, keys.terminal, when), tac):
        raise BenchError("cryptography floor: the host's TAC differs from the card's")
    return tac


def load_floor_keys(card: SimCard, keyset: Keyset, terminal: bytes, key_index: int = 1) -> LoadFloorKeys:
    """Fresh key objects equal to those ``card`` and a load host holding ``keyset`` use in a load at ``terminal``,
    their long-lived contexts made."""
    slot = card.image.keys[key_index]
    issuer = card.info.issuer_id
    assert slot.load is not None, "the card has no load key at that key index"
    card_dlk = _copy(slot.load)
    card_dlk.check_value()
    card_tac = _copy(slot.tac_key())
    card_tac.cbc_last(bytes(card_tac.block_size))
    return LoadFloorKeys(_issuer_key(keyset, KeyUsage.LOAD, slot.version, issuer),
                         _issuer_key(keyset, KeyUsage.TAC, slot.version, issuer), card_dlk, card_tac,
                         serial_factor(card.serial), terminal)


def load_floor(card: SimCard, keyset: Keyset, terminal: bytes) -> Callable[[int], None]:
    """``run(n)``: n loads' cryptography over fresh keys equal to ``card``'s and a load host's holding ``keyset``."""
    keys = load_floor_keys(card, keyset, terminal)

    def run(iterations: int) -> None:
        for i in range(iterations):
            floor_load(keys, i.to_bytes(4, "big"), i & 0xFFFF, 0, 100, _WHEN)
    return run
