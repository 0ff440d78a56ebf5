"""The legacy MIFARE Classic (M1) city-card purse: which sector holds what, and the layout of every block.

One map for a 1K card (a 4K card holds the same in its first seven sectors); ``docs/m1-purse-layout.md`` explains it
field by field, with the sources. In short:

========  =====================  ===========================================================================
sector    blocks                 what
========  =====================  ===========================================================================
0         0 / 1 / 2              manufacturer block / sector directory (one application id per sector) / RFU
1         4 / 5 / 6              issuance: identity, type, key version, auth code / validity dates / issuer RFU
2         8 / 9 / 10             last load / the purse (value block) / its backup (value block)
3, 4, 5   12-14, 16-18, 20-22    a ring of nine trip records
6         24 / 25 / 26           public info (pointer, counter, process and black flags) / its backup / last ride
7 ...     (all)                  not used by the purse
========  =====================  ===========================================================================

Offsets follow a public Tianjin validator where it shows them (issuance block 4, public info blocks 24/25, the record
ring); the rest is this project's choice, said so in the document.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass
from functools import reduce
from operator import xor

import construct as c

from ..errors import ProtocolError
from ..fields import BcdDate, BcdDateTime
from ..layout import Layout
from ..mifare import BLOCK_SIZE, AccessConditions

# --- the map ------------------------------------------------------------------------------------------------------

DIRECTORY_BLOCK = 1
ISSUANCE_BLOCK = 4
VALIDITY_BLOCK = 5
LOAD_BLOCK = 8
PURSE_BLOCK = 9
PURSE_BACKUP_BLOCK = 10
RECORD_BLOCKS = (12, 13, 14, 16, 17, 18, 20, 21, 22)
"""The trip-record ring, slot 0 first."""
PUBLIC_BLOCK = 24
PUBLIC_BACKUP_BLOCK = 25
LAST_RIDE_BLOCK = 26
PURSE_SECTORS = 7
"""Sectors 0..6 hold the purse; the rest of the card is not used by it."""

MAX_BALANCE = 0xFFFFFF
"""The most a purse may hold, in fen: a trip record keeps the balance before the trip in three bytes."""

DIRECTORY = bytes.fromhex("00011003030306FFFFFFFFFFFFFFFFFF")
"""Block 1: the application id of each of the 16 sectors (the MOHURD excerpt's sector directory, with the sectors this
layout does not use marked FF): 00 the directory, 01 issuance, 10 purse, 03 records, 06 public info."""

_RW_AB = 0b000  # read, write, increment, decrement with key A or B
_RW_B = 0b100  # read with A or B, write with key B
_VALUE = 0b110  # value block: read A|B, write B, increment B, decrement/transfer/restore A|B
_TRAILER = 0b011  # keys and access bits written with key B only; key B is secret, so it authenticates

SECTOR_ACCESS: dict[int, AccessConditions] = {
    0: AccessConditions((_RW_B, _RW_B, _RW_B, _TRAILER)),
    1: AccessConditions((_RW_B, _RW_B, _RW_B, _TRAILER)),
    2: AccessConditions((_RW_B, _VALUE, _VALUE, _TRAILER)),
    3: AccessConditions((_RW_AB, _RW_AB, _RW_AB, _TRAILER)),
    4: AccessConditions((_RW_AB, _RW_AB, _RW_AB, _TRAILER)),
    5: AccessConditions((_RW_AB, _RW_AB, _RW_AB, _TRAILER)),
    6: AccessConditions((_RW_AB, _RW_AB, _RW_AB, _TRAILER)),
}
"""Access conditions of the purse's sectors. A validator holds key A: it reads everything, writes records and the
public info, and decrements the purse; issuing, loading (increment) and changing keys need key B."""
UNUSED_ACCESS = AccessConditions((_RW_B, _RW_B, _RW_B, _TRAILER))
"""Sectors the purse does not use: readable with either key, written with key B."""
GPB = 0x69
"""The general-purpose byte of every trailer (the factory value)."""


def sector_access(sector: int) -> AccessConditions:
    return SECTOR_ACCESS.get(sector, UNUSED_ACCESS)


# --- codes --------------------------------------------------------------------------------------------------------

class EnableFlag(enum.IntEnum):
    """Block 4 byte 12 (启用标识), as the Tianjin validator reads it."""

    NOT_ENABLED = 0x01
    NORMAL = 0x02
    STOPPED = 0x03
    BLACKLISTED = 0x04


class ProcessFlag(enum.IntEnum):
    """Public info byte 3: odd while a debit is under way, even when none is (the Tianjin validator writes 01, then
    02 when done; a fresh card holds 00)."""

    FRESH = 0x00
    DEBITING = 0x01
    DONE = 0x02

    @staticmethod
    def in_progress(value: int) -> bool:
        return bool(value & 1)


BLACK_FLAG = 0x04
"""Public info byte 6 on a blacklisted card (00 otherwise)."""


class RecordType(enum.IntEnum):
    """Trip-record byte 2: the transaction type, with the T-Union codes for purchase and load."""

    NONE = 0x00  # a slot never written
    LOAD = 0x02
    PURCHASE = 0x06


# --- blocks -------------------------------------------------------------------------------------------------------

@dataclass(slots=True)
class Issuance:
    """Block 4 (发行区): who issued the card and how it is keyed.

    ``city``, ``industry`` and ``issuer_serial`` together are the card number: the factor its issuer keys are
    diversified with, and what a blacklist lists. ``auth_code`` is the issuer's MAC over the issuance data and the
    UID (:func:`protocols.m1.crypto.auth_code_data`).
    """

    city: bytes  # 2 bytes BCD, e.g. 3640
    industry: bytes  # 2 bytes (行业代码)
    issuer_serial: bytes  # 4 bytes (发行流水号)
    auth_code: bytes  # 4 bytes (卡认证码)
    enable_flag: int  # EnableFlag
    card_type: int  # protocols.card_files.CardType
    key_version: int  # the masters sectors 2 and up are keyed from
    reserved: int

    @property
    def card_number(self) -> bytes:
        """City ‖ industry ‖ issuer serial: the 8-byte card number."""
        return self.city + self.industry + self.issuer_serial


ISSUANCE = Layout(
    Issuance,
    "city" / c.Bytes(2),
    "industry" / c.Bytes(2),
    "issuer_serial" / c.Bytes(4),
    "auth_code" / c.Bytes(4),
    "enable_flag" / c.Int8ub,
    "card_type" / c.Int8ub,
    "key_version" / c.Int8ub,
    "reserved" / c.Int8ub,
    examples=(
        # The demo card of docs/m1-purse-layout.md, auth code under the demo key set (self-made: no public dump
        # shows a whole block 4).
        ("3640 0001 00000042 BE2F4CD5 02 01 01 00",
         Issuance(bytes.fromhex("3640"), bytes.fromhex("0001"), bytes.fromhex("00000042"), bytes.fromhex("BE2F4CD5"),
                  EnableFlag.NORMAL, 1, 1, 0)),
    ),
)


@dataclass(slots=True)
class Validity:
    """Block 5: issue, start and expiry dates (BCD ``YYYYMMDD``), and the deposit in fen."""

    issue_date: dt.date | None
    start_date: dt.date | None
    expiry_date: dt.date | None
    deposit: int
    reserved: bytes


VALIDITY = Layout(
    Validity,
    "issue_date" / BcdDate,
    "start_date" / BcdDate,
    "expiry_date" / BcdDate,
    "deposit" / c.Int16ub,
    "reserved" / c.Bytes(2),
    examples=(("20200101 20200101 20401231 07D0 0000",
               Validity(dt.date(2020, 1, 1), dt.date(2020, 1, 1), dt.date(2040, 12, 31), 2000, bytes(2))),),
)


@dataclass(slots=True)
class LoadInfo:
    """Block 8: the last load, written by a load terminal with key B (a validator only reads it)."""

    load_counter: int
    amount: int
    when: dt.datetime | None
    terminal: bytes  # 4 bytes


LOAD_INFO = Layout(
    LoadInfo,
    "load_counter" / c.Int16ub,
    "amount" / c.BytesInteger(3),
    "when" / BcdDateTime,
    "terminal" / c.Bytes(4),
    examples=(("0001 001388 20200101090000 00000000",
               LoadInfo(1, 5000, dt.datetime(2020, 1, 1, 9, 0), bytes(4))),),
)


@dataclass(slots=True)
class TripRecord:
    """One slot of the record ring. A debit writes its record *before* it touches the purse, so the record of an
    interrupted debit says what was being taken (``amount``) from what (``balance_before``): the next tap finishes or
    rolls back from it. ``counter`` is the public info counter after the transaction; a slot whose counter is not the
    card's own is not the newest record."""

    counter: int
    kind: int  # RecordType
    amount: int
    balance_before: int
    when: dt.datetime | None


