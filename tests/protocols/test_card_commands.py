"""Card commands: the spec's APDUs byte for byte, a card's status words for what it refuses, and round trips."""

from __future__ import annotations

import datetime as dt
import typing

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.apdu import CommandAPDU
from protocols.card_commands import (
    BALANCE_RESPONSE, DEBIT_RESPONSE, CardCommand, LOAD_INIT_RESPONSE, PROVE_RESPONSE, PURCHASE_INIT_RESPONSE,
    ApplicationBlock, ApplicationUnblock, BalanceResponse, CommandSet, CreditForLoad, DebitForPurchase, DebitResponse,
    GetBalance, GetChallenge, GetResponse, GetTransactionProve, InitializeForCappPurchase, InitializeForLoad,
    InitializeForPurchase, LoadInitResponse, ProveResponse, Purse, PurchaseInitResponse, ReadBinary, ReadRecord,
    RecordMode, SelectByFid, SelectByName, UpdateCappDataCache, parse_card_command,
)
from protocols.errors import ProtocolError
from protocols.fci import PPSE_NAME, T_UNION_EP_AID
from protocols.hexutil import parse_hex

TERMINAL = parse_hex("200041599997")  # §3.5 / §5.2
BLOG_TERMINAL = parse_hex("001122334455")
# UWB's real 0x1E transit record (spec §4.6).
TRANSIT_RECORD = parse_hex("03 0000000279001102 04 0000 0000 0000 15 00000000 0000224A 20250114142937 5840 "
                           "12215840FFFFFFFF 000000000000")
# A bus 0x1A record (BJ layout, §4.5): header 27 02 7D 01 01, unlocked, the rest zeros for the test.
PROCESS_RECORD = parse_hex("27027D0101 00") + bytes(122)
DEBIT_WHEN = dt.datetime(2018, 3, 13, 16, 43, 29)

VECTORS = [
    # §1.1 selection
    (SelectByName(PPSE_NAME, le=256), "00A404000E 325041592E5359532E4444463031 00"),
    (SelectByName(T_UNION_EP_AID), "00A4040008 A000000632010105"),
    (SelectByName(T_UNION_EP_AID, le=256), "00A4040008 A000000632010105 00"),
    (SelectByName(T_UNION_EP_AID, p2=0x0C), "00A4040C08 A000000632010105"),
    (SelectByFid(0x3F00), "00A4000002 3F00"),
    (SelectByFid(0x1001, p2=0x0C), "00A4000C02 1001"),
    (SelectByFid(0x3F01, le=256), "00A4000002 3F01 00"),
    # §1.2 file reads
    (ReadBinary(0x15, 0, 0x1E), "00B095001E"),
    (ReadBinary(0x15), "00B0950000"),
    (ReadBinary(0x16, 0, 0x37), "00B0960037"),
    (ReadBinary(0x17, 0, 0x3C), "00B097003C"),
    (ReadBinary(0x17, 0, 0x0B), "00B097000B"),
    (ReadBinary(0x17, 0x10, 4), "00B0971004"),
    (ReadRecord(0x18, 1, le=0x17), "00B201C417"),
    (ReadRecord(0x1A, 2, le=0x80), "00B202D480"),
    (ReadRecord(0x1A, 2), "00B202D400"),
    (ReadRecord(0x1E, 1, le=0x30), "00B201F430"),
    (ReadRecord(0x1A, 1, RecordMode.IDENTIFIER), "00B201D000"),
    # §1.3 purse commands
    (GetBalance(), "805C000204"),
    (GetBalance(Purse.ED), "805C000104"),
    (InitializeForPurchase(1, 0x1000, BLOG_TERMINAL), "805001020B 01 00001000 001122334455 0F"),
    (InitializeForPurchase(1, 0x1000, BLOG_TERMINAL, le=None), "805001020B 01 00001000 001122334455"),
    (InitializeForCappPurchase(1, 200, TERMINAL), "805003020B 01 000000C8 200041599997 0F"),
    (InitializeForLoad(1, 0x1000, BLOG_TERMINAL, Purse.ED), "805000010B 01 00001000 001122334455 10"),
    (UpdateCappDataCache(0x1A, 2, PROCESS_RECORD), "80DC02D080" + PROCESS_RECORD.hex()),
    (UpdateCappDataCache(0x1E, 0, TRANSIT_RECORD), "80DC00F030" + TRANSIT_RECORD.hex()),
    (UpdateCappDataCache(0x1A, 1, PROCESS_RECORD, RecordMode.NUMBER), "80DC01D480" + PROCESS_RECORD.hex()),
    (DebitForPurchase(0x57, DEBIT_WHEN, parse_hex("2B1D974F")), "805401000F 00000057 20180313164329 2B1D974F 08"),
    (DebitForPurchase(1, dt.datetime(2012, 2, 29, 13, 51), parse_hex("F15CAB75"), le=None),
     "805401000F 00000001 20120229135100 F15CAB75"),
    (GetTransactionProve(0x09, 0x37), "805A000902 0037 08"),
    (GetTransactionProve(0x06, 1, le=None), "805A000602 0001"),
    (CreditForLoad(dt.datetime(2011, 12, 21, 21, 48, 22), parse_hex("3A845BF0"), le=None),
     "805200000B201112212148223A845BF0"),  # BLOG-L, exactly as published
    (CreditForLoad(dt.datetime(2011, 12, 21, 21, 48, 22), parse_hex("3A845BF0")), "805200000B201112212148223A845BF004"),
    (GetChallenge(), "0084000004"),
    (GetChallenge(8), "0084000008"),
    (ApplicationBlock(parse_hex("9445D2D6")), "841E000004 9445D2D6"),  # §3.5 lock MAC
    (ApplicationUnblock(parse_hex("01020304")), "8418000004 01020304"),
    (GetResponse(8), "00C0000008"),
    (GetResponse(256), "00C0000000"),
]


