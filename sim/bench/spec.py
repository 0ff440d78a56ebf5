"""What one benchmark run is asked to do (:class:`BenchSpec`), the flows it can run, and the error it raises."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from protocols.errors import YktError

BENCH_START = dt.datetime(2026, 3, 2, 6, 0, 0)
"""The simulated clock at the start of every run: the cards are issued valid then."""
JOURNALS = ("memory", "sqlite")


class BenchError(YktError):
    """The benchmark cannot run as asked, or a run broke a rule it checks (money not conserved)."""


@dataclass(frozen=True, slots=True)
class Flow:
    """A kind of transaction a run can take: how its report names things, and its sampled pass by default."""

    title: str  # "Offline debit throughput"
    transactions: str  # "composite purchases"
    transaction: str  # "purchase", as in "per purchase"
    counted: str  # "acknowledged": what made a transaction count
    timed: str  # whose time a transaction's cost is
    money: tuple[tuple[str, str], ...]  # (report key, what it says): the amounts that must be equal
    profile_taps: int  # taps of the sampled pass, unless asked otherwise


FLOWS: dict[str, Flow] = {
    "purchase": Flow("Offline debit throughput", "composite purchases", "purchase", "acknowledged",
                     "the validator's time",
                     (("fen_journaled", "journaled"), ("fen_taken_from_cards", "taken from cards")), 20_000),
    "load": Flow("Load throughput", "loads", "load", "confirmed by the host",
                 "the load terminal's time, the in-process host's included",
                 (("fen_journaled", "confirmed in the load journal"), ("fen_in_ledger", "in the host's ledger"),
                  ("fen_added_to_cards", "added to cards")), 2_000),
}
"""The flows a run can take, by name (each has a rig in :data:`sim.bench.loop.RIGS`)."""
CARD_KINDS = ("cpu", "m1")
"""The cards a purchase run's population holds: T-Union CPU cards, or legacy M1 (MIFARE Classic) city cards."""
M1_PURCHASE = Flow("Offline M1 debit throughput", "M1 debits", "debit", "acknowledged", "the validator's time",
                   FLOWS["purchase"].money, FLOWS["purchase"].profile_taps)
"""The purchase flow with M1 cards: the value-block debit of :mod:`terminal.flows.m1`."""


def flow_of(name: str, cards: str = "cpu") -> Flow:
    """The flow ``name`` as a run of ``cards`` takes it: an M1 card's purchase is its value-block debit."""
    return M1_PURCHASE if name == "purchase" and cards == "m1" else FLOWS[name]


@dataclass(frozen=True, slots=True)
class BenchSpec:
    """One worker's run. Exactly one of ``taps`` and ``seconds`` is set.

    ``flow`` is one of :data:`FLOWS`. ``journal`` and ``group_commit`` are the purchase journal's kind and SQLite batch
    size (0: durable, one commit per call); the load flow's journal and ledger are SQLite, durable per change.
    ``directory`` is where SQLite files are written; ``profile_taps`` is the length of the sampled pass (0: none).
    ``card_kind`` is what a purchase run's population holds (:data:`CARD_KINDS`).
    """

    taps: int | None = None
    seconds: float | None = None
    flow: str = "purchase"
    journal: str = "sqlite"
    group_commit: int = 1000
    cards: int = 1000
    seed: int = 978
    directory: str | None = None
    profile_taps: int = 20_000
    floor_iterations: int = 2000
    card_kind: str = "cpu"

    def check(self) -> None:
        """Refuse what no flow can run; each flow's rig checks its own limits (:meth:`sim.bench.loop.Rig.check`)."""
        if self.flow not in FLOWS:
            raise BenchError(f"flow must be one of {', '.join(FLOWS)}, got {self.flow!r}")
        if (self.taps is None) == (self.seconds is None):
            raise BenchError("give a number of taps or of seconds, one of the two")
        if (self.taps is not None and self.taps < 1) or (self.seconds is not None and not self.seconds > 0):
            raise BenchError("taps and seconds must be positive")
        if self.journal not in JOURNALS:
            raise BenchError(f"journal must be one of {', '.join(JOURNALS)}, got {self.journal!r}")
        if self.group_commit < 0:
            raise BenchError("group commit is a batch size, 0 (durable) or more")
        if self.cards < 1:
            raise BenchError("the population needs at least one card")
        if self.card_kind not in CARD_KINDS:
            raise BenchError(f"card kind must be one of {', '.join(CARD_KINDS)}, got {self.card_kind!r}")
        if self.card_kind != "cpu" and self.flow != "purchase":
            raise BenchError(f"{self.card_kind} cards are measured in the purchase flow only")
