"""Typed errors of the terminal side: what a validator loop catches and turns into a display message.

Drivers translate every pyscard / pyserial / OS exception into one of these; nothing else escapes a link.
"""

from __future__ import annotations

from protocols.errors import YktError
from protocols.status import format_sw


class LinkError(YktError):
    """A link to a card or SAM failed."""


class CardRemoved(LinkError):
    """The card left the field (or never answered): a normal outcome of a tap, not a fault.

    The command may or may not have reached the card; only the transaction logic can tell what that means.
    """


class ReaderGone(LinkError):
    """The reader itself is unreachable: unplugged, daemon stopped, serial port closed."""


class LinkTimeout(LinkError):
    """No answer within the call's timeout."""


class StatusError(YktError):
    """A card or SAM answered a status word the step cannot accept."""

    def __init__(self, command: str, sw: int, *, peer: str = "card") -> None:
        super().__init__(f"{peer} {command}: {format_sw(sw, 'sam' if peer == 'PSAM' else 'card')}")
        self.command = command
        self.sw = sw
        self.peer = peer


class ConfigError(YktError):
    """A configuration file (fares, validator settings, key set) is invalid; the message names the field."""


class OutOfService(YktError):
    """The validator cannot take fares (PSAM missing or not answering); the message says why."""
