"""Our PN532 driver through a pseudo-terminal to the emulated PN532: a full composite purchase through the terminal
core, MIFARE Classic commands through the chip, and ``ykt validate --reader pn532:LINK`` against ``ykt sim pn532``
run as a user would."""

from __future__ import annotations

import datetime as dt
import signal
from pathlib import Path

import pytest

from protocols.card_files import TRANSIT_RECORD
from protocols.hexutil import parse_hex
from protocols.mifare import ACK, ValueBlock
from protocols.pn532 import CommandCode
from sim.fixture import load_image, save_fixture
from sim.issuing import issue_card, load_demo_keyset
from sim.psam import SimPsam
from sim.reader import SimSamSlot
from terminal.clock import ManualClock
from terminal.drivers.pn532 import Pn532Link
from terminal.errors import ReaderGone
from terminal.fares import load_fares
from terminal.journal import MemoryJournal
from terminal.link import Activation
from terminal.outcome import Decline, TapStatus
from terminal.records import DebitState

from .conftest import wait_until
from .pn532_fixtures import YKT, emulated_pn532, run, ykt_sim_pn532

pytestmark = pytest.mark.peers

FARES = Path(__file__).resolve().parents[2] / "sim" / "fares" / "demo-flat.toml"
SERIAL = parse_hex("03103640000000000042")
TERMINAL = parse_hex("200041599997")
WHEN = dt.datetime(2025, 3, 1, 8, 30, 5)


def test_composite_purchase_through_the_pn532_driver(tmp_path: Path) -> None:
    from terminal.validator import Validator

    keyset = load_demo_keyset()
    card = issue_card(keyset, serial=SERIAL, balance=5000)
    journal = MemoryJournal()
    with emulated_pn532(card, tmp_path) as server:
        with Pn532Link(str(server.link)) as card_link:
            sam = SimSamSlot(SimPsam(keyset, TERMINAL, tsn=0x57), timing=None)
            validator = Validator(card_link, sam, load_fares(FARES), journal, clock=ManualClock(WHEN))
            validator.start()
            outcome = validator.poll(2.0)
            assert outcome is not None
            assert outcome.status is TapStatus.ACCEPTED, outcome.message
            assert (outcome.card_serial, outcome.fare, outcome.balance_before, outcome.balance_after) == \
                (SERIAL, 200, 5000, 4800)
            assert outcome.mac2_verified is True
            # the card is halted once released: a card left on the reader is one tap
            assert validator.poll(0.2) is None
            server.retap()
            repeat = validator.poll(2.0)
            assert repeat is not None and repeat.status is TapStatus.DECLINED
            assert repeat.decline is Decline.REPEAT_TAP
        received = list(server.chip.received)
    entry = journal.get(outcome.journal_row)
    assert entry.record.state is DebitState.COMPLETE and entry.record.tac == outcome.tac
    assert card.balance == 4800 and card.image.purse.offline_atc == 1
    newest = TRANSIT_RECORD.parse(card.image.transit_log[0])
    assert (newest.amount, newest.balance, newest.transaction_time) == (200, 4800, WHEN)
    # every card command went through InDataExchange; the UPDATE CAPP DATA CACHE of 0x1E (53 bytes) fits one frame
    apdus = [command[2:] for command in received if command[0] == CommandCode.InDataExchange]
    assert [apdu[:2].hex().upper() for apdu in apdus[:5]] == ["00A4", "00B0", "8050", "80DC", "8054"]
    assert received[-1] == parse_hex("320100")  # closing the link switched the field off


class ClassicStub:
    """A MIFARE Classic 1K that answers a list of commands in order (the chip ran Crypto1; the card sees plain
    commands); ``ACK`` is the card's acknowledge, which the chip reports as its bare success."""

    activation = Activation("MIFARE", uid=parse_hex("01020304"), atqa=parse_hex("0004"), sak=0x08)

    def __init__(self, exchanges: list[tuple[str, bytes]]) -> None:
        self.expected = [(parse_hex(command), answer) for command, answer in exchanges]
        self.seen: list[bytes] = []

    def power_on(self) -> Activation:
        return self.activation

    def execute(self, command: bytes) -> bytes:
        self.seen.append(command)
        expected, answer = self.expected[len(self.seen) - 1]
        assert command == expected
        return answer


