"""The emulated PN532: the chip's bytes for every host frame (libnfc's own trace replayed), aborts, NACKs, the card's
halt and wake-up, long APDUs and answers, presence checks, InAutoPoll; and the pty server that libnfc and our driver
open (raw mode, the kept slave descriptor, the symlink, a clean stop)."""

from __future__ import annotations

import os
import threading
import time

import pytest
import serial
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.hexutil import parse_hex
from protocols.pn532 import BadFrame, ControlFrame, FrameDecoder, chip_frame, host_frame
from sim.pn532 import EmulatorError, Pn532Chip, Pn532PtyServer
from sim.pn532.chip import RECEIVE_GAP
from sim.scripted import ApduPattern, ScriptedCard, Step
from terminal.link import Activation

H = parse_hex
ACK = H("0000FF00FF00")
NACK = H("0000FFFF0000")
ERROR_FRAME = H("0000FF01FF7F8100")
UID = H("D5D0CB68")
ATS = H("0575777002")
T_CL = Activation("T=CL", uid=UID, atqa=H("0004"), sak=0x20, ats=ATS)

# ``nfc-list`` (libnfc 1.8, every modulation) against this emulator: each host frame and what followed the chip's ACK,
# as libnfc logged them (LIBNFC_LOG_LEVEL=3). The chip's registers held what an earlier libnfc session wrote.
NFC_LIST_TRACE = [
    ("0000FF03FDD414011700", "0000FF02FED5151600"),
    ("0000FF09F7D400006C69626E6663BE00", "0000FF09F7D501006C69626E6663BC00"),
    ("0000FF02FED4022A00", "0000FF06FAD50332010607E800"),
    ("0000FF03FDD412140600", "0000FF02FED5131800"),
    ("0000FF0CF4D40663026303630D6338633DB000", "0000FF07F9D50780800000002400"),
    ("0000FF04FCD4320100F900", "0000FF02FED533F800"),
    ("0000FF04FCD4320101F800", "0000FF02FED533F800"),
    ("0000FF06FAD43205FFFFFFF800", "0000FF02FED533F800"),
    ("0000FF0EF2D4066302630363056338633C633D1900", "0000FF08F8D507808040001000D400"),
    ("0000FF06FAD43205000102F200", "0000FF02FED533F800"),
    ("0000FF04FCD44A0100E100", "0000FF11EFD54B010100042004D5D0CB6805757770027B00"),
    ("0000FF03FDD44400E800", "0000FF03FDD54500E600"),
    ("0000FF04FCD44A0100E100", "0000FF03FDD54B00E000"),
    ("0000FF06FAD43205FFFFFFF800", "0000FF02FED533F800"),
    ("0000FF06FAD43205000102F200", "0000FF02FED533F800"),
    ("0000FF09F7D44A010100FFFF0100E100", "0000FF03FDD54B00E000"),
    ("0000FF06FAD43205FFFFFFF800", "0000FF02FED533F800"),
    ("0000FF06FAD43205000102F200", "0000FF02FED533F800"),
    ("0000FF09F7D44A010200FFFF0100E000", "0000FF03FDD54B00E000"),
    ("0000FF06FAD43205FFFFFFF800", "0000FF02FED533F800"),
    ("0000FF06FAD43205000102F200", "0000FF02FED533F800"),
    ("0000FF05FBD44A010300DE00", "0000FF03FDD54B00E000"),
    ("0000FF06FAD43205FFFFFFF800", "0000FF02FED533F800"),
    ("0000FF06FAD43205000102F200", "0000FF02FED533F800"),
    ("0000FF06FAD406630263035B00", "0000FF04FCD50780802400"),
    ("0000FF08F8D4086302836303835300", "0000FF02FED5092200"),
    ("0000FF06FAD442010B3F801F00", "0000FF03FDD54301E700"),
    ("0000FF06FAD43205FFFFFFF800", "0000FF02FED533F800"),
    ("0000FF06FAD43205000102F200", "0000FF02FED533F800"),
    ("0000FF06FAD406630263035B00", "0000FF04FCD50783831E00"),
    ("0000FF04FCD4420600E400", "0000FF03FDD54301E700"),
    ("0000FF06FAD43205FFFFFFF800", "0000FF02FED533F800"),
    ("0000FF06FAD43205000102F200", "0000FF02FED533F800"),
    ("0000FF06FAD406630263035B00", "0000FF04FCD50783831E00"),
    ("0000FF03FDD44210DA00", "0000FF03FDD54301E700"),
    ("0000FF06FAD43205FFFFFFF800", "0000FF02FED533F800"),
    ("0000FF06FAD43205000102F200", "0000FF02FED533F800"),
    ("0000FF06FAD406630263035B00", "0000FF04FCD50783831E00"),
    ("0000FF05FBD408630203BC00", "0000FF02FED5092200"),
    ("0000FF05FBD40863030BB300", "0000FF02FED5092200"),
    ("0000FF05FBD408630D10A400", "0000FF02FED5092200"),
    ("0000FF05FBD4086316703B00", "0000FF02FED5092200"),
    ("0000FF05FBD4086313882600", "0000FF02FED5092200"),
    ("0000FF05FBD4086317F8B200", "0000FF02FED5092200"),
    ("0000FF05FBD40863183F6A00", "0000FF02FED5092200"),
    ("0000FF05FBD4086319109800", "0000FF02FED5092200"),
    ("0000FF05FBD408631C693C00", "0000FF02FED5092200"),
    ("0000FF05FBD408631DF0B400", "0000FF02FED5092200"),
    ("0000FF03FDD4420AE000", "0000FF03FDD54301E700"),
    ("0000FF03FDD4420CDE00", "0000FF03FDD54301E700"),
    ("0000FF06FAD43205FFFFFFF800", "0000FF02FED533F800"),
    ("0000FF06FAD43205000102F200", "0000FF02FED533F800"),
    ("0000FF04FCD44A0104DD00", "0000FF03FDD54B00E000"),
    ("0000FF06FAD43205FFFFFFF800", "0000FF02FED533F800"),
    ("0000FF06FAD43205000102F200", "0000FF02FED533F800"),
    ("0000FF04FCD4320100F900", "0000FF02FED533F800"),
    ("0000FF08F8D40663026303630DEB00", "0000FF05FBD507030B100600"),
    ("0000FF02FED442EA00", "0000FF03FDD54301E700"),
    ("0000FF06FAD43205FFFFFFF800", "0000FF02FED533F800"),
    ("0000FF03FDD45200DA00", "0000FF03FDD55300D800"),
    ("0000FF04FCD4320100F900", "0000FF02FED533F800"),
    ("0000FF03FDD416F02600", "0000FF03FDD517001400"),
]
EARLIER_REGISTERS = {0x6302: 0x80, 0x6303: 0x80, 0x6305: 0x40, 0x633C: 0x10}


