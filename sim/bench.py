"""Offline debit throughput: complete composite purchases per second, the cryptography floor, and where the time goes.

Each worker owns a validator as a bus would run it (the tap state machine, the demo flat fares, a simulated PSAM, a
journal) and a generated card population on a simulated reader without a timing model. Riders tap in turn; the
population's clock moves on between taps so that no card comes back within the repeat-tap window, and every rider
carries enough money for the run, so every tap is a full composite purchase: SELECT, READ BINARY 0x17, INITIALIZE
FOR CAPP PURCHASE, the PSAM's MAC1, UPDATE CAPP DATA CACHE 0x1E, the journal's intent, DEBIT (the card checks MAC1),
the PSAM's MAC2 check, the journal's completion. Every card taps once before timing starts (imports, the PSAM's
issuer-level key, each card's own key contexts), as it would have on earlier days.

What is counted: transactions the journal *acknowledged* (in group commit, those whose batch is on disk); the run
flushes the journal at its end, inside the timed span, so the rate is acknowledged debits over the whole span. Per-tap
latency is the wall time of one :meth:`~terminal.validator.Validator.poll`, so a tap that commits a group carries the
commit. A transaction's cost (the mean) is the taps' time plus the final flush per acknowledged debit: the validator's
time, without the loop's own work of presenting cards and moving the clock (reported apart, as wall time per
transaction).

The cryptography floor is :func:`floor_purchase` run alone over the same keys: the same cipher operations, key
objects and cipher contexts a purchase makes in the card and the PSAM (a test counts both), and nothing else. The
ratio is a transaction's cost to it.

Where the time goes comes from a separate, statistically sampled pass (SIGALRM every :data:`SAMPLE_INTERVAL_S` of wall
time): each sample is charged to the innermost frame of the project (or of ``cryptography``) on the stack, by
module (:func:`category_of`); the shares are applied to the wall time per transaction, so the parts sum to it. The
interpreter takes a signal at its next call or loop jump, so the border between two categories is fuzzy by about one
call; the shares are good to a few percent, not to the microsecond.
"""

from __future__ import annotations

import array
import dataclasses
import datetime as dt
import os
import shutil
import signal
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import cryptography

from protocols.crypto import (CardKey, SessionKey, diversify, macs_equal, purchase_mac1, purchase_mac2,
                              purchase_session_key, purchase_tac)
from protocols.card_files import TransactionType
from protocols.errors import YktError
from terminal.clock import ManualClock
from terminal.config import Place, ValidatorConfig
from terminal.fares import load_fares
from terminal.journal import Journal, MemoryJournal, SqliteJournal
from terminal.keyset import KeyUsage
from terminal.outcome import TapStatus
from terminal.records import DebitState
from terminal.validator import Validator

from .card import SimCard
from .demo import DEMO_FARES
from .issuing import DEFAULT_ISSUERS, generate_population, load_demo_keyset
from .psam import SimPsam, demo_psam
from .reader import SimReader, SimSamSlot

BENCH_START = dt.datetime(2026, 3, 2, 6, 0, 0)
RIDER_BALANCE = 1_000_000_000
"""Fen in every purse before the run (ten million yuan): no tap is declined for funds, which would take a shorter
path than a purchase."""
MAX_TAPS_PER_CARD = 60_000
"""A card's offline counter stops at FFFF: a run asks at most this many taps of one card."""
SAMPLE_INTERVAL_S = 0.0005
PROGRESS_EVERY = 1024
JOURNALS = ("memory", "sqlite")
_COMPOSITE = int(TransactionType.COMPOSITE_PURCHASE)


class BenchError(YktError):
    """The benchmark cannot run as asked, or a run broke a rule it checks (money not conserved)."""


