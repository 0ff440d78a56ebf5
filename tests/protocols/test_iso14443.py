"""ISO 14443 helpers: CRCs against the standard's examples, ATS, timings, UID cascade, ISO-DEP blocks and chaining."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.errors import ProtocolError
from protocols.hexutil import parse_hex
from protocols.iso14443 import (
    FC_HZ,
    Ats,
    Pcb,
    atqa_bit_frame_anticollision,
    atqa_uid_size,
    bcc,
    cascade_levels,
    chain_frames,
    chain_payloads,
    check_uid,
    classic_size_from_sak,
    crc_a,
    crc_b,
    etu,
    fsc,
    fwt,
    i_block_pcb,
    sak_iso14443_4,
    sfgt,
    strip_crc_a,
    strip_crc_b,
    uid_from_levels,
)

H = parse_hex


# --- CRC ----------------------------------------------------------------------------------------------------------

def _reference_crc(data: bytes, register: int) -> int:
    """ISO 14443-3 annex B, bit by bit: reflected polynomial 8408."""
    for byte in data:
        register ^= byte
        for _ in range(8):
            register = (register >> 1) ^ (0x8408 if register & 1 else 0)
    return register


@pytest.mark.parametrize("data, crc", [("0000", "A01E"), ("1234", "26CF")])
def test_crc_a_annex_examples(data, crc):
    assert crc_a(H(data)) == H(crc)


@pytest.mark.parametrize("data, crc", [("000000", "CCC6"), ("0FAAFF", "FCD1"), ("0A123456", "2CF6")])
def test_crc_b_annex_examples(data, crc):
    assert crc_b(H(data)) == H(crc)


def test_crc_catalogue_check_values():
    # CRC-16/ISO-IEC-14443-3-A and CRC-16/IBM-SDLC (X.25) check values over "123456789"
    assert int.from_bytes(crc_a(b"123456789"), "little") == 0xBF05
    assert int.from_bytes(crc_b(b"123456789"), "little") == 0x906E


def test_crc_a_of_real_frames():
    assert crc_a(H("E080")) == H("31 73")  # RATS, FSDI 8, CID 0
    assert crc_a(H("5000")) == H("57 CD")  # HLTA


@given(st.binary(max_size=64))
def test_crcs_match_the_bitwise_reference(data):
    assert crc_a(data) == _reference_crc(data, 0x6363).to_bytes(2, "little")
    assert crc_b(data) == (_reference_crc(data, 0xFFFF) ^ 0xFFFF).to_bytes(2, "little")


@given(st.binary(max_size=64))
def test_strip_crc_round_trip(data):
    assert strip_crc_a(data + crc_a(data)) == data
    assert strip_crc_b(data + crc_b(data)) == data


def test_strip_crc_refuses_a_damaged_frame():
    with pytest.raises(ProtocolError, match="CRC_A"):
        strip_crc_a(H("0000A01F"))
    with pytest.raises(ProtocolError, match="CRC_B"):
        strip_crc_b(H("00"))


# --- timing -------------------------------------------------------------------------------------------------------

def test_etu_per_bit_rate():
    assert etu() == pytest.approx(9.4395e-6, rel=1e-4)
    assert etu(106) == 128 / FC_HZ
    assert [etu(kbps) for kbps in (212, 424, 848)] == pytest.approx([etu() / 2, etu() / 4, etu() / 8])
    with pytest.raises(ProtocolError):
        etu(115)


def test_frame_waiting_times_match_the_spec_table():
    assert fwt(0) == pytest.approx(302.08e-6, rel=1e-4)
    assert fwt(4) == pytest.approx(4.833e-3, rel=1e-3)
    assert fwt(8) == pytest.approx(77.33e-3, rel=1e-3)
    assert fwt(14) == pytest.approx(4.949, rel=1e-3)
    assert sfgt(0) == 0.0 and sfgt(1) == fwt(1)
    for bad in (-1, 15):
        with pytest.raises(ProtocolError):
            fwt(bad)
        with pytest.raises(ProtocolError):
            sfgt(bad)


def test_fsci_table_and_its_ceiling():
    assert [fsc(i) for i in range(16)] == [16, 24, 32, 40, 48, 64, 96, 128] + [256] * 8
    with pytest.raises(ProtocolError):
        fsc(16)


# --- ATS ----------------------------------------------------------------------------------------------------------

def test_ats_with_every_interface_byte_and_historical_bytes():
    raw = H("0E 78 77 B1 02 4A434F503331563232")  # JCOP31-style: FSCI 8, TA 77, TB B1, TC 02, "JCOP31V22"
    ats = Ats.parse(raw)
    assert ats == Ats(8, 0x77, 0xB1, 0x02, b"JCOP31V22")
    assert ats.to_bytes() == raw
    assert ats.fsc == 256
    assert (ats.fwi, ats.sfgi) == (11, 1)
    assert ats.fwt == pytest.approx(618.6e-3, rel=1e-3)
    assert ats.sfgt == fwt(1)
    assert ats.cid_supported and not ats.nad_supported
    assert ats.bit_rates_to_pcd == (106, 212, 424, 848)
    assert ats.bit_rates_to_picc == (106, 212, 424, 848)
    assert not ats.same_bit_rate_both_ways


def test_ats_defaults_when_bytes_are_absent():
    bare = Ats.parse(H("01"))
    assert bare == Ats() and bare.to_bytes() == H("01")
    assert (bare.fsc, bare.fwi, bare.sfgi, bare.cid_supported, bare.nad_supported) == (32, 4, 0, True, False)
    assert bare.bit_rates_to_pcd == (106,)
    only_t0 = Ats.parse(H("0205"))
    assert only_t0 == Ats(5) and only_t0.fsc == 64 and only_t0.fwt == fwt(4)


def test_ats_rfu_codes_are_read_as_the_standard_says():
    ats = Ats.parse(H("03 29 FF"))  # FSCI 9, TB FWI 15 SFGI 15
    assert ats.fsc == 256 and ats.fwi == 4 and ats.sfgi == 0
    ta = Ats.parse(H("03 10 A4"))  # TA(1): same D both ways, DS 4, DR 8
    assert (ta.bit_rates_to_pcd, ta.bit_rates_to_picc, ta.same_bit_rate_both_ways) == ((106, 424), (106, 848), True)


@pytest.mark.parametrize("raw", ["", "00", "02", "0178", "0280", "0370", "0478B1", "03 40", "05 78 80 70"])
def test_malformed_ats_is_refused(raw):
    with pytest.raises(ProtocolError):
        Ats.parse(H(raw))


@pytest.mark.parametrize("make", [
    lambda: Ats(None, 0x80), lambda: Ats(None, historical=b"x"), lambda: Ats(16), lambda: Ats(8, 256),
    lambda: Ats(8, historical=bytes(254)),
])
def test_unencodable_ats_is_refused(make):
    with pytest.raises(ProtocolError):
        make()


optional_byte = st.none() | st.integers(0, 0xFF)
atss = st.one_of(st.just(Ats()), st.builds(Ats, st.integers(0, 15), optional_byte, optional_byte, optional_byte,
                                           st.binary(max_size=30)))


@given(atss)
def test_ats_round_trip(ats):
    raw = ats.to_bytes()
    assert raw[0] == len(raw)
    assert Ats.parse(raw) == ats and Ats.parse(raw).to_bytes() == raw


@given(st.binary(max_size=40))
def test_random_ats_parses_back_exactly_or_raises(raw):
    try:
        ats = Ats.parse(raw)
    except ProtocolError:
        return
    assert ats.to_bytes() == raw


# --- ATQA, SAK, UID -----------------------------------------------------------------------------------------------

def test_atqa_helpers():
    assert atqa_uid_size(0x0004) == 4    # MIFARE Classic 1K
    assert atqa_uid_size(0x0044) == 7    # MIFARE Ultralight / DESFire-style double UID
    assert atqa_uid_size(0x0344) == 7
    assert atqa_uid_size(0x0084) == 10
    with pytest.raises(ProtocolError, match="RFU"):
        atqa_uid_size(0x00C4)
    assert atqa_bit_frame_anticollision(0x0004) and atqa_bit_frame_anticollision(0x0008)
    assert not atqa_bit_frame_anticollision(0x0000) and not atqa_bit_frame_anticollision(0x0006)


@pytest.mark.parametrize("sak, iso, classic", [
    (0x08, False, 1024), (0x18, False, 4096), (0x09, False, 320), (0x88, False, 1024), (0x20, True, None),
    (0x28, True, 1024), (0x38, True, 4096), (0x00, False, None), (0x04, False, None), (0x24, False, None),
    (0x10, False, None),
])
def test_sak_helpers(sak, iso, classic):
    assert sak_iso14443_4(sak) is iso
    assert classic_size_from_sak(sak) == classic


def test_uid_cascade_levels_and_bcc():
    assert cascade_levels(H("01020304")) == (H("01020304"),)
    assert cascade_levels(H("04112233445566")) == (H("88041122"), H("33445566"))
    assert cascade_levels(H("0411223344556677 8899".replace(" ", ""))) == (
        H("88041122"), H("88334455"), H("66778899"))
    assert bcc(H("88041122")) == 0x88 ^ 0x04 ^ 0x11 ^ 0x22
    assert uid_from_levels([H("88041122"), H("33445566")]) == H("04112233445566")


def test_cascade_tag_may_end_a_triple_size_uid():
    uid = H("04112233445588998877")
    assert check_uid(uid) == uid
    assert cascade_levels(uid)[-1] == H("88998877")


@pytest.mark.parametrize("uid", ["880102 03", "010203", "0102030405", "04112288445566"])
def test_uid_rules(uid):
    raw = H(uid)
    if len(raw) in (4, 7, 10):
        # the cascade tag may not open the last level's bytes
        with pytest.raises(ProtocolError, match="cascade tag"):
            check_uid(raw)
    else:
        with pytest.raises(ProtocolError, match="4, 7 or 10"):
            check_uid(raw)


def test_uid_from_levels_refuses_a_missing_cascade_tag():
    with pytest.raises(ProtocolError, match="cascade tag"):
        uid_from_levels([H("01041122"), H("33445566")])
    with pytest.raises(ProtocolError):
        uid_from_levels([])


@given(st.sampled_from((4, 7, 10)).flatmap(lambda n: st.binary(min_size=n, max_size=n)))
def test_uid_levels_round_trip(uid):
    try:
        check_uid(uid)
    except ProtocolError:
        return
    levels = cascade_levels(uid)
    assert all(len(level) == 4 for level in levels)
    assert uid_from_levels(levels) == uid


# --- ISO-DEP blocks -----------------------------------------------------------------------------------------------

def test_i_block_pcbs():
    assert i_block_pcb(0) == 0x02 and i_block_pcb(1) == 0x03
    assert i_block_pcb(0, chaining=True) == 0x12
    assert i_block_pcb(1, chaining=True, cid=True, nad=True) == 0x1F
    assert Pcb.parse(0x12) == Pcb("I", 0, chaining=True)
    assert Pcb.parse(0xB3) == Pcb("R", 1, nak=True)
    assert Pcb.parse(0xA2) == Pcb("R", 0)
    assert Pcb.parse(0xC2) == Pcb("S")                 # DESELECT
    assert Pcb.parse(0xFA) == Pcb("S", cid=True, wtx=True)


def test_every_pcb_byte_parses_back_exactly_or_is_refused():
    valid = 0
    for byte in range(256):
        try:
            pcb = Pcb.parse(byte)
        except ProtocolError:
            continue
        valid += 1
        assert pcb.to_byte() == byte
    assert valid == 16 + 8 + 4  # I: bn, cid, nad, chaining; R: bn, cid, nak; S: cid, wtx


@pytest.mark.parametrize("make", [
    lambda: Pcb("X"), lambda: Pcb("I", 2), lambda: Pcb("R", chaining=True), lambda: Pcb("S", 1),
    lambda: Pcb("I", nak=True), lambda: Pcb.parse(0x100),
])
def test_invalid_pcbs_are_refused(make):
    with pytest.raises(ProtocolError):
        make()


def test_chaining_a_composite_record_update_for_a_small_fsc():
    apdu = H("80DC02D080") + bytes(128)  # 133 bytes, UPDATE CAPP DATA CACHE with a 1A record
    assert [len(p) for p in chain_payloads(apdu, 256)] == [133]
    assert [len(p) for p in chain_payloads(apdu, 32)] == [29, 29, 29, 29, 17]
    assert [len(p) for p in chain_payloads(apdu, 32, cid=True)] == [28, 28, 28, 28, 21]
    # NAD rides in the first block only, so later blocks carry one byte more
    assert [len(p) for p in chain_payloads(apdu, 16, cid=True, nad=True)] == [11] + [12] * 10 + [2]
    assert b"".join(chain_payloads(apdu, 24, nad=True)) == apdu


def test_chain_frames_bytes():
    frames = chain_frames(H("00A4040008A000000632010105"), 16, block_number=1, cid=0)
    assert frames == [
        H("1B 00 00A4040008A0000006320101") + crc_a(H("1B 00 00A4040008A0000006320101")),
        H("0A 00 05") + crc_a(H("0A 00 05")),
    ]
    assert all(len(frame) <= 16 for frame in frames)
    with_nad = chain_frames(bytes(20), 16, nad=0x12)
    assert [f[0] for f in with_nad] == [0x16, 0x03] and with_nad[0][1] == 0x12
    assert chain_frames(b"", 16) == [H("02") + crc_a(H("02"))]


def test_chaining_refuses_impossible_sizes():
    with pytest.raises(ProtocolError):
        chain_payloads(b"x", 3)
    with pytest.raises(ProtocolError):
        chain_frames(b"x", 16, cid=15)


@given(st.binary(max_size=600), st.sampled_from((16, 24, 32, 40, 48, 64, 96, 128, 256)), st.booleans(),
       st.booleans())
def test_chain_frames_fit_and_reassemble(apdu, size, with_cid, with_nad):
    frames = chain_frames(apdu, size, cid=3 if with_cid else None, nad=0x21 if with_nad else None)
    assert all(len(frame) <= size for frame in frames)
    inf = b""
    for index, frame in enumerate(frames):
        body = strip_crc_a(frame)
        pcb = Pcb.parse(body[0])
        assert pcb.kind == "I" and pcb.block_number == index % 2
        assert pcb.chaining is (index < len(frames) - 1)
        assert pcb.cid is with_cid and pcb.nad is (with_nad and index == 0)
        inf += body[1 + pcb.cid + pcb.nad:]
    assert inf == apdu
    assert len(frames) == len(chain_payloads(apdu, size, cid=with_cid, nad=with_nad))
