"""PSAM commands: the spec's §3.5/§3.6 APDUs byte for byte, the §5.2 purchase flow end to end, refusals and round
trips."""

from __future__ import annotations

import datetime as dt
import typing

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols import card_commands
from protocols.apdu import ResponseAPDU
from protocols.card_commands import (
    ApplicationBlock, DebitForPurchase, GetChallenge, GetResponse, InitializeForCappPurchase, ReadBinary, ReadRecord,
    SelectByFid, SelectByName, UpdateCappDataCache, parse_card_command,
)
from protocols.errors import ProtocolError
from protocols.fci import T_UNION_EP_AID
from protocols.hexutil import parse_hex
from protocols.psam_commands import (
    MOHURD_PSAM_DF, SAM_PURCHASE_DATA_1, SAM_PURCHASE_DATA_2, CreditSamForPurchase, DesEncrypt, DesInit, DesMac,
    InitSamForPurchase, KeyUsage, M1KeyType, M1PurchaseMac, M1SectorKeys, PsamCommand, SamPurchaseResponse,
    parse_psam_command, read_key_index, read_terminal_number, select_application,
)

# §3.5 self-generated end-to-end example.
SERIAL8 = parse_hex("4991585000011383")
ISSUER = parse_hex("02403640FFFFFFFF")
TERMINAL = parse_hex("200041599997")
WHEN = dt.datetime(2018, 3, 13, 16, 43, 29)
RANDOM = parse_hex("11223344")
TWO_LEVEL = InitSamForPurchase(RANDOM, 0x36, 200, 0x09, WHEN, 1, 0, SERIAL8, ISSUER)
TWO_LEVEL_HEX = "8070000024 11223344 0036 000000C8 09 20180313164329 01 00 4991585000011383 02403640FFFFFFFF"
M1_CARD = parse_hex("3640000100000042")  # the demo M1 card: city 3640, industry 0001, issuer serial 00000042
M1_MAC_DATA = "3640000100000042 40C2AB5C 0001 00002710 000000C8 06 200041599997 00000057 20250314083000"


def test_power_up_reads_reuse_the_card_classes():
    assert type(read_terminal_number()) is card_commands.ReadBinary
    assert type(select_application()) is card_commands.SelectByFid
    assert read_terminal_number().to_bytes() == parse_hex("00B0960006")
    assert select_application().to_bytes() == parse_hex("00A4000002 8011")
    assert select_application(MOHURD_PSAM_DF).to_bytes() == parse_hex("00A4000002 1003")
    assert read_key_index().to_bytes() == parse_hex("00B0970001")
    for command in (read_terminal_number(), select_application(), read_key_index()):
        assert parse_psam_command(command.to_bytes()) == command


