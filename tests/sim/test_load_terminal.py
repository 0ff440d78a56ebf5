"""The load terminal: a load, a tear before and after every exchange of a load and of its recovery (money conserved,
exactly once), a host that cannot be reached or refuses (the card untouched), TACs the host was not told yet, loads
proven to be someone else's, and the card's own refusals."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest

from protocols.hexutil import parse_hex as h
from sim.card import MAX_BALANCE, SimCard
from sim.loadhost import InProcessLoadHost, LedgerState, LoadHostService
from sim.reader import SimReader, Tear
from terminal.clock import ManualClock
from terminal.errors import ConfigError
from terminal.loads import (
    HostUnreachable, HttpLoadHost, LoadAuthorization, LoadConfirmation, LoadJournal, LoadRequest, LoadState,
    LoadStatus, LoadTerminal,
)

from .load_support import PHONE, TOPUP, WHEN, demo_card, demo_service, load_terminal, topup

SELECT, INIT, CREDIT = h("00A4040008A000000632010105"), h("805000020B"), h("805200000B")
PROVE = h("805A000202")


def _card_state(card: SimCard) -> tuple[object, ...]:
    purse = card.image.purse
    return purse.balance, purse.online_atc, purse.offline_atc, tuple(card.image.transaction_log)


@pytest.fixture
def service(tmp_path: Path):
    host = demo_service(tmp_path / "ledger.db")
    yield host
    host.close()


def test_a_load_and_its_records(service, tmp_path: Path) -> None:
    card = demo_card(balance=5000)
    terminal = topup(service, SimReader(card, timing=None), tmp_path / "loads.db")
    assert terminal.start() == 0
    outcome = terminal.load(2000)
    assert outcome is not None and outcome.status is LoadStatus.LOADED
    assert [e.command[:5] for e in outcome.exchanges] == [SELECT[:5], INIT, CREDIT]
    assert (outcome.balance_before, outcome.balance_after, outcome.amount, outcome.confirmed, outcome.load_id) == \
        (5000, 7000, 2000, True, 1)
    assert outcome.message == "loaded 20.00, balance 70.00"
    assert card.balance == 7000 and card.image.purse.online_atc == 1
    log = card.image.transaction_log[0]  # the card's 0x18 record: ATC 0, amount, type 02, this terminal, the time
    assert log == h("0000 000000 000007D0 02") + TOPUP.number + h("20260302 091500")
    entry = terminal.journal.get(outcome.journal_row or 0)
    assert (entry.record.state, entry.record.tac, entry.record.load_id) == (LoadState.CONFIRMED, outcome.tac, 1)
    assert service.ledger.confirmed_fen() == 2000
    with pytest.raises(ConfigError):
        terminal.load(0)


def _run_until_done(terminal: LoadTerminal, reader: SimReader, card: SimCard, amount: int) -> list[LoadStatus]:
    """Tap again (the card back in the field) until the terminal is done with the card."""
    statuses = []
    for _ in range(5):
        if not reader.present:
            reader.put(card)
        outcome = terminal.load(amount)
        assert outcome is not None
        statuses.append(outcome.status)
        if outcome.status is not LoadStatus.RETRY:
            return statuses
    pytest.fail(f"not done after 5 taps: {statuses}")


def _exchanges_of_a_clean_load(tmp_path: Path) -> int:
    service = demo_service(tmp_path / "clean-ledger.db")
    reader = SimReader(demo_card(balance=5000), timing=None)
    topup(service, reader, tmp_path / "clean-loads.db").load(2000)
    service.close()
    return reader.exchanges


def _conserved(service: LoadHostService, journal: LoadJournal, card: SimCard, start: int) -> None:
    """The card gained exactly what the host's ledger holds as loaded; nothing waits."""
    assert card.balance - start == service.ledger.confirmed_fen()
    assert [load.state for load in service.ledger.loads() if load.state is LedgerState.AUTHORIZED] == []
    assert list(journal.entries([LoadState.AUTHORIZED, LoadState.CREDITED, LoadState.REQUESTED])) == []


