"""construct field types shared by the layouts: BCD dates and times as Python values."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import construct as c

from . import bcd


class _BcdAdapter(c.Adapter):
    """A fixed-width packed-BCD field decoded by a :mod:`protocols.bcd` function.

    The adapters ignore construct's context, so :class:`protocols.layout.Layout`'s fast path calls their
    ``decode_value`` and ``encode_value`` functions directly.
    """

    def __init__(self, length: int, decode: Callable[[bytes], Any], encode: Callable[[Any], bytes]) -> None:
        super().__init__(c.Bytes(length))
        self.decode_value = decode
        self.encode_value = encode

    def _decode(self, obj: bytes, context: object, path: object) -> Any:
        return self.decode_value(obj)

    def _encode(self, obj: Any, context: object, path: object) -> bytes:
        return self.encode_value(obj)


BcdDate = _BcdAdapter(4, bcd.decode_date, bcd.encode_date)
"""4-byte ``YYYYMMDD``: ``datetime.date``, or ``None`` for all zeros."""

BcdTime = _BcdAdapter(3, bcd.decode_time, bcd.encode_time)
"""3-byte ``hhmmss``: ``datetime.time``."""

BcdDateTime = _BcdAdapter(7, bcd.decode_datetime, bcd.encode_datetime)
"""7-byte ``YYYYMMDDhhmmss``: naive ``datetime.datetime``, or ``None`` for all zeros."""
