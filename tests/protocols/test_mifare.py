"""MIFARE Classic: geometry, value blocks, sector trailers and access conditions, and the InDataExchange commands."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.errors import ProtocolError
from protocols.hexutil import parse_hex
from protocols.mifare import (
    AUTHENTICATE,
    SECTOR_TRAILER,
    TRANSPORT_ACCESS,
    VALUE_COMMAND,
    AccessConditions,
    Authenticate,
    CardSize,
    DataBlockRights,
    Keys,
    KeyType,
    Read,
    SectorTrailer,
    Transfer,
    TrailerRights,
    ValueBlock,
    ValueCommand,
    ValueOperation,
    Write,
    access_group,
    auth_uid,
    blocks_in_sector,
    first_block,
    is_trailer,
    is_value_block,
    parse_command,
    sector_of,
    trailer_block,
)
from protocols.pn532 import InDataExchange

H = parse_hex
A, B, AB, NEVER = Keys.A, Keys.B, Keys.A | Keys.B, Keys.NEVER


# --- geometry -----------------------------------------------------------------------------------------------------

def test_card_sizes():
    assert [(s.blocks, s.sectors) for s in CardSize] == [(20, 5), (64, 16), (256, 40)]
    assert CardSize.from_sak(0x08) is CardSize.K1
    assert CardSize.from_sak(0x18) is CardSize.K4
    assert CardSize.from_sak(0x09) is CardSize.MINI
    with pytest.raises(ProtocolError):
        CardSize.from_sak(0x20)


def test_1k_sector_arithmetic():
    assert [sector_of(b) for b in (0, 3, 4, 63)] == [0, 0, 1, 15]
    assert [trailer_block(s) for s in (0, 1, 15)] == [3, 7, 63]
    assert first_block(6) == 24 and blocks_in_sector(6) == 4
    assert [is_trailer(b) for b in (3, 4, 7, 24, 27)] == [True, False, True, False, True]
    assert [access_group(b) for b in (24, 25, 26, 27)] == [0, 1, 2, 3]
    with pytest.raises(ProtocolError):
        sector_of(64)
    with pytest.raises(ProtocolError):
        trailer_block(16)


def test_4k_big_sectors():
    k4 = CardSize.K4
    assert sector_of(127, k4) == 31 and sector_of(128, k4) == 32 and sector_of(255, k4) == 39
    assert first_block(32, k4) == 128 and trailer_block(32, k4) == 143 and trailer_block(39, k4) == 255
    assert blocks_in_sector(31, k4) == 4 and blocks_in_sector(32, k4) == 16
    assert is_trailer(143, k4) and not is_trailer(142, k4) and is_trailer(127, k4)
    assert [access_group(b, k4) for b in (128, 132, 133, 137, 138, 142, 143)] == [0, 0, 1, 1, 2, 2, 3]
    with pytest.raises(ProtocolError):
        first_block(40, k4)
    with pytest.raises(ProtocolError):
        sector_of(20, CardSize.MINI)


@given(st.sampled_from(list(CardSize)).flatmap(lambda size: st.tuples(st.just(size), st.integers(0, size.blocks - 1))))
def test_every_block_lies_in_its_sector(case):
    size, block = case
    sector = sector_of(block, size)
    assert first_block(sector, size) <= block <= trailer_block(sector, size)
    assert trailer_block(sector, size) - first_block(sector, size) + 1 == blocks_in_sector(sector, size)
    assert (access_group(block, size) == 3) is is_trailer(block, size)


# --- value blocks -------------------------------------------------------------------------------------------------

def test_value_block_spec_example():
    raw = H("01000000 FEFFFFFF 01000000 01 FE 01 FE")
    assert ValueBlock.parse(raw) == ValueBlock(1, 1)
    assert ValueBlock(1, 1).to_bytes() == raw
    assert is_value_block(raw)


def test_value_block_negative_and_extremes():
    assert ValueBlock(-1, 0x05).to_bytes() == H("FFFFFFFF 00000000 FFFFFFFF 05 FA 05 FA")
    assert ValueBlock(2000, 0x10).to_bytes() == H("D0070000 2FF8FFFF D0070000 10 EF 10 EF")
    for value in (-0x8000_0000, 0x7FFF_FFFF):
        assert ValueBlock.parse(ValueBlock(value, 0).to_bytes()).value == value


@pytest.mark.parametrize("raw, what", [
    ("01000000 FEFFFFFF 02000000 01 FE 01 FE", "value copies"),
    ("01000000 FFFFFFFF 01000000 01 FE 01 FE", "value copies"),
    ("01000000 FEFFFFFF 01000000 01 FE 02 FE", "address copies"),
    ("01000000 FEFFFFFF 01000000 01 FF 01 FE", "address copies"),
    ("01000000 FEFFFFFF 01000000 01 FE 01 FD", "address copies"),
    ("01000000 FEFFFFFF 01000000 01 FE 01", "16 bytes"),
])
def test_value_block_redundancy_is_checked(raw, what):
    with pytest.raises(ProtocolError, match=what):
        ValueBlock.parse(H(raw))
    assert not is_value_block(H(raw))


@pytest.mark.parametrize("value, address", [(0x8000_0000, 0), (-0x8000_0001, 0), (0, 256), (0, -1)])
def test_value_block_out_of_range(value, address):
    with pytest.raises(ProtocolError):
        ValueBlock(value, address)


@given(st.integers(-0x8000_0000, 0x7FFF_FFFF), st.integers(0, 0xFF))
def test_value_block_round_trip(value, address):
    raw = ValueBlock(value, address).to_bytes()
    assert ValueBlock.parse(raw) == ValueBlock(value, address)


@given(st.binary(min_size=0, max_size=20))
def test_random_blocks_are_value_blocks_only_when_consistent(raw):
    try:
        block = ValueBlock.parse(raw)
    except ProtocolError:
        return
    assert block.to_bytes() == raw


# --- access bits and sector trailers ------------------------------------------------------------------------------

def test_transport_configuration_access_bits():
    assert TRANSPORT_ACCESS.to_bytes() == H("FF0780")
    assert AccessConditions.parse(H("FF0780")) == TRANSPORT_ACCESS
    trailer = SECTOR_TRAILER.parse(H("FFFFFFFFFFFF FF0780 69 FFFFFFFFFFFF"))
    assert trailer == SectorTrailer(b"\xff" * 6, TRANSPORT_ACCESS, 0x69, b"\xff" * 6)
    assert SECTOR_TRAILER.build(trailer) == H("FFFFFFFFFFFF FF0780 69 FFFFFFFFFFFF")


def test_common_access_configurations():
    # 7F 07 88: data open to both keys, keys and access bits managed with key B
    assert AccessConditions.parse(H("7F0788")).conditions == (0, 0, 0, 3)
    # 08 77 8F: value blocks (debit with A or B, top-up with B), trailer managed with key B
    assert AccessConditions((0b110, 0b110, 0b110, 0b011)).to_bytes() == H("08778F")
    assert AccessConditions.parse(H("08778F")).data_rights(0) == DataBlockRights(AB, B, B, AB)


def test_every_access_combination_round_trips():
    for conditions in itertools.product(range(8), repeat=4):
        raw = AccessConditions(conditions).to_bytes()
        assert AccessConditions.parse(raw).conditions == conditions


def test_every_flipped_access_bit_is_caught():
    raw = int.from_bytes(TRANSPORT_ACCESS.to_bytes(), "big")
    for bit in range(24):
        with pytest.raises(ProtocolError, match="inverted copies"):
            AccessConditions.parse((raw ^ 1 << bit).to_bytes(3, "big"))


@pytest.mark.parametrize("conditions", [(0, 0, 0), (0, 0, 0, 8), (0, 0, -1, 1)])
def test_bad_conditions_are_refused(conditions):
    with pytest.raises(ProtocolError):
        AccessConditions(conditions)


def test_data_block_rights_table():
    trailer_b_secret = 0b011  # key B not readable, so it can authenticate
    expected = {
        0b000: DataBlockRights(AB, AB, AB, AB),
        0b010: DataBlockRights(AB, NEVER, NEVER, NEVER),
        0b100: DataBlockRights(AB, B, NEVER, NEVER),
        0b110: DataBlockRights(AB, B, B, AB),
        0b001: DataBlockRights(AB, NEVER, NEVER, AB),
        0b011: DataBlockRights(B, B, NEVER, NEVER),
        0b101: DataBlockRights(B, NEVER, NEVER, NEVER),
        0b111: DataBlockRights(NEVER, NEVER, NEVER, NEVER),
    }
    for condition, rights in expected.items():
        assert AccessConditions((condition, 0, 0, trailer_b_secret)).data_rights(0) == rights


def test_trailer_rights_table():
    expected = {
        0b000: TrailerRights(A, A, NEVER, A, A),
        0b010: TrailerRights(NEVER, A, NEVER, A, NEVER),
        0b100: TrailerRights(B, AB, NEVER, NEVER, B),
        0b110: TrailerRights(NEVER, AB, NEVER, NEVER, NEVER),
        0b001: TrailerRights(A, A, A, A, A),
        0b011: TrailerRights(B, AB, B, NEVER, B),
        0b101: TrailerRights(NEVER, AB, B, NEVER, NEVER),
        0b111: TrailerRights(NEVER, AB, NEVER, NEVER, NEVER),
    }
    for condition, rights in expected.items():
        access = AccessConditions((0, 0, 0, condition))
        assert access.trailer_rights() == rights
        assert access.trailer_rights().key_a_read == NEVER
        assert access.key_b_readable is (condition in (0b000, 0b010, 0b001))


def test_readable_key_b_cannot_authenticate():
    # transport trailer (001) lets key B be read: data rights shrink to key A
    assert TRANSPORT_ACCESS.data_rights(0) == DataBlockRights(A, A, A, A)
    assert AccessConditions((0b011, 0, 0, 0b001)).data_rights(0) == DataBlockRights(NEVER, NEVER, NEVER, NEVER)
    with pytest.raises(ProtocolError):
        TRANSPORT_ACCESS.data_rights(3)


def test_trailer_repr_hides_the_keys():
    trailer = SectorTrailer(bytes.fromhex("A0A1A2A3A4A5"), TRANSPORT_ACCESS, 0x69, bytes.fromhex("B0B1B2B3B4B5"))
    assert "A0A1" not in repr(trailer).upper() and "xa0" not in repr(trailer)
    command = Authenticate(KeyType.A, 4, bytes.fromhex("A0A1A2A3A4A5"), bytes.fromhex("01020304"))
    assert "xa0" not in repr(command) and "A0A1" not in repr(command).upper()


def test_trailer_with_bad_access_bits_is_a_protocol_error_in_every_engine():
    raw = H("FFFFFFFFFFFF FF0781 69 FFFFFFFFFFFF")
    for engine in ("fast", "compiled", "interpreted"):
        with pytest.raises(ProtocolError, match="inverted copies"):
            SECTOR_TRAILER.parse_with(engine, raw)


# --- commands -----------------------------------------------------------------------------------------------------

def test_command_bytes():
    uid = H("DEADBEEF")
    assert Authenticate(KeyType.A, 4, b"\xff" * 6, uid).to_bytes() == H("6004FFFFFFFFFFFFDEADBEEF")
    assert Authenticate(KeyType.B, 7, H("D3F7D3F7D3F7"), uid).to_bytes() == H("6107D3F7D3F7D3F7DEADBEEF")
    assert Read(4).to_bytes() == H("3004")
    assert Write(5, bytes(range(16))).to_bytes() == H("A005") + bytes(range(16))
    assert ValueCommand(ValueOperation.DECREMENT, 5, 150).to_bytes() == H("C00596000000")
    assert ValueCommand(ValueOperation.INCREMENT, 5, 0x01020304).to_bytes() == H("C10504030201")
    assert ValueCommand(ValueOperation.RESTORE, 5, 0).to_bytes() == H("C20500000000")
    assert Transfer(6).to_bytes() == H("B006")


def test_commands_ride_in_data_exchange():
    frame = InDataExchange(1, Read(4).to_bytes()).to_bytes()
    assert frame == H("40013004")
    assert parse_command(InDataExchange.parse(frame).data) == Read(4)


def test_debit_sequence_on_a_value_block():
    """What a validator sends to take 1.50 off a purse kept in block 5 with its backup in block 6."""
    sent = [Authenticate(KeyType.B, 4, b"\xff" * 6, H("DEADBEEF")), ValueCommand(ValueOperation.DECREMENT, 5, 150),
            Transfer(5), ValueCommand(ValueOperation.RESTORE, 5, 0), Transfer(6)]
    assert [c.to_bytes().hex().upper() for c in sent] == [
        "6104FFFFFFFFFFFFDEADBEEF", "C00596000000", "B005", "C20500000000", "B006"]
    assert [parse_command(c.to_bytes()) for c in sent] == sent


@pytest.mark.parametrize("raw", ["", "31", "6004FFFF", "3004 00", "A005", "C005010000", "C305000000", "B0"])
def test_malformed_commands_raise_protocol_error(raw):
    with pytest.raises(ProtocolError):
        parse_command(H(raw))


@pytest.mark.parametrize("make", [
    lambda: AUTHENTICATE.build(Authenticate(0x62, 4, bytes(6), bytes(4))),
    lambda: AUTHENTICATE.build(Authenticate(KeyType.A, 4, bytes(5), bytes(4))),
    lambda: VALUE_COMMAND.build(ValueCommand(ValueOperation.INCREMENT, 4, -1)),
    lambda: VALUE_COMMAND.build(ValueCommand(ValueOperation.INCREMENT, 4, 1 << 32)),
    lambda: Read(256).to_bytes(),
])
def test_unencodable_commands_raise_protocol_error(make):
    with pytest.raises(ProtocolError):
        make()


commands = st.one_of(
    st.builds(Authenticate, st.sampled_from(list(KeyType)), st.integers(0, 255), st.binary(min_size=6, max_size=6),
              st.binary(min_size=4, max_size=4)),
    st.builds(Read, st.integers(0, 255)),
    st.builds(Write, st.integers(0, 255), st.binary(min_size=16, max_size=16)),
    st.builds(ValueCommand, st.sampled_from(list(ValueOperation)), st.integers(0, 255), st.integers(0, 0xFFFF_FFFF)),
    st.builds(Transfer, st.integers(0, 255)),
)


@given(commands)
def test_command_round_trip(command):
    raw = command.to_bytes()
    assert parse_command(raw) == command
    assert parse_command(raw).to_bytes() == raw


@given(st.binary(max_size=24))
def test_random_commands_parse_back_exactly_or_raise(raw):
    try:
        command = parse_command(raw)
    except ProtocolError:
        return
    assert command.to_bytes() == raw


def test_auth_uid_takes_the_last_four_bytes():
    assert auth_uid(H("DEADBEEF")) == H("DEADBEEF")
    assert auth_uid(H("04112233445566")) == H("33445566")
    with pytest.raises(ProtocolError):
        auth_uid(H("0411223344556677 8899".replace(" ", "")))
