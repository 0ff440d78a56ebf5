"""``ykt journal``: read a validator's journal: export it for settlement, verify its TACs as the back office does,
list the events it holds for the operator."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import click

from . import cli

if TYPE_CHECKING:
    from terminal.journal import Journal

_DB = click.Path(dir_okay=False, exists=True, path_type=Path)
_STATES = ("pending", "complete", "void", "unconfirmed")
DAMAGED_HELP = ("What a damaged row does: 'stop' ends the command with an error naming the row and the field "
                "(nothing is written); 'quarantine' sets the row aside, reports it on standard error, exits with "
                "status 1 and goes on with the others.")


def damaged_option(default: str | None = "stop") -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The ``--damaged stop|quarantine`` option, shared by the commands that read a journal."""
    return click.option("--damaged", type=click.Choice(["stop", "quarantine"]), default=default,
                        show_default=default is not None, help=DAMAGED_HELP)


@cli.group()
def journal() -> None:
    """The validator's debit journal (a SQLite file). Every command opens it read-only, so it may run beside a
    validator that is writing it."""


def _open(db: Path, damaged: str) -> Journal:
    from terminal.journal import SqliteJournal

    return SqliteJournal(db, readonly=True, damaged=damaged)


def report_set_aside(journal: Journal) -> bool:
    """Name on standard error every row and event the quarantine policy set aside; whether there was any."""
    damaged = [*journal.quarantined.values(), *journal.quarantined_events.values()]
    for damage in damaged:
        click.echo(f"ykt: set aside: {damage}", err=True)
    return bool(damaged)


