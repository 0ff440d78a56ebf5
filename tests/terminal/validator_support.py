"""A validator on simulated hardware for the terminal's tests: demo key set, simulated PSAM and reader, a manual clock.

Everything is real but the radio: the card and PSAM compute with the demo keys, the journal is SQLite or in memory,
and the clock moves only when a test moves it.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from protocols.card_files import PUBLIC_APP_INFO, TRANSIT_RECORD
from sim.card import SimCard
from sim.card.m1_card import M1Card
from sim.card.m1_issuing import issue_m1_card
from sim.issuing import LOCAL_ISSUER, issue_card, load_demo_keyset
from sim.psam import demo_psam
from sim.reader import SimReader, SimSamSlot
from terminal.clock import ManualClock
from terminal.config import ValidatorConfig
from terminal.fares import load_fares
from terminal.journal import Journal, MemoryJournal
from terminal.outcome import TapOutcome
from terminal.records import DebitState
from terminal.settlement import verify
from terminal.validator import Validator

KEYSET = load_demo_keyset()
FARES = Path(__file__).resolve().parents[2] / "sim" / "fares"
START = dt.datetime(2026, 11, 24, 8, 0, 0)
TODAY = START.date()
# The demo config's place: city 2900 (issuer 02002900FFFFFFFF is local; the key set's example issuer 02403640 is not).
HOME_ISSUER = bytes.fromhex("02002900FFFFFFFF")


def card(serial: str = "03102900000000000001", *, issuer: bytes = HOME_ISSUER, balance: int = 10000,
         **fields: object) -> SimCard:
    """A card issued from the demo key set, valid today unless told otherwise."""
    fields.setdefault("start", dt.date(2024, 1, 1))
    fields.setdefault("expiry", dt.date(2044, 1, 1))
    return issue_card(KEYSET, issuer_id=issuer, serial=serial, balance=balance, **fields)


HOME_CITY = HOME_ISSUER[2:4]


def m1_card(issuer_serial: str = "00000001", *, balance: int = 10000, **fields: object) -> M1Card:
    """An M1 card of the validator's city, issued from the demo key set, valid today unless told otherwise."""
    fields.setdefault("city", HOME_CITY)
    fields.setdefault("start", dt.date(2024, 1, 1))
    fields.setdefault("expiry", dt.date(2044, 1, 1))
    return issue_m1_card(KEYSET, issuer_serial=bytes.fromhex(issuer_serial), balance=balance,
                         **fields)  # type: ignore[arg-type]


class Rig:
    """A started validator with its simulated reader and PSAM slot."""

    def __init__(self, *, fares: str = "demo-flat.toml", journal: Journal | None = None,
                 config: ValidatorConfig | None = None, psam=None, blacklist=None, clock: ManualClock | None = None,
                 start: bool = True) -> None:
        self.clock = clock or ManualClock(START)
        self.reader = SimReader(timing=None)
        self.sam = SimSamSlot(demo_psam() if psam is None else psam, timing=None)
        self.journal = journal if journal is not None else MemoryJournal(clock=self.clock)
        self.validator = Validator(self.reader, self.sam, load_fares(FARES / fares), self.journal, clock=self.clock,
                                   config=config, blacklist=blacklist)
        if start:
            self.validator.start()

    def tap(self, card: SimCard | M1Card, *, advance: float = 0.0) -> TapOutcome | None:
        """The card enters the field, the validator polls once, the card leaves (if the reader did not tear it)."""
        self.clock.advance(advance)
        self.reader.put(card)
        try:
            return self.validator.poll()
        finally:
            if self.reader.present:
                self.reader.take()

    def journaled(self, state: DebitState = DebitState.COMPLETE) -> int:
        """Money the journal says was taken in ``state``, in fen."""
        return sum(e.record.amount for e in self.journal.entries([state]))

    def check_tacs(self) -> None:
        """Every completed row's TAC verifies against the demo key set the way a back office checks it."""
        report = verify(self.journal, KEYSET)
        assert report.mismatches == [] and report.unverifiable == [], report


def serial_of(card: SimCard) -> bytes:
    return PUBLIC_APP_INFO.parse(card.image.public_info).serial


def last_transit(card: SimCard):
    return TRANSIT_RECORD.parse(card.image.transit_log[0])


__all__ = ["FARES", "HOME_CITY", "HOME_ISSUER", "KEYSET", "LOCAL_ISSUER", "START", "TODAY", "Rig", "card",
           "last_transit", "m1_card", "serial_of"]
