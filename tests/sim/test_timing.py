"""The timing model: hand-computed air, line and device times for ISO 14443-4 exchanges and T=0 PSAM exchanges."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.hexutil import parse_hex
from protocols.iso14443 import Ats, chain_frames
from sim.timing import (
    CARD_PROCESSING,
    PSAM_PROCESSING,
    ContactlessTime,
    ContactlessTiming,
    ContactTime,
    ContactTiming,
    ProcessingTimes,
)
from terminal.errors import ConfigError
from terminal.link import Activation

H = parse_hex
FC_MHZ = 13.56  # carrier cycles per µs: x/fc in µs is x / 13.56
ETU = 128  # carrier cycles per etu at 106 kbit/s
FDT = 1172
OK = H("9000")


def card(ats: str | None, uid: str = "04A1B2C3D4E5F6") -> Activation:
    return Activation("T=CL", uid=H(uid), atqa=H("0044"), sak=0x20, ats=None if ats is None else H(ats))


def model(ats: str | None = "0578777002", **settings: object):
    return ContactlessTiming(**settings).model(card(ats))  # type: ignore[arg-type]


# --- contactless: hand-computed cases ------------------------------------------------------------------------------


def test_five_byte_select_at_106() -> None:
    # Reader frame: PCB + 5 + CRC = 8 bytes → 3 + 72 = 75 etu; card frame: PCB + 9000 + CRC = 5 bytes → 2 + 45 = 47 etu;
    # two frames, two FDTs: (122·128 + 2·1172)/fc = 17960/fc.
    time = model().exchange(H("00A4040000"), OK)
    assert time == ContactlessTime(17960 / FC_MHZ, 2000.0, 1, 1, 0)
    assert time.line_us == pytest.approx(1324.4838, abs=1e-4)
    assert time.total_us == pytest.approx(3324.4838, abs=1e-4)


def test_five_byte_select_at_848_when_the_ats_allows_it() -> None:
    # Same frames, etu = 16/fc: 122·16 + 2·1172 = 4296 carrier cycles.
    m = model(kbps=848)
    assert (m.kbps_to_picc, m.kbps_to_pcd) == (848, 848)
    assert m.exchange(H("00A4040000"), OK).line_us == pytest.approx(4296 / FC_MHZ)


def test_select_by_aid_with_its_fci_at_106() -> None:
    # 14-byte SELECT → 17-byte frame, 3 + 153 = 156 etu; 51-byte FCI + 9000 → 56-byte frame, 2 + 504 = 506 etu.
    fci = H("6F318408A000000632010105A5259F0801029F0C1E02002900FFFFFFFF0201031047700400674428022020011520401231"
            "0114")
    assert len(fci) == 51
    time = model().exchange(H("00A4040008A00000063201010500"), fci + OK)
    assert time.line_us == pytest.approx(((156 + 506) * ETU + 2 * FDT) / FC_MHZ)


def test_capp_update_of_133_bytes_chained_at_fsc_64() -> None:
    # FSC 64 leaves 64 - PCB - CRC = 61 bytes of INF: 61 + 61 + 11 → three I-blocks of 64, 64, 14 bytes (142 in all).
    # Reader frames: 3·3 + 9·142 = 1287 etu; two R(ACK)s from the card of 3 bytes, 2 + 27 = 29 etu each;
    # the 9000 answer 47 etu; six frames, six FDTs: (1392·128 + 6·1172)/fc = 185208/fc.
    apdu = H("80DC02D080") + bytes(128)
    assert len(apdu) == 133
    m = model("05758070 02".replace(" ", ""))
    assert m.fsc == 64
    time = m.exchange(apdu, OK)
    assert time == ContactlessTime(185208 / FC_MHZ, 15000.0, 3, 1, 0)
    assert time.line_us == pytest.approx(13658.4071, abs=1e-4)
    assert [len(frame) for frame in chain_frames(apdu, 64)] == [64, 64, 14]


def test_no_chaining_at_fsc_256() -> None:
    # 133 + PCB + CRC = 136 bytes: one frame of 3 + 1224 etu, answer 47 etu.
    time = model().exchange(H("80DC02D080") + bytes(128), OK)
    assert (time.blocks_out, time.blocks_in) == (1, 1)
    assert time.line_us == pytest.approx(((1227 + 47) * ETU + 2 * FDT) / FC_MHZ)


def test_cid_adds_a_byte_to_every_block_and_acknowledgement() -> None:
    # With CID: INF 60 per block → 60 + 60 + 13, frames 64 + 64 + 17 = 145 bytes → 9 + 1305 = 1314 etu;
    # R(ACK) with CID: 4 bytes → 38 etu each; 9000 answer: 6 bytes → 56 etu.
    time = model("0575807002", cid=True).exchange(H("80DC02D080") + bytes(128), OK)
    assert time.blocks_out == 3
    assert time.line_us == pytest.approx(((1314 + 2 * 38 + 56) * ETU + 6 * FDT) / FC_MHZ)


def test_long_response_is_chained_for_the_reader_fsd() -> None:
    # A 128-byte record + 9000 = 130 bytes at FSD 64: 61 + 61 + 8, card frames 64 + 64 + 11 = 139 bytes → 6 + 1251 etu;
    # the reader acknowledges two blocks, 3 + 27 = 30 etu each; the command (5 bytes) 75 etu; six frames.
    time = model(fsd=64).exchange(H("00B202D480"), bytes(128) + OK)
    assert (time.blocks_out, time.blocks_in) == (1, 3)
    assert time.line_us == pytest.approx(((75 + 1257 + 2 * 30) * ETU + 6 * FDT) / FC_MHZ)


def test_debit_beyond_the_frame_waiting_time_needs_a_wtx_round() -> None:
    # FWI 4: FWT = 4096·16/fc = 4833.5 µs; the 25 ms DEBIT needs the card to ask once, with WTXM 5.
    # One round = S(WTX) from the card (4 bytes, 38 etu) and its echo (4 bytes, 39 etu), each with its FDT.
    debit = H("805401000F") + bytes(15) + H("08")
    answer = bytes(8) + OK
    slow = model("0578804002").exchange(debit, answer)
    fast = model("0578807002").exchange(debit, answer)  # FWI 7: 38.7 ms covers it
    assert (slow.wtx, fast.wtx) == (1, 0)
    assert slow.device_us == fast.device_us == 25000.0
    assert slow.line_us - fast.line_us == pytest.approx((77 * ETU + 2 * FDT) / FC_MHZ)


def test_wtx_rounds_are_capped_at_wtxm_59() -> None:
    m = model("0578800002")  # FWI 0: FWT = 302.06 µs
    fwt = m.fwt_us
    assert m.wtx_rounds(fwt) == 0
    assert m.wtx_rounds(fwt + 1) == 1
    assert m.wtx_rounds(60 * fwt) == 1
    assert m.wtx_rounds(60 * fwt + 1) == 2
    assert m.wtx_rounds(100_000) == math.ceil((100_000 - fwt) / (59 * fwt)) == 6


@pytest.mark.parametrize(("ats", "asked", "to_picc", "to_pcd"), [
    (None, 848, 106, 106),  # no ATS: defaults, 106 only
    ("0578807002", 848, 106, 106),  # TA(1) = 80: 106 only, same both ways
    ("0578777002", 424, 424, 424),
    ("0578117002", 848, 212, 212),  # DS = DR = 2
    ("0578017002", 848, 212, 106),  # the card receives at 212, answers at 106
    ("0578917002", 848, 212, 212),  # same-rate bit set
    ("0578947002", 848, 212, 212),  # sends up to 212, receives up to 848, same rate both ways: 212
])
def test_bit_rate_is_negotiated_with_the_ats(ats: str | None, asked: int, to_picc: int, to_pcd: int) -> None:
    m = model(ats, kbps=asked)
    assert (m.kbps_to_picc, m.kbps_to_pcd) == (to_picc, to_pcd)


def test_missing_ats_uses_the_iso_defaults() -> None:
    m = model(None)
    assert (m.fsc, m.fwt_us) == (32, pytest.approx(Ats().fwt * 1e6))


def test_torn_exchange_costs_the_command_and_one_fwt() -> None:
    m = model("0578807002")
    debit = H("805401000F") + bytes(15) + H("08")
    command_only = ((3 + 9 * 24) * ETU + FDT) / FC_MHZ
    before = m.torn(debit, None)
    after = m.torn(debit, bytes(8) + OK)
    assert before == ContactlessTime(pytest.approx(command_only + m.fwt_us), 0.0, 1, 0, 0)
    assert after.line_us == before.line_us and after.device_us == 25000.0


def test_activation_air_time() -> None:
    # 7-byte UID, 5-byte ATS, SFGI 0: REQA 10 etu, ATQA 20; per level ANTICOLLISION 21 + UID CLn 47 + SELECT 84
    # + SAK 29; RATS 39, ATS 2 + 9·7 = 65 etu; twelve frames, twelve FDTs.
    time = model().activation(card("0578777002"))
    assert time.line_us == pytest.approx(((10 + 20 + 2 * 181 + 39 + 65) * ETU + 12 * FDT) / FC_MHZ)
    assert time.device_us == 0.0
    # A MIFARE Classic with a 4-byte UID stops at the SAK; an SFGI of 1 adds 2·4096/fc after the ATS.
    classic = Activation("MIFARE", uid=H("01020304"), atqa=H("0004"), sak=0x08)
    assert model().activation(classic).line_us == pytest.approx(((10 + 20 + 181) * ETU + 6 * FDT) / FC_MHZ)
    sfgi = model("0578777102")
    assert sfgi.activation(card("0578777102")).line_us == pytest.approx(time.line_us + 8192 / FC_MHZ)


# --- contactless: cross-check against the framing helpers ----------------------------------------------------------


@given(length=st.integers(0, 600), fsci=st.integers(0, 8), cid=st.booleans(), response=st.integers(2, 300))
def test_line_time_matches_the_frames_the_helpers_build(length: int, fsci: int, cid: bool, response: int) -> None:
    ats = Ats(fsci, tb=0x70)
    m = ContactlessTiming(cid=cid).model(card(ats.to_bytes().hex()))
    command = bytes(length)
    out = chain_frames(command, ats.fsc, cid=0 if cid else None)
    back = chain_frames(bytes(response), 256, cid=0 if cid else None)
    ack = 3 + cid
    etus = (sum(3 + 9 * len(frame) for frame in out) + (len(out) - 1) * (2 + 9 * ack)
            + sum(2 + 9 * len(frame) for frame in back) + (len(back) - 1) * (3 + 9 * ack))
    frames = 2 * len(out) - 1 + 2 * len(back) - 1
    time = m.exchange(command, bytes(response))
    assert (time.blocks_out, time.blocks_in) == (len(out), len(back))
    assert time.line_us == pytest.approx((etus * ETU + frames * FDT) / FC_MHZ)


# --- processing times ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("command", "response", "us"), [
    ("00B095001E", "00" * 30 + "9000", 1500.0),
    ("805C000204", "000003E8 9000", 1000.0),
    ("80500302 0B 01 00000064 000000000001 0F", "00" * 15 + "9000", 5000.0),
    ("80500302 0B 01 00000064 000000000001 0F", "9401", 1000.0),  # refused: nothing computed, nothing written
    ("805401000F" + "00" * 15 + "08", "9302", 1000.0),
    ("00A4040008A000000632010105", "6283", 2000.0),  # a warning: the work was done
    ("00C0000008", "6A86", 500.0),  # refusals never cost more than the command itself
    ("00EE000000", "6D00", 1000.0),  # unknown INS → default 2000, refused → 1000
    ("00EE000000", "9000", 2000.0),
    ("00", "9000", 2000.0),  # a 1-byte command has no INS
])
def test_card_processing_time(command: str, response: str, us: float) -> None:
    assert CARD_PROCESSING.us(H(command), H(response)) == us


def test_processing_times_are_configurable() -> None:
    slow = CARD_PROCESSING.updated({0x54: 40_000, 0xE2: 3_000})
    assert slow.us(H("805401000F") + bytes(16), OK) == 40_000.0
    assert slow.us(H("00E2000000"), OK) == 3_000.0
    assert CARD_PROCESSING.us(H("805401000F") + bytes(16), OK) == 25_000.0  # the default is untouched
    assert ContactlessTiming(card=slow).model(card(None)).exchange(H("00E2000000"), OK).device_us == 3_000.0


@pytest.mark.parametrize("times", [{0x54: -1}, {0x100: 5}, {0x54: "5"}, {0x54: True}, {0x54: float("nan")}])
def test_bad_processing_times_are_refused(times: dict) -> None:
    with pytest.raises(ConfigError):
        ProcessingTimes(times)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ConfigError, match="bit rate"):
        ContactlessTiming(kbps=100)
    with pytest.raises(ConfigError, match="FSD"):
        ContactlessTiming(fsd=8)
    with pytest.raises(ConfigError, match="baud"):
        ContactTiming(baud=0)
    with pytest.raises(ConfigError, match="guard"):
        ContactTiming(extra_guard_etu=256)
    with pytest.raises(ConfigError):
        ProcessingTimes({}, default_us=-1)


# --- PSAM over T=0 -------------------------------------------------------------------------------------------------

MAC1_REQUEST = H("8070000024") + bytes(36)


def test_8070_over_t0_at_9600() -> None:
    # Header 5, ACK 1, data 36, SW 2 (61 08) = 44 characters of 12 etu, four turnarounds of 16 - 12 = 4 etu:
    # 544 etu at 9600 Bd.
    time = ContactTiming().model().exchange(MAC1_REQUEST, H("6108"))
    assert time == ContactTime(544 / 9600 * 1e6, 10_000.0, 44)
    assert time.line_us == pytest.approx(56666.667, abs=1e-3)


def test_get_response_over_t0_at_9600() -> None:
    # Header 5, ACK 1, 8 data, SW 2 = 16 characters, two turnarounds: 200 etu.
    time = ContactTiming().model().exchange(H("00C0000008"), bytes(8) + OK)
    assert time == ContactTime(200 / 9600 * 1e6, 200.0, 16)


@pytest.mark.parametrize(("command", "response", "characters", "etus"), [
    ("8072000004 11223344", "9000", 12, 12 * 12 + 4 * 4),  # case 3
    ("00B0960006", "200041599997 9000", 14, 14 * 12 + 2 * 4),  # case 2 with data
    ("00B0960006", "6A82", 7, 7 * 12 + 2 * 4),  # case 2 refused: no ACK
    ("00A40000028011", "6115", 10, 10 * 12 + 4 * 4),
    ("80700000 24" + "00" * 36 + "08", "6108", 44, 544),  # a case 4 command: its Le never goes on the line
    ("0084000004", "01020304 9000", 12, 12 * 12 + 2 * 4),
])
def test_t0_procedure(command: str, response: str, characters: int, etus: int) -> None:
    time = ContactTiming().model().exchange(H(command), H(response))
    assert time.characters == characters
    assert time.line_us == pytest.approx(etus / 9600 * 1e6)


@pytest.mark.parametrize(("baud", "guard", "etus"), [
    (38400, 0, 544),
    (115200, 0, 544),
    (9600, 2, 44 * 14 + 4 * 2),  # N = 2: 14-etu characters, turnaround 2 etu more
    (9600, 4, 44 * 16),  # N = 4: 16-etu characters already meet the 16 etu rule
    (9600, 255, 544),  # N = 255: the T=0 minimum, 12 etu
])
def test_t0_baud_rate_and_guard_time(baud: int, guard: int, etus: int) -> None:
    time = ContactTiming(baud=baud, extra_guard_etu=guard).model().exchange(MAC1_REQUEST, H("6108"))
    assert time.line_us == pytest.approx(etus / baud * 1e6)


def test_t0_torn_exchange_costs_what_went_out_and_one_work_waiting_time() -> None:
    m = ContactTiming().model()
    before = m.torn(MAC1_REQUEST, None)
    assert before == ContactTime(pytest.approx((42 * 12 + 2 * 4) / 9600 * 1e6 + 1e6), 0.0, 42)
    assert m.torn(MAC1_REQUEST, H("6108")).device_us == 10_000.0
    assert m.torn(H("00C0000008"), None).line_us == pytest.approx(5 * 12 / 9600 * 1e6 + 1e6)


def test_psam_processing_times() -> None:
    assert PSAM_PROCESSING.us(MAC1_REQUEST, H("6108")) == 10_000.0
    assert PSAM_PROCESSING.us(H("8072000004") + bytes(4), H("9302")) == 1_000.0
    assert PSAM_PROCESSING.us(H("00B0970001"), H("01 9000")) == 1_000.0
