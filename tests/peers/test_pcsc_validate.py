"""``ykt validate --reader pcsc:0 --sam pcsc:1`` against ``ykt sim vpcd``, both as separate processes around the
session's pcscd: the commands the README gives, run as a user runs them."""

from __future__ import annotations

import json
import queue
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO

import pytest

from sim.fixture import load_image, save_fixture
from sim.issuing import issue_card, load_demo_keyset
from sim.psam import SimPsam
from terminal.journal import SqliteJournal
from terminal.records import DebitState
from terminal.settlement import verify

from .conftest import CARD_READER, READY_TIMEOUT_S, SAM_READER, wait_reader

pytestmark = pytest.mark.peers

YKT = [sys.executable, "-c", "from sim.cli import main; main()"]
SERIAL = "03103640000000000055"
TAP_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d  accepted        card 3103640000000000055  "
                      r"paid 2\.00, balance 46\.00  TAC [0-9A-F]{8}  row 2  \(8 APDUs, \d+\.\d ms\)$")


def ykt(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*YKT, *args], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                          check=False)


class Lines:
    """The lines a process writes to a pipe, read on a thread, so that a test can wait for one with a timeout."""

    def __init__(self, pipe: IO[str]) -> None:
        self.seen: list[str] = []
        self._queue: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        threading.Thread(target=self._read, args=(pipe,), daemon=True).start()

    def _read(self, pipe: IO[str]) -> None:
        for line in pipe:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, text: str, timeout: float = READY_TIMEOUT_S) -> str:
        while True:
            try:
                line = self._queue.get(timeout=timeout)
            except queue.Empty:
                pytest.fail(f"no line with {text!r} within {timeout:g} s; seen: {self.seen}", pytrace=False)
            if line is None:
                pytest.fail(f"the process ended without a line with {text!r}; seen: {self.seen}", pytrace=False)
            self.seen.append(line)
            if text in line:
                return line

    def rest(self) -> list[str]:
        """Every line still to come, once the process has ended."""
        while (line := self._queue.get(timeout=READY_TIMEOUT_S)) is not None:
            self.seen.append(line)
        return self.seen


def test_ykt_validate_buys_a_ride_from_ykt_sim_vpcd(pcscd, tmp_path: Path) -> None:
    fixture, db = tmp_path / "card.json", tmp_path / "validator.db"
    save_fixture(issue_card(load_demo_keyset(), serial=SERIAL, balance=5000), fixture)
    server = subprocess.Popen([*YKT, "sim", "vpcd", "--card", str(fixture), "--sam", "psam", "--sam-tsn", "100",
                               "--port", str(pcscd.port), "--save"], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    status = Lines(server.stderr)  # type: ignore[arg-type]
    try:
        wait_reader(CARD_READER, present=True)
        wait_reader(SAM_READER, present=True)

        first = ykt("validate", "--reader", "pcsc:0", "--sam", "pcsc:1", "--taps", "1", "--journal", str(db),
                    "--json")
        assert first.returncode == 0, first.stderr
        tap = json.loads(first.stdout)
        assert (tap["status"], tap["fare"], tap["balance_before"], tap["balance_after"], tap["journal_row"],
                tap["card_serial"], tap["mac2_verified"], tap["apdus"]) == \
            ("accepted", 200, 5000, 4800, 1, SERIAL, True, 8)
        assert re.fullmatch(r"[0-9A-F]{8}", tap["tac"])
        assert "1 tap: 1 accepted (2.00 CNY charged), 0 declined" in first.stderr

        second = ykt("validate", "--reader", "pcsc:Virtual PCD 00 00", "--sam", "pcsc:*01", "--taps", "1",
                     "--journal", str(db))
        assert second.returncode == 0, second.stderr
        assert TAP_LINE.match(second.stdout.strip()), second.stdout
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=READY_TIMEOUT_S) == 0, status.rest()
        wait_reader(CARD_READER, present=False)
        wait_reader(SAM_READER, present=False)
    assert any(f"the card's state is in {fixture} (written 2 times)" in line for line in status.rest())

    assert load_image(fixture).purse.balance == 4600
    with SqliteJournal(db, readonly=True) as journal:
        rows = [journal.get(1).record, journal.get(2).record]
    assert [(r.state, r.amount, r.balance_before, r.tsn) for r in rows] == \
        [(DebitState.COMPLETE, 200, 5000, 100), (DebitState.COMPLETE, 200, 4800, 101)]
    assert rows[0].tac is not None and rows[0].tac.hex().upper() == tap["tac"]
    report = verify(db, load_demo_keyset())
    assert report.ok and report.verified == 2


def test_ykt_validate_stops_on_sigterm_with_a_summary(serve, tmp_path: Path) -> None:
    serve(None, SimPsam(load_demo_keyset(), bytes.fromhex("200041599997"), t0=True))  # an empty card reader
    validator = subprocess.Popen([*YKT, "validate", "--reader", "pcsc:0", "--sam", "pcsc:1", "--journal",
                                  str(tmp_path / "v.db"), "--poll", "0.2"], stdin=subprocess.DEVNULL,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    errors = Lines(validator.stderr)  # type: ignore[arg-type]
    try:
        errors.wait_for("validator ready: card reader pcsc:Virtual PCD 00 00, PSAM pcsc:Virtual PCD 00 01 "
                        "(terminal 200041599997)")
    finally:
        validator.send_signal(signal.SIGTERM)
        code = validator.wait(timeout=READY_TIMEOUT_S)
    assert code == 0
    assert validator.stdout is not None and validator.stdout.read() == ""
    assert errors.rest()[-1] == (f"0 taps: 0 accepted (0.00 CNY charged), 0 declined, 0 to tap again, 0 out of "
                                 f"service; journal {tmp_path / 'v.db'} (stopped by signal)")
