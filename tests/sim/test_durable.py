"""A simulated card kept in its fixture file: written before each answer that changed the card, atomically, and never
for a read-only command; ``ykt validate --save`` with a ``sim:`` card."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from protocols import card_commands as cc
from protocols.fci import T_UNION_EP_AID
from sim.cli import run
from sim.durable import DurableCard
from sim.fixture import FixtureError, dumps, load_image, save_fixture
from tests.terminal.validator_support import Rig, card


def _stamp(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_ino, stat.st_mtime_ns


def test_each_debit_is_on_disk_when_its_answer_returns(tmp_path: Path) -> None:
    fixture = tmp_path / "card.json"
    plain = card(balance=1000)
    save_fixture(plain, fixture)
    durable = DurableCard(plain, fixture)
    rig = Rig()
    for tap in range(3):
        outcome = rig.tap(durable, advance=120)  # type: ignore[arg-type]
        assert outcome is not None and outcome.accepted
        on_disk = load_image(fixture)
        assert (on_disk.purse.balance, on_disk.purse.offline_atc) == (1000 - 200 * (tap + 1), tap + 1)
        assert fixture.read_text() == dumps(plain.image)
    assert durable.writes == 3  # one write a debit, none for SELECT, READ BINARY, INITIALIZE, UPDATE...


def test_read_only_commands_write_nothing(tmp_path: Path) -> None:
    fixture = tmp_path / "card.json"
    plain = card()
    save_fixture(plain, fixture)
    before = _stamp(fixture)
    durable = DurableCard(plain, fixture)
    durable.power_on()
    for apdu in (cc.SelectByName(T_UNION_EP_AID).to_bytes(), cc.GetBalance().to_bytes(),
                 cc.ReadBinary(0x17, 0, 60).to_bytes(), cc.GetChallenge(4).to_bytes(), b"\x00\xff"):
        durable.execute(apdu)
    assert durable.writes == 0 and _stamp(fixture) == before
    assert not [name for name in os.listdir(tmp_path) if name != "card.json"]  # no temporary file left


def test_a_fixture_that_cannot_be_written_is_a_typed_error(tmp_path: Path) -> None:
    fixture = tmp_path / "gone" / "card.json"
    durable = DurableCard(card(balance=1000), fixture)
    with pytest.raises(FixtureError, match="cannot write next to it"):
        Rig().tap(durable)  # type: ignore[arg-type]


def _validate(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = run(["validate", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_ykt_validate_save_keeps_the_sim_card_in_its_fixture(capsys, tmp_path: Path) -> None:
    fixture = tmp_path / "card.json"
    save_fixture(card(balance=1000), fixture)
    code, out, err = _validate(capsys, "--reader", f"sim:{fixture}", "--sam", "sim:psam", "--taps", "2", "--save",
                               "--json", "--journal", str(tmp_path / "v.db"), "--config", str(_config(tmp_path)))
    assert code == 0, err
    taps = [json.loads(line) for line in out.splitlines()]
    assert [tap["status"] for tap in taps] == ["accepted", "accepted"]
    image = load_image(fixture)
    assert (image.purse.balance, image.purse.offline_atc) == (600, 2)


def test_ykt_validate_without_save_leaves_the_fixture(capsys, tmp_path: Path) -> None:
    fixture = tmp_path / "card.json"
    save_fixture(card(balance=1000), fixture)
    before = fixture.read_bytes()
    code, _, err = _validate(capsys, "--reader", f"sim:{fixture}", "--sam", "sim:psam", "--taps", "1",
                             "--journal", str(tmp_path / "v.db"))
    assert code == 0, err
    assert fixture.read_bytes() == before


@pytest.mark.parametrize("reader", ["sim:random", "pcsc:0", "pn532:/dev/null"])
def test_ykt_validate_save_needs_a_sim_fixture(capsys, reader: str, tmp_path: Path) -> None:
    code, _, err = _validate(capsys, "--reader", reader, "--sam", "sim:psam", "--save",
                             "--journal", str(tmp_path / "v.db"))
    assert code == 2
    assert "--save needs a sim:<fixture file> card reader" in err


def _config(directory: Path) -> Path:
    """Settings with no repeat-tap window: a sim: card is tapped again at once."""
    path = directory / "validator.toml"
    path.write_text("format = 1\nrepeat_tap_s = 0\n")
    return path
