"""Power cuts: the processes that hold a simulated card (``ykt sim pn532 --save``, ``ykt sim vpcd --save``,
``ykt validate --save`` with a ``sim:`` card) killed with SIGKILL at random moments while taps run, then started
again. After each kill the fixture on disk is whole and holds exactly what the card committed: every debit the
validator journaled as complete is on the card, every debit on the card is in the journal (complete, or pending
when its answer never left), and the balance matches the counter."""

from __future__ import annotations

import datetime as dt
import random
import signal
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from sim.fixture import load_image, save_fixture
from sim.issuing import issue_card, load_demo_keyset
from sim.process import YktProcess, pn532_emulator
from sim.psam import SimPsam
from sim.reader import SimSamSlot
from terminal.clock import ManualClock
from terminal.errors import ReaderGone
from terminal.fares import load_fares
from terminal.journal import Journal, SqliteJournal
from terminal.link import Link
from terminal.records import DebitState
from terminal.validator import Validator

from .conftest import CARD_READER, wait_reader

pytestmark = pytest.mark.peers

FARES = Path(__file__).resolve().parents[2] / "sim" / "fares" / "demo-flat.toml"
SERIAL = "03103640000000000042"
TERMINAL = bytes.fromhex("200041599997")
FARE = 200
ROUNDS = 4
START = dt.datetime(2025, 3, 1, 8, 0, 0)


def new_card(path: Path, balance: int = 100_000) -> None:
    save_fixture(issue_card(load_demo_keyset(), serial=SERIAL, balance=balance), path)


def counters(fixture: Path) -> tuple[int, int]:
    """The card's offline ATC and balance as the file holds them; loading fails on a half-written file."""
    purse = load_image(fixture).purse
    return purse.offline_atc, purse.balance


def check_card_against_journal(fixture: Path, journal: Path, before: tuple[int, int]) -> int:
    """What must hold after a kill; returns how many debits the card committed since ``before``."""
    atc, balance = counters(fixture)
    start_atc, start_balance = before
    assert balance == start_balance - FARE * (atc - start_atc)
    with SqliteJournal(journal, readonly=True) as read:
        rows = [entry.record for entry in read.entries()]
    complete = [row.offline_atc for row in rows if row.state is DebitState.COMPLETE]
    assert len(complete) == len(set(complete)), "a debit journaled twice"
    assert all(row_atc < atc for row_atc in complete), "a debit journaled as complete that is not on the card"
    journaled = {row.offline_atc for row in rows if row.state is not DebitState.VOID}
    missing = [debit for debit in range(start_atc, atc) if debit not in journaled]
    assert not missing, f"debits on the card and not in the journal: counters {missing}"
    return atc - start_atc


def test_ykt_validate_save_killed_at_random_moments(tmp_path: Path) -> None:
    fixture, config = tmp_path / "card.json", tmp_path / "validator.toml"
    new_card(fixture)
    config.write_text("format = 1\nrepeat_tap_s = 0\n")
    rng = random.Random(5)
    debits = 0
    for round_ in range(ROUNDS):
        before = counters(fixture)
        journal = tmp_path / f"run{round_}.db"  # a sim:psam starts its TSN at the Unix time: a journal per run
        validator = YktProcess(["validate", "--reader", f"sim:{fixture}", "--save", "--sam", "sim:psam",
                                "--taps", "100000", "--journal", str(journal), "--config", str(config), "--json"],
                               ready=journal.exists, log=tmp_path / "validate.log")
        with validator:
            threading.Event().wait(rng.uniform(0.3, 1.5))
            assert validator.kill() == -9
        debits += check_card_against_journal(fixture, journal, before)
    assert debits > 0


def started_validator(reader: Link, journal: Journal, clock: ManualClock) -> Validator:
    sam = SimSamSlot(SimPsam(load_demo_keyset(), TERMINAL, tsn=1), timing=None)
    validator = Validator(reader, sam, load_fares(FARES), journal, clock=clock)
    validator.start()
    return validator


def tap_until_killed(validator: Validator, clock: ManualClock, server: YktProcess, delay: float, *, step: float,
                     poll_s: float, before_tap: Callable[[], None] = lambda: None) -> None:
    """Taps, ``step`` seconds apart on the validator's clock, until ``server`` has been killed ``delay`` seconds in."""
    killer = threading.Timer(delay, server.kill)
    killer.start()
    while killer.is_alive():
        clock.advance(step)
        before_tap()
        try:
            validator.poll(poll_s)
        except ReaderGone:
            continue  # the server is gone; the reader is tried again at the next poll
    killer.join()


def test_ykt_sim_pn532_save_killed_at_random_moments_and_restarted(tmp_path: Path) -> None:
    from terminal.drivers.pn532 import Pn532Link

    fixture, link, journal_path = tmp_path / "card.json", tmp_path / "pn532", tmp_path / "validator.db"
    new_card(fixture)
    rng = random.Random(7)
    clock = ManualClock(START)
    debits = 0
    emulator = pn532_emulator(fixture, link, "--save", log=tmp_path / "pn532.log").start()

    def retap() -> None:  # the card leaves the field and comes back: a released card is listed again
        if emulator.proc is not None and emulator.running:
            emulator.proc.send_signal(signal.SIGUSR1)

    try:
        with Pn532Link(str(link), list_timeout=0.05) as reader, SqliteJournal(journal_path) as journal:
            validator = started_validator(reader, journal, clock)
            for _ in range(ROUNDS):
                before = counters(fixture)
                tap_until_killed(validator, clock, emulator, rng.uniform(0.2, 1.0), step=1, poll_s=0.5,
                                 before_tap=retap)
                debits += check_card_against_journal(fixture, journal_path, before)
                emulator.start()
                assert reader.activate(2.0) is not None  # the driver opened the new pty and set the chip up
                reader.deactivate()
    finally:
        emulator.kill()
    assert debits > 0 and reader.reopened >= 1


def test_ykt_sim_vpcd_save_killed_at_random_moments_and_restarted(pcscd, tmp_path: Path) -> None:
    from terminal.drivers.pcsc import PcscLink

    fixture, journal_path = tmp_path / "card.json", tmp_path / "validator.db"
    new_card(fixture)
    rng = random.Random(11)
    clock = ManualClock(START)
    debits = 0

    def card_present() -> bool:
        wait_reader(CARD_READER, present=True)
        return True

    server = YktProcess(["sim", "vpcd", "--card", str(fixture), "--save", "--port", str(pcscd.port)],
                        ready=card_present, log=tmp_path / "vpcd.log").start()
    try:
        with PcscLink(CARD_READER) as reader, SqliteJournal(journal_path) as journal:
            validator = started_validator(reader, journal, clock)
            for _ in range(ROUNDS):
                before = counters(fixture)
                # past the repeat-tap window each time: each poll of the resting card is a tap
                tap_until_killed(validator, clock, server, rng.uniform(0.2, 1.0), step=61, poll_s=0.2)
                debits += check_card_against_journal(fixture, journal_path, before)
                wait_reader(CARD_READER, present=False)
                server.start()
    finally:
        server.kill()
        wait_reader(CARD_READER, present=False)
    assert debits > 0
