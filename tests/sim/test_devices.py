"""Device strings (pcsc:, pn532:, sim:) and ``ykt validate`` on simulated readers; real PC/SC readers are in
tests/peers."""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

import pytest

from sim.cli import run
from sim.devices import (
    DEFAULT_BAUD,
    RANDOM_BALANCE,
    SIM_TERMINAL,
    DeviceError,
    DeviceSpec,
    open_link,
    parse_device,
    sim_psam,
)
from sim.fixture import save_fixture
from sim.issuing import issue_card, load_demo_keyset
from sim.psam import DEFAULT_ATR
from sim.reader import SimReader, SimSamSlot
from terminal.errors import ReaderGone
from terminal.journal import SqliteJournal
from terminal.records import DebitState

KEYSET_FILE = Path(__file__).resolve().parents[2] / "sim" / "keys" / "demo-keyset.json"
SYNTAX = ("expected pcsc:<index or name pattern>, pn532:<serial path>[@baud], or sim:<fixture file | random> (card) "
          "/ sim:psam | sim:<keyset.json> (SAM)")


@pytest.mark.parametrize(("text", "spec"), [
    ("pcsc:0", DeviceSpec("pcsc", "0")),
    ("PCSC:Virtual PCD 00 01", DeviceSpec("pcsc", "Virtual PCD 00 01")),
    ("pcsc:*[CCID Interface] 01 00", DeviceSpec("pcsc", "*[CCID Interface] 01 00")),
    ("pn532:/dev/ttyUSB0", DeviceSpec("pn532", "/dev/ttyUSB0", DEFAULT_BAUD)),
    ("pn532:/tmp/pn532@460800", DeviceSpec("pn532", "/tmp/pn532", 460800)),
    ("pn532:/tmp/a@b/pty@9600", DeviceSpec("pn532", "/tmp/a@b/pty", 9600)),
    ("sim:random", DeviceSpec("sim", "random")),
    ("sim:C:/cards/card.json", DeviceSpec("sim", "C:/cards/card.json")),
])
def test_parse_device(text: str, spec: DeviceSpec) -> None:
    assert parse_device(text) == spec
    assert parse_device(str(spec)) == spec


@pytest.mark.parametrize(("text", "why"), [
    ("xyz", ""),
    ("usb:0", ""),
    ("/dev/ttyUSB0", ""),
    ("pcsc:", "pcsc: needs a target; "),
    ("sim:", "sim: needs a target; "),
    ("pn532:/dev/ttyUSB0@fast", "pn532: 'fast' is not a baud rate; "),
    ("pn532:@9600", "pn532: '9600' is not a baud rate; "),
    ("pn532:/dev/ttyS0@0", "pn532: '0' is not a baud rate; "),
])
def test_bad_device_strings(text: str, why: str) -> None:
    with pytest.raises(DeviceError) as raised:
        parse_device(text)
    assert str(raised.value) == f"bad device {text!r}: {why}{SYNTAX}"


def test_sim_card_from_a_fixture_and_at_random(tmp_path: Path) -> None:
    issued = issue_card(load_demo_keyset(), serial="03103640000000000321", balance=1234)
    save_fixture(issued, tmp_path / "card.json")
    link = open_link(f"sim:{tmp_path / 'card.json'}", role="card")
    assert isinstance(link, SimReader) and link.name == f"sim:{tmp_path / 'card.json'}"
    activation = link.activate(0.1)
    assert activation is not None and (activation.protocol, activation.uid) == ("T=CL", issued.image.uid)
    assert link.device.balance == 1234  # type: ignore[union-attr]
    first, second = open_link("sim:random", role="card"), open_link("sim:random", role="card")
    assert first.device.balance == RANDOM_BALANCE  # type: ignore[union-attr]
    assert first.device.serial[:3] == bytes.fromhex("031036")  # type: ignore[union-attr]
    assert first.device.serial != second.device.serial  # type: ignore[union-attr]


def test_sim_psam_from_the_demo_keys_or_a_key_set_file() -> None:
    link = open_link("sim:psam", role="sam")
    assert isinstance(link, SimSamSlot)
    activation = link.activate(0.1)
    assert activation is not None and (activation.protocol, activation.atr) == ("T=0", DEFAULT_ATR)
    assert link.transceive(bytes.fromhex("00B0960006"), 1.0) == SIM_TERMINAL + b"\x90\x00"
    psam = sim_psam(str(KEYSET_FILE), tsn=41)
    assert (psam.tsn, psam.t0, psam.terminal_number) == (41, True, SIM_TERMINAL)
    now = int(time.time())
    assert now - 5 <= sim_psam("psam").tsn <= now + 5


def test_sim_files_that_are_not_there(tmp_path: Path) -> None:
    with pytest.raises(DeviceError, match=r"sim:/nonexistent/card.json: no card fixture file"):
        open_link("sim:/nonexistent/card.json", role="card")
    with pytest.raises(DeviceError, match=r"sim:nokeys.json: no key set file 'nokeys.json'"):
        open_link("sim:nokeys.json", role="sam")
    with pytest.raises(DeviceError, match="sim:psam: no card fixture file"):
        open_link("sim:psam", role="card")