@pytest.mark.parametrize("tear", Tear.everywhere(3), ids=repr)
def test_a_tear_at_every_exchange_conserves_money(tmp_path: Path, tear: Tear) -> None:
    assert _exchanges_of_a_clean_load(tmp_path) == 3
    service = demo_service(tmp_path / "ledger.db")
    card = demo_card(balance=5000)
    reader = SimReader(card, timing=None, tears=[tear])
    terminal = topup(service, reader, tmp_path / "loads.db")
    statuses = _run_until_done(terminal, reader, card, 2000)
    assert statuses[0] is LoadStatus.RETRY and statuses[-1] is LoadStatus.LOADED
    assert card.balance == 7000  # loaded exactly once, whichever side of the card's commit the tear fell
    _conserved(service, terminal.journal, card, 5000)
    torn_after_credit = tear.committed and tear.at == 2
    recovered = [entry.record for entry in terminal.journal.entries([LoadState.CONFIRMED])]
    assert len(recovered) == 1
    # the CREDIT lost before the card: its load is void (superseded at the host) and a fresh one was made
    voided = [entry.record for entry in terminal.journal.entries([LoadState.VOID])]
    assert len(voided) == (1 if tear == Tear.before(2) else 0)
    assert [load.state for load in service.ledger.loads()] == \
        ([LedgerState.VOID, LedgerState.CONFIRMED] if tear == Tear.before(2) else [LedgerState.CONFIRMED])
    if torn_after_credit:  # the next tap proved the load: GET TRANSACTION PROVE for the counter after it
        assert card.image.purse.online_atc == 1
    service.close()


@pytest.mark.parametrize("tear", Tear.everywhere(2), ids=repr)
def test_a_tear_during_the_recovery_tap_conserves_money(tmp_path: Path, tear: Tear) -> None:
    """CREDIT committed and its answer lost; the next tap (SELECT, GET TRANSACTION PROVE) torn before and after each
    exchange; the tap after that finishes the load."""
    service = demo_service(tmp_path / "ledger.db")
    card = demo_card(balance=5000)
    reader = SimReader(card, timing=None, tears=[Tear.after(CREDIT)])
    terminal = topup(service, reader, tmp_path / "loads.db")
    first = terminal.load(2000)
    assert first is not None and (first.status, first.pending) == (LoadStatus.RETRY, True)
    assert first.message.startswith("please tap again (CREDIT FOR LOAD unanswered: ")
    assert card.balance == 7000 and terminal.waiting[0].amount == 2000
    reader.put_back()
    reader.plan_tear(tear)
    statuses = _run_until_done(terminal, reader, card, 9999)  # the rider's next request does not load twice
    assert statuses[0] is LoadStatus.RETRY and statuses[-1] is LoadStatus.LOADED
    assert card.balance == 7000
    _conserved(service, terminal.journal, card, 5000)
    service.close()


def test_the_recovery_tap_proves_the_load_and_ends_there(service, tmp_path: Path) -> None:
    card = demo_card(balance=5000)
    reader = SimReader(card, timing=None, tears=[Tear.after(CREDIT)])
    terminal = topup(service, reader, tmp_path / "loads.db")
    terminal.load(2000)
    reader.put_back()
    outcome = terminal.load(5000)
    assert outcome is not None and outcome.loaded and outcome.recovered and outcome.confirmed
    assert [e.command[:5] for e in outcome.exchanges] == [SELECT[:5], PROVE]
    assert (outcome.amount, outcome.balance_before, outcome.balance_after) == (2000, 5000, 7000)
    assert outcome.message == "loaded 20.00, balance 70.00 (recovered)"


def test_an_unreachable_host_leaves_the_card_untouched(tmp_path: Path) -> None:
    card = demo_card(balance=5000)
    before = _card_state(card)
    host = HttpLoadHost("http://127.0.0.1:9", TOPUP.token, timeout=2)  # the discard port: nothing listens
    terminal = load_terminal(SimReader(card, timing=None), host, tmp_path / "loads.db")
    outcome = terminal.load(2000)
    assert outcome is not None and (outcome.status, outcome.reason) == (LoadStatus.FAILED, "host_unreachable")
    assert outcome.detail == ("load host http://127.0.0.1:9 unreachable: connection refused; the card was not "
                              "credited")
    assert [e.command[:5] for e in outcome.exchanges] == [SELECT[:5], INIT]  # no CREDIT went to the card
    assert _card_state(card) == before
    (entry,) = terminal.journal.entries()
    assert entry.record.state is LoadState.VOID and "host unreachable; CREDIT not sent" in entry.record.reason


