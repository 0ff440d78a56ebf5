"""One worker's run: build the flow's rig, warm it up, time its taps, then measure its floor and sample where the time
goes, and check that money is conserved."""

from __future__ import annotations

import array
import datetime as dt
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sim.device import Device
from sim.reader import SimReader
from terminal.clock import ManualClock

from .floor import measure_floor
from .load import LoadRig
from .profiler import Sampler
from .purchase import PurchaseRig
from .spec import BenchError, BenchSpec

PROGRESS_EVERY = 1024


class Rig(Protocol):
    """A terminal of one flow with everything behind it, and its card population on a simulated reader."""

    reader: SimReader
    clock: ManualClock
    step: dt.timedelta  # the simulated time between two taps
    next_card: int  # the card that taps next

    @property
    def cards(self) -> Sequence[Device]:
        """The population, in the order its riders tap."""

    @property
    def serve(self) -> Callable[[], Any]:
        """The terminal's work for the card in the field: what a tap's latency measures."""

    @property
    def accepted(self) -> object:
        """The outcome status of a transaction done."""

    def __init__(self, spec: BenchSpec, index: int) -> None:
        """Worker ``index``'s rig (its own population, from ``spec.seed + index``, and its own files)."""

    @staticmethod
    def check(spec: BenchSpec) -> None:
        """Refuse a run this flow cannot make (before any worker starts)."""

    @property
    def acknowledged(self) -> int:
        """Transactions the terminal's records hold as done so far."""

    def reason(self, outcome: Any) -> str:
        """Why a tap did not count."""

    def flush(self) -> None:
        """Put on disk what the terminal holds back (a journal's open group commit)."""

    def floor(self) -> Callable[[int], None]:
        """``run(n)``: n transactions' cryptography alone (:mod:`sim.bench.floor`), over fresh keys equal to the
        first card's and its counterpart's."""

    def money(self) -> dict[str, int]:
        """The amounts that must be equal when money is conserved (the keys of its flow's ``Flow.money``), in fen;
        closes the rig's files."""


RIGS: dict[str, type[Rig]] = {"purchase": PurchaseRig, "load": LoadRig}
"""The rig of each flow of :data:`sim.bench.spec.FLOWS`."""


def check(spec: BenchSpec) -> None:
    """Refuse a run that cannot be made, before any worker starts."""
    spec.check()
    RIGS[spec.flow].check(spec)


@dataclass
class WorkerResult:
    """What one worker measured. ``latencies_ns`` holds every timed tap's wall time."""

    index: int
    taps: int = 0
    accepted: int = 0
    declined: Counter = field(default_factory=Counter)
    acknowledged: int = 0
    elapsed_s: float = 0.0
    started: float = 0.0  # time.monotonic() when timing began, comparable across processes
    latencies_ns: array.array = field(default_factory=lambda: array.array("q"))
    flush_ns: int = 0  # the final flush of the journal, which no tap carries
    floor_us: float | None = None
    samples: dict[str, int] = field(default_factory=dict)
    sampler_lost: int = 0
    profiled_taps: int = 0
    money: dict[str, int] = field(default_factory=dict)

    @property
    def tx_per_s(self) -> float:
        return self.acknowledged / self.elapsed_s if self.elapsed_s else 0.0

    @property
    def cost_us(self) -> float:
        """What a transaction costs the terminal: its taps' time and the final flush, per counted transaction (the
        loop's own work of presenting cards and moving the clock left out)."""
        return (sum(self.latencies_ns) + self.flush_ns) / self.acknowledged / 1000 if self.acknowledged else 0.0


def drive(rig: Rig, result: WorkerResult, *, taps: int | None = None, until: float | None = None,
          latencies: array.array | None = None, progress: Callable[[int], None] | None = None) -> None:
    """Run taps in turn (``taps`` of them, or until ``time.perf_counter()`` passes ``until``), counting outcomes
    into ``result``; with ``latencies``, each tap's wall time in ns is appended."""
    cards, reader, serve, clock, accepted_status = rig.cards, rig.reader, rig.serve, rig.clock, rig.accepted
    step = rig.step
    clock_ns, now = time.perf_counter_ns, time.perf_counter
    n, i, count, accepted = len(cards), rig.next_card, 0, 0
    record = latencies.append if latencies is not None else None
    while True:
        if taps is not None:
            if count >= taps:
                break
        elif now() >= until:  # type: ignore[operator]
            break
        clock.advance(step)
        reader.put(cards[i])
        started = clock_ns()
        outcome = serve()
        took = clock_ns() - started
        reader.take()
        if record is not None:
            record(took)
        if outcome is not None and outcome.status is accepted_status:
            accepted += 1
        else:
            result.declined[rig.reason(outcome)] += 1
        i = i + 1 if i + 1 < n else 0
        count += 1
        if progress is not None and count % PROGRESS_EVERY == 0:
            progress(PROGRESS_EVERY)
    rig.next_card = i
    result.taps += count
    result.accepted += accepted
    if progress is not None and count % PROGRESS_EVERY:
        progress(count % PROGRESS_EVERY)


def run_worker(spec: BenchSpec, index: int = 0, *, progress: Callable[[int], None] | None = None,
               ready: Callable[[], None] | None = None, measure_extras: bool = True) -> WorkerResult:
    """One worker: build the rig, warm it up, call ``ready`` (a barrier), run the timed taps and flush; then, when
    ``measure_extras``, the cryptography floor and the sampled pass. Checks that money is conserved."""
    check(spec)
    rig = RIGS[spec.flow](spec, index)
    result = WorkerResult(index)
    warm = WorkerResult(index)
    drive(rig, warm, taps=len(rig.cards))
    rig.flush()
    acknowledged_before = rig.acknowledged
    if ready is not None:
        ready()
    latencies = array.array("q")
    result.started = time.monotonic()
    start = time.perf_counter()
    until = None if spec.seconds is None else start + spec.seconds
    drive(rig, result, taps=spec.taps, until=until, latencies=latencies, progress=progress)
    flushing = time.perf_counter_ns()
    rig.flush()
    result.flush_ns = time.perf_counter_ns() - flushing
    result.elapsed_s = time.perf_counter() - start
    result.acknowledged = rig.acknowledged - acknowledged_before
    result.latencies_ns = latencies
    if measure_extras:
        result.floor_us = measure_floor(rig.floor(), spec.floor_iterations)
        if spec.profile_taps:
            profiled = WorkerResult(index)
            sampler = Sampler()
            with sampler.running():
                drive(rig, profiled, taps=spec.profile_taps)
                rig.flush()
            result.samples = dict(sampler.samples)
            result.sampler_lost = sampler.lost
            result.profiled_taps = profiled.taps
            warm.accepted += profiled.accepted
            warm.declined.update(profiled.declined)
    all_accepted = warm.accepted + result.accepted
    if rig.acknowledged != all_accepted:
        raise BenchError(f"worker {index}: {rig.acknowledged} transactions acknowledged for {all_accepted} accepted")
    result.money = rig.money()
    if len(set(result.money.values())) > 1:
        shown = ", ".join(f"{key} {fen}" for key, fen in result.money.items())
        raise BenchError(f"worker {index}: money not conserved: {shown}")
    return result
