"""A simulated card that records what it commits: the truth a fault test compares journals and ledgers with.

The validator, the load terminal and their journals say what they believe; a :class:`Witness` says what the card did.
It wraps a card and, after each command, looks at its purse: a T-Union card's offline counter moved, the card
committed a debit, its online counter, a load; an M1 card's purse value went down, a debit. Each is recorded with the
card's serial, its counter before, the amount, and the terminal and date-time its new record names (0x18; an M1 card's
trip record). A ride whose taps made a card commit two debits is a double charge, whatever the validator believed; a
debit the card made that no journal holds is lost money.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass

from protocols.card_files import TRANSACTION_LOG_RECORD
from protocols.m1.debit import public_in_force
from protocols.m1.layout import (
    PUBLIC_BACKUP_BLOCK,
    PUBLIC_BLOCK,
    RECORD_BLOCKS,
    TRIP_RECORD,
)
from terminal.link import Activation
from terminal.records import m1_serial

from .card import SimCard
from .card.m1_card import M1Card


class Kind(str, enum.Enum):
    DEBIT = "debit"  # the offline counter moved: a purchase
    LOAD = "load"  # the online counter moved: a load


@dataclass(frozen=True, slots=True)
class Committed:
    """A debit or a load a card committed: its serial, its counter before (offline for a debit, online for a load),
    the amount (positive), and the terminal and date-time its 0x18 record names."""

    serial: bytes
    atc: int
    amount: int
    terminal: bytes
    when: dt.datetime | None
    kind: Kind = Kind.DEBIT


class Witness:
    """A simulated card (a T-Union card, or an M1 card) that also records every debit and load it commits.
    Implements :class:`sim.device.Device`. ``at`` is the terminal the card is being tapped at, which a station sets:
    an M1 card's records do not name their terminal."""

    def __init__(self, card: SimCard | M1Card) -> None:
        self.card = card
        self.committed: list[Committed] = []
        self.at = b""

    def power_on(self) -> Activation:
        return self.card.power_on()

    def execute(self, apdu: bytes) -> bytes:
        if isinstance(self.card, M1Card):
            return self._m1(self.card, apdu)
        purse = self.card.image.purse
        offline, online, balance = purse.offline_atc, purse.online_atc, purse.balance
        response = self.card.execute(apdu)
        purse = self.card.image.purse
        if purse.offline_atc != offline or purse.online_atc != online:
            record = TRANSACTION_LOG_RECORD.parse(self.card.image.transaction_log[0])  # what this one wrote
            kind = Kind.DEBIT if purse.offline_atc != offline else Kind.LOAD
            self.committed.append(Committed(self.card.serial, offline if kind is Kind.DEBIT else online,
                                            abs(balance - purse.balance), record.terminal_number, record.when, kind))
        return response

    def _m1(self, card: M1Card, command: bytes) -> bytes:
        """A MIFARE command; the money moves when the purse block's value goes down (TRANSFER after DECREMENT), and
        the public information in force then names the debit's counter and record."""
        before = card.balance
        response = card.execute(command)
        after = card.balance
        if before is not None and after is not None and after < before:
            image = card.image
            info = public_in_force(image.block(PUBLIC_BLOCK), image.block(PUBLIC_BACKUP_BLOCK))
            record = None if info is None else TRIP_RECORD.parse(image.block(RECORD_BLOCKS[info.record_pointer]))
            counter = 0 if record is None else record.counter
            self.committed.append(Committed(self.serial, counter - 1, before - after, self.at,
                                            None if record is None else record.when))
        return response

    @property
    def m1(self) -> bool:
        return isinstance(self.card, M1Card)

    @property
    def cpu(self) -> SimCard:
        """The T-Union card witnessed (an error for an M1 card)."""
        if not isinstance(self.card, SimCard):
            raise TypeError("not a T-Union card")
        return self.card

    @property
    def m1_card(self) -> M1Card:
        """The M1 card witnessed (an error for a T-Union card)."""
        if not isinstance(self.card, M1Card):
            raise TypeError("not an M1 card")
        return self.card

    @property
    def serial(self) -> bytes:
        """The card's serial as journals hold it (an M1 card's 10-byte form of its card number)."""
        return m1_serial(self.card.serial) if isinstance(self.card, M1Card) else self.card.serial

    def debits(self, since: int = 0) -> list[Committed]:
        """The debits committed since the card had committed ``since`` things."""
        return [c for c in self.committed[since:] if c.kind is Kind.DEBIT]

    def new_ride(self, since: int, now: dt.datetime, same_ride_s: int, terminal: bytes) -> bool:
        """Whether a tap again at ``now`` for the ride that began when the card had committed ``since`` things is a
        new ride: the ride's debit at ``terminal`` was made ``same_ride_s`` or more ago (the validator's
        ``retap_same_ride_s``: the rider walked away with that ride)."""
        return any(c.terminal == terminal and c.when is not None and now - c.when >= dt.timedelta(seconds=same_ride_s)
                   for c in self.debits(since))
