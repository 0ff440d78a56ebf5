"""``ykt card``: issue a simulated card as a fixture file, and show what a fixture holds, every file decoded."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
from pathlib import Path
from typing import Any

import click

from . import cli

_CARD_TYPES = ("normal", "student", "elderly", "test", "military")


def _fail(option: str, reason: str) -> Exception:
    from sim.issuing import IssueError

    return IssueError(f"{option}: {reason}")


def _whole_number(text: str | None, option: str, low: int, high: int) -> int | None:
    if text is None:
        return None
    try:
        value = int(text, 10)
    except ValueError:
        raise _fail(option, f"{text!r} is not a whole number") from None
    if not low <= value <= high:
        raise _fail(option, f"must be {low} to {high}, got {value}")
    return value


@cli.group()
def card() -> None:
    """Simulated T-Union cards as fixture files (JSON card images, docs/card-fixture-format.md)."""


@card.command("new")
@click.option("--kind", type=click.Choice(("cpu", "m1"), case_sensitive=False), default="cpu", show_default=True,
              help="A T-Union CPU card, or a legacy MIFARE Classic (M1) city card (docs/m1-purse-layout.md).")
@click.option("--balance", metavar="FEN", help="Purse balance in fen (1 CNY = 100 fen). Default 5000.")
@click.option("--type", "card_type", metavar="TYPE", help=f"Card type: {', '.join(_CARD_TYPES)}. Default normal.")
@click.option("--seed", metavar="N", help="Seed for the serial when --serial is not given (same seed, same card).")
@click.option("--keys", metavar="KEYSET", help="Issuer key set (JSON). Default: the test-only demo key set.")
@click.option("--serial", metavar="DIGITS", help="Application serial: 20 digits, or the 19 printed on the card. "
                                                 "M1: the 16-digit card number (city, industry, issuer serial).")
@click.option("--issuer", metavar="HEX", help="Issuer ID, 8 bytes. Default 02403640FFFFFFFF. CPU cards only.")
@click.option("--uid", metavar="HEX", help="M1 only: the UID, 4 or 7 bytes. Default: 4 bytes fixed by the number.")
@click.option("--size", metavar="1k|4k", help="M1 only: a MIFARE Classic 1K (default) or 4K.")
@click.option("--description", metavar="TEXT", default="", help="Free text stored in the fixture.")
@click.option("--out", metavar="FILE", help="The fixture file to write (replaced atomically). Required.")
def new(kind: str, balance: str | None, card_type: str | None, seed: str | None, keys: str | None,
        serial: str | None, issuer: str | None, uid: str | None, size: str | None, description: str,
        out: str | None) -> None:
    """Issue a card from a key set (card keys diversified as the PSAM does, M1 sector keys by the key set's rule) and
    write it as a fixture."""
    import random

    from protocols import bcd
    from protocols.card_files import CardType
    from protocols.errors import ProtocolError
    from protocols.hexutil import parse_hex, to_hex
    from sim.card import MAX_BALANCE
    from sim.fixture import save_fixture
    from sim.issuing import LOCAL_ISSUER, issue_card, load_demo_keyset
    from terminal.keyset import load_keyset

    if not out:
        raise _fail("--out", "the fixture file to write is required")
    type_name = (card_type or "normal").lower()
    if type_name not in _CARD_TYPES:
        raise _fail("--type", f"{card_type!r} is not one of {', '.join(_CARD_TYPES)}")
    number = _whole_number(seed, "--seed", 0, 2**64 - 1)
    if kind.lower() == "m1":
        from protocols.m1.layout import MAX_BALANCE as M1_MAX_BALANCE

        from .card_m1 import issue

        if issuer is not None:
            raise _fail("--issuer", "an M1 card has no issuer ID; --serial sets its card number")
        m1_fen = _whole_number(balance, "--balance", 0, M1_MAX_BALANCE)
        m1 = issue(balance=5000 if m1_fen is None else m1_fen, card_type=CardType[type_name.upper()].value, uid=uid,
                   size=size, seed=number, serial=serial, keys=keys)
        m1.image.description = description
        save_fixture(m1, out)
        click.echo(f"{out}: M1 card {to_hex(m1.serial)} (UID {to_hex(m1.image.uid)}), {type_name}, "
                   f"balance {_money(m1.balance or 0)}")
        return
    if uid is not None or size is not None:
        raise _fail("--uid" if uid is not None else "--size", "for M1 cards only (--kind m1)")
    fen = _whole_number(balance, "--balance", 0, MAX_BALANCE)
    try:
        issuer_id = LOCAL_ISSUER if issuer is None else parse_hex(issuer, what="--issuer")
    except ProtocolError as exc:
        raise _fail("--issuer", str(exc).removeprefix("--issuer: ")) from None
    if len(issuer_id) != 8:
        raise _fail("--issuer", f"8 bytes (16 hex digits), got {len(issuer_id)}")
    if serial is None:
        rng = random.Random(number)
        city = "".join(ch if ch.isdigit() else "0" for ch in issuer_id[2:4].hex())
        serial = "0310" + city + f"{rng.randrange(10**12):012d}"
    keyset = load_demo_keyset() if keys is None else load_keyset(keys)
    if keyset.test_only:
        click.echo(f"note: {'the demo key set' if keys is None else keys} is test-only; this card is for simulation "
                   "only", err=True)
    issued = issue_card(keyset, issuer_id=issuer_id, serial=serial, balance=5000 if fen is None else fen,
                        card_type=CardType[type_name.upper()].value)
    issued.image.description = description
    save_fixture(issued, out)
    click.echo(f"{out}: card {bcd.digits(issued.serial)[1:]} of issuer {to_hex(issued.issuer_id)}, {type_name}, "
               f"balance {_money(issued.balance)}")


@card.command("show")
@click.argument("file", metavar="FILE")
@click.option("--json", "as_json", is_flag=True, help="One JSON object: amounts in fen, serial as digits, ISO dates.")
@click.option("--records", "count", metavar="N", default="5", show_default=True,
              help="How many of the newest 0x18 and 0x1E records to show.")
def show(file: str, as_json: bool, count: str) -> None:
    """Show a card fixture: activation data, purse, every file decoded by name, the newest records. An M1 fixture is
    decoded sector by sector, every block's fields named, with what the next tap would find (clean, or an interrupted
    debit to finish or roll back)."""
    from sim.card.m1_card import M1Image
    from sim.fixture import load_image

    from . import card_m1

    newest = _whole_number(count, "--records", 0, 30)
    image = load_image(Path(file))
    if isinstance(image, M1Image):
        m1 = card_m1.view(image)
        if as_json:
            click.echo(json.dumps({"file": file, **m1}, indent=2, ensure_ascii=False))
        else:
            card_m1.print_view(file, m1)
        return
    view = _view(image, newest or 0)
    if as_json:
        click.echo(json.dumps({"file": file, **view}, indent=2, ensure_ascii=False))
    else:
        click.echo(f"{file}:")
        _print(view, 1)


# --- decoding a card image for people and programs ------------------------------------------------------------------

def _money(fen: int) -> str:
    sign = "-" if fen < 0 else ""
    yuan, cents = divmod(abs(fen), 100)
    return f"{sign}{yuan}.{cents:02d} CNY ({fen} fen)"


def _plain(value: Any) -> Any:
    """A field value as JSON: bytes as hex, dates ISO 8601, enums by name."""
    from protocols.hexutil import to_hex

    if isinstance(value, bytes):
        return to_hex(value)
    if isinstance(value, (dt.date, dt.time)):  # datetime is a date
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.name.lower()
    return value


def _record(model: Any) -> dict[str, Any]:
    """A decoded record's fields in order; a code the tables know gets its name beside it (``card_type_name``)."""
    out: dict[str, Any] = {}
    for item in dataclasses.fields(model):
        value = getattr(model, item.name)
        out[item.name] = _plain(value)
        known = getattr(type(model), f"known_{item.name}", None)
        if isinstance(known, property):
            name = known.fget(model)  # type: ignore[misc]
            out[f"{item.name}_name"] = None if name is None else name.name.lower()
    return out


