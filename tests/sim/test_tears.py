"""Riders tapping with random tears and late re-taps: nobody pays twice for one ride, no committed debit is lost."""

from __future__ import annotations

from pathlib import Path

from sim.tears import run_tear_loop


def _sound(report) -> None:
    assert (report.double_charges, report.lost, report.phantom, report.out_of_service) == (0, 0, 0, 0), report
    assert report.fen_taken == report.fen_complete + report.fen_open_committed


def test_no_rider_pays_twice_for_one_ride() -> None:
    report = run_tear_loop(3000, seed=16)
    # the run does what it claims: tears after the card committed, re-taps at and past the recovery window, restarts
    assert report.torn_after_commit > 250 and report.late_retaps > 250 and report.restarts > 10
    assert report.recovered > 30
    _sound(report)


def test_the_same_on_a_sqlite_journal_across_restarts(tmp_path: Path) -> None:
    report = run_tear_loop(400, seed=5, journal_path=tmp_path / "journal.db", restart_share=0.05)
    assert report.restarts > 10 and report.torn_after_commit > 30
    _sound(report)
