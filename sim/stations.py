"""Terminals riders tap at in the fault tests, each on a simulated reader of its own, and their audits.

A :class:`Station` is one terminal that a population of :class:`~sim.witness.Witness` cards taps at: a validator
(:class:`ValidatorStation`, simple or composite purchase, flat or tap-on/tap-off section fares) or a top-up machine
(:class:`LoadStation`, with the demo load host in process). :meth:`Station.tap` puts a card in the field with an
optional tear plan and says whether the rider is asked to tap again; :meth:`Station.audit` compares what the
terminal's journal (and the load host's ledger) hold with what the cards committed at that terminal.
"""

from __future__ import annotations

import abc
import dataclasses
import random
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from terminal.blacklist import Blacklist
from terminal.clock import ManualClock
from terminal.config import ValidatorConfig
from terminal.fares import load_fares
from terminal.journal import Journal, MemoryJournal, SqliteJournal
from terminal.keyset import Keyset
from terminal.loads import LoadJournal, LoadState, LoadStatus, LoadTerminal
from terminal.loads.journal import CARD_CREDITED
from terminal.outcome import Decline, TapStatus
from terminal.records import DebitState
from terminal.settlement import verify
from terminal.trace import Tracer
from terminal.validator import Validator

from .device import Device
from .issuing import load_demo_keyset
from .loadhost import (
    DEMO_TERMINALS,
    InProcessLoadHost,
    LoadHostService,
    LoadLedger,
    Terminals,
    load_terminals,
)
from .loadhost.terminals import Limits
from .psam import demo_psam
from .reader import SimReader, SimSamSlot, Tear, TearEvent
from .witness import Kind, Witness

FARES = Path(__file__).resolve().parent / "fares"
_OPEN = (DebitState.PENDING, DebitState.UNCONFIRMED)
_LOAD_OPEN = (LoadState.AUTHORIZED, LoadState.UNCONFIRMED)


@dataclass(slots=True)
class TapResult:
    """One tap at a station: ``again`` when the rider is asked to tap again (the terminal could not finish),
    ``name`` what ended it (``accepted``, ``retry``, a decline reason, ``loaded``, ...), ``recovered`` when a torn
    debit or load was proven and this tap is its ride, ``stopped`` when the terminal went out of service, ``detail``
    the outcome's text (error messages included) and ``exchanges`` the card exchanges it made."""

    again: bool
    name: str
    recovered: bool = False
    stopped: bool = False
    detail: str = ""
    exchanges: int = 0
    torn: TearEvent | None = None
    """The tear that happened during this tap, if one did."""


@dataclass(slots=True)
class Audit:
    """What a station's records say against what the cards committed there. ``lost``: things a card committed that
    are neither settled nor open; ``phantom``: things settled that no card committed; ``unverifiable``: settled rows
    whose TAC does not verify (validators: recomputed from the master key; loads: the host refused it)."""

    station: str
    kind: Kind
    committed: int = 0
    fen_cards: int = 0  # what the cards paid (debits) or gained (loads) at this station
    fen_settled: int = 0  # what the records hold as settled (complete rows, credited or confirmed loads)
    fen_open: int = 0  # what open rows hold of debits or loads the cards did commit
    lost: int = 0
    phantom: int = 0
    unverifiable: int = 0
    verified: int = 0
    open_rows: int = 0

    @property
    def balanced(self) -> bool:
        return self.fen_cards == self.fen_settled + self.fen_open

    def as_dict(self) -> dict[str, object]:
        return {**{f.name: getattr(self, f.name) for f in dataclasses.fields(self)}, "kind": self.kind.value,
                "balanced": self.balanced}


