"""tshark decodes the captures of ``ykt trace export`` as ISO 7816 APDUs.

Written against TShark (Wireshark) 4.0.17, Debian 12's package (4.0.17-0+deb12u3). Link type 264 goes to Wireshark's
``iso14443`` dissector, which reassembles chained I-blocks and hands their payload to ``iso7816`` when told to with
``-d iso14443.subdissector,iso7816``. Fields read: ``iso7816.apdu.ins``, ``iso7816.apdu.body``, ``iso7816.apdu.sw1``,
``iso7816.apdu.sw2`` (printed as ``0xa4``, lower-case hex bodies), ``iso14443.apdu_reassembled.length``,
``iso14443.apdu_fragment.count``, ``frame.interface_name``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import subprocess
from pathlib import Path

import pytest

from sim.card import SimCard
from sim.cli import run
from sim.fixture import load_image
from sim.tap import CARD_LINK, SAM_LINK, run_tap
from terminal.clock import ManualClock
from terminal.tracefile import TraceWriter, read_trace

from .conftest import require_tool

pytestmark = pytest.mark.peers

ROOT = Path(__file__).resolve().parents[2]
DEMO_CARD = ROOT / "sim" / "fixtures" / "demo-card.json"
DECODE_AS = ("-d", "iso14443.subdissector,iso7816")


@pytest.fixture(autouse=True)
def _tshark_installed() -> None:
    """Skip (fail in CI) before any work when tshark is missing, naming the Debian package."""
    require_tool("tshark", "tshark")


def tshark(capture: Path, *args: str) -> str:
    done = subprocess.run([require_tool("tshark", "tshark"), "-r", str(capture), *DECODE_AS, *args],
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    return done.stdout


def fields(capture: Path, *names: str) -> list[list[str]]:
    out = tshark(capture, "-Y", "iso7816", "-T", "fields", *(arg for name in names for arg in ("-e", name)))
    return [line.split("\t") for line in out.splitlines()]


def exported(tmp_path: Path, name: str, card: SimCard | None = None) -> tuple[Path, Path]:
    trace = tmp_path / "t.jsonl"
    if card is None:
        assert run(["tap", "--card", str(DEMO_CARD), "--at", "2026-03-02 08:00:00", "--trace", str(trace),
                    "--json"]) == 0
    else:
        clock = ManualClock(dt.datetime(2026, 3, 2, 8))
        with TraceWriter(trace, links=[(CARD_LINK, "card"), (SAM_LINK, "sam")], tool="test", clock=clock) as writer:
            assert run_tap(card, clock, tracer=writer).outcome.accepted
    capture = tmp_path / name
    assert run(["trace", "export", str(trace), "--pcap", str(capture)]) == 0
    return trace, capture


def test_tshark_decodes_the_select_and_every_status_word(tmp_path):
    trace, capture = exported(tmp_path, "t.pcap")
    rows = fields(capture, "iso7816.apdu.ins", "iso7816.apdu.body", "iso7816.apdu.sw1", "iso7816.apdu.sw2")
    recorded = read_trace(trace).exchanges(CARD_LINK)
    assert len(rows) == 2 * len(recorded) == 10
    commands, answers = rows[0::2], rows[1::2]
    assert commands[0] == ["0xa4", "a000000632010105", "", ""]  # SELECT by DF name, the T-Union AID
    assert commands[1][:2] == ["0xb0", ""]  # READ BINARY
    for (_, body, sw1, sw2), exchange in zip(answers, recorded, strict=True):
        assert (sw1, sw2) == (f"0x{exchange.response[-2]:02x}", f"0x{exchange.response[-1]:02x}")
        assert body == exchange.response[:-2].hex()
    assert answers[0][1].startswith("6f318408a000000632010105")  # the FCI


def test_tshark_shows_the_apdus_by_name(tmp_path):
    _, capture = exported(tmp_path, "t.pcapng")
    out = tshark(capture, "-V", "-Y", "frame.number <= 11")
    for text in ("Interface name: reader", "Event: Data transfer PCD -> PICC (0xfe)", "REQA", "ATQA", "RATS", "ATS",
                 "ISO 7816 Command APDU", "Instruction: Select file (0xa4)", "Selection control: Direct selection by "
                 "DF name (0x04)", "APDU Body: a000000632010105", "ISO 7816 Response APDU",
                 "Status Word SW1: Normal processing (0x90)"):
        assert text in out, text


def test_tshark_reassembles_chained_blocks(tmp_path):
    """A card with FSC 16 (ATS T0 70): UPDATE CAPP DATA CACHE (53 bytes) goes in five I-blocks, DEBIT (21) in two."""
    image = dataclasses.replace(load_image(DEMO_CARD), ats=bytes.fromhex("0570777002"))
    trace, capture = exported(tmp_path, "t.pcapng", SimCard(image))
    rows = fields(capture, "frame.interface_name", "iso14443.apdu_reassembled.length",
                  "iso14443.apdu_fragment.count", "iso7816.apdu.sw1")
    reassembled = [(int(length), int(count)) for _, length, count, _ in rows if length]
    assert reassembled == [(17, 2), (53, 5), (21, 2)]  # INITIALIZE, UPDATE CAPP DATA CACHE 0x1E, DEBIT
    assert {row[0] for row in rows} == {"reader"}
    assert [row[3] for row in rows if row[3]] == ["0x90"] * 5
    assert len(read_trace(trace).exchanges(CARD_LINK)) == 5