VECTORS = [
    # §3.5 two-level 8070 (key version 01, algorithm 00 for the spec's <kv> <alg>)
    (TWO_LEVEL, TWO_LEVEL_HEX),
    (InitSamForPurchase(RANDOM, 0x36, 200, 0x09, WHEN, 1, 0, SERIAL8, ISSUER, le=8), TWO_LEVEL_HEX + "08"),
    # one-level, Lc 1C: BLOG-P's purchase for the same card serial
    (InitSamForPurchase(RANDOM, 0, 0x1000, 0x06, dt.datetime(2012, 2, 29, 13, 51), 1, 0, SERIAL8),
     "807000001C 11223344 0000 00001000 06 20120229135100 01 00 4991585000011383"),
    # §3.5 MAC2 check
    (CreditSamForPurchase(parse_hex("CAEC0601")), "8072000004 CAEC0601"),
    # §3.6 lock MAC: diversify the maintenance key (usage 45, version 02) with serial then issuer, then MAC
    (DesInit(KeyUsage.MAINTENANCE, 0x02, (SERIAL8, ISSUER)), "801A450210 4991585000011383 02403640FFFFFFFF"),
    (DesMac(parse_hex("AABBCCDD00000000"), parse_hex("841E000004800000")),
     "80FA050010 AABBCCDD00000000 841E000004800000"),
    # TAC-P: recompute the §3.5 TAC in the PSAM (usage 44), terminal-padded data after a zero IV
    (DesInit(KeyUsage.TAC, 0x00, (SERIAL8, ISSUER)), "801A440010 4991585000011383 02403640FFFFFFFF"),
    (DesMac(bytes(8), parse_hex("000000C8 09 200041599997 00000057 20180313164329 8000")),
     "80FA050020 0000000000000000 000000C8 09 200041599997 00000057 20180313164329 8000"),
    # BJ psam.c one-factor DES INIT; a plain encryption; T=0 GET RESPONSE
    (DesInit(0x28, 0x00, (SERIAL8,)), "801A280008 4991585000011383"),
    (DesInit(0x45, 0x02, (SERIAL8, ISSUER, parse_hex("0000000000000001"))),
     "801A450218 4991585000011383 02403640FFFFFFFF 0000000000000001"),
    (DesEncrypt(parse_hex("0011223344556677 8899AABBCCDDEEFF")), "80FA000010 0011223344556677 8899AABBCCDDEEFF"),
    (DesEncrypt(bytes(8), le=8), "80FA000008 0000000000000000 08"),
    (DesMac(bytes(8), bytes(8), le=4), "80FA050010 0000000000000000 0000000000000000 04"),
    (GetResponse(8), "00C0000008"),
    (SelectByName(parse_hex("A000000632010105")), "00A4040008 A000000632010105"),
    # M1: the Tianjin validator's city-card TAC key (usage 24, version 01, a zero factor); this project's auth-code
    # key (usage 25, the card number as factor), and a MAC over 40 bytes padded to 48 after a zero IV
    (DesInit(0x24, 0x01, (bytes(8),)), "801A240108 0000000000000000"),
    (DesInit(KeyUsage.M1_AUTH, 0x01, (M1_CARD,)), "801A250108 3640000100000042"),
    (DesMac(bytes(8), parse_hex(M1_MAC_DATA + "8000000000000000")),
     "80FA050038 0000000000000000" + M1_MAC_DATA + "8000000000000000"),
    # M1 PURCHASE MAC of the layout document's debit (key version 01), with and without Le
    (M1PurchaseMac(0x01, M1_CARD, parse_hex("40C2AB5C"), 1, 10000, 200, 0x06, dt.datetime(2025, 3, 14, 8, 30)),
     "807C00011E 3640000100000042 40C2AB5C 0001 00002710 000000C8 06 20250314083000"),
    (M1PurchaseMac(0x02, M1_CARD, parse_hex("40C2AB5C"), 2, 9800, 150, 0x06, dt.datetime(2025, 3, 14, 9, 0), le=8),
     "807C00021E 3640000100000042 40C2AB5C 0002 00002648 00000096 06 20250314090000 08"),
    # M1 SECTOR KEYS: key A of sectors 0, 1, 2, 3 and 6 of the card with UID 40C2AB5C, key version 01
    (M1SectorKeys(M1KeyType.A, 0x01, parse_hex("40C2AB5C"), (0, 1, 2, 3, 6)), "80FC010109 40C2AB5C 0001020306"),
    (M1SectorKeys(M1KeyType.B, 0x01, parse_hex("40C2AB5C"), (2,), le=6), "80FC020105 40C2AB5C 02 06"),
]


@pytest.mark.parametrize("command,text", VECTORS, ids=[t.replace(" ", "")[:14] for _, t in VECTORS])
def test_spec_apdus_both_ways(command, text: str):
    raw = parse_hex(text)
    assert command.to_bytes() == raw
    assert parse_psam_command(raw) == command
    assert type(command).from_bytes(raw) == command
    assert command.to_apdu().to_bytes() == raw


def test_vectors_cover_every_psam_command():
    assert {type(c) for c, _ in VECTORS} | {ReadBinary, SelectByFid} == set(typing.get_args(PsamCommand))


def test_8070_data_layouts_match_the_spec_table():
    data = parse_hex(TWO_LEVEL_HEX)[5:]
    assert SAM_PURCHASE_DATA_2.size == 0x24 and SAM_PURCHASE_DATA_1.size == 0x1C
    parsed = SAM_PURCHASE_DATA_2.parse(data)
    assert (parsed.random, parsed.offline_atc, parsed.amount, parsed.transaction_type, parsed.when) == (
        RANDOM, 0x36, 200, 9, WHEN)
    assert data[20:28] == SERIAL8 and data[28:36] == ISSUER  # lowest level first


