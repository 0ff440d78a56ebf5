"""``ykt read`` through real third-party peers (pcscd with vpcd, and the PN532 emulated on a pty), then ``ykt card
import``: the capture makes a twin whose ``ykt card show`` matches the card's public files and whose tap gets the
card's outcome. Every command runs as a user runs it, as a separate process."""

from __future__ import annotations

import datetime as dt
import json
import signal
import subprocess
from pathlib import Path

import pytest

from sim.fixture import load_fixture, save_fixture
from sim.issuing import issue_card, load_demo_keyset
from sim.psam import demo_psam
from sim.reader import SimReader, SimSamSlot
from terminal.clock import ManualClock
from terminal.fares import load_fares
from terminal.journal import MemoryJournal
from terminal.tracefile import read_trace
from terminal.validator import Validator

from .conftest import CARD_READER, READY_TIMEOUT_S, wait_reader
from .pn532_fixtures import YKT, run, ykt_sim_pn532

pytestmark = pytest.mark.peers

ROOT = Path(__file__).resolve().parents[2]
FARES = ROOT / "sim" / "fares" / "demo-flat.toml"
PUBLIC = ("serial", "blocked", "public_info", "cardholder", "management", "transaction_log", "process_records",
          "transit_log", "balance", "offline_atc", "online_atc", "overdraft_limit")


def rider_card(path: Path) -> Path:
    """A card with a history: two rides taken at a simulated validator, so its log and records are not empty."""
    card = issue_card(load_demo_keyset(), serial="03103640000000000077", balance=5000)
    validator = Validator(SimReader(card, timing=None), SimSamSlot(demo_psam(), timing=None), load_fares(FARES),
                          MemoryJournal(), clock=ManualClock(dt.datetime(2026, 3, 2, 8, 0)))
    validator.start()
    for _ in range(2):
        outcome = validator.poll()
        assert outcome is not None and outcome.accepted
        validator.clock.advance(dt.timedelta(minutes=30))  # type: ignore[attr-defined]
    save_fixture(card, path)
    return path


def card_show(path: Path) -> dict:
    shown = run([*YKT, "card", "show", str(path), "--json", "--records", "30"])
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)


def tap(path: Path) -> tuple:
    validator = Validator(SimReader(load_fixture(path), timing=None), SimSamSlot(demo_psam(), timing=None),
                          load_fares(FARES), MemoryJournal(), clock=ManualClock(dt.datetime(2026, 3, 3, 9, 0)))
    validator.start()
    outcome = validator.poll()
    assert outcome is not None
    return outcome.status, outcome.decline, outcome.fare, outcome.balance_before, outcome.balance_after


def check_capture_and_twin(tmp_path: Path, card: Path, reader: str) -> dict:
    capture, twin = tmp_path / "capture.jsonl", tmp_path / "twin.json"
    read = run([*YKT, "read", "--reader", reader, "--out", str(capture), "--json", "--wait", "20"], timeout=120)
    assert read.returncode == 0, read.stderr
    view = json.loads(read.stdout)
    assert view["scheme"] == "T-Union purse 交通联合" and view["balance"] == 4600
    assert view["counters"]["offline_atc"] == 2 and len(view["records"]["18"]) == 2
    trace = read_trace(capture)
    assert trace.header.tool.startswith("ykt read (yikatong ") and len(trace.exchanges()) == view["exchanges"]
    imported = run([*YKT, "card", "import", str(capture), "--out", str(twin), "--json"])
    assert imported.returncode == 0, imported.stderr
    facts = json.loads(imported.stdout)
    shown_card, shown_twin = card_show(card), card_show(twin)
    assert {key: shown_twin[key] for key in PUBLIC} == {key: shown_card[key] for key in PUBLIC}
    assert tap(twin) == tap(card)
    assert tap(twin)[0].value == "accepted"
    return facts


def test_read_through_pcscd_and_vpcd_then_import(pcscd, tmp_path: Path) -> None:
    card = rider_card(tmp_path / "card.json")
    server = subprocess.Popen([*YKT, "sim", "vpcd", "--card", str(card), "--port", str(pcscd.port)],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_reader(CARD_READER, present=True)
        facts = check_capture_and_twin(tmp_path, card, "pcsc:0")
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=READY_TIMEOUT_S) == 0
        wait_reader(CARD_READER, present=False)
    # PC/SC gives an ATR, not the card's ISO 14443-4 activation: the twin says it took an issued card's
    assert "no ISO 14443-4 activation in the capture: UID, ATQA, SAK and ATS are an issued card's" in facts["notes"]


def test_read_through_the_emulated_pn532_then_import(tmp_path: Path) -> None:
    card = rider_card(tmp_path / "card.json")
    link = tmp_path / "pn532"
    with ykt_sim_pn532(card, link) as emulator:
        facts = check_capture_and_twin(tmp_path, card, f"pn532:{link}")
        emulator.send_signal(signal.SIGTERM)
        assert emulator.wait(timeout=15) == 0
    assert not any("activation" in note for note in facts["notes"])  # the PN532 reports UID, SAK and ATS
    assert card_show(tmp_path / "twin.json")["uid"] == card_show(card)["uid"]
