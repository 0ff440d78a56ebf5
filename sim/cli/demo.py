"""``ykt demo``: the main job: a validator session on simulated hardware, with the money checked at the end."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import click

from . import cli
from .trace import TRACE_HELP, open_trace


@cli.command()
@click.option("--taps", type=click.IntRange(1, 10_000_000), default=300, show_default=True, help="Taps to run.")
@click.option("--seed", type=int, default=1, show_default=True, help="Seed of the card population and the riders.")
@click.option("--cards", "kind", type=click.Choice(("cpu", "m1", "mixed")), default="cpu", show_default=True,
              help="The riders' cards: T-Union CPU cards, legacy M1 (MIFARE Classic) city cards, or half of each.")
@click.option("--population", type=click.IntRange(1),
              help="Cards in the population (default: half the taps, at least 10).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              metavar="TOML", help="Validator settings (terminal/config.py), e.g. a cut-over policy for M1 cards "
                                   "(sim/settings/m1-cutover.toml). Default: the demo validator's.")
@click.option("--journal", "journal_path", type=click.Path(dir_okay=False, path_type=Path),
              help="SQLite journal to write (must not exist yet). Default: a new file in a temporary directory.")
@click.option("--tear-share", type=click.FloatRange(0, 1), default=0.05, show_default=True,
              help="Share of taps torn away mid-transaction (the rider taps again).")
@click.option("--load-share", type=click.FloatRange(0, 1), default=0.05, show_default=True,
              help="Share of taps before which the rider tops up at a top-up machine (demo load host, in process).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@click.option("--trace", "trace_path", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help=TRACE_HELP)
def demo(taps: int, seed: int, kind: str, population: int | None, config_path: Path | None,
         journal_path: Path | None, tear_share: float, load_share: float, as_json: bool,
         trace_path: Path | None) -> None:
    """Run a simulated bus validator session and check that the money adds up.

    A generated population of T-Union CPU cards, legacy M1 cards or both (demo keys, test only) taps a validator
    that has a simulated reader, a simulated PSAM, the demo flat fares (sim/fares/demo-flat.toml) and a durable
    SQLite journal. Some cards are expired, blocked or nearly empty; some riders pull their card away mid-payment and
    tap again; some CPU-card riders top up between trips at a top-up machine whose load host runs in process (its
    ledger and the machine's journal are written next to the journal). The summary checks the money: loaded (the
    host's ledger) less journaled must equal the change of the cards' balances, read back from the cards themselves.
    """
    from sim.demo import DEMO_FARES, DEMO_START, demo_config, run_demo
    from terminal.clock import ManualClock
    from terminal.config import load_config

    if journal_path is None:
        journal_path = Path(tempfile.mkdtemp(prefix="ykt-demo-")) / "journal.db"
    elif journal_path.exists():
        raise click.UsageError(f"{journal_path} exists; the demo writes a new journal")
    if load_share:
        for beside_kind in ("loads", "loadhost"):
            beside = journal_path.with_name(f"{journal_path.stem}-{beside_kind}.db")
            if beside.exists():
                raise click.UsageError(f"{beside} exists; the demo writes a new one beside its journal")
    bar = None
    if not as_json and sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=taps, unit="tap", file=sys.stderr, leave=False)
    clock = ManualClock(DEMO_START)
    config = demo_config() if config_path is None else load_config(config_path)
    tracer = None
    try:
        if trace_path is not None:
            tracer = open_trace(trace_path, "demo", [("reader", "card"), ("sam", "sam")], config=config,
                                fares=DEMO_FARES, clock=clock)
        report = run_demo(taps, seed, journal_path, population=population, cards=kind, config=config,
                          tear_share=tear_share, load_share=load_share, tracer=tracer, clock=clock,
                          progress=(lambda n: bar.update(1)) if bar else None)
    finally:
        if bar is not None:
            bar.close()
        if tracer is not None:
            tracer.close()
    summary = report.as_dict()
    if as_json:
        click.echo(json.dumps(summary))
    else:
        _print(summary)
    if not report.conserved:
        raise SystemExit(1)


def _print(s: dict) -> None:
    from sim.issuing import DEMO_KEYSET

    yuan = lambda fen: f"{fen / 100:,.2f} CNY"  # noqa: E731
    click.echo(f"Simulated validator session: {s['taps']} taps, seed {s['seed']}")
    click.echo(f"  accepted            {s['accepted']:>7}   ({s['recovered']} recovered after a torn debit, "
               f"{s['recovered_late']} of them after the recovery window)")
    click.echo(f"  declined            {s['declined']:>7}")
    for reason, count in s["declined_by_reason"].items():
        click.echo(f"    {reason:<34}{count:>5}")
    click.echo(f"  torn, tapped again  {s['retried']:>7}")
    refused = sum(s["loads_refused"].values())
    click.echo(f"  topped up           {s['loads']:>7}   ({s['loads_recovered']} recovered after a torn load, "
               f"{refused} refused, {s['load_retries']} tapped again)")
    click.echo(f"  money loaded        {yuan(s['fen_loaded']):>16}   (load host ledger)")
    click.echo(f"  money journaled     {yuan(s['fen_charged']):>16}")
    balanced = s["fen_loaded"] - s["fen_charged"] == s["fen_cards_change"]
    click.echo(f"  cards' balances     {yuan(s['fen_cards_change']):>16}   "
               f"{'equal to' if balanced else 'NOT EQUAL to'} loaded - journaled")
    click.echo(f"  TACs verified       {s['tacs_verified']:>7}   ({s['tac_mismatches']} mismatches), "
               f"{s['unconfirmed']} unconfirmed")
    if s["cards"] != "cpu":
        for tech, kind in s["by_kind"].items():
            change = -kind.get("fen_taken_from_cards", 0)
            click.echo(f"  {tech + ' cards':<18}{kind.get('cards', 0):>8}   {kind.get('accepted', 0)} accepted, "
                       f"{kind.get('declined', 0)} declined; {yuan(kind.get('fen_charged', 0))} journaled, "
                       f"the cards' balances {'+' if change > 0 else ''}{yuan(change)}")
    if s["modeled_purchase_ms_p50"] is not None:
        click.echo(f"  modeled purchase    {s['modeled_purchase_ms_p50']:>7} ms median, "
                   f"{s['modeled_purchase_ms_max']} ms max (DB31/T 239-2020 limit: 400 ms)")
    click.echo(f"  wall clock          {s['taps_per_s']:>7} taps/s (durable journal: two fsyncs per debit)")
    click.echo(f"  journal             {s['journal']}")
    click.echo(f"  next: ykt journal verify {s['journal']} --keys {DEMO_KEYSET}")
