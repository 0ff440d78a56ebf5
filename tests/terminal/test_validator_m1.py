"""The validator with legacy M1 cards: the tap exchange by exchange, every decline of its own, the blacklist's black
flag, copies, and a tear before and after every exchange of the tap (and of the tap that recovers it), with money
taken from the card always equal to money journaled and every journaled MAC verified as the back office does."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt

import pytest

from protocols.m1.layout import (
    LAST_RIDE,
    PUBLIC_BACKUP_BLOCK,
    PUBLIC_BLOCK,
    RECORD_BLOCKS,
    TRIP_RECORD,
    EnableFlag,
    LastRide,
    TripRecord,
    parse_public_info,
)
from sim.card.m1_card import M1Card
from sim.reader import Tear
from terminal.blacklist import Blacklist, build_blacklist
from terminal.config import ValidatorConfig
from terminal.journal import EventKind, SqliteJournal
from terminal.outcome import Decline, TapStatus
from terminal.records import DebitState, Evidence, Technology, m1_serial

from .validator_support import HOME_CITY, START, Rig, m1_card

SERIAL = m1_serial(HOME_CITY + bytes.fromhex("0001 00000001"))
PSAM_COMMANDS = ["80FC", "801A", "80FA", "807C"]  # sector keys, auth code (DES INIT, DES CRYPT), the debit's MAC
READS = ["FF82", "FF86", "FFB0", "FFB0",  # sector 1: issuance, validity
         "FF82", "FF86", "FFB0", "FFB0",  # sector 6: public info and its backup
         "FF82", "FF86", "FFB0", "FFB0",  # sector 2: purse and its backup
         "FF82", "FF86", "FFB0"]  # the newest trip record
DEBIT = ["FF82", "FF86", "FFD6",  # the trip record
         "FF82", "FF86", "FFD6", "FFD6", "FFD6",  # the last ride, both public copies: debiting
         "FF82", "FF86", "FFD7", "FFD7",  # the decrement, the backup copy
         "FF82", "FF86", "FFD6", "FFD6"]  # both public copies: done
TAP = len(READS) + len(DEBIT)
DECREMENT = len(READS) + 10


def state(card: M1Card) -> tuple[int | None, int]:
    """The card's balance and counter (its public info in force)."""
    return card.balance, parse_public_info(card.image.block(PUBLIC_BLOCK)).counter


def conserved(rig: Rig, card: M1Card, start: int = 10000) -> int:
    """Money taken from the card equals money journaled complete, nothing is left open, and every journaled MAC
    verifies; returns what was taken."""
    taken = start - (card.balance or 0)
    assert taken == rig.journaled(DebitState.COMPLETE)
    assert list(rig.journal.entries([DebitState.PENDING])) == []
    rig.check_tacs()
    return taken


def test_an_m1_tap_exchange_by_exchange() -> None:
    rig, c = Rig(), m1_card()
    outcome = rig.tap(c)
    assert outcome is not None and outcome.accepted, outcome
    assert (outcome.fare, outcome.balance_before, outcome.balance_after, outcome.message) == (
        200, 10000, 9800, "paid 2.00, balance 98.00")
    card_side = [e.command[:2].hex().upper() for e in outcome.exchanges if e.link == "reader"]
    psam_side = [e.command[:2].hex().upper() for e in outcome.exchanges if e.link == "sam"]
    assert card_side == READS + DEBIT and psam_side == PSAM_COMMANDS
    assert state(c) == (9800, 1)
    assert c.image.block(PUBLIC_BLOCK) == c.image.block(PUBLIC_BACKUP_BLOCK)
    assert TRIP_RECORD.parse(c.image.block(RECORD_BLOCKS[0])) == TripRecord(1, 6, 200, 10000, START)
    assert LAST_RIDE.parse(c.image.block(26)) == LastRide(1, 0x06, bytes.fromhex("0001"), bytes.fromhex("0001"),
                                                          HOME_CITY, START)
    [entry] = rig.journal.entries()
    rec = entry.record
    assert (rec.technology, rec.card_serial, rec.card_uid, rec.offline_atc, rec.amount, rec.balance_before) == (
        Technology.M1, SERIAL, c.image.uid, 0, 200, 10000)
    assert (rec.state, rec.evidence, rec.tac, rec.mac2) == (DebitState.COMPLETE, Evidence.DEBIT, outcome.tac, None)
    assert rec.issuer_id == HOME_CITY + bytes.fromhex("0001 FFFFFFFF") and rec.trans_type == 0x06
    rig.check_tacs()