@pytest.mark.parametrize("command,text", VECTORS, ids=[t.replace(" ", "")[:14] for _, t in VECTORS])
def test_spec_apdus_both_ways(command, text: str):
    raw = parse_hex(text)
    assert command.to_bytes() == raw
    assert parse_card_command(raw) == command
    assert type(command).from_bytes(raw) == command
    assert command.to_apdu() == CommandAPDU.parse(raw)
    assert type(command).from_apdu(command.to_apdu()) == command


def test_vectors_cover_every_card_command():
    assert {type(c) for c, _ in VECTORS} == set(typing.get_args(CardCommand))


# --- responses ------------------------------------------------------------------------------------------------------

def test_blog_p_initialize_for_purchase_response():
    response = PURCHASE_INIT_RESPONSE.parse(parse_hex("000000000000000000010011223344"))
    assert response == PurchaseInitResponse(balance=0, offline_atc=0, overdraft_limit=0, key_version=1,
                                            algorithm_id=0, random=parse_hex("11223344"))
    assert InitializeForPurchase.RESPONSE is InitializeForCappPurchase.RESPONSE is PURCHASE_INIT_RESPONSE


def test_blog_l_initialize_for_load_response():
    response = InitializeForLoad.RESPONSE.parse(parse_hex("00000000 0000 02 00 11223344 2988AE5A"))
    assert response == LoadInitResponse(0, 0, 2, 0, parse_hex("11223344"), parse_hex("2988AE5A"))
    assert InitializeForLoad.RESPONSE is LOAD_INIT_RESPONSE


def test_overdraft_limit_is_three_bytes_big_endian():
    response = PURCHASE_INIT_RESPONSE.parse(parse_hex("80000010 1234 0186A0 02 00 CAFEBABE"))
    assert (response.balance, response.offline_atc, response.overdraft_limit) == (0x80000010, 0x1234, 100000)


