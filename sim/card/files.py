"""How a simulated card or PSAM answers reads of its files (the words are :class:`~protocols.status.CardStatus`'s;
the PSAM's table holds the same ones).

The rules, one place for every simulated device:

* READ BINARY: an offset at or past the end of the file is 6B00; Le ``00`` (256) reads to the end; an Le above
  what is left is ``6Cxx`` with xx the bytes left (readers resend with that Le); a smaller Le reads that many bytes.
* READ RECORD: Le ``00`` or the record's size reads the record; any other Le is ``6Cxx`` with the record's size.
"""

from __future__ import annotations

from protocols.status import CardStatus, resend_with_le

OK = CardStatus.OK.bytes

_SW_BYTES: dict[int, bytes] = {}


def status(sw: int) -> bytes:
    """The two bytes of a status word (kept once made: a device answers the same few words all day)."""
    raw = _SW_BYTES.get(sw)
    if raw is None:
        raw = _SW_BYTES[sw] = sw.to_bytes(2, "big")
    return raw


def describe_command(apdu: object) -> str:
    """A command's header for a log line (never its data, which may carry MACs): whatever ``apdu`` turned out to be."""
    if isinstance(apdu, (bytes, bytearray)):
        return bytes(apdu[:4]).hex().upper() or "(empty)"
    return type(apdu).__name__


def read_binary(content: bytes, offset: int, le: int) -> bytes:
    """The response APDU to READ BINARY of ``content`` at ``offset`` with ``le`` (256 for ``00``)."""
    left = len(content) - offset
    if left <= 0:
        return status(CardStatus.WRONG_OFFSET)
    if le == 256:
        return content[offset:] + OK
    if le > left:
        return status(resend_with_le(left))
    return content[offset:offset + le] + OK


def read_record(record: bytes, le: int) -> bytes:
    """The response APDU to READ RECORD of ``record`` with ``le``."""
    if le == 256 or le == len(record):
        return record + OK
    return status(resend_with_le(len(record)))
