"""Decoding what cards and PSAMs said, as captured, for people and programs: one place for ``ykt decode``, ``ykt trace
show``, ``ykt read`` and ``ykt card show``.

Everything is decoded as far as its bytes go and never further: a read shorter or longer than its file's usual size
is decoded field by field with a warning naming the fields that are missing, the field the data ends inside and the
bytes left over; a field whose bytes do not decode is shown raw with the reason; a code the tables do not know is
shown raw and flagged; the layout of file 0x15 follows the card's scheme (:mod:`protocols.schemes`), and a scheme
without a public layout is named and shown raw. Warnings go in a ``warnings`` list in the result.

The results are plain trees (dicts, lists, values) for :func:`sim.render.to_plain` and :func:`sim.render.text_lines`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from enum import IntEnum
from typing import Any

from protocols import card_commands as cc
from protocols import card_files as cf
from protocols.apdu import CommandAPDU, ResponseAPDU, ends_with_data_sw
from protocols.card_commands import CardCommand, parse_card_command
from protocols.errors import ProtocolError
from protocols.fci import PPSE_NAME, Fci
from protocols.layout import Layout
from protocols.pcsc_mifare import StorageCommand, parse_storage_command
from protocols.psam_commands import (
    SFI_KEY_INDEX,
    SFI_TERMINAL_NUMBER,
    PsamCommand,
    parse_psam_command,
)
from protocols.schemes import COMPANION, MOHURD, T_UNION, Scheme, scheme_of
from protocols.status import describe, is_known
from protocols.text import card_text
from terminal.jsondoc import activation_to_json
from terminal.readout import CardReading

TOP_BIT = 0x80000000
Command = CardCommand | PsamCommand
"""A command object a card or a PSAM is sent: what tells what its answer's data holds."""
UNNAMED = Scheme("unnamed", "an application no public source names", COMPANION)
"""The scheme of an application whose DF name no table knows: its files are shown raw, never in T-Union's layout."""

# Values worked out from fields, shown after the field they come from: the model's own properties, read from the
# fields that are there (a read cut short has no model instance).
_DERIVED: dict[type, dict[str, tuple[str, ...]]] = {
    cf.PublicAppInfo: {"issuer_id": ("city_code",), "serial": ("card_number",)},
    cf.CityAppInfo: {"issuer_code": ("city_code",)},
    cf.ShenzhenTongInfo: {"card_serial": ("card_number", "printed_number")},
}
_FILE_NAMES = {
    cf.SFI_PUBLIC_APP_INFO: "file 0x15 (public application info)",
    cf.SFI_CARDHOLDER: "file 0x16 (cardholder)",
    cf.SFI_MANAGEMENT: "file 0x17 (management info)",
    cf.SFI_TRANSACTION_LOG: "file 0x18 record (transaction log)",
    cf.SFI_PROCESS: "file 0x1A record (process record)",
    cf.SFI_TRANSIT_LOG: "file 0x1E record (transit record)",
}
_T_UNION_ONLY: dict[int, Layout[Any]] = {cf.SFI_MANAGEMENT: cf.MANAGEMENT_INFO, cf.SFI_TRANSIT_LOG: cf.TRANSIT_RECORD}
_PLACE = slice(10, 17)  # bytes 10..16 of a 0x1E record: line, station and operator as some schemes split them
_CHONGQING = ("city 4000 (Chongqing): nfsee reads these cards' dates at bytes 4..11 and their number from file 0x05 "
              "of the MF; the fields above are the MOHURD layout's reading, which does not fit them")


def code_name(enum: type[IntEnum], value: int) -> str | None:
    """Every name the table gives ``value`` (``entry/board``), or ``None`` for a code it does not know."""
    names = [name.lower() for name, member in enum.__members__.items() if member.value == value]
    return "/".join(names) or None


def _field_names(layout: Layout) -> list[str]:
    return [item.name for item in dataclasses.fields(layout.model)]


