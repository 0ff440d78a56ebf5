"""``ykt load`` on real reader software: through pcscd (vpcd) against ``ykt loadhost serve`` over HTTP, as an
over-the-air load runs, and through the emulated PN532 with the in-process host; each as a user runs the commands."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest

from sim.fixture import load_image, save_fixture
from sim.issuing import issue_card, load_demo_keyset
from sim.loadhost import LedgerState, LoadLedger

from .conftest import CARD_READER, READY_TIMEOUT_S, wait_reader
from .pn532_fixtures import YKT, run, ykt_sim_pn532
from .test_pcsc_validate import Lines

pytestmark = pytest.mark.peers

SERIAL = "03103640000000000066"
PHONE_TOKEN = "demo-phone-app-0002-test-only"


def test_ykt_load_through_pcscd_against_ykt_loadhost_serve(pcscd, tmp_path: Path) -> None:
    fixture, ledger = tmp_path / "card.json", tmp_path / "ledger.db"
    save_fixture(issue_card(load_demo_keyset(), serial=SERIAL, balance=5000), fixture)
    card = subprocess.Popen([*YKT, "sim", "vpcd", "--card", str(fixture), "--port", str(pcscd.port), "--save"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    host = subprocess.Popen([*YKT, "loadhost", "serve", "--listen", "127.0.0.1:0", "--ledger", str(ledger)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    card_status, host_log = Lines(card.stderr), Lines(host.stderr)  # type: ignore[arg-type]
    try:
        url = host_log.wait_for("load host listening on ").split()[-1]
        wait_reader(CARD_READER, present=True)
        done = run([*YKT, "load", "--reader", "pcsc:0", "--amount", "2500", "--host", url, "--token", PHONE_TOKEN,
                    "--terminal", "200041590002", "--journal", str(tmp_path / "phone.db"), "--json"])
        assert done.returncode == 0, done.stderr
        outcome = json.loads(done.stdout)
        assert (outcome["status"], outcome["balance_before"], outcome["balance_after"], outcome["confirmed"],
                outcome["card_serial"], outcome["apdus"]) == ("loaded", 5000, 7500, True, SERIAL, 3)
    finally:
        for proc in (card, host):
            proc.send_signal(signal.SIGTERM)
        assert card.wait(timeout=READY_TIMEOUT_S) == 0, card_status.rest()
        assert host.wait(timeout=READY_TIMEOUT_S) == 0, host_log.rest()
        wait_reader(CARD_READER, present=False)
    assert any(f"the card's state is in {fixture} (written" in line for line in card_status.rest())
    image = load_image(fixture)
    assert (image.purse.balance, image.purse.online_atc) == (7500, 1)
    with LoadLedger(ledger, readonly=True) as book:
        (load,) = book.loads()
    assert (load.state, load.amount, load.tac, load.terminal.hex()) == \
        (LedgerState.CONFIRMED, 2500, bytes.fromhex(outcome["tac"]), "200041590002")


def test_ykt_load_through_the_emulated_pn532(tmp_path: Path) -> None:
    fixture, link = tmp_path / "card.json", tmp_path / "pn532"
    save_fixture(issue_card(load_demo_keyset(), serial=SERIAL, balance=1000), fixture)
    files = ["--journal", str(tmp_path / "loads.db"), "--ledger", str(tmp_path / "host.db")]
    with ykt_sim_pn532(fixture, link, "--save") as proc:
        done = run([*YKT, "load", "--reader", f"pn532:{link}", "--amount", "9000", *files])
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("loaded 90.00 CNY onto card 3103640000000000066: balance 10.00 -> 100.00 "
                                      "(load 1, TAC ")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=READY_TIMEOUT_S) == 0
    assert load_image(fixture).purse.balance == 10000
    with LoadLedger(tmp_path / "host.db", readonly=True) as book:
        assert [(load.state, load.amount) for load in book.loads()] == [(LedgerState.CONFIRMED, 9000)]
