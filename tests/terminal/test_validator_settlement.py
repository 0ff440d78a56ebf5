"""A torn debit is settled from the card's own evidence whenever the card comes back, and a card never stops the
validator: proof, the card's 0x18 log, its counter; copies and restored images; restarts; a PSAM repeating itself."""

from __future__ import annotations

import copy

import pytest

from protocols.card_files import TRANSACTION_LOG_RECORD
from sim.card import SimCard
from sim.psam import demo_psam
from sim.reader import Tear
from terminal.config import ValidatorConfig
from terminal.errors import OutOfService
from terminal.journal import EventKind, JournalStorageError, MemoryJournal, SqliteJournal
from terminal.open_debits import OpenDebits
from terminal.outcome import Decline, TapStatus
from terminal.records import DebitState, Evidence

from .validator_support import Rig, card

OTHER_TERMINAL = bytes.fromhex("200041590002")


def _ins(outcome) -> list[str]:
    return [e.command[:2].hex().upper() for e in outcome.exchanges]


def _other_validator(rig: Rig) -> Rig:
    """A second validator of the operator (its own PSAM and journal), on the same clock."""
    return Rig(psam=demo_psam(OTHER_TERMINAL), clock=rig.clock)


def test_a_proof_is_confirmed_by_the_card_log_once_the_psam_session_is_gone():
    rig, c, other = Rig(), card(), card("03102900000000000002")
    rig.reader.plan_tear(Tear.after("8054"))
    assert rig.tap(c).status is TapStatus.RETRY
    assert rig.tap(other, advance=1).accepted  # the PSAM's session for the torn debit is gone
    back = rig.tap(c, advance=100)
    assert back.accepted and back.recovered and back.mac2_verified is None and back.tac is not None
    assert _ins(back) == ["00A4", "805A", "00B2"]  # SELECT, the proof, the card's newest 0x18 record
    entry = rig.journal.get(back.journal_row)
    assert (entry.record.evidence, entry.record.tac) == (Evidence.PROVE, back.tac)
    assert c.balance == 9800
    rig.check_tacs()


def test_a_debit_proven_by_the_card_log_after_a_ride_elsewhere():
    """Torn at A after the card committed; the rider's next ride is on another validator B; back at A a day later the
    proof is B's, so A's row is settled from the card's 0x18 record (no TAC) and this tap is a new ride."""
    a, c = Rig(), card()
    a.reader.plan_tear(Tear.after("8054"))
    assert a.tap(c).status is TapStatus.RETRY
    b = _other_validator(a)
    assert b.tap(c, advance=3600).accepted
    back = a.tap(c, advance=86400)
    assert back.accepted and not back.recovered and back.fare == 200
    assert c.balance == 10000 - 3 * 200  # A's torn debit, B's ride, A's ride today
    torn = a.journal.get(1)
    assert (torn.record.state, torn.record.evidence, torn.record.tac) == (DebitState.COMPLETE, Evidence.LOG, None)
    log = TRANSACTION_LOG_RECORD.parse(torn.card_record)
    assert (log.atc, log.amount, log.transaction_type, log.terminal_number) == (0, 200, 0x09,
                                                                                 a.validator.psam.terminal_id)
    assert a.journaled(DebitState.COMPLETE) == 400 and b.journaled(DebitState.COMPLETE) == 200
    a.check_tacs()


@pytest.mark.parametrize("others_tapped", [False, True])
def test_a_counter_spent_elsewhere_voids_the_row_whatever_the_proof(others_tapped):
    """Torn at A before the card committed; B then spends that counter. GET TRANSACTION PROVE for the counter answers
    B's proof: it must not complete A's row. MAC2 fails under A's session, or (session gone) the card's log shows B."""
    a, c = Rig(), card()
    a.reader.plan_tear(Tear.before("8054"))
    assert a.tap(c).status is TapStatus.RETRY
    if others_tapped:
        assert a.tap(card("03102900000000000002"), advance=1).accepted
    b = _other_validator(a)
    assert b.tap(c, advance=120).accepted
    back = a.tap(c, advance=120)
    assert back.accepted and not back.recovered
    torn = a.journal.get(1).record
    assert (torn.state, torn.evidence) == (DebitState.VOID, Evidence.LOG)
    assert c.balance == 9600 and a.journaled(DebitState.COMPLETE) == 200 * (1 + others_tapped)
    a.check_tacs()


