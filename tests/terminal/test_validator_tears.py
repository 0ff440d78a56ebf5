"""Cards torn away mid-tap: at every exchange, before and after the card commits, money is conserved.

Conservation here means: the card's balance went down by exactly what the journal holds as complete, nothing is charged
twice, every complete row's TAC verifies, and whatever the journal could not settle is a row the back office can.
"""

from __future__ import annotations

import dataclasses

import pytest

from sim.psam import demo_psam
from sim.reader import Tear
from terminal.config import ValidatorConfig
from terminal.journal import SqliteJournal
from terminal.outcome import Decline, TapStatus
from terminal.records import DebitState, Evidence

from .validator_support import Rig, card

FLAT_EXCHANGES = 5  # SELECT, READ 0x17, INITIALIZE, 80DC 0x1E, DEBIT
SECTION_EXCHANGES = 7  # SELECT, READ 0x17, READ 0x1A, INITIALIZE, 80DC 0x1A, 80DC 0x1E, DEBIT


def _conserved(rig: Rig, cards, start_balance: int = 10000) -> None:
    taken = sum(start_balance - c.balance for c in cards)
    assert taken == rig.journaled(DebitState.COMPLETE)
    assert list(rig.journal.entries([DebitState.PENDING])) == []
    rig.check_tacs()


@pytest.mark.parametrize("plan", Tear.everywhere(FLAT_EXCHANGES), ids=str)
def test_tear_then_return(plan):
    rig, c = Rig(), card()
    rig.reader.plan_tear(plan)
    first = rig.tap(c)
    torn_in_debit = plan.at == FLAT_EXCHANGES - 1
    if torn_in_debit:
        assert first.status is TapStatus.RETRY and first.message == "please tap again"
        assert [p.card_serial for p in rig.validator.pending] == [first.card_serial]
    else:
        assert (first.status, first.decline) == (TapStatus.DECLINED, Decline.CARD_REMOVED)
        assert rig.validator.pending == []
    second = rig.tap(c, advance=3)
    assert second.accepted, second
    assert second.recovered == (torn_in_debit and plan.committed)
    assert c.balance == 9800
    _conserved(rig, [c])
    if torn_in_debit and not plan.committed:
        [void] = rig.journal.entries([DebitState.VOID])
        assert "counter had not moved" in void.reason


@pytest.mark.parametrize("plan", Tear.everywhere(SECTION_EXCHANGES), ids=str)
def test_tear_in_a_section_fare_tap_on(plan):
    place = dataclasses.replace(ValidatorConfig().place, line=802, station=2)
    rig, c = Rig(fares="demo-sections.toml", config=ValidatorConfig(place=place)), card()
    rig.reader.plan_tear(plan)
    rig.tap(c)
    second = rig.tap(c, advance=3)
    assert second.accepted and second.fare == 100  # boarding_fare of line 802
    assert c.balance == 9900
    _conserved(rig, [c])


def test_recovered_debit_after_other_cards_tapped():
    rig, torn, others = Rig(), card(), [card(f"0310290000000000010{i}") for i in range(3)]
    rig.reader.plan_tear(Tear.after("8054"))
    assert rig.tap(torn).status is TapStatus.RETRY
    for other in others:
        assert rig.tap(other, advance=1).accepted
    back = rig.tap(torn, advance=1)
    assert back.accepted and back.recovered
    # the PSAM's session for this debit is gone (others used it), so MAC2 could not be checked; the TAC settles it
    assert back.mac2_verified is None
    _conserved(rig, [torn, *others])


def test_recovery_checks_mac2_while_the_psam_session_is_open():
    rig, c = Rig(), card()
    rig.reader.plan_tear(Tear.after("8054"))
    rig.tap(c)
    back = rig.tap(c, advance=1)
    assert back.recovered and back.mac2_verified is True
    assert [e.command[:2].hex().upper() for e in back.exchanges] == ["00A4", "805A", "8072"]


def test_torn_again_during_recovery():
    rig, c = Rig(), card()
    rig.reader.plan_tear(Tear.after("8054"))
    rig.tap(c)
    rig.reader.plan_tear(Tear.before("805A"))
    again = rig.tap(c, advance=1)
    assert again.status is TapStatus.RETRY and len(rig.validator.pending) == 1
    third = rig.tap(c, advance=1)
    assert third.recovered and c.balance == 9800
    _conserved(rig, [c])


@pytest.mark.parametrize("late", [0, 1, 30, 3600, 7 * 86400])
@pytest.mark.parametrize("committed", [True, False])
def test_a_card_back_after_the_window_settles_its_torn_debit(committed, late):
    """The window only decides when the row is reported unconfirmed: the card's evidence settles it whenever the card
    comes back (at exactly 30 s, a minute, an hour, a week), and the rider pays one fare."""
    rig, c = Rig(), card()
    rig.reader.plan_tear(Tear.after("8054") if committed else Tear.before("8054"))
    rig.tap(c)
    rig.clock.advance(29)
    assert rig.validator.expire() == 0
    rig.clock.advance(1)
    assert rig.validator.expire() == 1
    [row] = rig.journal.entries([DebitState.UNCONFIRMED])
    rec = row.record
    assert (rec.amount, rec.offline_atc, rec.tsn, rec.card_serial, rec.tac) == (200, 0, 0, c.serial, None)
    assert c.balance == (9800 if committed else 10000)
    later = rig.tap(c, advance=late)
    assert later.accepted and later.recovered is committed
    assert c.balance == 9800 and rig.journaled(DebitState.COMPLETE) == 200
    settled = rig.journal.get(row.row_id).record
    if committed:
        assert (settled.state, settled.evidence, settled.tac) == (DebitState.COMPLETE, Evidence.PROVE, later.tac)
    else:
        assert (settled.state, settled.evidence) == (DebitState.VOID, Evidence.COUNTER)
    assert list(rig.journal.open_rows()) == []
    rig.check_tacs()


def test_pending_debit_survives_a_restart(tmp_path):
    path = tmp_path / "journal.db"
    psam = demo_psam()
    rig, c = Rig(journal=SqliteJournal(path), psam=psam), card()
    rig.reader.plan_tear(Tear.after("8054"))
    assert rig.tap(c).status is TapStatus.RETRY
    rig.journal.close()
    restarted = Rig(journal=SqliteJournal(path), psam=psam, clock=rig.clock)
    assert [p.card_serial for p in restarted.validator.pending] == [c.serial]
    back = restarted.tap(c, advance=5)
    assert back.recovered and back.fare == 200
    _conserved(restarted, [c])


def test_many_cards_random_tears_conserve_money():
    import random

    rng = random.Random(7)
    rig = Rig()
    cards = [card(f"031029000000000002{i:02d}") for i in range(40)]
    for _ in range(400):
        c = rng.choice(cards)
        if rng.random() < 0.3:
            rig.reader.plan_tear((Tear.after if rng.random() < 0.5 else Tear.before)(rng.randrange(6)))
        rig.tap(c, advance=rng.choice([1, 5, 40, 70]))
        rig.reader.cancel_tears()
    rig.clock.advance(3600)
    rig.validator.expire()
    taken = sum(10000 - c.balance for c in cards)
    unconfirmed = list(rig.journal.entries([DebitState.UNCONFIRMED]))
    # every fen the cards lost is journaled complete, or sits in an unconfirmed row the back office settles
    complete = rig.journaled(DebitState.COMPLETE)
    assert complete <= taken <= complete + sum(e.record.amount for e in unconfirmed)
    rig.check_tacs()
