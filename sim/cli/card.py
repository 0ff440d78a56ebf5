"""``ykt card``: issue a simulated card as a fixture file, and show what a fixture holds, every file decoded."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from ..render import money, report_lines
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
                                                 "M1: the 16-digit card number (city, industry, issuer serial); "
                                                 "default: a card of the city in the validator's built-in settings.")
@click.option("--issuer", metavar="HEX", help="Issuer ID, 8 bytes. Default 02403640FFFFFFFF. CPU cards only.")
@click.option("--uid", metavar="HEX", help="M1 only: the UID, 4 or 7 bytes. Default: 4 bytes fixed by the number.")
@click.option("--size", metavar="1k|4k", help="M1 only: a MIFARE Classic 1K (default) or 4K.")
@click.option("--description", metavar="TEXT", default="", help="Free text stored in the fixture.")
@click.option("--out", metavar="FILE", help="The fixture file to write (replaced atomically). Required.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object: the fixture written and the card's numbers.")
def new(kind: str, balance: str | None, card_type: str | None, seed: str | None, keys: str | None,
        serial: str | None, issuer: str | None, uid: str | None, size: str | None, description: str,
        out: str | None, as_json: bool) -> None:
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
        if as_json:
            click.echo(json.dumps({"fixture": out, "kind": "m1", "card_number": to_hex(m1.serial),
                                   "uid": to_hex(m1.image.uid), "card_type": type_name, "balance": m1.balance}))
            return
        click.echo(f"{out}: M1 card {to_hex(m1.serial)} (UID {to_hex(m1.image.uid)}), {type_name}, "
                   f"balance {money(m1.balance or 0)}")
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
    if as_json:
        click.echo(json.dumps({"fixture": out, "card_number": bcd.digits(issued.serial)[1:],
                               "serial": bcd.digits(issued.serial), "issuer_id": to_hex(issued.issuer_id),
                               "kind": "cpu", "card_type": type_name, "balance": issued.balance}))
        return
    click.echo(f"{out}: card {bcd.digits(issued.serial)[1:]} of issuer {to_hex(issued.issuer_id)}, {type_name}, "
               f"balance {money(issued.balance)}")


@dataclass(frozen=True)
class Imported:
    """What an importer made: the facts ``--json`` prints (the fixture's numbers, the source, ``notes``) and the one
    line a person reads."""

    facts: dict[str, Any]
    summary: str


def _import_capture(source: str, out: str, keys: str | None, description: str) -> Imported:
    """The twin of the CPU card in a capture file (sim/card_import.py), saved to ``out``."""
    from protocols.hexutil import to_hex
    from sim.card_import import load_capture, make_twin
    from sim.fixture import save_fixture
    from sim.issuing import load_demo_keyset
    from terminal.keyset import load_keyset

    keyset = load_demo_keyset() if keys is None else load_keyset(keys)
    twin = make_twin(load_capture(source), keyset)
    image = twin.image
    if description:
        image.description = description
    save_fixture(image, out)
    notes = twin.notes + ([f"{keys or 'the demo key set'} is test-only: the twin is for simulation only"]
                          if keyset.test_only else [])
    serial = image.public_info[10:20]
    number = serial.hex()[1:] if serial.hex().isdigit() else to_hex(serial)
    records = {"18": len(image.transaction_log), "1A": len(image.process_records), "1E": len(image.transit_log)}
    exchanges = len(twin.capture.exchanges)
    facts = {"fixture": out, "card_number": number, "issuer_id": to_hex(image.public_info[:8]),
             "balance": image.purse.balance, "offline_atc": image.purse.offline_atc,
             "online_atc": image.purse.online_atc, "blocked": image.blocked, "records": records,
             "source": source, "kind": twin.capture.kind, "exchanges": exchanges, "notes": notes}
    summary = (f"{out}: twin of card {number} from {source} ({exchanges} exchanges), balance "
               f"{money(image.purse.balance)}, records " + ", ".join(f"{sfi}: {n}" for sfi, n in records.items()))
    return Imported(facts, summary)


def _import_mfd(source: str, out: str, keys: str | None, description: str) -> Imported:
    """An M1 card fixture from a MIFARE Classic dump (the keys are the dump's own, in its trailers)."""
    from protocols.errors import ProtocolError
    from protocols.hexutil import to_hex
    from sim.card.m1_dump import import_mfd
    from sim.fixture import FixtureError, save_fixture

    if keys is not None:
        raise _fail("--keys", "a MIFARE dump holds its card's own keys in its sector trailers")
    try:
        data = Path(source).read_bytes()
    except OSError as exc:
        raise FixtureError(f"{source}: cannot read the dump ({exc.strerror or exc})") from None
    try:
        image = import_mfd(data)
    except ProtocolError as exc:
        raise FixtureError(f"{source}: {exc}") from None
    image.description = description
    save_fixture(image, out)
    size = "4K" if image.size == 4096 else "1K"
    facts = {"fixture": out, "kind": "mfd", "source": source, "card": f"MIFARE Classic {size}",
             "uid": to_hex(image.uid), "notes": []}
    return Imported(facts, f"{out}: MIFARE Classic {size}, UID {to_hex(image.uid)}")


IMPORTERS: dict[str, Callable[[str, str, str | None, str], Imported]] = {
    "capture": _import_capture, "mfd": _import_mfd}
"""What ``ykt card import`` makes a fixture from, chosen by the option naming it (``--capture``, the default, or
``--mfd``): ``importer(source, out, keys, description) -> Imported``."""


@card.command("import")
@click.argument("source", metavar="SOURCE")
@click.option("--capture", "kind", flag_value="capture", default=True,
              help="SOURCE is a capture: a trace of 'ykt read --out' or of a validator's tap, or a plain log of "
                   "command and response hex pairs, one exchange a line (the default; docs/card-capture.md).")
@click.option("--mfd", "kind", flag_value="mfd",
              help="SOURCE is a MIFARE Classic 1K or 4K dump (.mfd layout, keys in the trailers): an M1 card "
                   "fixture; a dump that is not a valid card is refused, naming the block.")
@click.option("--out", metavar="FIXTURE", help="The fixture file to write (replaced atomically). Required.")
@click.option("--keys", metavar="KEYSET", help="The key set the twin's keys come from. Default: the test-only demo "
                                               "key set, which 'sim:psam' holds.")
@click.option("--description", metavar="TEXT", default="", help="Free text stored in the fixture.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object: the card, the source and the notes.")
def import_(source: str, kind: str, out: str | None, keys: str | None, description: str, as_json: bool) -> None:
    """Make a card fixture from SOURCE: the twin of a rider's card, under a test key set, or
    an M1 card from its MIFARE dump.

    The twin holds the card's files, records, balance and counters as the capture shows them
    when the card came into the field, and keys of the key set in place of the card's (no
    capture holds keys): a tap on it at a validator with that key set's PSAM gets the fare or
    decline the card would get. What the capture lacks is filled as on an issued card and
    said in a note; a capture that contradicts itself is an error naming the exchange.

    \b
    Example:
      ykt read --reader pcsc:0 --out rider.jsonl
      ykt card import rider.jsonl --out twin.json
      ykt validate --reader sim:twin.json --sam sim:psam --journal qa.db
      ykt card import --mfd dump.mfd --out m1.json
    """
    if not out:
        raise _fail("--out", "the fixture file to write is required")
    imported = IMPORTERS[kind](source, out, keys, description)
    if as_json:
        click.echo(json.dumps(imported.facts, ensure_ascii=False))
        return
    for note in imported.facts["notes"]:
        click.echo(f"note: {note}", err=True)
    click.echo(imported.summary)


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
        for line in report_lines(view, 1, _LABELS):
            click.echo(line)


# --- decoding a card image for people and programs ------------------------------------------------------------------

def _purse(purse: Any) -> dict[str, int]:
    return {"balance": purse.balance, "overdraft_limit": purse.overdraft_limit, "offline_atc": purse.offline_atc,
            "online_atc": purse.online_atc}


def _view(image: Any, newest: int) -> dict[str, Any]:
    from protocols import bcd
    from protocols.card_files import (
        SFI_CARDHOLDER,
        SFI_MANAGEMENT,
        SFI_PROCESS,
        SFI_PUBLIC_APP_INFO,
        SFI_TRANSACTION_LOG,
        SFI_TRANSIT_LOG,
    )
    from protocols.errors import ProtocolError
    from protocols.hexutil import to_hex
    from sim.decoding import decode_file
    from sim.render import to_plain

    def decoded(sfi: int, raw: bytes) -> Any:
        return to_plain(decode_file(sfi, raw))

    try:
        serial: str | None = bcd.digits(image.public_info[10:20], what="serial")
    except ProtocolError:
        serial = None
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
        "public_info": decoded(SFI_PUBLIC_APP_INFO, image.public_info),
        "cardholder": decoded(SFI_CARDHOLDER, image.cardholder),
        "management": decoded(SFI_MANAGEMENT, image.management),
        "transaction_log": [decoded(SFI_TRANSACTION_LOG, r) for r in image.transaction_log[:newest]],
        "process_records": {f"{record_id:02X}": decoded(SFI_PROCESS, r)
                            for record_id, r in image.process_records.items()},
        "transit_log": [decoded(SFI_TRANSIT_LOG, r) for r in image.transit_log[:newest]],
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
