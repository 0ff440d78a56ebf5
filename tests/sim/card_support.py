"""Shared by the simulated card and PSAM tests: the spec's example card and PSAM, and a terminal-side driver that
speaks to them only through the protocols codecs."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from protocols import card_commands as cc
from protocols import psam_commands as pc
from protocols.apdu import ResponseAPDU
from protocols.fci import T_UNION_EP_AID
from protocols.hexutil import parse_hex as h
from sim.card import SimCard
from sim.issuing import issue_card, load_demo_keyset
from sim.psam import SimPsam

ISSUER = h("02403640FFFFFFFF")  # §3.5 end-to-end example
SERIAL = h("03104991585000011383")
FACTOR = SERIAL[2:]
TERMINAL = h("200041599997")
WHEN = dt.datetime(2018, 3, 13, 16, 43, 29)
RANDOM = h("11223344")
KEYSET = load_demo_keyset()

SELECT_EP = cc.SelectByName(T_UNION_EP_AID).to_bytes()


def fixed_random(value: bytes = RANDOM) -> Callable[[int], bytes]:
    """A card random source that always answers ``value`` (repeated or cut to the length asked)."""
    return lambda n: (value * (n // len(value) + 1))[:n]


def e2e_card(balance: int = 10000, atc: int = 0x36, **fields: object) -> SimCard:
    """The card of the spec's two-level example: demo keys, issuer 02403640FFFFFFFF, serial 0310 4991 5850 0001 1383,
    card random 11223344, offline ATC 0036."""
    card = issue_card(KEYSET, issuer_id=ISSUER, serial=SERIAL, balance=balance, randbytes=fixed_random(), **fields)
    card.image.purse.offline_atc = atc
    return card


def e2e_psam(tsn: int = 0x57, t0: bool = False) -> SimPsam:
    """The example's PSAM: demo keys, terminal 200041599997, next TSN 00000057, DF 8011 selected."""
    psam = SimPsam(KEYSET, TERMINAL, tsn=tsn, t0=t0)
    psam.power_on()
    assert psam.execute(pc.select_application().to_bytes())[-2:] in (b"\x90\x00", b"\x61\x06")
    return psam


def call(device: SimCard | SimPsam, apdu: bytes) -> ResponseAPDU:
    return ResponseAPDU.parse(device.execute(apdu))


def sw(device: SimCard | SimPsam, apdu: bytes) -> int:
    return call(device, apdu).sw


@dataclass
class Purchase:
    """What a terminal knows after a complete (or torn) composite purchase."""

    init: cc.PurchaseInitResponse
    tsn: int
    mac1: bytes
    debit: ResponseAPDU | None = None
    mac2_check: int | None = None


def composite_purchase(card: SimCard, psam: SimPsam, amount: int, *, when: dt.datetime = WHEN,
                       records: tuple[bytes, ...] = (), stop_before_debit: bool = False,
                       kind: type = cc.InitializeForCappPurchase, key_index: int = 1) -> Purchase:
    """Select, INITIALIZE, 8070, the UPDATE CAPP DATA CACHE commands given, DEBIT and 8072, as §5.2 orders them."""
    assert sw(card, SELECT_EP) == 0x9000
    answer = call(card, kind(key_index, amount, TERMINAL).to_bytes())
    assert answer.sw == 0x9000, hex(answer.sw)
    init = cc.PURCHASE_INIT_RESPONSE.parse(answer.data)
    tx_type = 0x09 if kind is cc.InitializeForCappPurchase else 0x06
    sam = call(psam, pc.InitSamForPurchase(init.random, init.offline_atc, amount, tx_type, when, init.key_version,
                                           init.algorithm_id, card.serial[2:], card.issuer_id).to_bytes())
    assert sam.sw == 0x9000, hex(sam.sw)
    session = pc.SAM_PURCHASE_RESPONSE.parse(sam.data)
    purchase = Purchase(init, session.tsn, session.mac1)
    for record in records:
        assert sw(card, record) == 0x9000
    if stop_before_debit:
        return purchase
    purchase.debit = call(card, cc.DebitForPurchase(session.tsn, when, session.mac1).to_bytes())
    if purchase.debit.sw == 0x9000:
        purchase.mac2_check = sw(psam, pc.CreditSamForPurchase(purchase.debit.data[4:]).to_bytes())
    return purchase
