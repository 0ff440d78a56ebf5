"""``ykt read``: read a rider's card without keys on any reader, print it decoded, save the exchanges as a capture."""

from __future__ import annotations

from pathlib import Path

import click

from . import cli

_LABELS = {"files": "files (15 public application info, 16 cardholder, 17 management info)",
           "records": "records (by file and record number; 1 is the newest of 18 and 1E)"}


@cli.command()
@click.option("--reader", "device", metavar="DEVICE", required=True,
              help="The card reader: pcsc:<index|name>, pn532:<path>[@baud], sim:<fixture|random>.")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), metavar="CAPTURE",
              help="Save every exchange as a capture (trace format, docs/trace-format.md; must not exist), for "
                   "'ykt card import' and 'ykt trace show'.")
@click.option("--wait", type=click.FloatRange(0, 3600), default=10.0, show_default=True, metavar="SECONDS",
              help="How long to wait for a card on the reader.")
@click.option("--no-initialize", "initialize", flag_value=False, default=True,
              help="Do not send INITIALIZE FOR PURCHASE and FOR LOAD (they change nothing on the card and give its "
                   "counters and overdraft limit).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object: everything read, decoded.")
def read(device: str, out: Path | None, wait: float, initialize: bool, as_json: bool) -> None:
    """Read everything a card offers without keys and print it decoded.

    \b
    SELECT of the PPSE and of the purse application (T-Union first, then
    what the PPSE lists, then the other schemes' purses), READ BINARY of
    files 15, 16 and 17, GET BALANCE, INITIALIZE FOR PURCHASE and FOR LOAD
    (counters; nothing changes on the card), and every record of the 18
    log and the 1A and 1E files. Nothing is written to the card.

    \b
    Examples:
      ykt read --reader pcsc:0 --out rider.jsonl
      ykt card import rider.jsonl --out twin.json
    """
    from sim.decoding import reading_view
    from sim.devices import open_link
    from sim.render import report_lines, to_json, to_plain
    from terminal.channel import Channel
    from terminal.clock import SystemClock
    from terminal.errors import LinkTimeout
    from terminal.readout import Captured, interpret, read_card
    from terminal.trace import ExchangeLog, Tracer, Tracers
    from terminal.tracefile import TraceWriter

    from .trace import tool_name

    log = ExchangeLog()
    with open_link(device, role="card") as link:
        writer = None if out is None else TraceWriter(out, links=[(link.name, "card")], tool=tool_name("read"),
                                                      clock=SystemClock())
        tracer: Tracer = log if writer is None else Tracers(log, writer)
        try:
            channel = Channel(link, peer="card", tracer=tracer)
            activation = channel.activate(wait)
            if activation is None:
                if out is not None:
                    out.unlink()  # no card, no capture: nothing is left that an import could mistake for one
                raise LinkTimeout(f"{link.name}: no card within {wait:g} s")
            read_card(channel, initialize=initialize)
            link.deactivate()
        finally:
            if writer is not None:
                writer.close()
    reading = interpret([Captured(f"exchange {number}", e.command, e.response, e.error)
                         for number, e in enumerate(log.exchanges, 1)], [activation])
    view = {"reader": link.name, **reading_view(reading), "exchanges": len(log.exchanges),
            "capture": None if out is None else str(out)}
    if as_json:
        click.echo(to_json(view))
        return
    for line in report_lines(to_plain(view), 0, _LABELS):
        click.echo(line)