def test_mifare_classic_through_the_pn532_driver(tmp_path: Path) -> None:
    """PC/SC part 3 pseudo-APDUs on a PN532: each becomes the MIFARE commands a reader's firmware sends."""
    classic = ClassicStub([("6005FFFFFFFFFFFF01020304", ACK), ("3005", ValueBlock(1000, 5).to_bytes()),
                           ("C10564000000", ACK), ("B005", ACK), ("3005", ValueBlock(1100, 5).to_bytes())])
    with emulated_pn532(classic, tmp_path) as server, Pn532Link(str(server.link)) as link:
        assert link.activate(1.0) == classic.activation
        assert link.transceive(parse_hex("FF82000006FFFFFFFFFFFF"), 0.5) == parse_hex("9000")
        assert link.transceive(parse_hex("FF860000050100056000"), 0.5) == parse_hex("9000")
        assert link.transceive(parse_hex("FFB1000504"), 0.5) == parse_hex("000003E89000")
        assert link.transceive(parse_hex("FFD70005050100000064"), 0.5) == parse_hex("9000")
        assert link.transceive(parse_hex("FFB1000504"), 0.5) == parse_hex("0000044C9000")
    assert len(classic.seen) == 5


def test_the_driver_reports_a_vanished_emulator_as_reader_gone(tmp_path: Path) -> None:
    card = issue_card(load_demo_keyset(), serial=SERIAL, balance=5000)
    with emulated_pn532(card, tmp_path) as server:
        link = Pn532Link(str(server.link), list_timeout=0.05, command_timeout=0.2)
        assert link.activate(0.5) is not None
        server.shutdown()  # the pty goes away under the open port
        with pytest.raises(ReaderGone):
            for _ in range(3):  # the first write may still land in the kernel's buffer
                link.transceive(parse_hex("805C000204"), 0.2)
        link.close()


def test_ykt_validate_against_ykt_sim_pn532(tmp_path: Path) -> None:
    fixture = tmp_path / "card.json"
    save_fixture(issue_card(load_demo_keyset(), serial=SERIAL, balance=5000), fixture)
    link = tmp_path / "pn532"
    validate = [*YKT, "validate", "--reader", f"pn532:{link}", "--sam", "sim:psam", "--taps", "1", "--journal"]
    with ykt_sim_pn532(fixture, link, "--save") as emulator:
        first = run([*validate, str(tmp_path / "first.db")])
        assert first.returncode == 0, first.stderr
        assert "accepted" in first.stdout and "card 3103640000000000042" in first.stdout
        assert "paid 2.00, balance 48.00" in first.stdout
        emulator.send_signal(signal.SIGUSR1)  # the card is tapped again: a new validator run charges it again
        second = run([*validate, str(tmp_path / "second.db")])  # (a sim:psam starts from the same TSN each run)
        assert second.returncode == 0, second.stderr
        assert "paid 2.00, balance 46.00" in second.stdout
        emulator.send_signal(signal.SIGTERM)
        assert emulator.wait(timeout=15) == 0
        status = emulator.stderr.read()
    assert f"PN532 v1.6 on {link} -> /dev/pts/" in status
    assert "card balance 4600 fen" in status and f"the card's state is in {fixture} (written 2 times)" in status
    assert not link.exists() and not link.is_symlink()
    image = load_image(fixture)
    assert (image.purse.balance, image.purse.offline_atc) == (4600, 2)


def test_ykt_sim_pn532_stops_without_saving_unless_asked(tmp_path: Path) -> None:
    fixture = tmp_path / "card.json"
    save_fixture(issue_card(load_demo_keyset(), serial=SERIAL, balance=5000), fixture)
    before = fixture.read_bytes()
    link = tmp_path / "pn532"
    with ykt_sim_pn532(fixture, link) as emulator:
        result = run([*YKT, "validate", "--reader", f"pn532:{link}", "--sam", "sim:psam", "--taps", "1",
                      "--journal", str(tmp_path / "v.db")])
        assert result.returncode == 0, result.stderr
        emulator.send_signal(signal.SIGINT)
        assert emulator.wait(timeout=15) == 0
        wait_until(lambda: not link.is_symlink(), "the link to go")
    assert fixture.read_bytes() == before


def test_ykt_sim_pn532_refuses_a_link_path_that_is_a_file(tmp_path: Path) -> None:
    fixture = tmp_path / "card.json"
    save_fixture(issue_card(load_demo_keyset(), serial=SERIAL, balance=5000), fixture)
    taken = tmp_path / "taken"
    taken.write_text("not a link")
    result = run([*YKT, "sim", "pn532", "--card", str(fixture), "--link", str(taken)], timeout=30)
    assert result.returncode == 2
    assert "is not a symlink" in result.stderr
    assert taken.read_text() == "not a link"