def test_lock_mac_sequence_of_spec_3_6():
    """Card challenge, PSAM diversification and MAC over the padded 841E header, then the card command (§3.5 MAC)."""
    steps = [
        (parse_card_command, GetChallenge(), "0084000004"),
        (parse_psam_command, DesInit(0x45, 0x02, (SERIAL8, ISSUER)), "801A450210 4991585000011383 02403640FFFFFFFF"),
        (parse_psam_command, DesMac(parse_hex("AABBCCDD") + bytes(4), parse_hex("841E000004") + parse_hex("800000")),
         "80FA050010 AABBCCDD00000000 841E000004800000"),
        (parse_card_command, ApplicationBlock(parse_hex("9445D2D6")), "841E000004 9445D2D6"),
    ]
    for parse, command, text in steps:
        assert command.to_bytes() == parse_hex(text)
        assert parse(parse_hex(text)) == command


def test_composite_purchase_flow_of_spec_5_2():
    """Every APDU of §5.2 with the §3.5 numbers, each answer feeding the next command as a validator does."""
    psam, card = parse_psam_command, parse_card_command
    sent: list[tuple[typing.Callable, object]] = []

    def send(parse, command) -> bytes:
        raw = command.to_bytes()
        assert parse(raw) == command
        sent.append((parse, command))
        return raw

    # 0: PSAM power-up
    assert send(psam, read_terminal_number()) == parse_hex("00B0960006")
    assert send(psam, select_application()) == parse_hex("00A40000028011")
    assert send(psam, read_key_index()) == parse_hex("00B0970001")
    key_index = 0x01
    # 1-5: card selection and reads
    assert send(card, SelectByName(T_UNION_EP_AID)) == parse_hex("00A4040008A000000632010105")
    assert send(card, ReadBinary(0x15, 0, 0x1E)) == parse_hex("00B095001E")
    assert send(card, ReadBinary(0x17, 0, 0x3C)) == parse_hex("00B097003C")
    assert send(card, ReadRecord(0x18, 1, le=0x17)) == parse_hex("00B201C417")
    assert send(card, ReadRecord(0x1A, 2, le=0x80)) == parse_hex("00B202D480")
    # 6: INITIALIZE FOR CAPP PURCHASE
    init = InitializeForCappPurchase(key_index, 200, TERMINAL)
    assert send(card, init) == parse_hex("805003020B 01 000000C8 200041599997 0F")
    answer = ResponseAPDU.parse(parse_hex("00002710 0036 000000 01 00 11223344 9000"))
    card_state = init.RESPONSE.parse(answer.data)
    # 7: INIT SAM FOR PURCHASE on T=0: no Le, 61 08, GET RESPONSE
    sam = InitSamForPurchase(card_state.random, card_state.offline_atc, init.amount, 0x09, WHEN,
                             card_state.key_version, card_state.algorithm_id, SERIAL8, ISSUER)
    assert sam == TWO_LEVEL
    assert send(psam, sam) == parse_hex(TWO_LEVEL_HEX)
    assert ResponseAPDU.parse(parse_hex("6108")).sw2 == 8
    assert send(psam, GetResponse(8)) == parse_hex("00C0000008")
    mac1_answer = sam.RESPONSE.parse(parse_hex("00000057 2B1D974F"))
    assert mac1_answer == SamPurchaseResponse(0x57, parse_hex("2B1D974F"))
    # 8-9: CAPP records
    process = parse_hex("27027D0101 00") + bytes(122)
    transit = parse_hex("03 0000200041599997 02 0000 0000 0000 00 000000C8 00002648 20180313164329 4036 "
                        "02403640FFFFFFFF 000000000000")
    assert send(card, UpdateCappDataCache(0x1A, 2, process))[:5] == parse_hex("80DC02D080")
    assert send(card, UpdateCappDataCache(0x1E, 0, transit))[:5] == parse_hex("80DC00F030")
    # 10: DEBIT with the PSAM's TSN and MAC1, byte-exact
    debit = DebitForPurchase(mac1_answer.tsn, sam.when, mac1_answer.mac1)
    assert send(card, debit) == parse_hex("805401000F 00000057 20180313164329 2B1D974F 08")
    proof = debit.RESPONSE.parse(parse_hex("F252E12F CAEC0601"))
    # 11: MAC2 to the PSAM
    assert send(psam, CreditSamForPurchase(proof.mac2)) == parse_hex("8072000004 CAEC0601")
    assert proof.tac == parse_hex("F252E12F")
    # tear recovery (§5.3) would ask for ATC + 1
    prove = card_commands.GetTransactionProve(0x09, card_state.offline_atc + 1)
    assert send(card, prove) == parse_hex("805A000902 0037 08")
    assert len(sent) == 16