def test_debit_and_prove_answer_in_opposite_orders():
    raw = parse_hex("F252E12F CAEC0601")
    assert DebitForPurchase.RESPONSE.parse(raw) == DebitResponse(tac=parse_hex("F252E12F"), mac2=parse_hex("CAEC0601"))
    assert GetTransactionProve.RESPONSE.parse(raw) == ProveResponse(mac2=parse_hex("F252E12F"),
                                                                    tac=parse_hex("CAEC0601"))
    assert DEBIT_RESPONSE.build(DebitResponse(tac=b"TTTT", mac2=b"MMMM")) == b"TTTTMMMM"
    assert PROVE_RESPONSE.build(ProveResponse(mac2=b"MMMM", tac=b"TTTT")) == b"MMMMTTTT"


def test_balance_and_credit_responses():
    assert GetBalance.RESPONSE.parse(parse_hex("00002710")) == BalanceResponse(10000)
    assert GetBalance.RESPONSE is BALANCE_RESPONSE
    assert CreditForLoad.RESPONSE.parse(parse_hex("6314E5F5")).tac == parse_hex("6314E5F5")


def test_default_le_asks_for_the_whole_answer():
    assert InitializeForPurchase(1, 1, TERMINAL).le == 15
    assert InitializeForLoad(1, 1, TERMINAL).le == 16
    assert DebitForPurchase(1, DEBIT_WHEN, bytes(4)).le == 8
    assert GetTransactionProve(6, 1).le == 8
    assert CreditForLoad(DEBIT_WHEN, bytes(4)).le == 4


# --- what a card refuses --------------------------------------------------------------------------------------------

REFUSED = [
    # class and instruction
    ("10A4040008A000000632010105", 0x6E00),  # no such class
    ("80A4040008A000000632010105", 0x6E00),  # SELECT is not a proprietary command
    ("005001020B0100001000001122334455", 0x6E00),
    ("001E0000049445D2D6", 0x6E00),  # APPLICATION BLOCK is secured: CLA 84 only
    ("80FF000000", 0x6D00),
    ("00CA9F3600", 0x6D00),  # GET DATA is not in the set
    ("80700000", 0x6D00),  # a PSAM command sent to a card
    # SELECT
    ("00A4020002 3F00", 0x6A86),
    ("00A4040408 A000000632010105", 0x6A86),
    ("00A4000003 3F0000", 0x6700),
    ("00A4000001 3F", 0x6700),
    ("00A4040011 000102030405060708090A0B0C0D0E0F10", 0x6700),
    ("00A40400", 0x6700),  # no name
    # READ BINARY
    ("00B015001E", 0x6A86),  # offset addressing of a current EF: not supported
    ("00B080001E", 0x6A86),  # SFI 0
    ("00B09F001E", 0x6A86),  # SFI 31
    ("00B0C5001E", 0x6A86),  # 110xxxxx
    ("00B09500", 0x6700),  # no Le
    ("00B0950001 AA", 0x6700),  # data
    ("00B0950000001E", 0x6700),  # extended Le
    # READ RECORD
    ("00B201C717", 0x6A86),  # mode 111
    ("00B201C517", 0x6A86),  # mode 101 (all records from P1): not supported
    ("00B2010417", 0x6A86),  # SFI 0
    ("00B201FC17", 0x6A86),  # SFI 31
    ("00B201C4", 0x6700),
    ("00B201C401AA17", 0x6700),
    # GET BALANCE
    ("805C000304", 0x6A86),
    ("805C030204", 0x6A86),  # P1 03: SH's "balance without overdraft", UNCONFIRMED, refused
    ("805C000208", 0x6C04),
    ("805C0002", 0x6700),
    ("805C000201AA04", 0x6700),
    # INITIALIZE
    ("805002020B0100001000001122334455", 0x6A86),  # cash withdrawal
    ("805005020B0100001000001122334455", 0x6A86),
    ("805001030B0100001000001122334455", 0x6A86),
    ("805001000B0100001000001122334455", 0x6A86),
    ("805001020A01000010000011223344", 0x6700),
    ("805001020C010000100000112233445566", 0x6700),
    ("8050010200", 0x6700),  # no data, Le only
    ("805001020B0100001000001122334455 10", 0x6C0F),
    ("805000020B0100001000001122334455 0F", 0x6C10),
    # UPDATE CAPP DATA CACHE
    ("80DC02D780" + PROCESS_RECORD.hex(), 0x6A86),
    ("80DC020080" + PROCESS_RECORD.hex(), 0x6A86),  # SFI 0
    ("80DC02D080" + PROCESS_RECORD.hex() + "00", 0x6700),
    ("80DC02D000", 0x6700),  # no record
    # DEBIT
    ("805401010F 00000057 20180313164329 2B1D974F 08", 0x6A86),
    ("805403000F 00000057 20180313164329 2B1D974F 08", 0x6A86),  # unload
    ("805401000E 00000057 201803131643 2B1D974F", 0x6700),
    ("805401000F 00000057 2018031316432A 2B1D974F 08", 0x6A80),  # not BCD
    ("805401000F 00000057 20180231164329 2B1D974F 08", 0x6A80),  # 31 February
    ("805401000F 00000057 00000000000000 2B1D974F 08", 0x6A80),  # no date at all
    ("805401000F 00000057 20180313164329 2B1D974F 04", 0x6C08),
    # GET TRANSACTION PROVE
    ("805A010902003708", 0x6A86),
    ("805A00090300003708", 0x6700),
    ("805A0009", 0x6700),
    ("805A0009020037 04", 0x6C08),
    # CREDIT FOR LOAD
    ("805201000B201112212148223A845BF0", 0x6A86),
    ("805200000B201113212148223A845BF0", 0x6A80),  # month 13
    ("805200000A2011122121482 23A845B", 0x6700),
    ("805200000B201112212148223A845BF0 08", 0x6C04),
    # GET CHALLENGE
    ("0084000010", 0x6700),
    ("0084000000", 0x6700),
    ("00840000", 0x6700),
    ("0084010004", 0x6A86),
    ("0084000001AA04", 0x6700),
    # BLOCK / UNBLOCK
    ("841E000003 9445D2", 0x6700),
    ("841E000005 9445D2D600", 0x6700),
    ("841E000104 9445D2D6", 0x6A86),
    ("841E000004 9445D2D6 00", 0x6700),
    ("8418000004 9445D2D6 04", 0x6700),
    # GET RESPONSE
    ("00C00000", 0x6700),
    ("00C0010008", 0x6A86),
    ("00C0000001AA08", 0x6700),
    # malformed APDUs
    ("00B0", 0x6700),
    ("00A4040008A0000006320101", 0x6700),
]


