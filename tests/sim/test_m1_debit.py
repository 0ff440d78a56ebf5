"""The tear-safe M1 debit (protocols.m1.debit) against the simulated card through the simulated reader: the debit's
pseudo-APDUs byte for byte, what the next tap finds in each state, and a tear before and after every pseudo-APDU of
the debit, and of the recovery after it, always ending with exactly the debit done or exactly nothing done."""

from __future__ import annotations

import datetime as dt

import pytest

from protocols.hexutil import parse_hex
from protocols.m1.debit import (
    Assessment,
    Copy,
    Decrement,
    Outcome,
    Write,
    assess,
    blacklist_steps,
    plan_debit,
    public_in_force,
    step_apdus,
)
from protocols.m1.layout import (
    PUBLIC_BACKUP_BLOCK,
    PUBLIC_BLOCK,
    PURSE_BACKUP_BLOCK,
    PURSE_BLOCK,
    RECORD_BLOCKS,
    TRIP_RECORD,
    ProcessFlag,
    TripRecord,
    parse_public_info,
    public_info,
)
from protocols.mifare import KeyType, ValueBlock, sector_of
from protocols.pcsc_mifare import GeneralAuthenticate, LoadKey, ReadBlock
from sim.card.m1_card import M1Card
from sim.reader import SimReader, Tear
from terminal.errors import CardRemoved

from .m1_support import KEYSET, UID, new_m1

H = parse_hex
WHEN = dt.datetime(2025, 3, 14, 8, 30)
KEYS = {sector: KEYSET.m1_sector_key(KeyType.A, UID, sector, 1) for sector in range(16)}
BALANCE, FARE = 10000, 200


def exchange(reader: SimReader, apdu: bytes) -> bytes:
    response = reader.transceive(apdu, 1.0)
    assert response[-2:] == H("9000"), f"{apdu.hex().upper()} answered {response.hex().upper()}"
    return response[:-2]


def read_blocks(reader: SimReader, blocks: list[int]) -> dict[int, bytes]:
    """LOAD KEY and AUTH per sector, then READ each block: what a validator reads of the purse."""
    out, current = {}, None
    for block in blocks:
        if sector_of(block) != current:
            current = sector_of(block)
            exchange(reader, LoadKey(0, 0, KEYS[current]).to_bytes())
            exchange(reader, GeneralAuthenticate(4 * current, 0x60, 0).to_bytes())
        out[block] = exchange(reader, ReadBlock(block).to_bytes())
    return out


def tap(reader: SimReader, amount: int | None) -> Assessment:
    """One tap: read the purse's state, run the repairs it needs, then debit ``amount`` (``None``: recover only)."""
    assert reader.activate(1.0) is not None
    state = read_blocks(reader, [PUBLIC_BLOCK, PUBLIC_BACKUP_BLOCK])
    info = public_in_force(state[PUBLIC_BLOCK], state[PUBLIC_BACKUP_BLOCK])
    assert info is not None
    newest = RECORD_BLOCKS[info.record_pointer]
    state.update(read_blocks(reader, [PURSE_BLOCK, PURSE_BACKUP_BLOCK, newest]))
    found = assess(state[PUBLIC_BLOCK], state[PUBLIC_BACKUP_BLOCK], state[PURSE_BLOCK], state[PURSE_BACKUP_BLOCK],
                   state[newest])
    assert found.outcome is not Outcome.DAMAGED, found.reason
    for apdu in step_apdus(found.repairs, KEYS):
        exchange(reader, apdu)
    if amount is not None:
        assert found.info is not None and found.balance is not None
        debit = plan_debit(found.info, found.balance, amount, WHEN)
        for apdu in step_apdus(debit.steps, KEYS):
            exchange(reader, apdu)
    return found