def test_the_tsn_is_the_psams_one_counter_for_both_technologies() -> None:
    from .validator_support import card

    rig = Rig()
    rig.tap(m1_card())
    rig.tap(card())
    rig.tap(m1_card("00000002"))
    assert [e.record.tsn for e in rig.journal.entries()] == [0, 1, 2]
    assert [e.record.technology.value for e in rig.journal.entries()] == ["m1", "cpu", "m1"]


def test_repeat_tap_and_card_type_fares() -> None:
    rig, c = Rig(), m1_card(card_type=2)  # a student: 50% on the demo fare
    first = rig.tap(c)
    assert first is not None and (first.fare, first.rule) == (100, "flat, student 50%")
    again = rig.tap(c, advance=5)
    assert again is not None and again.decline is Decline.REPEAT_TAP and c.balance == 9900
    later = rig.tap(c, advance=120)
    assert later is not None and later.accepted and c.balance == 9800
    free = m1_card("00000002", card_type=3)  # elderly ride free: nothing taken, nothing journaled
    ride = rig.tap(free)
    assert ride is not None and ride.accepted and ride.fare == 0 and free.balance == 10000
    assert len(list(rig.journal.entries())) == 2


@pytest.mark.parametrize("fields,decline,detail", [
    ({"expiry": dt.date(2026, 1, 1)}, Decline.EXPIRED, "expired 2026-01-01"),
    ({"start": dt.date(2027, 1, 1), "expiry": dt.date(2030, 1, 1)}, Decline.NOT_YET_VALID, "valid from 2027-01-01"),
    ({"enable_flag": EnableFlag.NOT_ENABLED}, Decline.NOT_YET_VALID, "not enabled by its issuer"),
    ({"enable_flag": EnableFlag.STOPPED}, Decline.CARD_LOCKED, "stopped by its issuer"),
    ({"enable_flag": 0x09}, Decline.CARD_INVALID, "enable flag 09"),
    ({"city": bytes.fromhex("3640")}, Decline.NOT_INTEROPERABLE, "M1 card of city 3640"),
    ({"card_type": 0x09}, Decline.CARD_TYPE_REFUSED, "card type not accepted"),
    ({"balance": 150}, Decline.INSUFFICIENT_FUNDS, "fare 2.00"),
])
def test_m1_card_checks(fields: dict, decline: Decline, detail: str) -> None:
    rig, c = Rig(), m1_card(**fields)
    before = c.image.memory[:]
    outcome = rig.tap(c)
    assert outcome is not None and (outcome.status, outcome.decline) == (TapStatus.DECLINED, decline), outcome
    assert detail in outcome.detail
    assert c.image.memory == before and list(rig.journal.entries()) == []
    if decline is Decline.INSUFFICIENT_FUNDS:
        assert outcome.message == "insufficient balance, balance 1.50 (fare 2.00)"


def test_a_psam_without_m1_masters_refuses_m1_cards_and_takes_cpu_cards() -> None:
    from sim.psam import SimPsam
    from terminal.keyset import Keyset, KeyUsage

    from .validator_support import KEYSET, card

    cpu_only = Keyset(algorithm=KEYSET.algorithm, levels=2, test_only=True, keys={
        (usage, 1): KEYSET.master(usage, 1).export() for usage in (KeyUsage.PURCHASE, KeyUsage.TAC)})
    rig = Rig(psam=SimPsam(cpu_only, bytes.fromhex("200041599997")))
    outcome = rig.tap(m1_card())
    assert outcome is not None and outcome.decline is Decline.SAM_REFUSED and "6A88" in outcome.detail
    assert rig.tap(card()).accepted  # type: ignore[union-attr]


def _at(line: int, rig: Rig | None = None, **settings: object) -> Rig:
    place = dataclasses.replace(ValidatorConfig().place, line=line)
    return Rig(fares="demo-sections.toml", config=ValidatorConfig(place=place, **settings),  # type: ignore[arg-type]
               clock=None if rig is None else rig.clock)


