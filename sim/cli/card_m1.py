"""``ykt card`` for legacy M1 cards: issue one, decode its image sector by sector, and move it to and from the
``.mfd`` dumps nfc-mfclassic and Proxmark read and write (``docs/m1-purse-layout.md``, ``docs/card-fixture-format.md``).
"""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path
from typing import Any

import click

from ..render import report_lines, to_plain
from .card import card

_SIZES = {"1k": 1024, "4k": 4096}
_BLOCK_NAMES = {
    0: "manufacturer", 1: "sector directory", 2: "reserved", 4: "issuance", 5: "validity", 6: "issuer reserved",
    8: "last load", 9: "purse", 10: "purse backup", 24: "public info", 25: "public info backup", 26: "last ride",
}  # the map of protocols.m1.layout
_SECTOR_PURPOSES = {0: "directory", 1: "issuance", 2: "purse", 3: "trip records", 4: "trip records",
                    5: "trip records", 6: "public info"}
_RIGHT_WORDS = {0: "never", 1: "key A", 2: "key B", 3: "key A or B"}


def issue(*, balance: int, card_type: int, uid: str | None, size: str | None, seed: int | None,
          serial: str | None, keys: str | None) -> Any:
    """An M1 card from ``ykt card new --kind m1``'s options (already checked where the CPU path checks them)."""
    from protocols import bcd
    from protocols.errors import ProtocolError
    from protocols.hexutil import parse_hex
    from protocols.mifare import CardSize
    from sim.card.m1_issuing import DEFAULT_INDUSTRY, issue_m1_card
    from sim.issuing import IssueError, load_demo_keyset
    from terminal.config import Place
    from terminal.keyset import load_keyset

    chosen = (size or "1k").lower()
    if chosen not in _SIZES:
        raise IssueError(f"--size: {size!r} is not 1k or 4k")
    raw_uid = None
    if uid is not None:
        try:
            raw_uid = parse_hex(uid, what="--uid")
        except ProtocolError as exc:
            raise IssueError(str(exc)) from None
        if len(raw_uid) not in (4, 7):
            raise IssueError(f"--uid: a MIFARE Classic UID is 4 or 7 bytes, got {len(raw_uid)}")
    if serial is not None:
        try:
            number = bcd.from_digits(serial, 8, what="--serial")
        except ProtocolError as exc:
            raise IssueError(str(exc)) from None
        if len(serial) != 16:
            raise IssueError(f"--serial: an M1 card number is 16 digits (city, industry, issuer serial), "
                             f"got {len(serial)}")
        city, industry, issuer_serial = number[0:2], number[2:4], number[4:8]
    else:
        city, industry = Place().city_code, DEFAULT_INDUSTRY  # the default validator's city: accepted there
        issuer_serial = bcd.from_digits(f"{random.Random(seed).randrange(10**8):08d}", 4)
    keyset = load_demo_keyset() if keys is None else load_keyset(keys)
    if keyset.test_only:
        click.echo(f"note: {'the demo key set' if keys is None else keys} is test-only; this card is for simulation "
                   "only", err=True)
    try:
        return issue_m1_card(keyset, city=city, industry=industry, issuer_serial=issuer_serial, card_type=card_type,
                             balance=balance, uid=raw_uid, size=CardSize(_SIZES[chosen]))
    except ProtocolError as exc:
        raise IssueError(str(exc)) from None


# --- decoding an M1 image -------------------------------------------------------------------------------------------

_RIGHT_NAMES = {"decrement": "decrement/transfer/restore"}


def _rights(value: Any) -> dict[str, str]:
    return {_RIGHT_NAMES.get(item.name, item.name): _RIGHT_WORDS[int(getattr(value, item.name))]
            for item in dataclasses.fields(value)}


def _trailer(image: Any, sector: int) -> dict[str, Any]:
    from protocols.errors import ProtocolError
    from protocols.mifare import blocks_in_sector, first_block, trailer_block

    raw = image.block(trailer_block(sector, image.size))
    try:
        access = image.access(sector)
    except ProtocolError as exc:
        return {"error": str(exc)}
    first = first_block(sector, image.size)
    span = 1 if blocks_in_sector(sector, image.size) == 4 else 5
    data = {f"block {first + i}" if span == 1 else f"blocks {first + 5 * i}-{first + 5 * i + 4}":
            _rights(access.data_rights(i)) for i in range(3)}
    return {"access_bits": raw[6:9].hex().upper(), "gpb": f"{raw[9]:02X}", "data": data,
            "trailer": _rights(access.trailer_rights()), "keys": "held (not shown)"}


