"""Real libnfc tools against the emulated PN532 with a simulated M1 card in its field: ``nfc-list`` shows a MIFARE
Classic, and ``nfc-mfclassic`` reads the whole card with the card's keys (the key file is the card's own ``.mfd``
export) and writes a dump identical to it, block for block; ``ykt sim pn532`` serves an M1 fixture, and ``ykt validate
--reader pn532:LINK`` debits it."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from protocols.mifare import CardSize
from protocols.pn532 import CommandCode
from sim.card.m1_dump import export_mfd
from sim.card.m1_issuing import issue_m1_card
from sim.fixture import save_fixture
from sim.issuing import load_demo_keyset
from terminal.settlement import verify

from .pn532_fixtures import (
    YKT,
    emulated_pn532,
    libnfc_env,
    libnfc_hex,
    require_nfc_tool,
    run,
    ykt_sim_pn532,
)

pytestmark = pytest.mark.peers

KEYSET = load_demo_keyset()


def m1_card(size: CardSize = CardSize.K1, uid: bytes | None = None):  # type: ignore[no-untyped-def]
    return issue_m1_card(KEYSET, issuer_serial=bytes.fromhex("00000042"), balance=5000, size=size, uid=uid)


def test_nfc_list_shows_a_mifare_classic(tmp_path: Path) -> None:
    tool = require_nfc_tool("nfc-list")
    card = m1_card()
    with emulated_pn532(card, tmp_path) as server:
        result = run([tool], env=libnfc_env(server.link))
    assert result.returncode == 0, result.stderr
    assert "1 ISO14443A passive target(s) found:" in result.stdout
    assert "ATQA (SENS_RES): 00  04" in result.stdout
    assert f"UID (NFCID1): {libnfc_hex(card.image.uid)}" in result.stdout
    assert "SAK (SEL_RES): 08" in result.stdout
    assert "ATS:" not in result.stdout


@pytest.mark.parametrize("size,uid,key_type", [
    (CardSize.K1, None, "a"),
    (CardSize.K1, None, "b"),
    (CardSize.K4, bytes.fromhex("04112233445566"), "a"),
], ids=["1k-key-a", "1k-key-b", "4k-7-byte-uid-key-a"])
def test_nfc_mfclassic_reads_the_whole_card(tmp_path: Path, size: CardSize, uid: bytes | None, key_type: str) -> None:
    tool = require_nfc_tool("nfc-mfclassic")
    card = m1_card(size, uid)
    keys, out = tmp_path / "keys.mfd", tmp_path / "out.mfd"
    keys.write_bytes(export_mfd(card.image))
    with emulated_pn532(card, tmp_path) as server:
        result = run([tool, "r", key_type, "u", str(out), str(keys)], env=libnfc_env(server.link), timeout=120)
        received = list(server.chip.received)
    assert result.returncode == 0, result.stdout + result.stderr
    blocks = size.blocks
    assert f"Done, {blocks} of {blocks} blocks read." in result.stdout
    assert out.read_bytes() == keys.read_bytes()  # data, access bits and GPB read from the card; keys from the file
    if size is CardSize.K1:  # (the chip keeps the last 256 commands: a 4K's read is longer)
        auths = [command for command in received
                 if command[0] == CommandCode.InDataExchange and command[2] in (0x60, 0x61)]
        assert len(auths) == size.sectors  # one AUTH per sector, each with the card's own key, none refused


def test_ykt_sim_pn532_serves_an_m1_fixture(tmp_path: Path) -> None:
    tool = require_nfc_tool("nfc-mfclassic")
    fixture, keys, out, link = tmp_path / "m1.json", tmp_path / "keys.mfd", tmp_path / "out.mfd", tmp_path / "pn532"
    card = m1_card()
    save_fixture(card, fixture)
    keys.write_bytes(export_mfd(card.image))
    with ykt_sim_pn532(fixture, link) as proc:
        result = run([tool, "r", "a", "u", str(out), str(keys)], env=libnfc_env(link), timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert out.read_bytes() == keys.read_bytes()
    assert proc.returncode == 0


def test_ykt_validate_debits_an_m1_card_on_the_emulated_pn532(tmp_path: Path) -> None:
    """``ykt validate --reader pn532:LINK`` with an M1 card in the field of ``ykt sim pn532``: the driver turns the
    validator's pseudo-APDUs into the MIFARE commands the chip carries, twice (a second tap after the card left and
    came back), and ``--save`` writes the card's debits back to its fixture."""
    from sim.fixture import load_fixture

    fixture, link = tmp_path / "m1.json", tmp_path / "pn532"
    card = issue_m1_card(KEYSET, issuer_serial=bytes.fromhex("00000042"), city=bytes.fromhex("2900"), balance=5000)
    save_fixture(card, fixture)
    validate = [*YKT, "validate", "--reader", f"pn532:{link}", "--sam", "sim:psam", "--taps", "1", "--journal"]
    with ykt_sim_pn532(fixture, link, "--save") as emulator:
        first = run([*validate, str(tmp_path / "first.db")])
        assert first.returncode == 0, first.stderr
        assert "accepted" in first.stdout and "card 2900000100000042" in first.stdout, first.stdout
        assert "paid 2.00, balance 48.00" in first.stdout
        emulator.send_signal(signal.SIGUSR1)  # the card leaves and comes back: a new tap
        second = run([*validate, str(tmp_path / "second.db")])
        assert second.returncode == 0, second.stderr
        assert "paid 2.00, balance 46.00" in second.stdout
        emulator.send_signal(signal.SIGTERM)
        assert emulator.wait(timeout=15) == 0
    card = load_fixture(fixture)
    assert card.balance == 4600  # type: ignore[union-attr]
    for db in ("first.db", "second.db"):
        report = verify(tmp_path / db, KEYSET)
        assert report.ok and report.verified == 1