def test_a_refusal_leaves_the_card_untouched(service, tmp_path: Path) -> None:
    card = demo_card(balance=99000)
    before = _card_state(card)
    terminal = topup(service, SimReader(card, timing=None), tmp_path / "loads.db")
    outcome = terminal.load(2000)
    assert outcome is not None and (outcome.status, outcome.reason) == (LoadStatus.REFUSED, "over_limit")
    assert outcome.balance_after == outcome.balance_before == 99000
    assert _card_state(card) == before
    assert outcome.message == ("not loaded: the balance would be 101000 fen, over the purse limit of 100000 fen")


class _DownAtConfirm:
    """The real in-process host, but unreachable when told a TAC, until ``up``."""

    def __init__(self, host: InProcessLoadHost) -> None:
        self.host = host
        self.up = False

    def authorize(self, request: LoadRequest) -> LoadAuthorization:
        return self.host.authorize(request)

    def confirm(self, load_id: int, tac: bytes) -> LoadConfirmation:
        if not self.up:
            raise HostUnreachable("load host down")
        return self.host.confirm(load_id, tac)


def test_a_tac_the_host_was_not_told_is_sent_again(service, tmp_path: Path) -> None:
    card = demo_card(balance=5000)
    host = _DownAtConfirm(InProcessLoadHost(service, TOPUP.token))
    terminal = load_terminal(SimReader(card, timing=None), host, tmp_path / "loads.db")
    outcome = terminal.load(2000)
    assert outcome is not None and outcome.loaded and outcome.confirmed is False
    assert outcome.message == ("loaded 20.00, balance 70.00 (the host was not told yet; the TAC is kept and sent "
                               "again)")
    assert terminal.journal.get(outcome.journal_row or 0).record.state is LoadState.CREDITED
    assert [load.state for load in service.ledger.loads()] == [LedgerState.AUTHORIZED]
    assert terminal.start() == 1  # still down
    host.up = True
    assert terminal.start() == 0
    assert terminal.journal.get(outcome.journal_row or 0).record.state is LoadState.CONFIRMED
    assert service.ledger.confirmed_fen() == 2000


def test_a_crash_before_the_host_answered_is_voided_at_start(service, tmp_path: Path) -> None:
    card = demo_card()
    terminal = topup(service, SimReader(card, timing=None), tmp_path / "loads.db")
    outcome = terminal.load(2000)
    assert outcome is not None
    record = dataclasses.replace(terminal.journal.get(outcome.journal_row or 0).record, request_id="crashed",
                                 online_atc=1, state=LoadState.REQUESTED, load_id=None, mac2=None, tac=None)
    row = terminal.journal.record_request(record)
    terminal.start()
    assert terminal.journal.get(row).record.state is LoadState.VOID


def test_a_proof_of_another_load_voids_the_torn_one(tmp_path: Path) -> None:
    """Torn before CREDIT reached the card at the top-up machine; the card is then loaded from a phone (the host
    supersedes the torn load); back at the machine, the card's proof for that counter has the phone load's MAC2."""
    service = demo_service(tmp_path / "ledger.db")
    card = demo_card(balance=5000)
    reader = SimReader(card, timing=None, tears=[Tear.before(CREDIT)])
    machine = topup(service, reader, tmp_path / "machine.db")
    assert machine.load(2000).status is LoadStatus.RETRY  # type: ignore[union-attr]
    reader.put_back()
    phone = load_terminal(SimReader(card, timing=None), InProcessLoadHost(service, PHONE.token),
                          tmp_path / "phone.db", terminal_id=PHONE.number)
    assert phone.load(1000).loaded  # type: ignore[union-attr]
    outcome = machine.load(3000)
    assert outcome is not None and outcome.loaded and not outcome.recovered
    assert [e.command[:5] for e in outcome.exchanges] == [SELECT[:5], PROVE, INIT, CREDIT]
    torn = next(machine.journal.entries([LoadState.VOID])).record
    assert torn.reason == "the card's proof for that counter is of another load"
    assert card.balance == 5000 + 1000 + 3000 == 5000 + service.ledger.confirmed_fen()
    service.close()