def test_a_transfer_discount_from_the_cards_last_ride() -> None:
    first, c = _at(1), m1_card()
    assert first.tap(c).fare == 100  # type: ignore[union-attr]
    second = _at(2, first)
    outcome = second.tap(c, advance=10 * 60)
    assert outcome is not None and outcome.accepted and (outcome.fare, outcome.rule) == (100, "flat, transfer -100")
    assert c.balance == 10000 - 200  # 1.00 on line 1, then 2.00 less the transfer of 1.00
    late = _at(1, first).tap(c, advance=120 * 60)  # past the 90-minute window: a full fare
    assert late is not None and late.fare == 100 and "transfer" not in late.rule


def test_the_line_wide_repeat_tap_rule_reads_the_last_ride() -> None:
    a, c = _at(1, repeat_tap_scope="line"), m1_card()
    assert a.tap(c).accepted  # type: ignore[union-attr]
    b = _at(1, a, repeat_tap_scope="line")  # another validator on the same line: it never saw this card
    again = b.tap(c, advance=20)
    assert again is not None and again.decline is Decline.REPEAT_TAP and "paid on this line at 08:00:00" in again.detail
    elsewhere = _at(2, a, repeat_tap_scope="line").tap(c)
    assert elsewhere is not None and elsewhere.accepted


def test_the_last_ride_of_a_rolled_back_debit_is_never_read() -> None:
    """A tear after the last ride is written but before the purse: the card rolls back, its counter is the previous
    ride's, and the block that names the debit that never happened is not read (no transfer from it)."""
    a, c = _at(1), m1_card()
    assert a.tap(c).accepted  # type: ignore[union-attr]
    b = _at(2, a)
    b.reader.plan_tear(Tear.before("FFD6001810"))  # the public info's "debiting": block 26 is written, 24 is not
    assert b.tap(c, advance=30).decline is Decline.CARD_REMOVED  # type: ignore[union-attr]
    assert LAST_RIDE.parse(c.image.block(26)).counter == 2 and state(c) == (9900, 1)
    third = _at(3, a).tap(c, advance=30)  # line 3: a transfer only from a ride that happened
    assert third is not None and third.accepted and third.rule == "flat"


def test_a_forged_card_fails_the_issuers_authentication_code() -> None:
    rig, c = Rig(), m1_card()
    c.image.set_block(5, c.image.block(5)[:8] + bytes.fromhex("20991231") + c.image.block(5)[12:])  # a new expiry
    outcome = rig.tap(c)
    assert outcome is not None and outcome.decline is Decline.CARD_NOT_AUTHENTIC
    assert outcome.message.startswith("card refused: it failed authentication")
    assert c.balance == 10000 and list(rig.journal.entries()) == []


def test_a_mifare_classic_of_another_system_is_not_a_transit_card() -> None:
    from protocols.mifare import CardSize
    from sim.card.m1_card import M1Image, classic_atqa, classic_sak

    uid = bytes.fromhex("11223344")
    image = M1Image(uid, classic_atqa(uid, CardSize.K1), classic_sak(CardSize.K1), bytearray(1024))
    for sector in range(16):  # transport keys: FFFFFFFFFFFF
        image.set_block(4 * sector + 3, bytes.fromhex("FFFFFFFFFFFF FF078069 FFFFFFFFFFFF"))
    outcome = Rig().tap(M1Card(image))
    assert outcome is not None and outcome.decline is Decline.NOT_TRANSIT_CARD
    assert "not one of this purse's cards" in outcome.detail


def test_a_blacklisted_m1_card_gets_its_black_flag(tmp_path) -> None:
    build_blacklist([SERIAL.hex()], tmp_path / "black.bin")  # as an operator lists it: 00002900000100000001
    rig, c = Rig(blacklist=Blacklist.open(tmp_path / "black.bin")), m1_card()
    outcome = rig.tap(c)
    assert outcome is not None and (outcome.decline, outcome.detail) == (Decline.BLACKLISTED, "black flag set")
    assert parse_public_info(c.image.block(PUBLIC_BLOCK)).black_flag == 0x04
    assert c.image.block(PUBLIC_BLOCK) == c.image.block(PUBLIC_BACKUP_BLOCK) and c.balance == 10000
    elsewhere = Rig().tap(c)  # any validator, blacklist or not, now refuses the card
    assert elsewhere is not None and (elsewhere.decline, elsewhere.detail) == (Decline.CARD_LOCKED, "black flag set")


