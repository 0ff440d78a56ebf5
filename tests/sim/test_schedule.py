"""The modeled timeline of a tap: a command sent ahead runs beside the other link's exchanges until it is waited for."""

from __future__ import annotations

import datetime as dt

from sim.fixture import load_fixture
from sim.demo import run_demo
from sim.schedule import SendAheadWaits, schedule
from sim.tap import run_tap
from terminal.clock import ManualClock
from terminal.link import ModeledTime
from terminal.trace import Exchange


def _exchange(link: str, line: float, device: float, *, ahead: bool = False) -> Exchange:
    return Exchange(link, b"\x00", b"\x90\x00", 0, 0, ModeledTime(line, device), ahead=ahead)


def test_exchanges_one_after_the_other_without_a_command_sent_ahead():
    plan = schedule([_exchange("card", 1, 2), _exchange("sam", 3, 4), _exchange("card", 5, 0)], {}, 10)
    assert plan.starts == [10, 13, 20]
    assert plan.end_us == 25


def test_a_command_sent_ahead_runs_beside_the_card_until_the_validator_waits():
    exchanges = [_exchange("sam", 2, 8, ahead=True), _exchange("card", 3, 3), _exchange("card", 1, 1),
                 _exchange("sam", 1, 1)]
    plan = schedule(exchanges, {2: ["sam"]}, 0)  # the validator waits for MAC1 after the first card update
    assert plan.starts == [0, 0, 10, 12]  # the second card command waits for the PSAM's answer (at 10)
    assert plan.end_us == 14


def test_the_last_answer_sent_ahead_ends_the_tap_even_if_never_waited_for():
    plan = schedule([_exchange("sam", 1, 9, ahead=True), _exchange("card", 1, 1)], {}, 0)
    assert plan.end_us == 10


def test_no_exchange_ends_where_it_starts():
    assert schedule([], {}, 7).end_us == 7


def test_waits_start_afresh_at_each_activation_of_the_card():
    waits = SendAheadWaits("reader")
    waits.exchange(_exchange("reader", 1, 1))
    waits.waited("psam", 0)
    assert waits.waits == {1: ["psam"]}
    waits.activation("psam", None, 0)
    assert waits.waits == {1: ["psam"]}
    waits.activation("reader", object(), 0)  # type: ignore[arg-type]
    assert waits.waits == {}


def test_the_demo_prices_a_tap_as_ykt_tap_does(tmp_path):
    """The demo's modeled purchase of the demo card equals ``ykt tap``'s total for it (MAC1 sent ahead included)."""
    at = dt.datetime(2026, 3, 2, 6, 0, 0)
    tap = run_tap(load_fixture("sim/fixtures/demo-card.json"), ManualClock(at))
    assert tap.overlap_us > 0
    report = run_demo(40, 1, tmp_path / "journal.db", tear_share=0.0, odd_share=0.0)
    assert report.modeled_ms
    assert round(tap.total_us / 1000, 1) in {round(ms, 1) for ms in report.modeled_ms}