def test_a_card_whose_log_no_longer_holds_the_debit_is_given_up_to_the_back_office():
    a, c = Rig(), card()
    a.reader.plan_tear(Tear.after("8054"))
    a.tap(c)
    b = _other_validator(a)
    for _ in range(10):  # the card's 0x18 log keeps 10 records: A's is pushed out
        assert b.tap(c, advance=61).accepted
    back = a.tap(c, advance=61)
    assert back.accepted and not back.recovered
    torn = a.journal.get(1)
    assert (torn.record.state, torn.record.evidence) == (DebitState.UNCONFIRMED, Evidence.UNPROVABLE)
    assert "counter is at 11" in torn.reason and "no record of counter 0" in torn.reason
    assert list(a.journal.open_rows()) == []  # not asked about again
    again = a.tap(c, advance=61)
    assert again.accepted and "805A" not in _ins(again)


def test_a_card_image_restored_behind_an_open_row_is_declined():
    rig, c = Rig(), card()
    older = copy.deepcopy(c.image)
    assert rig.tap(c).accepted
    rig.reader.plan_tear(Tear.before("8054"))
    assert rig.tap(c, advance=61).status is TapStatus.RETRY  # row 2 waits at counter 1
    copy_outcome = rig.tap(SimCard(older), advance=61)
    assert (copy_outcome.status, copy_outcome.decline) == (TapStatus.DECLINED, Decline.DUPLICATE_CARD)
    assert "counter 0 below row 2's 1" in copy_outcome.detail
    [event] = rig.journal.events()
    assert (event.kind, event.card_serial, event.row_ref) == (EventKind.COUNTER_BACKWARDS.value, c.serial, 2)
    assert rig.journal.get(2).record.state is DebitState.UNCONFIRMED  # still the real card's to settle
    back = rig.tap(c, advance=1)
    assert back.accepted and not back.recovered and c.balance == 9600
    assert (rig.journal.get(2).record.state, rig.journal.get(2).record.evidence) == (DebitState.VOID, Evidence.COUNTER)
    assert rig.validator.out_of_service is None


def test_a_copied_card_is_declined_and_the_validator_keeps_serving():
    rig, c = Rig(), card()
    copied = SimCard(copy.deepcopy(c.image))
    assert rig.tap(c).accepted
    outcome = rig.tap(copied, advance=61)
    assert (outcome.status, outcome.decline) == (TapStatus.DECLINED, Decline.DUPLICATE_CARD)
    assert outcome.message == ("card refused: copied or replayed card, please see the service desk "
                               "(ATC 0 already journaled as row 1)")
    assert copied.balance == 10000  # no DEBIT was sent
    [event] = rig.journal.events()
    assert (event.kind, event.card_serial, event.row_ref) == (EventKind.DUPLICATE_CARD.value, c.serial, 1)
    assert rig.validator.out_of_service is None
    assert rig.tap(card("03102900000000000002"), advance=1).accepted
    assert rig.tap(c, advance=61).accepted and c.balance == 9600
    rig.check_tacs()


def test_a_psam_repeating_a_serial_is_the_validators_own_fault(tmp_path):
    path = tmp_path / "j.db"
    first = Rig(journal=SqliteJournal(path))
    assert first.tap(card()).accepted
    first.journal.close()
    again = Rig(journal=SqliteJournal(path), psam=demo_psam(), clock=first.clock)  # a PSAM whose serial restarts at 0
    outcome = again.tap(card("03102900000000000002"), advance=1)
    assert outcome.status is TapStatus.OUT_OF_SERVICE
    assert outcome.detail == ("the PSAM's transaction serial 0 is already journaled for terminal 200041599997 (row 1): "
                              "the PSAM is behind this journal (a replaced or restored PSAM, or another validator's "
                              "journal)")
    assert [e.kind for e in again.journal.events()] == [EventKind.PSAM_SERIAL_REPEAT.value]
    assert again.journal.highest_tsn(bytes.fromhex("200041599997")) == 0