class Station(abc.ABC):
    """One terminal and its simulated reader. ``same_ride_s``: how long after a debit the card made a tap again is
    still that ride (``None``: a tap again always finishes what the rider began, as for a load). Stations that share
    a clock serve one population of riders."""

    kind: Kind
    same_ride_s: int | None = None
    window_s: int | None = None
    """The recovery window (a validator's): a tap again later than this is a late one."""
    commit: str
    """The command whose tear matters most: the one the card commits the money in (DEBIT, CREDIT FOR LOAD)."""

    def __init__(self, name: str, terminal: bytes, clock: ManualClock) -> None:
        self.name = name
        self.terminal = terminal
        self.clock = clock
        self.reader = SimReader(timing=None)
        self.longest = 1
        """The most card exchanges a tap here has made so far."""

    def tap(self, card: Device, tear: Tear | None = None) -> TapResult | None:
        """The card enters the field (to be torn away as ``tear`` says), the terminal looks once, the card leaves. A
        :class:`~sim.witness.Witness` learns the terminal it is tapped at (an M1 card's records do not name it); any
        other device (a card whose answers are garbled on purpose) is tapped as it is."""
        if tear is not None:
            self.reader.plan_tear(tear)
        if isinstance(card, Witness):
            card.at = self.terminal
        self.reader.put(card)
        torn = len(self.reader.torn)
        try:
            result = self._poll()
            if result is not None:
                result.exchanges = self.reader.exchanges
                self.longest = max(self.longest, result.exchanges)
                result.torn = self.reader.torn[-1] if len(self.reader.torn) > torn else None
            return result
        finally:
            if self.reader.present:
                self.reader.take()
            self.reader.cancel_tears()

    @abc.abstractmethod
    def begin_ride(self, rng: random.Random) -> None:
        """A new ride begins here: the bus calls at a stop (section fares), a rider picks what to load."""

    @abc.abstractmethod
    def _poll(self) -> TapResult | None: ...

    @abc.abstractmethod
    def restart(self) -> None:
        """Power off and on: a new terminal on the same journal."""

    @abc.abstractmethod
    def finish(self) -> None:
        """The end of a run: time enough passes for every window to end."""

    @abc.abstractmethod
    def audit(self, witnesses: list[Witness]) -> Audit: ...

    def _audit(self, witnesses: list[Witness], rows: Iterable[tuple[tuple[bytes, int], int, bool, bool]]) -> Audit:
        """What the cards committed here against ``rows``: (card serial and counter, amount, settled, open)."""
        audit = Audit(self.name, self.kind)
        committed = {(c.serial, c.atc): c.amount for w in witnesses for c in w.committed
                     if c.kind is self.kind and c.terminal == self.terminal}
        settled: dict[tuple[bytes, int], int] = {}
        open_rows: dict[tuple[bytes, int], int] = {}
        for key, amount, is_settled, is_open in rows:
            if is_settled:
                settled[key] = amount
            elif is_open:
                open_rows[key] = amount
        audit.committed = len(committed)
        audit.fen_cards = sum(committed.values())
        audit.fen_settled = sum(settled.values())
        audit.fen_open = sum(amount for key, amount in open_rows.items() if key in committed)
        audit.open_rows = len(open_rows)
        audit.lost = sum(1 for key in committed if key not in settled and key not in open_rows)
        audit.phantom = sum(1 for key in settled if key not in committed)
        return audit

    @abc.abstractmethod
    def close(self) -> None: ...


class ValidatorStation(Station):
    """A validator with its PSAM (terminal number ``terminal``, in :attr:`sam`), ``fares`` (a file of ``sim/fares``)
    and settings; ``stops``: the stations the bus calls at (one drawn at each new ride; tap-on/tap-off fares).
    ``journal_path``: a SQLite journal, else one in memory. ``blacklist`` and ``tracer`` go to the validator."""

    kind = Kind.DEBIT
    commit = "8054"

    def __init__(self, name: str, terminal: bytes, clock: ManualClock, *, config: ValidatorConfig | None = None,
                 fares: str = "demo-flat.toml", journal_path: Path | None = None, stops: tuple[int, ...] = (),
                 keyset: Keyset | None = None, blacklist: Blacklist | None = None,
                 tracer: Tracer | None = None) -> None:
        super().__init__(name, terminal, clock)
        self.config = config or ValidatorConfig()
        self.same_ride_s = self.config.retap_same_ride_s
        self.window_s = self.config.recovery_window_s
        self.fares = load_fares(FARES / fares)
        self.journal_path = journal_path
        self.stops = stops
        self.keyset = keyset or load_demo_keyset()
        self.blacklist = blacklist
        self.tracer = tracer
        self.sam = SimSamSlot(demo_psam(terminal), timing=None)
        self.journal = self._journal()
        self.validator = self._validator()
        self._start()

    def _journal(self) -> Journal:
        if self.journal_path is None:
            return MemoryJournal(clock=self.clock)
        return SqliteJournal(self.journal_path, clock=self.clock)

    def _validator(self) -> Validator:
        return Validator(self.reader, self.sam, self.fares, self.journal, clock=self.clock, config=self.config,
                         blacklist=self.blacklist, tracer=self.tracer)

    def _start(self, station: int | None = None) -> None:
        """Start the validator (:class:`~terminal.errors.OutOfService` when it cannot: it stays this station's)."""
        self.validator.start()
        if self.stops:
            self.validator.arrive(self.stops[0] if station is None else station)

    def begin_ride(self, rng: random.Random) -> None:
        if self.stops:
            self.validator.arrive(rng.choice(self.stops))

    def _poll(self) -> TapResult | None:
        outcome = self.validator.poll()
        if outcome is None:
            return None
        name = outcome.decline.name.lower() if outcome.decline else outcome.status.value
        return TapResult(outcome.status is TapStatus.RETRY or outcome.decline is Decline.CARD_REMOVED, name,
                         outcome.recovered, outcome.status is TapStatus.OUT_OF_SERVICE, outcome.detail)

    def restart(self) -> None:
        if self.journal_path is not None:
            self.journal.close()
            self.journal = self._journal()
        station = self.validator.stop.station if self.validator.stop is not None else None
        self.validator = self._validator()
        self._start(station)

    def finish(self) -> None:
        self.clock.advance(self.config.recovery_window_s)
        self.validator.expire()
        self.journal.flush()

    def audit(self, witnesses: list[Witness]) -> Audit:
        audit = self._audit(witnesses, (((r.card_serial, r.offline_atc), r.amount, r.state is DebitState.COMPLETE,
                                         r.state in _OPEN) for r in (e.record for e in self.journal.entries())))
        report = verify(self.journal, self.keyset)
        audit.verified = report.verified
        audit.unverifiable = len(report.mismatches) + len(report.unverifiable) + len(report.quarantined)
        return audit

    def close(self) -> None:
        self.journal.close()