@pytest.mark.parametrize("text,sw", REFUSED, ids=[f"{t.replace(' ', '')[:12]}-{sw:04X}" for t, sw in REFUSED])
def test_card_refuses_with_its_status_word(text: str, sw: int):
    with pytest.raises(ProtocolError) as caught:
        parse_card_command(parse_hex(text))
    assert caught.value.sw == sw


def test_class_from_apdu_checks_its_own_header():
    purchase = CommandAPDU.parse(parse_hex("805001020B0100001000001122334455"))
    assert InitializeForPurchase.from_apdu(purchase).amount == 0x1000
    with pytest.raises(ProtocolError) as caught:
        InitializeForLoad.from_apdu(purchase)
    assert caught.value.sw == 0x6A86
    with pytest.raises(ProtocolError) as caught:
        ReadBinary.from_apdu(CommandAPDU.parse(parse_hex("00B201C417")))
    assert caught.value.sw == 0x6D00
    with pytest.raises(ProtocolError) as caught:
        DebitForPurchase.from_apdu(CommandAPDU.parse(parse_hex("005401000F00000057201803131643292B1D974F")))
    assert caught.value.sw == 0x6E00
    with pytest.raises(ProtocolError) as caught:
        SelectByFid.from_apdu(CommandAPDU.parse(parse_hex("00A4040008A000000632010105")))
    assert caught.value.sw == 0x6A86


# --- what cannot be built -------------------------------------------------------------------------------------------

