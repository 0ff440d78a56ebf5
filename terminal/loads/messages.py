"""What a load terminal and the issuer's load host say to each other, and its JSON form (docs/load-host.md).

One codec for both ends: the terminal's HTTP client writes requests and reads answers with it, the host's HTTP shell
reads requests and writes answers with it, so the two cannot drift apart. JSON carries bytes as hex text, counters and
amounts (fen) as integers, the date-time as its 14 digits ``YYYYMMDDhhmmss``. Reading is strict: a missing or unknown
field, a repeated name, hex of the wrong size or a number out of range is a :class:`~terminal.loads.host.LoadRefused`
with code ``bad_request`` naming the field.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from typing import Any

from protocols import bcd
from protocols.card_files import TransactionType
from protocols.errors import ProtocolError
from protocols.hexutil import to_hex
from terminal.jsondoc import FieldError, RepeatedName, at, fields, hex_value, loads

from .errors import BAD_REQUEST, LoadRefused

REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
"""What a client may choose as a request id: 1 to 64 letters, digits and ``. _ : -`` (a UUID fits)."""
LOAD_TYPES = (TransactionType.EP_LOAD.value, TransactionType.ED_LOAD.value)
_WORD = 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class LoadRequest:
    """A card's request for a load, as the card answered INITIALIZE FOR LOAD and the terminal will send CREDIT.

    ``balance`` is the card's balance in fen before the load (signed: the card's 32-bit word read as two's complement;
    MAC1 covers the word). ``when`` is the date-time the terminal sends in CREDIT FOR LOAD, which MAC2 covers.
    ``key_version`` is the key version the card answered and ``transaction_type`` 02 (purse, EP) or 01 (passbook, ED):
    both optional on the wire, 01 and 02 by default.
    """

    request_id: str
    terminal: bytes  # 6 bytes: the load terminal's number, as sent in INITIALIZE FOR LOAD
    issuer: bytes  # 8 bytes, file 0x15 [0..7]
    serial: bytes  # 10 bytes, file 0x15 [10..19]
    balance: int
    amount: int
    online_counter: int
    random: bytes  # 4 bytes
    when: dt.datetime
    mac1: bytes  # 4 bytes
    key_version: int = 0x01
    transaction_type: int = TransactionType.EP_LOAD.value

    @property
    def balance_word(self) -> int:
        """The balance as the card's 4-byte word, as MAC1 and the TAC cover it."""
        return self.balance & _WORD


@dataclass(frozen=True, slots=True)
class LoadAuthorization:
    """The host's answer to a load request: its id for the load and the MAC2 the card takes in CREDIT FOR LOAD."""

    load_id: int
    mac2: bytes


@dataclass(frozen=True, slots=True)
class LoadConfirmation:
    """The host's answer to a TAC: the load's state in its ledger (``confirmed``)."""

    load_id: int
    state: str


# --- to JSON -------------------------------------------------------------------------------------------------------

def when_text(when: dt.datetime) -> str:
    """A date-time as the wire and the ledger write it: ``YYYYMMDDhhmmss``."""
    return bcd.encode_datetime(when).hex()


def request_to_json(request: LoadRequest) -> dict[str, Any]:
    return {"request_id": request.request_id, "terminal": to_hex(request.terminal), "issuer": to_hex(request.issuer),
            "serial": to_hex(request.serial), "balance": request.balance, "amount": request.amount,
            "online_counter": request.online_counter, "random": to_hex(request.random),
            "datetime": when_text(request.when), "mac1": to_hex(request.mac1), "key_version": request.key_version,
            "transaction_type": request.transaction_type}


def authorization_to_json(answer: LoadAuthorization) -> dict[str, Any]:
    return {"load_id": answer.load_id, "mac2": to_hex(answer.mac2)}


def confirmation_to_json(answer: LoadConfirmation) -> dict[str, Any]:
    return {"load_id": answer.load_id, "state": answer.state}


def encode(document: dict[str, Any]) -> bytes:
    """A JSON body: UTF-8, compact."""
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


# --- from JSON -----------------------------------------------------------------------------------------------------

_REQUEST_FIELDS = ("request_id", "terminal", "issuer", "serial", "balance", "amount", "online_counter", "random",
                   "datetime", "mac1", "key_version", "transaction_type")
