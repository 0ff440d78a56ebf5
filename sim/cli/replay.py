"""``ykt replay``: run the terminal against a recorded trace, or a trace's commands against a card fixture."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from . import cli

if TYPE_CHECKING:
    from terminal.tracefile import Trace


@cli.command()
@click.argument("trace_path", metavar="TRACE", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--card", "fixture", metavar="FIXTURE", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Send the trace's card commands to this simulated card instead, and compare its answers.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Validator settings to replay with. Default: those the trace recorded, else the built-in ones.")
@click.option("--fares", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Fare file to replay with. Default: the one the trace recorded, else the demo flat fare.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of text.")
def replay(trace_path: Path, fixture: Path | None, config_path: Path | None, fares: Path | None,
           as_json: bool) -> None:
    """Replay TRACE: exit status 0 when everything matched the recording, 1 when something differs.

    Without --card: a validator with the recorded settings runs against a scripted card that
    answers as the recorded card did (and a scripted PSAM, or the demo PSAM when the trace has
    no PSAM link), on the recorded clock. Reports the first exchange where the terminal left the
    recording: its number (as 'ykt trace show' numbers them), what was expected, what came.

    With --card: the recorded card commands go to the fixture's card, with the recorded
    randoms; every answer that differs from the recorded one is reported.
    """
    from terminal.tracefile import read_trace

    trace = read_trace(trace_path)
    if fixture is not None:
        if config_path is not None or fares is not None:
            raise click.UsageError("--config and --fares shape the terminal; with --card no terminal runs")
        _against_card(trace, fixture, as_json)
    else:
        _against_terminal(trace, config_path, fares, as_json)


def _against_terminal(trace: Trace, config_path: Path | None, fares: Path | None, as_json: bool) -> None:
    from sim.replay import replay_settings, replay_terminal

    config, rules, source = replay_settings(trace, config=config_path, fares=fares)
    report = replay_terminal(trace, config, rules)
    divergence = report.divergence
    if as_json:
        click.echo(json.dumps({"taps": report.taps, "exchanges": report.exchanges, "psam": report.psam,
                               "settings": source, "stopped": report.stopped,
                               "divergence": None if divergence is None else divergence.as_dict()}))
    else:
        psam = "scripted from the trace" if report.psam == "scripted" else "the demo PSAM (the trace has none)"
        click.echo(f"replayed {report.taps} tap{'' if report.taps == 1 else 's'} over {report.exchanges} recorded "
                   f"exchanges; PSAM: {psam}; {source}")
        if report.stopped:
            click.echo(f"the replay stopped early: {report.stopped}")
        click.echo("no divergence" if divergence is None else f"divergence: {divergence}")
    if divergence is not None:
        raise click.exceptions.Exit(1)


def _against_card(trace: Trace, fixture: Path, as_json: bool) -> None:
    from sim.card.m1_card import M1Image
    from sim.fixture import FixtureError, load_image
    from sim.replay import ReplayError, replay_card

    image = load_image(fixture)
    if isinstance(image, M1Image):
        raise FixtureError(f"{fixture}: an M1 card fixture; a trace is replayed against a T-Union CPU card")
    report = replay_card(trace, image)
    if not report.matched and not report.differences:
        raise ReplayError(f"nothing to compare: the trace holds no answered command of the card in {fixture} "
                          f"({report.other_taps} taps of other cards)")
    if as_json:
        click.echo(json.dumps({"link": report.link, "matched": report.matched,
                               "differences": [d.as_dict() for d in report.differences],
                               "unanswered": report.unanswered, "other_taps": report.other_taps}))
    else:
        click.echo(f"replayed the card commands of link {report.link!r} against {fixture}: {report.matched} answers "
                   f"as recorded, {len(report.differences)} different")
        if report.unanswered:
            click.echo(f"not sent (no recorded answer): exchange {', '.join(map(str, report.unanswered))}")
        if report.other_taps:
            click.echo(f"skipped {report.other_taps} tap{'' if report.other_taps == 1 else 's'} of other cards")
        for difference in report.differences:
            click.echo(f"exchange {difference.number} {difference.label}: {difference.command.hex().upper()}")
            click.echo(f"  recorded {difference.recorded.hex().upper()}")
            click.echo(f"  got      {difference.got.hex().upper()}")
    if report.differences:
        raise click.exceptions.Exit(1)
