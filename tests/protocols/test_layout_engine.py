"""The Layout machinery itself, on declarations made for the test (the spec layouts are covered by test_layouts)."""

from __future__ import annotations

import datetime as dt
import dataclasses
from dataclasses import dataclass

import construct as c
import pytest

from protocols.errors import ProtocolError
from protocols.fields import BcdDate
from protocols.layout import Layout

ENGINES = ("fast", "compiled", "interpreted")


@dataclass(slots=True)
class Mixed:
    le32: int
    le16s: int
    be24: int
    start: dt.date | None
    tail: bytes


MIXED = Layout(Mixed, "le32" / c.Int32ul, "le16s" / c.Int16sl, "be24" / c.Int24ub, c.Const(b"\x27"),
               "start" / BcdDate, "tail" / c.Bytes(2))
RAW = bytes.fromhex("01000000 FEFF 010203 27 20401231 AABB")
VALUE = Mixed(1, -2, 0x010203, dt.date(2040, 12, 31), b"\xaa\xbb")


@pytest.mark.parametrize("engine", ENGINES)
def test_mixed_byte_orders(engine):
    assert MIXED.parse_with(engine, RAW) == VALUE
    assert MIXED.build_with(engine, VALUE) == RAW


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("bad", [Mixed(2**32, 0, 0, None, b"\0\0"), Mixed(0, 2**15, 0, None, b"\0\0"),
                                 Mixed(0, 0, 2**24, None, b"\0\0"), Mixed(0, 0, 0, None, b"\0")])
def test_unencodable_values(engine, bad):
    with pytest.raises(ProtocolError):
        MIXED.build_with(engine, bad)


@pytest.mark.parametrize("engine", ENGINES)
def test_wrong_constant(engine):
    with pytest.raises(ProtocolError):
        MIXED.parse_with(engine, RAW[:9] + b"\x28" + RAW[10:])


def test_declaration_must_match_model():
    with pytest.raises(TypeError, match="do not match"):
        Layout(Mixed, "le32" / c.Int32ul)
    with pytest.raises(TypeError, match="not a fixed-width field"):
        Layout(Mixed, "le32" / c.GreedyBytes)


def _example_values(layout: Layout):
    for text, value in layout.examples:
        yield bytes.fromhex("".join(text.split())), [getattr(value, f.name) for f in dataclasses.fields(value)]


def test_pack_is_build_without_the_model():
    from tests.protocols.test_layouts import LAYOUTS
    checked = 0
    for _, layout in LAYOUTS:
        for raw, values in _example_values(layout):
            assert layout.pack(*values) == raw
            checked += 1
    assert checked >= 20
    assert MIXED.pack(1, -2, 0x010203, dt.date(2040, 12, 31), b"\xaa\xbb") == RAW  # constants go in by themselves


@pytest.mark.parametrize("values, message", [
    ((1, -2, 0x010203, None), "5 field values needed, got 4"),
    ((1, -2, 0x010203, None, b"\xaa", b"x"), "5 field values needed, got 6"),
    ((1, -2, 0x010203, None, b"\xaa"), r"Mixed.tail: expected 2 bytes, got 1"),
    ((2**32, -2, 0x010203, None, b"\xaa\xbb"), "cannot build"),
    ((1, -2, 0x010203, "2040-12-31", b"\xaa\xbb"), "cannot build"),
])
def test_pack_refuses_what_build_refuses(values, message):
    with pytest.raises(ProtocolError, match=message):
        MIXED.pack(*values)


def test_pack_wire_takes_the_fields_as_they_go_on_the_wire():
    wire = (b"\x01\0\0\0", b"\xfe\xff", b"\x01\x02\x03", b"\x20\x40\x12\x31", b"\xaa\xbb")
    assert MIXED.pack_wire(*wire) == RAW == MIXED.pack(*dataclasses.astuple(VALUE))  # the constant goes in by itself
    from protocols.card_commands import DEBIT_DATA
    assert DEBIT_DATA.pack_wire(0x57, bytes.fromhex("20180313164329"), b"\x2b\x1d\x97\x4f") == DEBIT_DATA.pack(
        0x57, dt.datetime(2018, 3, 13, 16, 43, 29), b"\x2b\x1d\x97\x4f")


@pytest.mark.parametrize("values, message", [
    ((b"\x01\0\0\0", b"\xfe\xff", b"\x01\x02\x03", b"\x20\x40\x12\x31"), "5 field values needed, got 4"),
    ((b"\x01\0\0\0", b"\xfe\xff", b"\x01\x02\x03", b"\x20\x40\x12", b"\xaa\xbb"), r"Mixed.start: expected 4 bytes, "
                                                                                   "got 3"),
    ((1, b"\xfe\xff", b"\x01\x02\x03", b"\x20\x40\x12\x31", b"\xaa\xbb"), "cannot build"),
    ((b"\x01\0\0\0", b"\xfe\xff", b"\x01\x02\x03", dt.date(2040, 12, 31), b"\xaa\xbb"), "cannot build"),
])
def test_pack_wire_refuses_values_not_in_their_wire_form(values, message):
    with pytest.raises(ProtocolError, match=message):
        MIXED.pack_wire(*values)
