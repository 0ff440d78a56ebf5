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
    """交易类型标识: in MAC1, TAC, the 0x18 log and P2 of GET TRANSACTION PROVE."""

    ED_LOAD = 0x01
    EP_LOAD = 0x02
    ED_PURCHASE = 0x05
    EP_PURCHASE = 0x06
    COMPOSITE_PURCHASE = 0x09


class CardType(IntEnum):
    """Card type, byte 10 of file 0x17; fares and concessions depend on it."""

    NORMAL = 1
    STUDENT = 2
    ELDERLY = 3
    TEST = 4
    MILITARY = 5


class TransitRecordType(IntEnum):
    """Type byte of a 0x1E transit record. Bus validators say board/alight, metro gates entry/exit: same codes."""

    LOAD = 0x02
    ENTRY = 0x03
    BOARD = 0x03
    EXIT = 0x04
    ALIGHT = 0x04
    SINGLE_FARE = 0x06
    LOCK = 0x12  # written by a Shanghai gate just before it blocks a blacklisted card


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