def card(*steps: Step, activation: Activation = T_CL) -> ScriptedCard:
    return ScriptedCard(steps, activation=activation)


def step(command: str, response: str = "", tear: bool = False) -> Step:
    return Step(ApduPattern.exact(H(command)), H(response), tear)


class Host:
    """Drives a chip frame by frame, on a clock of its own."""

    def __init__(self, chip: Pn532Chip) -> None:
        self.chip = chip
        self.now = 0.0

    def send(self, data: str | bytes) -> bytes:
        """The chip's bytes for a command frame (ACK included), waiting (a few seconds at most) for an answer that
        takes time."""
        raw = H(data) if isinstance(data, str) else data
        out = self.chip.receive(host_frame(raw), self.now)
        for _ in range(100):
            if self.chip.deadline is None:
                break
            self.now = self.chip.deadline
            out += self.chip.due(self.now)
        return out

    def answer(self, data: str | bytes) -> bytes:
        """The answer data of a command (the ACK checked and stripped)."""
        out = self.send(data)
        assert out[:6] == ACK
        frame = out[6:]
        assert frame[:3] == H("0000FF") and frame[-1] == 0
        return frame[6:-2] if frame[3:5] != H("FFFF") else frame[9:-2]


@pytest.fixture
def host() -> Host:
    return Host(Pn532Chip(card()))


def listed(uid: str = "D5D0CB68", ats: str = "0575777002") -> bytes:
    return H("4B01010004" "20" + f"{len(H(uid)):02X}" + uid + ats)


# --- libnfc's exchange ------------------------------------------------------------------------------------------------

