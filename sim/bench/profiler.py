"""Where the time goes: a statistical profiler that charges each sample to the code it found running, by package.

Each sample (SIGALRM every :data:`SAMPLE_INTERVAL_S` of wall time, which is what a transaction's cost is measured in;
the CPU-time timer ticks only at the kernel's HZ) is charged to the innermost frame on the stack whose module has a
category (:func:`category_of`); frames of the standard library and the clock pass the charge to their caller. The
category comes from the frame's module name (its ``__name__``), by the longest dotted prefix in :data:`PACKAGES`, so
moving a file inside a package keeps its category, and a test checks that every package named there exists. The
interpreter takes a signal at its next call or loop jump, so the border between two categories is fuzzy by about one
call; the shares are good to a few percent, not to the microsecond.
"""

from __future__ import annotations

import signal
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

SAMPLE_INTERVAL_S = 0.0005
PASS_THROUGH = "pass"
"""Charged to the caller."""
SIMULATOR = "simulated reader, card and PSAM"
CATEGORIES = ("cryptography", "codecs", "state machine", "channel and tracing", "journal", SIMULATOR,
              "load host and ledger", "bench loop")

PACKAGES = {
    "cryptography": "cryptography",
    "protocols": "codecs",
    "protocols.crypto": "cryptography",
    "terminal": "state machine",
    "terminal.channel": "channel and tracing",
    "terminal.trace": "channel and tracing",
    "terminal.link": "channel and tracing",
    "terminal.journal": "journal",
    "terminal.loads.journal": "journal",
    "terminal.loads.messages": "codecs",
    "terminal.sqlitedb": PASS_THROUGH,  # the SQLite file helpers: charged to the journal or the ledger using them
    "terminal.clock": PASS_THROUGH,  # read by the terminal, the journal and the loop alike
    "sim.card": SIMULATOR,
    "sim.psam": SIMULATOR,
    "sim.reader": SIMULATOR,
    "sim.device": SIMULATOR,
    "sim.loadhost": "load host and ledger",
    "sim.bench": "bench loop",
}
"""Category of the modules in each package (or of one module), by dotted name; the longest prefix wins. Modules of no
package here (the standard library) pass the charge to their caller."""


def category_of(module: str) -> str:
    """The category a frame of the module named ``module`` is charged to; :data:`PASS_THROUGH` for its caller."""
    name = module
    while name:
        category = PACKAGES.get(name)
        if category is not None:
            return category
        name = name.rpartition(".")[0]
    return PASS_THROUGH


class Sampler:
    """The profiler: on each SIGALRM the innermost frame with a category is charged one sample. Main thread, POSIX
    only."""

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
            module = frame.f_globals.get("__name__", "")
            category = categories.get(module)
            if category is None:
                category = categories[module] = category_of(module)
            if category != PASS_THROUGH:
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
