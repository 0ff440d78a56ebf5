"""The PN532 serial driver against a scripted fake port: the exact bytes of every frame written, the read timeouts
used, and recovery from serial faults (garbled, dropped and split bytes, NACK, error frame, silence) within the
timeout, never a hang. Time is a fake clock that moves only when the fake port makes a read wait."""

from __future__ import annotations

import collections
import itertools
import termios
from dataclasses import dataclass, field

import pytest
import serial
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.errors import ProtocolError
from protocols.hexutil import parse_hex
from protocols.iso14443 import fwt
from terminal.drivers.pn532 import MifareAuthError, Pn532Link
from terminal.drivers.pn532_wire import AnswerLost, Pn532Error
from terminal.errors import CardRemoved, LinkTimeout, ReaderGone
from terminal.link import Activation

H = parse_hex
ACK = H("0000FF00FF00")
NACK = H("0000FFFF0000")
ERROR_FRAME = H("0000FF01FF7F8100")
WAKE = H("5555") + bytes(14)

# The set-up, as frames on the wire: command frame, answer frame.
SETUP = [
    (H("0000FF03FDD414011700"), H("0000FF02FED5151600")),  # SAMConfiguration normal -> 15
    (H("0000FF02FED4022A00"), H("0000FF06FAD50332010607E800")),  # GetFirmwareVersion -> PN532 v1.6
    (H("0000FF03FDD412140600"), H("0000FF02FED5131800")),  # SetParameters 14 -> 13
    (H("0000FF04FCD4320100F900"), H("0000FF02FED533F800")),  # RF field off -> 33
    (H("0000FF04FCD4320101F800"), H("0000FF02FED533F800")),  # RF field on -> 33
    (H("0000FF06FAD43205FF0102F300"), H("0000FF02FED533F800")),  # MaxRetries FF 01 02 -> 33
]
LIST = H("0000FF04FCD44A0100E100")
NO_TARGET = H("0000FF03FDD54B00E000")
# one T=CL card: UID 01020304, ATQA 0004, SAK 20, ATS 05 75 77 70 02 (FWI 7)
ONE_TARGET = H("0000FF11EFD54B0101000420040102030405757770024900")
RELEASE = H("0000FF03FDD45200DA00")
RELEASED = H("0000FF03FDD55300D800")
FIELD_OFF = SETUP[3][0]
SELECT = H("00A4040008A000000632010105")
SELECT_FRAME = H("0000FF10F0D4400100A4040008A0000006320101055C00")
OK_9000 = H("0000FF05FBD5410090005A00")
# DEBIT FOR CAPP PURCHASE (TSN 00000057, 2025-03-01 08:30:05, MAC1 11223344): never sent twice
DEBIT = H("805401000F" "00000057" "20250301083005" "11223344" "08")
DEBIT_FRAME = H("0000FF18E8D44001805401000F000000572025030108300511223344087800")
DEBIT_DONE = H("0000FF0DF3D54100AABBCCDD5566778890009200")  # TAC AABBCCDD, MAC2 55667788, 9000

BAUD = 115200
ACK_TIMEOUT = 0.02
LINE = 10 / BAUD  # seconds per byte


def checksum(data: bytes) -> int:
    return -sum(data) & 0xFF


def host(data: bytes) -> bytes:
    """A host frame built here by hand (normal or extended), independently of the codec under test."""
    body = b"\xd4" + data
    if len(body) > 255:
        n = len(body)
        head = bytes((0, 0, 0xFF, 0xFF, 0xFF, n >> 8, n & 0xFF, checksum(bytes((n >> 8, n & 0xFF)))))
    else:
        head = bytes((0, 0, 0xFF, len(body), checksum(bytes((len(body),)))))
    return head + body + bytes((checksum(body), 0))


def chip(data: bytes) -> bytes:
    body = b"\xd5" + data
    if len(body) > 255:
        n = len(body)
        head = bytes((0, 0, 0xFF, 0xFF, 0xFF, n >> 8, n & 0xFF, checksum(bytes((n >> 8, n & 0xFF)))))
    else:
        head = bytes((0, 0, 0xFF, len(body), checksum(bytes((len(body),)))))
    return head + body + bytes((checksum(body), 0))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Step:
    """What the fake chip does when the host writes ``expect``: deliver ``replies`` (each ``(delay, bytes)``: the
    chunk arrives ``delay`` seconds after the read that waits for it starts); ``on_nack``: chunks sent on NACK."""

    expect: bytes
    replies: list[tuple[float, bytes]]
    on_nack: list[tuple[float, bytes]] = field(default_factory=list)