def test_nfc_list_trace_replays_byte_for_byte() -> None:
    chip = Pn532Chip(card())
    chip.registers.update(EARLIER_REGISTERS)
    now = 0.0
    assert chip.receive(H("55550000000000000000000000000000"), now) == b""  # the HSU wake-up is not a frame
    for sent, after_ack in NFC_LIST_TRACE:
        out = chip.receive(H(sent), now)
        if chip.deadline is not None:  # a poll finding nothing answers after the chip's retries
            assert out == ACK
            now += 1.0
            out += chip.due(now)
        assert out == ACK + H(after_ack), sent


def test_the_second_listing_after_deselect_finds_nothing_after_the_retries(host: Host) -> None:
    host.send("320500 0102")  # MxRtyPassiveActivation 2: three tries
    assert host.answer("4A0100") == listed()
    assert host.answer("4400") == H("4500")
    out = host.chip.receive(host_frame(H("4A0100")), 10.0)
    assert out == ACK
    assert host.chip.deadline == pytest.approx(10.03)  # three tries of 10 ms
    assert host.chip.due(10.02) == b""
    assert host.chip.due(10.03) == chip_frame(H("4B00"))
    assert host.chip.halted


def test_a_host_ack_aborts_a_poll_that_waits_forever() -> None:
    chip = Pn532Chip(None)  # no card; the chip's default is to retry forever
    assert chip.receive(host_frame(H("4A0100")), 0.0) == ACK
    assert chip.deadline is not None
    assert chip.due(100.0) == b""
    assert chip.receive(ACK, 100.0) == b""
    assert chip.deadline is None
    assert chip.due(200.0) == b""


def test_a_card_put_in_the_field_answers_a_waiting_poll() -> None:
    chip = Pn532Chip(None)
    chip.receive(host_frame(H("4A0100")), 0.0)
    chip.put(card())
    assert chip.due(0.05) == chip_frame(listed())


def test_a_new_command_replaces_a_waiting_one() -> None:
    chip = Pn532Chip(None)
    chip.receive(host_frame(H("4A0100")), 0.0)
    assert chip.receive(host_frame(H("02")), 0.01) == ACK + chip_frame(H("0332010607"))
    assert chip.deadline is None


def test_a_nack_gets_the_last_answer_again(host: Host) -> None:
    first = host.send("02")
    assert host.chip.receive(NACK, 0.0) == first[6:]
    assert host.chip.receive(NACK, 0.0) == first[6:]


def test_a_damaged_host_frame_gets_no_ack(host: Host) -> None:
    frame = bytearray(host_frame(H("02")))
    frame[-2] ^= 0x01
    assert host.chip.receive(bytes(frame), 0.0) == b""
    assert host.chip.receive(host_frame(H("02")), 0.0)[:6] == ACK


def test_a_frame_split_in_bytes_is_answered_once_whole(host: Host) -> None:
    frame = host_frame(H("02"))
    outs = [host.chip.receive(frame[i:i + 1], 0.0) for i in range(len(frame))]
    assert outs[:8] == [b""] * 8
    assert outs[8] == ACK + chip_frame(H("0332010607"))  # answered once the postamble is in


def test_a_frame_that_lost_a_zero_gets_no_ack_though_its_checksums_hold(host: Host) -> None:
    frame = host_frame(H("4A0100"))  # 00 00 FF 04 FC D4 4A 01 00 E1 00
    lost = frame[:8] + frame[9:]  # the 00 of "4A 01 00": the postamble takes the DCS's place, which still sums to 0
    assert FrameDecoder().feed(lost)[0].data == H("4A01E1")  # what a chip that does not wait for the postamble runs
    assert host.chip.receive(lost, 0.0) == b""
    assert host.chip.receive(host_frame(H("4A0100")), 1.0)[:6] == ACK  # the host's frame sent again, after silence
    assert host.chip.commands == 1


def test_a_frame_that_lost_a_zero_is_dropped_when_the_next_byte_is_not_a_postamble(host: Host) -> None:
    frame = host_frame(H("4A0100"))
    assert host.chip.receive(frame[:8] + frame[9:] + H("55"), 0.0) == b""
    assert host.chip.receive(host_frame(H("02")), 0.0) == ACK + chip_frame(H("0332010607"))
    assert host.chip.commands == 1