UNBUILDABLE = [
    lambda: SelectByName(b""),
    lambda: SelectByName(bytes(17)),
    lambda: SelectByName("A000000632010105"),
    lambda: SelectByName(T_UNION_EP_AID, p2=0x04),
    lambda: SelectByName(T_UNION_EP_AID, le=0),
    lambda: SelectByName(T_UNION_EP_AID, le=257),
    lambda: SelectByFid(0x10000),
    lambda: SelectByFid(-1),
    lambda: SelectByFid(0x3F00, p2=0x02),
    lambda: ReadBinary(0),
    lambda: ReadBinary(31),
    lambda: ReadBinary(0x15, 256),
    lambda: ReadBinary(0x15, -1),
    lambda: ReadBinary(0x15, 0, 0),
    lambda: ReadBinary(0x15, 0, 257),
    lambda: ReadBinary(0x15, 0, None),
    lambda: ReadRecord(0x18, 256),
    lambda: ReadRecord(0x18, 1, 5),
    lambda: ReadRecord(32, 1),
    lambda: ReadRecord(0x18, 1, le=None),
    lambda: GetBalance(3),
    lambda: GetBalance(le=8),
    lambda: GetBalance(le=None),
    lambda: InitializeForPurchase(1, 100, TERMINAL, purse=3),
    lambda: InitializeForPurchase(1, 100, TERMINAL[:5]),
    lambda: InitializeForPurchase(1, -1, TERMINAL),
    lambda: InitializeForPurchase(1, 1 << 32, TERMINAL),
    lambda: InitializeForPurchase(256, 100, TERMINAL),
    lambda: InitializeForPurchase(1, 100, TERMINAL, le=16),
    lambda: InitializeForLoad(1, 100, TERMINAL, le=15),
    lambda: UpdateCappDataCache(0x1A, 2, b""),
    lambda: UpdateCappDataCache(0x1A, 2, bytes(256)),
    lambda: UpdateCappDataCache(0x1A, 256, PROCESS_RECORD),
    lambda: UpdateCappDataCache(0x1A, 2, PROCESS_RECORD, 3),
    lambda: UpdateCappDataCache(0, 2, PROCESS_RECORD),
    lambda: DebitForPurchase(1 << 32, DEBIT_WHEN, bytes(4)),
    lambda: DebitForPurchase(1, None, bytes(4)),
    lambda: DebitForPurchase(1, "2018-03-13", bytes(4)),
    lambda: DebitForPurchase(1, DEBIT_WHEN, bytes(3)),
    lambda: DebitForPurchase(1, DEBIT_WHEN, bytes(4), le=4),
    lambda: GetTransactionProve(256, 1),
    lambda: GetTransactionProve(9, 0x10000),
    lambda: GetTransactionProve(9, 1, le=4),
    lambda: CreditForLoad(None, bytes(4)),
    lambda: CreditForLoad(DEBIT_WHEN, bytes(5)),
    lambda: GetChallenge(6),
    lambda: GetChallenge(None),
    lambda: ApplicationBlock(bytes(3)),
    lambda: ApplicationBlock("9445D2D6"),
    lambda: ApplicationUnblock(bytes(8)),
    lambda: GetResponse(0),
    lambda: GetResponse(None),
]


@pytest.mark.parametrize("make", UNBUILDABLE)
def test_unencodable_values_are_a_protocol_error(make):
    with pytest.raises(ProtocolError):
        make().to_bytes()


def test_wrong_fixed_le_names_the_right_one():
    with pytest.raises(ProtocolError) as caught:
        InitializeForPurchase(1, 100, TERMINAL, le=16).to_bytes()
    assert caught.value.sw == 0x6C0F


def test_errors_do_not_quote_mac_bytes():
    with pytest.raises(ProtocolError) as caught:
        ApplicationBlock(parse_hex("9445D2")).to_bytes()
    assert "9445" not in str(caught.value).upper() and "3 bytes" in str(caught.value)


# --- the dispatcher on its own --------------------------------------------------------------------------------------

def test_command_set_routes_by_p1_only_where_several_classes_share_an_instruction():
    only_select = CommandSet(SelectByFid)
    with pytest.raises(ProtocolError) as caught:  # the lone class decides, and refuses P1 04
        only_select.parse(parse_hex("00A4040008A000000632010105"))
    assert caught.value.sw == 0x6A86
    both = CommandSet(SelectByFid, SelectByName)
    assert both.parse(parse_hex("00A4040008A000000632010105")) == SelectByName(T_UNION_EP_AID)
    assert both.parse_apdu(CommandAPDU(0, 0xA4, 0, 0, b"\x3f\x00")) == SelectByFid(0x3F00)
    with pytest.raises(ProtocolError) as caught:
        both.parse(parse_hex("00A4080002 3F00"))
    assert caught.value.sw == 0x6A86


