"""``ykt journal``: read a validator's journal: export it for settlement, verify its TACs as the back office does."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from . import cli

_DB = click.Path(dir_okay=False, exists=True, path_type=Path)
_STATES = ("pending", "complete", "void", "unconfirmed")


@cli.group()
def journal() -> None:
    """The validator's debit journal (a SQLite file). Every command opens it read-only, so it may run beside a
    validator that is writing it."""


@journal.command()
@click.argument("db", type=_DB)
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="csv", show_default=True,
              help="CSV with a header line, or one JSON object per line (docs/settlement-format.md).")
@click.option("--state", "states", type=click.Choice(_STATES), multiple=True,
              help="Export only rows in this state; repeat for several. Default: every row.")
@click.option("--out", type=click.Path(dir_okay=False, writable=True, path_type=Path),
              help="Write to this file instead of standard output.")
def export(db: Path, fmt: str, states: tuple[str, ...], out: Path | None) -> None:
    """Export the debits of DB for settlement (CSV or JSON Lines).

    One line per debit with its TAC, card serial, issuer, ATC, TSN, amount, type, terminal, date-time, state and MAC2
    check, in journal order. The rows go to standard output unless --out is given; the count goes to standard error.
    """
    from terminal.settlement import export as export_rows

    if out is None:
        count = export_rows(db, sys.stdout, fmt, states or None)
    else:
        with open(out, "w", encoding="utf-8", newline="") as file:
            count = export_rows(db, file, fmt, states or None)
    click.echo(f"{db}: exported {count} rows", err=True)


@journal.command()
@click.argument("db", type=_DB)
@click.option("--keys", "keys", type=click.Path(dir_okay=False, exists=True, path_type=Path), required=True,
              help="The issuer key set (JSON, see terminal/keyset.py), e.g. sim/keys/demo-keyset.json.")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object: the counts, every mismatched, unverifiable and open row, and ok.")
@click.pass_context
def verify(ctx: click.Context, db: Path, keys: Path, as_json: bool) -> None:
    """Recompute the TAC of every complete debit in DB from the master TAC key, as the back office does.

    Exit status 0 when every complete debit verifies, 1 when any TAC does not match or cannot be recomputed.
    Pending and unconfirmed debits are listed apart: they are not settled yet.
    """
    from protocols.hexutil import to_hex
    from sim.render import to_json
    from terminal.keyset import load_keyset
    from terminal.settlement import verify as verify_journal

    keyset = load_keyset(keys)
    if keyset.test_only:
        click.echo(f"note: {keys} is a test-only key set; its verdicts prove nothing about real cards", err=True)
    report = verify_journal(db, keyset)
    if as_json:
        open_rows = [{"row_id": e.row_id, "state": e.record.state.value, "card_serial": e.record.card_serial,
                      "atc": e.record.offline_atc, "tsn": e.record.tsn, "amount": e.record.amount,
                      "when": e.record.when} for e in report.open]
        click.echo(to_json({"db": str(db), "ok": report.ok, "verified": report.verified,
                            "mismatches": report.mismatches, "unverifiable": report.unverifiable,
                            "open": open_rows, "void": report.void, "test_only_keys": report.test_only_keys}))
        if not report.ok:
            ctx.exit(1)
        return
    for bad in report.mismatches:
        click.echo(f"MISMATCH row {bad.row_id}: card {to_hex(bad.card_serial)} ATC {bad.atc}: "
                   f"expected TAC {to_hex(bad.expected)}, journaled {to_hex(bad.journaled) or '(none)'}")
    for skipped in report.unverifiable:
        click.echo(f"UNVERIFIABLE row {skipped.row_id}: card {to_hex(skipped.card_serial)} ATC {skipped.atc}: "
                   f"{skipped.reason}")
    for entry in report.open:
        rec = entry.record
        click.echo(f"OPEN row {entry.row_id} ({rec.state.value}): card {to_hex(rec.card_serial)} "
                   f"ATC {rec.offline_atc} TSN {rec.tsn} amount {rec.amount} at {rec.when.isoformat()}")
    click.echo(f"{db}: {report.verified} verified, {len(report.mismatches)} mismatched, "
               f"{len(report.unverifiable)} unverifiable, {len(report.open)} open, {report.void} void")
    if not report.ok:
        ctx.exit(1)