def test_a_frame_held_for_its_postamble_is_dropped_after_the_receive_gap(host: Host) -> None:
    frame = host_frame(H("4A0100"))
    lost = frame[:8] + frame[9:]
    assert host.chip.receive(lost, 0.0) == b""
    assert host.chip.receive(H("00"), RECEIVE_GAP / 2)[:6] == ACK  # a postamble in time: the frame is taken
    assert host.chip.received[-1] == H("4A01E1")
    assert host.chip.receive(lost, 1.0) == b""
    assert host.chip.receive(H("00"), 1.0 + 2 * RECEIVE_GAP) == b""  # too late: the frame was dropped


@pytest.mark.parametrize("command", ["8C00", "14", "4A03", "0806", "FF"])
def test_a_command_the_chip_cannot_parse_gets_the_error_frame(host: Host, command: str) -> None:
    assert host.send(command) == ACK + ERROR_FRAME
    assert host.chip.receive(NACK, 0.0) == ERROR_FRAME


# --- the card in the field --------------------------------------------------------------------------------------------

def test_field_off_and_on_wakes_a_halted_card(host: Host) -> None:
    host.answer("4A0100")
    host.answer("5200")
    assert host.chip.halted
    assert host.answer("320100") == H("33")
    assert host.answer("320101") == H("33")
    assert host.answer("4A0100") == listed()


def test_retap_wakes_a_halted_card(host: Host) -> None:
    host.answer("4A0100")
    host.answer("4400")
    host.chip.put(host.chip.take())
    assert host.answer("4A0100") == listed()


def test_in_select_brings_back_a_deselected_target(host: Host) -> None:
    host.answer("4A0100")
    host.answer("4400")
    assert host.answer("5401") == H("5500")
    assert host.answer("400100B0950000") == H("41006F00")  # off script: the scripted card answers 6F00
    host.answer("5200")
    assert host.answer("5401") == H("5527")  # released: nothing to select


def test_the_ats_comes_only_with_automatic_rats(host: Host) -> None:
    assert host.answer("1204") == H("13")
    assert host.answer("4A0100") == H("4B0101000420" "04D5D0CB68")


def test_a_mifare_classic_is_listed_without_ats() -> None:
    host = Host(Pn532Chip(card(activation=Activation("MIFARE", uid=H("01020304"), atqa=H("0004"), sak=0x08))))
    assert host.answer("4A0100") == H("4B01010004080401020304")


def test_listing_a_given_uid(host: Host) -> None:
    host.send("3205000102")
    assert host.answer("4A010001020304") == H("4B00")
    assert host.answer("4A0100D5D0CB68") == listed()
    seven = Host(Pn532Chip(card(activation=Activation("T=CL", uid=H("04A1B2C3D4E5F6"), atqa=H("0044"), sak=0x20,
                                                         ats=ATS))))
    assert seven.answer("4A0100" "8804A1B2" "C3D4E5F6")[:2] == H("4B01")  # the cascade form libnfc sends


def test_other_modulations_find_nothing(host: Host) -> None:
    host.send("3205000102")
    for command in ("4A010100FFFF0100", "4A010300", "4A0104"):
        assert host.answer(command) == H("4B00")


# --- APDUs ------------------------------------------------------------------------------------------------------------

SELECT = "00A4040008A000000632010105"


def test_in_data_exchange_carries_apdus_to_the_card() -> None:
    host = Host(Pn532Chip(card(step(SELECT, "6F009000"), step("805C000204", "000027109000"))))
    host.answer("4A0100")
    assert host.answer("4001" + SELECT) == H("41006F009000")
    assert host.answer("4001805C000204") == H("4100000027109000")


def test_in_data_exchange_without_a_target(host: Host) -> None:
    assert host.answer("4001" + SELECT) == H("4127")


def test_a_card_that_left_the_field_times_out() -> None:
    host = Host(Pn532Chip(card(step(SELECT, "9000"), step("8054", tear=True))))
    host.answer("4A0100")
    assert host.answer("4001" + SELECT) == H("41009000")
    assert host.answer("40018054") == H("4101")  # the card tore away during DEBIT
    assert host.chip.card is None
    assert host.answer("4001" + SELECT) == H("4101")
    assert host.answer("42B2") == H("4301")
    host.send("3205000102")
    assert host.answer("4A0100") == H("4B00")