def settled(card: M1Card) -> tuple[int, int]:
    """The card's (balance, counter), after checking it is clean: copies equal and valid, no debit under way."""
    image = card.image
    main, backup = image.block(PUBLIC_BLOCK), image.block(PUBLIC_BACKUP_BLOCK)
    assert main == backup
    info = parse_public_info(main)
    assert not ProcessFlag.in_progress(info.process_flag)
    assert image.block(PURSE_BLOCK) == image.block(PURSE_BACKUP_BLOCK)
    found = assess(main, backup, image.block(PURSE_BLOCK), image.block(PURSE_BACKUP_BLOCK),
                   image.block(RECORD_BLOCKS[info.record_pointer]))
    assert found.outcome is Outcome.CLEAN
    return ValueBlock.parse(image.block(PURSE_BLOCK)).value, info.counter


def test_the_debit_byte_for_byte() -> None:
    info = parse_public_info(public_info(8, 0, ProcessFlag.FRESH))
    debit = plan_debit(info, BALANCE, FARE, WHEN)
    record = H("0001 06 0000C8 002710 20250314083000")
    debiting = H("00 0001 01 0000 00 00 FFFFFFFFFFFFFF FF")
    done = H("00 0001 02 0000 00 00 FFFFFFFFFFFFFF FC")
    assert debit.steps == (Write(12, record), Write(24, debiting), Write(25, debiting), Decrement(9, FARE),
                           Copy(9, 10), Write(24, done), Write(25, done))
    assert (debit.slot, debit.counter, debit.balance_before, debit.balance_after) == (0, 1, 10000, 9800)
    assert debit.record == TripRecord(1, 6, 200, 10000, WHEN)
    apdus = [apdu.hex().upper() for apdu in step_apdus(debit.steps, KEYS)]
    assert apdus == [
        "FF82000006" + KEYS[3].hex().upper(), "FF8600000501000C6000", "FFD6000C10" + record.hex().upper(),
        "FF82000006" + KEYS[6].hex().upper(), "FF860000050100186000", "FFD6001810" + debiting.hex().upper(),
        "FFD6001910" + debiting.hex().upper(),
        "FF82000006" + KEYS[2].hex().upper(), "FF860000050100086000", "FFD700090502000000C8", "FFD7000902030A",
        "FF82000006" + KEYS[6].hex().upper(), "FF860000050100186000", "FFD6001810" + done.hex().upper(),
        "FFD6001910" + done.hex().upper(),
    ]
    assert len(step_apdus(debit.steps, KEYS, authenticated=3)) == 13  # sector 3 already open: no first AUTH


def test_a_debit_through_the_simulated_reader() -> None:
    card = new_m1(BALANCE)
    found = tap(SimReader(card), FARE)
    assert found.outcome is Outcome.CLEAN and found.balance == BALANCE
    assert settled(card) == (BALANCE - FARE, 1)
    assert card.image.block(12) == TRIP_RECORD.build(TripRecord(1, 6, FARE, BALANCE, WHEN))
    tap(SimReader(card), 150)
    assert settled(card) == (BALANCE - FARE - 150, 2)
    assert parse_public_info(card.image.block(24)).record_pointer == 1


def test_plan_refusals() -> None:
    info = parse_public_info(public_info(8, 0, ProcessFlag.DEBITING))
    with pytest.raises(Exception, match="recover it first"):
        plan_debit(info, BALANCE, FARE, WHEN)
    clean = parse_public_info(public_info(8, 0xFFFF, ProcessFlag.DONE))
    with pytest.raises(Exception, match="counter is exhausted"):
        plan_debit(clean, BALANCE, FARE, WHEN)
    fresh = parse_public_info(public_info(8, 0, 0))
    for amount, balance in ((0, 100), (101, 100), (1, 0x1000000)):
        with pytest.raises(Exception, match="cannot be taken"):
            plan_debit(fresh, balance, amount, WHEN)


def test_blacklisting_keeps_everything_else() -> None:
    info = parse_public_info(public_info(4, 7, ProcessFlag.DONE))
    flagged = public_info(4, 7, ProcessFlag.DONE, black_flag=0x04)
    assert blacklist_steps(info) == (Write(24, flagged), Write(25, flagged))