def _decoded(layout_parse: Any, raw: bytes) -> dict[str, Any]:
    """Decode with ``layout_parse``; bytes that do not decode are shown raw with the reason."""
    from protocols.errors import ProtocolError
    from protocols.hexutil import to_hex

    try:
        return _record(layout_parse(raw))
    except ProtocolError as exc:
        return {"raw": to_hex(raw), "error": str(exc)}


def _purse(purse: Any) -> dict[str, int]:
    return {"balance": purse.balance, "overdraft_limit": purse.overdraft_limit, "offline_atc": purse.offline_atc,
            "online_atc": purse.online_atc}


def _view(image: Any, newest: int) -> dict[str, Any]:
    from protocols import bcd
    from protocols.card_files import (CARDHOLDER_INFO, MANAGEMENT_INFO, PUBLIC_APP_INFO, TRANSACTION_LOG_RECORD,
                                      TRANSIT_RECORD, parse_process_record)
    from protocols.errors import ProtocolError
    from protocols.hexutil import to_hex

    public = _decoded(PUBLIC_APP_INFO.parse, image.public_info)
    try:
        serial: str | None = bcd.digits(image.public_info[10:20], what="serial")
    except ProtocolError:
        serial = None
    cardholder = _decoded(CARDHOLDER_INFO.parse, image.cardholder)
    try:
        cardholder.update(_record(CARDHOLDER_INFO.parse(image.cardholder).holder))
    except ProtocolError:
        pass
    return {
        "serial": serial,
        "card_number": None if serial is None else serial[1:],
        "uid": to_hex(image.uid), "atqa": to_hex(image.atqa), "sak": f"{image.sak:02X}", "ats": to_hex(image.ats),
        "algorithm": image.algorithm.value,
        "blocked": image.blocked,
        **_purse(image.purse),
        "passbook": None if image.passbook is None else _purse(image.passbook),
        "keys": {f"{index:02X}": {"version": f"{slot.version:02X}",
                                  "usages": [u for u in ("purchase", "load", "tac") if getattr(slot, u) is not None]}
                 for index, slot in image.keys.items()},
        "maintenance_key": image.maintenance_key is not None,
        "public_info": public,
        "cardholder": cardholder,
        "management": _decoded(MANAGEMENT_INFO.parse, image.management),
        "transaction_log": [_decoded(TRANSACTION_LOG_RECORD.parse, r) for r in image.transaction_log[:newest]],
        "process_records": {f"{record_id:02X}": _decoded(parse_process_record, r)
                            for record_id, r in image.process_records.items()},
        "transit_log": [_decoded(TRANSIT_RECORD.parse, r) for r in image.transit_log[:newest]],
        "record_counts": {"18": len(image.transaction_log), "1A": len(image.process_records),
                          "1E": len(image.transit_log)},
        "proofs": {f"{kind:02X}": {"atc": p.atc, "mac2": to_hex(p.mac2), "tac": to_hex(p.tac)}
                   for kind, p in image.proofs.items()},
        "description": image.description,
    }


