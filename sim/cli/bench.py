"""``ykt bench``: offline debit throughput of complete composite purchases, against the cryptography floor."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from . import cli


@cli.command()
@click.option("--seconds", type=click.FloatRange(min=0, min_open=True),
              help="Time each worker taps for (default 10 s, unless --taps is given).")
@click.option("--taps", type=click.IntRange(1), help="Taps each worker makes (instead of --seconds).")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Worker processes, each with its own population, PSAM and journal; above 1, one worker first "
                   "runs alone for the scaling ratio.")
@click.option("--journal", type=click.Choice(["memory", "sqlite"]), default="sqlite", show_default=True,
              help="Journal kind.")
@click.option("--group-commit", type=click.IntRange(0), default=1000, show_default=True,
              help="SQLite journal batch size; 0 commits every call durably (two fsyncs per debit).")
@click.option("--cards", type=click.IntRange(1), default=1000, show_default=True,
              help="Cards in each worker's population.")
@click.option("--seed", type=int, default=978, show_default=True, help="Seed of the card populations.")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              help="Directory for the SQLite journals (default: a temporary one, removed afterwards).")
@click.option("--profile-taps", type=click.IntRange(0), default=20_000, show_default=True,
              help="Taps of the separate sampled pass that says where the time goes (0: none).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (no progress bar).")
def bench(seconds: float | None, taps: int | None, workers: int, journal: str, group_commit: int, cards: int,
          seed: int, directory: Path | None, profile_taps: int, as_json: bool) -> None:
    """Measure composite purchases per second on simulated hardware, and the cryptography floor.

    Each purchase runs the whole tap: the validator's state machine and codecs, the simulated card and PSAM with real
    cryptography, and the journal (only debits the journal acknowledged count). The cryptography floor is the same
    cipher operations alone; the ratio says how far a transaction is from it.
    """
    from sim.bench import BenchError, BenchSpec, run_bench

    if seconds is not None and taps is not None:
        raise click.UsageError("give --seconds or --taps, not both")
    if seconds is None and taps is None:
        seconds = 10.0
    if directory is not None:
        if not directory.is_dir():
            raise click.UsageError(f"{directory} is not a directory")
    spec = BenchSpec(taps=taps, seconds=seconds, journal=journal, group_commit=group_commit, cards=cards, seed=seed,
                     directory=None if directory is None else str(directory), profile_taps=profile_taps)
    bar = None
    if not as_json and sys.stderr.isatty():
        from tqdm import tqdm

        total = None if taps is None else taps * (workers + (workers > 1))
        bar = tqdm(total=total, unit="tap", unit_scale=True, file=sys.stderr, leave=False)
    try:
        report = run_bench(spec, workers, progress=bar.update if bar is not None else None)
    except BenchError:
        raise
    finally:
        if bar is not None:
            bar.close()
    report["command"] = "ykt bench " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["bench"] else "ykt bench"
    if as_json:
        click.echo(json.dumps(report))
    else:
        _print(report)


def _print(r: dict) -> None:
    journal = r["journal"] if r["group_commit"] is None else f"{r['journal']}, group commit {r['group_commit']}"
    if r["journal"] == "sqlite" and r["group_commit"] is None:
        journal = "sqlite, durable per call"
    click.echo(f"Offline debit throughput: {r['acknowledged']:,} composite purchases acknowledged "
               f"({journal}), {r['workers']} worker(s)")
    click.echo(f"  throughput      {r['tx_per_s']:>10,.0f} tx/s")
    if r["workers"] > 1:
        click.echo(f"  one worker      {r['single_worker_tx_per_s']:>10,.0f} tx/s   scaling {r['scaling']:.2f}x "
                   f"(per worker: {', '.join(f'{v:,.0f}' for v in r['per_worker_tx_per_s'])})")
    alone = " (one worker alone)" if r["workers"] > 1 else ""
    click.echo(f"  per purchase    {r['us_per_tx_mean']:>10.1f} µs mean   p50 {r['us_per_tx_p50']:.1f}   "
               f"p90 {r['us_per_tx_p90']:.1f}   p99 {r['us_per_tx_p99']:.1f} µs{alone}")
    commits = ", journal commits included" if r["group_commit"] else ""
    click.echo(f"                  {'':>10} (the validator's time{commits}; "
               f"{r['us_per_tx_wall']:.1f} µs with the bench loop)")
    if r["workers"] > 1:
        click.echo(f"  all workers     {'':>10} p50 {r['parallel_us_per_tx_p50']:.1f}   "
                   f"p99 {r['parallel_us_per_tx_p99']:.1f} µs")
    if r["crypto_floor_us_per_tx"] is not None:
        click.echo(f"  crypto floor    {r['crypto_floor_us_per_tx']:>10.1f} µs   a purchase costs "
                   f"{r['floor_ratio']:.2f}x the floor")
    if r["breakdown_us"]:
        click.echo(f"  where the time goes ({r['us_per_tx_wall']:.1f} µs of wall time per purchase):")
        total = sum(r["breakdown_us"].values())
        for part, us in r["breakdown_us"].items():
            click.echo(f"    {part:<32}{us:>8.1f}  {us / total * 100:5.1f}%")
        click.echo(f"    ({r['breakdown_method']})")
    if r["declined"]:
        click.echo(f"  declined        {sum(r['declined'].values()):>10,}   {r['declined']}")
    conserved = "equal" if r["money_conserved"] else "NOT EQUAL"
    click.echo(f"  money           {r['fen_journaled'] / 100:>13,.2f} CNY journaled, "
               f"{r['fen_taken_from_cards'] / 100:,.2f} CNY taken from cards: {conserved}")
