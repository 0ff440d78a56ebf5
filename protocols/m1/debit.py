"""The tear-safe M1 debit: the order of its block operations, and what the next tap does after a tear anywhere in it.

A debit of ``a`` from purse ``b``, card counter ``n``, newest record in ring slot ``k`` (``s = k+1`` the next slot)::

    1  WRITE  record slot s   = {counter n+1, purchase, a, b, when}       sector 3, 4 or 5
    2  WRITE  public info     = {pointer s, counter n+1, flag 01 DEBITING}  sector 6
    3  WRITE  public backup   = the same
    4  DECREMENT purse by a, TRANSFER to purse                          sector 2    <- the money moves here
    5  RESTORE purse, TRANSFER to purse backup
    6  WRITE  public info     = {pointer s, counter n+1, flag 02 DONE}
    7  WRITE  public backup   = the same

Through a PC/SC reader each line is one pseudo-APDU (4 and 5 are one ``FF D7`` each, the reader sending both MIFARE
commands); a DECREMENT, INCREMENT or RESTORE only fills the card's volatile transfer buffer, so a tear between it and
its TRANSFER is a tear before the line. The record is written first so that the card itself says, from the moment its
flag says a debit is under way, what is being taken from what: the next tap, at any validator, reads the public info
in force (the main copy when its check holds, else the backup), and when its flag is odd, the record it points to:

* purse = ``b`` (balance before): the purse was not touched. **Roll back**: both public copies back to
  {pointer k, counter n, flag 02}; the record in slot s is beyond the pointer and is never read. No money was taken.
* purse = ``b - a``: the purse was decremented. **Finish**: copy the purse to its backup if they differ, then both
  public copies to {pointer s, counter n+1, flag 02}. The money was taken; the counter says so.
* anything else: the card is not in a state this order leaves; touch nothing (**damaged**).

When the flag is even no debit is under way, and the copies are brought back in line (**repair**): a public backup
that differs from the main copy is rewritten from it (a tear between 6 and 7), and a purse backup that differs from a
valid purse is rewritten from it. After any of these, the card's counter tells a validator's journal what happened to
a debit it journaled: counter ``n+1``, the money was taken; counter ``n``, it was not.
``tests/protocols/test_m1_debit.py`` walks a tear before and after every pseudo-APDU of the debit and of each recovery.

A torn WRITE that leaves a block half written (outside the model, where an authenticated block operation is the unit)
is caught by the checks: a public copy whose XOR or filler fails is not used, and a purse that is not a value block is
rebuilt from its backup.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import ProtocolError
from ..mifare import KeyType, ValueBlock, sector_of
from ..pcsc_mifare import (
    GeneralAuthenticate,
    LoadKey,
    RestoreValueBlock,
    UpdateBlock,
    ValueBlockOperation,
    ValueOp,
)
from .layout import (
    BLACK_FLAG,
    LAST_RIDE_BLOCK,
    MAX_BALANCE,
    PUBLIC_BACKUP_BLOCK,
    PUBLIC_BLOCK,
    PURSE_BACKUP_BLOCK,
    PURSE_BLOCK,
    RECORD_BLOCKS,
    TRIP_RECORD,
    ProcessFlag,
    PublicInfo,
    RecordType,
    TripRecord,
    check_block,
    next_slot,
    parse_public_info,
    previous_slot,
    public_info,
)

MAX_COUNTER = 0xFFFF


@dataclass(frozen=True, slots=True)
class Write:
    """WRITE a whole block (``FF D6``)."""

    block: int
    data: bytes

    @property
    def sector(self) -> int:
        return sector_of(self.block)

    def to_apdu(self) -> bytes:
        return UpdateBlock(self.block, self.data).to_bytes()


@dataclass(frozen=True, slots=True)
class Decrement:
    """DECREMENT a value block and TRANSFER the result to it (``FF D7 … 02``)."""

    block: int
    amount: int

    @property
    def sector(self) -> int:
        return sector_of(self.block)

    def to_apdu(self) -> bytes:
        return ValueBlockOperation(self.block, ValueOp.DECREMENT, self.amount).to_bytes()


@dataclass(frozen=True, slots=True)
class Copy:
    """RESTORE a value block and TRANSFER it to another block of the sector (``FF D7 … 02 03 tt``)."""

    source: int
    target: int

    @property
    def sector(self) -> int:
        return sector_of(self.source)

    def to_apdu(self) -> bytes:
        return RestoreValueBlock(self.source, self.target).to_bytes()


Step = Write | Decrement | Copy


def open_sector(sector: int, keys: Mapping[int, bytes], *, key_type: KeyType = KeyType.A,
                slot: int = 0) -> tuple[bytes, bytes]:
    """LOAD KEY (``keys`` by sector) into ``slot`` and GENERAL AUTHENTICATE the sector's first block with it."""
    key = keys.get(sector)
    if key is None:
        raise ProtocolError(f"no key for sector {sector}")
    return LoadKey(0, slot, key).to_bytes(), GeneralAuthenticate(4 * sector, int(key_type), slot).to_bytes()