class FakePort:
    """A serial port whose peer follows a script; records writes, read timeouts and flushes."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.timeout: float | None = None
        self.steps: collections.deque[Step] = collections.deque()
        self.queue: collections.deque[list] = collections.deque()  # [delay, bytes]
        self.written: list[bytes] = []
        self.read_timeouts: list[float] = []
        self.flushes = 0
        self.closed = False
        self.last_nack_replies: list[tuple[float, bytes]] = []
        self.fail_on_write: Exception | None = None
        self.fail_on_read: Exception | None = None
        self.fail_on_flush: Exception | None = None

    def script(self, expect: bytes, *replies: tuple[float, bytes] | bytes,
               on_nack: list[tuple[float, bytes]] | None = None) -> None:
        chunks = [(0.0, r) if isinstance(r, bytes) else r for r in replies]
        self.steps.append(Step(expect, chunks, on_nack or []))

    @property
    def in_waiting(self) -> int:
        if self.queue and self.queue[0][0] == 0:
            return len(self.queue[0][1])
        return 0

    def read(self, size: int = 1) -> bytes:
        if self.fail_on_read is not None:
            raise self.fail_on_read
        assert self.timeout is not None and self.timeout > 0
        self.read_timeouts.append(self.timeout)
        if not self.queue or self.queue[0][0] > self.timeout:
            if self.queue:
                self.queue[0][0] -= self.timeout
            self.clock.now += self.timeout
            return b""
        delay, chunk = self.queue[0]
        self.clock.now += delay
        self.queue[0][0] = 0
        out, rest = chunk[:size], chunk[size:]
        if rest:
            self.queue[0][1] = rest
        else:
            self.queue.popleft()
        return out

    def write(self, data: bytes) -> int:
        if self.fail_on_write is not None:
            raise self.fail_on_write
        data = bytes(data)
        self.written.append(data)
        if data == NACK:
            self.queue.extend([d, c] for d, c in self.last_nack_replies)
            return len(data)
        if data == WAKE or data == ACK:
            return len(data)
        assert self.steps, f"unexpected frame {data.hex().upper()}"
        step = self.steps.popleft()
        assert data == step.expect, f"wrote {data.hex().upper()}, expected {step.expect.hex().upper()}"
        self.queue.extend([d, c] for d, c in step.replies)
        self.last_nack_replies = step.on_nack
        return len(data)

    def reset_input_buffer(self) -> None:
        if self.fail_on_flush is not None:
            raise self.fail_on_flush
        self.flushes += 1
        self.queue.clear()

    def close(self) -> None:
        self.closed = True


def ack_wait(frame: bytes) -> float:
    return ACK_TIMEOUT + len(frame) * LINE


def answer(frame: bytes, delay: float = 0.0) -> list:
    """ACK, then the answer frame after ``delay``; a NACK gets the answer again."""
    return [(0.0, ACK), (delay, frame)]


def new_port(clock: Clock) -> FakePort:
    port = FakePort(clock)
    for command, reply in SETUP:
        port.script(command, *answer(reply), on_nack=[(0.0, reply)])
    return port


def open_link(port: FakePort, clock: Clock, **options) -> Pn532Link:
    chosen = {"ack_timeout": ACK_TIMEOUT, "gap_timeout": 0.01, "command_timeout": 0.1, "wake_timeout": 0.2,
              "list_timeout": 0.05, "exchange_margin": 0.01, "retries": 2, "timer": clock, **options}
    return Pn532Link("/dev/fake", BAUD, port=port, **chosen)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def port(clock: Clock) -> FakePort:
    return new_port(clock)


@pytest.fixture
def link(port: FakePort, clock: Clock) -> Pn532Link:
    link = open_link(port, clock)
    port.written.clear()
    port.read_timeouts.clear()
    return link


def activate(link: Pn532Link, port: FakePort) -> Activation:
    port.script(LIST, *answer(ONE_TARGET))
    activation = link.activate(0.2)
    assert activation is not None
    port.written.clear()
    port.read_timeouts.clear()
    return activation


# --- opening ----------------------------------------------------------------------------------------------------------

def test_open_wakes_the_chip_and_sets_it_up_frame_by_frame(port: FakePort, clock: Clock) -> None:
    link = open_link(port, clock)
    assert port.written == [WAKE] + [command for command, _ in SETUP]
    assert link.firmware is not None and link.firmware.name == "PN5" "32 v1.6"
    # each command: the ACK wait (the SAMConfiguration after the wake-up gets wake_timeout), then the answer wait
    expected = []
    for index, (command, _) in enumerate(SETUP):
        expected += [(0.2 if index == 0 else ACK_TIMEOUT) + len(command) * LINE, 0.1]
    assert port.read_timeouts == pytest.approx(expected)
    assert port.flushes == len(SETUP)  # stale input dropped before each command
    assert not port.steps


def test_open_refuses_a_chip_that_is_not_a_pn532(clock: Clock) -> None:
    port = FakePort(clock)
    port.script(SETUP[0][0], *answer(SETUP[0][1]))
    port.script(SETUP[1][0], *answer(chip(H("0333020607"))))  # a PN533
    with pytest.raises(ReaderGone, match="IC 33"):
        open_link(port, clock)
    assert port.closed


def test_open_on_a_silent_port_sends_again_then_gives_up(clock: Clock) -> None:
    port = FakePort(clock)
    for _ in range(3):
        port.script(SETUP[0][0])  # never acknowledged
    start = clock.now
    with pytest.raises(ReaderGone, match="no ACK to SAMConfiguration after 3 tries"):
        open_link(port, clock)
    assert port.written == [WAKE] + [SETUP[0][0]] * 3
    assert clock.now - start == pytest.approx(3 * (0.2 + len(SETUP[0][0]) * LINE))
    assert port.closed


def test_open_a_missing_serial_port_is_reader_gone(tmp_path) -> None:
    with pytest.raises(ReaderGone, match="cannot open the serial port"):
        Pn532Link(str(tmp_path / "no-such-tty"))


def test_a_config_command_whose_ack_is_lost_is_sent_again(clock: Clock) -> None:
    port = FakePort(clock)
    port.script(SETUP[0][0])  # lost
    port.script(SETUP[0][0], *answer(SETUP[0][1]))
    for command, reply in SETUP[1:]:
        port.script(command, *answer(reply))
    link = open_link(port, clock)
    assert link.wire.resent == 1
    assert port.written[:3] == [WAKE, SETUP[0][0], SETUP[0][0]]


# --- activation -------------------------------------------------------------------------------------------------------

def test_activate_lists_one_type_a_target(link: Pn532Link, port: FakePort) -> None:
    port.script(LIST, *answer(ONE_TARGET))
    activation = link.activate(0.2)
    assert activation == Activation("T=CL", uid=H("01020304"), atqa=H("0004"), sak=0x20, ats=H("0575777002"))
    assert port.written == [LIST]
    assert port.read_timeouts == pytest.approx([ack_wait(LIST), 0.2])  # the caller's timeout for the answer
    assert link.activation == activation


def test_activate_a_mifare_classic(link: Pn532Link, port: FakePort) -> None:
    port.script(LIST, *answer(chip(H("4B01010004080401020304"))))
    assert link.activate(0.2) == Activation("MIFARE", uid=H("01020304"), atqa=H("0004"), sak=0x08)


def test_activate_waits_at_least_the_list_timeout(link: Pn532Link, port: FakePort) -> None:
    port.script(LIST, *answer(ONE_TARGET))
    assert link.activate(0.0) is not None
    assert port.read_timeouts[-1] == pytest.approx(0.05)


def test_activate_tries_again_until_the_timeout_when_no_card_answers(link: Pn532Link, port: FakePort,
                                                                      clock: Clock) -> None:
    for _ in range(4):
        port.script(LIST, *answer(NO_TARGET, delay=0.03))  # the chip's own retries take 30 ms
    start = clock.now
    assert link.activate(0.1) is None
    assert port.written == [LIST] * 4
    assert clock.now - start == pytest.approx(0.12)
    assert link.activation is None


def test_activate_aborts_a_poll_that_does_not_end(link: Pn532Link, port: FakePort, clock: Clock) -> None:
    port.script(LIST, (0.0, ACK))  # a chip set to retry forever, and no card
    start = clock.now
    assert link.activate(0.1) is None
    assert port.written == [LIST, ACK]  # the ACK aborts the command in the chip
    assert clock.now - start == pytest.approx(0.1)


# --- APDUs ------------------------------------------------------------------------------------------------------------

def test_transceive_sends_the_apdu_in_one_in_data_exchange(link: Pn532Link, port: FakePort) -> None:
    activate(link, port)
    port.script(SELECT_FRAME, *answer(OK_9000))
    assert link.transceive(SELECT, 0.5) == H("9000")
    assert port.written == [SELECT_FRAME]
    assert port.read_timeouts == pytest.approx([ack_wait(SELECT_FRAME), 0.5])


def test_the_answer_wait_is_never_shorter_than_the_card_may_take(link: Pn532Link, port: FakePort) -> None:
    activate(link, port)  # FWI 7
    floor = fwt(7) + 275 * LINE + 0.01  # FWT + the longest answer frame on the line + the margin
    assert link.exchange_timeout() == pytest.approx(floor)
    port.script(SELECT_FRAME, *answer(OK_9000))
    link.transceive(SELECT, 0.001)
    assert port.read_timeouts[-1] == pytest.approx(floor)


def test_a_long_apdu_goes_in_pieces_flagged_mi_in_extended_frames(link: Pn532Link, port: FakePort) -> None:
    activate(link, port)
    apdu = H("00D60000") + b"\xff" + bytes(range(256)) + H("AABBCCDDEE")  # 266 bytes: 262 + 4
    first, second = host(b"\x40\x41" + apdu[:262]), host(b"\x40\x01" + apdu[262:])
    assert first[3:5] == b"\xff\xff" and first[5:7] == b"\x01\x09"  # extended: LEN 265 (TFI, 40, Tg, 262 bytes)
    port.script(first, *answer(chip(H("4100"))))
    port.script(second, *answer(chip(H("41009000"))))
    assert link.transceive(apdu, 0.5) == H("9000")
    assert port.written == [first, second]


def test_a_long_answer_flagged_mi_is_fetched_piece_by_piece(link: Pn532Link, port: FakePort) -> None:
    activate(link, port)
    body = bytes(range(256)) * 2 + H("9000")
    command = host(H("4001") + H("00B0000000"))
    port.script(command, *answer(chip(H("4140") + body[:262])))
    port.script(host(H("4001")), *answer(chip(H("4140") + body[262:524])))
    port.script(host(H("4001")), *answer(chip(H("4100") + body[524:])))
    assert link.transceive(H("00B0000000"), 0.5) == body
    assert port.written == [command, host(H("4001")), host(H("4001"))]


def test_an_endless_mi_answer_is_refused(link: Pn532Link, port: FakePort) -> None:
    activate(link, port)
    piece = chip(H("4140") + bytes(262))
    port.script(host(H("400100B0000000")), *answer(piece))
    for _ in range(251):
        port.script(host(H("4001")), *answer(piece))
    with pytest.raises(ProtocolError, match="runs past 65538 bytes"):
        link.transceive(H("00B0000000"), 0.5)


def test_status_timeout_means_the_card_left(link: Pn532Link, port: FakePort) -> None:
    activate(link, port)
    port.script(SELECT_FRAME, *answer(chip(H("4101"))))
    with pytest.raises(CardRemoved, match="time-out"):
        link.transceive(SELECT, 0.5)
    assert link.activation is None
    with pytest.raises(CardRemoved, match="no card is activated"):
        link.transceive(SELECT, 0.5)
    assert port.written == [SELECT_FRAME]  # nothing sent for a card that is gone


@pytest.mark.parametrize("status, meaning", [("02", "CRC error"), ("13", "data format"), ("27", "current context")])
def test_other_status_bytes_are_typed_chip_errors(link: Pn532Link, port: FakePort, status: str, meaning: str) -> None:
    activate(link, port)
    port.script(SELECT_FRAME, *answer(chip(H("41" + status))))
    with pytest.raises(Pn532Error, match=meaning) as caught:
        link.transceive(SELECT, 0.5)
    assert caught.value.status == int(status, 16)
    assert caught.value.command == 0x40


def test_the_debit_frames_are_the_hand_made_ones() -> None:
    assert DEBIT_FRAME == host(H("4001") + DEBIT)
    assert DEBIT_DONE == chip(H("4100AABBCCDD556677889000"))


def test_the_error_frame_is_sent_again_then_a_typed_error(link: Pn532Link, port: FakePort) -> None:
    activate(link, port)
    for _ in range(3):  # the chip parsed nothing and ran nothing: even a DEBIT may go again
        port.script(DEBIT_FRAME, (0.0, ACK), (0.0, ERROR_FRAME))
    with pytest.raises(Pn532Error, match="error frame") as caught:
        link.transceive(DEBIT, 0.5)
    assert caught.value.status is None
    assert port.written == [DEBIT_FRAME] * 3


def test_the_error_frame_once_is_damage_the_checksums_missed(link: Pn532Link, port: FakePort) -> None:
    activate(link, port)
    port.script(DEBIT_FRAME, (0.0, ACK), (0.0, ERROR_FRAME))
    port.script(DEBIT_FRAME, *answer(DEBIT_DONE))
    assert link.transceive(DEBIT, 0.5) == H("AABBCCDD556677889000")
    assert port.written == [DEBIT_FRAME, DEBIT_FRAME]


def test_a_malformed_answer_is_a_protocol_error(link: Pn532Link, port: FakePort) -> None:
    activate(link, port)
    port.script(SELECT_FRAME, *answer(chip(H("41"))))  # no status byte
    with pytest.raises(ProtocolError):
        link.transceive(SELECT, 0.5)


def test_a_malformed_listing_is_tried_again(link: Pn532Link, port: FakePort) -> None:
    port.script(LIST, *answer(chip(H("4B01010004"))))  # cut short
    port.script(LIST, *answer(ONE_TARGET))
    assert link.activate(0.2) is not None
    assert port.written == [LIST, LIST]


def test_a_listing_never_well_formed_finds_no_card(link: Pn532Link, port: FakePort, clock: Clock) -> None:
    for _ in range(5):
        port.script(LIST, *answer(chip(H("4B01010004")), delay=0.03))
    assert link.activate(0.1) is None
    assert port.written == [LIST] * 4


# --- serial faults ----------------------------------------------------------------------------------------------------

def garble(frame: bytes, index: int, value: int = 0x5A) -> bytes:
    return frame[:index] + bytes((value,)) + frame[index + 1:]


def test_a_garbled_answer_is_asked_for_again_with_nack(link: Pn532Link, port: FakePort) -> None:
    activate(link, port)
    port.script(SELECT_FRAME, (0.0, ACK), (0.0, garble(OK_9000, 7)), on_nack=[(0.0, OK_9000)])
    assert link.transceive(SELECT, 0.5) == H("9000")
    assert port.written == [SELECT_FRAME, NACK]
    assert link.wire.nacks_sent == 1


def test_a_dropped_byte_breaks_the_checksum_and_is_asked_for_again(link: Pn532Link, port: FakePort) -> None:
    activate(link, port)
    dropped = OK_9000[:8] + OK_9000[9:]  # 90 lost: the postamble is taken for the DCS, which fails
    port.script(SELECT_FRAME, (0.0, ACK), (0.0, dropped), on_nack=[(0.0, OK_9000)])
    assert link.transceive(SELECT, 0.5) == H("9000")
    assert port.written == [SELECT_FRAME, NACK]


def test_a_dropped_zero_that_the_checksum_misses_is_caught_by_the_missing_postamble(link: Pn532Link,
                                                                                    port: FakePort) -> None:
    activate(link, port)
    dropped = OK_9000[:9] + OK_9000[10:]  # the 00 of 9000 lost: 90 5A 00 decodes with a valid DCS
    port.script(SELECT_FRAME, (0.0, ACK), (0.0, dropped), on_nack=[(0.0, OK_9000)])
    assert link.transceive(SELECT, 0.5) == H("9000")
    assert port.written == [SELECT_FRAME, NACK]


def test_a_frame_that_stops_part_way_is_noticed_by_the_silence_after_it(link: Pn532Link, port: FakePort,
                                                                        clock: Clock) -> None:
    activate(link, port)
    port.script(SELECT_FRAME, (0.0, ACK), (0.0, OK_9000[:9]), on_nack=[(0.0, OK_9000)])
    start = clock.now
    assert link.transceive(SELECT, 0.5) == H("9000")
    assert port.written == [SELECT_FRAME, NACK]
    # the gap timeout; then the resent answer is due within an ACK wait
    assert port.read_timeouts[-3:] == pytest.approx([0.5, 0.01, ack_wait(SELECT_FRAME)])
    assert clock.now - start == pytest.approx(0.01)


def test_a_frame_split_across_reads(link: Pn532Link, port: FakePort) -> None:
    activate(link, port)
    pieces = [(0.0, ACK[:2]), (0.0, ACK[2:])] + [(0.001, OK_9000[i:i + 1]) for i in range(len(OK_9000))]
    port.script(SELECT_FRAME, *pieces)
    assert link.transceive(SELECT, 0.5) == H("9000")
    assert port.written == [SELECT_FRAME]


def test_noise_before_the_ack_and_a_stale_answer_are_skipped(link: Pn532Link, port: FakePort) -> None:
    activate(link, port)
    stale = chip(H("4B00"))  # a late answer to an aborted poll
    port.script(SELECT_FRAME, (0.0, H("55AA13") + ACK), (0.0, stale + OK_9000))
    assert link.transceive(SELECT, 0.5) == H("9000")
    assert link.wire.decoder.discarded == 3


def test_a_nack_from_the_chip_does_not_send_a_card_command_again(link: Pn532Link, port: FakePort) -> None:
    activate(link, port)
    port.script(SELECT_FRAME, (0.0, NACK), (0.0, OK_9000))
    assert link.transceive(SELECT, 0.5) == H("9000")
    assert port.written == [SELECT_FRAME]


def test_a_select_never_acknowledged_is_sent_again(link: Pn532Link, port: FakePort) -> None:
    activate(link, port)
    port.script(SELECT_FRAME)  # damaged on the way: the chip sends nothing
    port.script(SELECT_FRAME, *answer(OK_9000))
    assert link.transceive(SELECT, 0.5) == H("9000")
    assert port.written == [SELECT_FRAME, SELECT_FRAME]
    assert link.wire.resent == 1


def test_a_debit_never_acknowledged_is_sent_again_once_the_chip_shows_it_never_took_it(link: Pn532Link,
                                                                                     port: FakePort) -> None:
    activate(link, port)
    port.script(DEBIT_FRAME, on_nack=[(0.0, ONE_TARGET)])  # NACK: the chip's last answer, the listing's
    port.script(DEBIT_FRAME, *answer(DEBIT_DONE))
    assert link.transceive(DEBIT, 0.5) == H("AABBCCDD556677889000")
    assert port.written == [DEBIT_FRAME, NACK, DEBIT_FRAME]
    assert port.read_timeouts[:2] == pytest.approx([ack_wait(DEBIT_FRAME)] * 2)


def test_a_debit_whose_ack_was_lost_is_answered_through_nack_and_not_sent_again(link: Pn532Link,
                                                                             port: FakePort) -> None:
    activate(link, port)
    port.script(DEBIT_FRAME, on_nack=[(0.0, DEBIT_DONE)])  # the chip took it; its ACK and answer were lost
    assert link.transceive(DEBIT, 0.5) == H("AABBCCDD556677889000")
    assert port.written == [DEBIT_FRAME, NACK]


def test_a_debit_answered_late_after_a_lost_ack_is_taken_and_not_sent_again(link: Pn532Link, port: FakePort) -> None:
    activate(link, port)
    port.script(DEBIT_FRAME, (0.05, DEBIT_DONE))  # no ACK; the answer after 50 ms: the first NACK brings nothing
    assert link.transceive(DEBIT, 0.5) == H("AABBCCDD556677889000")
    assert port.written == [DEBIT_FRAME, NACK, NACK]


def test_a_debit_the_chip_may_have_taken_is_never_sent_again(link: Pn532Link, port: FakePort) -> None:
    activate(link, port)
    port.script(DEBIT_FRAME, on_nack=[(0.0, ERROR_FRAME)])  # nothing that tells whether it ran
    with pytest.raises(AnswerLost, match="cannot be told"):
        link.transceive(DEBIT, 0.5)
    assert port.written == [DEBIT_FRAME, NACK]
    assert link.activation is not None


def test_a_debit_answer_damaged_every_time_is_lost_not_sent_again(link: Pn532Link, port: FakePort) -> None:
    activate(link, port)
    bad = garble(DEBIT_DONE, 8)
    port.script(DEBIT_FRAME, (0.0, ACK), (0.0, bad), on_nack=[(0.0, bad)])
    with pytest.raises(AnswerLost, match="never came whole"):
        link.transceive(DEBIT, 0.5)
    assert port.written == [DEBIT_FRAME, NACK, NACK]
    assert isinstance(AnswerLost("x"), LinkTimeout)  # the validator's "please tap again", the debit pending


def test_a_nack_that_brings_nothing_is_sent_again(link: Pn532Link, port: FakePort) -> None:
    activate(link, port)
    port.script(DEBIT_FRAME, (0.0, ACK), (0.0, garble(DEBIT_DONE, 8)))  # the first NACK is lost on the way
    original = port.write

    def write(data: bytes) -> int:
        if data == NACK and port.written.count(NACK) == 1:
            port.last_nack_replies = [(0.0, DEBIT_DONE)]
        return original(data)

    port.write = write  # type: ignore[method-assign]
    assert link.transceive(DEBIT, 0.5) == H("AABBCCDD556677889000")
    assert port.written == [DEBIT_FRAME, NACK, NACK]


def test_silence_after_the_ack_of_a_debit_is_asked_about_then_aborted(link: Pn532Link, port: FakePort,
                                                                     clock: Clock) -> None:
    activate(link, port)
    port.script(DEBIT_FRAME, (0.0, ACK), on_nack=[(0.0, ONE_TARGET)])  # NACK: the previous answer, still working
    start = clock.now
    with pytest.raises(AnswerLost, match="no answer to InDataExchange in time"):
        link.transceive(DEBIT, 0.3)
    assert port.written == [DEBIT_FRAME, NACK, ACK]  # asked, then aborted; never sent again
    assert clock.now - start == pytest.approx(0.3)
    assert link.activation is not None  # the card may still be there: the next command may work


def test_silence_after_the_ack_of_a_select_is_asked_about_aborted_and_sent_again(link: Pn532Link,
                                                                                port: FakePort) -> None:
    activate(link, port)
    port.script(SELECT_FRAME, (0.0, ACK), on_nack=[(0.0, ONE_TARGET)])
    port.script(SELECT_FRAME, *answer(OK_9000))
    assert link.transceive(SELECT, 0.3) == H("9000")
    assert port.written == [SELECT_FRAME, NACK, ACK, SELECT_FRAME]


def test_a_lost_answer_comes_again_with_nack(link: Pn532Link, port: FakePort) -> None:
    activate(link, port)
    port.script(DEBIT_FRAME, (0.0, ACK), on_nack=[(0.0, DEBIT_DONE)])  # the answer was lost whole
    assert link.transceive(DEBIT, 0.3) == H("AABBCCDD556677889000")
    assert port.written == [DEBIT_FRAME, NACK]


def test_a_chip_that_acknowledges_nothing_is_woken_and_set_up_again(link: Pn532Link, port: FakePort) -> None:
    activate(link, port)
    port.script(DEBIT_FRAME)  # nothing, not even to NACK: the chip lost power
    for command, reply in SETUP:
        port.script(command, *answer(reply))
    with pytest.raises(CardRemoved, match="the reader was reset"):
        link.transceive(DEBIT, 0.3)
    assert port.written == [DEBIT_FRAME] + [NACK] * 3 + [WAKE] + [command for command, _ in SETUP]
    assert link.reopened == 1 and link.activation is None
    port.script(LIST, *answer(ONE_TARGET))
    assert link.activate(0.2) is not None


def test_a_listing_never_acknowledged_wakes_the_chip_and_lists_again(link: Pn532Link, port: FakePort) -> None:
    for _ in range(3):
        port.script(LIST)
    for command, reply in SETUP:
        port.script(command, *answer(reply))
    port.script(LIST, *answer(ONE_TARGET))
    assert link.activate(0.5) is not None
    assert port.written == [LIST] * 3 + [WAKE] + [command for command, _ in SETUP] + [LIST]


def test_a_chip_that_cannot_be_set_up_again_is_reader_gone_until_it_can(link: Pn532Link, port: FakePort) -> None:
    activate(link, port)
    port.script(DEBIT_FRAME)
    for _ in range(3):
        port.script(SETUP[0][0])  # the wake-up is not answered either
    with pytest.raises(ReaderGone, match="could not be set up again"):
        link.transceive(DEBIT, 0.3)
    for command, reply in SETUP:  # the reader is back
        port.script(command, *answer(reply))
    port.script(LIST, *answer(ONE_TARGET))
    assert link.activate(0.2) is not None


@pytest.mark.parametrize("fault", [serial.SerialException("device reports readiness to read but returned no data"),
                                   OSError(5, "Input/output error")])
def test_serial_faults_are_reader_gone(link: Pn532Link, port: FakePort, fault: Exception) -> None:
    activate(link, port)
    port.fail_on_write = fault
    with pytest.raises(ReaderGone, match="serial port failed"):
        link.transceive(SELECT, 0.5)
    port.fail_on_write = None
    port.fail_on_read = fault
    port.script(SETUP[0][0])
    with pytest.raises(ReaderGone, match="serial port failed"):
        link.activate(0.1)  # the set-up again fails on the port
    port.fail_on_read = None
    for command, reply in SETUP:
        port.script(command, *answer(reply))
    port.script(LIST, *answer(ONE_TARGET))
    assert link.activate(0.2) is not None


def test_a_pty_whose_other_end_went_away_is_reader_gone(link: Pn532Link, port: FakePort) -> None:
    port.fail_on_flush = termios.error(5, "Input/output error")  # pyserial lets tcflush's error through
    with pytest.raises(ReaderGone, match="Input/output error"):
        link.activate(0.1)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, len(ACK + OK_9000) - 1), st.integers(0, 255))
def test_any_one_garbled_byte_is_recovered(index: int, value: int) -> None:
    clock = Clock()
    port = new_port(clock)
    link = open_link(port, clock)
    activate(link, port)
    stream = ACK + OK_9000
    damaged = stream[:index] + bytes((value,)) + stream[index + 1:]
    port.script(SELECT_FRAME, (0.0, damaged), on_nack=[(0.0, OK_9000)])
    start = clock.now
    assert link.transceive(SELECT, 0.5) == H("9000")
    assert clock.now - start <= 0.5


@settings(max_examples=100, deadline=None)
@given(st.integers(0, len(ACK + OK_9000) - 1), st.lists(st.integers(1, 6), min_size=1, max_size=8))
def test_any_one_dropped_byte_and_any_split_is_recovered(index: int, sizes: list[int]) -> None:
    clock = Clock()
    port = new_port(clock)
    link = open_link(port, clock)
    activate(link, port)
    stream = ACK + OK_9000
    stream = stream[:index] + stream[index + 1:]
    chunks, pos = [], 0
    for size in itertools.cycle(sizes):
        if pos >= len(stream):
            break
        chunks.append((0.0, stream[pos:pos + size]))
        pos += size
    port.script(SELECT_FRAME, *chunks, on_nack=[(0.0, OK_9000)])
    start = clock.now
    assert link.transceive(SELECT, 0.5) == H("9000")
    assert clock.now - start <= ack_wait(SELECT_FRAME) + 0.5 + 1e-9


# --- release and close ------------------------------------------------------------------------------------------------

def test_deactivate_releases_the_target(link: Pn532Link, port: FakePort) -> None:
    activate(link, port)
    port.script(RELEASE, *answer(RELEASED))
    link.deactivate()
    assert port.written == [RELEASE]
    assert link.activation is None
    link.deactivate()  # nothing active: nothing sent
    assert port.written == [RELEASE]


def test_deactivate_ignores_a_chip_that_does_not_answer(link: Pn532Link, port: FakePort, clock: Clock) -> None:
    activate(link, port)
    for _ in range(2):
        port.script(RELEASE, (0.0, ACK))
    start = clock.now
    link.deactivate()
    # silence after the ACK: asked about (three NACKs), aborted, sent again (it is repeatable) until the call's end
    assert port.written == [RELEASE, NACK, NACK, NACK, ACK, RELEASE, NACK, ACK]
    assert clock.now - start == pytest.approx(0.1 + 2 * 3 * ack_wait(RELEASE))  # timeout + 2 (retries + 1) ACK waits


def test_close_switches_the_field_off_and_later_calls_are_reader_gone(link: Pn532Link, port: FakePort) -> None:
    port.script(FIELD_OFF, *answer(SETUP[3][1]))
    link.close()
    assert port.written == [FIELD_OFF]
    assert port.closed
    link.close()
    with pytest.raises(ReaderGone, match="closed"):
        link.activate(0.1)
    with pytest.raises(ReaderGone, match="closed"):
        link.transceive(SELECT, 0.1)


def test_close_on_a_dead_port_still_closes(link: Pn532Link, port: FakePort) -> None:
    port.fail_on_write = OSError(5, "Input/output error")
    link.close()
    assert port.closed


# --- MIFARE Classic ---------------------------------------------------------------------------------------------------

@pytest.fixture
def classic(link: Pn532Link, port: FakePort) -> Pn532Link:
    port.script(LIST, *answer(chip(H("4B01010004080401020304"))))
    assert link.activate(0.2) == Activation("MIFARE", uid=H("01020304"), atqa=H("0004"), sak=0x08)
    port.written.clear()
    return link


def test_mifare_pseudo_apdus_become_mifare_commands(classic: Pn532Link, port: FakePort) -> None:
    """A MIFARE Classic on a PN532 takes the pseudo-APDUs of a PC/SC reader: LOAD KEY stays in the link, AUTH goes
    with the activated card's UID, the chip's 'no data' is the card's ACK."""
    block = H("00112233445566778899AABBCCDDEEFF")
    port.script(host(H("40016004FFFFFFFFFFFF01020304")), *answer(chip(H("4100"))))
    port.script(host(H("40013004")), *answer(chip(H("4100") + block)))
    port.script(host(H("4001A005") + block), *answer(chip(H("4100"))))
    assert classic.transceive(H("FF82000006FFFFFFFFFFFF"), 0.2) == H("9000")
    assert port.written == []  # the key stays in the link until an authentication carries it
    assert classic.transceive(H("FF860000050100046000"), 0.2) == H("9000")
    assert classic.transceive(H("FFB0000410"), 0.2) == block + H("9000")
    assert classic.transceive(H("FFD6000510") + block, 0.2) == H("9000")
    assert len(port.written) == 3


