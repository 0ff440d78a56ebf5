"""Code values stored in the card files, as ``IntEnum``s.

Models keep the raw integer so that a code no table knows still parses and round-trips; each model offers the enum
through a ``known_*`` property that answers ``None`` for an unknown code.
"""

from __future__ import annotations

from enum import IntEnum
from typing import TypeVar

E = TypeVar("E", bound=IntEnum)


def known(enum: type[E], value: int) -> E | None:
    """``enum(value)``, or ``None`` when the card holds a code the enum does not list."""
    try:
        return enum(value)
    except ValueError:
        return None


class TransactionType(IntEnum):
    """交易类型标识: in MAC1, TAC, the 0x18 log and P2 of GET TRANSACTION PROVE.

    nfsee's reader and the PBOC purse applet name the same five codes; real 0x18 records carry 02, 06 and 09.
    """

    ED_LOAD = 0x01
    EP_LOAD = 0x02
    ED_PURCHASE = 0x05
    EP_PURCHASE = 0x06
    COMPOSITE_PURCHASE = 0x09


class CardType(IntEnum):
    """Card type, byte 10 of file 0x17; fares and concessions depend on it (nfsee's and T-Union Master's tables)."""

    NORMAL = 1
    STUDENT = 2
    ELDERLY = 3
    TEST = 4
    MILITARY = 5


class TransitRecordType(IntEnum):
    """Type byte of a 0x1E transit record. Bus validators say board/alight, metro gates entry/exit: same codes.

    03/04 are written by Beijing-area bus validators and the Shanghai metro gate and read so by T-Union Master; 02 is
    a single ride (单次) in T-Union Master's card-format notes, and real bus records with a fare carry it (Trip
    Reader's recorded rides), so it is not a load; 06 is a single-fare ride (一票制); 12 is the record a Shanghai gate
    writes before it blocks a blacklisted card. 08 and 09 appear on real records (a metro fare adjustment, bus rides)
    with no public meaning: they stay unknown codes.
    """

    SINGLE_RIDE = 0x02
    ENTRY = 0x03
    BOARD = 0x03
    EXIT = 0x04
    ALIGHT = 0x04
    SINGLE_FARE = 0x06
    LOCK = 0x12  # written by a Shanghai gate just before it blocks a blacklisted card


class Industry(IntEnum):
    """Industry byte of a 0x1E record (byte 9, 辅助类型): the Shanghai metro gate writes 01, Beijing-area bus validators
    02; T-Union Master's notes and nfsee's port name 00 other, 01 metro, 02 bus, and real records agree (metro exits
    01, bus rides 02). One gate test tool's table has 01 and 02 the other way round: it is the outlier."""

    OTHER = 0x00
    METRO = 0x01
    BUS = 0x02


class TradeState(IntEnum):
    """Trip state, byte 14 of a 0x1A record: 00 before the first trip, then boarded/entered or alighted/exited."""

    NONE = 0x00
    BOARDED = 0x01
    ENTERED = 0x01
    ALIGHTED = 0x02
    EXITED = 0x02


class Direction(IntEnum):
    """Direction byte of a bus 0x1A record (Beijing-area validators: AB up the line, BA down)."""

    UP = 0xAB
    DOWN = 0xBA
