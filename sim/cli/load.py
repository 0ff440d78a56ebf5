"""``ykt load``: a load terminal (top-up machine, phone app) on any reader: one load onto the card in the field."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from . import cli
from .validate import _card_number, _yuan

if TYPE_CHECKING:
    from terminal.loads import LoadOutcome

_EXIT = {"loaded": 0, "refused": 1, "failed": 1, "retry": 3}

_HELP = """Load value onto the card on a reader (圈存): the card's MAC1 goes to the load host, its MAC2 to the card,
the card's TAC back to the host.

The reader is any the validator takes: pcsc:<index|name>, pn532:<path>[@baud],
sim:<fixture>. Without --host the load host runs in this process with the demo
keys and terminals (test only), its ledger in --ledger. With --host it is a
'ykt loadhost serve' (or any host of docs/load-host.md), reached as the terminal
whose bearer token is --token (or $YKT_LOAD_TOKEN); --terminal must then be that
token's terminal number. An over-the-air load is this command on a phone's side:

\b
    ykt loadhost serve &
    ykt card new --balance 5000 --out card.json
    ykt load --reader sim:card.json --amount 5000 --save \\
        --host http://127.0.0.1:8760 --token demo-phone-app-0002-test-only \\
        --terminal 200041590002

Every load is journaled (--journal) before each step. A card taken away during
CREDIT FOR LOAD: run the same command again with the card; the next tap asks the
card for its proof (GET TRANSACTION PROVE) and finishes that load or reports it as
not done. A host that cannot be reached leaves the card untouched.
Exit status: 0 loaded, 1 not loaded, 3 tap the card again.
"""


def _doc(outcome: LoadOutcome) -> dict[str, Any]:
    return {
        "status": outcome.status.value, "reason": outcome.reason, "message": outcome.message,
        "card_serial": None if outcome.card_serial is None else outcome.card_serial.hex().upper(),
        "amount": outcome.amount, "balance_before": outcome.balance_before, "balance_after": outcome.balance_after,
        "load_id": outcome.load_id, "tac": None if outcome.tac is None else outcome.tac.hex().upper(),
        "confirmed": outcome.confirmed, "recovered": outcome.recovered, "pending": outcome.pending,
        "journal_row": outcome.journal_row, "apdus": len(outcome.exchanges),
    }


def _line(outcome: LoadOutcome) -> str:
    card = _card_number(outcome.card_serial)
    if outcome.loaded:
        told = {True: "confirmed by the host", False: outcome.detail, None: ""}[outcome.confirmed]
        recovered = " (the load torn earlier, proven now)" if outcome.recovered else ""
        return (f"loaded {_yuan(outcome.amount)} CNY onto card {card}{recovered}: balance "
                f"{_yuan(outcome.balance_before or 0)} -> {_yuan(outcome.balance_after or 0)} "
                f"(load {outcome.load_id}, TAC {outcome.tac.hex().upper() if outcome.tac else '-'}, {told})")
    if outcome.status.value == "retry":
        return f"card {card} left the reader: {outcome.detail}; tap it again (run the same command) to " + \
            ("finish the load" if outcome.pending else "load")
    return f"not loaded onto card {card}: {outcome.detail or outcome.reason} ({outcome.reason})"


@cli.command("load", help=_HELP)
@click.option("--reader", metavar="DEVICE", required=True,
              help="The card reader: pcsc:<index|name>, pn532:<path>[@baud], sim:<fixture>.")
@click.option("--amount", type=click.IntRange(1, 0x7FFFFFFF), required=True, metavar="FEN",
              help="How much to load, in fen (5000 = 50.00 CNY).")
@click.option("--host", "host_url", metavar="URL", help="The load host, e.g. http://127.0.0.1:8760. Default: an "
              "in-process host with the demo keys (test only).")
@click.option("--token", envvar="YKT_LOAD_TOKEN", metavar="TOKEN",
              help="This terminal's bearer token at --host (or $YKT_LOAD_TOKEN).")
@click.option("--terminal", "terminal_hex", metavar="HEX", default="200041590001", show_default=True,
              help="This terminal's 6-byte number (its token's, at the host).")
@click.option("--journal", "journal_path", type=click.Path(dir_okay=False, path_type=Path), default=Path("loads.db"),
              show_default=True, help="The load terminal's SQLite journal (created if absent).")
@click.option("--ledger", "ledger_path", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("loadhost.db"), show_default=True,
              help="Without --host: the in-process host's ledger (created if absent).")
@click.option("--purse", type=click.Choice(["ep", "ed"]), default="ep", show_default=True,
              help="The purse to load: ep (electronic purse, type 02) or ed (passbook, type 01).")
@click.option("--key-index", type=click.IntRange(0, 255), default=1, show_default=True,
              help="The card key index INITIALIZE FOR LOAD names.")
@click.option("--wait", "wait_s", type=click.FloatRange(0, 3600), default=10.0, show_default=True, metavar="SECONDS",
              help="How long to wait for a card on the reader.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the outcome as one JSON object (status, balance_before, balance_after, amount, load_id, "
                   "tac, ...).")
@click.option("--save", is_flag=True,
              help="With a sim: card, write its state back to the fixture file, atomically, before each answer that "
                   "changed it.")
def load(reader: str, amount: int, host_url: str | None, token: str | None, terminal_hex: str, journal_path: Path,
         ledger_path: Path, purse: str, key_index: int, wait_s: float, as_json: bool, save: bool) -> None:
    from protocols.card_commands import Purse
    from protocols.errors import ProtocolError
    from protocols.hexutil import parse_hex
    from sim.devices import open_link, parse_device
    from terminal.clock import SystemClock
    from terminal.loads import HttpLoadHost, LoadHost, LoadJournal, LoadTerminal

    spec = parse_device(reader)
    if save and (spec.kind != "sim" or spec.target == "random"):
        raise click.UsageError("--save writes a sim:<fixture> card back to its file; this reader has none")
    try:
        terminal_id = parse_hex(terminal_hex, what="--terminal")
    except ProtocolError as exc:
        raise click.BadParameter(str(exc), param_hint="--terminal") from None
    if len(terminal_id) != 6:
        raise click.BadParameter(f"6 bytes (12 hex digits), got {len(terminal_id)}", param_hint="--terminal")
    service = None
    host: LoadHost
    if host_url is not None:
        if not token:
            raise click.UsageError("--host needs --token (or $YKT_LOAD_TOKEN): this terminal's bearer token")
        host = HttpLoadHost(host_url, token)
    else:
        from sim.loadhost import InProcessLoadHost, open_service

        service = open_service(ledger_path)
        registered = service.terminals.by_number(terminal_id)
        if registered is None:
            service.close()
            raise click.UsageError(f"--terminal {terminal_hex}: not one of the demo terminals "
                                   f"({', '.join(t.number.hex().upper() for t in service.terminals.terminals)})")
        host = InProcessLoadHost(service, registered.token)
    clock = SystemClock()
    try:
        with open_link(spec, role="card", save=save) as link, LoadJournal(journal_path, clock=clock) as journal:
            terminal = LoadTerminal(link, host, journal, clock=clock, terminal_id=terminal_id, key_index=key_index,
                                    purse=Purse.EP if purse == "ep" else Purse.ED)
            unsent = terminal.start()
            if unsent:
                click.echo(f"note: {unsent} TAC(s) still wait for the load host (sent again at the next load)",
                           err=True)
            outcome = None
            deadline = time.monotonic() + wait_s
            while outcome is None:
                outcome = terminal.load(amount, timeout=min(0.5, max(0.0, deadline - time.monotonic())))
                if outcome is None and time.monotonic() >= deadline:
                    raise click.ClickException(f"no card on {reader} within {wait_s:g} s")
    finally:
        if service is not None:
            service.close()
    if as_json:
        click.echo(json.dumps(_doc(outcome), ensure_ascii=False))
    if outcome.loaded:
        if not as_json:
            click.echo(_line(outcome))
    else:
        click.echo(f"ykt: {_line(outcome)}", err=True)
    if save:
        click.echo(f"saved the card's state to {spec.target}", err=True)
    raise click.exceptions.Exit(_EXIT[outcome.status.value])
