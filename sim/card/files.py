"""How a simulated card or PSAM answers reads of its files, and the status words they share.

The rules, one place for every simulated device:

* READ BINARY: an offset at or past the end of the file is 6B00; Le ``00`` (256) reads to the end; an Le above
  what is left is ``6Cxx`` with xx the bytes left (readers resend with that Le); a smaller Le reads that many bytes.
* READ RECORD: Le ``00`` or the record's size reads the record; any other Le is ``6Cxx`` with the record's size.
"""

from __future__ import annotations

from ..device import SW_INTERNAL  # noqa: F401  (re-exported beside the other status words)

OK = b"\x90\x00"

SW_WARNING_BLOCKED = 0x6283
SW_WRONG_LENGTH = 0x6700
SW_INCOMPATIBLE_FILE = 0x6981
SW_NO_CHALLENGE = 0x6984
SW_CONDITIONS = 0x6985
SW_WRONG_DATA = 0x6A80
SW_NOT_SUPPORTED = 0x6A81
SW_FILE_NOT_FOUND = 0x6A82
SW_RECORD_NOT_FOUND = 0x6A83
SW_WRONG_P1P2 = 0x6A86
SW_DATA_NOT_FOUND = 0x6A88
SW_WRONG_OFFSET = 0x6B00
SW_MAC = 0x9302
SW_INSUFFICIENT = 0x9401
SW_ATC_EXHAUSTED = 0x9402
SW_KEY_INDEX = 0x9403
SW_NO_PROOF = 0x9406

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
        return status(SW_WRONG_OFFSET)
    if le == 256:
        return content[offset:] + OK
    if le > left:
        return status(0x6C00 | left)
    return content[offset:offset + le] + OK


def read_record(record: bytes, le: int) -> bytes:
    """The response APDU to READ RECORD of ``record`` with ``le``."""
    if le == 256 or le == len(record):
        return record + OK
    return status(0x6C00 | (len(record) & 0xFF))