@contextmanager
def _atomic(path: Path) -> Iterator[TextIO]:
    """A text file written beside ``path`` and renamed onto it once complete: ``path`` holds the old content or the
    whole new one, never part of it."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(name, path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise


@journal.command()
@click.argument("db", type=_DB)
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="csv", show_default=True,
              help="CSV with a header line, or one JSON object per line (docs/settlement-format.md).")
@click.option("--state", "states", type=click.Choice(_STATES), multiple=True,
              help="Export only rows in this state; repeat for several. Default: every row.")
@click.option("--out", type=click.Path(dir_okay=False, writable=True, path_type=Path),
              help="Write to this file instead of standard output (written whole, or not at all).")
@damaged_option()
@click.pass_context
def export(ctx: click.Context, db: Path, fmt: str, states: tuple[str, ...], out: Path | None, damaged: str) -> None:
    """Export the debits of DB for settlement (CSV or JSON Lines).

    One line per debit with its TAC, card serial, issuer, ATC, TSN, amount, type, terminal, date-time, state, MAC2
    check and the evidence that settled it, in journal order. The rows go to standard output unless --out is given;
    the count goes to standard error. The report is written only once every row has been read.
    """
    from terminal.settlement import export as export_rows

    with _open(db, damaged) as source:
        if out is None:
            count = export_rows(source, sys.stdout, fmt, states or None)
        else:
            with _atomic(out) as file:
                count = export_rows(source, file, fmt, states or None)
        set_aside = report_set_aside(source)
    click.echo(f"{db}: exported {count} rows", err=True)
    if set_aside:
        ctx.exit(1)


@journal.command()
@click.argument("db", type=_DB)
@click.option("--keys", "keys", type=click.Path(dir_okay=False, exists=True, path_type=Path), required=True,
              help="The issuer key set (JSON, see terminal/keyset.py), e.g. sim/keys/demo-keyset.json.")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object: the counts, every mismatched, unverifiable, log-settled, open and set-aside "
                   "row, and ok.")
@damaged_option()
@click.pass_context
def verify(ctx: click.Context, db: Path, keys: Path, as_json: bool, damaged: str) -> None:
    """Recompute the TAC of every complete debit in DB from the master TAC key, as the back office does.

    Exit status 0 when every complete debit with a TAC verifies, 1 when any TAC does not match or cannot be
    recomputed, or a row was set aside. Pending and unconfirmed debits are listed apart (not settled yet), and so are
    debits settled from the card's own 0x18 record (complete, with no TAC to check: the record is shown).
    """
    from protocols.hexutil import to_hex
    from sim.render import to_json
    from terminal.keyset import load_keyset
    from terminal.settlement import verify as verify_journal

    keyset = load_keyset(keys)
    if keyset.test_only:
        click.echo(f"note: {keys} is a test-only key set; its verdicts prove nothing about real cards", err=True)
    report = verify_journal(db, keyset, damaged=damaged)
    if as_json:
        open_rows = [{"row_id": e.row_id, "state": e.record.state.value, "card_serial": e.record.card_serial,
                      "atc": e.record.offline_atc, "tsn": e.record.tsn, "amount": e.record.amount,
                      "when": e.record.when, "evidence": e.record.evidence.value or None, "reason": e.reason}
                     for e in report.open]
        from_log = [{"row_id": e.row_id, "card_serial": e.record.card_serial, "atc": e.record.offline_atc,
                     "tsn": e.record.tsn, "amount": e.record.amount, "card_record": e.card_record}
                    for e in report.from_log]
        set_aside = [{"table": d.table, "row_id": d.row_id, "field": d.field, "reason": d.reason}
                     for d in report.quarantined]
        click.echo(to_json({"db": str(db), "ok": report.ok, "verified": report.verified,
                            "mismatches": report.mismatches, "unverifiable": report.unverifiable,
                            "from_log": from_log, "open": open_rows, "void": report.void,
                            "set_aside": set_aside, "test_only_keys": report.test_only_keys}))
        if not report.ok:
            ctx.exit(1)
        return
    for bad in report.mismatches:
        click.echo(f"MISMATCH row {bad.row_id}: card {to_hex(bad.card_serial)} ATC {bad.atc}: "
                   f"expected TAC {to_hex(bad.expected)}, journaled {to_hex(bad.journaled) or '(none)'}")
    for skipped in report.unverifiable:
        click.echo(f"UNVERIFIABLE row {skipped.row_id}: card {to_hex(skipped.card_serial)} ATC {skipped.atc}: "
                   f"{skipped.reason}")
    for damage in report.quarantined:
        click.echo(f"DAMAGED {damage}")
    for entry in report.from_log:
        rec = entry.record
        click.echo(f"LOG row {entry.row_id}: card {to_hex(rec.card_serial)} ATC {rec.offline_atc} TSN {rec.tsn} "
                   f"amount {rec.amount}: no TAC, settled from the card's 0x18 record "
                   f"{to_hex(entry.card_record or b'')}")
    for entry in report.open:
        rec = entry.record
        click.echo(f"OPEN row {entry.row_id} ({rec.state.value}): card {to_hex(rec.card_serial)} "
                   f"ATC {rec.offline_atc} TSN {rec.tsn} amount {rec.amount} at {rec.when.isoformat()}"
                   + (f": {entry.reason}" if entry.reason else ""))
    click.echo(f"{db}: {report.verified} verified, {len(report.mismatches)} mismatched, "
               f"{len(report.unverifiable)} unverifiable, {len(report.from_log)} from the card's log, "
               f"{len(report.open)} open, {report.void} void"
               + (f", {len(report.quarantined)} set aside" if report.quarantined else ""))
    if not report.ok:
        ctx.exit(1)


def summarize(found: list[Any]) -> list[dict[str, Any]]:
    """Events counted by kind, with the distinct cards they name; ``exchange_card`` events also by what the cut-over
    policy said (technology, card type, phase), so an operator can watch the old cards go."""
    kinds: dict[str, dict[str, Any]] = {}
    for event in found:
        kind = kinds.setdefault(event.kind, {"kind": event.kind, "events": 0, "cards": set(), "by_rule": {}})
        kind["events"] += 1
        if event.card_serial is not None:
            kind["cards"].add(event.card_serial)
        if event.kind == "exchange_card":
            rule = kind["by_rule"].setdefault(event.detail, {"events": 0, "cards": set()})
            rule["events"] += 1
            rule["cards"].add(event.card_serial)
    return [{"kind": k["kind"], "events": k["events"], "cards": len(k["cards"]),
             "by_rule": {detail: {"events": r["events"], "cards": len(r["cards"])}
                         for detail, r in k["by_rule"].items()}}
            for k in kinds.values()]


@journal.command()
@click.argument("db", type=_DB)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per event instead of a line of text.")
@click.option("--summary", is_flag=True,
              help="Count the events by kind and the cards they name instead of listing them; refused old cards "
                   "(exchange_card) also by the cut-over rule that refused them.")
@damaged_option()
@click.pass_context
def events(ctx: click.Context, db: Path, as_json: bool, summary: bool, damaged: str) -> None:
    """List what the validator journaled for the operator: cards refused as copies or replays, counters that went
    backwards, old cards refused by the cut-over policy (asked to be exchanged), journal rows set aside as damaged,
    a PSAM repeating a transaction serial.

    \b
    Text: EVENT id  time  kind  card  row  detail
    JSON: {"event", "at", "kind", "card_serial", "row", "detail"}
    --summary: a line (JSON: {"kind", "events", "cards", "by_rule"}) per kind
    """
    from protocols.hexutil import to_hex

    with _open(db, damaged) as source:
        found = list(source.events())
        set_aside = report_set_aside(source)
    if summary:
        for kind in summarize(found):
            if as_json:
                click.echo(json.dumps(kind, ensure_ascii=False))
                continue
            click.echo(f"{kind['kind']:<20}{kind['events']:>7} events, {kind['cards']} cards")
            for detail, rule in kind["by_rule"].items():
                click.echo(f"  {detail:<46}{rule['events']:>7} events, {rule['cards']} cards")
    for event in [] if summary else found:
        card = None if event.card_serial is None else to_hex(event.card_serial)
        if as_json:
            click.echo(json.dumps({"event": event.event_id, "at": event.at.isoformat(), "kind": event.kind,
                                   "card_serial": card, "row": event.row_ref, "detail": event.detail},
                                  ensure_ascii=False))
        else:
            click.echo(f"EVENT {event.event_id}  {event.at.isoformat()}  {event.kind}  card {card or '-'}  "
                       f"row {event.row_ref or '-'}  {event.detail}")
    if not as_json:
        click.echo(f"{db}: {len(found)} event{'' if len(found) == 1 else 's'}", err=True)
    if set_aside:
        ctx.exit(1)
