"""Every flow the terminal has, as the tear scenario tears them: one entry per flow.

A flow is a tap at one station of a :class:`Bench`, from a starting point its ``prepare`` brings the card and the
station to: a fresh card for a purchase or a load; for a recovery, a card whose previous tap was torn at the command
that commits (so the flow under test is the re-tap that settles it). Adding a flow (the M1 debit, say) is one more
:class:`Flow` in :data:`FLOWS`, with a station in :data:`STATIONS` when it needs a new kind of terminal.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from terminal.clock import ManualClock
from terminal.config import Place, ValidatorConfig

from ..reader import Tear
from ..stations import Audit, LoadStation, Station, ValidatorStation
from ..tears import M1_DECREMENT, START, TERMINAL
from ..witness import Witness

SECTION_LINE = 802  # demo-sections.toml: 1.00 at tap-on, the rest at tap-off by station pair
SECTION_STOPS = (1, 2, 3, 4, 5)

STATIONS: dict[str, Callable[[ManualClock, Path], Station]] = {
    "simple": lambda clock, where: ValidatorStation(
        "simple", bytes.fromhex("200041590011"), clock, config=ValidatorConfig(purchase="simple"),
        journal_path=where / "simple.db"),
    "composite": lambda clock, where: ValidatorStation(
        "composite", TERMINAL, clock, journal_path=where / "composite.db"),
    "composite-b": lambda clock, where: ValidatorStation(
        "composite-b", bytes.fromhex("200041590002"), clock, journal_path=where / "composite-b.db"),
    "sections": lambda clock, where: ValidatorStation(
        "sections", bytes.fromhex("200041590012"), clock, config=ValidatorConfig(place=Place(line=SECTION_LINE)),
        fares="demo-sections.toml", stops=SECTION_STOPS, journal_path=where / "sections.db"),
    "top-up": lambda clock, where: LoadStation("top-up", clock, where),
}
"""The terminals riders tap at, by name: validators (simple and composite purchase, flat and section fares, two of
the operator's on one line) and a top-up machine, their journals (SQLite) in the directory ``where``."""


class Bench:
    """Stations made on first use, sharing one clock, with their journals in ``directory``."""

    def __init__(self, directory: Path, clock: ManualClock | None = None) -> None:
        self.directory = directory
        self.clock = clock or ManualClock(START)
        self.stations: dict[str, Station] = {}
        self.cards: list[Witness] = []
        """The cards tapped here, for the audit."""

    def __getitem__(self, name: str) -> Station:
        station = self.stations.get(name)
        if station is None:
            station = self.stations[name] = STATIONS[name](self.clock, self.directory)
        return station

    def audit(self) -> list[Audit]:
        """Every station's windows end; then each is audited against the cards."""
        for station in self.stations.values():
            station.finish()
        return [station.audit(self.cards) for station in self.stations.values()]

    def close(self) -> None:
        for station in self.stations.values():
            station.close()


Prepare = Callable[[Bench, Witness], int | None]
"""Brings the bench and the card to where a flow begins; returns where the ride under test began (how many things
the card had committed then) when the flow goes on a ride begun in ``prepare``, else ``None``."""


def fresh(bench: Bench, card: Witness) -> int | None:
    return None


def _torn_at(station: str, tear: Tear) -> Prepare:
    """The card's tap at ``station`` was torn as ``tear`` says; the flow is its re-tap two seconds later."""
    def prepare(bench: Bench, card: Witness) -> int | None:
        since = len(card.committed)
        result = bench[station].tap(card, tear)
        assert result is not None and result.again, f"the prepared tear at {station} did not ask for a re-tap"
        bench.clock.advance(2)
        return since
    return prepare


def _torn_then_elsewhere(bench: Bench, card: Witness) -> int | None:
    """A debit torn after the card committed it, then a ride on another validator of the operator: the card's proof
    is of that debit now, so the next tap settles the torn one from the card's 0x18 log. That tap is a new ride (the
    rider went elsewhere in between)."""
    _torn_at("composite", Tear.after("8054"))(bench, card)
    result = bench["composite-b"].tap(card)
    assert result is not None and result.name == "accepted", "the ride elsewhere was not paid"
    bench.clock.advance(60)
    return None


def _tapped_on(bench: Bench, card: Witness) -> int | None:
    """A tap-on at the first stop; the flow is the tap-off three stops on, ten minutes later."""
    station = bench["sections"]
    assert isinstance(station, ValidatorStation)
    station.validator.arrive(SECTION_STOPS[0])
    result = station.tap(card)
    assert result is not None and result.name == "accepted", "the tap-on was not paid"
    bench.clock.advance(600)
    station.validator.arrive(SECTION_STOPS[3])
    return None


def _at_first_stop(bench: Bench, card: Witness) -> int | None:
    station = bench["sections"]
    assert isinstance(station, ValidatorStation)
    station.validator.arrive(SECTION_STOPS[0])
    return None


@dataclass(frozen=True, slots=True)
class Flow:
    """A flow: its ``name``, the ``station`` it runs at, how the bench is brought to its start, and the ``card`` it
    takes (``cpu``: a T-Union card; ``m1``: a MIFARE Classic purse)."""

    name: str
    station: str
    prepare: Prepare = fresh
    card: str = "cpu"


FLOWS: tuple[Flow, ...] = (
    Flow("simple purchase", "simple"),
    Flow("composite purchase", "composite"),
    Flow("section fare tap-on", "sections", _at_first_stop),
    Flow("section fare tap-off", "sections", _tapped_on),
    Flow("recovery: the card's proof", "composite", _torn_at("composite", Tear.after("8054"))),
    Flow("recovery: the card's log, after a ride elsewhere", "composite", _torn_then_elsewhere),
    Flow("recovery: the card's counter", "composite", _torn_at("composite", Tear.before("8054"))),
    Flow("load", "top-up"),
    Flow("load recovery: the card's proof", "top-up", _torn_at("top-up", Tear.after("8052"))),
    Flow("load recovery: the card's counter", "top-up", _torn_at("top-up", Tear.before("8052"))),
    Flow("M1 debit", "composite", card="m1"),
    Flow("M1 recovery: finished (torn after the decrement)", "composite",
         _torn_at("composite", Tear.after(M1_DECREMENT)), card="m1"),
    Flow("M1 recovery: rolled back (torn before the decrement)", "composite",
         _torn_at("composite", Tear.before(M1_DECREMENT)), card="m1"),
)
"""Every flow the terminal has: purchases (simple, composite, section fares on and off), the three ways a torn
debit is settled, the load and its two recoveries, an M1 card's debit and the two ways its torn debit is settled."""
