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


def _by_text(data: bytes, parts: tuple[tuple[int, int], ...], make):
    """The reference reading of BCD date fields: through the hex text, as the field layouts are defined."""
    text = data.hex()
    if not text.isdigit():
        return "not BCD"
    try:
        return make(*(int(text[a:b]) for a, b in parts))
    except ValueError:
        return "not a date"


def _outcome(fn, data: bytes):
    try:
        return fn(data)
    except ProtocolError as exc:
        return "not BCD" if "not packed BCD" in str(exc) else "not a date"


_DATETIME_PARTS = ((0, 4), (4, 6), (6, 8), (8, 10), (10, 12), (12, 14))


@given(st.binary(min_size=7, max_size=7) | st.builds(bytes.fromhex, st.from_regex(r"\A[0-9]{14}\Z")))
def test_datetime_table_reading_agrees_with_the_text(raw):
    expected = None if raw == bytes(7) else _by_text(raw, _DATETIME_PARTS, dt.datetime)
    assert _outcome(bcd.decode_datetime, raw) == expected


@given(st.binary(min_size=4, max_size=4) | st.builds(bytes.fromhex, st.from_regex(r"\A[0-9]{8}\Z")))
def test_date_table_reading_agrees_with_the_text(raw):
    expected = None if raw == bytes(4) else _by_text(raw, ((0, 4), (4, 6), (6, 8)), dt.date)
    assert _outcome(bcd.decode_date, raw) == expected


@given(st.binary(min_size=3, max_size=3) | st.builds(bytes.fromhex, st.from_regex(r"\A[0-9]{6}\Z")))
def test_time_table_reading_agrees_with_the_text(raw):
    assert _outcome(bcd.decode_time, raw) == _by_text(raw, ((0, 2), (2, 4), (4, 6)), dt.time)


@pytest.mark.parametrize("fn,raw,message", [
    (bcd.decode_datetime, "20120229255100", "date-time: 20120229255100 is not a calendar date and time"),
    (bcd.decode_datetime, "2012022913510A", "date-time: 2012022913510A is not packed BCD"),
    (bcd.decode_datetime, "201202291351", "is not a calendar date and time"),  # too short: no fast reading
    (bcd.decode_date, "20130229", "date: 20130229 is not a calendar date"),
    (bcd.decode_time, "246000", "time: 246000 is not a time of day"),
])
def test_bcd_errors_name_the_fault(fn, raw, message):
    with pytest.raises(ProtocolError, match=message):
        fn(bytes.fromhex(raw))


@given(st.dates(min_value=dt.date(1, 1, 1)), st.times())
def test_encodings_are_the_digits(day, moment):
    assert bcd.encode_date(day).hex() == f"{day.year:04d}{day.month:02d}{day.day:02d}"
    assert bcd.encode_time(moment).hex() == f"{moment.hour:02d}{moment.minute:02d}{moment.second:02d}"
    when = dt.datetime.combine(day, moment)
    assert bcd.encode_datetime(when).hex() == bcd.encode_date(day).hex() + bcd.encode_time(moment).hex()