@dataclass(frozen=True, slots=True)
class BenchSpec:
    """One worker's run. Exactly one of ``taps`` and ``seconds`` is set.

    ``group_commit`` is the SQLite journal's batch size (0: durable, one commit per call); ``directory`` is where
    SQLite journals are written; ``profile_taps`` is the length of the sampled pass (0: none).
    """

    taps: int | None = None
    seconds: float | None = None
    journal: str = "sqlite"
    group_commit: int = 1000
    cards: int = 1000
    seed: int = 978
    directory: str | None = None
    profile_taps: int = 20_000
    floor_iterations: int = 2000

    def check(self) -> None:
        if (self.taps is None) == (self.seconds is None):
            raise BenchError("give a number of taps or of seconds, one of the two")
        if self.taps is not None and self.taps < 1 or self.seconds is not None and not self.seconds > 0:
            raise BenchError("taps and seconds must be positive")
        if self.journal not in JOURNALS:
            raise BenchError(f"journal must be one of {', '.join(JOURNALS)}, got {self.journal!r}")
        if self.group_commit < 0:
            raise BenchError("group commit is a batch size, 0 (durable) or more")
        if self.cards < 1:
            raise BenchError("the population needs at least one card")
        if self.taps is not None and self.taps + self.profile_taps > MAX_TAPS_PER_CARD * self.cards:
            raise BenchError(f"{self.cards} cards take at most {MAX_TAPS_PER_CARD * self.cards} taps "
                             "(each card's counter ends at FFFF): use more cards")


# --- the cryptography floor --------------------------------------------------------------------------------------------

@dataclass(slots=True)
class FloorKeys:
    """The keys of one purchase, held as their holders hold them: the PSAM's issuer-level purchase key (kept per
    issuer), the card's DPK and TAC key (made once per card), the card's diversification factor and the terminal."""

    issuer_key: CardKey
    card_dpk: CardKey
    card_tac: SessionKey
    factor: bytes
    terminal: bytes


def floor_purchase(keys: FloorKeys, random: bytes, atc: int, tsn: int, amount: int, when: bytes) -> bytes:
    """The cryptography of one composite purchase and nothing else, operation for operation as the PSAM and the card
    do it; returns the TAC.

    PSAM, INIT SAM FOR PURCHASE: the card's DPK from the issuer-level key (one ECB call, a new key object), the
    session key (the DPK's ECB context, one call), MAC1 (the session key's CBC context). Card, DEBIT: its session key
    (one ECB call on its DPK), MAC1 checked (a CBC context), MAC2, TAC. PSAM, CREDIT SAM FOR PURCHASE: MAC2 checked.
    """
    dpk = diversify(keys.issuer_key, keys.factor)
    psam_session = purchase_session_key(dpk, random, atc, tsn)
    mac1 = purchase_mac1(psam_session, amount, _COMPOSITE, keys.terminal, when)
    card_session = purchase_session_key(keys.card_dpk, random, atc, tsn)
    if not macs_equal(purchase_mac1(card_session, amount, _COMPOSITE, keys.terminal, when), mac1):
        raise BenchError("cryptography floor: the card's MAC1 differs from the PSAM's")
    mac2 = purchase_mac2(card_session, amount)
    tac = purchase_tac(keys.card_tac, amount, _COMPOSITE, keys.terminal, tsn, when)
    if not macs_equal(purchase_mac2(psam_session, amount), mac2):
        raise BenchError("cryptography floor: the PSAM's MAC2 differs from the card's")
    return tac


def floor_keys(card: SimCard, psam: SimPsam) -> FloorKeys:
    """Fresh key objects equal to those ``card`` and ``psam`` use in a purchase, their long-lived contexts made."""
    slot = card.image.keys[psam.key_index]
    info = card.info
    master = psam.keyset.master(KeyUsage.PURCHASE, slot.version)
    issuer_key = diversify(master, info.issuer_id) if psam.keyset.levels == 2 else master
    card_dpk = type(slot.purchase)(slot.purchase.export())  # type: ignore[union-attr]
    card_tac = type(slot.tac_key())(slot.tac_key().export())
    for key in (issuer_key, card_dpk):
        key.check_value()  # the ECB context a long-lived key already has
    card_tac.cbc_last(bytes(card_tac.block_size))  # and the TAC key's CBC context
    return FloorKeys(issuer_key, card_dpk, card_tac, info.diversification_factor, psam.terminal_number)


def measure_floor(keys: FloorKeys, iterations: int, rounds: int = 5) -> float:
    """Microseconds per purchase of :func:`floor_purchase`: the median of ``rounds`` timed runs."""
    when = bytes.fromhex("20260302060000")
    runs = []
    for _ in range(rounds):
        start = time.perf_counter()
        for i in range(iterations):
            floor_purchase(keys, i.to_bytes(4, "big"), i & 0xFFFF, i, 200, when)
        runs.append((time.perf_counter() - start) / iterations * 1e6)
    return statistics.median(runs)


