"""A simulated card that survives its process: its fixture file is rewritten before each answer that changed it.

A real card commits to EEPROM before it answers; a simulated card kept in a process's memory loses what it committed
when the process is killed. :class:`DurableCard` closes that gap for the servers that hold a card for other programs
(``ykt sim vpcd --save``, ``ykt sim pn532 --save``) and for ``ykt validate --save`` with a ``sim:`` card reader: after
every command it compares the card's image with what the file holds and, when they differ, replaces the file
atomically and durably (:func:`sim.fixture.write_atomically`) before the answer is returned. A read-only command
writes nothing. So a SIGKILL at any moment leaves on disk every debit the card answered (and at most one more, whose
answer never left), never a half-written file.
"""

from __future__ import annotations

import os
from pathlib import Path

from terminal.link import Activation

from .fixture import Card, dumps, write_atomically


class DurableCard:
    """``card`` (a T-Union or an M1 card), its state kept in the fixture at ``path`` (which holds it now)."""

    def __init__(self, card: Card, path: str | os.PathLike[str]) -> None:
        self.card = card
        self.path = Path(path)
        self.writes = 0
        """How many times the file was rewritten."""
        self._saved = dumps(card.image)

    def power_on(self) -> Activation:
        return self.card.power_on()

    def execute(self, apdu: bytes) -> bytes:
        try:
            return self.card.execute(apdu)
        finally:  # a device that leaves the field after it committed has still committed
            self.save()

    def save(self) -> bool:
        """Write the card's state if it changed since the last write; whether it did."""
        text = dumps(self.card.image)
        if text == self._saved:
            return False
        write_atomically(self.path, text)
        self._saved = text
        self.writes += 1
        return True
