"""Taps through a noisy serial line: the validator and our PN532 driver against the emulated PN532 on a real pty, a
relay between them corrupting or dropping a seeded fraction of the bytes each way (``sim.noise_taps``). The targets:
at 0.1% of bytes damaged at least 99.9% of taps complete, at 1% at least 99%; what fails ends in a typed outcome
(nothing but the documented ReaderGone may escape ``poll()``, and here nothing does); the card never loses money that
the journal does not hold."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
from pathlib import Path

import pytest

from sim.card import SimCard
from sim.fixture import load_image, save_fixture
from sim.issuing import issue_card, load_demo_keyset
from sim.noise_taps import FARES, TERMINAL, run_noisy_taps
from sim.pn532 import Pn532Chip, Pn532PtyServer
from sim.process import YKT, YktProcess, pn532_emulator
from sim.psam import SimPsam
from sim.reader import SimSamSlot
from sim.serial_noise import LineNoise, NoisyRelay
from terminal.clock import ManualClock
from terminal.drivers.pn532 import Pn532Link
from terminal.fares import load_fares
from terminal.journal import MemoryJournal
from terminal.link import Activation
from terminal.outcome import TapStatus
from terminal.records import DebitState
from terminal.validator import Validator

pytestmark = pytest.mark.peers


@pytest.mark.parametrize("rate, taps, target", [(0.001, 300, 0.999), (0.01, 200, 0.99)])
def test_taps_complete_through_a_noisy_line(rate: float, taps: int, target: float, tmp_path: Path) -> None:
    run = run_noisy_taps(taps, rate, seed=1, workdir=tmp_path)
    figures = run.as_dict()
    assert run.taps == taps and run.bytes_damaged > 0, figures
    assert run.completion >= target, figures
    assert not [what for what in run.failures if what.startswith("raised")], figures
    assert run.unsettled == 0 and run.wrong_fen == 0 and run.fen_journaled >= 200 * run.completed, figures


class Gate(LineNoise):
    """A line that loses every byte while ``closed``."""

    closed = False

    def apply(self, data: bytes) -> bytes:
        return b"" if self.closed else super().apply(data)


class CutAfterDebit:
    """The card, and the line to the host cut the moment the card has committed a DEBIT: its answer never leaves."""

    def __init__(self, card: SimCard, gate: Gate) -> None:
        self.card, self.gate, self.debits = card, gate, 0

    def power_on(self) -> Activation:
        return self.card.power_on()

    def execute(self, apdu: bytes) -> bytes:
        answer = self.card.execute(apdu)
        if apdu[:2] == b"\x80\x54":
            self.debits += 1
            self.gate.closed = True
        return answer


def test_a_debit_whose_answer_is_lost_is_pending_never_sent_again_and_settled_by_the_card(tmp_path: Path) -> None:
    keyset = load_demo_keyset()
    card = issue_card(keyset, serial="03103640000000000042", balance=5000)
    gate = Gate(0.0)
    watched = CutAfterDebit(card, gate)
    clock = ManualClock(dt.datetime(2025, 3, 1, 8, 30, 5))
    journal = MemoryJournal(clock=clock)
    with Pn532PtyServer(Pn532Chip(watched), tmp_path / "pn532") as server, \
            NoisyRelay(server.link, tmp_path / "line", to_device=LineNoise(0.0), to_host=gate) as relay, \
            Pn532Link(str(relay.link), retries=2, wake_timeout=0.2) as link:
        validator = Validator(link, SimSamSlot(SimPsam(keyset, TERMINAL, tsn=1), timing=None),
                              load_fares(FARES), journal, clock=clock)
        validator.start()
        torn = validator.poll(2.0)
        assert torn is not None and torn.status is TapStatus.RETRY, torn
        assert "DEBIT unanswered" in torn.detail
        assert [entry.record.state for entry in journal.entries()] == [DebitState.PENDING]
        assert watched.debits == 1 and card.balance == 4800  # the card paid; the validator does not know yet
        gate.closed = False  # the line is back
        clock.advance(2)
        server.retap()
        settled = validator.poll(2.0)
    assert settled is not None and settled.accepted and settled.recovered, settled
    assert watched.debits == 1 and card.balance == 4800  # DEBIT never went twice
    assert [entry.record.state for entry in journal.entries()] == [DebitState.COMPLETE]
    assert link.reopened >= 1


def test_ykt_validate_through_ykt_sim_noise_to_ykt_sim_pn532(tmp_path: Path) -> None:
    fixture, chip_link, noisy = tmp_path / "card.json", tmp_path / "pn532", tmp_path / "noisy"
    save_fixture(issue_card(load_demo_keyset(), serial="03103640000000000042", balance=5000), fixture)
    emulator = pn532_emulator(fixture, chip_link, "--save", log=tmp_path / "pn532.log")
    relay = YktProcess(["sim", "noise", "--device", str(chip_link), "--link", str(noisy), "--rate", "0.01",
                        "--seed", "3"], ready=noisy.is_symlink, log=tmp_path / "noise.log")
    with emulator, relay:
        result = subprocess.run([*YKT, "validate", "--reader", f"pn532:{noisy}", "--sam", "sim:psam", "--taps", "1",
                                 "--journal", str(tmp_path / "v.db")], stdin=subprocess.DEVNULL,
                                capture_output=True, text=True, timeout=120, check=False)
        assert relay.stop() == 0
    assert result.returncode == 0, result.stderr
    assert "paid 2.00, balance 48.00" in result.stdout
    assert load_image(fixture).purse.balance == 4800
    log = relay.log.read_text()
    assert f"ykt sim noise: 1.00% of bytes damaged (seed 3) on {noisy} -> {chip_link}" in log
    assert re.search(r"ykt sim noise: to the device: \d+ bytes, \d+ corrupted, \d+ lost", log), log
