"""Hex at the edges: the one parser for hex typed by people or stored in fixtures and traces."""

from __future__ import annotations

import re

from .errors import ProtocolError

_SEPARATORS = re.compile(r"[\s:_-]+")


def parse_hex(text: str, *, what: str = "hex") -> bytes:
    """Hex digits to bytes; spaces, colons, dashes and underscores between digits are ignored."""
    digits = _SEPARATORS.sub("", text)
    if digits[:2].lower() == "0x":
        digits = digits[2:]
    if len(digits) % 2:
        raise ProtocolError(f"{what}: odd number of hex digits ({len(digits)})")
    try:
        return bytes.fromhex(digits)
    except ValueError:
        bad = next(ch for ch in digits if ch not in "0123456789abcdefABCDEF")
        raise ProtocolError(f"{what}: {bad!r} is not a hex digit") from None


def to_hex(data: bytes) -> str:
    """Bytes to upper-case hex without separators, the form used in traces, fixtures and the CLI."""
    return data.hex().upper()
