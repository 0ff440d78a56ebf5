"""What a simulated reader holds: a device that answers APDUs (vicc-style ``execute(apdu) -> rapdu``).

Simulated T-Union cards, PSAMs and scripted cards all implement :class:`Device`; the simulated reader wraps one in the
terminal's link contract, adding activation, a timing model and tear injection, so the terminal cannot tell it from a
real reader.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from protocols.errors import ProtocolError
from terminal.link import Activation

SW_INTERNAL = 0x6F00
"""What a device answers to bytes its codec refuses without naming a status word."""


class Device(Protocol):
    """A card or SAM in software."""

    def power_on(self) -> Activation:
        """Enter the field (or get power on the contacts): volatile state (selected file, open transaction context,
        staged CAPP data) is lost, persistent state (EEPROM: balances, counters, files, proofs) is kept. Returns the
        activation data the reader reports (UID/ATQA/SAK/ATS for a contactless card, the ATR for a SAM)."""

    def execute(self, apdu: bytes) -> bytes:
        """Process one command APDU and return the response APDU. Never raises for bad input: a card answers a status
        word. Each command's effect on persistent state is atomic, as a card's EEPROM commit is."""


class ParseMemo:
    """Commands a simulated device has parsed, remembered by the bytes the codec's verdict depends on.

    Parsing is a function of those bytes alone, so every device of a kind shares one memo. A key may leave out fields
    the codec takes as they come (a MAC, a TSN, a record); the handlers then read those fields from the APDU itself,
    since the remembered object may come from another APDU of the same shape. Bounded: a full memo starts afresh
    (keys that hold a date-time never come back).
    """

    __slots__ = ("table", "limit", "_parse")

    def __init__(self, parse: Callable[[bytes], Any], limit: int) -> None:
        self.table: dict[bytes, Any] = {}
        self._parse = parse
        self.limit = limit

    def __call__(self, apdu: bytes, key: bytes | None) -> Any:
        """The command object for ``apdu``, or the status word for bytes the codec refuses; kept under ``key``
        unless it is ``None``."""
        if key is not None:
            known = self.table.get(key)
            if known is not None:
                return known
        try:
            result = self._parse(apdu)
        except ProtocolError as exc:
            result = SW_INTERNAL if exc.sw is None else exc.sw
        if key is not None:
            if len(self.table) >= self.limit:
                self.table.clear()
            self.table[key] = result
        return result
