"""Scenario: a noisy serial line, and a reader that stops answering.

Everything on the path is the real code: the validator drives the PN532 driver, which opens a pty like any serial
port; behind it the emulated PN532 on a pty of its own, with a simulated card in its field.

* **Noise** (:func:`sim.noise_taps.run_noisy_taps`): a relay corrupts or drops 0.1% and 1% of the bytes each way.
  The targets (full run): at least 99.9% and 99% of taps complete; whatever fails ends in a typed outcome or the
  documented :class:`~terminal.errors.ReaderGone`; what the card lost equals what the journal holds.
* **A chip that goes silent mid-tap**: once the card has processed command *k* of a tap (each *k* of a tap's
  commands in the full run, DEBIT in the quick one), the line goes dead both ways; after the poll has ended the line
  comes back and the rider taps again until the validator has nothing pending for the card.
* **A chip that goes silent between taps**, and **a port that goes away** (the emulator's pty closed under the open
  port, then a new emulator on the same path): the polls meanwhile end in ``None`` or ``ReaderGone``, and once the
  reader is back the next taps are accepted.

Must be 0: exceptions out of ``poll()`` other than ``ReaderGone``, polls longer than :data:`HANG_S`, taps out of
service, money the card lost that the journal does not hold complete (or the reverse), debits left pending after the
rider's taps again, a reader back in service that does not take the next taps.
"""

from __future__ import annotations

import tempfile
import time
from collections import Counter
from pathlib import Path

from protocols.errors import YktError
from terminal.clock import ManualClock
from terminal.errors import OutOfService, ReaderGone
from terminal.journal import MemoryJournal
from terminal.outcome import TapOutcome
from terminal.records import DebitState
from terminal.validator import Validator

from ..card import SimCard
from ..issuing import issue_card, load_demo_keyset
from ..noise_taps import SERIAL as NOISE_SERIAL
from ..noise_taps import START, line_validator, pn532_on_a_line, run_noisy_taps
from ..pn532 import Pn532Chip, Pn532PtyServer
from ..serial_noise import LineNoise
from .campaign import Campaign, Figures
from .intercept import Intercepted

RATES = ((0.001, 0.999), (0.01, 0.99))
"""Noise rates and the share of taps that must complete at each (full run)."""
HANG_S = 60.0  # a poll longer than this is a hang (the driver's own timeouts end a silent poll in a few seconds)
POLL_S = 2.0
BALANCE = 1_000_000
RETAPS = 5


class _FallsSilent(Intercepted):
    """A card in the emulator's field; once it has processed command ``at`` of a tap (counted from 0 since it was
    powered), every byte on the line is lost both ways until :meth:`speak` brings the line back."""

    def __init__(self, card: SimCard, line: tuple[LineNoise, LineNoise]) -> None:
        super().__init__(card)
        self.line = line
        self.at: int | None = None

    def answer(self, index: int, apdu: bytes, answer: bytes) -> bytes:
        if index == self.at:
            self.silence()
        return answer

    def silence(self) -> None:
        for noise in self.line:
            noise.rate, noise.drop_share = 1.0, 1.0

    def speak(self) -> None:
        self.at = None
        for noise in self.line:
            noise.rate = 0.0


class _Polls:
    """Polls of a validator, timed and classified."""

    def __init__(self, campaign: Campaign) -> None:
        self.campaign = campaign
        self.counts: Counter[str] = Counter()
        self.slowest = 0.0

    def poll(self, validator: Validator) -> TapOutcome | None:
        started = time.monotonic()
        try:
            outcome = validator.poll(POLL_S)
        except ReaderGone as exc:
            self.counts["reader_gone_raised"] += 1
            self.campaign.said(str(exc))
            return None
        except OutOfService as exc:
            self.counts["out_of_service"] += 1
            self.campaign.said(str(exc))
            return None
        except YktError as exc:
            self.counts["undocumented_exceptions"] += 1
            self.campaign.said(f"{type(exc).__name__}: {exc}")
            return None
        finally:
            took = time.monotonic() - started
            self.slowest = max(self.slowest, took)
            self.counts["polls"] += 1
            self.counts["hangs"] += took > HANG_S
        if outcome is not None:
            self.counts[f"outcome {outcome.decline.name.lower() if outcome.decline else outcome.status.value}"] += 1
            self.campaign.said(outcome.detail)
        return outcome


def noisy_and_silent_line(campaign: Campaign) -> Figures:
    figures = Figures("serial", "A noisy serial line, and a reader that stops answering")
    where = campaign.path("serial")
    where.mkdir(parents=True, exist_ok=True)
    taps = {0.001: campaign.size(30, 1000), 0.01: campaign.size(15, 1000)}
    campaign.keys.add_card(issue_card(load_demo_keyset(), serial=NOISE_SERIAL).image)  # the noisy taps' card
    for rate, target in RATES:
        with campaign.progress(f"serial noise {rate:.1%}", taps[rate], "tap") as advance:
            run = run_noisy_taps(taps[rate], rate, seed=campaign.seed, workdir=where, progress=lambda _: advance(1))
        name = f"noise_{rate:.1%}"
        figures.count(f"{name}_taps", run.taps)
        figures.count(f"{name}_completed", run.completed)
        figures.count(f"{name}_failures", dict(sorted(run.failures.items())))
        figures.count(f"{name}_bytes_damaged", run.bytes_damaged)
        figures.count(f"{name}_slowest_poll_s", round(run.slowest_poll_s, 2))
        figures.must_be_zero(f"{name}_wrong_fen", run.wrong_fen)
        figures.must_be_zero(f"{name}_unsettled", run.unsettled)
        figures.must_be_zero(f"{name}_undocumented_exceptions",
                             sum(n for what, n in run.failures.items()
                                 if what.startswith("raised ") and what != "raised ReaderGone"))
        figures.must_be_zero(f"{name}_hangs", int(run.slowest_poll_s > HANG_S))
        if not campaign.quick:
            figures.must_hold(f"{name}_completion_at_least_{target:.1%}", run.completion >= target)
    _silences(campaign, figures, where)
    return figures


