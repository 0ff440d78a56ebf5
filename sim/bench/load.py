"""The load flow: a station top-up machine loading value onto cards, with the issuer's load host in process.

The worker's load terminal (:class:`terminal.loads.LoadTerminal`, its SQLite journal) reaches the demo load host
(:class:`sim.loadhost.LoadHostService`: the demo key set and terminals, its SQLite ledger) in process, as the demo's
top-up machine does. Every tap is a complete load of :data:`LOAD_AMOUNT`: SELECT, INITIALIZE FOR LOAD (the card's
MAC1), the journal's request, the host's authorization (MAC1 checked, the counter rule, the limits, MAC2, its ledger
row), the journal's authorization, CREDIT FOR LOAD (the card checks MAC2 and answers the TAC), the journal's credit,
the host's confirmation (the TAC checked, its ledger row), the journal's confirmation. The journal and the ledger
commit every change durably, as they do in service.
"""

from __future__ import annotations

import datetime as dt
import functools
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from terminal.clock import ManualClock
from terminal.loads import LoadJournal, LoadState, LoadStatus, LoadTerminal

from ..issuing import generate_population, load_demo_keyset
from ..loadhost import DEMO_TERMINALS, InProcessLoadHost, load_terminals, open_service
from ..reader import SimReader
from .floor import load_floor
from .spec import BENCH_START, BenchError, BenchSpec

LOAD_AMOUNT = 100
"""Fen a rider loads at each tap. The cards start empty, so each takes as many loads as the host's purse limit
allows (1,000 with the demo terminals file)."""


class LoadRig:
    """A load terminal with its simulated reader, journal, in-process load host and card population."""

    accepted = LoadStatus.LOADED

    def __init__(self, spec: BenchSpec, index: int = 0) -> None:
        self.keyset = load_demo_keyset()  # the cards' keys, and the host's: it holds the same demo key set
        self.cards = generate_population(self.keyset, spec.cards, spec.seed + index, on=BENCH_START.date())
        for card in self.cards:
            card.image.purse.balance = 0
        self.clock = ManualClock(BENCH_START)
        self.step = dt.timedelta(seconds=1)
        self.reader = SimReader(timing=None)
        directory = Path(spec.directory or tempfile.gettempdir())
        self.journal_path = directory / f"bench-load-journal-{index}.db"
        self.ledger_path = directory / f"bench-ledger-{index}.db"
        for path in (self.journal_path, self.ledger_path):
            if path.exists():
                raise BenchError(f"{path} exists; the benchmark writes a new load journal and ledger")
        self.service = open_service(self.ledger_path, clock=self.clock)
        registered = self.service.terminals.terminals[0]
        self.journal = LoadJournal(self.journal_path, clock=self.clock)
        self.terminal = LoadTerminal(self.reader, InProcessLoadHost(self.service, registered.token), self.journal,
                                     clock=self.clock, terminal_id=registered.number)
        self.terminal.start()
        self.serve = functools.partial(self.terminal.load, LOAD_AMOUNT)
        self.next_card = 0

    @staticmethod
    def check(spec: BenchSpec) -> None:
        if spec.journal != "sqlite":
            raise BenchError("the load flow journals in SQLite (the load terminal's journal and the host's ledger)")
        per_card = load_terminals(DEMO_TERMINALS).limits.purse // LOAD_AMOUNT
        if spec.taps is not None and spec.cards + spec.taps + spec.profile_taps > per_card * spec.cards:
            raise BenchError(f"{spec.cards} cards take at most {per_card * spec.cards} loads of {LOAD_AMOUNT} fen "
                             "(the host's purse limit), the warm-up included: use more cards")

    @property
    def acknowledged(self) -> int:
        return len(list(self.journal.entries([LoadState.CONFIRMED])))

    def reason(self, outcome: Any) -> str:
        if outcome is None:
            return "no card"
        return outcome.reason or outcome.status.value

    def flush(self) -> None:
        """Nothing: the journal and the ledger commit every change."""

    def floor(self) -> Callable[[int], None]:
        return load_floor(self.cards[0], self.keyset, self.terminal.terminal_id)

    def money(self) -> dict[str, int]:
        journaled = sum(entry.record.amount for entry in self.journal.entries([LoadState.CONFIRMED]))
        in_ledger = self.service.ledger.confirmed_fen()
        self.journal.close()
        self.service.close()
        return {"fen_journaled": journaled, "fen_in_ledger": in_ledger,
                "fen_added_to_cards": sum(card.balance for card in self.cards)}
