"""Text that cards store: application labels and preferred names in an FCI, names in the cardholder file.

Cards pad text with ``00``, ``20`` or ``FF`` and write Chinese in GBK (nfsee and the card readers of the Chinese
schemes decode it so). Stripping the padding bytes before decoding is safe for GBK: 00, 20 and FF are neither lead nor
trail bytes of a GBK pair.
"""

from __future__ import annotations

_PADDING = b"\x00 \xff"


def card_text(raw: bytes) -> str | None:
    """``raw`` as text (padding stripped, ASCII or GBK), or ``None`` when the bytes are not printable text in either:
    a caller then shows them as hex, never a guess."""
    stripped = raw.strip(_PADDING)
    try:
        text = stripped.decode("gbk")
    except UnicodeDecodeError:
        return None
    return text if text.isprintable() else None


def lenient_text(raw: bytes) -> str:
    """``raw`` as text for people, padding stripped, bytes GBK cannot decode shown as U+FFFD; never raises."""
    return raw.strip(_PADDING).decode("gbk", errors="replace").strip()
