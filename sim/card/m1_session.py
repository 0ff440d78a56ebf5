"""A MIFARE Classic behind a PC/SC-style reader: the reader firmware's translation in front of the simulated card.

The terminal speaks to an M1 card the way it speaks to a PC/SC reader holding one: storage-card pseudo-APDUs
(``FF 82`` load key, ``FF 86`` authenticate, ``FF B0`` read, ``FF D6`` write, ``FF D7`` value operations, ``FF CA``
UID). :class:`MifareSession` runs each through :class:`protocols.pcsc_mifare.MifareBridge` into the MIFARE commands
the card takes, so the simulated reader and the vpcd server serve an M1 card with the translation a real reader's
firmware does, and keeps those commands (``exchanges``) for the timing model.
"""

from __future__ import annotations

from protocols.pcsc_mifare import MifareBridge, storage_atr
from terminal.link import Activation

from ..device import Device


class MifareSession:
    """A :class:`~sim.device.Device` taking pseudo-APDUs, in front of ``card``, a device taking MIFARE commands.

    ``bridge`` holds the reader's key slots; share one between sessions of the same reader (keys stay loaded while
    the reader is in use). The activation carries the ATR a PC/SC reader shows for the card.
    """

    def __init__(self, card: Device, bridge: MifareBridge | None = None) -> None:
        self.card = card
        self.bridge = MifareBridge() if bridge is None else bridge
        self.exchanges: list[tuple[bytes, bytes]] = []
        """The MIFARE commands the last pseudo-APDU became, with the card's answers."""

    def power_on(self) -> Activation:
        return self.activated(self.card.power_on())

    def activated(self, activation: Activation) -> Activation:
        """The card answered ``activation``: the reader now addresses its UID, and shows the PC/SC ATR."""
        self.bridge.select(activation.uid)
        return Activation("MIFARE", uid=activation.uid, atqa=activation.atqa, sak=activation.sak,
                          atr=storage_atr(activation.sak or 0))

    def execute(self, apdu: bytes) -> bytes:
        self.exchanges = []
        return self.bridge.execute(apdu, self._exchange)

    def _exchange(self, command: bytes) -> bytes:
        answer = self.card.execute(command)
        self.exchanges.append((command, answer))
        return answer
