"""The tracer hook: what every exchange and activation looks like to an observer (a trace file, a tap's timings)."""

from __future__ import annotations

from dataclasses import dataclass

from .link import Activation, ModeledTime


@dataclass(slots=True)
class Exchange:
    """One command and its response on a link. ``response`` is ``None`` when the exchange failed (``error`` says how)."""

    link: str
    command: bytes
    response: bytes | None
    start_ns: int
    duration_ns: int
    model: ModeledTime | None = None
    error: str | None = None


class Tracer:
    """Observer of a link's traffic. The default methods do nothing; subclasses record what they need."""

    def activation(self, link: str, activation: Activation | None, at_ns: int) -> None:
        """A slot was activated (``None``: polled and found empty)."""

    def exchange(self, exchange: Exchange) -> None:
        """An exchange finished (or failed)."""


class Tracers(Tracer):
    """Several tracers seen as one."""

    def __init__(self, *tracers: Tracer) -> None:
        self.tracers = tracers

    def activation(self, link: str, activation: Activation | None, at_ns: int) -> None:
        for tracer in self.tracers:
            tracer.activation(link, activation, at_ns)

    def exchange(self, exchange: Exchange) -> None:
        for tracer in self.tracers:
            tracer.exchange(exchange)


class ExchangeLog(Tracer):
    """Keeps the exchanges of one transaction, for the per-exchange timings of a tap outcome."""

    def __init__(self) -> None:
        self.exchanges: list[Exchange] = []

    def exchange(self, exchange: Exchange) -> None:
        self.exchanges.append(exchange)
