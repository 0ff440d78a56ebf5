"""``ykt faults``: the fault campaign (card tears, power cuts, a noisy and a silent reader, attacks, hostile input,
keys in outputs), a table of its figures, and an exit status that says whether anything that must not happen did."""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import click

from . import cli

if TYPE_CHECKING:
    from sim.faults import CampaignReport, Figures
    from sim.faults.campaign import Figure


def _shown(value: Figure | bool) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_shown(v)}" for k, v in value.items()) or "-"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _table(figures: Figures) -> list[str]:
    lines = [f"{figures.name}: {figures.title} ({figures.seconds:.1f} s)"]
    for name, value in figures.values.items():
        label = name.replace("_", " ")
        if name in figures.zero:
            verdict = "ok" if value == 0 else "PROBLEM"
            lines.append(f"  {label:<40} {_shown(value):>12}   must be 0: {verdict}")
        else:
            lines.append(f"  {label:<40} {_shown(value):>12}")
    for name, holds in figures.checks.items():
        lines.append(f"  {name.replace('_', ' '):<40} {_shown(holds):>12}   must hold: {'ok' if holds else 'PROBLEM'}")
    lines.extend(f"  note: {note}" for note in figures.notes)
    return lines


@contextlib.contextmanager
def _logged(path: Path) -> Iterator[None]:
    """Every log line of the run, at DEBUG, into ``path`` (scanned for keys with the rest)."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        handler.close()


@cli.command()
@click.option("--quick", is_flag=True,
              help="The CI size: every scenario, fewer runs (under a minute). Default: the full campaign, which takes "
                   "long (bench/results/faults.md says how long).")
@click.option("--seed", type=int, default=1, show_default=True, help="Seed of every random draw: the same seed, the "
              "same campaign (timing on a loaded machine may still move a kill or a noisy byte).")
@click.option("--json", "as_json", is_flag=True, help="Every figure of every scenario as one JSON object.")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path),
              help="Where the campaign writes its journals, traces, logs and card fixtures (kept). Default: a "
                   "temporary directory, removed at the end unless a problem was found.")
@click.option("--inputs", type=click.IntRange(min=1), metavar="N",
              help="Hostile inputs in all for the fuzzing, shared out by the targets' weights. Default: 1,000,000 in "
                   "the full run, 40 a target with --quick. Less fits the full run in less time.")
@click.option("--only", "only", multiple=True, metavar="SCENARIO",
              help="Run only this scenario (repeat for more): tears, power, serial, security, fuzz, keys.")
def faults(quick: bool, seed: int, as_json: bool, workdir: Path | None, inputs: int | None,
           only: tuple[str, ...]) -> None:
    """Run the fault campaign and print its figures; exit status 1 when any loss, double charge, stop, hang or
    exception that is not the project's was seen.

    \b
    tears     a card torn before and after it commits, at every exchange of every
              flow (purchases, section fares, the recoveries, the load and its
              recoveries, the M1 debit and its recoveries), riders back early,
              late or never; and a population of riders at every kind of
              station (over 20,000 taps in the full run)
    power     ykt validate killed with SIGKILL at random moments (500 runs), then
              restarted on its journal and the card's durable fixture
    serial    the PN532 driver through a line damaging 0.1% and 1% of bytes, and
              a reader that goes silent or whose port goes away
    security  a forged MAC1 and MAC2, a replayed DEBIT, a cloned card, a
              blacklisted card, a PSAM answering wrongly
    fuzz      every parser and loader fed hostile input (1,000,000 inputs),
              each within a time limit
    keys      every key the run used, looked for in everything it wrote

    What each figure means, and the JSON: docs/fault-campaign.md.
    """
    try:
        import hypothesis  # noqa: F401
    except ImportError:
        raise click.ClickException("ykt faults needs hypothesis for its fuzzing: "
                                   "pip install 'yikatong[faults]'") from None
    from sim.faults import SCENARIOS, Campaign, run_campaign
    from sim.issuing import LOCAL_ISSUER, load_demo_keyset

    names = [name for name, _ in SCENARIOS]
    unknown = [name for name in only if name not in names]
    if unknown:
        raise click.UsageError(f"unknown scenario {', '.join(unknown)}: choose from {', '.join(names)}")
    chosen = [(name, run) for name, run in SCENARIOS if not only or name in only]
    keep = workdir is not None
    directory = workdir if workdir is not None else Path(tempfile.mkdtemp(prefix="ykt-faults-"))
    directory.mkdir(parents=True, exist_ok=True)
    campaign = Campaign(quick, seed, directory, inputs)
    campaign.keys.add_keyset(load_demo_keyset(), issuers=(LOCAL_ISSUER, bytes.fromhex("02403640FFFFFFFF")))
    if not as_json:
        sized = "" if inputs is None else f", {inputs:,} fuzzing inputs"
        click.echo(f"ykt faults: {'quick' if quick else 'full'} campaign, seed {seed}{sized}; work directory "
                   f"{directory}")

    def done(figures: Figures) -> None:
        if not as_json:
            click.echo("\n" + "\n".join(_table(figures)))

    with _logged(campaign.path("campaign.log")):
        report = run_campaign(chosen, campaign, done)
    if as_json:
        click.echo(json.dumps(report.as_dict(), ensure_ascii=False))
    else:
        click.echo("\n" + _verdict(report))
    if not keep and report.ok:
        shutil.rmtree(directory, ignore_errors=True)
    elif not as_json and not keep:
        click.echo(f"the work directory is kept for a look: {directory}")
    if not report.ok:
        raise click.exceptions.Exit(1)


def _verdict(report: CampaignReport) -> str:
    from sim.faults.campaign import machine

    computer = machine()
    where = f"{computer['cpus']} CPUs ({computer['cpu']}), Python {computer['python']}"
    if report.ok:
        return (f"result: no loss, no double charge, no stop, no hang, no untyped exception "
                f"({len(report.scenarios)} scenarios, {report.seconds:.1f} s on {where})")
    return (f"result: {len(report.problems)} problem(s) ({report.seconds:.1f} s on {where}):\n  "
            + "\n  ".join(report.problems))
