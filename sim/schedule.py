"""A tap's exchanges on a modeled timeline, with the commands the validator sent ahead running beside the others.

Each link (the card's field, the SAM slot) carries one exchange at a time. An exchange starts when the validator
asks for it and its link is free; the validator waits for its answer, except for one sent ahead
(:meth:`terminal.channel.Channel.send`), which it takes only where it says so (:meth:`terminal.trace.Tracer.waited`).
``ykt tap`` draws this timeline and ``ykt demo`` reports its length, so both price a tap the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from terminal.link import Activation
from terminal.trace import Exchange, Tracer


class SendAheadWaits(Tracer):
    """Where in a tap the validator waited for a command it had sent ahead: ``waits[n]`` lists the links waited for
    after ``n`` exchanges since the card's activation on ``card_link``; ``last`` is the last activation of each
    link (the card's ATS decides its bit rates)."""

    def __init__(self, card_link: str) -> None:
        self.card_link = card_link
        self.last: dict[str, Activation] = {}
        self.waits: dict[int, list[str]] = {}
        self._exchanges = 0

    def activation(self, link: str, activation: Activation | None, at_ns: int) -> None:
        if activation is not None:
            self.last[link] = activation
            if link == self.card_link:
                self.waits, self._exchanges = {}, 0

    def exchange(self, exchange: Exchange) -> None:
        self._exchanges += 1

    def waited(self, link: str, at_ns: int) -> None:
        self.waits.setdefault(self._exchanges, []).append(link)


@dataclass(slots=True)
class Schedule:
    """``starts[i]``: where exchange ``i`` starts; ``end_us``: where the tap ends (its last link free, its last
    answer taken)."""

    starts: list[float] = field(default_factory=list)
    end_us: float = 0.0


def schedule(exchanges: Sequence[Exchange], waits: dict[int, list[str]], start_us: float = 0.0) -> Schedule:
    """Lay ``exchanges`` (each with its timing model; one without counts nothing) on a timeline from ``start_us``,
    with the ``waits`` a :class:`SendAheadWaits` saw during the tap."""
    at = start_us  # where the validator is
    free: dict[str, float] = {}  # when each link is free again
    answered: dict[str, float] = {}  # when the commands sent ahead on a link are answered
    plan = Schedule()
    for number, exchange in enumerate(exchanges):
        for link in waits.get(number, ()):
            at = max(at, answered.pop(link, at))
        model = exchange.model
        begin = max(at, free.get(exchange.link, start_us))
        free[exchange.link] = end = begin + (model.line_us + model.device_us if model is not None else 0.0)
        if exchange.ahead:
            answered[exchange.link] = end  # the validator goes on with its other link meanwhile
        else:
            at = end
        plan.starts.append(begin)
    plan.end_us = max(at, *free.values()) if free else at
    return plan
