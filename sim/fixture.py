"""Card fixtures: a simulated card's image as a JSON file (format in ``docs/card-fixture-format.md``).

A fixture holds what a card keeps in EEPROM. Two kinds: a T-Union CPU card (``yikatong-card``: activation data, files
and records as hex, purse counters, the card's own (diversified) keys, lock state and the last transaction proofs),
and a MIFARE Classic M1 card (``yikatong-m1-card``: activation data and every block, trailers with the card's own
sector keys). Loading checks every field and names the field and the reason on error (``card.json: files.15:
expected 30 bytes, got 29``); saving writes the card's current state in one canonical form (so save → load → save
gives the same bytes) and replaces the file atomically, so a QA run can save a card after use and replay it later.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from protocols.card_files import (
    CARDHOLDER_SIZE,
    MANAGEMENT_SIZE,
    PROCESS_RECORD_SIZE,
    PROCESS_RECORD_TAG,
    PUBLIC_APP_INFO_SIZE,
    TRANSACTION_LOG_RECORD_SIZE,
    TRANSACTION_LOG_RECORDS,
    TRANSIT_RECORD_SIZE,
    TRANSIT_RECORDS,
)
from protocols.crypto import Algorithm
from protocols.errors import ProtocolError, YktError
from protocols.hexutil import parse_hex, to_hex
from protocols.iso14443 import Ats, check_uid
from protocols.mifare import BLOCK_SIZE, CardSize
from terminal.jsondoc import load_document

from .card import (
    MAX_ATC,
    MAX_BALANCE,
    MAX_OVERDRAFT,
    CardImage,
    KeySlot,
    Proof,
    PurseState,
    SimCard,
)
from .card.m1_card import M1Card, M1Image
from .card.m1_dump import check_image

FORMAT = "yikatong-card"
VERSION = 1
M1_FORMAT = "yikatong-m1-card"
M1_VERSION = 1

_TOP = ("format", "version", "description", "activation", "algorithm", "blocked", "ppse", "purse", "passbook", "files",
        "records", "keys", "maintenance_key", "proofs")
_REQUIRED = ("format", "version", "activation", "algorithm", "purse", "files", "records", "keys")
_ACTIVATION = ("uid", "atqa", "sak", "ats")
_PURSE = ("balance", "overdraft_limit", "offline_atc", "online_atc")
_FILES = {"15": PUBLIC_APP_INFO_SIZE, "16": CARDHOLDER_SIZE, "17": MANAGEMENT_SIZE}
_RECORDS = ("18", "1A", "1E")
_KEY_USAGES = ("purchase", "load", "tac")
_PROOF = ("atc", "mac2", "tac")
_ALGORITHMS = {a.value: a for a in Algorithm}
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
_M1_TOP = ("format", "version", "description", "activation", "blocks")
_M1_REQUIRED = ("format", "version", "activation", "blocks")
_M1_ACTIVATION = ("uid", "atqa", "sak")
_M1_BLOCKS = {size.blocks: size for size in (CardSize.K1, CardSize.K4)}

Image = CardImage | M1Image
Card = SimCard | M1Card


class FixtureError(YktError):
    """A fixture file cannot be read, or is not a valid card image; the message names the file and the field."""


# --- image to JSON --------------------------------------------------------------------------------------------------

def _purse_dict(purse: PurseState) -> dict[str, int]:
    return {"balance": purse.balance, "overdraft_limit": purse.overdraft_limit, "offline_atc": purse.offline_atc,
            "online_atc": purse.online_atc}


def _slot_dict(slot: KeySlot) -> dict[str, str]:
    out = {"version": f"{slot.version:02X}"}
    for usage in _KEY_USAGES:
        key = getattr(slot, usage)
        if key is not None:
            out[usage] = to_hex(key.export())
    return out


def image_to_dict(image: CardImage) -> dict[str, Any]:
    """The fixture's JSON object for ``image``, fields in the documented order."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "description": image.description,
        "activation": {"uid": to_hex(image.uid), "atqa": to_hex(image.atqa), "sak": f"{image.sak:02X}",
                       "ats": to_hex(image.ats)},
        "algorithm": image.algorithm.value,
        "blocked": image.blocked,
        "ppse": image.ppse,
        "purse": _purse_dict(image.purse),
        "passbook": None if image.passbook is None else _purse_dict(image.passbook),
        "files": {"15": to_hex(image.public_info), "16": to_hex(image.cardholder), "17": to_hex(image.management)},
        "records": {
            "18": [to_hex(record) for record in image.transaction_log],
            "1A": {f"{record_id:02X}": to_hex(record) for record_id, record in image.process_records.items()},
            "1E": [to_hex(record) for record in image.transit_log],
        },
        "keys": {f"{index:02X}": _slot_dict(slot) for index, slot in sorted(image.keys.items())},
        "maintenance_key": None if image.maintenance_key is None else to_hex(image.maintenance_key.export()),
        "proofs": {f"{kind:02X}": {"atc": proof.atc, "mac2": to_hex(proof.mac2), "tac": to_hex(proof.tac)}
                   for kind, proof in sorted(image.proofs.items())},
    }