TRIP_RECORD = Layout(
    TripRecord,
    "counter" / c.Int16ub,
    "kind" / c.Int8ub,
    "amount" / c.BytesInteger(3),
    "balance_before" / c.BytesInteger(3),
    "when" / BcdDateTime,
    examples=(
        ("0001 06 0000C8 002710 20250314083000",
         TripRecord(1, RecordType.PURCHASE, 200, 10000, dt.datetime(2025, 3, 14, 8, 30))),
        ("0000 00 000000 000000 00000000000000", TripRecord(0, RecordType.NONE, 0, 0, None)),
    ),
)

RECORD_RING = len(RECORD_BLOCKS)


@dataclass(slots=True)
class PublicInfo:
    """Blocks 24 and 25 (公共信息区, main and backup): the card's transaction state.

    ``record_pointer`` is the ring slot of the newest record; ``counter`` counts the card's debits; ``process_flag``
    is odd while a debit is under way (:class:`ProcessFlag`); ``black_flag`` is 04 on a blacklisted card. Bytes 8..14
    are FF and byte 15 makes the XOR of all 16 bytes zero: a copy that breaks either rule is not valid, and the other
    copy is used.
    """

    record_pointer: int
    counter: int
    process_flag: int
    reserved: bytes  # 2 bytes (the Tianjin validator keeps a monthly-ticket counter here)
    black_flag: int
    reserved2: int
    check: int