class LoadStation(Station):
    """A top-up machine (the first demo load terminal) with the demo load host in process; ``amounts`` are what
    riders load. The host's purse limit is lifted so that cards of any balance may load. ``directory``: where the
    load journal and the host's ledger are (SQLite files both)."""

    kind = Kind.LOAD
    commit = "8052"

    def __init__(self, name: str, clock: ManualClock, directory: Path, *,
                 amounts: tuple[int, ...] = (2000, 5000, 10000), tracer: Tracer | None = None) -> None:
        demo = load_terminals(DEMO_TERMINALS)
        registered = demo.terminals[0]
        super().__init__(name, registered.number, clock)
        self.amounts = amounts
        self.amount = amounts[0]
        self.journal_path = directory / f"{name}-loads.db"
        self.service = LoadHostService(load_demo_keyset(), LoadLedger(directory / f"{name}-ledger.db"),
                                       Terminals(demo.terminals, Limits(per_load=max(amounts), purse=0x7FFFFFFF),
                                                 demo.test_only), clock=clock)
        self.host = InProcessLoadHost(self.service, registered.token)
        self.journal = LoadJournal(self.journal_path, clock=clock)
        self.tracer = tracer
        self.terminal_ = self._terminal()

    def _terminal(self) -> LoadTerminal:
        terminal = LoadTerminal(self.reader, self.host, self.journal, clock=self.clock, terminal_id=self.terminal,
                                tracer=self.tracer)
        terminal.start()
        return terminal

    def begin_ride(self, rng: random.Random) -> None:
        self.amount = rng.choice(self.amounts)

    def _poll(self) -> TapResult | None:
        outcome = self.terminal_.load(self.amount)
        if outcome is None:
            return None
        return TapResult(outcome.status is LoadStatus.RETRY, outcome.reason or outcome.status.value,
                         outcome.recovered, False, outcome.detail)

    def restart(self) -> None:
        self.journal.close()
        self.journal = LoadJournal(self.journal_path, clock=self.clock)
        self.terminal_ = self._terminal()

    def finish(self) -> None:
        self.terminal_.confirm_backlog()

    def audit(self, witnesses: list[Witness]) -> Audit:
        audit = self._audit(witnesses, (((r.card_serial, r.online_atc), r.amount, r.state in CARD_CREDITED,
                                         r.state in _LOAD_OPEN) for r in (e.record for e in self.journal.entries())))
        ledger = self.service.ledger.loads()
        committed = {(c.serial, c.atc) for w in witnesses for c in w.committed
                     if c.kind is Kind.LOAD and c.terminal == self.terminal}
        confirmed = {(load.serial, load.online_counter) for load in ledger if load.state.value == "confirmed"}
        audit.phantom += sum(1 for key in confirmed if key not in committed)
        audit.verified = len(confirmed)
        audit.unverifiable = sum(1 for load in ledger if load.state.value == "flagged")
        return audit

    def close(self) -> None:
        self.journal.close()
        self.service.close()


@dataclass(slots=True)
class Ride:
    """A rider's ride at a station: the taps from the first one until the station is done with the card. ``since``:
    how many things the card had committed when the ride began."""

    witness: Witness
    station: Station
    since: int

    def charges(self) -> int:
        """How many debits (at a validator) or loads (at a top-up machine) the card committed at this station over
        the ride: more than one is a rider charged twice, or a card loaded twice for one request."""
        kind, terminal = self.station.kind, self.station.terminal
        return sum(1 for c in self.witness.committed[self.since:] if c.kind is kind and c.terminal == terminal)

    def goes_on(self) -> bool:
        """Whether a tap again now is still this ride (else the rider walked away with it and begins a new one)."""
        same = self.station.same_ride_s
        return same is None or not self.witness.new_ride(self.since, self.station.clock.now(), same,
                                                         self.station.terminal)