def test_a_card_taken_away_times_out_and_a_new_one_must_be_activated(host: Host) -> None:
    host.answer("4A0100")
    host.chip.take()
    assert host.answer("4001" + SELECT) == H("4101")
    host.chip.put(card())
    assert host.answer("4001" + SELECT) == H("4127")


def test_long_apdus_in_pieces_and_long_answers_in_pieces() -> None:
    apdu = H("00D60000FF") + bytes(range(255)) + H("A1A2A3A4A5A6")  # 266 bytes
    body = bytes(range(256)) * 2 + H("9000")  # 514 bytes
    host = Host(Pn532Chip(card(step(apdu.hex(), body.hex()))))
    host.answer("4A0100")
    assert host.answer(H("4041") + apdu[:262]) == H("4100")
    out = host.send(H("4001") + apdu[262:])
    assert out[6:14] == H("0000FFFFFF") + H("0109F6")  # an extended frame: LEN 265 (D5, 41, status, 262 bytes)
    assert out[14:] == H("D54140") + body[:262] + bytes((-(0xD5 + 0x41 + 0x40 + sum(body[:262])) & 0xFF, 0))
    assert host.answer("4001") == H("4100") + body[262:]


def test_presence_check_with_r_blocks() -> None:
    host = Host(Pn532Chip(card(step(SELECT, "9000"))))
    host.answer("4A0100")
    assert host.answer("42B2") == H("4300A3")  # R(NAK) 0; the card's block number is 1: R(ACK) 1
    assert host.answer("4001" + SELECT) == H("41009000")
    assert host.answer("42B2") == H("4300029000")  # now 0: the last I-block again
    assert host.answer("42B3") == H("4300A2")
    assert host.answer("42C2") == H("4300C2")  # S(DESELECT): halted
    assert host.chip.halted


def test_in_communicate_thru_i_block() -> None:
    host = Host(Pn532Chip(card(step("805C000204", "000003E89000"))))
    host.answer("4A0100")
    assert host.answer("4203805C000204") == H("430003000003E89000")
    assert host.answer("420A01805C000204") == H("4300") + H("0A01") + H("6F00")  # with CID 1


def test_in_communicate_thru_without_a_card(host: Host) -> None:
    assert host.answer("42B2") == H("4301")
    assert host.answer("4226") == H("4301")


# --- InAutoPoll (nfc-poll) --------------------------------------------------------------------------------------------

def test_in_auto_poll_reports_the_iso_dep_card_with_its_ats(host: Host) -> None:
    answer = host.answer("60140220100311120403")  # what nfc-poll sends
    assert answer == H("6101200E") + H("01000420" "04D5D0CB68" "0575777002")


def test_in_auto_poll_as_mifare_drops_the_ats(host: Host) -> None:
    assert host.answer("60010110") == H("6101100901000420" "04D5D0CB68")


def test_in_auto_poll_without_a_card_answers_after_its_polls() -> None:
    chip = Pn532Chip(None)
    assert chip.receive(host_frame(H("6002012010")), 0.0) == ACK
    assert chip.deadline == pytest.approx(0.05)  # looks again for a card every 50 ms
    assert chip.due(0.05) == b""
    assert chip.due(0.6) == chip_frame(H("6100"))  # 2 polls x 150 ms x 2 types


# --- status commands --------------------------------------------------------------------------------------------------

def test_registers_diagnose_status_and_power_down(host: Host) -> None:
    assert host.answer("0863050063 3C10") == H("09")
    assert host.answer("06633C63056302") == H("07100000")
    assert host.answer("0000" + "6C69626E6663") == H("0100" + "6C69626E6663")
    assert host.answer("0006") == H("0101")  # no card activated
    assert host.answer("04") == H("0500000000")
    host.answer("4A0100")
    assert host.answer("0006") == H("0100")
    assert host.answer("04") == H("05000101" "01000000" "00")
    assert host.answer("16F0") == H("1700")
    assert not host.chip.field
    assert host.answer("04") == H("0500000000")


# --- robustness -------------------------------------------------------------------------------------------------------

