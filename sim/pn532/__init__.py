"""An emulated PN532 reader chip with a simulated card in its field: the chip itself (:mod:`.chip`, no I/O) and
the pseudo-terminal server that libnfc and :class:`terminal.drivers.pn532.Pn532Link` talk to (:mod:`.server`)."""

from .chip import PN532_V16, Pn532Chip
from .server import EmulatorError, Pn532PtyServer

__all__ = ["PN532_V16", "EmulatorError", "Pn532Chip", "Pn532PtyServer"]
