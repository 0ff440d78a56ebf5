"""A simulated M1 card behind real pcscd, through vpcd: pcscd shows the PC/SC storage-card ATR of a MIFARE Classic
1K, and a third-party client (pcsc-tools' scriptor) reads and debits it with PC/SC part 3 pseudo-APDUs, as it would
through an ACR122U."""

from __future__ import annotations

import subprocess

import pytest

from protocols.mifare import KeyType
from sim.card.m1_issuing import issue_m1_card
from sim.issuing import load_demo_keyset

from .conftest import CARD_READER, require_tool

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
