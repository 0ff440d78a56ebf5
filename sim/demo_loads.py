"""Riders who top up between trips, for the demo: a top-up machine on a simulated reader of its own, reaching the demo
load host in process (demo keys and terminals, test only), its journal and the host's ledger beside the demo's
journal. Riders pull their card away mid-load as they do mid-payment and tap again; the machine finishes or voids
the torn load at that next tap. The host's ledger is what the money check counts as loaded.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from terminal.clock import ManualClock
from terminal.loads import LoadJournal, LoadOutcome, LoadState, LoadStatus, LoadTerminal

from .card import SimCard
from .loadhost import InProcessLoadHost, LoadHostService, open_service
from .reader import SimReader, Tear

TOP_UP_AMOUNTS = (2000, 3000, 5000, 10000)
"""What riders load, in fen."""


@dataclass
class TopUpReport:
    """What the top-up machine did: loads done (``recovered``: finished at the tap after a tear), refusals by
    reason, taps torn and tapped again, and the money the host's ledger holds as loaded."""

    loads: int = 0
    recovered: int = 0
    refused: Counter = field(default_factory=Counter)
    retried: int = 0
    fen_loaded: int = 0
    waiting: int = 0  # loads still waiting for their card at the end (none, when money is conserved)
    ledger: str = ""
    journal: str = ""


class TopUpMachine:
    """A station top-up machine: the first demo load terminal, on its own simulated reader."""

    def __init__(self, journal_path: Path, clock: ManualClock, seed: int) -> None:
        self.ledger_path = journal_path.with_name(f"{journal_path.stem}-loadhost.db")
        self.journal_path = journal_path.with_name(f"{journal_path.stem}-loads.db")
        self.service: LoadHostService = open_service(self.ledger_path, clock=clock)
        registered = self.service.terminals.terminals[0]
        self.reader = SimReader()
        self.journal = LoadJournal(self.journal_path, clock=clock)
        self.terminal = LoadTerminal(self.reader, InProcessLoadHost(self.service, registered.token), self.journal,
                                     clock=clock, terminal_id=registered.number)
        self.terminal.start()
        self.clock = clock
        self.rng = random.Random(f"top-ups {seed}")  # its own stream: the riders' taps are the same with or without
        self.report = TopUpReport(ledger=str(self.ledger_path), journal=str(self.journal_path))

    def top_up(self, card: SimCard, tear_share: float) -> None:
        """One rider loads one of :data:`TOP_UP_AMOUNTS`, tapping again until the machine is done with the card."""
        amount = self.rng.choice(TOP_UP_AMOUNTS)
        if self.rng.random() < tear_share:
            self.reader.plan_tear((Tear.before if self.rng.random() < 0.5 else Tear.after)(self.rng.randrange(3)))
        outcome = self._tap(card, amount)
        self.reader.cancel_tears()
        while outcome is not None and outcome.status is LoadStatus.RETRY:
            self.report.retried += 1
            self.clock.advance(2)
            outcome = self._tap(card, amount)
        if outcome is None:
            return
        if outcome.loaded:
            self.report.loads += 1
            self.report.recovered += outcome.recovered
        else:
            self.report.refused[outcome.reason or outcome.status.value] += 1

    def _tap(self, card: SimCard, amount: int) -> LoadOutcome | None:
        self.reader.put(card)
        try:
            return self.terminal.load(amount)
        finally:
            if self.reader.present:
                self.reader.take()

    def close(self) -> TopUpReport:
        """Close the machine and the host; the report with the money the ledger holds as loaded."""
        self.report.waiting = len(list(self.journal.entries([LoadState.AUTHORIZED, LoadState.CREDITED])))
        self.report.fen_loaded = self.service.ledger.confirmed_fen()
        self.journal.close()
        self.service.close()
        return self.report
