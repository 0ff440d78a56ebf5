"""``ykt decode``: every field of a captured message by name, for people reading traces."""

from __future__ import annotations

from typing import Any

import click

from protocols import card_commands as cc
from protocols import card_files as cf
from protocols import pn532
from protocols.apdu import split_status_word
from protocols.errors import ProtocolError
from protocols.hexutil import parse_hex
from protocols.layout import Layout
from protocols.schemes import BY_KEY, SCHEMES, Scheme
from protocols.status import describe
from sim.cli import cli
from sim.decoding import (
    decode_command,
    decode_fci,
    decode_file,
    decode_response,
    layout_fields,
)
from sim.render import text_lines, to_json


def decode_pn532(raw: bytes) -> dict[str, Any]:
    """A PN532 frame: ACK, NACK, error frame, or an information frame with its command or response decoded."""
    frame = pn532.parse_frame(raw)
    if isinstance(frame, pn532.ControlFrame):
        return {"frame": frame.name}
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


_ANSWERS: dict[str, tuple[Layout[Any], str]] = {
    "balance": (cc.BALANCE_RESPONSE, "GET BALANCE answer"),
    "init-purchase": (cc.PURCHASE_INIT_RESPONSE, "INITIALIZE FOR (CAPP) PURCHASE answer"),
    "init-load": (cc.LOAD_INIT_RESPONSE, "INITIALIZE FOR LOAD answer"),
    "debit": (cc.DEBIT_RESPONSE, "DEBIT answer"),
    "prove": (cc.PROVE_RESPONSE, "GET TRANSACTION PROVE answer"),
}
_FILES = {f"file:{sfi:02x}": sfi for sfi in (cf.SFI_PUBLIC_APP_INFO, cf.SFI_CARDHOLDER, cf.SFI_MANAGEMENT,
                                           cf.SFI_TRANSACTION_LOG, cf.SFI_PROCESS, cf.SFI_TRANSIT_LOG)}
_USUAL_SIZE = {cf.SFI_PUBLIC_APP_INFO: cf.PUBLIC_APP_INFO_SIZE, cf.SFI_CARDHOLDER: cf.CARDHOLDER_SIZE,
               cf.SFI_MANAGEMENT: cf.MANAGEMENT_SIZE, cf.SFI_TRANSACTION_LOG: cf.TRANSACTION_LOG_RECORD_SIZE,
               cf.SFI_PROCESS: cf.PROCESS_RECORD_SIZE, cf.SFI_TRANSIT_LOG: cf.TRANSIT_RECORD_SIZE}
KINDS = ("apdu", "response", "fci", *_FILES, *_ANSWERS, "pn532")


def _captured(what: str, raw: bytes, scheme: Scheme | None, keep_sw: bool) -> dict[str, Any]:
    """Response data as captured, with or without its status word: the word taken off (and shown first) unless
    ``keep_sw``, the data decoded as ``what``."""
    size = None
    if what in _FILES:
        sfi = _FILES[what]
        size = scheme.file15.size if sfi == cf.SFI_PUBLIC_APP_INFO and scheme and scheme.file15 else _USUAL_SIZE[sfi]
    elif what in _ANSWERS:
        size = _ANSWERS[what][0].size
    data, sw = (raw, None) if keep_sw else split_status_word(raw, size)
    out: dict[str, Any] = {} if sw is None else {"sw": f"{sw:04X}", "meaning": describe(sw)}
    if what == "fci":
        decoded = decode_fci(data)
    elif what in _FILES:
        decoded = decode_file(_FILES[what], data, scheme)
    else:
        layout, name = _ANSWERS[what]
        decoded = layout_fields(layout, data, name)
    return {**out, **decoded}


@cli.command()
@click.argument("what", type=click.Choice(KINDS, case_sensitive=False), metavar="WHAT")
@click.argument("hexdata", nargs=-1, required=True, metavar="HEX...")
@click.option("--command", "command_hex", metavar="APDU",
              help="With 'response': the command it answers, which tells what the data holds.")
@click.option("--scheme", type=click.Choice([s.key for s in SCHEMES], case_sensitive=False), metavar="SCHEME",
              help="The card's scheme, for file:15 and the files read after SELECT (default: T-Union); "
                   f"one of {', '.join(s.key for s in SCHEMES)}.")
@click.option("--no-sw", "keep_sw", is_flag=True,
              help="The data has no status word at its end: decode every byte (by default a trailing 9000, 62xx "
                   "or 63xx is taken off and shown).")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object: amounts as numbers, bytes as hex, dates ISO 8601.")
def decode(what: str, hexdata: tuple[str, ...], command_hex: str | None, scheme: str | None, keep_sw: bool,
           as_json: bool) -> None:
    """Decode HEX as WHAT and print every field by name.

    Data is taken as captured: with or without its status word, and of any length. A read
    shorter or longer than the file's usual size is decoded as far as its bytes go, with a
    warning naming what is missing or extra; a code no table knows is shown raw and flagged;
    text fields are shown as text. The FCI names the card's scheme (T-Union, MOHURD city
    cards, Shenzhen Tong, ...) and decodes its 9F0C with that scheme's layout, or shows it
    raw when the layout is not public.

    \b
    WHAT is one of:
      apdu           a command APDU (card or PSAM command, named)
      response       a response APDU: data and status word; the data decoded
                     by --command, or as an FCI when it is one
      fci            the FCI answered to SELECT (any scheme, PPSE directories)
      file:15 file:16 file:17 file:18 file:1a file:1e
                     a card file or record (answer to READ BINARY / RECORD)
      balance init-purchase init-load debit prove
                     the answer to GET BALANCE, INITIALIZE FOR (CAPP)
                     PURCHASE, INITIALIZE FOR LOAD, DEBIT, GET TRANSACTION PROVE
      pn532          a PN532 host or chip frame (ACK, NACK, error or information)

    \b
    Examples:
      ykt decode apdu 805003020B0100000064200041599997 0F
      ykt decode response 00000AC3 9000 --command 805C000204
      ykt decode file:17 0000015610001000000101 9000
      ykt decode fci 6F0A84085041592E415050599000
    """
    what = what.lower()
    raw = parse_hex("".join(hexdata), what=what)
    if command_hex is not None and what != "response":
        raise click.UsageError("--command goes with 'response' only")
    chosen = None if scheme is None else BY_KEY[scheme.lower()]
    try:
        if what == "apdu":
            decoded = decode_command(raw)
        elif what == "pn532":
            decoded = decode_pn532(raw)
        elif what == "response":
            command = None if command_hex is None else parse_hex(command_hex, what="--command")
            decoded = decode_response(raw, command, scheme=chosen)
        else:
            decoded = _captured(what, raw, chosen, keep_sw)
    except ProtocolError as exc:
        raise ProtocolError(f"not a valid {what}: {exc}") from None
    if as_json:
        click.echo(to_json(decoded))
    else:
        for line in text_lines(decoded):
            click.echo(line)