def layout_fields(layout: Layout, data: bytes, what: str) -> dict[str, Any]:
    """``data`` decoded by ``layout`` as far as it goes: the fields in order, each code's name after it, values
    worked out from fields, and ``warnings`` for everything that is not a whole, clean message."""
    partial = layout.parse_partial(data)
    codes: dict[str, type[IntEnum]] = getattr(layout.model, "CODES", {})
    derived = _DERIVED.get(layout.model, {})
    out: dict[str, Any] = {}
    warnings: list[str] = []
    if partial.cut or partial.missing:
        absent = ([partial.cut[0]] if partial.cut else []) + list(partial.missing)
        warnings.append(f"{what}: {len(data)} of its {layout.size} bytes; not in the data: {', '.join(absent)}")
    for name in _field_names(layout):
        if name in partial.values:
            value = partial.values[name]
            out[name] = value
            if name in codes:
                out[f"{name}_name"] = code_name(codes[name], value)
                if out[f"{name}_name"] is None:
                    warnings.append(f"{name} {value:02X}: not a known code (shown raw)")
            if name == "balance" and value & TOP_BIT:
                out["balance_without_top_bit"] = value & ~TOP_BIT
                warnings.append(f"balance {value:08X} has its top bit set: some schemes use it as a flag and their "
                                f"readers show the other 31 bits, {value & ~TOP_BIT} fen")
            for prop in derived.get(name, ()):
                out[prop] = _derive(layout.model, prop, partial.values, warnings)
        elif name in partial.invalid:
            raw, reason = partial.invalid[name]
            out[name] = raw
            warnings.append(f"{name}: {raw.hex().upper()} does not decode ({reason}); shown raw")
        elif partial.cut is not None and partial.cut[0] == name:
            out[name] = partial.cut[1]
            warnings.append(f"{name}: the data ends inside it; its {len(partial.cut[1])} bytes shown raw")
    for label, (raw, reason) in partial.invalid.items():
        if label not in out:
            warnings.append(f"{label}: {raw.hex().upper()} ({reason})")
    if partial.extra:
        out["extra"] = partial.extra
        extra = len(partial.extra)
        warnings.append(f"{what}: {extra} byte{'' if extra == 1 else 's'} beyond its {layout.size}, shown raw as "
                        f"extra")
    if warnings:
        out["warnings"] = warnings
    return out


def _derive(model: type, prop: str, values: dict[str, Any], warnings: list[str]) -> object:
    partial: object = object.__new__(model)  # the fields that are there; reading one that is not raises AttributeError
    for name, value in values.items():
        setattr(partial, name, value)
    try:
        return getattr(partial, prop)
    except AttributeError:
        return None  # a field it needs is not in the data
    except ProtocolError as exc:
        warnings.append(f"{prop}: {exc}")
        return None


def raw_fields(data: bytes, warning: str) -> dict[str, Any]:
    """Bytes no public layout describes: shown raw, with why."""
    return {"raw": data, "warnings": [warning]}


def _text_field(out: dict[str, Any], name: str, raw: bytes | None, warnings: list[str]) -> None:
    if raw is None:
        out[name] = None
        return
    text = card_text(raw)
    out[name] = raw if text is None else text
    if text is None:
        warnings.append(f"{name}: {raw.hex().upper()} is not text (shown as hex)")


def _name(aid: bytes) -> dict[str, Any]:
    """A DF name as hex, with its text when it is printable ASCII (PAY.SZT, 2PAY.SYS.DDF01)."""
    out: dict[str, Any] = {"df_name": aid}
    if aid.isascii() and aid.decode("ascii").isprintable():
        out["df_name_text"] = aid.decode("ascii")
    scheme = scheme_of(aid)
    out["scheme"] = None if scheme is None else scheme.name
    return out


def decode_fci(data: bytes) -> dict[str, Any]:
    """The FCI a SELECT answered: the application and its scheme, text fields as text, 9F0C decoded with the
    scheme's 0x15 layout (raw, with the scheme named, when none is public), the directory of a PPSE."""
    fci = Fci.parse(data)
    warnings: list[str] = []
    out = _name(fci.df_name)
    scheme = scheme_of(fci.df_name)
    if scheme is None:
        warnings.append(f"DF name {fci.df_name.hex().upper()}: no public source names this application; nothing in "
                        f"its FCI is decoded with another scheme's layout")
    _text_field(out, "label", fci.label, warnings)
    out["priority"] = fci.priority
    out["version"] = fci.version
    _text_field(out, "preferred_name", fci.preferred_name, warnings)
    issuer_data = fci.discretionary_data
    if issuer_data is not None:
        if scheme is not None and scheme.file15 is not None:
            out["file15"] = file15_fields(issuer_data, scheme, "9F0C (file 0x15)")
        else:
            out["discretionary_data"] = issuer_data
            if scheme is not None:
                warnings.append(f"9F0C: no public layout for {scheme.name}; shown raw")
    entries = []
    for entry in fci.directory:
        shown = {"aid": entry.aid, **{k: v for k, v in _name(entry.aid).items() if k != "df_name"}}
        _text_field(shown, "label", entry.label, warnings)
        shown["priority"] = entry.priority
        entries.append(shown)
    if entries:
        out["directory"] = entries
    if warnings:
        out["warnings"] = warnings
    return out


