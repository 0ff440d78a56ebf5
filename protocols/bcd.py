"""Packed BCD as the cards use it: dates ``YYYYMMDD``, times ``hhmmss``, digit strings.

An all-zero date or date-time is how a card marks "never set" (a fresh 0x1A record, say), so it decodes to ``None``
rather than failing; any other non-BCD or impossible value is a :class:`ProtocolError`.
"""

from __future__ import annotations

import datetime as dt

from .errors import ProtocolError


def digits(data: bytes, *, what: str = "BCD") -> str:
    """Packed BCD to its digit string; a nibble above 9 is an error."""
    text = data.hex()
    if not text.isdigit():
        raise ProtocolError(f"{what}: {text.upper()} is not packed BCD")
    return text


def from_digits(text: str, length: int, *, what: str = "BCD") -> bytes:
    """A digit string, left-padded with zeros, to ``length`` bytes of packed BCD."""
    if not text.isdigit() or len(text) > 2 * length:
        raise ProtocolError(f"{what}: {text!r} is not at most {2 * length} decimal digits")
    return bytes.fromhex(text.rjust(2 * length, "0"))


def decode_date(data: bytes) -> dt.date | None:
    """4 bytes ``YYYYMMDD`` to a date; all zeros to ``None``."""
    if data == b"\0\0\0\0":
        return None
    text = digits(data, what="date")
    try:
        return dt.date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        raise ProtocolError(f"date: {text} is not a calendar date") from None


def encode_date(value: dt.date | None) -> bytes:
    if value is None:
        return b"\0\0\0\0"
    return bytes.fromhex(f"{value.year:04d}{value.month:02d}{value.day:02d}")


def decode_time(data: bytes) -> dt.time:
    """3 bytes ``hhmmss`` to a time."""
    text = digits(data, what="time")
    try:
        return dt.time(int(text[:2]), int(text[2:4]), int(text[4:6]))
    except ValueError:
        raise ProtocolError(f"time: {text} is not a time of day") from None


def encode_time(value: dt.time) -> bytes:
    return bytes.fromhex(f"{value.hour:02d}{value.minute:02d}{value.second:02d}")


def decode_datetime(data: bytes) -> dt.datetime | None:
    """7 bytes ``YYYYMMDDhhmmss`` to a naive local date-time; all zeros to ``None``."""
    if data == b"\0" * 7:
        return None
    text = digits(data, what="date-time")
    try:
        return dt.datetime(int(text[:4]), int(text[4:6]), int(text[6:8]),
                           int(text[8:10]), int(text[10:12]), int(text[12:14]))
    except ValueError:
        raise ProtocolError(f"date-time: {text} is not a calendar date and time") from None


def encode_datetime(value: dt.datetime | None) -> bytes:
    if value is None:
        return b"\0" * 7
    return bytes.fromhex(f"{value.year:04d}{value.month:02d}{value.day:02d}"
                         f"{value.hour:02d}{value.minute:02d}{value.second:02d}")