# --- where the time goes ---------------------------------------------------------------------------------------------

CATEGORIES = ("cryptography", "codecs", "state machine", "channel and tracing", "journal",
              "simulated reader, card and PSAM", "bench loop")
_ROOT = str(Path(__file__).resolve().parent.parent) + os.sep
_CRYPTOGRAPHY = str(Path(cryptography.__file__).resolve().parent) + os.sep
_PASS_THROUGH = "pass"  # charged to the caller: stdlib, and the clock (read by the validator, the journal, the loop)
_RULES = (  # (path prefix relative to the project, category), first match wins
    ("protocols/crypto/", "cryptography"),
    ("protocols/", "codecs"),
    ("terminal/journal/", "journal"),
    ("terminal/clock.py", _PASS_THROUGH),
    ("terminal/channel.py", "channel and tracing"),
    ("terminal/trace.py", "channel and tracing"),
    ("terminal/link.py", "channel and tracing"),
    ("terminal/", "state machine"),
    ("sim/card/", "simulated reader, card and PSAM"),
    ("sim/psam.py", "simulated reader, card and PSAM"),
    ("sim/reader.py", "simulated reader, card and PSAM"),
    ("sim/device.py", "simulated reader, card and PSAM"),
    ("sim/bench.py", "bench loop"),
)


def category_of(filename: str) -> str:
    """The category a frame of ``filename`` is charged to; ``"pass"`` when its caller takes the charge."""
    path = os.path.realpath(filename)
    if path.startswith(_CRYPTOGRAPHY):
        return "cryptography"
    if path.startswith(_ROOT):
        relative = path[len(_ROOT):].replace(os.sep, "/")
        for prefix, category in _RULES:
            if relative.startswith(prefix):
                return category
    return _PASS_THROUGH


class Sampler:
    """A statistical profiler: on each SIGALRM (every ``interval`` seconds of wall time, which is what a transaction's
    cost is measured in; the CPU-time timer ticks only at the kernel's HZ) the innermost frame with a category is
    charged one sample. Main thread, POSIX only."""

    def __init__(self, interval: float = SAMPLE_INTERVAL_S) -> None:
        self.interval = interval
        self.samples: Counter[str] = Counter()
        self.lost = 0  # samples taken while the sampler itself ran: its own cost, not the workload's
        self._categories: dict[str, str] = {}

    def _sample(self, signum: int, frame: FrameType | None) -> None:
        if frame is not None and frame.f_code is Sampler._sample.__code__:
            self.lost += 1
            return
        categories = self._categories
        while frame is not None:
            filename = frame.f_code.co_filename
            category = categories.get(filename)
            if category is None:
                category = categories[filename] = category_of(filename)
            if category != _PASS_THROUGH:
                self.samples[category] += 1
                return
            frame = frame.f_back
        self.samples["other"] += 1

    @contextmanager
    def running(self) -> Iterator[Sampler]:
        previous = signal.signal(signal.SIGALRM, self._sample)
        signal.setitimer(signal.ITIMER_REAL, self.interval, self.interval)
        try:
            yield self
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0, 0)
            signal.signal(signal.SIGALRM, previous)



def share_out(samples: dict[str, int], total_us: float) -> dict[str, float]:
    """``total_us`` split by each category's share of ``samples``, in :data:`CATEGORIES` order (categories with no
    sample left out): the parts add up to the total."""
    count = sum(samples.values())
    if not count:
        return {}
    return {c: total_us * samples[c] / count for c in (*CATEGORIES, "other") if samples.get(c)}


# --- one worker --------------------------------------------------------------------------------------------------------

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
    fen_journaled: int = 0
    fen_taken: int = 0

    @property
    def tx_per_s(self) -> float:
        return self.acknowledged / self.elapsed_s if self.elapsed_s else 0.0

    @property
    def cost_us(self) -> float:
        """What a transaction costs the validator: its taps' time and the final flush, per acknowledged debit (the
        loop's own work of presenting cards and moving the clock left out)."""
        return (sum(self.latencies_ns) + self.flush_ns) / self.acknowledged / 1000 if self.acknowledged else 0.0


