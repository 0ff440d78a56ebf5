"""A simulated device whose answers are seen, and changed if need be, on their way out: the fault scenarios' man in
the middle (garbled answers, forged MACs, a line that falls silent after a given command)."""

from __future__ import annotations

import abc

from terminal.link import Activation

from ..device import Device


class Intercepted(abc.ABC):
    """``device`` with every answer passed through :meth:`answer`; a :class:`~sim.device.Device` itself.
    ``commands``: how many commands it has answered since power-on."""

    def __init__(self, device: Device) -> None:
        self.device = device
        self.commands = 0

    def power_on(self) -> Activation:
        self.commands = 0
        return self.device.power_on()

    def execute(self, apdu: bytes) -> bytes:
        answer = self.device.execute(apdu)
        index, self.commands = self.commands, self.commands + 1
        return self.answer(index, apdu, answer)

    @abc.abstractmethod
    def answer(self, index: int, apdu: bytes, answer: bytes) -> bytes:
        """What leaves the device: ``answer`` was its answer to ``apdu``, command ``index`` (from 0) since power-on."""
