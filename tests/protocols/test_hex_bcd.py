from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols import bcd
from protocols.errors import ProtocolError
from protocols.hexutil import parse_hex, to_hex


@pytest.mark.parametrize("text,raw", [
    ("00A4 0400", b"\x00\xa4\x04\x00"), ("de:ad:BE:ef", b"\xde\xad\xbe\xef"), ("0x9000", b"\x90\x00"), ("", b""),
    ("12-34_56\n78", b"\x12\x34\x56\x78"),
])
def test_parse_hex(text, raw):
    assert parse_hex(text) == raw


@pytest.mark.parametrize("text,message", [("ABC", "odd number of hex digits (3)"), ("zz", "'z' is not a hex digit")])
def test_parse_hex_errors(text, message):
    with pytest.raises(ProtocolError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_hex(text)


@given(st.binary())
def test_hex_round_trip(raw):
    assert parse_hex(to_hex(raw)) == raw


def test_dates():
    assert bcd.decode_date(bytes.fromhex("20401231")) == dt.date(2040, 12, 31)
    assert bcd.decode_date(bytes(4)) is None
    assert bcd.encode_date(None) == bytes(4)
    assert bcd.decode_datetime(bytes.fromhex("20120229135100")) == dt.datetime(2012, 2, 29, 13, 51)
    assert bcd.encode_datetime(dt.datetime(2018, 3, 13, 16, 43, 29)).hex() == "20180313164329"
    assert bcd.decode_time(bytes.fromhex("235959")) == dt.time(23, 59, 59)
    assert bcd.digits(bytes.fromhex("03104991585000011383")) == "03104991585000011383"
    assert bcd.from_digits("4991585000011383", 10).hex() == "00004991585000011383"


@pytest.mark.parametrize("fn,raw", [
    (bcd.decode_date, "20130229"), (bcd.decode_date, "2013A101"), (bcd.decode_time, "246000"),
    (bcd.decode_datetime, "20120229255100"), (bcd.digits, "0A"),
])
def test_bad_bcd(fn, raw):
    with pytest.raises(ProtocolError):
        fn(bytes.fromhex(raw))


@given(st.datetimes(min_value=dt.datetime(1000, 1, 1), max_value=dt.datetime(9999, 12, 31)))
def test_datetime_round_trip(value):
    value = value.replace(microsecond=0)
    assert bcd.decode_datetime(bcd.encode_datetime(value)) == value


def test_from_digits_rejects():
    with pytest.raises(ProtocolError):
        bcd.from_digits("12a", 4)
    with pytest.raises(ProtocolError):
        bcd.from_digits("123", 1)
