"""The injected clocks: what a reading shows, and how a manual clock moves."""

from __future__ import annotations

import datetime as dt

from terminal.clock import ManualClock, SystemClock

START = dt.datetime(2026, 3, 2, 7, 30, 0, 999_999)


def test_manual_clock_shows_whole_seconds_and_moves_only_when_told():
    clock = ManualClock(START)
    assert clock.now() == clock.now() == dt.datetime(2026, 3, 2, 7, 30, 0)
    clock.advance(0.6)
    assert clock.now() == dt.datetime(2026, 3, 2, 7, 30, 0)
    clock.advance(0.6)  # 1.2 s after the start: the second has turned
    assert clock.now() == dt.datetime(2026, 3, 2, 7, 30, 1)
    clock.advance(3600)
    assert clock.now() == dt.datetime(2026, 3, 2, 8, 30, 1)


def test_manual_clock_with_a_step_moves_after_each_reading():
    clock = ManualClock(START, step=0.5)
    readings = [clock.now() for _ in range(5)]
    assert [r.second for r in readings] == [0, 0, 1, 1, 2]
    clock.advance(10)
    assert clock.now() == dt.datetime(2026, 3, 2, 7, 30, 12)  # 2.5 s of steps, then 10 s
    assert clock.now() == dt.datetime(2026, 3, 2, 7, 30, 13)


def test_system_clock_has_no_fraction_of_a_second():
    assert SystemClock().now().microsecond == 0


def test_manual_clock_advances_by_a_timedelta_too():
    clock = ManualClock(START)
    clock.advance(dt.timedelta(seconds=90))
    assert clock.now() == dt.datetime(2026, 3, 2, 7, 31, 30)
