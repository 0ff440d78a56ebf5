"""A simulated card that records what it commits: the truth a fault test compares journals and ledgers with.

The validator, the load terminal and their journals say what they believe; a :class:`Witness` says what the card did.
It wraps a card and, after each command, looks at its purse counters: the offline counter moved, the card committed
a debit; the online counter moved, a load. Each is recorded with the card's serial, its counter before, the amount,
and the terminal and date-time its new 0x18 record names. A ride whose taps made a card commit two debits is a double
charge, whatever the validator believed; a debit the card made that no journal holds is lost money.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass

from protocols.card_files import TRANSACTION_LOG_RECORD
from terminal.link import Activation

from .card import SimCard


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
    """A simulated card that also records every debit and load it commits. Implements :class:`sim.device.Device`."""

    def __init__(self, card: SimCard) -> None:
        self.card = card
        self.committed: list[Committed] = []

    def power_on(self) -> Activation:
        return self.card.power_on()

    def execute(self, apdu: bytes) -> bytes:
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

    @property
    def serial(self) -> bytes:
        return self.card.serial

    def debits(self, since: int = 0) -> list[Committed]:
        """The debits committed since the card had committed ``since`` things."""
        return [c for c in self.committed[since:] if c.kind is Kind.DEBIT]

    def new_ride(self, since: int, now: dt.datetime, same_ride_s: int, terminal: bytes) -> bool:
        """Whether a tap again at ``now`` for the ride that began when the card had committed ``since`` things is a
        new ride: the ride's debit at ``terminal`` was made ``same_ride_s`` or more ago (the validator's
        ``retap_same_ride_s``: the rider walked away with that ride)."""
        return any(c.terminal == terminal and c.when is not None and now - c.when >= dt.timedelta(seconds=same_ride_s)
                   for c in self.debits(since))
