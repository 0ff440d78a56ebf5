"""The purchase flow: a bus validator taking complete composite purchases.

The worker's validator runs as a bus would run it (the tap state machine, the demo flat fares, a simulated PSAM, a
journal). Its population's clock moves on between taps so that no card comes back within the repeat-tap window, and
every rider carries enough money for the run, so every tap is a full composite purchase: SELECT, READ BINARY 0x17,
INITIALIZE FOR CAPP PURCHASE, the PSAM's MAC1, UPDATE CAPP DATA CACHE 0x1E, the journal's intent, DEBIT (the card
checks MAC1), the PSAM's MAC2 check, the journal's completion.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from terminal.clock import ManualClock
from terminal.config import Place, ValidatorConfig
from terminal.fares import load_fares
from terminal.journal import Journal, MemoryJournal, SqliteJournal
from terminal.outcome import TapStatus
from terminal.records import DebitState
from terminal.validator import Validator

from ..demo import DEMO_FARES
from ..issuing import DEFAULT_ISSUERS, generate_population, load_demo_keyset
from ..psam import demo_psam
from ..reader import SimReader, SimSamSlot
from .floor import purchase_floor
from .spec import BENCH_START, BenchError, BenchSpec

RIDER_BALANCE = 1_000_000_000
"""Fen in every purse before the run (ten million yuan): no tap is declined for funds, which would take a shorter
path than a purchase."""
MAX_TAPS_PER_CARD = 60_000
"""A card's offline counter stops at FFFF: a run asks at most this many taps of one card."""


class PurchaseRig:
    """A validator with its simulated reader, PSAM, journal and card population, ready to take taps in turn."""

    accepted = TapStatus.ACCEPTED

    def __init__(self, spec: BenchSpec, index: int = 0) -> None:
        keyset = load_demo_keyset()
        self.cards = generate_population(keyset, spec.cards, spec.seed + index, on=BENCH_START.date())
        for card in self.cards:
            card.image.purse.balance = RIDER_BALANCE
        home = DEFAULT_ISSUERS[0]
        config = ValidatorConfig(place=Place(city_code=home[2:4], institution_id=home))
        # a card comes back after the whole population has tapped: that must be past the repeat-tap window
        self.step = dt.timedelta(seconds=(config.repeat_tap_s + 2) / spec.cards)
        self.clock = ManualClock(BENCH_START)
        self.reader = SimReader(timing=None)
        self.psam = demo_psam()
        self.journal_path: Path | None = None
        journal: Journal
        if spec.journal == "memory":
            journal = MemoryJournal(clock=self.clock)
        else:
            directory = Path(spec.directory or tempfile.gettempdir())
            self.journal_path = directory / f"bench-journal-{index}.db"
            if self.journal_path.exists():
                raise BenchError(f"{self.journal_path} exists; the benchmark writes a new journal")
            journal = SqliteJournal(self.journal_path, clock=self.clock, group_commit=spec.group_commit or None)
        self.journal = journal
        self.validator = Validator(self.reader, SimSamSlot(self.psam, timing=None), load_fares(DEMO_FARES), journal,
                                   clock=self.clock, config=config)
        self.validator.start()
        self.serve = self.validator.poll
        self.next_card = 0

    @staticmethod
    def check(spec: BenchSpec) -> None:
        if spec.taps is not None and spec.taps + spec.profile_taps > MAX_TAPS_PER_CARD * spec.cards:
            raise BenchError(f"{spec.cards} cards take at most {MAX_TAPS_PER_CARD * spec.cards} taps "
                             "(each card's counter ends at FFFF): use more cards")

    @property
    def acknowledged(self) -> int:
        return self.journal.acknowledged

    def reason(self, outcome: Any) -> str:
        if outcome is None:
            return "no card"
        return outcome.decline.value if outcome.decline is not None else outcome.status.value

    def flush(self) -> None:
        if isinstance(self.journal, SqliteJournal):
            self.journal.flush()

    def floor(self) -> Callable[[int], None]:
        return purchase_floor(self.cards[0], self.psam)

    def money(self) -> dict[str, int]:
        taken = sum(RIDER_BALANCE - card.balance for card in self.cards)
        if self.journal_path is not None:
            self.journal.close()
            with SqliteJournal(self.journal_path, readonly=True) as done:
                journaled = sum(e.record.amount for e in done.entries([DebitState.COMPLETE]))
        else:
            journaled = sum(e.record.amount for e in self.journal.entries([DebitState.COMPLETE]))
        return {"fen_journaled": journaled, "fen_taken_from_cards": taken}