def file15_fields(data: bytes, scheme: Scheme, what: str = "file 0x15") -> dict[str, Any]:
    """File 0x15 (or the FCI's 9F0C) in ``scheme``'s layout; raw with the scheme named when it has none."""
    if scheme.file15 is None:
        return raw_fields(data, f"{what}: no public layout for {scheme.name}; shown raw")
    out = layout_fields(scheme.file15, data, what)
    if scheme is MOHURD and data[2:4] == cf.CHONGQING:
        out.setdefault("warnings", []).append(_CHONGQING)
    return out


def decode_file(sfi: int, data: bytes, scheme: Scheme | None = None) -> dict[str, Any]:
    """A file read (READ BINARY) or record (READ RECORD, UPDATE CAPP DATA CACHE) of the purse application by SFI.

    ``scheme`` is the application's (``None``: T-Union's layouts). 0x18 is the PBOC log every scheme keeps; 0x16's
    layout is a best effort; 0x17, 0x1A and 0x1E are T-Union's and shown raw for other schemes.
    """
    what = _FILE_NAMES.get(sfi, f"file 0x{sfi:02X}")
    scheme = scheme or T_UNION
    if sfi == cf.SFI_PUBLIC_APP_INFO:
        return file15_fields(data, scheme)
    if sfi == cf.SFI_CARDHOLDER:
        return cardholder_fields(data)
    if sfi == cf.SFI_TRANSACTION_LOG:
        return layout_fields(cf.TRANSACTION_LOG_RECORD, data, what)
    if sfi in _T_UNION_ONLY or sfi == cf.SFI_PROCESS:
        if scheme is not T_UNION:
            return raw_fields(data, f"{what}: no public layout for {scheme.name}; shown raw")
        if sfi == cf.SFI_PROCESS:
            return process_record_fields(data)
        out = layout_fields(_T_UNION_ONLY[sfi], data, what)
        if sfi == cf.SFI_TRANSIT_LOG and len(data) >= _PLACE.stop:
            out = _insert_after(out, "reserved", "place", data[_PLACE])
        return out
    return raw_fields(data, f"{what}: no file of the purse application has this SFI; shown raw")


