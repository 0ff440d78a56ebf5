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


AMOUNTS = frozenset(("balance", "overdraft_limit", "amount", "max_fare", "trade_amount", "entry_amount",
                     "entry_balance", "actual_amount", "cumulative_amount", "balance_without_top_bit",
                     "passbook_balance", "balance_before", "deposit"))
"""Fields that hold fen: a report shows them in yuan as well."""


def money(fen: int) -> str:
    """``98.00 CNY (9800 fen)``."""
    sign = "-" if fen < 0 else ""
    yuan, cents = divmod(abs(fen), 100)
    return f"{sign}{yuan}.{cents:02d} CNY ({fen} fen)"


def report_lines(value: Any, depth: int = 0, labels: Mapping[str, str] | None = None) -> Iterator[str]:
    """A plain tree (see :func:`to_plain`) as a report for people: amounts in yuan, yes/no, short lists on one line,
    each warning on a line of its own; ``labels`` rename the top level's keys."""
    pad = "  " * depth
    items = value.items() if isinstance(value, dict) else ((f"#{i + 1}", v) for i, v in enumerate(value))
    for name, item in items:
        name = (labels or {}).get(name, name) if depth <= 1 else name
        if name == "warnings" or name == "notes":
            for text in item:
                yield f"{pad}{name[:-1]}: {text}"
        elif name in AMOUNTS and type(item) is int:
            yield f"{pad}{name}: {money(item)}"
        elif isinstance(item, bool):
            yield f"{pad}{name}: {'yes' if item else 'no'}"
        elif isinstance(item, list) and item and not isinstance(item[0], (dict, list)):
            yield f"{pad}{name}: {', '.join(map(str, item))}"
        elif isinstance(item, (dict, list)) and item:
            yield f"{pad}{name}:"
            yield from report_lines(item, depth + 1)
        elif isinstance(item, (dict, list)):
            yield f"{pad}{name}: (none)"
        else:
            yield f"{pad}{name}: {'-' if item is None else item}"
