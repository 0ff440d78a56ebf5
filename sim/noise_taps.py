"""Taps over a noisy serial line: the validator, the PN532 driver, a relay that damages bytes, the emulated PN532.

Everything on the path is the real code: :class:`~terminal.validator.Validator` drives
:class:`~terminal.drivers.pn532.Pn532Link`, which opens a pty like any serial port; behind it a
:class:`~sim.serial_noise.NoisyRelay` corrupts or drops a given fraction of bytes each way and passes the rest to the
emulated PN532 (:class:`~sim.pn532.Pn532PtyServer`) on its own pty, with a simulated card in its field. Only the PSAM
is in-process (its slot is not a serial line) and the clock is a manual one, so that fares, repeat-tap and recovery
windows do not depend on how long the noise makes a tap.

Each tap takes the card out of the field and puts it back, then polls once. A tap *completes* when it ends accepted
(the rider paid, or was proven to have paid). A tap that ends in "please tap again" is tapped again at once, as a
rider would, until its debit is settled: those taps are counted apart and do not make the first one complete. Money
is checked at the end: what the card lost equals what the journal holds as complete, or the run reports the
difference (a wrong charge).
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from protocols.errors import YktError
from terminal.clock import ManualClock
from terminal.fares import load_fares
from terminal.journal import Journal, MemoryJournal
from terminal.link import Link
from terminal.outcome import TapOutcome, TapStatus
from terminal.records import DebitState
from terminal.validator import Validator

from .device import Device
from .issuing import issue_card, load_demo_keyset
from .pn532 import Pn532Chip, Pn532PtyServer
from .psam import SimPsam
from .reader import SimSamSlot
from .serial_noise import LineNoise, NoisyRelay

FARES = Path(__file__).resolve().parent / "fares" / "demo-flat.toml"
SERIAL = "03103640000000000077"
TERMINAL = bytes.fromhex("200041599997")
START = dt.datetime(2025, 3, 1, 7, 0, 0)
BALANCE = 9_000_000  # 90,000.00 yuan: room for 45,000 taps at 2.00
POLL_S = 2.0
RETAPS = 5  # taps again after "please tap again" before the debit is left to the back office


@dataclass(slots=True)
class NoiseRun:
    """Figures of one run: ``taps`` made, ``completed`` of them, the others by what ended them (``failures``:
    ``retry`` with its detail, a decline reason, or the name of the exception ``poll()`` raised)."""

    rate: float
    seed: int
    drop_share: float
    taps: int = 0
    completed: int = 0
    failures: collections.Counter[str] = field(default_factory=collections.Counter)
    retaps: int = 0
    """Extra taps made after "please tap again"."""
    unsettled: int = 0
    """Debits still pending after the extra taps."""
    fen_taken: int = 0
    """What the card lost."""
    fen_journaled: int = 0
    """What the journal holds as complete."""
    slowest_poll_s: float = 0.0
    """The longest one poll took (a tap, with the driver's resends and waits)."""
    bytes_damaged: int = 0
    bytes_sent: int = 0
    resent: int = 0
    nacks: int = 0
    reopened: int = 0

    @property
    def completion(self) -> float:
        return self.completed / self.taps if self.taps else 0.0

    @property
    def wrong_fen(self) -> int:
        """Money taken from the card that the journal does not hold as complete (or the reverse, negative)."""
        return self.fen_taken - self.fen_journaled

    def as_dict(self) -> dict[str, object]:
        return {"rate": self.rate, "seed": self.seed, "drop_share": self.drop_share, "taps": self.taps,
                "completed": self.completed, "completion": round(self.completion, 6),
                "failures": dict(sorted(self.failures.items())), "retaps": self.retaps, "unsettled": self.unsettled,
                "fen_taken": self.fen_taken, "fen_journaled": self.fen_journaled, "wrong_fen": self.wrong_fen,
                "bytes_sent": self.bytes_sent, "bytes_damaged": self.bytes_damaged, "resent": self.resent,
                "nacks": self.nacks, "reopened": self.reopened, "slowest_poll_s": round(self.slowest_poll_s, 3)}


def _failure(outcome: TapOutcome) -> str:
    if outcome.status is TapStatus.RETRY:
        return "retry: " + outcome.detail.split(":")[0]
    if outcome.decline is not None:
        return f"{outcome.status.value}: {outcome.decline.name.lower()}"
    return outcome.status.value


@contextlib.contextmanager
def pn532_on_a_line(card: Device, directory: Path, *, to_device: LineNoise,
                    to_host: LineNoise) -> Iterator[tuple[Pn532PtyServer, NoisyRelay]]:
    """The emulated PN532 with ``card`` in its field on a pty in ``directory``, and a relay with this noise on the
    line to it (the driver opens ``relay.link``); both stopped at the end."""
    server = Pn532PtyServer(Pn532Chip(card), directory / "pn532").start()
    relay = NoisyRelay(server.link, directory / "noisy", to_device=to_device, to_host=to_host)
    try:
        relay.start()
        yield server, relay
    finally:
        relay.shutdown()
        server.shutdown()


def line_validator(link: Link, journal: Journal, clock: ManualClock) -> Validator:
    """A started validator on ``link`` with the PSAM in process (terminal :data:`TERMINAL`) and the flat fare."""
    sam = SimSamSlot(SimPsam(load_demo_keyset(), TERMINAL, tsn=1), timing=None)
    validator = Validator(link, sam, load_fares(FARES), journal, clock=clock)
    validator.start()
    return validator


def run_noisy_taps(taps: int, rate: float, *, seed: int = 1, drop_share: float = 0.5,
                   workdir: Path | None = None, progress: Callable[[NoiseRun], None] | None = None) -> NoiseRun:
    """Make ``taps`` taps through a line that damages ``rate`` of the bytes each way; see the module docstring."""
    from terminal.drivers.pn532 import Pn532Link

    run = NoiseRun(rate, seed, drop_share)
    card = issue_card(load_demo_keyset(), serial=SERIAL, balance=BALANCE)
    to_device = LineNoise(rate, seed, "host->device", drop_share)
    to_host = LineNoise(rate, seed, "device->host", drop_share)
    clock = ManualClock(START)
    journal = MemoryJournal(clock=clock)
    with tempfile.TemporaryDirectory(prefix="ykt-noise-", dir=workdir) as directory, \
            pn532_on_a_line(card, Path(directory), to_device=to_device, to_host=to_host) as (server, relay), \
            Pn532Link(str(relay.link)) as link:
        validator = line_validator(link, journal, clock)
        for _ in range(taps):
            clock.advance(61)  # past the repeat-tap window
            outcome = _tap(validator, server, run)
            run.taps += 1
            if outcome is not None and outcome.accepted:
                run.completed += 1
            elif outcome is not None:
                run.failures[_failure(outcome)] += 1
            if outcome is not None and outcome.status is TapStatus.RETRY:
                _settle(validator, server, run, clock)
            if progress is not None:
                progress(run)
        run.resent, run.nacks = link.wire.resent, link.wire.nacks_sent
        run.reopened = link.reopened
    run.fen_taken = BALANCE - card.balance
    run.fen_journaled = sum(entry.record.amount for entry in journal.entries([DebitState.COMPLETE]))
    run.unsettled = len(journal.pending())
    run.bytes_sent = to_device.seen + to_host.seen
    run.bytes_damaged = run.bytes_sent - to_device.passed - to_host.passed
    return run


def _tap(validator: Validator, server: Pn532PtyServer, run: NoiseRun) -> TapOutcome | None:
    """One tap: the card leaves the field and comes back, the validator polls once. ``None`` when the tap ended in
    an exception (counted by its type) or found no card."""
    server.retap()
    started = time.monotonic()
    try:
        outcome = validator.poll(POLL_S)
    except YktError as exc:
        run.failures[f"raised {type(exc).__name__}"] += 1
        return None
    finally:
        run.slowest_poll_s = max(run.slowest_poll_s, time.monotonic() - started)
    if outcome is None:
        run.failures["no card found"] += 1
    return outcome


def _settle(validator: Validator, server: Pn532PtyServer, run: NoiseRun, clock: ManualClock) -> None:
    """Tap again after "please tap again" until the pending debit is settled (or :data:`RETAPS` tries)."""
    for _ in range(RETAPS):
        if not validator.pending:
            return
        clock.advance(1)
        run.retaps += 1
        try:
            server.retap()
            validator.poll(POLL_S)
        except YktError:
            continue