def _compact(trailer: dict[str, Any]) -> dict[str, Any]:
    """A trailer's rights one line per block, for people."""
    if "data" not in trailer:
        return trailer
    return {**trailer, "data": {name: _line(rights) for name, rights in trailer["data"].items()},
            "trailer": _line(trailer["trailer"])}


def _line(rights: dict[str, str]) -> str:
    return "; ".join(f"{name} {who}" for name, who in rights.items())


def _block(image: Any, number: int, newest_slot: int | None) -> dict[str, Any]:
    from protocols.card_files import CardType
    from protocols.card_files.codes import known
    from protocols.errors import ProtocolError
    from protocols.hexutil import to_hex
    from protocols.iso14443 import bcc
    from protocols.m1.layout import (
        BLACK_FLAG,
        ISSUANCE,
        LAST_RIDE,
        LAST_RIDE_BLOCK,
        LOAD_INFO,
        PUBLIC_BACKUP_BLOCK,
        PUBLIC_BLOCK,
        PURSE_BACKUP_BLOCK,
        PURSE_BLOCK,
        RECORD_BLOCKS,
        TRIP_RECORD,
        VALIDITY,
        EnableFlag,
        ProcessFlag,
        RecordType,
        parse_public_info,
    )
    from protocols.mifare import ValueBlock

    raw = image.block(number)
    out: dict[str, Any] = {"block": number, "name": _BLOCK_NAMES.get(number, "data"), "raw": to_hex(raw)}
    if number == 0:
        out["uid"] = to_hex(image.uid)
        if len(image.uid) == 4:
            out.update(bcc=f"{raw[4]:02X}", bcc_ok=raw[4] == bcc(image.uid), sak=f"{raw[5]:02X}",
                       atqa=to_hex(bytes((raw[7], raw[6]))), manufacturer_data=to_hex(raw[8:]))
    elif number == 1:
        out["application_ids"] = {f"sector {i}": f"{byte:02X}" for i, byte in enumerate(raw)}
    elif number == 4:
        fields = _decoded(ISSUANCE.parse, raw)
        if "error" not in fields:
            issuance = ISSUANCE.parse(raw)
            fields["card_number"] = to_hex(issuance.card_number)
            flag, kind = known(EnableFlag, issuance.enable_flag), known(CardType, issuance.card_type)
            fields["enable_flag_name"] = None if flag is None else flag.name.lower()
            fields["card_type_name"] = None if kind is None else kind.name.lower()
        out.update(fields)
    elif number == 5:
        out.update(_decoded(VALIDITY.parse, raw))
    elif number == 8:
        out.update(_decoded(LOAD_INFO.parse, raw))
    elif number == LAST_RIDE_BLOCK:
        out.update(_decoded(LAST_RIDE.parse, raw))
    elif number in (PURSE_BLOCK, PURSE_BACKUP_BLOCK):
        try:
            value = ValueBlock.parse(raw)
            out.update(balance=value.value, address=value.address)
        except ProtocolError as exc:
            out["error"] = f"not a value block: {exc}"
    elif number in RECORD_BLOCKS:
        slot = RECORD_BLOCKS.index(number)
        out.update(name=f"trip record, slot {slot}" + (" (newest)" if slot == newest_slot else ""))
        fields = _decoded(TRIP_RECORD.parse, raw)
        record_kind = known(RecordType, fields["kind"]) if "kind" in fields else None
        if record_kind is not None:
            fields["kind_name"] = record_kind.name.lower()
        out.update(fields)
    elif number in (PUBLIC_BLOCK, PUBLIC_BACKUP_BLOCK):
        try:
            info = parse_public_info(raw)
        except ProtocolError as exc:
            out.update(valid=False, error=str(exc))
        else:
            out.update(valid=True,
                       **{item.name: to_plain(getattr(info, item.name)) for item in dataclasses.fields(info)})
            out["check"] = f"{info.check:02X}"
            out["process_flag_name"] = ("debit under way" if ProcessFlag.in_progress(info.process_flag)
                                        else "no debit under way")
            out["blacklisted"] = info.black_flag == BLACK_FLAG
    return out


