"""Scenario: cards torn away at every exchange of every flow, riders coming back early, late or never.

Two parts, both counted from what the cards committed (:class:`~sim.witness.Witness`), not from what the terminals
believed:

* **Every exchange of every flow** (:data:`~.flows.FLOWS`): a clean run of the flow counts its card exchanges; then,
  for each exchange, a tear before the card processes it and a tear after it committed it, each followed by each way
  of coming back (:data:`MODES`): early, late (past the recovery window, the same ride), at the next ride (past
  ``retap_same_ride_s``) and never. A fresh card for each, at the flow's own stations.
* **A population of riders** (T-Union and M1 cards) at every station at once (simple and composite purchases,
  section fares, a second validator of the line, a top-up machine), random tears (half at the command that commits),
  random delays, walking away, restarts: the bulk of the taps.

Must be 0: rides charged twice (or loads credited twice), new rides taken for a torn one, debits or loads a card
committed that no record holds, settled rows no card committed, TACs that do not verify, taps that put a terminal out
of service, planned tears that never happened. Money: what the cards paid equals what the journals hold as complete
plus what they hold open of debits the cards made, at every station.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

from ..reader import Tear
from ..tears import RIDE_GAPS, TearReport, m1_riders, ride, riders, run_rides
from ..witness import Kind, Witness
from .campaign import Campaign, Figures
from .flows import FLOWS, STATIONS, Bench, Flow

MODES: dict[str, tuple[tuple[int, ...], float]] = {
    "early": ((1, 2, 5, 10, 29), 0.0),
    "late": ((30, 31, 45, 90, 600, 1800), 0.0),
    "next ride": ((3600, 3 * 3600, 2 * 86400), 0.0),
    "never": ((1,), 1.0),
}
"""Ways of coming back after a torn tap: the delays drawn from (seconds), and the share of riders who walk away."""
FULL_TAPS = 10_000


def card_tears(campaign: Campaign) -> Figures:
    figures = Figures("tears", "Cards torn at every exchange of every flow; riders back early, late or never")
    rng = random.Random(f"tears {campaign.seed}")
    systematic, population = TearReport(), TearReport()
    lengths = {flow.name: _exchanges(campaign, flow, n) for n, flow in enumerate(FLOWS)}
    cases = sum(2 * len(MODES) * length for length in lengths.values())
    rides = campaign.size(300, 20_000)
    missed = 0
    numbered = 0
    with campaign.progress("tears", cases + rides, "ride") as advance:
        for n, flow in enumerate(FLOWS):
            bench = Bench(_directory(campaign, f"flow-{n}"))
            try:
                for at in range(lengths[flow.name]):
                    for committed in (False, True):
                        for delays, abandon in MODES.values():
                            numbered += 1
                            card = _card(campaign, numbered, flow.card)
                            missed += not _case(bench, flow, card, Tear(at=at, committed=committed), delays, abandon,
                                                rng, systematic)
                            advance(1)
                systematic.audited(bench.audit())
            finally:
                bench.close()
        bench = Bench(_directory(campaign, "population"))
        try:
            bench.cards = riders(40, campaign.seed, first=100_000) + m1_riders(10, campaign.seed, first=100_000)
            for card in bench.cards:
                campaign.keys.add_card(card.card.image)
            run_rides([bench[name] for name in STATIONS], bench.cards, rides, rng, population, restart_share=0.01,
                      progress=lambda _: advance(1))
        finally:
            bench.close()
    for text in (*systematic.details, *population.details):
        campaign.said(text)
    _figures(figures, campaign, lengths, systematic, population, missed)
    return figures


def _directory(campaign: Campaign, name: str) -> Path:
    path = campaign.path("tears") / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def _card(campaign: Campaign, number: int, kind: str = "cpu") -> Witness:
    [card] = (m1_riders if kind == "m1" else riders)(1, campaign.seed, first=number)
    campaign.keys.add_card(card.card.image)
    return card


def _exchanges(campaign: Campaign, flow: Flow, number: int) -> int:
    """How many card exchanges the flow's tap makes when nothing goes wrong."""
    bench = Bench(_directory(campaign, f"dry-run-{number}"))
    try:
        card = _card(campaign, 0, flow.card)
        flow.prepare(bench, card)
        result = bench[flow.station].tap(card)
        if result is None or result.again:
            raise RuntimeError(f"{flow.name}: the clean tap did not finish ({result})")
        return result.exchanges
    finally:
        bench.close()


