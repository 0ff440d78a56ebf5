"""Packed BCD as the cards use it: dates ``YYYYMMDD``, times ``hhmmss``, digit strings.

An all-zero date or date-time is how a card marks "never set" (a fresh 0x1A record, say), so it decodes to ``None``
rather than failing; any other non-BCD or impossible value is a :class:`ProtocolError`.
"""

from __future__ import annotations

import datetime as dt

from .errors import ProtocolError

_VALUE = tuple((b >> 4) * 10 + (b & 0x0F) if b >> 4 < 10 and b & 0x0F < 10 else None for b in range(256))
"""A packed-BCD byte's value 0..99, ``None`` when a nibble is above 9: dates are decoded by table lookups, which take a
fifth of the time of going through their hex text. Any doubt (``None``, an impossible date) takes the text path,
which says exactly what is wrong."""
_BYTE = tuple((n // 10) << 4 | n % 10 for n in range(100))
"""The packed-BCD byte of 0..99."""
_NO_DATE = b"\0\0\0\0"
_NO_DATETIME = b"\0" * 7


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
    if data == _NO_DATE:
        return None
    if len(data) == 4:
        v = _VALUE
        try:
            return dt.date(v[data[0]] * 100 + v[data[1]], v[data[2]], v[data[3]])  # type: ignore[operator,arg-type]
        except (TypeError, ValueError):
            pass  # not BCD, or not a date: the text path below names the fault
    text = digits(data, what="date")
    try:
        return dt.date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        raise ProtocolError(f"date: {text} is not a calendar date") from None


def encode_date(value: dt.date | None) -> bytes:
    if value is None:
        return _NO_DATE
    b, year = _BYTE, value.year
    return bytes((b[year // 100], b[year % 100], b[value.month], b[value.day]))


def decode_time(data: bytes) -> dt.time:
    """3 bytes ``hhmmss`` to a time."""
    if len(data) == 3:
        v = _VALUE
        try:
            return dt.time(v[data[0]], v[data[1]], v[data[2]])  # type: ignore[arg-type]
        except (TypeError, ValueError):
            pass
    text = digits(data, what="time")
    try:
        return dt.time(int(text[:2]), int(text[2:4]), int(text[4:6]))
    except ValueError:
        raise ProtocolError(f"time: {text} is not a time of day") from None


def encode_time(value: dt.time) -> bytes:
    b = _BYTE
    return bytes((b[value.hour], b[value.minute], b[value.second]))


def decode_datetime(data: bytes) -> dt.datetime | None:
    """7 bytes ``YYYYMMDDhhmmss`` to a naive local date-time; all zeros to ``None``."""
    if data == _NO_DATETIME:
        return None
    if len(data) == 7:
        v = _VALUE
        century, year, month, day, hour, minute, second = data
        try:
            return dt.datetime(v[century] * 100 + v[year], v[month], v[day],  # type: ignore[operator,arg-type]
                               v[hour], v[minute], v[second])  # type: ignore[arg-type]
        except (TypeError, ValueError):
            pass
    text = digits(data, what="date-time")
    try:
        return dt.datetime(int(text[:4]), int(text[4:6]), int(text[6:8]),
                           int(text[8:10]), int(text[10:12]), int(text[12:14]))
    except ValueError:
        raise ProtocolError(f"date-time: {text} is not a calendar date and time") from None


def encode_datetime(value: dt.datetime | None) -> bytes:
    if value is None:
        return _NO_DATETIME
    b, year = _BYTE, value.year
    return bytes((b[year // 100], b[year % 100], b[value.month], b[value.day], b[value.hour], b[value.minute],
                  b[value.second]))