def _silences(campaign: Campaign, figures: Figures, where: Path) -> None:
    from terminal.drivers.pn532 import Pn532Link

    polls = _Polls(campaign)
    card = issue_card(load_demo_keyset(), serial="03103640000000000078", balance=BALANCE)
    campaign.keys.add_card(card.image)
    line = (LineNoise(0.0, campaign.seed, "host->device"), LineNoise(0.0, campaign.seed, "device->host"))
    device = _FallsSilent(card, line)
    clock = ManualClock(START)
    journal = MemoryJournal(clock=clock)
    back: Counter[str] = Counter()
    with tempfile.TemporaryDirectory(prefix="silent-", dir=where) as directory, \
            pn532_on_a_line(device, Path(directory), to_device=line[0], to_host=line[1]) as (server, relay), \
            Pn532Link(str(relay.link)) as link:
        validator = line_validator(link, journal, clock)
        clock.advance(61)
        server.retap()
        clean = polls.poll(validator)
        commands = device.commands if clean is not None and clean.accepted else 0
        figures.count("commands_of_a_tap", commands)
        # quick: silent once DEBIT has reached the card; full: at every command, three times, and between taps
        cases = [commands - 1] if campaign.quick else [at for _ in range(3) for at in range(commands)]
        between = campaign.size(0, 3)
        with campaign.progress("silent reader", len(cases) + between, "case") as advance:
            for at in cases:
                device.at = at
                _tap(validator, server, clock, polls)
                device.speak()
                back[_come_back(validator, server, clock, polls)] += 1
                advance(1)
            if between:
                device.silence()
                for _ in range(between):
                    _tap(validator, server, clock, polls)
                    advance(1)
                device.speak()
                back[_come_back(validator, server, clock, polls)] += 1
        figures.count("silent_mid_tap_cases", len(cases))
        figures.count("silent_between_taps_polls", between)
    second = MemoryJournal(clock=clock)  # a validator of its own (its PSAM's serials start again)
    with tempfile.TemporaryDirectory(prefix="gone-", dir=where) as directory:
        path = Path(directory) / "pn532"
        server = Pn532PtyServer(Pn532Chip(device), path).start()
        try:
            with Pn532Link(str(path)) as link:
                validator = line_validator(link, second, clock)
                server.shutdown()  # the pty goes away under the open port
                for _ in range(2):
                    _tap(validator, None, clock, polls)
                server = Pn532PtyServer(Pn532Chip(device), path).start()
                back[_come_back(validator, server, clock, polls, fresh=True)] += 1
                figures.count("port_reopened", link.reopened)
        finally:
            server.shutdown()
    fen_taken = BALANCE - card.balance
    fen_journaled = sum(e.record.amount for j in (journal, second) for e in j.entries([DebitState.COMPLETE]))
    figures.count("polls", polls.counts["polls"])
    figures.count("reader_gone_raised", polls.counts["reader_gone_raised"])
    figures.count("outcomes", {k[8:]: v for k, v in sorted(polls.counts.items()) if k.startswith("outcome ")})
    figures.count("slowest_poll_s", round(polls.slowest, 2))
    figures.count("fen_taken_from_the_card", fen_taken)
    figures.count("fen_journaled_complete", fen_journaled)
    figures.must_be_zero("wrong_fen", fen_taken - fen_journaled)
    figures.must_be_zero("left_open", sum(len(list(j.open_rows())) for j in (journal, second)))
    figures.must_be_zero("undocumented_exceptions", polls.counts["undocumented_exceptions"])
    figures.must_be_zero("out_of_service", polls.counts["out_of_service"])
    figures.must_be_zero("hangs", polls.counts["hangs"])
    figures.must_be_zero("reader_back_but_taps_failing", back["failing"])
    figures.must_hold("a_tap_went_through_before_the_silences", commands > 0)


def _tap(validator: Validator, server: Pn532PtyServer | None, clock: ManualClock, polls: _Polls) -> None:
    clock.advance(61)  # past the repeat-tap window: every tap is a ride
    if server is not None:
        server.retap()
    polls.poll(validator)


def _come_back(validator: Validator, server: Pn532PtyServer, clock: ManualClock, polls: _Polls, *,
               fresh: bool = False) -> str:
    """The reader answers again: the rider taps again until the validator has nothing pending and a tap is accepted;
    ``"back"`` when that happened within :data:`RETAPS` taps, ``"failing"`` when not."""
    for _ in range(RETAPS):
        clock.advance(1 if validator.pending and not fresh else 61)
        fresh = False
        server.retap()
        outcome = polls.poll(validator)
        if outcome is not None and outcome.accepted and not validator.pending:
            return "back"
    return "failing"