REFUSED = [
    ("807000002C" + "00" * 44, 0x6700),  # three-level diversification: not supported
    ("807000001D" + "00" * 29, 0x6700),
    (TWO_LEVEL_HEX.replace("8070000024", "8070010024"), 0x6A86),
    (TWO_LEVEL_HEX.replace("20180313164329", "20181313164329"), 0x6A80),
    (TWO_LEVEL_HEX.replace("20180313164329", "00000000000000"), 0x6A80),
    (TWO_LEVEL_HEX + "04", 0x6C08),
    ("0070000024" + TWO_LEVEL_HEX[10:].replace(" ", ""), 0x6E00),
    ("8072000008 CAEC0601CAEC0601", 0x6700),
    ("8072000004 CAEC0601 04", 0x6700),
    ("8072010004 CAEC0601", 0x6A86),
    ("801A4502", 0x6700),  # DES INIT without factors
    ("801A45020C 4991585000011383 02403640", 0x6700),
    ("801A450220" + "00" * 32, 0x6700),  # four factors
    ("801A450210 4991585000011383 02403640FFFFFFFF 00", 0x6700),
    ("80FA010010" + "00" * 16, 0x6A86),  # P1 bit map beyond 00/05: UNCONFIRMED, refused
    ("80FA050110" + "00" * 16, 0x6A86),
    ("80FA050008 AABBCCDD00000000", 0x6700),  # IV only
    ("80FA05000C" + "00" * 12, 0x6700),
    ("80FA00000C" + "00" * 12, 0x6700),
    ("80FA0000", 0x6700),
    ("00FA000008" + "00" * 8, 0x6E00),
    ("80FF000000", 0x6D00),
    ("805003020B01000000C82000415999970F", 0x6D00),  # a card command sent to the PSAM
    ("10B0960006", 0x6E00),
    ("80FC030104 40C2AB5C", 0x6A86),  # M1 SECTOR KEYS: key type 03
    ("80FC010104 40C2AB5C", 0x6700),  # no sector
    ("80FC010105 40C2AB5C 28", 0x6A80),  # sector 40: past a 4K
    ("80FC010103 40C2AB", 0x6700),
    ("80FC01012D 40C2AB5C" + "00" * 41, 0x6700),  # 41 sectors
]


@pytest.mark.parametrize("text,sw", REFUSED, ids=[f"{t.replace(' ', '')[:12]}-{sw:04X}" for t, sw in REFUSED])
def test_psam_refuses_with_its_status_word(text: str, sw: int):
    with pytest.raises(ProtocolError) as caught:
        parse_psam_command(parse_hex(text))
    assert caught.value.sw == sw


