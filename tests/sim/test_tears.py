"""Riders tapping with random tears and late re-taps: nobody pays twice for one ride, no committed debit is lost."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

from sim.stations import LoadStation, ValidatorStation
from sim.tears import START, TERMINAL, TearReport, riders, run_rides, run_tear_loop
from terminal.clock import ManualClock
from terminal.config import Place, ValidatorConfig


def _sound(report: TearReport) -> None:
    assert (report.double_charges, report.free_rides, report.lost, report.phantom, report.unverifiable,
            report.out_of_service) == (0, 0, 0, 0, 0, 0), report
    assert report.fen_taken == report.fen_complete + report.fen_open_committed
    assert all(audit.balanced for audit in report.audits), report.audits


def test_no_rider_pays_twice_for_one_ride() -> None:
    report = run_tear_loop(3000, seed=16)
    # the run does what it claims: tears after the card committed, re-taps at and past the recovery window and past
    # the same-ride time, restarts
    assert report.torn_after_commit > 250 and report.late_retaps > 250 and report.restarts > 10
    assert report.recovered > 30 and report.new_ride_retaps > 20
    _sound(report)


def test_the_same_on_a_sqlite_journal_across_restarts(tmp_path: Path) -> None:
    report = run_tear_loop(400, seed=5, journal_path=tmp_path / "journal.db", restart_share=0.05)
    assert report.restarts > 10 and report.torn_after_commit > 30
    _sound(report)


def test_riders_at_every_kind_of_station(tmp_path: Path) -> None:
    """Simple and composite purchases, tap-on/tap-off section fares and top-ups, one population of riders."""
    clock = ManualClock(START)
    sections = ValidatorConfig(place=Place(line=802))
    stations = [ValidatorStation("composite", TERMINAL, clock),
                ValidatorStation("simple", bytes.fromhex("200041590011"), clock,
                                 config=ValidatorConfig(purchase="simple")),
                ValidatorStation("sections", bytes.fromhex("200041590012"), clock, config=sections,
                                 fares="demo-sections.toml", stops=(1, 2, 3, 4, 5)),
                LoadStation("top-up", clock, tmp_path)]
    report = TearReport()
    try:
        run_rides(stations, riders(12, 3), 1200, random.Random(3), report, restart_share=0.03)
    finally:
        for station in stations:
            station.close()
    by_station = {audit.station: audit for audit in report.audits}
    assert all(by_station[name].committed > 100 for name in ("composite", "simple", "sections"))
    assert by_station["top-up"].committed > 100 and by_station["top-up"].verified > 100
    assert report.outcomes["loaded"] > 100 and report.torn_after_commit > 60
    _sound(report)
    assert START + dt.timedelta(hours=1) < clock.now()