def view(image: Any) -> dict[str, Any]:
    """Everything an M1 image holds, sector by sector, every field named; and what the next tap would find."""
    from protocols.hexutil import to_hex
    from protocols.m1.debit import assess, public_in_force
    from protocols.m1.layout import (
        PUBLIC_BACKUP_BLOCK,
        PUBLIC_BLOCK,
        PURSE_BACKUP_BLOCK,
        PURSE_BLOCK,
        PURSE_SECTORS,
        RECORD_BLOCKS,
    )
    from protocols.mifare import first_block, is_trailer, trailer_block

    size = image.size
    main, backup = image.block(PUBLIC_BLOCK), image.block(PUBLIC_BACKUP_BLOCK)
    info = public_in_force(main, backup)
    newest = None if info is None else info.record_pointer
    record = image.block(RECORD_BLOCKS[newest or 0])
    found = assess(main, backup, image.block(PURSE_BLOCK), image.block(PURSE_BACKUP_BLOCK), record)
    sectors = []
    for sector in range(size.sectors):
        blocks = range(first_block(sector, size), trailer_block(sector, size))
        entry: dict[str, Any] = {"sector": sector, "purpose": _SECTOR_PURPOSES.get(sector, "not used by the purse")}
        if sector < PURSE_SECTORS:
            entry["blocks"] = [_block(image, number, newest) for number in blocks]
        else:
            entry["blocks"] = [{"block": number, "raw": to_hex(image.block(number))} for number in blocks
                               if not is_trailer(number, size)]
        entry["trailer"] = _trailer(image, sector)
        sectors.append(entry)
    return {
        "kind": "m1",
        "size": "4K" if size == 4096 else "1K",
        "uid": to_hex(image.uid), "atqa": to_hex(image.atqa), "sak": f"{image.sak:02X}",
        "card_number": to_hex(image.block(4)[:8]),
        "balance": found.balance,
        "state": found.outcome.value,
        "state_reason": found.reason or None,
        "counter": None if found.info is None else found.info.counter,
        "sectors": sectors,
        "description": image.description,
    }


def _decoded(parse: Any, raw: bytes) -> dict[str, Any]:
    """A block decoded with ``parse``, its fields as JSON carries them; bytes that do not decode are shown raw with the
    reason."""
    from protocols.errors import ProtocolError
    from protocols.hexutil import to_hex

    try:
        return dict(to_plain(parse(raw)))
    except ProtocolError as exc:
        return {"raw": to_hex(raw), "error": str(exc)}


def _print_tree(value: dict[str, Any], depth: int) -> None:
    for line in report_lines(value, depth):
        click.echo(line)


def print_view(file: str, data: dict[str, Any]) -> None:
    """The text form of :func:`view`: the summary, then the purse's sectors in full and the others in brief."""
    click.echo(f"{file}:")
    summary = {name: data[name] for name in ("kind", "size", "uid", "atqa", "sak", "card_number", "balance", "state",
                                             "state_reason", "counter", "description")}
    _print_tree(summary, 1)
    for entry in data["sectors"]:
        blocks = entry["blocks"]
        if entry["purpose"] == "not used by the purse" and not any(b["raw"].strip("0") for b in blocks):
            click.echo(f"  sector {entry['sector']}: not used by the purse (data blocks all zero)")
            continue
        click.echo(f"  sector {entry['sector']}: {entry['purpose']}")
        _print_tree({f"block {b['block']}": {k: v for k, v in b.items() if k != "block"} for b in blocks}, 2)
        _print_tree({"trailer": _compact(entry["trailer"])}, 2)


# --- .mfd dumps ----------------------------------------------------------------------------------------------------

@card.command("export")
@click.argument("fixture", metavar="FIXTURE")
@click.option("--mfd", "mfd", metavar="FILE", required=True,
              help="The dump to write: every block in order, the trailers holding the real keys (nfc-mfclassic and "
                   "Proxmark's .mfd layout).")
def export(fixture: str, mfd: str) -> None:
    """Write an M1 card fixture as a MIFARE Classic dump, e.g. for nfc-mfclassic's key file."""
    from sim.card.m1_card import M1Image
    from sim.card.m1_dump import export_mfd
    from sim.fixture import FixtureError, load_image, write_atomically

    image = load_image(Path(fixture))
    if not isinstance(image, M1Image):
        raise FixtureError(f"{fixture}: a T-Union CPU card fixture; only M1 cards have a MIFARE dump")
    write_atomically(mfd, export_mfd(image))
    click.echo(f"{mfd}: {image.size.blocks} blocks of card {image.uid.hex().upper()}")
