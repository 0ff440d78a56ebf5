"""``ykt bench``: complete transactions per second on simulated hardware, against their cryptography floor."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

from sim.bench.spec import CARD_KINDS, FLOWS

from . import cli

if TYPE_CHECKING:
    from tqdm import tqdm


@cli.command()
@click.option("--flow", type=click.Choice(list(FLOWS)), default="purchase", show_default=True,
              help="The transaction measured: a bus validator's composite purchase, or a top-up machine's load "
                   "(with the load host in process).")
@click.option("--seconds", type=click.FloatRange(min=0, min_open=True),
              help="Time each worker taps for (default 10 s, unless --taps is given).")
@click.option("--taps", type=click.IntRange(1), help="Taps each worker makes (instead of --seconds).")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Worker processes, each with its own population, terminal and files; above 1, one worker first "
                   "runs alone for the scaling ratio.")
@click.option("--journal", type=click.Choice(["memory", "sqlite"]), default="sqlite", show_default=True,
              help="Journal kind (purchases; loads are journaled in SQLite).")
@click.option("--group-commit", type=click.IntRange(0), default=1000, show_default=True,
              help="SQLite journal batch size for purchases; 0 commits every call durably (two fsyncs per debit). "
                   "Loads commit every change.")
@click.option("--cards", "card_kind", type=click.Choice(CARD_KINDS), default="cpu", show_default=True,
              help="The riders' cards (purchases): T-Union CPU cards, or legacy M1 (MIFARE Classic) city cards "
                   "debited block by block.")
@click.option("--population", "cards", type=click.IntRange(1), default=1000, show_default=True,
              help="Cards in each worker's population.")
@click.option("--seed", type=int, default=978, show_default=True, help="Seed of the card populations.")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              help="Directory for the SQLite files (default: a temporary one, removed afterwards).")
@click.option("--profile-taps", type=click.IntRange(0),
              help="Taps of the separate sampled pass that says where the time goes (0: none; default: "
                   + ", ".join(f"{flow.profile_taps:,} for {name}" for name, flow in FLOWS.items()) + ").")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (no progress bar).")
@click.pass_context
def bench(ctx: click.Context, flow: str, seconds: float | None, taps: int | None, workers: int, journal: str,
          group_commit: int, card_kind: str, cards: int, seed: int, directory: Path | None, profile_taps: int | None,
          as_json: bool) -> None:
    """Measure complete transactions per second on simulated hardware, and their cryptography floor.

    A purchase runs the whole tap: the validator's state machine and codecs, the simulated card and PSAM with real
    cryptography, and the journal (only debits the journal acknowledged count). A load runs the load terminal, the
    simulated card and the load host in process with its ledger (only loads whose TAC the host confirmed count). The
    cryptography floor is the same cipher operations alone; the ratio says how far a transaction is from it.
    """
    from sim.bench.processes import run_bench
    from sim.bench.spec import BenchSpec

    if seconds is not None and taps is not None:
        raise click.UsageError("give --seconds or --taps, not both")
    if flow != "purchase":
        if card_kind != "cpu":
            raise click.UsageError("--cards is for purchases: a top-up machine loads CPU cards")
        for name in ("journal", "group_commit"):
            if ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT:
                raise click.UsageError(f"--{name.replace('_', '-')} is for purchases: loads are journaled in SQLite, "
                                       "every change committed")
    if seconds is None and taps is None:
        seconds = 10.0
    if directory is not None and not directory.is_dir():
        raise click.UsageError(f"{directory} is not a directory")
    spec = BenchSpec(taps=taps, seconds=seconds, flow=flow, journal=journal, group_commit=group_commit, cards=cards,
                     card_kind=card_kind, seed=seed, directory=None if directory is None else str(directory),
                     profile_taps=FLOWS[flow].profile_taps if profile_taps is None else profile_taps)
    bar = progress = None
    if not as_json and sys.stderr.isatty():
        from tqdm import tqdm

        total = None if taps is None else taps * (workers + (workers > 1))
        bar = tqdm(total=total, unit="tap", unit_scale=True, file=sys.stderr, leave=False)
        progress = _updates(bar)
    try:
        report = run_bench(spec, workers, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    report["command"] = "ykt bench " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["bench"] else "ykt bench"
    if as_json:
        click.echo(json.dumps(report))
    else:
        _print(report)


def _updates(bar: tqdm[NoReturn]) -> Callable[[int], None]:
    """The bench's progress callback: ``n`` more taps on ``bar`` (tqdm's own ``update`` answers a flag)."""

    def update(n: int) -> None:
        bar.update(n)

    return update


def _print(r: dict) -> None:
    from sim.bench.spec import flow_of

    flow = flow_of(r["flow"], r["cards"])
    journal = r["journal"] if r["group_commit"] is None else f"{r['journal']}, group commit {r['group_commit']}"
    if r["journal"] == "sqlite" and r["group_commit"] is None:
        journal = "sqlite, durable per call"
    click.echo(f"{flow.title}: {r['acknowledged']:,} {flow.transactions} {flow.counted} ({journal}), "
               f"{r['workers']} worker(s)")
    click.echo(f"  throughput      {r['tx_per_s']:>10,.0f} tx/s")
    if r["workers"] > 1:
        click.echo(f"  one worker      {r['single_worker_tx_per_s']:>10,.0f} tx/s   scaling {r['scaling']:.2f}x "
                   f"(per worker: {', '.join(f'{v:,.0f}' for v in r['per_worker_tx_per_s'])})")
    alone = " (one worker alone)" if r["workers"] > 1 else ""
    per = f"per {flow.transaction}"
    click.echo(f"  {per:<14}  {r['us_per_tx_mean']:>10.1f} µs mean   p50 {r['us_per_tx_p50']:.1f}"
               f"   p90 {r['us_per_tx_p90']:.1f}   p99 {r['us_per_tx_p99']:.1f} µs{alone}")
    commits = ", journal commits included" if r["group_commit"] else ""
    click.echo(f"                  {'':>10} ({flow.timed}{commits}; "
               f"{r['us_per_tx_wall']:.1f} µs with the bench loop)")
    if r["workers"] > 1:
        click.echo(f"  all workers     {'':>10} p50 {r['parallel_us_per_tx_p50']:.1f}   "
                   f"p99 {r['parallel_us_per_tx_p99']:.1f} µs")
    if r["crypto_floor_us_per_tx"] is not None:
        click.echo(f"  crypto floor    {r['crypto_floor_us_per_tx']:>10.1f} µs   a {flow.transaction} costs "
                   f"{r['floor_ratio']:.2f}x the floor")
    if r["breakdown_us"]:
        click.echo(f"  where the time goes ({r['us_per_tx_wall']:.1f} µs of wall time per {flow.transaction}):")
        total = sum(r["breakdown_us"].values())
        for part, us in r["breakdown_us"].items():
            click.echo(f"    {part:<32}{us:>8.1f}  {us / total * 100:5.1f}%")
        click.echo(f"    ({r['breakdown_method']})")
    if r["declined"]:
        click.echo(f"  declined        {sum(r['declined'].values()):>10,}   {r['declined']}")
    conserved = "equal" if r["money_conserved"] else "NOT EQUAL"
    (first, said), *others = flow.money
    amounts = ", ".join(f"{r[key] / 100:,.2f} CNY {words}" for key, words in others)
    click.echo(f"  money           {r[first] / 100:>13,.2f} CNY {said}, {amounts}: {conserved}")