# --- properties -----------------------------------------------------------------------------------------------------

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
sfis = st.integers(1, 30)
le_any = st.integers(1, 256)
moments = st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31)).map(
    lambda d: d.replace(microsecond=0))
b4 = st.binary(min_size=4, max_size=4)
purses = st.sampled_from(Purse)
modes = st.sampled_from(RecordMode)


def _fixed(size: int):
    return st.sampled_from([None, size, 256])


commands = st.one_of(
    st.builds(SelectByName, st.binary(min_size=1, max_size=16), st.sampled_from([0x00, 0x0C]), st.none() | le_any),
    st.builds(SelectByFid, u16, st.sampled_from([0x00, 0x0C]), st.none() | le_any),
    st.builds(ReadBinary, sfis, u8, le_any),
    st.builds(ReadRecord, sfis, u8, modes, le_any),
    st.builds(GetBalance, purses, st.sampled_from([4, 256])),
    st.builds(InitializeForPurchase, u8, u32, st.binary(min_size=6, max_size=6), purses, _fixed(15)),
    st.builds(InitializeForCappPurchase, u8, u32, st.binary(min_size=6, max_size=6), purses, _fixed(15)),
    st.builds(InitializeForLoad, u8, u32, st.binary(min_size=6, max_size=6), purses, _fixed(16)),
    st.builds(UpdateCappDataCache, sfis, u8, st.binary(min_size=1, max_size=255), modes),
    st.builds(DebitForPurchase, u32, moments, b4, _fixed(8)),
    st.builds(GetTransactionProve, u8, u16, _fixed(8)),
    st.builds(CreditForLoad, moments, b4, _fixed(4)),
    st.builds(GetChallenge, st.sampled_from([4, 8])),
    st.builds(ApplicationBlock, b4),
    st.builds(ApplicationUnblock, b4),
    st.builds(GetResponse, le_any),
)


@given(commands)
def test_round_trip(command):
    raw = command.to_bytes()
    assert parse_card_command(raw) == command
    assert command.to_apdu().to_bytes() == raw


@given(commands, st.data())
def test_truncated_extended_or_mutated_bytes_are_refused_or_reencode_exactly(command, data):
    raw = command.to_bytes()
    cut = data.draw(st.integers(0, len(raw) - 1), label="cut")
    position = data.draw(st.integers(0, len(raw) - 1), label="position")
    mutated = bytearray(raw)
    mutated[position] ^= data.draw(st.integers(1, 255), label="flip")
    for candidate in (raw[:cut], bytes(mutated)):
        try:
            parsed = parse_card_command(candidate)
        except ProtocolError as exc:
            assert exc.sw is not None
            continue
        assert parsed.to_bytes() == candidate  # e.g. a case-4 command cut before Le is a valid case-3 command
    with pytest.raises(ProtocolError) as caught:
        parse_card_command(raw + data.draw(st.binary(min_size=2, max_size=4), label="extra"))
    assert caught.value.sw is not None


@settings(max_examples=500)
@given(st.one_of(
    st.binary(max_size=40),
    st.tuples(st.sampled_from([0x00, 0x80, 0x84]), st.sampled_from([0xA4, 0xB0, 0xB2, 0x5C, 0x50, 0xDC, 0x54, 0x5A,
                                                                     0x52, 0x84, 0x1E, 0x18, 0xC0]),
              st.binary(max_size=40)).map(lambda t: bytes(t[:2]) + t[2]),
))
def test_random_bytes_are_refused_or_reencode_exactly(raw: bytes):
    try:
        command = parse_card_command(raw)
    except ProtocolError as exc:
        assert exc.sw is not None
        return
    assert command.to_bytes() == raw
