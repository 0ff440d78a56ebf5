"""Riders, tears and late re-taps: does any rider pay twice for one ride, is any debit a card made lost?

A validator on the simulated reader serves a population of cards, one ride at a time. A share of the taps are torn
away at a random exchange, before or after the card processes it; the rider is then told "please tap again" (or
"card removed before payment") and taps again after a delay drawn from early, late (at and past the recovery window)
and very late (hours, days), or walks away and never comes back for that ride. The validator may be restarted between
rides (a new :class:`~terminal.validator.Validator` on the same journal).

What is counted comes from the cards themselves, not from the validator: each card is wrapped in a :class:`Witness`
that sees every debit the card commits (its counter moves), so a ride whose taps made the card commit two debits is a
double charge, whatever the validator believed. At the end every committed debit must be in the journal, complete or
still open for the back office, and nothing the cards did not commit may be journaled complete.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from protocols.card_files import TRANSACTION_LOG_RECORD
from terminal.clock import ManualClock
from terminal.config import ValidatorConfig
from terminal.fares import load_fares
from terminal.journal import Journal, MemoryJournal, SqliteJournal
from terminal.link import Activation
from terminal.outcome import Decline, TapOutcome, TapStatus
from terminal.records import DebitState
from terminal.validator import Validator

from .card import SimCard
from .issuing import LOCAL_ISSUER, issue_card, load_demo_keyset
from .psam import demo_psam
from .reader import SimReader, SimSamSlot, Tear

DEMO_FARES = Path(__file__).resolve().parent / "fares" / "demo-flat.toml"
START = dt.datetime(2026, 11, 24, 7, 0, 0)
FARE = 200  # the demo flat fare for the normal card type every rider here holds
RETAP_DELAYS = (1, 2, 5, 10, 29, 30, 30, 31, 45, 90, 600, 3 * 3600, 2 * 86400)
"""Seconds between a torn tap and the rider's next try: early, exactly at the 30-second recovery window, past it,
hours and days late."""
EXCHANGES = 6  # a flat-fare tap: SELECT, READ 0x17, INITIALIZE, 80DC 0x1E, DEBIT, and one for a recovery


@dataclass(frozen=True, slots=True)
class Committed:
    """A debit a card committed: its serial, its counter before the debit, the amount, the terminal it names."""

    serial: bytes
    atc: int
    amount: int
    terminal: bytes


class Witness:
    """A simulated card that also records every debit it commits (its offline counter moves): the truth a test
    compares the journal with. Implements :class:`sim.device.Device`."""

    def __init__(self, card: SimCard) -> None:
        self.card = card
        self.committed: list[Committed] = []

    def power_on(self) -> Activation:
        return self.card.power_on()

    def execute(self, apdu: bytes) -> bytes:
        image = self.card.image
        atc, balance = image.purse.offline_atc, image.purse.balance
        response = self.card.execute(apdu)
        if image.purse.offline_atc != atc:
            record = TRANSACTION_LOG_RECORD.parse(image.transaction_log[0])  # the record this debit wrote
            self.committed.append(Committed(self.card.serial, atc, balance - image.purse.balance,
                                            record.terminal_number))
        return response

    @property
    def serial(self) -> bytes:
        return self.card.serial


@dataclass
class TearReport:
    """What a run did and what it found. ``double_charges`` (rides whose card committed more than one debit),
    ``lost`` (debits a card committed that the journal holds neither complete nor open) and ``phantom`` (rows complete
    in the journal that no card committed) must all be 0."""

    rides: int = 0
    taps: int = 0
    tears: int = 0
    torn_after_commit: int = 0
    retaps: int = 0
    late_retaps: int = 0
    abandoned: int = 0
    restarts: int = 0
    recovered: int = 0
    double_charges: int = 0
    lost: int = 0
    phantom: int = 0
    fen_taken: int = 0
    fen_complete: int = 0
    fen_open_committed: int = 0
    out_of_service: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def journal_truth(journal: Journal, witnesses: list[Witness], report: TearReport, terminal: bytes) -> None:
    """Compare the journal of the validator whose PSAM is ``terminal`` with what the cards committed there: fills
    ``lost``, ``phantom`` and the money figures."""
    committed = {(c.serial, c.atc): c for w in witnesses for c in w.committed if c.terminal == terminal}
    complete: dict[tuple[bytes, int], int] = {}
    open_rows: dict[tuple[bytes, int], int] = {}
    for entry in journal.entries():
        rec = entry.record
        key = (rec.card_serial, rec.offline_atc)
        if rec.state is DebitState.COMPLETE:
            complete[key] = rec.amount
        elif rec.state in (DebitState.PENDING, DebitState.UNCONFIRMED):
            open_rows[key] = rec.amount
    report.fen_taken = sum(c.amount for c in committed.values())
    report.fen_complete = sum(complete.values())
    report.fen_open_committed = sum(amount for key, amount in open_rows.items() if key in committed)
    report.lost = sum(1 for key in committed if key not in complete and key not in open_rows)
    report.phantom = sum(1 for key in complete if key not in committed)


def run_tear_loop(rides: int, seed: int, *, cards: int = 40, tear_share: float = 0.2, abandon_share: float = 0.1,
                  restart_share: float = 0.01, journal_path: Path | None = None,
                  config: ValidatorConfig | None = None,
                  progress: Callable[[int], None] | None = None) -> TearReport:
    """Run ``rides`` rides of ``cards`` riders on one validator; the same arguments give the same run.

    ``tear_share``: the share of taps torn at a random exchange (before or after the card processes it);
    ``abandon_share``: the share of torn taps after which the rider walks away; ``restart_share``: the share of rides
    after which the validator is restarted on the same journal. ``journal_path``: a SQLite journal (default: memory).
    """
    rng = random.Random(seed)
    keyset = load_demo_keyset()
    witnesses = [Witness(issue_card(keyset, issuer_id=LOCAL_ISSUER, serial=f"0310{LOCAL_ISSUER[2:4].hex()}{n:012d}",
                                    balance=10_000_000, start=dt.date(2024, 1, 1), expiry=dt.date(2044, 1, 1),
                                    randbytes=random.Random(seed * 1000 + n).randbytes))
                 for n in range(cards)]
    clock = ManualClock(START)
    reader, sam = SimReader(timing=None), SimSamSlot(demo_psam(), timing=None)
    journal: Journal = MemoryJournal(clock=clock) if journal_path is None else SqliteJournal(journal_path, clock=clock)
    fares = load_fares(DEMO_FARES)
    config = config or ValidatorConfig()
    window = config.recovery_window_s

    def new_validator() -> Validator:
        validator = Validator(reader, sam, fares, journal, clock=clock, config=config)
        validator.start()
        return validator

    validator = new_validator()
    report = TearReport()

    def tap(witness: Witness) -> TapOutcome | None:
        if rng.random() < tear_share:
            report.tears += 1
            after = rng.random() < 0.5
            report.torn_after_commit += after
            reader.plan_tear((Tear.after if after else Tear.before)(rng.randrange(EXCHANGES)))
        report.taps += 1
        reader.put(witness)
        try:
            outcome = validator.poll()
        finally:
            if reader.present:
                reader.take()
            reader.cancel_tears()
        if outcome is not None:
            name = outcome.decline.name.lower() if outcome.decline else outcome.status.value
            report.outcomes[name] = report.outcomes.get(name, 0) + 1
            report.recovered += outcome.recovered
            report.out_of_service += outcome.status is TapStatus.OUT_OF_SERVICE
        return outcome

    try:
        for ride in range(rides):
            witness = rng.choice(witnesses)
            clock.advance(rng.choice((1, 2, 3, 5, 8, 20, 40, 90)))
            before = len(witness.committed)
            report.rides += 1
            outcome = tap(witness)
            while outcome is not None and (outcome.status is TapStatus.RETRY
                                           or outcome.decline is Decline.CARD_REMOVED):
                if rng.random() < abandon_share:
                    report.abandoned += 1
                    break
                delay = rng.choice(RETAP_DELAYS)
                report.retaps += 1
                report.late_retaps += delay >= window
                clock.advance(delay)
                outcome = tap(witness)
            if len(witness.committed) - before > 1:
                report.double_charges += 1
            if rng.random() < restart_share:
                report.restarts += 1
                validator = new_validator()
            if progress is not None:
                progress(ride + 1)
        clock.advance(window)
        validator.expire()
        journal.flush()
        journal_truth(journal, witnesses, report, validator.psam.terminal_id)
    finally:
        journal.close()
    return report
