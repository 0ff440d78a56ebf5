"""The project's error roots.

Every error the project raises derives from :class:`YktError`, so a caller (the CLI, a validator loop) can catch
the project's errors without catching programming errors. Nothing from construct, struct or cryptography leaks out.
"""

from __future__ import annotations


class YktError(Exception):
    """Root of every error raised by yikatong."""


class ProtocolError(YktError, ValueError):
    """Malformed bytes: a message that does not parse, or a value that cannot be encoded.

    ``sw`` is the ISO 7816 status word a card would answer for this fault when the message is a command
    (6700 wrong length, 6A86 wrong P1-P2, ...); ``None`` when the fault has no status word.
    """

    def __init__(self, message: str, *, sw: int | None = None) -> None:
        super().__init__(message)
        self.sw = sw
