"""Hostile input, as hypothesis strategies: valid documents damaged in their bytes or changed in their structure.

Shared by the loader property tests (``tests/test_loaders.py``) and the fault campaign's fuzzing (``.fuzz``): bytes
flipped, set, inserted, deleted or cut short (:func:`byte_edits`); a JSON document's values replaced by values of any
type, its members deleted or added (:func:`json_edits`, :func:`json_lines_edits` for JSON lines); a TOML document's
values replaced by literals of any type, its lines dropped, repeated or added (:func:`toml_edits`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TypeAlias

from hypothesis import strategies as st


@st.composite
def byte_edits(draw: st.DrawFn, seed: bytes) -> bytes:
    """``seed`` with a few bytes flipped, set, inserted or deleted, or cut short."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 6))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        op = draw(st.sampled_from(("flip", "set", "insert", "delete", "cut")))
        if op == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "set":
            data[at] = draw(st.integers(0, 255))
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del data[at:at + draw(st.integers(1, 16))]
        else:
            del data[at:]
    return bytes(data)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(1 << 70), 1 << 70) | st.floats() | st.text(max_size=24)
    | st.sampled_from(["", "00", "0310290000000000000001", "3DES", "SM4", "T=CL", "9000", "zz", "01", "-1"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6)


Json: TypeAlias = "bool | int | float | str | list[Json] | dict[str, Json] | None"
"""A JSON document as :func:`json.loads` gives it."""


@dataclass(frozen=True, slots=True, eq=False)
class _Member:
    """A value's place in a JSON object: the object and the member's name."""

    members: dict[str, Json]
    name: str


@dataclass(frozen=True, slots=True, eq=False)
class _Item:
    """A value's place in a JSON array: the array and the index."""

    items: list[Json]
    index: int


def _places(doc: Json, out: list[_Member | _Item]) -> list[_Member | _Item]:
    """Every place of a value in a JSON document."""
    if isinstance(doc, dict):
        for key, value in doc.items():
            out.append(_Member(doc, key))
            _places(value, out)
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            out.append(_Item(doc, index))
            _places(value, out)
    return out


def _json_edit(draw: st.DrawFn, doc: Json) -> Json:
    for _ in range(draw(st.integers(1, 3))):
        places = _places(doc, [])
        if not places:
            return draw(JSON_VALUES)
        place = draw(st.sampled_from(places))
        op = draw(st.sampled_from(("replace", "replace", "delete", "add")))
        if isinstance(place, _Member):
            if op == "delete":
                del place.members[place.name]
            else:
                place.members[place.name if op == "replace" else draw(st.text(max_size=8))] = draw(JSON_VALUES)
        elif op == "replace":
            place.items[place.index] = draw(JSON_VALUES)
        elif op == "delete":
            del place.items[place.index]
        else:
            place.items.insert(place.index, draw(JSON_VALUES))
    return doc


@st.composite
def json_edits(draw: st.DrawFn, seed: bytes) -> bytes:
    """``seed`` (a JSON document) with values replaced by values of any type, members deleted or added."""
    return json.dumps(_json_edit(draw, json.loads(seed))).encode()


@st.composite
def json_lines_edits(draw: st.DrawFn, seed: bytes) -> bytes:
    """``seed`` (JSON lines) with one line's structure changed, or lines dropped or repeated."""
    lines = seed.decode().splitlines()
    at = draw(st.integers(0, len(lines) - 1))
    op = draw(st.sampled_from(("edit", "edit", "drop", "repeat", "swap")))
    if op == "edit":
        lines[at] = json.dumps(_json_edit(draw, json.loads(lines[at])))
    elif op == "drop":
        del lines[at]
    elif op == "repeat":
        lines.insert(at, lines[at])
    else:
        other = draw(st.integers(0, len(lines) - 1))
        lines[at], lines[other] = lines[other], lines[at]
    return ("\n".join(lines) + "\n").encode()


TOML_VALUES = st.one_of(
    st.sampled_from(["0", "-1", "1", "255", "256", "65535", "0x7FFFFFFF", "4294967296", "99999999999999999999",
                     "1.5", "-0.0", "inf", "nan", "true", "false", '""', '"x"', '"2900"', '"0001"', '"bcd"',
                     '"composite"', '"simple"', '"stop"', '"quarantine"', "[]", "[1, 2]", '["a", 1]', "{}",
                     "{ percent = 50 }", "{ free = true }", "{ refuse = true }", "{ fixed = -1 }",
                     "1979-05-27T07:32:00Z", "1979-05-27", "07:32:00", '"\\u0000"', "[[1], [2]]"]),
    st.integers(-(1 << 64), 1 << 64).map(str),
    st.text(max_size=12).map(json.dumps))


@st.composite
def toml_edits(draw: st.DrawFn, seed: bytes) -> bytes:
    """``seed`` (TOML) with values replaced by literals of any type, lines dropped, repeated or added."""
    lines = seed.decode().splitlines()
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(("value", "value", "value", "drop", "repeat", "add", "table")))
        line = lines[at]
        if op == "value" and "=" in line:
            key = line.split("=", 1)[0]
            lines[at] = f"{key}= {draw(TOML_VALUES)}"
        elif op == "drop":
            del lines[at]
        elif op == "repeat":
            lines.insert(at, line)
        elif op == "add":
            name = draw(st.sampled_from(["base", "percent", "format", "line", "station", "x", "window_minutes"]))
            lines.insert(at, f"{name} = {draw(TOML_VALUES)}")
        else:
            name = draw(st.from_regex(re.compile(r"[a-z_.0-9]{1,12}"), fullmatch=True))
            lines.insert(at, f"[{name}]")
        if not lines:
            break
    return ("\n".join(lines) + "\n").encode()


def hostile(seeds: tuple[bytes, ...], structure: str = "", max_size: int = 600) -> st.SearchStrategy[bytes]:
    """Random bytes, or one of ``seeds`` damaged in its bytes, or changed in its ``structure`` (``json``,
    ``json-lines`` or ``toml``; none when empty)."""
    edits = {"json": json_edits, "json-lines": json_lines_edits, "toml": toml_edits}
    choices: list[st.SearchStrategy[bytes]] = [st.binary(max_size=max_size)]
    if seeds:
        choices.append(st.sampled_from(seeds).flatmap(byte_edits))
        if structure:
            choices.append(st.sampled_from(seeds).flatmap(edits[structure]))
    return st.one_of(choices)
