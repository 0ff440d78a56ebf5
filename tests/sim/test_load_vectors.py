"""BLOG-L's public load (spec §3.5) end to end: the simulated card, the load host and the load terminal reproduce its
INITIALIZE FOR LOAD answer (MAC1 2988AE5A) and CREDIT FOR LOAD command (MAC2 3A845BF0) byte for byte, in process and
over HTTP; the host verifies the card's TAC and its ledger holds every input an auditor needs."""

from __future__ import annotations

from pathlib import Path

from protocols import card_commands as cc
from protocols.hexutil import parse_hex as h
from sim.loadhost import InProcessLoadHost, LedgerState, LoadHostServer, LoadLedger
from sim.reader import SimReader
from terminal.clock import ManualClock
from terminal.loads import HttpLoadHost, LoadJournal, LoadState, LoadStatus

from .card_support import SELECT_EP
from .load_support import BLOG_TERMINAL, BLOG_TOKEN, BLOG_WHEN, blog_card, blog_service, load_terminal

INIT = h("805000010B 01 00001000 001122334455 10")
INIT_ANSWER = h("00000000 0000 02 00 11223344 2988AE5A 9000")
CREDIT = h("805200000B 20111221 214822 3A845BF0 04")
CREDIT_ANSWER = h("6314E5F5 9000")  # the FM TAC layout under BLOG-P's TAC key: self-computed, no public value


def _check(outcome, card, ledger: Path, journal: Path) -> None:
    assert outcome is not None and outcome.status is LoadStatus.LOADED, outcome
    assert [(e.command, e.response[-2:]) for e in outcome.exchanges[:1]] == [(SELECT_EP, h("9000"))]
    assert [(e.command, e.response) for e in outcome.exchanges[1:]] == [(INIT, INIT_ANSWER), (CREDIT, CREDIT_ANSWER)]
    assert (outcome.balance_before, outcome.balance_after, outcome.tac, outcome.confirmed) == \
        (0, 0x1000, h("6314E5F5"), True)
    assert card.image.passbook.balance == 0x1000 and card.image.passbook.online_atc == 1
    assert card.image.transaction_log == [h("0000 000000 00001000 01 001122334455 20111221 214822")]
    with LoadLedger(ledger, readonly=True) as book:
        (load,) = book.loads()
    assert load.to_json() | {"request_id": "", "authorized_at": "", "changed_at": ""} == {
        "load_id": outcome.load_id, "state": "confirmed", "issuer": "02403640FFFFFFFF",
        "serial": "03104991585000011383", "online_counter": 0, "random": "11223344", "balance_before": 0,
        "amount": 0x1000, "transaction_type": 1, "terminal": "001122334455", "datetime": "20111221214822",
        "mac1": "2988AE5A", "mac2": "3A845BF0", "tac": "6314E5F5", "key_version": 2, "request_id": "", "note": "",
        "authorized_at": "", "changed_at": ""}
    with LoadJournal(journal, readonly=True) as book:
        (entry,) = book.entries()
    assert (entry.record.state, entry.record.load_id, entry.record.mac1, entry.record.mac2, entry.record.tac) == \
        (LoadState.CONFIRMED, load.load_id, h("2988AE5A"), h("3A845BF0"), h("6314E5F5"))
    assert entry.record.request_id == load.request_id


def test_blog_l_through_card_host_and_terminal(tmp_path: Path) -> None:
    card = blog_card()
    service = blog_service(tmp_path / "ledger.db")
    terminal = load_terminal(SimReader(card, timing=None), InProcessLoadHost(service, BLOG_TOKEN),
                             tmp_path / "loads.db", clock=ManualClock(BLOG_WHEN), terminal_id=BLOG_TERMINAL,
                             purse=cc.Purse.ED)
    _check(terminal.load(0x1000), card, tmp_path / "ledger.db", tmp_path / "loads.db")
    assert card.internal_errors == 0


def test_blog_l_over_http_on_loopback(tmp_path: Path) -> None:
    card = blog_card()
    server = LoadHostServer(blog_service(tmp_path / "ledger.db"), ("127.0.0.1", 0)).start()
    try:
        terminal = load_terminal(SimReader(card, timing=None), HttpLoadHost(server.url, BLOG_TOKEN),
                                 tmp_path / "loads.db", clock=ManualClock(BLOG_WHEN), terminal_id=BLOG_TERMINAL,
                                 purse=cc.Purse.ED)
        _check(terminal.load(0x1000), card, tmp_path / "ledger.db", tmp_path / "loads.db")
    finally:
        server.stop()
    with LoadLedger(tmp_path / "ledger.db", readonly=True) as book:
        assert [load.state for load in book.loads()] == [LedgerState.CONFIRMED]
