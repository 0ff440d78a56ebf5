"""What a simulated reader holds: a device that answers APDUs (vicc-style ``execute(apdu) -> rapdu``).

Simulated T-Union cards, PSAMs and scripted cards all implement :class:`Device`; the simulated reader wraps one in the
terminal's link contract, adding activation, a timing model and tear injection, so the terminal cannot tell it from a
real reader.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar, runtime_checkable

from protocols.errors import ProtocolError
from protocols.status import CardStatus
from terminal.link import Activation

C = TypeVar("C")



class Device(Protocol):
    """A card or SAM in software."""

    def power_on(self) -> Activation:
        """Enter the field (or get power on the contacts): volatile state (selected file, open transaction context,
        staged CAPP data) is lost, persistent state (EEPROM: balances, counters, files, proofs) is kept. Returns the
        activation data the reader reports (UID/ATQA/SAK/ATS for a contactless card, the ATR for a SAM)."""

    def execute(self, apdu: bytes) -> bytes:
        """Process one command APDU and return the response APDU. Never raises for bad input: a card answers a status
        word. Each command's effect on persistent state is atomic, as a card's EEPROM commit is."""


@runtime_checkable
class NegotiatesRate(Protocol):
    """A contact card that takes an ISO 7816-3 PPS exchange after its ATR (a PSAM)."""

    def pps(self, request: bytes) -> bytes:
        """The card's PPS response to ``request`` (an echo when it accepts the rate asked for)."""


def parse_or_status(parse: Callable[[bytes], C], apdu: bytes) -> C | int:
    """The command object ``parse`` makes of ``apdu``, or the status word a device answers to bytes its codec refuses
    (the codec's own word, 6F00 "no precise diagnosis" when it names none)."""
    try:
        return parse(apdu)
    except ProtocolError as exc:
        return CardStatus.INTERNAL_ERROR if exc.sw is None else exc.sw
