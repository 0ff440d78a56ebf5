"""What a simulated reader holds: a device that answers APDUs (vicc-style ``execute(apdu) -> rapdu``).

Simulated T-Union cards, PSAMs and scripted cards all implement :class:`Device`; the simulated reader wraps one in the
terminal's link contract, adding activation, a timing model and tear injection, so the terminal cannot tell it from a
real reader.
"""

from __future__ import annotations

from typing import Protocol

from terminal.link import Activation


class Device(Protocol):
    """A card or SAM in software."""

    def power_on(self) -> Activation:
        """Enter the field (or get power on the contacts): volatile state (selected file, open transaction context,
        staged CAPP data) is lost, persistent state (EEPROM: balances, counters, files, proofs) is kept. Returns the
        activation data the reader reports (UID/ATQA/SAK/ATS for a contactless card, the ATR for a SAM)."""

    def execute(self, apdu: bytes) -> bytes:
        """Process one command APDU and return the response APDU. Never raises for bad input: a card answers a status
        word. Each command's effect on persistent state is atomic, as a card's EEPROM commit is."""
