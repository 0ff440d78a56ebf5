"""Presenting decoded messages to people and to scripts: one conversion for every command that prints fields.

``to_plain`` turns the project's slotted dataclasses (and what they hold) into JSON-ready values: byte strings as
upper-case hex, dates and times as ISO 8601, enums by name, amounts and counters as numbers. ``text_lines`` shows the
same tree as indented ``name: value`` lines.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
from collections.abc import Iterator, Mapping
from typing import Any


def to_plain(value: Any) -> Any:
    """A value as JSON can carry it."""
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, bool) or value is None or isinstance(value, (int, float, str)):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex().upper()
    if isinstance(value, (dt.date, dt.datetime, dt.time)):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value) if f.repr}
    if isinstance(value, Mapping):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_plain(v) for v in value]
    return str(value)


def to_json(value: Any) -> str:
    """One JSON document, keys in declaration order."""
    return json.dumps(to_plain(value), ensure_ascii=False)


def text_lines(value: Any, indent: int = 0) -> Iterator[str]:
    """``name: value`` lines of a plain tree (see :func:`to_plain`), nested tables and lists indented."""
    pad = "  " * indent
    plain = to_plain(value)
    if isinstance(plain, dict):
        for key, item in plain.items():
            if isinstance(item, (dict, list)) and item:
                yield f"{pad}{key}:"
                yield from text_lines(item, indent + 1)
            else:
                yield f"{pad}{key}: {_scalar(item)}"
    elif isinstance(plain, list):
        for i, item in enumerate(plain):
            if isinstance(item, (dict, list)) and item:
                yield f"{pad}[{i}]"
                yield from text_lines(item, indent + 1)
            else:
                yield f"{pad}[{i}] {_scalar(item)}"
    else:
        yield f"{pad}{_scalar(plain)}"


def _scalar(value: Any) -> str:
    if value is None:
        return "-"
    if value == [] or value == {}:
        return "(none)"
    return str(value)
