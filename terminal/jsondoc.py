"""JSON documents read strictly (fixtures, key sets, traces, scripts): every fault names its field.

A repeated name in one object is refused rather than letting the last value win silently, unknown fields are refused
(a typo must not be ignored), and checks raise :class:`FieldError` naming the field, which each reader turns into its
own typed error with the file name (and line) in front.
"""

from __future__ import annotations

import json
from typing import Any

from protocols.errors import ProtocolError, YktError
from protocols.hexutil import parse_hex, to_hex

from .link import Activation

PROTOCOLS = ("T=CL", "T=0", "T=1", "MIFARE")
_ACTIVATION_FIELDS = ("protocol", "uid", "atqa", "sak", "ats", "atr")


class FieldError(YktError):
    """A field at fault: ``field`` is its path (``steps[1].response``), ``reason`` what is wrong with it."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}" if field else reason)
        self.field = field
        self.reason = reason


class RepeatedName(ValueError):
    """A name appears twice in one JSON object."""


def _refuse_repeated_names(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, value in pairs:
        if name in result:
            raise RepeatedName(name)
        result[name] = value
    return result


def loads(text: str) -> Any:
    """Parse JSON text; raises ``json.JSONDecodeError`` or :class:`RepeatedName`."""
    return json.loads(text, object_pairs_hook=_refuse_repeated_names)


def load_document(text: str, source: str, error: type[YktError]) -> Any:
    """A whole document's JSON; any fault is ``error("<source>: ...")`` with the line and column of bad syntax."""
    try:
        return loads(text)
    except RepeatedName as exc:
        raise error(f"{source}: the name {exc.args[0]!r} appears twice in one object") from None
    except json.JSONDecodeError as exc:
        raise error(f"{source}: not valid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None


def at(where: str, key: str | int) -> str:
    """The path of ``key`` inside ``where``."""
    if isinstance(key, int):
        return f"{where}[{key}]"
    return f"{where}.{key}" if where else key


def fields(value: Any, where: str, known: tuple[str, ...], required: tuple[str, ...] = ()) -> dict[str, Any]:
    """``value`` as an object holding ``required`` and nothing outside ``known``."""
    if not isinstance(value, dict):
        raise FieldError(where, "expected an object")
    for key in required:
        if key not in value:
            raise FieldError(at(where, key), "missing")
    for key in value:
        if key not in known:
            raise FieldError(at(where, key), f"unknown field (known: {', '.join(known)})")
    return value


def hex_value(value: Any, where: str, *, least: int = 0) -> bytes:
    """Hex text to bytes, at least ``least`` of them."""
    if not isinstance(value, str):
        raise FieldError(where, f"expected hex text, got {json.dumps(value)}")
    try:
        raw = parse_hex(value, what=where)
    except ProtocolError as exc:
        raise FieldError("", str(exc)) from None
    if len(raw) < least:
        raise FieldError(where, f"expected at least {least} byte{'s' if least > 1 else ''}, got {len(raw)}")
    return raw


def optional_hex(value: Any, where: str) -> bytes | None:
    return None if value is None else hex_value(value, where)


def activation_to_json(activation: Activation) -> dict[str, Any]:
    """Activation data as JSON: bytes as hex, ``sak`` a number, an absent SAK, ATS or ATR ``null``."""
    return {"protocol": activation.protocol, "uid": to_hex(activation.uid), "atqa": to_hex(activation.atqa),
            "sak": activation.sak, "ats": None if activation.ats is None else to_hex(activation.ats),
            "atr": None if activation.atr is None else to_hex(activation.atr)}


def activation_from_json(value: Any, where: str) -> Activation:
    """The inverse of :func:`activation_to_json`; only ``protocol`` is required."""
    doc = fields(value, where, _ACTIVATION_FIELDS, ("protocol",))
    if doc["protocol"] not in PROTOCOLS:
        raise FieldError(at(where, "protocol"), f"{json.dumps(doc['protocol'])} is not one of {', '.join(PROTOCOLS)}")
    sak = doc.get("sak")
    if sak is not None and (type(sak) is not int or not 0 <= sak <= 0xFF):
        raise FieldError(at(where, "sak"), f"a number 0..255 or null, got {json.dumps(sak)}")
    return Activation(doc["protocol"], uid=hex_value(doc.get("uid", ""), at(where, "uid")),
                      atqa=hex_value(doc.get("atqa", ""), at(where, "atqa")), sak=sak,
                      ats=optional_hex(doc.get("ats"), at(where, "ats")),
                      atr=optional_hex(doc.get("atr"), at(where, "atr")))