class Rig:
    """A validator with its simulated reader, PSAM, journal and card population, ready to take taps in turn."""

    def __init__(self, spec: BenchSpec, index: int = 0) -> None:
        keyset = load_demo_keyset()
        self.cards = generate_population(keyset, spec.cards, spec.seed + index, on=BENCH_START.date())
        for card in self.cards:
            card.image.purse.balance = RIDER_BALANCE
        home = DEFAULT_ISSUERS[0]
        config = ValidatorConfig(place=Place(city_code=home[2:4], institution_id=home))
        # a card comes back after the whole population has tapped: that must be past the repeat-tap window
        self.step_s = (config.repeat_tap_s + 2) / spec.cards
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
        self._next = 0

    def drive(self, result: WorkerResult, *, taps: int | None = None, until: float | None = None,
              latencies: array.array | None = None, progress: Callable[[int], None] | None = None) -> None:
        """Run taps in turn (``taps`` of them, or until ``time.perf_counter()`` passes ``until``), counting outcomes
        into ``result``; with ``latencies``, each tap's wall time in ns is appended."""
        cards, reader, validator, clock = self.cards, self.reader, self.validator, self.clock
        step = dt.timedelta(seconds=self.step_s)
        clock_ns, now = time.perf_counter_ns, time.perf_counter
        accepted_status = TapStatus.ACCEPTED
        n, i, count, accepted = len(cards), self._next, 0, 0
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
            outcome = validator.poll()
            took = clock_ns() - started
            reader.take()
            if record is not None:
                record(took)
            if outcome is not None and outcome.status is accepted_status:
                accepted += 1
            else:
                result.declined[_reason(outcome)] += 1
            i = i + 1 if i + 1 < n else 0
            count += 1
            if progress is not None and count % PROGRESS_EVERY == 0:
                progress(PROGRESS_EVERY)
        self._next = i
        result.taps += count
        result.accepted += accepted
        if progress is not None and count % PROGRESS_EVERY:
            progress(count % PROGRESS_EVERY)

    def flush(self) -> None:
        if isinstance(self.journal, SqliteJournal):
            self.journal.flush()

    def money(self) -> tuple[int, int]:
        """(fen journaled as complete, fen the cards lost): equal when money is conserved."""
        taken = sum(RIDER_BALANCE - card.balance for card in self.cards)
        if self.journal_path is not None:
            self.journal.close()
            with SqliteJournal(self.journal_path, readonly=True) as done:
                journaled = sum(e.record.amount for e in done.entries([DebitState.COMPLETE]))
        else:
            journaled = sum(e.record.amount for e in self.journal.entries([DebitState.COMPLETE]))
        return journaled, taken


def _reason(outcome: Any) -> str:
    if outcome is None:
        return "no card"
    return outcome.decline.value if outcome.decline is not None else outcome.status.value


def run_worker(spec: BenchSpec, index: int = 0, *, progress: Callable[[int], None] | None = None,
               ready: Callable[[], None] | None = None, measure_extras: bool = True) -> WorkerResult:
    """One worker: build the rig, warm it up, call ``ready`` (a barrier), run the timed taps and flush; then, when
    ``measure_extras``, the cryptography floor and the sampled pass. Checks that money is conserved."""
    spec.check()
    rig = Rig(spec, index)
    result = WorkerResult(index)
    warm = WorkerResult(index)
    rig.drive(warm, taps=len(rig.cards))
    rig.flush()
    acknowledged_before = rig.journal.acknowledged
    if ready is not None:
        ready()
    latencies = array.array("q")
    result.started = time.monotonic()
    start = time.perf_counter()
    until = None if spec.seconds is None else start + spec.seconds
    rig.drive(result, taps=spec.taps, until=until, latencies=latencies, progress=progress)
    flushing = time.perf_counter_ns()
    rig.flush()
    result.flush_ns = time.perf_counter_ns() - flushing
    result.elapsed_s = time.perf_counter() - start
    result.acknowledged = rig.journal.acknowledged - acknowledged_before
    result.latencies_ns = latencies
    if measure_extras:
        result.floor_us = measure_floor(floor_keys(rig.cards[0], rig.psam), spec.floor_iterations)
        if spec.profile_taps:
            profiled = WorkerResult(index)
            sampler = Sampler()
            with sampler.running():
                rig.drive(profiled, taps=spec.profile_taps)
                rig.flush()
            result.samples = dict(sampler.samples)
            result.sampler_lost = sampler.lost
            result.profiled_taps = profiled.taps
            warm.accepted += profiled.accepted
            warm.declined.update(profiled.declined)
    all_accepted = warm.accepted + result.accepted
    if rig.journal.acknowledged != all_accepted:
        raise BenchError(f"worker {index}: {rig.journal.acknowledged} debits acknowledged for {all_accepted} accepted")
    result.fen_journaled, result.fen_taken = rig.money()
    if result.fen_journaled != result.fen_taken:
        raise BenchError(f"worker {index}: money not conserved: {result.fen_journaled} fen journaled, "
                         f"{result.fen_taken} fen taken from the cards")
    return result