def test_mifare_value_operations_go_with_their_transfer(classic: Pn532Link, port: FakePort) -> None:
    port.script(host(H("4001A00564000000" "9BFFFFFF" "64000000" "05FA05FA")), *answer(chip(H("4100"))))
    port.script(host(H("4001C1050A000000")), *answer(chip(H("4100"))))
    port.script(host(H("4001B005")), *answer(chip(H("4100"))))
    port.script(host(H("4001C00503000000")), *answer(chip(H("4100"))))
    port.script(host(H("4001B005")), *answer(chip(H("4100"))))
    port.script(host(H("4001C20500000000")), *answer(chip(H("4100"))))
    port.script(host(H("4001B006")), *answer(chip(H("4100"))))
    port.script(host(H("40013005")), *answer(chip(H("4100") + H("6B00000094FFFFFF6B00000005FA05FA"))))
    for apdu in ("FFD700050500 00000064", "FFD700050501 0000000A", "FFD700050502 00000003", "FFD70005020306"):
        assert classic.transceive(H(apdu), 0.2) == H("9000"), apdu
    assert classic.transceive(H("FFB1000504"), 0.2) == H("0000006B9000")  # 100 + 10 - 3


def test_a_refused_mifare_command_is_6300(classic: Pn532Link, port: FakePort) -> None:
    port.script(host(H("40016108000000000000" "01020304")), *answer(chip(H("4114"))))
    assert classic.transceive(H("FF82000106000000000000"), 0.2) == H("9000")
    assert classic.transceive(H("FF860000050100086101"), 0.2) == H("6300")  # failed authentication
    port.script(host(H("4001A008") + bytes(16)), *answer(chip(H("4105"))))
    assert classic.transceive(H("FFD6000810") + bytes(16), 0.2) == H("6300")  # the card's NAK


def test_a_raw_mifare_authentication_failure_is_typed(classic: Pn532Link, port: FakePort) -> None:
    port.script(host(H("40016108000000000000" "01020304")), *answer(chip(H("4114"))))
    with pytest.raises(MifareAuthError, match="MIFARE authentication error"):
        classic.exchange(H("6108000000000000") + H("01020304"), 0.2)


def test_a_decrement_is_never_sent_twice(classic: Pn532Link, port: FakePort) -> None:
    """A DECREMENT whose answer is lost is not sent again (it would take the money twice): the pseudo-APDU ends in
    a lost answer, which the validator treats as a torn debit."""
    decrement = host(H("4001C00903000000"))
    port.script(decrement, on_nack=[(0.0, ERROR_FRAME)])  # nothing that tells whether it ran
    with pytest.raises(AnswerLost, match="cannot be told"):
        classic.transceive(H("FFD700090502 00000003"), 0.5)
    assert port.written == [decrement, NACK]