_CODES = [0x00, 0x02, 0x04, 0x06, 0x08, 0x12, 0x14, 0x16, 0x32, 0x40, 0x42, 0x44, 0x4A, 0x52, 0x54, 0x60, 0x8C]
_commands = st.builds(lambda code, body: host_frame(bytes((code,)) + body), st.sampled_from(_CODES),
                      st.binary(max_size=24))
_noise = st.one_of(st.binary(max_size=24), st.sampled_from([ACK, NACK, ERROR_FRAME, H("0000FF")]))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_commands, _noise), max_size=16), st.lists(st.booleans(), max_size=16))
def test_any_host_bytes_get_whole_frames_back_and_never_an_exception(chunks: list[bytes], moves: list[bool]) -> None:
    chip = Pn532Chip(card(step(SELECT, "9000")))
    out = bytearray()
    now = 0.0
    for index, chunk in enumerate(chunks):
        out += chip.receive(chunk, now)
        now += 0.1
        out += chip.due(now)
        if index < len(moves):  # the card leaves, or leaves and comes back
            taken = chip.take()
            if moves[index]:
                chip.put(taken or card())
    decoder = FrameDecoder()
    events = decoder.feed(bytes(out))
    assert decoder.discarded == 0 and decoder.pending == 0
    assert not any(isinstance(event, BadFrame) for event in events)
    assert all(isinstance(event, ControlFrame) or event.tfi == 0xD5 for event in events)


# --- the pty server ---------------------------------------------------------------------------------------------------

@pytest.fixture
def served(tmp_path):
    chip = Pn532Chip(card(step(SELECT, "6F009000")))
    with Pn532PtyServer(chip, tmp_path / "pn532") as server:
        yield server


def exchange(port: serial.Serial, data: str) -> bytes:
    """ACK and a normal answer frame, read by their lengths as libnfc reads them."""
    port.reset_input_buffer()
    port.write(host_frame(H(data)))
    ack = port.read(6)
    head = port.read(5)
    return ack + head + port.read(head[3] + 2)


def test_the_link_is_a_symlink_to_a_raw_pty(served: Pn532PtyServer, tmp_path) -> None:
    link = tmp_path / "pn532"
    assert link.is_symlink() and os.readlink(link) == served.slave_name
    with serial.Serial(str(link), 115200, timeout=0.5) as port:
        assert exchange(port, "02") == ACK + chip_frame(H("0332010607"))
        # bytes a line discipline would change (CR, XON, XOFF, DEL) pass untouched
        assert exchange(port, "000011130D7F") == ACK + chip_frame(H("010011130D7F"))


def test_clients_come_and_go(served: Pn532PtyServer, tmp_path) -> None:
    for _ in range(3):  # between clients nobody holds the slave but the server: reads must not fail with EIO
        with serial.Serial(str(tmp_path / "pn532"), 115200, timeout=0.5) as port:
            assert exchange(port, "02") == ACK + chip_frame(H("0332010607"))
        time.sleep(0.05)


def test_moving_the_card_while_a_client_polls(served: Pn532PtyServer, tmp_path) -> None:
    taken = served.take_card()
    with serial.Serial(str(tmp_path / "pn532"), 115200, timeout=0.5) as port:
        port.write(host_frame(H("4A0100")))
        assert port.read(6) == ACK
        threading.Timer(0.1, served.put_card, (taken,)).start()
        port.timeout = 2
        assert port.read(len(chip_frame(listed()))) == chip_frame(listed())


def test_stop_removes_the_link(tmp_path) -> None:
    server = Pn532PtyServer(Pn532Chip(card()), tmp_path / "pn532").start()
    name = server.slave_name
    server.shutdown()
    assert not (tmp_path / "pn532").exists() and not (tmp_path / "pn532").is_symlink()
    assert name and server.pty.master == -1


def test_a_stale_link_is_replaced_and_anything_else_refused(tmp_path) -> None:
    (tmp_path / "stale").symlink_to("/dev/pts/nonexistent")
    with Pn532PtyServer(Pn532Chip(card()), tmp_path / "stale") as server:
        assert os.readlink(tmp_path / "stale") == server.slave_name
    (tmp_path / "file").write_text("keep me")
    with pytest.raises(EmulatorError, match="not a symlink"):
        Pn532PtyServer(Pn532Chip(card()), tmp_path / "file").open()
    assert (tmp_path / "file").read_text() == "keep me"