def m1_image_to_dict(image: M1Image) -> dict[str, Any]:
    """The M1 fixture's JSON object for ``image``: activation, then every block in order."""
    return {
        "format": M1_FORMAT,
        "version": M1_VERSION,
        "description": image.description,
        "activation": {"uid": to_hex(image.uid), "atqa": to_hex(image.atqa), "sak": f"{image.sak:02X}"},
        "blocks": [to_hex(image.block(number)) for number in range(image.size.blocks)],
    }


def dumps(image: Image) -> str:
    """The fixture text of ``image``: UTF-8 JSON, two-space indent, one record (or block) per line, a final newline."""
    data = m1_image_to_dict(image) if isinstance(image, M1Image) else image_to_dict(image)
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def save_fixture(card: Card | Image, path: str | os.PathLike[str]) -> None:
    """Write the card's current state to ``path``, replacing it atomically (a reader sees the old or the new file,
    never a part) and durably (file and rename synced). A new file gets mode 644, a replaced one keeps its mode."""
    image = card.image if isinstance(card, (SimCard, M1Card)) else card
    write_atomically(path, dumps(image))


def write_atomically(path: str | os.PathLike[str], content: str | bytes) -> None:
    """Replace ``path`` with ``content`` (text as UTF-8) atomically and durably; :class:`FixtureError` when it
    cannot."""
    target = Path(path)
    try:
        fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:
        raise FixtureError(f"{target}: cannot write next to it ({exc.strerror or exc})") from None
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(content.encode("utf-8") if isinstance(content, str) else content)
            file.flush()
            os.fsync(file.fileno())
        try:
            mode = target.stat().st_mode & 0o777
        except FileNotFoundError:
            mode = 0o644
        os.chmod(name, mode)
        os.replace(name, target)
        directory = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except OSError as exc:
        Path(name).unlink(missing_ok=True)
        raise FixtureError(f"{target}: cannot write ({exc.strerror or exc})") from None


# --- JSON to image --------------------------------------------------------------------------------------------------

