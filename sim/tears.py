"""Riders, tears and late re-taps: does any rider pay twice for one ride, is any debit a card made lost?

A population of cards rides at one or more stations (:mod:`sim.stations`: validators and top-up machines), one ride
at a time. A share of the taps are torn away at a random exchange, before or after the card processes it; the rider
is then told "please tap again" (or "card removed before payment") and taps again after a delay drawn from early,
late (at and past the recovery window) and very late (hours, days), or walks away and never comes back for that ride.
A try once the validator's ``retap_same_ride_s`` has passed since the card made the ride's debit is a new ride (the
rider walked away with the first): the validator settles the old debit and charges the new ride, and so does the
count here. Stations may be restarted between rides (a new terminal on the same journal).

What is counted comes from the cards themselves, not from the terminals: each card is a :class:`~sim.witness.Witness`
that sees every debit and load it commits, so a ride whose taps made the card commit two debits is a double charge,
whatever the validator believed. At the end every committed debit must be in its validator's journal, complete or
still open for the back office, and nothing the cards did not commit may be journaled complete (the same for loads
in the load journal and the host's ledger).
"""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from terminal.clock import ManualClock
from terminal.config import ValidatorConfig

from .card.m1_issuing import issue_m1_card
from .issuing import LOCAL_ISSUER, issue_card, load_demo_keyset
from .reader import Tear
from .stations import Audit, Ride, Station, TapResult, ValidatorStation
from .witness import Kind, Witness

START = dt.datetime(2026, 11, 24, 7, 0, 0)
TERMINAL = bytes.fromhex("200041599997")  # the demo PSAM's terminal number
RETAP_DELAYS = (1, 2, 5, 10, 29, 30, 30, 31, 45, 90, 600, 3599, 3600, 3 * 3600, 2 * 86400)
"""Seconds between a torn tap and the rider's next try: early, exactly at the 30-second recovery window, past it,
at the hour after which a re-tap is a new ride (``retap_same_ride_s``), hours and days late."""
M1_DECREMENT = "FFD7"
"""An M1 debit's first value-block operation (the reader's DECREMENT and TRANSFER): where its money moves."""
RIDE_GAPS = (1, 2, 3, 5, 8, 20, 40, 90)
"""Seconds between one ride and the next (of any rider)."""
RETAPS = 6  # tries after which a rider gives up for good


@dataclass
class TearReport:
    """What a run did and what it found. ``double_charges`` (rides whose card committed more than one debit at that
    validator, or loads credited twice for one request), ``free_rides`` (a rider back past ``retap_same_ride_s`` after
    walking away from a torn debit the card made, whose new ride was taken for that one), ``lost`` (debits or loads a
    card committed that the records hold neither settled nor open), ``phantom`` (rows settled that no card committed),
    ``unverifiable`` (settled rows whose TAC does not verify) and ``out_of_service`` must all be 0. The money figures
    are the validators' (debits): ``fen_taken`` from the cards, ``fen_complete`` in complete rows,
    ``fen_open_committed`` in open rows the cards did commit; ``audits`` has every station's."""

    rides: int = 0
    taps: int = 0
    tears: int = 0
    torn_after_commit: int = 0
    retaps: int = 0
    late_retaps: int = 0
    new_ride_retaps: int = 0
    abandoned: int = 0
    restarts: int = 0
    recovered: int = 0
    double_charges: int = 0
    free_rides: int = 0
    lost: int = 0
    phantom: int = 0
    unverifiable: int = 0
    fen_taken: int = 0
    fen_complete: int = 0
    fen_open_committed: int = 0
    out_of_service: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    details: list[str] = field(default_factory=list)
    audits: list[Audit] = field(default_factory=list)

    def tapped(self, result: TapResult | None) -> None:
        """Count one tap and what it ended in."""
        self.taps += 1
        if result is not None and result.torn is not None:
            self.tears += 1
            self.torn_after_commit += result.torn.committed
        if result is not None:
            self.outcomes[result.name] += 1
            self.recovered += result.recovered
            self.out_of_service += result.stopped
            if result.detail:
                self.details.append(result.detail)

    def ride_over(self, ride: Ride) -> None:
        self.rides += 1
        self.double_charges += ride.charges() > 1

    def audited(self, audits: Sequence[Audit]) -> None:
        """Take the stations' audits in: the sums of what must be 0, and the money of the validators."""
        self.audits.extend(audits)
        for audit in audits:
            self.lost += audit.lost
            self.phantom += audit.phantom
            self.unverifiable += audit.unverifiable
            if audit.kind is Kind.DEBIT:
                self.fen_taken += audit.fen_cards
                self.fen_complete += audit.fen_settled
                self.fen_open_committed += audit.fen_open

    def as_dict(self) -> dict[str, object]:
        doc: dict[str, object] = {name: getattr(self, name) for name in self.__dataclass_fields__
                                  if name not in ("details", "audits", "outcomes")}
        doc["outcomes"] = dict(sorted(self.outcomes.items()))
        doc["stations"] = [audit.as_dict() for audit in self.audits]
        return doc