@dataclass(slots=True)
class LastRide:
    """Block 26: where and when the card's newest ride was paid, what transfer discounts and the line-wide repeat-tap
    rule read (a CPU card keeps them in its 0x1E record). It holds for the ride of ``counter`` only: a debit that was
    rolled back leaves a block whose counter is not the card's, which no tap reads."""

    counter: int  # the card's counter after that ride
    record_type: int  # protocols.card_files.TransitRecordType: 06 single fare, 03 board, 04 alight
    line: bytes  # 2 bytes, as the validator's fares store lines
    operator: bytes  # 2 bytes
    city: bytes  # 2 bytes BCD, where the ride was paid
    when: dt.datetime | None


LAST_RIDE = Layout(
    LastRide,
    "counter" / c.Int16ub,
    "record_type" / c.Int8ub,
    "line" / c.Bytes(2),
    "operator" / c.Bytes(2),
    "city" / c.Bytes(2),
    "when" / BcdDateTime,
    examples=(
        # the first ride of the layout document's card: a single fare on line 1 of operator 0001 in city 3640
        ("0001 06 0001 0001 3640 20250314083000",
         LastRide(1, 0x06, bytes.fromhex("0001"), bytes.fromhex("0001"), bytes.fromhex("3640"),
                  dt.datetime(2025, 3, 14, 8, 30))),
        ("0000 00 0000 0000 0000 00000000000000", LastRide(0, 0, bytes(2), bytes(2), bytes(2), None)),
    ),
)


_FILLER = b"\xff" * 7

PUBLIC_INFO = Layout(
    PublicInfo,
    "record_pointer" / c.Int8ub,
    "counter" / c.Int16ub,
    "process_flag" / c.Int8ub,
    "reserved" / c.Bytes(2),
    "black_flag" / c.Int8ub,
    "reserved2" / c.Int8ub,
    c.Const(_FILLER),
    "check" / c.Int8ub,
    examples=(
        # an issued card: pointer at the last slot (the first debit writes slot 0), no debit yet
        ("08 0000 00 0000 00 00 FFFFFFFFFFFFFF F7", PublicInfo(8, 0, 0, bytes(2), 0, 0, 0xF7)),
        # after its first debit
        ("00 0001 02 0000 00 00 FFFFFFFFFFFFFF FC", PublicInfo(0, 1, 2, bytes(2), 0, 0, 0xFC)),
    ),
)


def _xor(data: bytes) -> int:
    return reduce(xor, data, 0)


def public_info(record_pointer: int, counter: int, process_flag: int, black_flag: int = 0,
                reserved: bytes = bytes(2), reserved2: int = 0) -> bytes:
    """The 16 bytes of a public info block, check byte computed."""
    if not 0 <= record_pointer < RECORD_RING:
        raise ProtocolError(f"public info: record pointer {record_pointer} is not a ring slot 0..{RECORD_RING - 1}")
    body = PUBLIC_INFO.pack(record_pointer, counter, process_flag, reserved, black_flag, reserved2, 0)
    return body[:-1] + bytes((_xor(body[:-1]),))


def parse_public_info(raw: bytes) -> PublicInfo:
    """A public info copy, checked: FF filler, XOR of all bytes zero, pointer within the ring."""
    info = PUBLIC_INFO.parse(raw)
    if _xor(raw):
        raise ProtocolError(f"public info {raw.hex().upper()}: the check byte does not make the XOR zero")
    if info.record_pointer >= RECORD_RING:
        raise ProtocolError(f"public info: record pointer {info.record_pointer} is outside the ring of {RECORD_RING}")
    return info


def next_slot(slot: int) -> int:
    return (slot + 1) % RECORD_RING


def previous_slot(slot: int) -> int:
    return (slot - 1) % RECORD_RING


def check_block(raw: bytes, what: str) -> bytes:
    if not isinstance(raw, (bytes, bytearray)) or len(raw) != BLOCK_SIZE:
        raise ProtocolError(f"{what}: a block is {BLOCK_SIZE} bytes")
    return bytes(raw)
