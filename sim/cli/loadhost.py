"""``ykt loadhost``: the issuer's load host over HTTP, and its ledger."""

from __future__ import annotations

import json
import signal
import tempfile
import threading
from pathlib import Path

import click

from . import cli

_SERVE_HELP = """Serve the load host over HTTP: load terminals ask it for MAC2 and hand it the card's TAC.

It holds the master load and TAC keys (--keys), records every load in a SQLite
ledger (--ledger, kept across restarts) and accepts the terminals of --terminals,
each with its bearer token. Loopback by default. Without --keys, --ledger and
--terminals it serves the demo key set, a new ledger in a temporary directory and
the demo terminals (sim/keys/demo-terminals.toml): TEST ONLY, the keys and tokens
are public. The API (POST /v1/loads, POST /v1/loads/ID/confirm) is in
docs/load-host.md. Then, in another shell:

\b
    ykt card new --balance 5000 --out card.json
    ykt load --reader sim:card.json --amount 5000 --save \\
        --host http://127.0.0.1:8760 --token demo-topup-machine-0001-test-only

One line per request goes to standard error (never a token). Stops on SIGTERM or
Ctrl-C once the requests in progress are answered.
"""


def _listen(text: str) -> tuple[str, int]:
    host, colon, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not colon or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise click.BadParameter(f"{text!r}: expected HOST:PORT, e.g. 127.0.0.1:8760 or [::1]:8760 (port 0: any free)")
    return host, int(port)


@cli.group("loadhost")
def loadhost() -> None:
    """The issuer's load host: serve it over HTTP, read its ledger."""


@loadhost.command("serve", help=_SERVE_HELP)
@click.option("--keys", "keys_path", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="The issuer's key set (JSON, terminal/keyset.py): its load and TAC master keys. "
                   "Default: the demo key set (test only).")
@click.option("--ledger", "ledger_path", type=click.Path(dir_okay=False, path_type=Path),
              help="The SQLite ledger (created if absent, kept across restarts). Default: a new file in a "
                   "temporary directory.")
@click.option("--terminals", "terminals_path", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="The load terminals, their tokens and the limits (TOML, docs/load-host.md). Default: the demo "
                   "terminals (test only).")
@click.option("--listen", default="127.0.0.1:8760", show_default=True, metavar="HOST:PORT",
              help="Where to listen; port 0 takes any free port (the address is printed).")
def serve(keys_path: Path | None, ledger_path: Path | None, terminals_path: Path | None, listen: str) -> None:
    from sim.loadhost import LoadHostServer, open_service

    address = _listen(listen)
    if ledger_path is None:
        ledger_path = Path(tempfile.mkdtemp(prefix="ykt-loadhost-")) / "ledger.db"
    service = open_service(ledger_path, keys=keys_path, terminals=terminals_path)
    try:
        server = LoadHostServer(service, address, log=lambda line: click.echo(line, err=True))
    except OSError as exc:
        service.close()
        raise click.ClickException(f"cannot listen on {listen}: {exc.strerror or exc}") from None
    stopping = threading.Event()
    previous = {sig: signal.signal(sig, lambda signum, frame: stopping.set())
                for sig in (signal.SIGTERM, signal.SIGINT)}
    registry = service.terminals
    test_only = " (TEST ONLY: public demo keys)" if keys_path is None else ""
    click.echo(f"  keys       {keys_path or 'demo key set'}{test_only}", err=True)
    click.echo(f"  ledger     {ledger_path}", err=True)
    click.echo(f"  terminals  {len(registry.terminals)} from {terminals_path or 'sim/keys/demo-terminals.toml'}"
               + (" (TEST ONLY: public tokens)" if registry.test_only else "")
               + f"; limits {registry.limits.per_load} fen a load, {registry.limits.purse} fen a purse", err=True)
    if address[0] not in ("127.0.0.1", "::1", "localhost"):
        click.echo(f"  note: listening on {address[0]}, not loopback: plain HTTP, put TLS in front of it", err=True)
    server.start()
    click.echo(f"load host listening on {server.url}", err=True)  # last: the host is ready when this line is out
    try:
        while not stopping.wait(0.5):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.stop()
        service.close()
    click.echo("load host stopped", err=True)


@loadhost.command("ledger")
@click.argument("ledger_path", metavar="LEDGER.db", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object per load: load_id, state, issuer, serial, online_counter, random, "
                   "balance_before, amount, transaction_type, terminal, datetime, mac1, mac2, tac, ...")
def ledger(ledger_path: Path, as_json: bool) -> None:
    """Print every load of a load host's ledger, with its state and what an auditor needs to recompute it.

    States: authorized (MAC2 given, no TAC yet), confirmed (the card's TAC verified),
    flagged (a wrong TAC came: for investigation), void (superseded: the card showed
    the same online counter again later, so it was never credited with it).
    A summary line goes to standard error. The host may be running.
    """
    from sim.loadhost import LedgerState, LoadLedger

    from .validate import _card_number, _yuan

    with LoadLedger(ledger_path, readonly=True) as book:
        loads = book.loads()
    for load in loads:
        if as_json:
            click.echo(json.dumps(load.to_json(), ensure_ascii=False))
            continue
        when = f"{load.datetime[:4]}-{load.datetime[4:6]}-{load.datetime[6:8]} " \
               f"{load.datetime[8:10]}:{load.datetime[10:12]}:{load.datetime[12:]}"
        parts = [f"load {load.load_id:<5}", f"{load.state.value:<10}", f"card {_card_number(load.serial)}",
                 f"counter {load.online_counter:<5}", f"+{_yuan(load.amount)}",
                 f"balance {_yuan(load.balance_before)} -> {_yuan(load.balance_before + load.amount)}",
                 f"terminal {load.terminal.hex().upper()}", when]
        if load.tac is not None:
            parts.append(f"TAC {load.tac.hex().upper()}")
        if load.note:
            parts.append(f"({load.note})")
        click.echo("  ".join(parts))
    counts = {state: [load for load in loads if load.state is state] for state in LedgerState}
    confirmed = sum(load.amount for load in counts[LedgerState.CONFIRMED])
    click.echo(f"{len(loads)} load{'' if len(loads) == 1 else 's'}: {len(counts[LedgerState.CONFIRMED])} confirmed "
               f"({_yuan(confirmed)} CNY loaded), {len(counts[LedgerState.AUTHORIZED])} authorized, "
               f"{len(counts[LedgerState.FLAGGED])} flagged, {len(counts[LedgerState.VOID])} void", err=True)
