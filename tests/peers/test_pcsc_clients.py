"""Third-party PC/SC clients (OpenSC's opensc-tool, pcsc-tools' scriptor) read the served card: SELECT the T-Union
application and GET BALANCE, through pcscd, with no code of ours on the client side."""

from __future__ import annotations

import subprocess

import pytest

from sim.issuing import issue_card, load_demo_keyset

from .conftest import CARD_READER, require_tool

pytestmark = pytest.mark.peers

SELECT = "00A4040008A000000632010105"
GET_BALANCE = "805C000204"
BALANCE = 12345  # fen: 00 00 30 39


@pytest.fixture
def card_served(serve):
    card = issue_card(load_demo_keyset(), serial="03103640000000000077", balance=BALANCE)
    return serve(card)


def test_opensc_tool_reads_the_balance(card_served) -> None:
    tool = require_tool("opensc-tool", "opensc")
    # -c default: no driver probing (otherwise about 50 probe APDUs go first)
    run = subprocess.run([tool, "-r", "0", "-c", "default", "-s", SELECT, "-s", GET_BALANCE],
                         capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == "Sending: 00 A4 04 00 08 A0 00 00 06 32 01 01 05 "
    assert lines[1] == "Received (SW1=0x90, SW2=0x00):"
    assert lines[2].startswith("6F 31 84 08 A0 00 00 06 32 01 01 05 ")  # FCI with the application's AID
    balance_at = lines.index("Sending: 80 5C 00 02 04 ")
    assert lines[balance_at + 1] == "Received (SW1=0x90, SW2=0x00):"
    assert lines[balance_at + 2].startswith("00 00 30 39 ")
    assert [command[:2].hex().upper() for command, _ in card_served.card_slot.history] == ["00A4", "805C"]


def test_scriptor_reads_the_balance(card_served) -> None:
    tool = require_tool("scriptor", "pcsc-tools")
    run = subprocess.run([tool, "-r", CARD_READER], input=f"{SELECT}\n{GET_BALANCE}\n", capture_output=True,
                         text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stderr
    assert "> 80 5C 00 02 04 \n< 00 00 30 39 90 00 : Normal processing." in run.stdout
    assert "Using T=1 protocol" in run.stdout  # PC/SC shows a contactless card as T=1