_LABELS = {
    "public_info": "file 15, public application info",
    "cardholder": "file 16, cardholder (layout UNCONFIRMED)",
    "management": "file 17, management info",
    "transaction_log": "file 18, transaction log (newest first)",
    "process_records": "file 1A, process records (by id)",
    "transit_log": "file 1E, transit records (newest first)",
    "record_counts": "records held",
    "proofs": "transaction proofs (by type)",
}
_AMOUNTS = frozenset(("balance", "overdraft_limit", "amount", "max_fare", "trade_amount", "entry_amount",
                      "entry_balance", "actual_amount", "cumulative_amount", "balance_before", "deposit"))


def _print(value: Any, depth: int) -> None:
    pad = "  " * depth
    items = value.items() if isinstance(value, dict) else ((f"#{i + 1}", v) for i, v in enumerate(value))
    for name, item in items:
        name = _LABELS.get(name, name) if depth == 1 else name
        if name in _AMOUNTS and type(item) is int:
            click.echo(f"{pad}{name}: {_money(item)}")
        elif isinstance(item, bool):
            click.echo(f"{pad}{name}: {'yes' if item else 'no'}")
        elif isinstance(item, list) and item and not isinstance(item[0], (dict, list)):
            click.echo(f"{pad}{name}: {', '.join(map(str, item))}")
        elif isinstance(item, (dict, list)) and item:
            click.echo(f"{pad}{name}:")
            _print(item, depth + 1)
        elif isinstance(item, (dict, list)):
            click.echo(f"{pad}{name}: (none)")
        else:
            click.echo(f"{pad}{name}: {'-' if item is None else item}")