# --- the whole run -----------------------------------------------------------------------------------------------------

def percentile(sorted_values: list[int] | array.array, q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..1) of already sorted values."""
    if not len(sorted_values):
        return 0.0
    rank = max(1, -(-int(q * 1_000_000) * len(sorted_values) // 1_000_000))
    return float(sorted_values[min(rank, len(sorted_values)) - 1])


def summarise(results: list[WorkerResult], *, baseline: WorkerResult | None, spec: BenchSpec,
              workers: int) -> dict[str, Any]:
    """The report as one JSON-ready dict.

    Per-transaction figures (mean and percentiles, the floor and the ratio, where the time goes) come from
    ``baseline``, the worker that ran alone (the only one when ``workers`` is 1); the rate, the counts and the money
    come from ``results``, and with several workers so do their percentiles under contention and the scaling.
    """
    main = baseline if baseline is not None else results[0]
    acknowledged = sum(r.acknowledged for r in results)
    if workers == 1:
        wall = results[0].elapsed_s
    else:
        wall = max(r.started + r.elapsed_s for r in results) - min(r.started for r in results)
    tx_per_s = acknowledged / wall if wall else 0.0
    wall_us = 1e6 / main.tx_per_s if main.tx_per_s else 0.0
    cost_us = main.cost_us
    own = sorted(main.latencies_ns)
    declined: Counter = Counter()
    for r in results:
        declined.update(r.declined)
    sampled = sum(main.samples.values())
    report: dict[str, Any] = {
        "tx_per_s": round(tx_per_s, 1),
        "us_per_tx_mean": round(cost_us, 2),
        "us_per_tx_p50": round(percentile(own, 0.50) / 1000, 2),
        "us_per_tx_p90": round(percentile(own, 0.90) / 1000, 2),
        "us_per_tx_p99": round(percentile(own, 0.99) / 1000, 2),
        "us_per_tx_wall": round(wall_us, 2),
        "crypto_floor_us_per_tx": None if main.floor_us is None else round(main.floor_us, 2),
        "floor_ratio": round(cost_us / main.floor_us, 2) if main.floor_us else None,
        "taps": sum(r.taps for r in results),
        "accepted": sum(r.accepted for r in results),
        "acknowledged": acknowledged,
        "declined": dict(declined),
        "wall_s": round(wall, 3),
        "workers": workers,
        "journal": spec.journal,
        "group_commit": (spec.group_commit or None) if spec.journal == "sqlite" else None,
        "cards_per_worker": spec.cards,
        "breakdown_us": {c: round(us, 2) for c, us in share_out(main.samples, wall_us).items()},
        "breakdown_method": (f"SIGALRM sampling every {SAMPLE_INTERVAL_S * 1e3:g} ms of wall time over a separate "
                             f"pass of {main.profiled_taps} taps ({sampled} samples, {main.sampler_lost} in the "
                             "sampler itself, left out), each charged to the innermost frame of a category; shares "
                             "applied to the wall time per transaction") if sampled else None,
        "fen_journaled": sum(r.fen_journaled for r in results),
        "fen_taken_from_cards": sum(r.fen_taken for r in results),
    }
    report["money_conserved"] = report["fen_journaled"] == report["fen_taken_from_cards"]
    if workers > 1:
        together = sorted(v for r in results for v in r.latencies_ns)
        report["parallel_us_per_tx_p50"] = round(percentile(together, 0.50) / 1000, 2)
        report["parallel_us_per_tx_p99"] = round(percentile(together, 0.99) / 1000, 2)
        report["per_worker_tx_per_s"] = [round(r.tx_per_s, 1) for r in results]
        report["single_worker_tx_per_s"] = round(main.tx_per_s, 1)
        report["scaling"] = round(tx_per_s / main.tx_per_s, 2) if main.tx_per_s else None
    return report


def _child(spec: BenchSpec, index: int, barrier: Any, counter: Any, queue: Any, extras: bool) -> None:
    try:
        def progress(n: int) -> None:
            with counter.get_lock():
                counter.value += n
        result = run_worker(spec, index, progress=progress, ready=barrier.wait if barrier else None,
                            measure_extras=extras)
        queue.put((index, result, None))
    except BaseException as exc:  # the parent reports it; a child must not die silently
        queue.put((index, None, f"{type(exc).__name__}: {exc}"))


def _run_processes(spec: BenchSpec, indexes: list[int], *, extras: bool,
                   progress: Callable[[int], None] | None) -> list[WorkerResult]:
    """Run one worker process per index, started together behind a barrier; results in index order."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(len(indexes))
    queue = context.Queue()
    counter = context.Value("q", 0)
    processes = [context.Process(target=_child, args=(spec, i, barrier, counter, queue, extras), daemon=True)
                 for i in indexes]
    for p in processes:
        p.start()
    results: dict[int, WorkerResult] = {}
    errors = []
    shown = 0
    try:
        while len(results) + len(errors) < len(processes):
            try:
                index, result, error = queue.get(timeout=0.2)
            except Exception:  # queue.Empty: report progress and check the children are alive
                if not any(p.is_alive() for p in processes) and queue.empty():
                    errors.append("a worker process died")
                    break
            else:
                if error is not None:
                    errors.append(f"worker {index}: {error}")
                    barrier.abort()
                else:
                    results[index] = result
            if progress is not None:
                value = counter.value
                if value > shown:
                    progress(value - shown)
                    shown = value
    finally:
        for p in processes:
            p.join(timeout=5)
            if p.is_alive():
                p.terminate()
    if errors:
        raise BenchError("; ".join(errors))
    return [results[i] for i in indexes]