def test_pn532_is_opened_lazily_and_only_for_cards(monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[tuple[str, int]] = []

    class FakePn532:
        def __init__(self, path: str, baud: int) -> None:
            opened.append((path, baud))

    monkeypatch.setattr("terminal.drivers.pn532.Pn532Link", FakePn532)
    assert isinstance(open_link("pn532:/tmp/pty@230400", role="card"), FakePn532)
    assert opened == [("/tmp/pty", 230400)]
    open_link(DeviceSpec("pn532", "/tmp/pty"), role="card")  # a spec made in code, without a baud rate
    assert opened[-1] == ("/tmp/pty", DEFAULT_BAUD)
    with pytest.raises(DeviceError, match="a PN532 reads contactless cards, it holds no SAM"):
        open_link("pn532:/tmp/pty", role="sam")
    monkeypatch.setitem(sys.modules, "terminal.drivers.pn532", None)
    with pytest.raises(DeviceError, match=r"pn532:/tmp/pty@115200: this build has no PN532 driver"):
        open_link("pn532:/tmp/pty", role="card")


def test_pcsc_without_pyscard_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "smartcard", None)
    with pytest.raises(ReaderGone, match=r"pip install 'yikatong\[pcsc\]'.*libpcsclite-dev"):
        open_link("pcsc:0", role="card")


# --- ykt validate on simulated readers ------------------------------------------------------------------------------

def ykt(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = run(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_ykt_validate_on_a_simulated_card(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    fixture, db = tmp_path / "card.json", tmp_path / "v.db"
    save_fixture(issue_card(load_demo_keyset(), serial="03103640000000000654", balance=300), fixture)
    code, out, err = ykt(capsys, "validate", "--reader", f"sim:{fixture}", "--sam", "sim:psam", "--journal", str(db),
                         "--taps", "3")
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 3
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d  accepted        card 3103640000000000654  "
                        r"paid 2\.00, balance 1\.00  TAC [0-9A-F]{8}  row 1  \(8 APDUs, \d+\.\d ms\)", lines[0])
    # the card never left the field: the same card again, refused after its SELECT
    assert re.fullmatch(r"\S+ \S+  declined        card 3103640000000000654  already paid  \(1 APDU, \d+\.\d ms\)",
                        lines[1])
    assert err.splitlines()[-1] == (f"3 taps: 1 accepted (2.00 CNY charged), 2 declined, 0 to tap again, 0 out of "
                                    f"service; journal {db}")
    with SqliteJournal(db, readonly=True) as journal:
        assert [(e.record.state, e.record.amount) for e in journal.entries()] == [(DebitState.COMPLETE, 200)]


def test_ykt_validate_json_and_one_tap_for_a_sim_card(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    fixture = tmp_path / "card.json"
    save_fixture(issue_card(load_demo_keyset(), serial="03103640000000000655", balance=150), fixture)
    code, out, err = ykt(capsys, "validate", "--reader", f"sim:{fixture}", "--sam", f"sim:{KEYSET_FILE}",
                         "--journal", str(tmp_path / "v.db"), "--json")
    assert code == 0, err
    tap = json.loads(out)
    assert {k: tap[k] for k in ("status", "decline", "card_serial", "fare", "balance_before", "balance_after",
                                "tac", "journal_row", "apdus")} == {
        "status": "declined", "decline": "insufficient_funds", "card_serial": "03103640000000000655", "fare": 200,
        "balance_before": 150, "balance_after": None, "tac": None, "journal_row": None, "apdus": 4}
    assert tap["message"] == "insufficient balance, balance 1.50 (fare 2.00)"
    assert "note: a sim: card is always in the field; stopping after one tap" in err


def test_ykt_validate_runs_in_the_same_second_never_repeat_a_psam_serial(capsys: pytest.CaptureFixture[str],
                                                                          tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A sim: PSAM keeps nothing between runs: it starts past the journal's highest serial for its terminal, so runs
    in the same second on one journal never hand out a serial twice (which would take the validator out of service)."""
    monkeypatch.setattr("sim.devices.time.time", lambda: 1_790_000_000.25)  # every run in the same second
    db = tmp_path / "v.db"
    for _ in range(3):
        code, out, err = ykt(capsys, "validate", "--reader", "sim:random", "--sam", "sim:psam", "--journal", str(db),
                             "--json")
        assert code == 0, err
        assert json.loads(out)["status"] == "accepted", out
    with SqliteJournal(db, readonly=True) as journal:
        assert [e.record.tsn for e in journal.entries()] == [1_790_000_000, 1_790_000_001, 1_790_000_002]
        assert list(journal.events()) == []


def test_ykt_validate_refuses_a_bad_device(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = ykt(capsys, "validate", "--reader", "xyz", "--sam", "sim:psam", "--journal",
                         str(tmp_path / "v.db"))
    assert (code, out) == (2, "")
    assert err == f"ykt: bad device 'xyz': {SYNTAX}\n"
    assert not (tmp_path / "v.db").exists()