class _Reader:
    """Checks one decoded fixture; every error names the source, the field path and the reason."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, field: str, reason: str) -> FixtureError:
        return FixtureError(f"{self.source}: {field}: {reason}")

    def object(self, value: Any, field: str, names: tuple[str, ...], required: tuple[str, ...] | None = None
               ) -> dict[str, Any]:
        if not isinstance(value, dict):
            if not field:
                raise FixtureError(f"{self.source}: a card fixture is a JSON object")
            raise self.fail(field, "expected an object")
        for name in names if required is None else required:
            if name not in value:
                raise self.fail(f"{field}.{name}" if field else name, "missing")
        for name in value:
            if name not in names:
                raise self.fail(f"{field}.{name}" if field else name, "unknown field")
        return value

    def integer(self, value: Any, field: str, low: int, high: int) -> int:
        if type(value) is not int:
            raise self.fail(field, f"expected a whole number, got {json.dumps(value)}")
        if not low <= value <= high:
            raise self.fail(field, f"must be {low} to {high}, got {value}")
        return value

    def boolean(self, value: Any, field: str) -> bool:
        if type(value) is not bool:
            raise self.fail(field, "expected true or false")
        return value

    def hex(self, value: Any, field: str, size: int | None = None) -> bytes:
        if not isinstance(value, str):
            raise self.fail(field, "expected a string of hex digits")
        try:
            raw = parse_hex(value, what=field)
        except ProtocolError as exc:
            raise FixtureError(f"{self.source}: {exc}") from None
        if size is not None and len(raw) != size:
            raise self.fail(field, f"expected {size} byte{'s' if size > 1 else ''}, got {len(raw)}")
        return raw

    def byte_name(self, name: Any, field: str) -> int:
        """A key index, version, record id or transaction type: one byte in two hex digits (``"01"``, ``"1A"``)."""
        if not isinstance(name, str) or len(name) != 2 or any(ch not in _HEX_DIGITS for ch in name):
            raise self.fail(field, "expected one byte in two hex digits, e.g. \"01\"")
        return int(name, 16)

    def records(self, value: Any, field: str, size: int, most: int) -> list[bytes]:
        if not isinstance(value, list):
            raise self.fail(field, "expected a list of records, newest first")
        if len(value) > most:
            raise self.fail(field, f"at most {most} records, got {len(value)}")
        return [self.hex(item, f"{field}[{i}]", size) for i, item in enumerate(value)]

    def purse(self, value: Any, field: str) -> PurseState:
        data = self.object(value, field, _PURSE)
        overdraft = self.integer(data["overdraft_limit"], f"{field}.overdraft_limit", 0, MAX_OVERDRAFT)
        return PurseState(
            balance=self.integer(data["balance"], f"{field}.balance", -overdraft, MAX_BALANCE),
            overdraft_limit=overdraft,
            offline_atc=self.integer(data["offline_atc"], f"{field}.offline_atc", 0, MAX_ATC),
            online_atc=self.integer(data["online_atc"], f"{field}.online_atc", 0, MAX_ATC),
        )

    def header(self, data: Any, names: tuple[str, ...], required: tuple[str, ...], format_name: str,
               version: int) -> tuple[dict[str, Any], str]:
        """The top-level object, its format and version checked; and its description."""
        top = self.object(data, "", names, required)
        if top["format"] != format_name:
            raise self.fail("format", f"expected {format_name!r}, got {json.dumps(top['format'])}")
        if type(top["version"]) is not int or top["version"] != version:
            raise self.fail("version", f"version {json.dumps(top['version'])} is unknown "
                                       f"(this software reads {version})")
        description = top.get("description", "")
        if not isinstance(description, str):
            raise self.fail("description", "expected text")
        return top, description

    def image(self, data: Any) -> CardImage:
        top, description = self.header(data, _TOP, _REQUIRED, FORMAT, VERSION)
        uid, atqa, sak, ats = self.activation(top["activation"])
        algorithm = _ALGORITHMS.get(top["algorithm"]) if isinstance(top["algorithm"], str) else None
        if algorithm is None:
            raise self.fail("algorithm", f"must be one of {', '.join(sorted(_ALGORITHMS))}")
        blocked = self.boolean(top.get("blocked", False), "blocked")
        ppse = self.boolean(top.get("ppse", False), "ppse")
        purse = self.purse(top["purse"], "purse")
        passbook = None if top.get("passbook") is None else self.purse(top["passbook"], "passbook")
        files = self.object(top["files"], "files", tuple(_FILES))
        public_info, cardholder, management = (self.hex(files[name], f"files.{name}", size)
                                               for name, size in _FILES.items())
        records = self.object(top["records"], "records", _RECORDS)
        transaction_log = self.records(records["18"], "records.18", TRANSACTION_LOG_RECORD_SIZE,
                                       TRANSACTION_LOG_RECORDS)
        process = self.process_records(records["1A"])
        transit_log = self.records(records["1E"], "records.1E", TRANSIT_RECORD_SIZE, TRANSIT_RECORDS)
        keys = self.keys(top["keys"], algorithm)
        maintenance = top.get("maintenance_key")
        maintenance_key = None if maintenance is None else algorithm.key(self.hex(maintenance, "maintenance_key", 16))
        return CardImage(
            uid=uid, atqa=atqa, sak=sak, ats=ats, algorithm=algorithm, public_info=public_info, cardholder=cardholder,
            management=management, transaction_log=transaction_log, process_records=process,
            transit_log=transit_log, purse=purse, keys=keys, maintenance_key=maintenance_key, passbook=passbook,
            blocked=blocked, ppse=ppse, proofs=self.proofs(top.get("proofs", {})), description=description,
        )

    def activation(self, value: Any) -> tuple[bytes, bytes, int, bytes]:
        data = self.object(value, "activation", _ACTIVATION)
        uid = self.hex(data["uid"], "activation.uid")
        try:
            check_uid(uid)
        except ProtocolError as exc:
            raise self.fail("activation.uid", str(exc)) from None
        atqa = self.hex(data["atqa"], "activation.atqa", 2)
        sak = self.hex(data["sak"], "activation.sak", 1)[0]
        ats = self.hex(data["ats"], "activation.ats")
        try:
            Ats.parse(ats)
        except ProtocolError as exc:
            raise self.fail("activation.ats", str(exc)) from None
        return uid, atqa, sak, ats

    def process_records(self, value: Any) -> dict[int, bytes]:
        if not isinstance(value, dict):
            raise self.fail("records.1A", "expected an object of records by id")
        process = {}
        for name, text in value.items():
            field = f"records.1A.{name}"
            record_id = self.byte_name(name, field)
            if record_id in process:
                raise self.fail(field, "the same id is given twice")
            record = self.hex(text, field, PROCESS_RECORD_SIZE)
            if record[0] != PROCESS_RECORD_TAG or record[1] != record_id:
                raise self.fail(field, f"a record with id {record_id:02X} starts {PROCESS_RECORD_TAG:02X} "
                                       f"{record_id:02X}, got {to_hex(record[:2])}")
            process[record_id] = record
        return dict(sorted(process.items()))

    def keys(self, value: Any, algorithm: Algorithm) -> dict[int, KeySlot]:
        if not isinstance(value, dict) or not value:
            raise self.fail("keys", "expected an object with at least one key index")
        keys = {}
        for name, entry in value.items():
            field = f"keys.{name}"
            index = self.byte_name(name, field)
            if index in keys:
                raise self.fail(field, "the same key index is given twice")
            slot = self.object(entry, field, ("version",) + _KEY_USAGES, ("version",))
            version = self.byte_name(slot["version"], f"{field}.version")
            keys[index] = KeySlot(version, **{usage: algorithm.key(self.hex(slot[usage], f"{field}.{usage}", 16))
                                              for usage in _KEY_USAGES if usage in slot})
        return dict(sorted(keys.items()))

    def proofs(self, value: Any) -> dict[int, Proof]:
        if not isinstance(value, dict):
            raise self.fail("proofs", "expected an object of proofs by transaction type")
        proofs = {}
        for name, entry in value.items():
            field = f"proofs.{name}"
            kind = self.byte_name(name, field)
            if kind in proofs:
                raise self.fail(field, "the same transaction type is given twice")
            proof = self.object(entry, field, _PROOF)
            proofs[kind] = Proof(self.integer(proof["atc"], f"{field}.atc", 0, MAX_ATC),
                                 self.hex(proof["mac2"], f"{field}.mac2", 4), self.hex(proof["tac"], f"{field}.tac", 4))
        return dict(sorted(proofs.items()))

    def m1_image(self, data: Any) -> M1Image:
        top, description = self.header(data, _M1_TOP, _M1_REQUIRED, M1_FORMAT, M1_VERSION)
        activation = self.object(top["activation"], "activation", _M1_ACTIVATION)
        uid = self.hex(activation["uid"], "activation.uid")
        atqa = self.hex(activation["atqa"], "activation.atqa", 2)
        sak = self.hex(activation["sak"], "activation.sak", 1)[0]
        blocks = top["blocks"]
        if not isinstance(blocks, list) or len(blocks) not in _M1_BLOCKS:
            raise self.fail("blocks", "expected a list of 64 (1K) or 256 (4K) blocks")
        memory = bytearray(b"".join(self.hex(block, f"blocks[{i}]", BLOCK_SIZE) for i, block in enumerate(blocks)))
        try:
            image = M1Image(uid, atqa, sak, memory, description)
        except ProtocolError as exc:
            raise self.fail("activation.uid", str(exc)) from None
        try:
            check_image(image)
        except ProtocolError as exc:
            raise self.fail("blocks", str(exc)) from None
        return image


def image_from_dict(data: Any, *, source: str = "fixture") -> Image:
    """Check a decoded fixture of either kind and build its image; :class:`FixtureError` names the field."""
    reader = _Reader(source)
    if isinstance(data, dict) and data.get("format") == M1_FORMAT:
        return reader.m1_image(data)
    return reader.image(data)


def loads(text: str, *, source: str = "fixture") -> Image:
    """The image in fixture text; corrupt JSON is reported with its line and column."""
    return image_from_dict(load_document(text, source, FixtureError), source=source)


def load_image(path: str | os.PathLike[str]) -> Image:
    """Read and check a fixture file."""
    source = os.fspath(path)
    try:
        with open(source, encoding="utf-8") as file:
            text = file.read()
    except OSError as exc:
        raise FixtureError(f"{source}: cannot read the fixture ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise FixtureError(f"{source}: not UTF-8 text") from None
    return loads(text, source=source)


def load_fixture(path: str | os.PathLike[str], *, randbytes: Callable[[int], bytes] | None = None) -> Card:
    """A simulated card (T-Union CPU or M1) in the state a fixture file holds."""
    image = load_image(path)
    if isinstance(image, M1Image):
        return M1Card(image)
    return SimCard(image, randbytes=randbytes)


def load_cpu_fixture(path: str | os.PathLike[str], *, randbytes: Callable[[int], bytes] | None = None) -> SimCard:
    """A simulated T-Union CPU card from a fixture file; :class:`FixtureError` for an M1 fixture."""
    card = load_fixture(path, randbytes=randbytes)
    if not isinstance(card, SimCard):
        raise FixtureError(f"{os.fspath(path)}: an M1 card fixture; this command takes a T-Union CPU card")
    return card
