"""Injected time: the validator never reads the system clock itself, so tests and benchmarks are deterministic."""

from __future__ import annotations

import datetime as dt
from typing import Protocol


class Clock(Protocol):
    def now(self) -> dt.datetime:
        """Local wall-clock time, naive, to the second: what goes into the card's BCD date-time fields."""


class SystemClock:
    """The machine's local time."""

    def now(self) -> dt.datetime:
        return dt.datetime.now().replace(microsecond=0)


class ManualClock:
    """A clock that moves only when told to; ``step`` seconds pass on every reading when set (a busy bus).

    The time it shows (to the second) is worked out when the clock moves, not at every reading: the validator and
    the journal read it on every tap.
    """

    def __init__(self, start: dt.datetime, step: float = 0.0) -> None:
        self._now = start.replace(microsecond=0)
        self._shown = self._now
        self._step = dt.timedelta(seconds=step)

    def now(self) -> dt.datetime:
        shown = self._shown
        if self._step:
            self._now += self._step
            self._shown = self._now.replace(microsecond=0)
        return shown

    def advance(self, seconds: float | dt.timedelta) -> None:
        """Move on by ``seconds`` (or a timedelta, which a loop moving by the same step makes once)."""
        self._now += seconds if isinstance(seconds, dt.timedelta) else dt.timedelta(seconds=seconds)
        self._shown = self._now.replace(microsecond=0)