UNBUILDABLE = [
    lambda: InitSamForPurchase(RANDOM[:3], 0x36, 200, 9, WHEN, 1, 0, SERIAL8, ISSUER),
    lambda: InitSamForPurchase(RANDOM, 0x10000, 200, 9, WHEN, 1, 0, SERIAL8, ISSUER),
    lambda: InitSamForPurchase(RANDOM, 0x36, -200, 9, WHEN, 1, 0, SERIAL8, ISSUER),
    lambda: InitSamForPurchase(RANDOM, 0x36, 200, 256, WHEN, 1, 0, SERIAL8, ISSUER),
    lambda: InitSamForPurchase(RANDOM, 0x36, 200, 9, None, 1, 0, SERIAL8, ISSUER),
    lambda: InitSamForPurchase(RANDOM, 0x36, 200, 9, WHEN, 1, 0, SERIAL8[:7], ISSUER),
    lambda: InitSamForPurchase(RANDOM, 0x36, 200, 9, WHEN, 1, 0, SERIAL8, ISSUER[:4]),
    lambda: InitSamForPurchase(RANDOM, 0x36, 200, 9, WHEN, 1, 0, SERIAL8, ISSUER, le=4),
    lambda: CreditSamForPurchase(bytes(8)),
    lambda: DesInit(0x45, 2, ()),
    lambda: DesInit(0x45, 2, (SERIAL8,) * 4),
    lambda: DesInit(0x45, 2, [SERIAL8]),
    lambda: DesInit(0x45, 2, (SERIAL8[:7],)),
    lambda: DesInit(0x145, 2, (SERIAL8,)),
    lambda: DesInit(0x45, -1, (SERIAL8,)),
    lambda: DesEncrypt(b""),
    lambda: DesEncrypt(bytes(12)),
    lambda: DesEncrypt(bytes(256)),
    lambda: DesMac(bytes(4), bytes(8)),
    lambda: DesMac(bytes(8), b""),
    lambda: DesMac(bytes(8), bytes(9)),
    lambda: DesMac(bytes(8), bytes(248)),  # IV + data would not fit a short APDU
    lambda: DesMac(bytes(8), bytes(8), le=0),
]


@pytest.mark.parametrize("make", UNBUILDABLE)
def test_unencodable_values_are_a_protocol_error(make):
    with pytest.raises(ProtocolError):
        make().to_bytes()


def test_longest_des_commands_fit_a_short_apdu():
    assert DesEncrypt(bytes(248)).to_bytes()[4] == 248
    assert DesMac(bytes(8), bytes(240)).to_bytes()[4] == 248


# --- properties -----------------------------------------------------------------------------------------------------

u8 = st.integers(0, 0xFF)
moments = st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31)).map(
    lambda d: d.replace(microsecond=0))
b8 = st.binary(min_size=8, max_size=8)
blocks = st.integers(1, 30).flatmap(lambda n: st.binary(min_size=8 * n, max_size=8 * n))

psam_commands = st.one_of(
    st.builds(InitSamForPurchase, st.binary(min_size=4, max_size=4), st.integers(0, 0xFFFF),
              st.integers(0, 0xFFFFFFFF), u8, moments, u8, u8, b8, st.none() | b8, st.sampled_from([None, 8, 256])),
    st.builds(CreditSamForPurchase, st.binary(min_size=4, max_size=4)),
    st.builds(DesInit, u8, u8, st.lists(b8, min_size=1, max_size=3).map(tuple)),
    st.builds(DesEncrypt, blocks, st.none() | st.integers(1, 256)),
    st.builds(DesMac, b8, blocks, st.none() | st.integers(1, 256)),
    st.builds(GetResponse, st.integers(1, 256)),
)


@given(psam_commands)
def test_round_trip(command):
    raw = command.to_bytes()
    assert parse_psam_command(raw) == command
    assert command.to_apdu().to_bytes() == raw


@given(psam_commands, st.data())
def test_truncated_extended_or_mutated_bytes_are_refused_or_reencode_exactly(command, data):
    raw = command.to_bytes()
    cut = data.draw(st.integers(0, len(raw) - 1), label="cut")
    position = data.draw(st.integers(0, len(raw) - 1), label="position")
    mutated = bytearray(raw)
    mutated[position] ^= data.draw(st.integers(1, 255), label="flip")
    for candidate in (raw[:cut], bytes(mutated)):
        try:
            parsed = parse_psam_command(candidate)
        except ProtocolError as exc:
            assert exc.sw is not None
            continue
        assert parsed.to_bytes() == candidate
    with pytest.raises(ProtocolError):
        parse_psam_command(raw + data.draw(st.binary(min_size=2, max_size=4), label="extra"))


@settings(max_examples=300)
@given(st.one_of(
    st.binary(max_size=48),
    st.tuples(st.sampled_from([0x00, 0x80]), st.sampled_from([0x70, 0x72, 0x1A, 0xFA, 0xA4, 0xB0, 0xC0]),
              st.binary(max_size=48)).map(lambda t: bytes(t[:2]) + t[2]),
))
def test_random_bytes_are_refused_or_reencode_exactly(raw: bytes):
    try:
        command = parse_psam_command(raw)
    except ProtocolError as exc:
        assert exc.sw is not None
        return
    assert command.to_bytes() == raw
