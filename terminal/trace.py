"""The tracer hook: what every exchange and activation looks like to an observer (a trace file, a tap's timings)."""

from __future__ import annotations

from dataclasses import dataclass

from .link import Activation, ModeledTime


@dataclass(slots=True)
class Exchange:
    """One command and its response on a link. ``response`` is ``None`` when the exchange failed (``error`` says
    how)."""

    link: str
    command: bytes
    response: bytes | None
    start_ns: int
    duration_ns: int
    model: ModeledTime | None = None
    error: str | None = None
    ahead: bool = False
    """Sent ahead (:meth:`terminal.channel.Channel.send`): the caller went on with its other link before waiting for
    this answer, so on a modeled timeline it runs beside what follows until the caller waits (:meth:`Tracer.waited`)."""


class Tracer:
    """Observer of a link's traffic. The default methods do nothing; subclasses record what they need."""

    def activation(self, link: str, activation: Activation | None, at_ns: int) -> None:
        """A slot was activated (``None``: polled and found empty)."""

    def exchange(self, exchange: Exchange) -> None:
        """An exchange finished (or failed)."""

    def waited(self, link: str, at_ns: int) -> None:
        """The caller took the answer of the exchanges it sent ahead on ``link``: from here it needed them."""


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

    def waited(self, link: str, at_ns: int) -> None:
        for tracer in self.tracers:
            tracer.waited(link, at_ns)


class ExchangeLog(Tracer):
    """Keeps the exchanges of one transaction, for the per-exchange timings of a tap outcome."""

    def __init__(self) -> None:
        self.exchanges: list[Exchange] = []

    def exchange(self, exchange: Exchange) -> None:
        self.exchanges.append(exchange)