def test_a_copy_of_a_card_is_declined_and_journaled_as_an_event() -> None:
    rig, c = Rig(), m1_card()
    twin = copy.deepcopy(c)
    assert rig.tap(c).accepted  # type: ignore[union-attr]
    outcome = rig.tap(twin, advance=120)
    assert outcome is not None and outcome.decline is Decline.DUPLICATE_CARD
    assert twin.balance == 10000  # declined before anything was written to it
    assert [(e.kind, e.card_serial, e.row_ref) for e in rig.journal.events()] == [
        (EventKind.DUPLICATE_CARD.value, SERIAL, 1)]


def test_an_older_image_of_a_card_with_a_torn_debit_is_declined() -> None:
    rig, c = Rig(), m1_card()
    older = copy.deepcopy(c)
    assert rig.tap(c).accepted  # type: ignore[union-attr]
    rig.reader.plan_tear(Tear.after("FFD7000905"))  # the second debit's decrement: its row stays open
    torn = rig.tap(c, advance=120)
    assert torn is not None and torn.status is TapStatus.RETRY and torn.message == "please tap again"
    outcome = rig.tap(older, advance=5)  # counter 0, below the open row's 1
    assert outcome is not None and outcome.decline is Decline.DUPLICATE_CARD
    assert [e.kind for e in rig.journal.events()] == [EventKind.COUNTER_BACKWARDS.value]
    back = rig.tap(c, advance=5)  # the real card settles its row
    assert back is not None and back.accepted and back.recovered and c.balance == 9600
    assert conserved(rig, c) == 400


def test_a_torn_debit_settled_by_another_validator_then_back_here() -> None:
    """Validator A journals a torn debit; the card is finished by validator B, rides twice more there, and comes back
    to A, which settles its row from the card's trip record of that counter."""
    a, b, c = Rig(), Rig(), m1_card()
    a.reader.plan_tear(Tear.after("FFD7000905"))
    assert a.tap(c).status is TapStatus.RETRY  # type: ignore[union-attr]
    for _ in range(2):
        assert b.tap(c, advance=120).accepted  # type: ignore[union-attr]
    a.clock.advance(600)
    back = a.tap(c)
    assert back is not None and back.accepted and not back.recovered  # a new ride: the proven one is not the newest
    [first, second] = a.journal.entries()
    assert (first.record.state, first.record.evidence, first.card_record) == (
        DebitState.COMPLETE, Evidence.LOG, c.image.block(RECORD_BLOCKS[0]))
    assert first.record.tac == first.record.mac1 and second.record.offline_atc == 3
    assert c.balance == 10000 - 4 * 200
    a.check_tacs()


def test_a_card_that_leaves_before_its_purse_is_touched_owes_nothing() -> None:
    a, b, c = Rig(), Rig(), m1_card()
    a.reader.plan_tear(Tear.before("FFD6001910"))  # the public backup's "debiting": the purse not reached
    assert a.tap(c).decline is Decline.CARD_REMOVED  # type: ignore[union-attr]
    [row] = a.journal.entries()
    assert (row.record.state, row.record.evidence) == (DebitState.VOID, Evidence.DEBIT)
    assert "purse was not touched" in row.reason
    assert b.tap(c, advance=5).accepted  # type: ignore[union-attr]  # rolled back there, then a ride: counter 1
    assert state(c) == (9800, 1)


def test_a_trip_record_that_does_not_decode_leaves_the_row_to_the_back_office() -> None:
    a, b, c = Rig(), Rig(), m1_card()
    a.reader.plan_tear(Tear.after("FFD7000905"))
    assert a.tap(c).status is TapStatus.RETRY  # type: ignore[union-attr]
    assert b.tap(c, advance=120).accepted  # type: ignore[union-attr]  # B finishes it and rides: counter 2
    c.image.set_block(RECORD_BLOCKS[0], c.image.block(RECORD_BLOCKS[0])[:9] + bytes.fromhex("20251399999999"))
    back = a.tap(c, advance=600)
    assert back is not None and back.accepted and not back.recovered  # the card is not stuck: a new ride
    [row, ride] = a.journal.entries()
    assert (row.record.state, row.record.evidence) == (DebitState.UNCONFIRMED, Evidence.UNPROVABLE)
    assert ride.record.offline_atc == 2


