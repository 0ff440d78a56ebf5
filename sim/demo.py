"""A simulated validator session: the main job, and what a newcomer runs first.

Riders with a generated card population tap a validator on a simulated reader; the validator has a simulated PSAM, the
demo fares and a SQLite journal, as a real one would. The population is T-Union CPU cards, legacy M1 cards, or both
(:data:`CARD_KINDS`). Some riders pull their card away mid-payment and tap again (some only after the recovery
window), some tap twice, some carry cards the validator must refuse; some CPU-card riders top up between trips at a
top-up machine (:mod:`sim.demo_loads`; there is no M1 load terminal). At the end the money is checked: what the load
host's ledger holds as loaded, less what the journal holds as paid, must equal the change of the cards' balances, read
back from the cards themselves, for the whole session and for each kind of card.
"""

from __future__ import annotations

import datetime as dt
import random
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from terminal.clock import ManualClock
from terminal.config import Place, ValidatorConfig
from terminal.fares import load_fares
from terminal.journal import SqliteJournal
from terminal.outcome import Decline, TapOutcome, TapStatus
from terminal.records import DebitState
from terminal.settlement import verify
from terminal.trace import Tracer, Tracers
from terminal.validator import Validator

from .card import SimCard
from .card.m1_card import M1Card
from .card.m1_issuing import generate_m1_population
from .demo_loads import TopUpMachine, TopUpReport
from .issuing import DEFAULT_ISSUERS, generate_population, load_demo_keyset
from .psam import demo_psam
from .reader import SimReader, SimSamSlot, Tear
from .schedule import SendAheadWaits, schedule

DEMO_FARES = Path(__file__).resolve().parent / "fares" / "demo-flat.toml"
DEMO_START = dt.datetime(2026, 3, 2, 7, 30, 0)
CARD_KINDS = ("cpu", "m1", "mixed")
"""What the population holds: T-Union CPU cards, legacy M1 cards, or half and half."""
_DEBIT = {"cpu": 4, "m1": 25}
"""The exchange of a flat-fare tap that takes the money: a CPU card's DEBIT (SELECT, READ 0x17, INITIALIZE, the 0x1E
record, DEBIT), an M1 card's purse decrement (15 reads, then the trip record, the last ride and both public
copies)."""
_RETAP_WAITS = (2, 3, 5, 30, 45, 120)  # seconds before a torn rider taps again: at once, or past the recovery window


@dataclass
class DemoReport:
    """What a session did. ``fen_charged`` is money journaled complete; ``fen_taken_from_cards`` the sum of every
    card's balance decrease, read back from the cards themselves (net of loads); ``top_ups`` what the top-up machine
    did, with ``fen_loaded``, the money its host's ledger holds as loaded."""

    taps: int
    seed: int
    journal: str
    accepted: int = 0
    recovered: int = 0
    recovered_late: int = 0
    declined: Counter = field(default_factory=Counter)
    retried: int = 0
    fen_charged: int = 0
    fen_taken_from_cards: int = 0
    unconfirmed: int = 0
    tacs_verified: int = 0
    tac_mismatches: int = 0
    wall_s: float = 0.0
    modeled_ms: list[float] = field(default_factory=list)
    top_ups: TopUpReport = field(default_factory=TopUpReport)
    cards: str = "cpu"
    by_kind: dict[str, Counter] = field(default_factory=dict)
    """Per technology (``cpu``, ``m1``): cards, accepted and declined taps, fen journaled, fen taken from the cards."""

    @property
    def conserved(self) -> bool:
        """Money loaded (host ledger) - money journaled = change of the cards' balances, every TAC verified, and no
        load left waiting for its card."""
        loaded = self.top_ups.fen_loaded
        by_kind = all(kind["fen_charged"] == kind["fen_taken_from_cards"] for tech, kind in self.by_kind.items()
                      if tech != "cpu")  # (CPU cards' loads are the whole session's)
        return (loaded - self.fen_charged == -self.fen_taken_from_cards and self.tac_mismatches == 0
                and self.top_ups.waiting == 0 and by_kind)

    def as_dict(self) -> dict:
        modeled = sorted(self.modeled_ms)
        return {
            "taps": self.taps, "seed": self.seed, "accepted": self.accepted, "recovered": self.recovered,
            "recovered_late": self.recovered_late,
            "declined": sum(self.declined.values()), "declined_by_reason": dict(self.declined.most_common()),
            "retried": self.retried, "fen_charged": self.fen_charged,
            "fen_taken_from_cards": self.fen_taken_from_cards, "unconfirmed": self.unconfirmed,
            "tacs_verified": self.tacs_verified, "tac_mismatches": self.tac_mismatches, "conserved": self.conserved,
            "taps_per_s": round(self.taps / self.wall_s, 1) if self.wall_s else None,
            "modeled_purchase_ms_p50": round(statistics.median(modeled), 1) if modeled else None,
            "modeled_purchase_ms_max": round(modeled[-1], 1) if modeled else None,
            "journal": self.journal,
            "loads": self.top_ups.loads, "loads_recovered": self.top_ups.recovered,
            "loads_refused": dict(self.top_ups.refused.most_common()), "load_retries": self.top_ups.retried,
            "fen_loaded": self.top_ups.fen_loaded, "fen_cards_change": -self.fen_taken_from_cards,
            "load_ledger": self.top_ups.ledger or None, "load_journal": self.top_ups.journal or None,
            "cards": self.cards, "by_kind": {tech: dict(kind) for tech, kind in sorted(self.by_kind.items())},
        }


