"""Shared by the load tests: BLOG-L's card and keys (spec §3.5), a load host on a ledger of its own, a load terminal on
a simulated reader, and the money a set of cards gained."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from protocols import card_commands as cc
from protocols.crypto import Algorithm, CardKey, TdesKey
from protocols.hexutil import parse_hex as h
from sim.card import KeySlot, PurseState, SimCard
from sim.issuing import issue_card, load_demo_keyset, personalise
from sim.loadhost import InProcessLoadHost, LoadHostService, LoadLedger, RegisteredTerminal, Terminals
from sim.loadhost.terminals import DEMO_TERMINALS, Limits, load_terminals
from sim.reader import SimReader
from terminal.clock import ManualClock
from terminal.errors import ConfigError
from terminal.keyset import KeyUsage
from terminal.loads import LoadHost, LoadJournal, LoadRequest, LoadTerminal

from .card_support import SELECT_EP, call, fixed_random, sw

BLOG_KEY = h("11223344556677888877665544332211")  # BLOG-L's DLK
BLOG_TAC_KEY = h("00112233445566778899AABBCCDDEEFF")  # BLOG-P's TAC key (no public load TAC exists)
BLOG_TERMINAL = h("001122334455")
BLOG_WHEN = dt.datetime(2011, 12, 21, 21, 48, 22)
BLOG_ISSUER = h("02403640FFFFFFFF")
BLOG_SERIAL = h("03104991585000011383")
BLOG_TOKEN = "blog-l-terminal-token-test-only"

DEMO = load_terminals(DEMO_TERMINALS)
TOPUP, PHONE = DEMO.terminals
KEYSET = load_demo_keyset()
WHEN = dt.datetime(2026, 3, 2, 9, 15, 0)


class BlogKeys:
    """BLOG-L's card keys as a load host's key source: its one card holds them at key version 02 (no master key
    diversifies to them, so they are given as they are)."""

    def card_key(self, usage: KeyUsage, index: int, *, issuer_id: bytes, card_serial: bytes) -> CardKey:
        keys = {KeyUsage.LOAD: BLOG_KEY, KeyUsage.TAC: BLOG_TAC_KEY}
        if index != 2 or usage not in keys or (issuer_id, card_serial) != (BLOG_ISSUER, BLOG_SERIAL):
            raise ConfigError(f"no {usage.value} key {index:02X} for this card")
        return TdesKey(keys[usage])


def blog_card(balance: int = 0) -> SimCard:
    """BLOG-L's card: key index 01 answering key version 02, an empty passbook, random 11223344."""
    image = personalise(issuer_id=BLOG_ISSUER, serial=BLOG_SERIAL, algorithm=Algorithm.TDES,
                        keys={1: KeySlot(2, load=TdesKey(BLOG_KEY), tac=TdesKey(BLOG_TAC_KEY))},
                        passbook=PurseState(balance), start=dt.date(2010, 1, 1))
    return SimCard(image, randbytes=fixed_random())


def blog_service(ledger: Path, *, clock: ManualClock | None = None) -> LoadHostService:
    terminals = Terminals((RegisteredTerminal(BLOG_TERMINAL, BLOG_TOKEN),))
    return LoadHostService(BlogKeys(), LoadLedger(ledger), terminals, clock=clock or ManualClock(BLOG_WHEN))


def demo_service(ledger: Path, *, limits: Limits | None = None, clock: ManualClock | None = None) -> LoadHostService:
    """A host with the demo key set and the demo terminals (and their limits unless ``limits`` is given)."""
    terminals = DEMO if limits is None else Terminals(DEMO.terminals, limits, True)
    return LoadHostService(KEYSET, LoadLedger(ledger), terminals, clock=clock or ManualClock(WHEN))


def demo_card(serial: str = "03103640000000000077", balance: int = 5000, **fields: Any) -> SimCard:
    return issue_card(KEYSET, serial=serial, balance=balance, **fields)


def load_terminal(reader: SimReader, host: LoadHost, journal: Path, *, clock: ManualClock | None = None,
                  terminal_id: bytes = TOPUP.number, purse: cc.Purse = cc.Purse.EP) -> LoadTerminal:
    clock = clock or ManualClock(WHEN)
    return LoadTerminal(reader, host, LoadJournal(journal, clock=clock), clock=clock, terminal_id=terminal_id,
                        purse=purse)


def topup(service: LoadHostService, reader: SimReader, journal: Path, **options: object) -> LoadTerminal:
    """The demo top-up machine on ``reader``, reaching ``service`` in-process."""
    return load_terminal(reader, InProcessLoadHost(service, TOPUP.token), journal, **options)  # type: ignore[arg-type]


def card_request(card: SimCard, amount: int, *, request_id: str = "req-1", terminal: bytes = TOPUP.number,
                 when: dt.datetime = WHEN) -> LoadRequest:
    """Power the card on, SELECT, INITIALIZE FOR LOAD: the request a terminal would make of the card's answer (the
    card keeps the transaction open for :func:`credit`)."""
    card.power_on()
    assert sw(card, SELECT_EP) == 0x9000
    answer = call(card, cc.InitializeForLoad(1, amount, terminal).to_bytes())
    assert answer.sw == 0x9000, hex(answer.sw)
    init = cc.LOAD_INIT_RESPONSE.parse(answer.data)
    return LoadRequest(request_id, terminal, card.issuer_id, card.serial, init.balance, amount, init.online_atc,
                       init.random, when, init.mac1, init.key_version)


def credit(card: SimCard, mac2: bytes, when: dt.datetime = WHEN) -> bytes:
    """CREDIT FOR LOAD on the card's open transaction; the TAC."""
    answer = call(card, cc.CreditForLoad(when, mac2).to_bytes())
    assert answer.sw == 0x9000, hex(answer.sw)
    return answer.data