def step_apdus(steps: tuple[Step, ...] | list[Step], keys: Mapping[int, bytes], *, key_type: KeyType = KeyType.A,
               slot: int = 0, authenticated: int | None = None) -> list[bytes]:
    """The pseudo-APDUs that run ``steps``: :func:`open_sector` before the first step of each sector, unless that
    sector is ``authenticated`` already; ``keys`` by sector."""
    out: list[bytes] = []
    current = authenticated
    for step in steps:
        if step.sector != current:
            current = step.sector
            out.extend(open_sector(current, keys, key_type=key_type, slot=slot))
        out.append(step.to_apdu())
    return out


# --- a debit ------------------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Debit:
    """The planned debit: its steps in order, the record it writes, and the card's state once it is done."""

    steps: tuple[Step, ...]
    record: TripRecord
    slot: int
    counter: int
    balance_before: int
    balance_after: int


def plan_debit(info: PublicInfo, balance: int, amount: int, when: dt.datetime,
               kind: int = RecordType.PURCHASE, last_ride: bytes | None = None) -> Debit:
    """The seven steps of a debit of ``amount`` from a card whose public info (in force, no debit under way) is
    ``info`` and whose purse holds ``balance``; with ``last_ride`` (block 26, :data:`~.layout.LAST_RIDE` of the
    counter after this debit), an eighth, after the record: it is in the public info's sector, so it costs no
    authentication, and it holds only once the debit's counter is the card's."""
    if ProcessFlag.in_progress(info.process_flag):
        raise ProtocolError("M1 debit: a debit is under way on the card; recover it first")
    if info.counter >= MAX_COUNTER:
        raise ProtocolError(f"M1 debit: the card's counter is exhausted ({info.counter})")
    if not 0 < amount <= balance <= MAX_BALANCE:
        raise ProtocolError(f"M1 debit: {amount} fen cannot be taken from a purse of {balance} fen")
    slot, counter = next_slot(info.record_pointer), info.counter + 1
    record = TripRecord(counter, kind, amount, balance, when)
    flags = info.black_flag, info.reserved, info.reserved2
    debiting = public_info(slot, counter, ProcessFlag.DEBITING, *flags)
    done = public_info(slot, counter, ProcessFlag.DONE, *flags)
    ride = () if last_ride is None else (Write(LAST_RIDE_BLOCK, check_block(last_ride, "last ride")),)
    steps = (
        Write(RECORD_BLOCKS[slot], TRIP_RECORD.build(record)),
        *ride,
        Write(PUBLIC_BLOCK, debiting),
        Write(PUBLIC_BACKUP_BLOCK, debiting),
        Decrement(PURSE_BLOCK, amount),
        Copy(PURSE_BLOCK, PURSE_BACKUP_BLOCK),
        Write(PUBLIC_BLOCK, done),
        Write(PUBLIC_BACKUP_BLOCK, done),
    )
    return Debit(steps, record, slot, counter, balance, balance - amount)


def blacklist_steps(info: PublicInfo) -> tuple[Step, ...]:
    """Set the black flag in both public copies (main first), keeping everything else."""
    data = public_info(info.record_pointer, info.counter, info.process_flag, BLACK_FLAG, info.reserved, info.reserved2)
    return Write(PUBLIC_BLOCK, data), Write(PUBLIC_BACKUP_BLOCK, data)


# --- the next tap ---------------------------------------------------------------------------------------------------

class Outcome(enum.Enum):
    """What the card's state says, and what :attr:`Assessment.repairs` do about it."""

    CLEAN = "clean"  # copies agree, no debit under way: nothing to do
    REPAIR = "repair"  # no debit under way; a backup to bring in line with its main copy
    FINISH = "finish"  # an interrupted debit had taken the money: finish its bookkeeping
    ROLL_BACK = "roll back"  # an interrupted debit had not taken the money: undo its marks
    DAMAGED = "damaged"  # no state this order leaves: touch nothing


