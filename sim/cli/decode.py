"""``ykt decode``: every field of a captured message by name, for people reading traces."""

from __future__ import annotations

from typing import Any, Callable

import click

from protocols import card_files as cf
from protocols import pn532
from protocols.apdu import CommandAPDU, ResponseAPDU
from protocols.card_commands import parse_card_command
from protocols.errors import ProtocolError
from protocols.fci import Fci
from protocols.hexutil import parse_hex
from protocols.psam_commands import parse_psam_command
from protocols.status import describe
from sim.cli import cli
from sim.render import text_lines, to_json, to_plain


def _header(apdu: CommandAPDU) -> dict[str, Any]:
    return {"cla": f"{apdu.cla:02X}", "ins": f"{apdu.ins:02X}", "p1": f"{apdu.p1:02X}", "p2": f"{apdu.p2:02X}",
            "case": apdu.case, "extended": apdu.extended}


def decode_command(raw: bytes) -> dict[str, Any]:
    """A command APDU: its ISO header, and the card or PSAM command it is with that command's fields."""
    apdu = CommandAPDU.parse(raw)
    fields: Any
    try:
        command: Any = parse_card_command(raw)
    except ProtocolError as card_error:
        try:
            command = parse_psam_command(raw)
        except ProtocolError:
            command = None
            fields = {"data": apdu.data, "le": apdu.le, "note": f"not a known card or PSAM command: {card_error}"}
    if command is not None:
        fields = command
    name = type(command).__name__ if command is not None else "unknown"
    return {"command": name, **_header(apdu), "fields": fields}


def decode_response(raw: bytes) -> dict[str, Any]:
    response = ResponseAPDU.parse(raw)
    return {"data": response.data, "sw": f"{response.sw:04X}", "meaning": describe(response.sw)}


def decode_fci(raw: bytes) -> dict[str, Any]:
    fci = Fci.parse(raw)
    out: dict[str, Any] = {"df_name": fci.df_name, "label": fci.label, "priority": fci.priority,
                           "version": fci.version, "preferred_name": fci.preferred_name}
    if fci.file15 is not None:
        out["file15"] = _file15(cf.PUBLIC_APP_INFO.parse(fci.file15))
    elif fci.discretionary_data is not None:
        out["discretionary_data"] = fci.discretionary_data
    if fci.directory:
        out["directory"] = list(fci.directory)
    return out


def _file15(info: cf.PublicAppInfo) -> dict[str, Any]:
    return {"issuer_id": info.issuer_id, "city_code": info.city_code, "app_type": info.app_type,
            "app_version": info.app_version, "serial": info.serial, "card_number": _or_none(lambda: info.card_number),
            "start_date": info.start_date, "expiry_date": info.expiry_date, "issuer_defined": info.issuer_defined}


def _or_none(get: Callable[[], Any]) -> Any:
    try:
        return get()
    except ProtocolError:
        return None


def _with_names(record: Any, **names: Any) -> dict[str, Any]:
    """A record's fields, with the names of its codes added after the fields they name."""
    plain = to_plain(record)
    out: dict[str, Any] = {}
    for key, value in plain.items():
        out[key] = value
        if key in names:
            known = names[key]
            out[f"{key}_name"] = known.name.lower() if known is not None else None
    return out


def _file17(raw: bytes) -> dict[str, Any]:
    info = cf.MANAGEMENT_INFO.parse(raw)
    return _with_names(info, card_type=info.known_card_type)


def _file18(raw: bytes) -> dict[str, Any]:
    record = cf.TRANSACTION_LOG_RECORD.parse(raw)
    return _with_names(record, transaction_type=record.known_transaction_type)


def _file1e(raw: bytes) -> dict[str, Any]:
    record = cf.TRANSIT_RECORD.parse(raw)
    return _with_names(record, record_type=record.known_record_type)


def _file16(raw: bytes) -> dict[str, Any]:
    info = cf.CARDHOLDER_INFO.parse(raw)
    return {"raw": info.raw, "holder (best effort)": info.holder}


def _file1a(raw: bytes) -> dict[str, Any]:
    record = cf.parse_process_record(raw)
    return {"variant": type(record).__name__, **_with_names(record)}


def decode_pn532(raw: bytes) -> dict[str, Any]:
    """A PN532 frame: ACK, NACK, error frame, or an information frame with its command or response decoded."""
    for control in pn532.ControlFrame:
        if raw == control.value:
            return {"frame": control.name}
    frame = pn532.parse_frame(raw)
    out: dict[str, Any] = {"frame": "information", "direction": "host to chip" if frame.tfi == pn532.TFI_HOST
                           else "chip to host", "extended": frame.extended, "code": f"{frame.code:02X}",
                           "name": pn532.name_of(frame.code)}
    if frame.tfi == pn532.TFI_HOST:
        out["fields"] = pn532.parse_command(frame.data)
        return out
    command = next((c for c in pn532.COMMANDS if c.CODE == frame.code - 1), None)
    if command is not None and command.RESPONSE is not None:
        out["fields"] = command.RESPONSE.parse(frame.data)
    else:
        out["fields"] = {"data": frame.data[1:]}
    return out


DECODERS: dict[str, Callable[[bytes], Any]] = {
    "apdu": decode_command,
    "response": decode_response,
    "fci": decode_fci,
    "file:15": lambda raw: _file15(cf.PUBLIC_APP_INFO.parse(raw)),
    "file:16": _file16,
    "file:17": _file17,
    "file:18": _file18,
    "file:1a": _file1a,
    "file:1e": _file1e,
    "pn532": decode_pn532,
}


@cli.command()
@click.argument("what", type=click.Choice(sorted(DECODERS), case_sensitive=False), metavar="WHAT")
@click.argument("hexdata", nargs=-1, required=True, metavar="HEX...")
@click.option("--json", "as_json", is_flag=True, help="One JSON object: amounts as numbers, bytes as hex, dates ISO 8601.")
def decode(what: str, hexdata: tuple[str, ...], as_json: bool) -> None:
    """Decode HEX as WHAT and print every field by name.

    \b
    WHAT is one of:
      apdu       a command APDU (card or PSAM command, named)
      response   a response APDU (data and status word with its meaning)
      fci        the FCI answered to SELECT (T-Union EP or PPSE)
      file:15 file:16 file:17 file:18 file:1a file:1e   a card file or record
      pn532      a PN532 host or chip frame (ACK, NACK, error or information)

    \b
    Examples:
      ykt decode apdu 805003020B0100000064200041599997 0F
      ykt decode response 000027100036000000010011223344 9000 --json
    """
    raw = parse_hex("".join(hexdata), what=what)
    try:
        decoded = DECODERS[what.lower()](raw)
    except ProtocolError as exc:
        raise ProtocolError(f"not a valid {what}: {exc}") from None
    if as_json:
        click.echo(to_json(decoded))
    else:
        for line in text_lines(decoded):
            click.echo(line)