_REQUEST_REQUIRED = _REQUEST_FIELDS[:10]


def decode(body: bytes) -> Any:
    """A JSON body; anything that is not one UTF-8 JSON document is ``bad_request``."""
    try:
        return loads(body.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise LoadRefused(BAD_REQUEST, f"the body is not UTF-8 (byte {exc.start})") from None
    except RepeatedName as exc:
        raise LoadRefused(BAD_REQUEST, f"the name {exc.args[0]!r} appears twice in one object") from None
    except json.JSONDecodeError as exc:
        raise LoadRefused(BAD_REQUEST, f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None


def _sized_hex(doc: dict[str, Any], name: str, size: int) -> bytes:
    raw = hex_value(doc[name], name)
    if len(raw) != size:
        raise FieldError(name, f"{size} bytes ({2 * size} hex digits), got {len(raw)}")
    return raw


def _integer(doc: dict[str, Any], name: str, low: int, high: int, default: int | None = None) -> int:
    value = doc.get(name, default)
    if type(value) is not int or not low <= value <= high:
        raise FieldError(name, f"an integer {low}..{high}, got {json.dumps(value)}")
    return value


def _when(text: Any) -> dt.datetime:
    if not isinstance(text, str) or len(text) != 14 or not text.isdigit():
        raise FieldError("datetime", f"14 digits YYYYMMDDhhmmss, got {json.dumps(text)}")
    try:
        when = bcd.decode_datetime(bytes.fromhex(text))
    except ProtocolError as exc:
        raise FieldError("datetime", str(exc)) from None
    if when is None:
        raise FieldError("datetime", "all zeros is no date-time")
    return when


def request_from_json(document: Any) -> LoadRequest:
    """A load request from its JSON; ``bad_request`` names the first field at fault."""
    try:
        doc = fields(document, "", _REQUEST_FIELDS, _REQUEST_REQUIRED)
        request_id = doc["request_id"]
        if not isinstance(request_id, str) or not REQUEST_ID.fullmatch(request_id):
            raise FieldError("request_id", "1 to 64 letters, digits or . _ : -")
        kind = doc.get("transaction_type", TransactionType.EP_LOAD.value)
        if type(kind) is not int or kind not in LOAD_TYPES:
            raise FieldError("transaction_type", f"2 (purse) or 1 (passbook), got {json.dumps(kind)}")
        return LoadRequest(
            request_id=request_id, terminal=_sized_hex(doc, "terminal", 6), issuer=_sized_hex(doc, "issuer", 8),
            serial=_sized_hex(doc, "serial", 10), balance=_integer(doc, "balance", -0x80000000, 0x7FFFFFFF),
            amount=_integer(doc, "amount", 1, 0x7FFFFFFF), online_counter=_integer(doc, "online_counter", 0, 0xFFFF),
            random=_sized_hex(doc, "random", 4), when=_when(doc["datetime"]), mac1=_sized_hex(doc, "mac1", 4),
            key_version=_integer(doc, "key_version", 0, 0xFF, 0x01), transaction_type=kind)
    except FieldError as exc:
        raise LoadRefused(BAD_REQUEST, str(exc)) from None


def tac_from_json(document: Any) -> bytes:
    """The TAC of a confirmation body ``{"tac": HEX}``."""
    try:
        doc = fields(document, "", ("tac",), ("tac",))
        return _sized_hex(doc, "tac", 4)
    except FieldError as exc:
        raise LoadRefused(BAD_REQUEST, str(exc)) from None


def authorization_from_json(document: Any) -> LoadAuthorization:
    """The host's answer to a request (read by the terminal: a fault here is the host's)."""
    doc = fields(document, "", ("load_id", "mac2"), ("load_id", "mac2"))
    return LoadAuthorization(_integer(doc, "load_id", 1, 2**63 - 1), _sized_hex(doc, "mac2", 4))


def confirmation_from_json(document: Any) -> LoadConfirmation:
    doc = fields(document, "", ("load_id", "state"), ("load_id", "state"))
    state = doc["state"]
    if not isinstance(state, str):
        raise FieldError(at("", "state"), f"text, got {json.dumps(state)}")
    return LoadConfirmation(_integer(doc, "load_id", 1, 2**63 - 1), state)