def _insert_after(fields: dict[str, Any], after: str, name: str, value: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, item in fields.items():
        out[key] = item
        if key == after:
            out[name] = value
    if name not in out:
        out[name] = value
    return out


def cardholder_fields(data: bytes) -> dict[str, Any]:
    """File 0x16: raw, and the PBOC convention's reading of it as a best effort (its layout is unconfirmed)."""
    if len(data) != cf.CARDHOLDER_SIZE:
        return raw_fields(data, f"file 0x16: {len(data)} bytes, not its {cf.CARDHOLDER_SIZE}; its layout is "
                                f"unconfirmed, so it is shown raw")
    holder = cf.CARDHOLDER_INFO.parse(data).holder
    return {"raw": data, "holder (best effort)": holder}


def process_record_fields(data: bytes) -> dict[str, Any]:
    """A 0x1A record in the view its id byte selects (bus record id 02, else header and raw body)."""
    layout: Layout[Any] = cf.BUS_PROCESS_RECORD if len(data) > 1 and data[1] in cf.BUS_RECORD_IDS \
        else cf.RAW_PROCESS_RECORD
    return {"variant": layout.model.__name__, **layout_fields(layout, data, _FILE_NAMES[cf.SFI_PROCESS])}


def decode_command(raw: bytes) -> dict[str, Any]:
    """A command APDU: its ISO header, and the card or PSAM command it is with that command's fields (an M1 card's
    storage-card pseudo-APDU, class FF, too: ``protocols.pcsc_mifare``)."""
    apdu = CommandAPDU.parse(raw)
    header = {"cla": f"{apdu.cla:02X}", "ins": f"{apdu.ins:02X}", "p1": f"{apdu.p1:02X}", "p2": f"{apdu.p2:02X}",
              "case": apdu.case, "extended": apdu.extended}
    try:
        command: Command | StorageCommand = parse_storage_command(raw) if apdu.cla == 0xFF else parse_card_command(raw)
    except ProtocolError as card_error:
        try:
            command = parse_psam_command(raw)
        except ProtocolError:
            return {"command": "unknown", **header, "fields": {
                "data": apdu.data, "le": apdu.le, "note": f"not a known card or PSAM command: {card_error}"}}
    return {"command": type(command).__name__, **header, "fields": command}


def parse_command(raw: bytes, role: str = "card") -> Command | None:
    """The command object of a card (or PSAM) command, ``None`` when it is not one."""
    try:
        return parse_psam_command(raw) if role == "sam" else parse_card_command(raw)
    except ProtocolError:
        return None


def _answer_decoder(command: Command | None, role: str,
                    scheme: Scheme | None) -> Callable[[bytes], dict[str, Any]] | None:
    if role == "sam":
        if isinstance(command, cc.ReadBinary) and command.sfi == SFI_TERMINAL_NUMBER:
            return lambda data: {"terminal_number": data}
        if isinstance(command, cc.ReadBinary) and command.sfi == SFI_KEY_INDEX and command.offset == 0:
            return lambda data: {"key_index": data[0]} if len(data) == 1 else raw_fields(data, "key index: one byte")
    elif isinstance(command, (cc.SelectByName, cc.SelectByFid)):
        return decode_fci
    elif isinstance(command, cc.ReadBinary):
        if command.offset:
            return lambda data: raw_fields(data, f"read from offset {command.offset}: shown raw")
        return lambda data: decode_file(command.sfi, data, scheme)
    elif isinstance(command, cc.ReadRecord):
        return lambda data: decode_file(command.sfi, data, scheme)
    layout = type(command).RESPONSE if command is not None else None
    if layout is None:
        return None
    return lambda data: layout_fields(layout, data, f"{type(command).__name__} answer")


def decode_answer(command: Command | bytes | None, data: bytes, *, role: str = "card",
                  scheme: Scheme | None = None) -> dict[str, Any] | None:
    """The data of an answer decoded by the command it answers (a command object, or raw bytes); ``None`` when the
    command does not tell what the data holds. Bytes that do not decode are a note, never an exception."""
    if isinstance(command, (bytes, bytearray)):
        command = parse_command(bytes(command), role)
    decoder = _answer_decoder(command, role, scheme)
    if decoder is None:
        return None
    try:
        return decoder(data)
    except ProtocolError as exc:
        return raw_fields(data, f"does not decode: {exc}")


def decode_response(raw: bytes, command: Command | bytes | None = None, *, role: str = "card",
                    scheme: Scheme | None = None) -> dict[str, Any]:
    """A response APDU: data and status word (named, or flagged when no table names it), and the data decoded by
    ``command`` (an APDU or command object) when given, else when the data is an FCI (a SELECT answer tells itself)."""
    response = ResponseAPDU.parse(raw)
    out: dict[str, Any] = {"data": response.data, "sw": f"{response.sw:04X}", "meaning": describe(response.sw, role)}
    if not is_known(response.sw, role):
        flag = f"status word {response.sw:04X}: not in the status-word table (only its ISO 7816-4 class is known)"
        out["warnings"] = [flag]
    data = response.data
    if not data or not ends_with_data_sw(raw):
        return out
    if command is not None:
        decoded = decode_answer(command, data, role=role, scheme=scheme)
    elif data[0] == 0x6F:
        try:
            decoded = decode_fci(data)
        except ProtocolError as exc:
            decoded = raw_fields(data, f"starts like an FCI (6F) but is not one: {exc}")
    else:
        decoded = None
    if decoded is not None:
        out["decoded"] = decoded
    return out


def reading_view(reading: CardReading) -> dict[str, Any]:
    """What :func:`terminal.readout.interpret` made of a capture, every file and record decoded by the card's scheme.

    Records are listed by their number on the card (1 = newest for 0x18 and 0x1E); ``notes`` say what was left out.
    """
    scheme = reading.scheme
    activation = reading.activation
    view: dict[str, Any] = {
        "activation": None if activation is None else activation_to_json(activation),
        "application": None if reading.aid is None else reading.aid,
        "scheme": None if scheme is None else scheme.name,
        "blocked": reading.blocked,
        "ppse": None if reading.ppse is None else decode_answer(cc.SelectByName(PPSE_NAME), reading.ppse),
        "fci": None if reading.fci is None else decode_answer(cc.SelectByName(T_UNION.aids[0]), reading.fci),
        "files": {f"{sfi:02X}": decode_file(sfi, data, scheme) for sfi, data in sorted(reading.files.items())},
        "balance": reading.balance,
        "passbook_balance": reading.passbook_balance,
    }
    if reading.balance is not None and reading.balance & TOP_BIT:
        view["balance_without_top_bit"] = reading.balance & ~TOP_BIT
    purchase, load = reading.purchase_init, reading.load_init
    init = purchase or load
    view["counters"] = {
        "offline_atc": None if purchase is None else purchase.offline_atc,
        "online_atc": None if load is None else load.online_atc,
        "overdraft_limit": None if purchase is None else purchase.overdraft_limit,
        "key_version": None if init is None else init.key_version,
        "algorithm_id": None if init is None else init.algorithm_id,
    }
    view["records"] = {f"{sfi:02X}": {str(number): decode_file(sfi, record, scheme)
                                      for number, record in sorted(records.items())}
                       for sfi, records in sorted(reading.records.items())}
    view["notes"] = reading.notes
    return view