def test_a_torn_debit_rolled_back_elsewhere_is_void() -> None:
    a, b, c = Rig(), Rig(), m1_card()
    a.reader.plan_tear(Tear.before("FFD7000905"))  # the decrement lost on its way: A cannot tell
    assert a.tap(c).status is TapStatus.RETRY  # type: ignore[union-attr]
    assert b.tap(c, advance=5).accepted  # type: ignore[union-attr]  # B rolls it back and takes its own ride
    back = a.tap(c, advance=600)
    assert back is not None and back.accepted and not back.recovered  # counter 1 went to B's ride: A's row is void
    [void, ride] = a.journal.entries()
    assert (void.record.state, void.record.evidence, void.card_record) == (
        DebitState.VOID, Evidence.LOG, c.image.block(RECORD_BLOCKS[0]))
    assert ride.record.offline_atc == 1 and state(c) == (9600, 2)


def test_the_journal_survives_a_restart_with_an_open_m1_row(tmp_path) -> None:
    path = tmp_path / "journal.db"
    rig, c = Rig(journal=SqliteJournal(path)), m1_card()
    rig.reader.plan_tear(Tear.after("FFD7000905"))
    assert rig.tap(c).status is TapStatus.RETRY  # type: ignore[union-attr]
    rig.journal.close()
    again = Rig(journal=SqliteJournal(path), clock=rig.clock)
    assert [p.technology for p in again.validator.pending] == [Technology.M1]
    back = again.tap(c, advance=5)
    assert back is not None and back.accepted and back.recovered and back.tac is not None
    assert conserved(again, c) == 200


@pytest.mark.parametrize("late, recovered", [(3599, True), (3600, False)])
def test_an_m1_card_back_past_retap_same_ride_s_rides_again(late: int, recovered: bool) -> None:
    """The torn debit the card made is settled from its trip record either way; an hour or more after it, the rider
    walked away with that ride and this tap is a new one."""
    rig, c = Rig(), m1_card()
    rig.reader.plan_tear(Tear.after("FFD7000905"))
    assert rig.tap(c).status is TapStatus.RETRY  # type: ignore[union-attr]
    back = rig.tap(c, advance=late)
    assert back is not None and back.accepted and back.recovered is recovered
    assert conserved(rig, c) == (200 if recovered else 400)


# --- tears everywhere ---------------------------------------------------------------------------------------------

def _torn(plan: Tear) -> tuple[Rig, M1Card, TapStatus]:
    rig, c = Rig(), m1_card()
    rig.reader.plan_tear(plan)
    first = rig.tap(c)
    assert first is not None
    return rig, c, first.status


def _finish(rig: Rig, c: M1Card, accepted_before: bool) -> None:
    """Tap until the card is served; then exactly one ride is paid and journaled."""
    outcome = rig.tap(c, advance=3)
    assert outcome is not None
    if accepted_before:
        assert outcome.decline is Decline.REPEAT_TAP, outcome
    else:
        assert outcome.accepted, outcome
    assert conserved(rig, c) == 200 and state(c) == (9800, 1)
    assert parse_public_info(c.image.block(PUBLIC_BLOCK)).process_flag == 0x02
    assert c.image.block(PUBLIC_BLOCK) == c.image.block(PUBLIC_BACKUP_BLOCK)


def test_the_tap_has_the_exchanges_the_walk_tears() -> None:
    rig, c = Rig(), m1_card()
    rig.tap(c)
    assert rig.reader.exchanges == TAP == 31


