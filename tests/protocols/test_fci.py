"""The SELECT FCIs: the spec's real T-Union sample byte for byte, the PPSE directory, tolerance and typed errors."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols import tlv
from protocols.card_commands import SelectByName
from protocols.card_files import PUBLIC_APP_INFO
from protocols.errors import ProtocolError
from protocols.fci import PPSE_NAME, T_UNION_CASH_AID, T_UNION_EP_AID, DirectoryEntry, Fci, t_union_file15
from protocols.hexutil import parse_hex
from protocols.tlv import Tlv

# Spec §1.1: a Shanghai T-Union card's answer to SELECT A000000632010105 (data only; 9000 follows).
SAMPLE = parse_hex("6F31 8408A000000632010105 A525 9F080102 9F0C1E 02002900FFFFFFFF 02 01 03104770040067442802 "
                   "20200115 20401231 0114")
FILE15 = parse_hex("02002900FFFFFFFF 02 01 03104770040067442802 20200115 20401231 0114")

# Spec §1.1 PPSE: 61{4F A000000632010105, 50 "MOT_T_EP", 87 02} and 61{4F A000000632010106, 50 "MOT_T_CASH", 87 01}.
PPSE = parse_hex(
    "6F49"
    "  840E 325041592E5359532E4444463031"  # 2PAY.SYS.DDF01
    "  A537 BF0C34"
    "    6117 4F08A000000632010105 5008 4D4F545F545F4550 870102"
    "    6119 4F08A000000632010106 500A 4D4F545F545F43415348 870101"
)


def test_real_sample_parses():
    fci = Fci.parse(SAMPLE)
    assert fci.aid == fci.df_name == T_UNION_EP_AID
    assert fci.file15 == fci.discretionary_data == FILE15
    assert fci.version == b"\x02"
    assert fci.label is None and fci.priority is None and fci.preferred_name is None
    assert fci.directory == ()
    assert fci.proprietary.tag == 0xA5
    assert fci.to_bytes() == SAMPLE


def test_real_sample_is_what_the_builder_makes():
    assert Fci.application(T_UNION_EP_AID, version=b"\x02", file15=FILE15).to_bytes() == SAMPLE


def test_file15_is_handed_over_for_card_files_to_parse():
    info = PUBLIC_APP_INFO.parse(Fci.parse(SAMPLE).file15)
    assert info.serial == parse_hex("03104770040067442802")
    assert info.expiry_date == dt.date(2040, 12, 31)


def test_the_common_t_union_fci_gives_file15_without_the_tree():
    assert t_union_file15(SAMPLE) == Fci.parse(SAMPLE).file15 == FILE15


@pytest.mark.parametrize("other", [
    Fci.application(T_UNION_EP_AID, label=b"MOT_T_EP", priority=2, version=b"\x02", file15=FILE15),  # 50, 87 too
    Fci.application(T_UNION_EP_AID, file15=FILE15),  # no version
    Fci.application(T_UNION_EP_AID, version=b"\x03", file15=FILE15),  # another version
    Fci.application(T_UNION_CASH_AID, version=b"\x02", file15=FILE15),  # another application
    Fci.application(T_UNION_EP_AID, version=b"\x02"),  # no 9F0C
])
def test_any_other_fci_is_left_to_the_tree(other: Fci):
    raw = other.to_bytes()
    assert t_union_file15(raw) is None
    assert Fci.parse(raw) == other  # the general path reads it


@pytest.mark.parametrize("raw", [SAMPLE[:-1], SAMPLE + b"\x00", SAMPLE[:1] + b"\x32" + SAMPLE[2:] + b"\x00",
                                 b"", SAMPLE[:21]])
def test_a_cut_or_longer_common_fci_is_left_to_the_tree(raw: bytes):
    assert t_union_file15(raw) is None


@given(st.binary(min_size=30, max_size=30), st.none() | st.binary(max_size=3), st.none() | st.integers(0, 255))
def test_the_fast_read_agrees_with_the_tree(file15, version, priority):
    raw = Fci.application(T_UNION_EP_AID, version=version, priority=priority, file15=file15).to_bytes()
    fast = t_union_file15(raw)
    assert fast is None or fast == Fci.parse(raw).file15
    assert (fast is not None) == (version == b"\x02" and priority is None)


def test_builder_with_every_field_in_card_order():
    fci = Fci.application(T_UNION_EP_AID, label=b"MOT_T_EP", priority=2, version=b"\x02",
                          preferred_name=b"\xbd\xbb\xcd\xa8", file15=FILE15, extra=[Tlv.primitive(0xDF01, b"\x07")])
    assert fci.to_bytes() == parse_hex(
        "6F 49"
        " 8408 A000000632010105"
        " A5 3D"
        "  5008 4D4F545F545F4550"
        "  870102"
        "  9F0801 02"
        "  9F1204 BDBBCDA8"
        "  9F0C1E" + FILE15.hex() +
        "  DF0101 07"
    )
    back = Fci.parse(fci.to_bytes())
    assert (back.label, back.priority, back.version, back.preferred_name, back.file15) == (
        b"MOT_T_EP", 2, b"\x02", b"\xbd\xbb\xcd\xa8", FILE15)
    assert back.proprietary.child(0xDF01).value == b"\x07"


def test_ppse_exact_bytes_both_ways():
    entries = (DirectoryEntry(T_UNION_EP_AID, b"MOT_T_EP", 2), DirectoryEntry(T_UNION_CASH_AID, b"MOT_T_CASH", 1))
    assert Fci.ppse(entries).to_bytes() == PPSE
    fci = Fci.parse(PPSE)
    assert fci.df_name == PPSE_NAME
    assert fci.directory == entries
    assert fci.file15 is None and fci.label is None


def test_ppse_answers_the_select_that_names_it():
    select = SelectByName(PPSE_NAME, le=256)
    assert select.to_bytes() == parse_hex("00A404000E 325041592E5359532E4444463031 00")
    assert Fci.parse(PPSE).df_name == select.aid


def test_directory_entry_with_only_an_aid_and_unknown_tags():
    raw = parse_hex("6F1A 840E325041592E5359532E4444463031 A508 BF0C05 6103 4F01AA")
    assert Fci.parse(raw).directory == (DirectoryEntry(b"\xAA"),)
    with_extra = parse_hex("6F21 840E325041592E5359532E4444463031 A50F BF0C0C 610A 9F2A0102 4F01AA 5F5000")
    fci = Fci.parse(with_extra)
    assert fci.directory == (DirectoryEntry(b"\xAA"),)
    assert fci.to_bytes() == with_extra


def test_unknown_tags_and_card_order_survive_exactly():
    raw = parse_hex("6F 40 8408A000000632010105 88 01 01 A5 31 DF8101 02 ABCD 9F0C1E" + FILE15.hex()
                    + "9F08 01 02 BF0C 03 C1 01 00")
    fci = Fci.parse(raw)
    assert fci.to_bytes() == raw
    assert fci.file15 == FILE15 and fci.version == b"\x02"
    assert fci.template.child(0x88).value == b"\x01"


def test_nine_f_zero_c_of_another_size_is_not_file15():
    fci = Fci.parse(parse_hex("6F 12 8408A000000632010105 A506 9F0C03 010203"))
    assert fci.discretionary_data == b"\x01\x02\x03"
    assert fci.file15 is None


def test_fci_without_a5():
    fci = Fci.parse(parse_hex("6F0A 8408A000000632010105"))
    assert fci.aid == T_UNION_EP_AID
    assert fci.proprietary is None and fci.file15 is None and fci.priority is None and fci.directory == ()


@pytest.mark.parametrize("raw,message", [
    ("", "found 0"),
    ("8408A000000632010105", "expected template 6F"),
    ("6F04 A5020000", "no DF name"),
    ("6F02 8400", "DF name"),
    ("6F13 8411 000102030405060708090A0B0C0D0E0F10", "DF name"),
    ("6F10 8408A000000632010105 A504 87020000", "priority"),
    ("6F0E 8408A000000632010105 A502 8700", "priority"),
    ("6F17 840E325041592E5359532E4444463031 A505 BF0C02 6100", "no AID"),
    ("6F18 840E325041592E5359532E4444463031 A506 BF0C03 6101 4F", "no length"),
    ("6F0A 8408A000000632010105 8400", "found 2"),
    ("6F0B 8408A000000632010105", "run past the end"),
])
def test_malformed_fci_is_a_protocol_error(raw: str, message: str):
    with pytest.raises(ProtocolError, match=message):
        Fci.parse(parse_hex(raw))


@pytest.mark.parametrize("make", [
    lambda: Fci.application(T_UNION_EP_AID, file15=FILE15[:-1]),
    lambda: Fci.application(T_UNION_EP_AID, priority=256),
    lambda: Fci.application(T_UNION_EP_AID, priority=-1),
    lambda: Fci.application(b""),
    lambda: Fci.application(bytes(17)),
    lambda: Fci.application(T_UNION_EP_AID, label="MOT_T_EP"),
    lambda: Fci.ppse([DirectoryEntry(b"")]),
    lambda: Fci.ppse([DirectoryEntry(T_UNION_EP_AID, priority=300)]),
])
def test_builder_refuses_what_cannot_be_encoded(make):
    with pytest.raises(ProtocolError):
        make()


# --- properties -----------------------------------------------------------------------------------------------------

names = st.binary(min_size=1, max_size=16)
optional_bytes = st.none() | st.binary(max_size=20)
priorities = st.none() | st.integers(0, 255)


@given(names, optional_bytes, priorities, optional_bytes, optional_bytes,
       st.none() | st.binary(min_size=30, max_size=30))
def test_application_fci_round_trips(aid, label, priority, version, preferred_name, file15):
    fci = Fci.application(aid, label=label, priority=priority, version=version, preferred_name=preferred_name,
                          file15=file15)
    raw = fci.to_bytes()
    back = Fci.parse(raw)
    assert back == fci and back.to_bytes() == raw
    assert (back.aid, back.label, back.priority, back.version, back.preferred_name, back.file15) == (
        aid, label, priority, version, preferred_name, file15)


@given(st.lists(st.builds(DirectoryEntry, names, optional_bytes, priorities), max_size=4))
def test_ppse_round_trips(entries):
    raw = Fci.ppse(entries).to_bytes()
    assert Fci.parse(raw).directory == tuple(entries)
    assert Fci.parse(raw).to_bytes() == raw


@given(st.data())
def test_truncated_and_extended_fci_is_a_protocol_error(data):
    raw = data.draw(st.sampled_from([SAMPLE, PPSE]), label="fci")
    cut = data.draw(st.integers(0, len(raw) - 1), label="cut")
    with pytest.raises(ProtocolError):
        Fci.parse(raw[:cut])
    extra = data.draw(st.binary(min_size=1, max_size=4).filter(lambda b: b[0] not in (0x00, 0xFF)), label="extra")
    with pytest.raises(ProtocolError):
        Fci.parse(raw + extra)


@settings(max_examples=300)
@given(st.one_of(st.binary(max_size=60), st.binary(max_size=58).map(lambda b: b"\x6F" + bytes([len(b)]) + b)))
def test_random_bytes_parse_or_raise_protocol_error(raw: bytes):
    try:
        fci = Fci.parse(raw)
    except ProtocolError:
        return
    assert Fci.parse(fci.to_bytes()) == fci
    assert tlv.parse_one(fci.to_bytes()) == fci.template