# --- the next tap, state by state ----------------------------------------------------------------------------------

PURSE = ValueBlock(BALANCE, 9).to_bytes()
AFTER = ValueBlock(BALANCE - FARE, 9).to_bytes()
RECORD = TRIP_RECORD.build(TripRecord(1, 6, FARE, BALANCE, WHEN))
IDLE_BEFORE = public_info(8, 0, ProcessFlag.FRESH)
DEBITING = public_info(0, 1, ProcessFlag.DEBITING)
DONE = public_info(0, 1, ProcessFlag.DONE)
UNDONE = public_info(8, 0, ProcessFlag.DONE)


@pytest.mark.parametrize("main,backup,purse,purse_backup,outcome,repairs,balance,counter", [
    (IDLE_BEFORE, IDLE_BEFORE, PURSE, PURSE, Outcome.CLEAN, (), BALANCE, 0),
    (DEBITING, IDLE_BEFORE, PURSE, PURSE, Outcome.ROLL_BACK, (Write(24, UNDONE), Write(25, UNDONE)), BALANCE, 0),
    (DEBITING, DEBITING, PURSE, PURSE, Outcome.ROLL_BACK, (Write(24, UNDONE), Write(25, UNDONE)), BALANCE, 0),
    (DEBITING, DEBITING, AFTER, PURSE, Outcome.FINISH, (Copy(9, 10), Write(24, DONE), Write(25, DONE)),
     BALANCE - FARE, 1),
    (DEBITING, DEBITING, AFTER, AFTER, Outcome.FINISH, (Write(24, DONE), Write(25, DONE)), BALANCE - FARE, 1),
    (DONE, DEBITING, AFTER, AFTER, Outcome.REPAIR, (Write(25, DONE),), BALANCE - FARE, 1),
    (UNDONE, DEBITING, PURSE, PURSE, Outcome.REPAIR, (Write(25, UNDONE),), BALANCE, 0),
    (DONE, DONE, AFTER, AFTER, Outcome.CLEAN, (), BALANCE - FARE, 1),
    # outside the model (a half-written block): the other copy is used
    (DONE[:15] + b"\x00", DONE, AFTER, AFTER, Outcome.REPAIR, (Write(24, DONE),), BALANCE - FARE, 1),
    (DONE, DONE, bytes(16), AFTER, Outcome.REPAIR, (Copy(10, 9),), BALANCE - FARE, 1),
    (DONE, DONE, AFTER, bytes(16), Outcome.REPAIR, (Copy(9, 10),), BALANCE - FARE, 1),
    (DEBITING, DEBITING, bytes(16), PURSE, Outcome.ROLL_BACK, (Copy(10, 9), Write(24, UNDONE), Write(25, UNDONE)),
     BALANCE, 0),
])
def test_what_the_next_tap_finds(main: bytes, backup: bytes, purse: bytes, purse_backup: bytes, outcome: Outcome,
                                 repairs: tuple, balance: int, counter: int) -> None:
    found = assess(main, backup, purse, purse_backup, RECORD)
    assert (found.outcome, found.repairs, found.balance) == (outcome, repairs, balance)
    assert found.info is not None and found.info.counter == counter
    if outcome in (Outcome.FINISH, Outcome.ROLL_BACK):
        assert found.interrupted == TripRecord(1, 6, FARE, BALANCE, WHEN)