@pytest.mark.parametrize("plan", Tear.everywhere(TAP), ids=str)
def test_a_tear_anywhere_in_an_m1_tap(plan: Tear) -> None:
    rig, c, status = _torn(plan)
    torn_at = plan.at
    assert torn_at is not None
    if torn_at < DECREMENT:
        assert status is TapStatus.DECLINED and c.balance == 10000  # nothing taken, nothing owed
    elif torn_at == DECREMENT:  # taken or not, the validator cannot tell: the row waits for the card
        assert status is TapStatus.RETRY and [p.amount for p in rig.validator.pending] == [200]
        assert c.balance == (9800 if plan.committed else 10000)
    else:
        assert status is TapStatus.ACCEPTED and c.balance == 9800  # taken and journaled; the card finishes later
    if torn_at != DECREMENT:  # money taken equals money journaled, at once
        assert c.balance == 10000 - rig.journaled(DebitState.COMPLETE)
    _finish(rig, c, status is TapStatus.ACCEPTED)


def test_a_tear_anywhere_in_the_tap_that_recovers() -> None:
    """For each distinct state a torn tap leaves (card and journal), a tear before and after every exchange of the
    next tap; then a last tap: exactly one ride paid, money taken equal to money journaled, every MAC verified."""
    seen: set[tuple[bytes, tuple[str, ...]]] = set()
    runs = 0
    for first in Tear.everywhere(TAP):
        rig, c, status = _torn(first)
        key = (bytes(c.image.memory), tuple(e.record.state.value for e in rig.journal.entries()))
        if key in seen or (status is TapStatus.ACCEPTED and first.at == TAP - 1 and first.committed):
            continue
        seen.add(key)
        probe_rig, probe_card, _ = _torn(first)
        probe_rig.tap(probe_card, advance=3)
        for second in Tear.everywhere(probe_rig.reader.exchanges):
            rig, c, status = _torn(first)
            rig.reader.plan_tear(second)
            middle = rig.tap(c, advance=3)
            assert middle is not None
            done = status is TapStatus.ACCEPTED or middle.accepted
            if not rig.validator.pending:  # nothing left to the card's word: the money is all accounted for
                assert (c.balance or 0) == 10000 - rig.journaled(DebitState.COMPLETE)
            _finish(rig, c, done)
            runs += 1
    assert runs > 500


# --- no key in a trace --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("t0", [False, True], ids=["psam-t1", "psam-t0-get-response"])
def test_a_trace_of_an_m1_tap_holds_no_key(tmp_path, t0: bool) -> None:
    """LOAD KEY carries a sector key to the reader and the PSAM answers the keys: the trace file, and the tap's own
    exchanges, have them zeroed, and nothing else of the tap changes."""
    from protocols.mifare import KeyType
    from sim.psam import demo_psam
    from sim.reader import SimReader, SimSamSlot
    from terminal.fares import load_fares
    from terminal.journal import MemoryJournal
    from terminal.tracefile import TraceWriter, read_trace
    from terminal.validator import Validator

    from .validator_support import FARES, KEYSET

    c = m1_card()
    keys = {KEYSET.m1_sector_key(key_type, c.image.uid, sector, 1) for sector in range(16) for key_type in KeyType}
    path = tmp_path / "tap.trace"
    reader, sam = SimReader(c, timing=None), SimSamSlot(demo_psam(t0=t0), timing=None)
    rig = Rig()
    with TraceWriter(path, links=[(reader.name, "card"), (sam.name, "sam")], tool="test") as trace:
        validator = Validator(reader, sam, load_fares(FARES / "demo-flat.toml"), MemoryJournal(clock=rig.clock),
                              clock=rig.clock, tracer=trace)
        validator.start()
        outcome = validator.poll()
    assert outcome is not None and outcome.accepted
    text = path.read_text().upper()
    seen = [e.command + (e.response or b"") for e in outcome.exchanges]
    for key in keys - {bytes.fromhex("A0A1A2A3A4A5")}:  # sector 0's public key A is no secret
        assert key.hex().upper() not in text
        assert not any(key in bytes_ for bytes_ in seen)
    loads = [e for e in read_trace(path).events if getattr(e, "command", b"")[:2] == b"\xff\x82"]
    assert len(loads) == 8 and {e.command for e in loads} == {bytes.fromhex("FF82000006 000000000000")}
    asked = next(i for i, e in enumerate(outcome.exchanges) if e.command[:2] == b"\x80\xfc")
    answer = outcome.exchanges[asked + 1 if t0 else asked]  # on T=0, the GET RESPONSE that fetched the keys
    assert answer.response == bytes(36) + b"\x90\x00"  # six keys of six bytes, zeroed; the status word kept