def test_an_unconfirmed_row_is_settled_after_a_restart(tmp_path):
    path = tmp_path / "j.db"
    rig, c = Rig(journal=SqliteJournal(path)), card()
    rig.reader.plan_tear(Tear.after("8054"))
    rig.tap(c)
    rig.clock.advance(30)
    assert rig.validator.expire() == 1
    rig.journal.close()
    restarted = Rig(journal=SqliteJournal(path), psam=demo_psam(tsn=1), clock=rig.clock)
    assert restarted.validator.pending == []  # reported already; still open
    back = restarted.tap(c, advance=3 * 86400)  # days later: the torn ride was taken, this is a new one
    assert back.accepted and not back.recovered and c.balance == 9600
    assert restarted.journal.get(1).record.evidence is Evidence.PROVE
    restarted.check_tacs()


def test_open_rows_past_the_memory_limit_are_found_in_the_journal():
    rig = Rig(start=False)
    rig.validator._open = index = OpenDebits(rig.journal, limit=2)
    rig.validator.start()
    cards = [card(f"031029000000000001{n:02d}") for n in range(3)]
    for c in cards:
        rig.reader.plan_tear(Tear.after("8054"))
        assert rig.tap(c, advance=1).status is TapStatus.RETRY
    assert (index.count, index.in_memory) == (3, False)
    assert rig.tap(card("03102900000000000999"), advance=1).accepted  # nothing open: the journal said so
    for c in cards:
        assert rig.tap(c, advance=100).recovered
    assert (index.count, index.in_memory) == (0, True)
    assert sum(10000 - c.balance for c in cards) == 600


def test_open_debits_load_only_what_a_card_may_still_settle():
    journal = MemoryJournal()
    index = OpenDebits(journal)
    assert index.load() == [] and index.rows(bytes(10)) == []


def test_the_repeat_tap_rule_over_the_cards_own_record_spans_the_validators_of_a_line():
    """Two validators on one bus (same operator and line): with ``repeat_tap_scope = "line"`` the second reads the
    card's newest 0x1E record and does not charge a ride the first was paid for, a torn debit included."""
    line = ValidatorConfig(repeat_tap_scope="line")
    front, c = Rig(config=line), card()
    rear = Rig(psam=demo_psam(OTHER_TERMINAL), clock=front.clock, config=line)
    assert front.tap(c).accepted
    again = rear.tap(c, advance=10)
    assert (again.status, again.decline) == (TapStatus.DECLINED, Decline.REPEAT_TAP)
    assert again.detail == "paid on this line at 08:00:00 (terminal 200041599997)" and c.balance == 9800
    assert rear.tap(c, advance=60).accepted and c.balance == 9600  # 70 s after: a new ride
    front.reader.plan_tear(Tear.after("8054"))
    assert front.tap(c, advance=600).status is TapStatus.RETRY
    assert rear.tap(c, advance=20).decline is Decline.REPEAT_TAP  # the torn debit paid: the rider is not charged
    back = front.tap(c, advance=5)
    assert back.recovered and c.balance == 9400
    default = Rig(psam=demo_psam(bytes.fromhex("200041590003")), clock=front.clock)  # scope "validator"
    assert default.tap(c, advance=1).accepted and c.balance == 9200


def test_a_journal_failing_when_a_window_ends_puts_the_validator_out_of_service():
    class Failing(MemoryJournal):
        def mark_unconfirmed(self, row_id: int) -> None:
            raise JournalStorageError("disk full")

    rig, c = Rig(journal=Failing()), card()
    rig.reader.plan_tear(Tear.after("8054"))
    rig.tap(c)
    rig.clock.advance(30)
    with pytest.raises(OutOfService, match=r"^journal: disk full$"):
        rig.validator.poll()
    assert rig.validator.out_of_service == "journal: disk full"
