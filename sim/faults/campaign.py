"""The campaign's frame: what every scenario is given (:class:`Campaign`), what it gives back (:class:`Figures`), and
the run of them all in order (:func:`run_campaign`).

A scenario is a function of a :class:`Campaign` that returns its :class:`Figures`: named counts, the names among
them that must be 0 (a loss, a double charge, a stop, a hang, an exception that is not the project's), and checks
that must hold (money balanced). A scenario that itself fails with an exception is reported as such (the name of
the exception and its message), never as a traceback, and counts as a problem: the campaign could not show what it
was to show.
"""

from __future__ import annotations

import contextlib
import os
import platform
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeAlias, TypedDict

from tqdm import tqdm

from .keyring import KeyRing

Figure: TypeAlias = int | float | dict[str, int]
"""A count, a time or a size, or counts by name (outcomes, inputs per target)."""


@dataclass(slots=True)
class Figures:
    """One scenario's figures. ``values``: every figure by name, in the order shown; ``zero``: the names of those that
    must be 0; ``checks``: named conditions that must hold; ``notes``: lines worth reading (examples of what went
    wrong, kept short)."""

    name: str
    title: str
    values: dict[str, Figure] = field(default_factory=dict)
    zero: list[str] = field(default_factory=list)
    checks: dict[str, bool] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def count(self, name: str, value: Figure) -> None:
        """A figure shown for what it is."""
        self.values[name] = value

    def must_be_zero(self, name: str, value: int) -> None:
        """A figure that must be 0 (a loss, a double charge, a stop, a hang, an untyped exception)."""
        self.values[name] = value
        self.zero.append(name)

    def must_hold(self, name: str, holds: bool) -> None:
        self.checks[name] = bool(holds)

    def note(self, text: str, limit: int = 20) -> None:
        if len(self.notes) < limit:
            self.notes.append(text if len(text) <= 300 else text[:297] + "...")

    @property
    def problems(self) -> list[str]:
        found = [f"{name} = {self.values[name]}" for name in self.zero if self.values[name] != 0]
        found += [f"{name}: does not hold" for name, holds in self.checks.items() if not holds]
        return found

    def as_dict(self) -> dict[str, object]:
        return {"title": self.title, "seconds": round(self.seconds, 1), "figures": self.values,
                "must_be_zero": self.zero, "checks": self.checks, "problems": self.problems, "notes": self.notes}


@dataclass
class Campaign:
    """What a scenario runs with: ``quick`` (the CI size) or the full size, the ``seed`` every draw starts from, a
    ``workdir`` for every file it writes (journals, traces, logs, exports: all scanned for keys at the end, apart from
    the card fixtures under :attr:`cards` that hold the cards' own keys by their format), the :class:`KeyRing` of every
    key the run used (kept in :attr:`ring_file` after each scenario, and taken up again by a later run on the same
    work directory), and the error messages met on the way (scanned for keys too). ``inputs``: the fuzzing's hostile
    inputs in all, when not the mode's own (a machine with less time than the full run takes)."""

    quick: bool
    seed: int
    workdir: Path
    inputs: int | None = None
    keys: KeyRing = field(default_factory=KeyRing)
    messages: list[str] = field(default_factory=list)
    show_progress: bool = True

    def __post_init__(self) -> None:
        self.cards.mkdir(parents=True, exist_ok=True)
        self.keys.load(self.ring_file)

    @property
    def ring_file(self) -> Path:
        """The key ring kept between runs on one work directory (``--only`` runs, one after the other)."""
        return self.cards / "keys.txt"

    @property
    def cards(self) -> Path:
        """Where card fixtures and key sets go: files that hold keys by design, left out of the key scan."""
        return self.workdir / "cards"

    def size(self, quick: int, full: int) -> int:
        """The quick or the full figure."""
        return quick if self.quick else full

    def path(self, name: str) -> Path:
        """A file or directory of the campaign's outputs (scanned for keys)."""
        return self.workdir / name

    def said(self, text: str) -> None:
        """An error message or outcome detail the campaign met: kept for the key scan."""
        if text:
            self.messages.append(text)

    @contextlib.contextmanager
    def progress(self, what: str, total: int, unit: str = "step") -> Iterator[Callable[[int], None]]:
        """A progress bar on standard error for ``total`` steps; yields a function that moves it on by ``n``."""
        with tqdm(total=total, desc=what, unit=unit, file=sys.stderr, leave=False, dynamic_ncols=True,
                  disable=not self.show_progress) as bar:
            def advance(steps: int) -> None:
                bar.update(steps)

            yield advance


Scenario = Callable[[Campaign], Figures]


@dataclass
class CampaignReport:
    """Every scenario's figures, and what the run was."""

    quick: bool
    seed: int
    workdir: Path
    scenarios: list[Figures] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def problems(self) -> list[str]:
        return [f"{s.name}: {problem}" for s in self.scenarios for problem in s.problems]

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, object]:
        return {"mode": "quick" if self.quick else "full", "seed": self.seed, "ok": self.ok,
                "seconds": round(self.seconds, 1), "workdir": str(self.workdir), "machine": machine(),
                "problems": self.problems, "scenarios": {s.name: s.as_dict() for s in self.scenarios}}


class Machine(TypedDict):
    """What the figures were measured on: the CPUs the system shows, their model, Python's version, the kernel."""

    cpus: int | None
    cpu: str
    python: str
    system: str


def machine() -> Machine:
    """What the figures were measured on."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            model = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), model)
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "cpu": model, "python": platform.python_version(),
            "system": f"{platform.system()} {platform.release()}"}


def run_scenario(scenario: Scenario, name: str, campaign: Campaign) -> Figures:
    """Run one scenario and time it; an exception it lets out is reported as its figure ``harness_failure``."""
    started = time.monotonic()
    try:
        figures = scenario(campaign)
    except Exception as exc:  # the harness's own failure: reported, a problem, never a traceback
        figures = Figures(name, name)
        figures.must_be_zero("harness_failure", 1)
        figures.note(f"{type(exc).__name__}: {exc}")
    figures.seconds = time.monotonic() - started
    return figures


def run_campaign(scenarios: list[tuple[str, Scenario]], campaign: Campaign,
                 done: Callable[[Figures], None] | None = None) -> CampaignReport:
    """Run ``scenarios`` in order on ``campaign``; ``done`` sees each one's figures as it ends."""
    report = CampaignReport(campaign.quick, campaign.seed, campaign.workdir)
    started = time.monotonic()
    for name, scenario in scenarios:
        figures = run_scenario(scenario, name, campaign)
        campaign.keys.save(campaign.ring_file)
        report.scenarios.append(figures)
        if done is not None:
            done(figures)
    report.seconds = time.monotonic() - started
    return report