def run_bench(spec: BenchSpec, workers: int = 1, *,
              progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Run the benchmark and return its report (:func:`summarise`).

    One worker runs in this process. ``workers`` > 1 first runs one worker alone in a child process (the floor,
    the profile and the single-worker rate), then ``workers`` child processes at once, each with its own population,
    PSAM and journal file, and reports their aggregate rate and its ratio to the single worker's.
    """
    spec.check()
    if workers < 1:
        raise BenchError("at least one worker")
    own_directory = spec.journal == "sqlite" and spec.directory is None
    directory = tempfile.mkdtemp(prefix="ykt-bench-") if own_directory else spec.directory
    try:
        if workers == 1:
            run_spec = dataclasses.replace(spec, directory=directory)
            result = run_worker(run_spec, 0, progress=progress)
            return summarise([result], baseline=result, spec=spec, workers=1)
        base_dir = _subdirectory(directory, "single")
        baseline = _run_processes(dataclasses.replace(spec, directory=base_dir), [0], extras=True, progress=progress)[0]
        many_dir = _subdirectory(directory, "parallel")
        results = _run_processes(dataclasses.replace(spec, directory=many_dir), list(range(workers)), extras=False,
                                 progress=progress)
        return summarise(results, baseline=baseline, spec=spec, workers=workers)
    finally:
        if own_directory and directory is not None:
            shutil.rmtree(directory, ignore_errors=True)


def _subdirectory(directory: str | None, name: str) -> str | None:
    if directory is None:
        return None
    path = Path(directory) / name
    try:
        path.mkdir(parents=True)
    except OSError as exc:
        raise BenchError(f"cannot make {path} for the journals: {exc.strerror or exc}") from None
    return str(path)
