"""``ykt tap``: one tap of a fixture card on the simulated reader, every exchange with its modeled time."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from . import cli
from .trace import TRACE_HELP, open_trace

if TYPE_CHECKING:
    from sim.tap import TapReport


def _ms(us: float) -> str:
    return f"{us / 1000:.3f}"


def report_dict(report: TapReport, fixture: Path) -> dict[str, Any]:
    """The tap as one JSON object: times in µs as the model computes them."""
    from sim.tap import LIMIT_US

    outcome = report.outcome
    return {
        "fixture": str(fixture), "kbps": report.kbps, "kbps_to_card": report.kbps_to_card,
        "kbps_to_reader": report.kbps_to_reader, "baud": report.baud, "pps": report.pps,
        "outcome": {"status": outcome.status.value, "technology": outcome.technology,
                    "decline": outcome.decline.name.lower() if outcome.decline else None,
                    "message": outcome.message, "fare": outcome.fare, "balance_before": outcome.balance_before,
                    "balance_after": outcome.balance_after,
                    "tac": None if outcome.tac is None else outcome.tac.hex().upper()},
        "activation_us": report.activation_us,
        "exchanges": [{"number": s.number, "peer": "card" if s.role == "card" else "PSAM", "command": s.label,
                       "apdu": s.command.hex().upper(),
                       "response": None if s.response is None else s.response.hex().upper(),
                       "start_us": s.start_us, "line_us": s.line_us, "device_us": s.device_us,
                       "total_us": s.total_us} for s in report.steps],
        "totals": {"air_us": report.air_us, "card_us": report.card_us, "psam_line_us": report.psam_line_us,
                   "psam_us": report.psam_us, "overlap_us": report.overlap_us, "total_us": report.total_us,
                   "limit_us": LIMIT_US,
                   "within_limit": report.within_limit},
    }


def print_report(report: TapReport, fixture: Path) -> None:
    from sim.tap import LIMIT_US

    click.echo(f"One tap of {fixture} on the simulated reader: {report.kbps} kbit/s asked, the card at "
               f"{report.kbps_to_card} kbit/s in and {report.kbps_to_reader} kbit/s out; "
               f"PSAM T=0 at {report.baud} baud{' (PPS at start-up)' if report.pps else ''}")
    outcome = report.outcome
    tac = f"  TAC {outcome.tac.hex().upper()}" if outcome.tac is not None else ""
    click.echo(f"outcome: {outcome.status.value}: {outcome.message}{tac}")
    click.echo("")
    click.echo(f"  {'#':>2}  {'peer':<5} {'command':<34}{'air/line ms':>12}{'card ms':>10}{'PSAM ms':>10}"
               f"{'total ms':>10}{'at ms':>10}")
    activation = "activation (REQA to SAK)" if outcome.technology == "m1" else "activation (REQA to ATS)"
    click.echo(f"  {'':>2}  {'card':<5} {activation:<34}{_ms(report.activation_us):>12}{'-':>10}"
               f"{'-':>10}{_ms(report.activation_us):>10}{_ms(0):>10}")
    for step in report.steps:
        card, psam = (_ms(step.device_us), "-") if step.role == "card" else ("-", _ms(step.device_us))
        click.echo(f"  {step.number:>2}  {'card' if step.role == 'card' else 'PSAM':<5} {step.label:<34}"
                   f"{_ms(step.line_us):>12}{card:>10}{psam:>10}{_ms(step.total_us):>10}{_ms(step.start_us):>10}")
    click.echo("")
    click.echo(f"  air (contactless)   {_ms(report.air_us):>10} ms")
    click.echo(f"  card computing      {_ms(report.card_us):>10} ms")
    click.echo(f"  PSAM contact line   {_ms(report.psam_line_us):>10} ms")
    click.echo(f"  PSAM computing      {_ms(report.psam_us):>10} ms")
    if report.overlap_us > 0.5:
        click.echo(f"  side by side       -{_ms(report.overlap_us):>10} ms   (the PSAM's work on a command sent ahead, "
                   "while the card was busy)")
    margin = LIMIT_US - report.total_us
    verdict = f"within it, {_ms(margin)} ms to spare" if report.within_limit else f"OVER it by {_ms(-margin)} ms"
    click.echo(f"  total               {_ms(report.total_us):>10} ms of the {LIMIT_US / 1000:g} ms DB31/T 239-2020 "
               f"allows for one purchase: {verdict}")


@cli.command()
@click.option("--card", "fixture", required=True, metavar="FIXTURE",
              type=click.Path(dir_okay=False, exists=True, path_type=Path), help="The card fixture to tap.")
@click.option("--bitrate", type=click.Choice(["106", "212", "424", "848"]), default="106", show_default=True,
              help="Bit rate the reader asks for, kbit/s (the card's ATS may allow less).")
@click.option("--baud", type=click.IntRange(min=1),
              help="A fixed T=0 line speed for the PSAM. Default: the rate its ATR offers (TA1), negotiated by PPS "
                   "when the validator starts, up to 115200 baud.")
@click.option("--at", "when", type=click.DateTime(["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"]),
              help="The validator's clock at the tap (local time). Default: now.")
@click.option("--timeline", "timeline", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE.png|FILE.svg",
              help="Draw the tap's timeline into this picture (needs the plot extra: pip install 'yikatong[plot]').")
@click.option("--trace", "trace_path", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help=TRACE_HELP)
@click.option("--save", is_flag=True, help="Write the card's new state (balance, counter, records) back to FIXTURE.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object, times in µs.")
def tap(fixture: Path, bitrate: str, baud: int | None, when: dt.datetime | None, timeline: Path | None,
        trace_path: Path | None, save: bool, as_json: bool) -> None:
    """Tap a fixture card once on the simulated reader and show where the time goes.

    The validator has the demo PSAM (T=0), the demo flat fare and a memory journal. Every
    exchange is shown with its modeled air (or contact line) time and the time the card or the
    PSAM computes (sim/timing.py), one after the other, against the 400 ms that DB31/T 239-2020
    allows for one purchase. The PSAM's start-up exchanges come before the tap and are not counted.
    An M1 (MIFARE Classic) fixture is tapped by a validator standing in the card's own city,
    each pseudo-APDU priced by the MIFARE commands it becomes. The fixture is not changed unless
    --save is given.
    """
    from sim.card.m1_card import M1Card
    from sim.demo import DEMO_FARES
    from sim.fixture import load_fixture, save_fixture
    from sim.tap import CARD_LINK, SAM_LINK, run_tap
    from terminal.clock import ManualClock, SystemClock
    from terminal.config import ValidatorConfig

    if timeline is not None:
        from sim.timeline import FORMATS

        if timeline.suffix.lower() not in FORMATS:
            raise click.BadParameter(f"{timeline}: the picture is a .png or an .svg file", param_hint="--timeline")
    card = load_fixture(fixture)
    clock = ManualClock(when or SystemClock().now())
    config = ValidatorConfig()
    if isinstance(card, M1Card):  # an M1 card is valid in its own city only: the validator stands there
        config = ValidatorConfig(place=dataclasses.replace(config.place, city_code=card.serial[:2]))
    writer = None
    if trace_path is not None:
        writer = open_trace(trace_path, "tap", [(CARD_LINK, "card"), (SAM_LINK, "sam")], config=config,
                            fares=DEMO_FARES, clock=clock)
    try:
        report = run_tap(card, clock, kbps=int(bitrate), baud=baud, config=config, tracer=writer)
    finally:
        if writer is not None:
            writer.close()
    if timeline is not None:
        from sim.timeline import draw_timeline

        draw_timeline(report, timeline)
    if save:
        save_fixture(card, fixture)
    if as_json:
        click.echo(json.dumps(report_dict(report, fixture)))
    else:
        print_report(report, fixture)
        for done, what in ((timeline, "timeline"), (trace_path, "trace"), (fixture if save else None, "card saved to")):
            if done is not None:
                click.echo(f"{what}: {done}")
