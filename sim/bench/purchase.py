"""The purchase flow: a bus validator taking complete composite purchases, or complete M1 debits.

The worker's validator runs as a bus would run it (the tap state machine, the demo flat fares, a simulated PSAM, a
journal; no tap's exchanges kept in its outcome, since nobody reads them there). Its population's clock moves on
between taps so that no card comes back within the repeat-tap window, and every rider carries enough money for the
run, so every tap is a full composite purchase: SELECT, READ BINARY 0x17, INITIALIZE FOR CAPP PURCHASE, the PSAM's
MAC1, UPDATE CAPP DATA CACHE 0x1E, the journal's intent, DEBIT (the card checks MAC1), the PSAM's MAC2 check, the
journal's completion. With M1 cards (``card_kind`` m1, every rider a normal
fare so that every tap is a debit) each tap is the M1 flow's: the PSAM's sector keys, the issuance and purse blocks,
the PSAM's check of the auth code, its transaction MAC, the journal's intent, the eight block writes and value
operations of the debit, the journal's completion.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from protocols.card_files import CardType
from protocols.m1.layout import MAX_BALANCE as M1_MAX_BALANCE
from protocols.m1.layout import PURSE_BACKUP_BLOCK, PURSE_BLOCK
from protocols.mifare import ValueBlock
from terminal.clock import ManualClock
from terminal.config import Place, ValidatorConfig
from terminal.fares import load_fares
from terminal.journal import Journal, MemoryJournal, SqliteJournal
from terminal.outcome import TapStatus
from terminal.records import DebitState
from terminal.validator import Validator

from ..card import SimCard
from ..card.m1_card import M1Card
from ..card.m1_issuing import generate_m1_population
from ..demo import DEMO_FARES
from ..issuing import DEFAULT_ISSUERS, generate_population, load_demo_keyset
from ..psam import demo_psam
from ..reader import SimReader, SimSamSlot
from .floor import m1_debit_floor, purchase_floor
from .spec import BENCH_START, BenchError, BenchSpec

RIDER_BALANCE = 1_000_000_000
"""Fen in every purse before the run (ten million yuan): no tap is declined for funds, which would take a shorter
path than a purchase."""
M1_RIDER_BALANCE = M1_MAX_BALANCE
"""An M1 purse's most (167 772.15 yuan, the width of a trip record): 60 000 taps of 2 yuan fit."""
MAX_TAPS_PER_CARD = 60_000
"""A card's offline counter stops at FFFF: a run asks at most this many taps of one card."""


class PurchaseRig:
    """A validator with its simulated reader, PSAM, journal and card population, ready to take taps in turn."""

    accepted = TapStatus.ACCEPTED

    def __init__(self, spec: BenchSpec, index: int = 0) -> None:
        keyset = load_demo_keyset()
        home = DEFAULT_ISSUERS[0]
        config = ValidatorConfig(place=Place(city_code=home[2:4], institution_id=home))
        self.cards: list[SimCard | M1Card]
        if spec.card_kind == "m1":
            self.balance = M1_RIDER_BALANCE
            riders = generate_m1_population(keyset, spec.cards, spec.seed + index, on=BENCH_START.date(),
                                            city=config.place.city_code, card_type=CardType.NORMAL)
            for rider in riders:
                for block in (PURSE_BLOCK, PURSE_BACKUP_BLOCK):
                    rider.image.set_block(block, ValueBlock(self.balance, PURSE_BLOCK).to_bytes())
            self.cards = list(riders)
        else:
            self.balance = RIDER_BALANCE
            population = generate_population(keyset, spec.cards, spec.seed + index, on=BENCH_START.date())
            for card in population:
                card.image.purse.balance = self.balance
            self.cards = list(population)
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
                                   clock=self.clock, config=config, keep_exchanges=False)
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
        first = self.cards[0]
        return m1_debit_floor(first, self.psam) if isinstance(first, M1Card) else purchase_floor(first, self.psam)

    def money(self) -> dict[str, int]:
        taken = sum(self.balance - (card.balance or 0) for card in self.cards)
        if self.journal_path is not None:
            self.journal.close()
            with SqliteJournal(self.journal_path, readonly=True) as done:
                journaled = sum(e.record.amount for e in done.entries([DebitState.COMPLETE]))
        else:
            journaled = sum(e.record.amount for e in self.journal.entries([DebitState.COMPLETE]))
        return {"fen_journaled": journaled, "fen_taken_from_cards": taken}