@dataclass(frozen=True, slots=True)
class Assessment:
    """The card's purse as the next tap finds it: ``outcome``, the ``repairs`` to run (in order), and the public
    info and ``balance`` the card holds once they have run. ``interrupted`` is the record of an interrupted debit
    (finish or roll back). ``reason`` says what is damaged."""

    outcome: Outcome
    repairs: tuple[Step, ...]
    info: PublicInfo | None
    balance: int | None
    interrupted: TripRecord | None = None
    reason: str = ""


def public_in_force(main: bytes, backup: bytes) -> PublicInfo | None:
    """The public info copy the card's state is read from: the main copy when valid, else the backup, else none."""
    for raw in (main, backup):
        try:
            return parse_public_info(raw)
        except ProtocolError:
            continue
    return None


def _value(raw: bytes) -> int | None:
    try:
        return ValueBlock.parse(raw).value
    except ProtocolError:
        return None


def _damaged(reason: str) -> Assessment:
    return Assessment(Outcome.DAMAGED, (), None, None, reason=reason)


def assess(main: bytes, backup: bytes, purse: bytes, purse_backup: bytes, record: bytes) -> Assessment:
    """Read the card's state from its public copies (blocks 24, 25), its purse and purse backup (blocks 9, 10) and
    the record the public info in force points to; say what to do (see the module notes)."""
    info = public_in_force(main, backup)
    if info is None:
        return _damaged("neither public info copy is valid")
    value, backup_value = _value(purse), _value(purse_backup)
    if not ProcessFlag.in_progress(info.process_flag):
        repairs: list[Step] = []
        in_force = public_info(info.record_pointer, info.counter, info.process_flag, info.black_flag, info.reserved,
                               info.reserved2)
        if main != in_force:
            repairs.append(Write(PUBLIC_BLOCK, in_force))
        if backup != in_force:
            repairs.append(Write(PUBLIC_BACKUP_BLOCK, in_force))
        if value is not None and purse_backup != purse:
            repairs.append(Copy(PURSE_BLOCK, PURSE_BACKUP_BLOCK))
        elif value is None and backup_value is not None:
            repairs.append(Copy(PURSE_BACKUP_BLOCK, PURSE_BLOCK))
            value = backup_value
        elif value is None:
            return _damaged("neither purse copy is a value block")
        return Assessment(Outcome.REPAIR if repairs else Outcome.CLEAN, tuple(repairs), info, value)
    try:
        trip = TRIP_RECORD.parse(record)
    except ProtocolError as exc:
        return _damaged(f"the record of the interrupted debit does not decode: {exc}")
    if trip.counter != info.counter or trip.counter == 0 or not 0 < trip.amount <= trip.balance_before:
        return _damaged(f"the record in slot {info.record_pointer} is not the interrupted debit's")
    flags = info.black_flag, info.reserved, info.reserved2
    if value is not None:
        sync: tuple[Step, ...] = () if purse_backup == purse else (Copy(PURSE_BLOCK, PURSE_BACKUP_BLOCK),)
    elif backup_value is not None:  # outside the model: a half-written purse; its backup is never ahead of it
        value, sync = backup_value, (Copy(PURSE_BACKUP_BLOCK, PURSE_BLOCK),)
    else:
        return _damaged("neither purse copy is a value block")
    if value == trip.balance_before:
        slot, counter = previous_slot(info.record_pointer), info.counter - 1
        undone = public_info(slot, counter, ProcessFlag.DONE, *flags)
        repairs_back = sync + (Write(PUBLIC_BLOCK, undone), Write(PUBLIC_BACKUP_BLOCK, undone))
        return Assessment(Outcome.ROLL_BACK, repairs_back, parse_public_info(undone), value, trip)
    if value == trip.balance_before - trip.amount:
        done = public_info(info.record_pointer, info.counter, ProcessFlag.DONE, *flags)
        repairs_on = sync + (Write(PUBLIC_BLOCK, done), Write(PUBLIC_BACKUP_BLOCK, done))
        return Assessment(Outcome.FINISH, repairs_on, parse_public_info(done), value, trip)
    return _damaged(f"the purse holds {value} fen, neither {trip.balance_before} before the interrupted debit nor "
                    f"{trip.balance_before - trip.amount} after it")