def riders(count: int, seed: int, *, balance: int = 10_000_000, first: int = 0) -> list[Witness]:
    """``count`` local cards of the demo key set, the same for the same ``seed`` (numbered from ``first``)."""
    keyset = load_demo_keyset()
    return [Witness(issue_card(keyset, issuer_id=LOCAL_ISSUER, serial=f"0310{LOCAL_ISSUER[2:4].hex()}{n:012d}",
                               balance=balance, start=dt.date(2024, 1, 1), expiry=dt.date(2044, 1, 1),
                               randbytes=random.Random(seed * 1000 + n).randbytes))
            for n in range(first, first + count)]


def m1_riders(count: int, seed: int, *, balance: int = 10_000_000, first: int = 0) -> list[Witness]:
    """``count`` M1 cards of the demo key set and the validators' city, the same for the same ``seed``."""
    keyset = load_demo_keyset()
    return [Witness(issue_m1_card(keyset, issuer_serial=(seed * 1_000_000 + n).to_bytes(4, "big"),
                                  city=ValidatorConfig().place.city_code, balance=balance, start=dt.date(2024, 1, 1),
                                  expiry=dt.date(2044, 1, 1)))
            for n in range(first, first + count)]


def ride(station: Station, witness: Witness, rng: random.Random, report: TearReport, *, tear_share: float,
         abandon_share: float, delays: Sequence[int] = RETAP_DELAYS, first_tear: Tear | None = None,
         since: int | None = None) -> None:
    """One rider's ride: a tap (torn as ``first_tear`` says, else at random with ``tear_share``), then taps again,
    each after one of ``delays``, while the station asks for one (the rider walks away with ``abandon_share``). A tap
    again past the station's same-ride time begins a new ride. ``since``: the ride began earlier, when the card had
    committed that many things (its first tap was torn before this one), and the station stays where it is."""
    if since is None:
        station.begin_ride(rng)
        since = len(witness.committed)
    current = Ride(witness, station, since)
    result = _tap(station, witness, rng, report, tear_share, first_tear)
    tries = 0
    while result is not None and result.again:
        if rng.random() < abandon_share or tries == RETAPS:
            report.abandoned += 1
            break
        tries += 1
        delay = rng.choice(delays)
        report.retaps += 1
        report.late_retaps += station.window_s is not None and delay >= station.window_s
        station.clock.advance(delay)
        walked_away = not current.goes_on()
        if walked_away:
            report.ride_over(current)
            report.new_ride_retaps += 1
            current = Ride(witness, station, len(witness.committed))
        result = _tap(station, witness, rng, report, tear_share, None)
        report.free_rides += walked_away and result is not None and result.recovered
    report.ride_over(current)


def _tap(station: Station, witness: Witness, rng: random.Random, report: TearReport, tear_share: float,
         tear: Tear | None) -> TapResult | None:
    if tear is None and rng.random() < tear_share:
        commit = M1_DECREMENT if witness.m1 else station.commit
        where: int | str = commit if rng.random() < 0.5 else rng.randrange(station.longest)
        tear = (Tear.after if rng.random() < 0.5 else Tear.before)(where)
    result = station.tap(witness, tear)
    report.tapped(result)
    return result


def run_rides(stations: Sequence[Station], witnesses: Sequence[Witness], rides: int, rng: random.Random,
              report: TearReport, *, tear_share: float = 0.2, abandon_share: float = 0.1,
              restart_share: float = 0.01, progress: Callable[[int], None] | None = None) -> None:
    """``rides`` rides of riders drawn from ``witnesses`` at stations drawn from ``stations`` (sharing one clock);
    then every station finishes (windows end) and is audited into ``report``."""
    clock = stations[0].clock
    for n in range(rides):
        station = rng.choice(stations)
        clock.advance(rng.choice(RIDE_GAPS))
        ride(station, rng.choice(witnesses), rng, report, tear_share=tear_share, abandon_share=abandon_share)
        if rng.random() < restart_share:
            report.restarts += 1
            rng.choice(stations).restart()
        if progress is not None:
            progress(n + 1)
    for station in stations:
        station.finish()
    report.audited([station.audit(list(witnesses)) for station in stations])


def run_tear_loop(rides: int, seed: int, *, cards: int = 40, tear_share: float = 0.2, abandon_share: float = 0.1,
                  restart_share: float = 0.01, journal_path: Path | None = None,
                  config: ValidatorConfig | None = None,
                  progress: Callable[[int], None] | None = None) -> TearReport:
    """Run ``rides`` rides of ``cards`` riders on one composite-purchase validator; the same arguments give the same
    run. ``tear_share``: the share of taps torn at a random exchange (before or after the card processes it);
    ``abandon_share``: the share of torn taps after which the rider walks away; ``restart_share``: the share of rides
    after which the validator is restarted on the same journal. ``journal_path``: a SQLite journal (default: memory).
    """
    rng = random.Random(seed)
    station = ValidatorStation("validator", TERMINAL, ManualClock(START), config=config, journal_path=journal_path)
    report = TearReport()
    try:
        run_rides([station], riders(cards, seed), rides, rng, report, tear_share=tear_share,
                  abandon_share=abandon_share, restart_share=restart_share, progress=progress)
    finally:
        station.close()
    return report
