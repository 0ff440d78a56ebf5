"""``ykt trace``: read a trace file (every command and answer decoded by name), and export it for Wireshark.

Also the one way the other commands (``validate``, ``demo``, ``tap``) open a trace for ``--trace FILE``:
:func:`open_trace`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from . import cli

if TYPE_CHECKING:
    from terminal.clock import Clock
    from terminal.config import ValidatorConfig
    from terminal.trace import Exchange
    from terminal.tracefile import Trace, TraceWriter

TRACE_HELP = "Write every card and PSAM exchange to this trace file (JSON lines, docs/trace-format.md; must not exist)."


def open_trace(path: Path, command: str, links: Iterable[tuple[str, str]], *, config: ValidatorConfig,
               fares: Path, clock: Clock) -> TraceWriter:
    """A trace writer for ``ykt <command> --trace``: the links as (name, role), the validator's settings and fare file
    in the header (so that ``ykt replay`` needs nothing else), the validator's clock with each activation."""
    from terminal.tomlconf import read_text
    from terminal.tracefile import TraceWriter, ValidatorSettings, config_toml

    settings = ValidatorSettings(config_toml(config), read_text(fares))
    return TraceWriter(path, links=links, tool=tool_name(command), validator=settings, clock=clock)


def tool_name(command: str) -> str:
    """What a trace's header says wrote it: ``ykt validate (yikatong 0.1.0)``."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        release = version("yikatong")
    except PackageNotFoundError:
        release = "unknown version"
    return f"ykt {command} (yikatong {release})"


# --- decoding ------------------------------------------------------------------------------------------------------

def _attempt(what: str, decode: Callable[[], Any]) -> Any:
    """A decoded value, or a note saying why the bytes do not decode (a trace may hold anything a card said)."""
    from protocols.errors import ProtocolError

    try:
        return decode()
    except ProtocolError as exc:
        return {"note": f"does not decode as {what}: {exc}"}


def decode_exchange(exchange: Exchange, role: str, number: int, waiting: dict[str, Any],
                    selected: dict[str, Any] | None = None) -> dict[str, Any]:
    """One exchange, every field named. ``waiting`` maps a link to the command whose answer a T=0 device announced
    with 61xx, so that the GET RESPONSE bringing it is decoded as that command's answer; ``selected`` maps a link to
    the scheme of the application its card last selected, which says how the files read after it are laid out."""
    from protocols.card_commands import (
        GetResponse,
        SelectByFid,
        SelectByName,
        UpdateCappDataCache,
    )
    from protocols.hexutil import to_hex
    from protocols.schemes import DIRECTORY, scheme_of
    from sim.decoding import (
        UNNAMED,
        decode_command,
        decode_file,
        decode_response,
        parse_command,
    )
    from sim.tap import command_label

    selected = {} if selected is None else selected
    scheme = selected.get(exchange.link)
    command = parse_command(exchange.command, role)
    shown: dict[str, Any] = {"apdu": to_hex(exchange.command), "name": command_label(exchange.command, role)}
    shown.update(_attempt("a command APDU", lambda: decode_command(exchange.command)))
    if isinstance(command, UpdateCappDataCache):
        shown["data_decoded"] = decode_file(command.sfi, command.data, scheme)
    out: dict[str, Any] = {"event": "exchange", "number": number, "link": exchange.link, "role": role,
                           "t_ns": exchange.start_ns, "duration_ns": exchange.duration_ns,
                           "model": None if exchange.model is None else
                           {"line_us": exchange.model.line_us, "device_us": exchange.model.device_us},
                           "error": exchange.error, "command": shown, "response": None}
    response = exchange.response
    if response is None:
        waiting.pop(exchange.link, None)
        return out
    asked = waiting.pop(exchange.link, None) if isinstance(command, GetResponse) else command
    announced = response[-2] == 0x61 and command is not None
    if announced:
        waiting[exchange.link] = asked
    answered_ok = response[-2:] == b"\x90\x00" and len(response) > 2
    decoded = _attempt("a response APDU", lambda: decode_response(
        response, asked if answered_ok and asked is not None else None, role=role, scheme=scheme))
    out["response"] = {"apdu": to_hex(response), **decoded}
    if role == "card" and isinstance(asked, (SelectByName, SelectByFid)) and answered_ok:
        fci = decoded.get("decoded") or {}
        if "df_name" in fci:
            chosen = scheme_of(fci["df_name"]) or UNNAMED
            if chosen.kind != DIRECTORY:  # the files read next are the application's, not a directory's
                selected[exchange.link] = chosen
    return out


def decode_trace(trace: Trace) -> dict[str, Any]:
    """The whole trace as one plain document: header and every event decoded."""
    from terminal.jsondoc import activation_to_json
    from terminal.trace import Exchange

    roles = {link.name: link.role for link in trace.header.links}
    header = {"created": trace.header.created, "tool": trace.header.tool,
              "links": [{"name": link.name, "role": link.role} for link in trace.header.links],
              "validator_settings_recorded": trace.header.validator is not None, "truncated": trace.truncated}
    events: list[dict[str, Any]] = []
    waiting: dict[str, Any] = {}
    selected: dict[str, Any] = {}
    number = 0
    for event in trace.events:
        if isinstance(event, Exchange):
            number += 1
            events.append(decode_exchange(event, roles[event.link], number, waiting, selected))
        else:
            events.append({"event": "activation", "link": event.link, "role": roles[event.link], "t_ns": event.at_ns,
                           "activation": activation_to_json(event.activation), "clock": event.clock})
    return {"trace": header, "events": events}


def _ms(ns: int) -> str:
    return f"{ns / 1e6:.3f} ms"


def _peer(role: str) -> str:
    return "card" if role == "card" else "PSAM"


def _print_event(event: dict[str, Any]) -> None:
    from sim.render import text_lines

    if event["event"] == "activation":
        shown = {key: value for key, value in event["activation"].items() if value not in (None, "")}
        facts = ", ".join(f"{key} {value}" for key, value in shown.items() if key != "protocol")
        clock = f"; validator clock {event['clock'].isoformat(sep=' ')}" if event["clock"] else ""
        click.echo(f"{_ms(event['t_ns']):>12}  {event['link']}: {_peer(event['role'])} activated, "
                   f"{event['activation']['protocol']}{', ' + facts if facts else ''}{clock}")
        return
    model = event["model"]
    timing = f"took {_ms(event['duration_ns'])}"
    if model is not None:
        timing += (f"; modeled {'air' if event['role'] == 'card' else 'line'} {model['line_us'] / 1000:.3f} ms, "
                   f"{_peer(event['role'])} {model['device_us'] / 1000:.3f} ms")
    command, response = event["command"], event["response"]
    click.echo(f"{_ms(event['t_ns']):>12}  #{event['number']} {event['link']}: {command['name']}  ({timing})")
    click.echo(f"{'':14}> {command['apdu']}")
    for line in text_lines(command.get("fields", {key: command[key] for key in ("note",) if key in command}), 8):
        click.echo(line)
    if "data_decoded" in command:
        click.echo(f"{'':16}data, decoded:")
        for line in text_lines(command["data_decoded"], 9):
            click.echo(line)
    if response is None:
        click.echo(f"{'':14}< no answer: {event['error']}")
        return
    data = response.get("data") or b""
    sw = f"{response['sw']} ({response['meaning']})" if "sw" in response else response["apdu"]
    click.echo(f"{'':14}< {data.hex().upper() + ' ' if data else ''}{sw}")
    if "decoded" in response:
        for line in text_lines(response["decoded"], 8):
            click.echo(line)


@cli.group()
def trace() -> None:
    """Trace files: what a validator sent and received (docs/trace-format.md)."""


@trace.command("show")
@click.argument("trace_path", metavar="TRACE", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="One JSON object: the header and every event, decoded.")
def show(trace_path: Path, as_json: bool) -> None:
    """Show every activation, command and answer in TRACE, decoded by name, with its timings.

    Card and PSAM commands are named with their fields; answers with their status word's
    meaning and, where the command tells what they hold, decoded: the FCI, the file or
    record read, INITIALIZE's balance and counter, DEBIT's TAC and MAC2, the PSAM's TSN
    and MAC1 (fetched by GET RESPONSE on T=0). Times count from the trace's creation;
    modeled times are the simulated reader's timing model.
    """
    from sim.render import to_json
    from terminal.tracefile import read_trace

    loaded = read_trace(trace_path)
    doc = decode_trace(loaded)
    if as_json:
        click.echo(to_json(doc))
        return
    head = doc["trace"]
    links = ", ".join(f"{link['name']} ({_peer(link['role'])})" for link in head["links"])
    click.echo(f"{trace_path}: made {head['created'].isoformat(sep=' ', timespec='milliseconds')} by {head['tool']}; "
               f"links {links}; validator settings {'recorded' if head['validator_settings_recorded'] else 'absent'}")
    for event in doc["events"]:
        _print_event(event)
    if loaded.truncated:
        click.echo("the last line was cut short (the recording stopped while writing it) and is not shown", err=True)


@trace.command("export")
@click.argument("trace_path", metavar="TRACE", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--pcap", "pcap_path", required=True, type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="The capture to write: pcapng when the name ends in .pcapng, else pcap.")
@click.option("--link", "links", multiple=True, metavar="NAME",
              help="A card link to export (repeat for several, pcapng only). Default: every card link.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object: the file written, its format and packets.")
def export(trace_path: Path, pcap_path: Path, links: tuple[str, ...], as_json: bool) -> None:
    """Write TRACE's card exchanges as a capture that Wireshark and tshark decode as ISO 7816 APDUs.

    The APDUs go in ISO 14443-4 frames (link type 264, LINKTYPE_ISO_14443), with the
    activation (REQA ... ATS) rebuilt from the recorded UID, SAK and ATS. Wireshark hands
    the frames' payload to its ISO 7816 dissector when told to:

    \b
      tshark -r FILE -d iso14443.subdissector,iso7816
      (Wireshark: Analyze > Decode As, "ISO14443 payload subdissector" = ISO 7816)
    """
    from sim.pcap import export_capture
    from terminal.tracefile import read_trace

    loaded = read_trace(trace_path)
    count = export_capture(loaded, pcap_path, links or None)
    kind = "pcapng" if pcap_path.suffix.lower() == ".pcapng" else "pcap"
    if as_json:
        from sim.render import to_json

        click.echo(to_json({"pcap": pcap_path, "format": kind, "packets": count, "link_type": 264,
                            "tshark": f"tshark -r {pcap_path} -d iso14443.subdissector,iso7816"}))
        return
    click.echo(f"wrote {count} packets to {pcap_path} ({kind}, LINKTYPE_ISO_14443); "
               f"decode the APDUs with: tshark -r {pcap_path} -d iso14443.subdissector,iso7816")