def _case(bench: Bench, flow: Flow, card: Witness, tear: Tear, delays: Sequence[int], abandon: float,
          rng: random.Random, report: TearReport) -> bool:
    """One torn tap of ``flow`` and what the rider does next; whether the tear happened."""
    bench.clock.advance(rng.choice(RIDE_GAPS))
    bench.cards.append(card)
    since = flow.prepare(bench, card)
    tears = report.tears
    ride(bench[flow.station], card, rng, report, tear_share=0.0, abandon_share=abandon, delays=delays,
         first_tear=tear, since=len(card.committed) if since is None else since)
    return report.tears > tears


def _figures(figures: Figures, campaign: Campaign, lengths: dict[str, int], systematic: TearReport,
             population: TearReport, missed: int) -> None:
    both = (systematic, population)
    taps = sum(r.taps for r in both)
    figures.count("flows", len(lengths))
    figures.count("exchanges_per_flow", lengths)
    figures.count("torn_cases", sum(2 * len(MODES) * n for n in lengths.values()))
    figures.count("taps", taps)
    figures.count("taps_every_exchange", systematic.taps)
    figures.count("taps_population", population.taps)
    figures.count("rides", sum(r.rides for r in both))
    figures.count("tears", sum(r.tears for r in both))
    figures.count("torn_after_commit", sum(r.torn_after_commit for r in both))
    figures.count("retaps", sum(r.retaps for r in both))
    figures.count("retaps_past_recovery_window", sum(r.late_retaps for r in both))
    figures.count("retaps_as_new_ride", sum(r.new_ride_retaps for r in both))
    figures.count("walked_away", sum(r.abandoned for r in both))
    figures.count("restarts", population.restarts)
    figures.count("recovered", sum(r.recovered for r in both))
    audits = [a for r in both for a in r.audits]
    debits = [a for a in audits if a.kind is Kind.DEBIT]
    loads = [a for a in audits if a.kind is Kind.LOAD]
    figures.count("debits_committed", sum(a.committed for a in debits))
    figures.count("loads_committed", sum(a.committed for a in loads))
    figures.count("fen_taken_from_cards", sum(a.fen_cards for a in debits))
    figures.count("fen_journaled_complete", sum(a.fen_settled for a in debits))
    figures.count("fen_journaled_open", sum(a.fen_open for a in debits))
    figures.count("fen_loaded_onto_cards", sum(a.fen_cards for a in loads))
    figures.count("fen_loads_settled", sum(a.fen_settled for a in loads))
    figures.count("fen_loads_open", sum(a.fen_open for a in loads))
    figures.count("tacs_verified", sum(a.verified for a in audits))
    figures.must_be_zero("double_charges", sum(r.double_charges for r in both))
    figures.must_be_zero("free_rides", sum(r.free_rides for r in both))
    figures.must_be_zero("lost_debits", sum(a.lost for a in debits))
    figures.must_be_zero("lost_loads", sum(a.lost for a in loads))
    figures.must_be_zero("phantom_rows", sum(a.phantom for a in audits))
    figures.must_be_zero("unverifiable_tacs", sum(a.unverifiable for a in audits))
    figures.must_be_zero("out_of_service", sum(r.out_of_service for r in both))
    figures.must_be_zero("tears_missed", missed)
    figures.must_hold("money_journaled_equals_money_taken", all(a.balanced for a in audits))
    if not campaign.quick:
        figures.must_hold(f"at_least_{FULL_TAPS}_taps", taps >= FULL_TAPS)
    for audit in audits:
        if audit.lost or audit.phantom or audit.unverifiable or not audit.balanced:
            figures.note(f"{audit.station}: {audit.as_dict()}")
