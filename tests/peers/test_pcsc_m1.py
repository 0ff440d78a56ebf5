"""A simulated M1 card behind real pcscd, through vpcd: pcscd shows the PC/SC storage-card ATR of a MIFARE Classic
1K, a third-party client (pcsc-tools' scriptor) reads and debits it with PC/SC part 3 pseudo-APDUs, as it would
through an ACR122U, and ``ykt validate --reader pcsc:0`` takes a ride from it."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest

from protocols.mifare import KeyType
from sim.card.m1_issuing import issue_m1_card
from sim.fixture import load_fixture, save_fixture
from sim.issuing import load_demo_keyset
from terminal.journal import SqliteJournal
from terminal.records import DebitState
from terminal.settlement import verify

from .conftest import (
    CARD_READER,
    READY_TIMEOUT_S,
    SAM_READER,
    require_tool,
    wait_reader,
)
from .test_pcsc_validate import YKT, Lines

pytestmark = pytest.mark.peers

KEYSET = load_demo_keyset()


def test_scriptor_reads_and_debits_an_m1_card(serve) -> None:
    tool = require_tool("scriptor", "pcsc-tools")
    card = issue_m1_card(KEYSET, issuer_serial=bytes.fromhex("00000042"), balance=10000)
    served = serve(card)
    assert served.card_slot.atr.hex().upper() == "3B8F8001804F0CA000000306030001000000006A"
    uid = card.image.uid
    key6, key2 = (KEYSET.m1_sector_key(KeyType.A, uid, sector, 1).hex().upper() for sector in (6, 2))
    script = "\n".join([
        "FFCA000000",
        f"FF82000006{key6}", "FF860000050100186000", "FFB0001810",
        f"FF82000006{key2}", "FF860000050100086000", "FFD700090502000000C8", "FFB1000904",
    ]) + "\n"
    run = subprocess.run([tool, "-r", CARD_READER], input=script, capture_output=True, text=True, timeout=60,
                         check=False)
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert "< 40 C2 AB 5C 90 00 : Normal processing." in out
    assert "< 08 00 00 00 00 00 00 00 FF FF FF FF FF FF FF F7 \n90 00 : Normal processing." in out  # (16 a line)
    assert "< 00 00 26 48 90 00 : Normal processing." in out  # 9800 fen after the decrement
    assert card.balance == 9800
    sent = [command.hex().upper()[:4] for command, _ in served.card_slot.history]
    assert sent == ["FFCA", "FF82", "FF86", "FFB0", "FF82", "FF86", "FFD7", "FFB1"]


def test_ykt_validate_debits_an_m1_card_through_pcscd(pcscd, tmp_path: Path) -> None:
    """``ykt validate --reader pcsc:0 --sam pcsc:1`` with an M1 card served by ``ykt sim vpcd``: pcscd shows the
    storage-card ATR, the validator runs its M1 flow with pseudo-APDUs through pcscd, and the T=0 PSAM answers the
    sector keys, the auth code and the transaction MAC; the MAC verifies as the back office checks it."""
    fixture, db = tmp_path / "m1.json", tmp_path / "validator.db"
    card = issue_m1_card(KEYSET, issuer_serial=bytes.fromhex("00000042"), city=bytes.fromhex("2900"), balance=5000)
    save_fixture(card, fixture)
    server = subprocess.Popen([*YKT, "sim", "vpcd", "--card", str(fixture), "--sam", "psam", "--sam-tsn", "100",
                               "--port", str(pcscd.port), "--save"], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    status = Lines(server.stderr)  # type: ignore[arg-type]
    try:
        wait_reader(CARD_READER, present=True)
        wait_reader(SAM_READER, present=True)
        result = subprocess.run([*YKT, "validate", "--reader", "pcsc:0", "--sam", "pcsc:1", "--taps", "1",
                                 "--journal", str(db), "--json"], capture_output=True, text=True, timeout=120,
                                stdin=subprocess.DEVNULL, check=False)
        assert result.returncode == 0, result.stderr
        tap = json.loads(result.stdout)
        assert (tap["status"], tap["technology"], tap["fare"], tap["balance_before"], tap["balance_after"],
                tap["card_serial"], tap["apdus"]) == \
            ("accepted", "m1", 200, 5000, 4800, "00002900000100000042", 31 + 4 + 3)  # T=0: 3 GET RESPONSE
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=READY_TIMEOUT_S) == 0, status.rest()
        wait_reader(CARD_READER, present=False)
    assert load_fixture(fixture).balance == 4800
    with SqliteJournal(db, readonly=True) as journal:
        [entry] = journal.entries()
    assert (entry.record.technology.value, entry.record.state, entry.record.tsn) == ("m1", DebitState.COMPLETE, 100)
    assert entry.record.tac is not None and entry.record.tac.hex().upper() == tap["tac"]
    report = verify(db, KEYSET)
    assert report.ok and report.verified == 1