@pytest.mark.parametrize("main,backup,purse,purse_backup,record,reason", [
    (bytes(16), bytes(16), PURSE, PURSE, RECORD, "neither public info copy is valid"),
    (IDLE_BEFORE, IDLE_BEFORE, bytes(16), bytes(16), RECORD, "neither purse copy is a value block"),
    (DEBITING, DEBITING, bytes(16), bytes(16), RECORD, "neither purse copy is a value block"),
    (DEBITING, DEBITING, ValueBlock(5, 9).to_bytes(), PURSE, RECORD, "holds 5 fen, neither 10000"),
    (DEBITING, DEBITING, PURSE, PURSE, TRIP_RECORD.build(TripRecord(2, 6, FARE, BALANCE, WHEN)),
     "not the interrupted debit's"),
    (DEBITING, DEBITING, PURSE, PURSE, H("0001 06 0000C8 002710 20251314083000"), "does not decode"),
])
def test_damaged_cards_are_left_alone(main: bytes, backup: bytes, purse: bytes, purse_backup: bytes, record: bytes,
                                      reason: str) -> None:
    found = assess(main, backup, purse, purse_backup, record)
    assert found.outcome is Outcome.DAMAGED and found.repairs == () and reason in found.reason


# --- tears everywhere ---------------------------------------------------------------------------------------------

def _debit_exchanges() -> int:
    """Exchanges of a clean debit tap."""
    reader = SimReader(new_m1(BALANCE), timing=None)
    tap(reader, FARE)
    return reader.exchanges


def _index_of(apdu: bytes) -> int:
    reader = SimReader(new_m1(BALANCE), timing=None, tears=[Tear.before(apdu)])
    with pytest.raises(CardRemoved):
        tap(reader, FARE)
    return reader.torn[0].index


DEBIT_EXCHANGES = _debit_exchanges()
DECREMENT_AT = _index_of(H("FFD700090502000000C8"))


def _torn_debit(first: Tear) -> tuple[M1Card, bool]:
    """A fresh card whose debit tap was torn by ``first``; whether the decrement had reached the card."""
    card = new_m1(BALANCE)
    reader = SimReader(card, timing=None, tears=[first])
    with pytest.raises(CardRemoved):
        tap(reader, FARE)
    event = reader.torn[0]
    return card, event.index > DECREMENT_AT or (event.index == DECREMENT_AT and event.committed)


def _check(card: M1Card, taken: bool) -> None:
    balance, counter = settled(card)
    assert (balance, counter) == ((BALANCE - FARE, 1) if taken else (BALANCE, 0))
    assert BALANCE - balance == FARE * counter  # money taken equals money the card's counter accounts for
    if taken:
        assert card.image.block(RECORD_BLOCKS[0]) == RECORD


def test_debit_exchanges_counted() -> None:
    assert (DEBIT_EXCHANGES, DECREMENT_AT) == (26, 20)  # 11 to read the state, 15 to debit


@pytest.mark.parametrize("first", Tear.everywhere(DEBIT_EXCHANGES), ids=str)
def test_a_tear_anywhere_in_the_debit_is_finished_or_rolled_back(first: Tear) -> None:
    card, taken = _torn_debit(first)
    recovery = SimReader(card, timing=None)
    tap(recovery, None)
    _check(card, taken)
    tap(SimReader(card, timing=None), FARE)  # and the card takes its next debit normally
    balance, counter = settled(card)
    assert (balance, counter) == ((BALANCE - 2 * FARE, 2) if taken else (BALANCE - FARE, 1))


def test_a_tear_anywhere_in_the_recovery_too() -> None:
    """For every tear of the debit, a tear before and after every exchange of the recovery that follows; then a
    clean recovery. The outcome is always exactly what the torn debit did."""
    runs = 0
    for first in Tear.everywhere(DEBIT_EXCHANGES):
        card, _ = _torn_debit(first)
        probe = SimReader(card, timing=None)
        tap(probe, None)
        recovery_exchanges = probe.exchanges
        for second in Tear.everywhere(recovery_exchanges):
            card, taken = _torn_debit(first)
            reader = SimReader(card, timing=None, tears=[second])
            try:
                tap(reader, None)
            except CardRemoved:
                pass
            tap(SimReader(card, timing=None), None)
            _check(card, taken)
            runs += 1
    assert runs > 400