def test_a_counter_moved_without_proof_is_unconfirmed(tmp_path: Path) -> None:
    """Credited at the machine but torn; loaded from a phone before coming back: the proof the card holds is the
    phone's, for a later counter, and the machine's load stays for the back office."""
    service = demo_service(tmp_path / "ledger.db")
    card = demo_card(balance=5000)
    reader = SimReader(card, timing=None, tears=[Tear.after(CREDIT)])
    machine = topup(service, reader, tmp_path / "machine.db")
    machine.load(2000)
    reader.put_back()
    phone = load_terminal(SimReader(card, timing=None), InProcessLoadHost(service, PHONE.token),
                          tmp_path / "phone.db", terminal_id=PHONE.number)
    assert phone.load(1000).loaded  # type: ignore[union-attr]
    assert machine.load(500).loaded  # type: ignore[union-attr]
    (entry,) = machine.journal.entries([LoadState.UNCONFIRMED])
    assert entry.record.reason == "no proof, and the card's online counter moved to 2"
    assert [load.state for load in service.ledger.loads()] == \
        [LedgerState.AUTHORIZED, LedgerState.CONFIRMED, LedgerState.CONFIRMED]
    assert card.balance == 5000 + 2000 + 1000 + 500
    service.close()


def test_the_cards_refusals(service, tmp_path: Path) -> None:
    blocked = demo_card()
    blocked.image.blocked = True
    cases = [
        (blocked, "card_blocked", "SELECT: 6283"),
        (demo_card(expiry=dt.date(2025, 12, 31)), "card_expired", "expired 2025-12-31"),
        (demo_card(start=dt.date(2026, 4, 1)), "card_not_yet_valid", "valid from 2026-04-01"),
        (demo_card(balance=MAX_BALANCE - 1000), "over_max_balance", "INITIALIZE FOR LOAD: 6A80"),
    ]
    for card, reason, detail in cases:
        before = _card_state(card)
        terminal = topup(service, SimReader(card, timing=None), tmp_path / f"{reason}.db")
        outcome = terminal.load(2000)
        assert outcome is not None and (outcome.status, outcome.reason) == (LoadStatus.REFUSED, reason)
        assert outcome.detail.startswith(detail), outcome.detail
        assert _card_state(card) == before
    assert service.ledger.loads() == []


def test_no_card_and_a_card_without_load_key(service, tmp_path: Path) -> None:
    terminal = topup(service, SimReader(timing=None), tmp_path / "loads.db")
    assert terminal.load(2000) is None
    card = demo_card(key_indexes=(1,))
    card.image.keys[1].load = None
    outcome = topup(service, SimReader(card, timing=None), tmp_path / "other.db").load(2000)
    assert outcome is not None and (outcome.status, outcome.reason) == (LoadStatus.REFUSED, "no_load_key")


def test_the_clock_goes_into_the_credit(tmp_path: Path) -> None:
    service = demo_service(tmp_path / "ledger.db")
    card = demo_card()
    clock = ManualClock(dt.datetime(2026, 5, 6, 7, 8, 9))
    terminal = load_terminal(SimReader(card, timing=None), InProcessLoadHost(service, TOPUP.token),
                             tmp_path / "loads.db", clock=clock)
    outcome = terminal.load(100)
    assert outcome is not None and outcome.exchanges[-1].command[5:12] == h("20260506 070809")
    assert service.ledger.loads()[0].datetime == "20260506070809"
    assert WHEN != clock.now()
    service.close()


def test_a_copy_of_a_card_is_refused_and_the_terminal_loads_the_next_card(service, tmp_path: Path) -> None:
    """A card showing an online counter the journal already holds (a copy, a card image restored from a copy) is
    refused as such; it does not stop the top-up machine."""
    import copy

    card = demo_card(balance=5000)
    older = SimCard(copy.deepcopy(card.image))
    reader = SimReader(card, timing=None)
    terminal = topup(service, reader, tmp_path / "loads.db")
    assert terminal.load(2000).status is LoadStatus.LOADED
    reader.take()
    reader.put(older)
    refused = terminal.load(2000)
    assert refused is not None and (refused.status, refused.reason) == (LoadStatus.REFUSED, "duplicate_card")
    assert "online counter 0 is already journaled" in refused.detail and older.balance == 5000
    reader.take()
    reader.put(demo_card("03103640000000000078", balance=100))
    assert terminal.load(2000).status is LoadStatus.LOADED