def _modeled_ms(outcome: TapOutcome, reader: SimReader, waits: SendAheadWaits) -> float:
    """The tap's length on its modeled timeline, activation included, as ``ykt tap`` prices it."""
    activation = reader.activation_model.total_us if reader.activation_model is not None else 0.0
    return schedule(outcome.exchanges, waits.waits, activation).end_us / 1000


def demo_config() -> ValidatorConfig:
    """The demo validator's settings: it stands in the city of the demo population's home issuer."""
    home = DEFAULT_ISSUERS[0]
    return ValidatorConfig(place=Place(city_code=home[2:4], institution_id=home))


def demo_population(kind: str, n: int, seed: int, odd_share: float) -> list[SimCard | M1Card]:
    """``n`` cards of ``kind`` (:data:`CARD_KINDS`) for a session starting at :data:`DEMO_START`: CPU cards of the
    demo issuers, M1 cards of the demo validator's city, or half of each."""
    keyset, on = load_demo_keyset(), DEMO_START.date()
    m1 = {"cpu": 0, "m1": n, "mixed": n // 2}[kind]
    cpu: list[SimCard | M1Card] = list(generate_population(keyset, n - m1, seed, odd_share=odd_share, on=on))
    return cpu + list(generate_m1_population(keyset, m1, seed, odd_share=odd_share, on=on,
                                             city=demo_config().place.city_code))


def _technology(card: SimCard | M1Card) -> str:
    return "m1" if isinstance(card, M1Card) else "cpu"


def run_demo(taps: int, seed: int, journal_path: Path, *, population: int | None = None, cards: str = "cpu",
             config: ValidatorConfig | None = None, tear_share: float = 0.05, odd_share: float = 0.1,
             load_share: float = 0.0, tracer: Tracer | None = None, clock: ManualClock | None = None,
             progress: Callable[[int], object] | None = None) -> DemoReport:
    """Run ``taps`` taps of a generated population of ``population`` cards of kind ``cards`` (:data:`CARD_KINDS`) on a
    validator with ``config`` (default :func:`demo_config`) journaling to ``journal_path``.

    Riders tap at a busy stop (a few seconds apart, a few of them twice); ``tear_share`` of the taps are torn away (half
    of them as the money moves, the others at a random exchange before) and the rider taps again, a moment later or
    only after the recovery window; ``odd_share`` of the cards are expired, blocked, broke...
    Before ``load_share`` of the taps a CPU-card rider tops up first (torn as often as taps are; files beside the
    journal). ``clock`` (default: a new one at :data:`DEMO_START`) is the session's clock, for a tracer that records it.
    """
    rng = random.Random(seed)
    keyset = load_demo_keyset()
    riders = demo_population(cards, population or max(10, taps // 2), seed, odd_share)
    start_balance = {id(c): c.balance or 0 for c in riders}
    clock = clock or ManualClock(DEMO_START)
    reader, sam = SimReader(), SimSamSlot(demo_psam())
    journal = SqliteJournal(journal_path, clock=clock)
    config = config or demo_config()
    waits = SendAheadWaits(reader.name)
    validator = Validator(reader, sam, load_fares(DEMO_FARES), journal, clock=clock, config=config,
                          tracer=waits if tracer is None else Tracers(waits, tracer))
    report = DemoReport(taps, seed, str(journal_path), cards=cards)
    for card in riders:
        report.by_kind.setdefault(_technology(card), Counter())["cards"] += 1
    machine = TopUpMachine(journal_path, clock, seed) if load_share else None
    started = time.perf_counter()
    try:
        validator.start()
        for n in range(taps):
            rider = rng.choice(riders)
            clock.advance(rng.choice((2, 3, 5, 8, 40, 90)))
            if machine is not None and isinstance(rider, SimCard) and machine.rng.random() < load_share:
                machine.top_up(rider, tear_share)
            if rng.random() < tear_share:
                debit = _DEBIT[_technology(rider)]
                at = debit if rng.random() < 0.5 else rng.randrange(debit + 1)
                reader.plan_tear((Tear.before if rng.random() < 0.5 else Tear.after)(at))
            outcome = _tap(validator, reader, rider)
            reader.cancel_tears()
            late = False
            while outcome is not None and (outcome.status is TapStatus.RETRY
                                           or outcome.decline is Decline.CARD_REMOVED):
                report.retried += 1
                wait = rng.choice(_RETAP_WAITS)
                late = wait >= config.recovery_window_s
                clock.advance(wait)
                outcome = _tap(validator, reader, rider)
            _count(report, outcome)
            if outcome is not None and outcome.accepted:
                report.modeled_ms.append(_modeled_ms(outcome, reader, waits))
            report.recovered_late += bool(outcome is not None and outcome.recovered and late)
            if progress is not None:
                progress(n + 1)
        clock.advance(config.recovery_window_s + 1)
        validator.expire()
    finally:
        journal.close()
        if machine is not None:
            report.top_ups = machine.close()
    report.wall_s = time.perf_counter() - started
    for card in riders:
        taken = start_balance[id(card)] - (card.balance or 0)
        report.fen_taken_from_cards += taken
        report.by_kind[_technology(card)]["fen_taken_from_cards"] += taken
    with SqliteJournal(journal_path, readonly=True) as done:
        for entry in done.entries([DebitState.COMPLETE]):
            report.fen_charged += entry.record.amount
            report.by_kind[entry.record.technology.value]["fen_charged"] += entry.record.amount
        report.unconfirmed = sum(1 for _ in done.entries([DebitState.UNCONFIRMED]))
        check = verify(done, keyset)
    report.tacs_verified, report.tac_mismatches = check.verified, len(check.mismatches) + len(check.unverifiable)
    return report


def _tap(validator: Validator, reader: SimReader, card: SimCard | M1Card) -> TapOutcome | None:
    reader.put(card)
    try:
        return validator.poll()
    finally:
        if reader.present:
            reader.take()


def _count(report: DemoReport, outcome: TapOutcome | None) -> None:
    if outcome is None:
        return
    kind = report.by_kind.setdefault(outcome.technology or "none", Counter())
    if outcome.accepted:
        report.accepted += 1
        kind["accepted"] += 1
        report.recovered += outcome.recovered
    else:
        kind["declined"] += 1
        report.declined[outcome.decline.value if outcome.decline else outcome.status.value] += 1

