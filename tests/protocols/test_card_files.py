"""The card file layouts: spec examples field by field, the logic beyond the layouts, and value-first round trips.

The generic layout test (test_layouts.py) already runs every example through all three engines and feeds each
layout random, truncated and over-long bytes; here the examples are checked field by field and the non-layout
code (properties, the 0x1A dispatcher, the bus tap builders, the metro CRC, the cardholder view) is exercised.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import crcmod.predefined
import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols import card_files as cf
from protocols.errors import ProtocolError
from protocols.hexutil import parse_hex

ENGINES = ("fast", "compiled", "interpreted")

# The FCI of a real Shanghai T-Union SELECT A000000632010105 (spec §1.1); tag 9F0C holds file 0x15.
FCI = parse_hex("6F31 8408A000000632010105 A525 9F080102 9F0C1E "
                "02002900FFFFFFFF 02 01 03104770040067442802 20200115 20401231 0114")
UWB_1E = parse_hex("03 0000000279001102 04 0000 0000 0000 15 00000000 0000224A 20250114142937 5840 "
                   "12215840FFFFFFFF 000000000000")
ZIBO_BOARDED, ZIBO_ALIGHTED = (parse_hex(text) for text, _ in cf.BUS_PROCESS_RECORD.examples)
UWB_1A = parse_hex(cf.RAW_PROCESS_RECORD.examples[0][0])


# ---------------------------------------------------------------------------------------------------------------------
# catalog and codes


def test_catalog_matches_the_layouts():
    assert (cf.SFI_PUBLIC_APP_INFO, cf.SFI_CARDHOLDER, cf.SFI_MANAGEMENT) == (0x15, 0x16, 0x17)
    assert (cf.SFI_TRANSACTION_LOG, cf.SFI_PROCESS, cf.SFI_TRANSIT_LOG) == (0x18, 0x1A, 0x1E)
    assert cf.PUBLIC_APP_INFO.size == cf.PUBLIC_APP_INFO_SIZE == 30
    assert cf.CARDHOLDER_INFO.size == cf.CARDHOLDER_SIZE == 55
    assert cf.MANAGEMENT_INFO.size == cf.MANAGEMENT_SIZE == 60
    assert cf.TRANSACTION_LOG_RECORD.size == cf.TRANSACTION_LOG_RECORD_SIZE == 23
    assert (cf.TRANSACTION_LOG_RECORDS, cf.TRANSIT_RECORDS) == (10, 30)
    assert cf.TRANSIT_RECORD.size == cf.TRANSIT_RECORD_SIZE == 48
    for layout in (cf.BUS_PROCESS_RECORD, cf.METRO_PROCESS_RECORD, cf.RAW_PROCESS_RECORD):
        assert layout.size == cf.PROCESS_RECORD_SIZE == 128


def test_code_values():
    assert [int(t) for t in cf.TransactionType] == [0x01, 0x02, 0x05, 0x06, 0x09]
    assert cf.TransactionType.COMPOSITE_PURCHASE == 0x09 and cf.TransactionType.EP_PURCHASE == 0x06
    assert [int(t) for t in cf.CardType] == [1, 2, 3, 4, 5]
    assert cf.CardType.MILITARY == 5
    assert (cf.TransitRecordType.SINGLE_RIDE, cf.TransitRecordType.SINGLE_FARE, cf.TransitRecordType.LOCK) == \
        (2, 6, 0x12)
    assert not hasattr(cf.TransitRecordType, "LOAD")  # real bus records with a fare carry 02: it is no load
    assert [int(i) for i in cf.Industry] == [0, 1, 2] and cf.Industry.METRO == 1 and cf.Industry.BUS == 2
    assert cf.TransitRecordType.BOARD is cf.TransitRecordType.ENTRY == 3
    assert cf.TransitRecordType.ALIGHT is cf.TransitRecordType.EXIT == 4
    assert cf.TradeState.BOARDED is cf.TradeState.ENTERED == 1
    assert cf.TradeState.ALIGHTED is cf.TradeState.EXITED == 2
    assert (cf.Direction.UP, cf.Direction.DOWN) == (0xAB, 0xBA)


def test_known_answers_none_for_an_unknown_code():
    assert cf.known(cf.CardType, 3) is cf.CardType.ELDERLY
    assert cf.known(cf.CardType, 0) is None
    assert cf.known(cf.TransactionType, 0xFF) is None


# ---------------------------------------------------------------------------------------------------------------------
# 0x15 public application info


def test_public_app_info_from_a_real_fci():
    raw = FCI[-30:]
    info = cf.PUBLIC_APP_INFO.parse(raw)
    assert info.issuer_id == bytes.fromhex("02002900FFFFFFFF")
    assert info.city_code == b"\x29\x00"
    assert (info.app_type, info.app_version) == (0x02, 0x01)
    assert info.serial == bytes.fromhex("03104770040067442802")
    assert info.serial_digits == "03104770040067442802"
    assert info.card_number == "3104770040067442802"
    assert info.diversification_factor == bytes.fromhex("4770040067442802") == raw[12:20]
    assert (info.start_date, info.expiry_date) == (dt.date(2020, 1, 15), dt.date(2040, 12, 31))
    assert info.issuer_defined == b"\x01\x14"
    assert cf.PUBLIC_APP_INFO.build(info) == raw


def test_public_app_info_from_the_personalisation_blob():
    text, _ = cf.PUBLIC_APP_INFO.examples[1]
    info = cf.PUBLIC_APP_INFO.parse(parse_hex(text))
    assert info.city_code == b"\x24\x82"
    assert info.app_version == 0x00
    assert info.card_number == "3104895199900000002"
    assert info.diversification_factor == bytes.fromhex("4895199900000002")


def test_diversification_factor_of_the_end_to_end_example():
    # spec §3.5: serial10 = 03104991585000011383, factor 4991585000011383
    info = cf.PublicAppInfo(bytes.fromhex("02403640FFFFFFFF"), 2, 1, bytes.fromhex("03104991585000011383"),
                            None, None, b"\0\0")
    assert info.diversification_factor.hex().upper() == "4991585000011383"
    assert info.card_number == "3104991585000011383"
    raw = cf.PUBLIC_APP_INFO.build(info)
    assert raw[20:28] == bytes(8)  # never-set dates
    assert cf.PUBLIC_APP_INFO.parse(raw) == info


def test_a_non_bcd_serial_parses_but_has_no_digits():
    raw = bytearray(FCI[-30:])
    raw[19] = 0x2A
    info = cf.PUBLIC_APP_INFO.parse(bytes(raw))
    assert info.diversification_factor == bytes.fromhex("477004006744282A")
    with pytest.raises(ProtocolError, match="application serial"):
        _ = info.card_number


def test_public_app_info_rejects_an_impossible_date():
    raw = bytearray(FCI[-30:])
    raw[24:28] = bytes.fromhex("20401331")
    for engine in ENGINES:
        with pytest.raises(ProtocolError):
            cf.PUBLIC_APP_INFO.parse_with(engine, bytes(raw))


# ---------------------------------------------------------------------------------------------------------------------
# 0x16 cardholder


def _cardholder(holder_type: int, staff: int, name: bytes, id_number: bytes, id_type: int) -> cf.CardholderInfo:
    raw = bytes((holder_type, staff)) + name.ljust(20, b" ") + id_number.ljust(32, b" ") + bytes((id_type,))
    assert len(raw) == 55
    return cf.CARDHOLDER_INFO.parse(raw)


def test_anonymous_cardholder_from_the_personalisation_blob():
    text, info = cf.CARDHOLDER_INFO.examples[0]
    assert cf.CARDHOLDER_INFO.parse(parse_hex(text)) == info
    assert info.holder == cf.CardholderView(holder_type=0, staff_flag=0, name="", id_number="", id_type=0)


def test_cardholder_view_decodes_gbk_and_strips_padding():
    info = _cardholder(0x01, 0x00, "张三".encode("gbk"), b"110101199003071234", 0x00)
    assert info.holder == cf.CardholderView(1, 0, "张三", "110101199003071234", 0)
    # zero padding, FF padding and a full-width space are stripped as well
    info = _cardholder(0x02, 0x01, "李四".encode("gbk") + b"\xa1\xa1" + b"\0" * 14, b"G12345678" + b"\xff" * 23, 0x02)
    assert info.holder == cf.CardholderView(2, 1, "李四", "G12345678", 2)


def test_cardholder_view_replaces_what_is_not_gbk():
    info = _cardholder(0x01, 0x00, b"\x80" + b"AB", b"\x80\x80123", 0x05)
    view = info.holder
    assert view.name.endswith("AB") and "\ufffd" in view.name
    assert view.id_number.endswith("123") and view.id_type == 5


@given(st.binary(min_size=55, max_size=55))
def test_cardholder_view_never_raises(raw):
    info = cf.CARDHOLDER_INFO.parse(raw)
    view = info.holder
    assert (view.holder_type, view.staff_flag, view.id_type) == (raw[0], raw[1], raw[54])
    assert isinstance(view.name, str) and isinstance(view.id_number, str)
    assert cf.CARDHOLDER_INFO.build(info) == raw


# ---------------------------------------------------------------------------------------------------------------------
# 0x17 management info


def test_management_info_from_the_personalisation_blob():
    text, _ = cf.MANAGEMENT_INFO.examples[0]
    raw = parse_hex(text)
    assert raw[:11] == parse_hex("00000156 2400 2482 0001 01")
    info = cf.MANAGEMENT_INFO.parse(raw)
    assert info.country_code == bytes.fromhex("00000156")
    assert (info.province_code, info.city_code) == (b"\x24\x00", b"\x24\x82")
    assert info.interop_class == 1 and info.interoperable
    assert info.card_type == 1 and info.known_card_type is cf.CardType.NORMAL
    assert info.settlement_number == bytes(4) and info.rfu == bytes(45)


def test_management_info_keeps_an_unknown_card_type_and_a_local_card():
    raw = bytearray(parse_hex(cf.MANAGEMENT_INFO.examples[0][0]))
    raw[8:11] = b"\x00\x00\x07"
    info = cf.MANAGEMENT_INFO.parse(bytes(raw))
    assert info.card_type == 7 and info.known_card_type is None
    assert not info.interoperable
    assert cf.MANAGEMENT_INFO.build(info) == bytes(raw)


# ---------------------------------------------------------------------------------------------------------------------
# 0x18 transaction log


def test_empty_log_record():
    record = cf.TRANSACTION_LOG_RECORD.parse(bytes(23))
    assert record.date is None and record.when is None
    assert record.known_transaction_type is None
    assert cf.TRANSACTION_LOG_RECORD.build(record) == bytes(23)


def test_log_record_fields_and_bytes():
    # the purchase of spec §3.5 (amount 1000 hex fen, type 06, terminal 001122334455, 2012-02-29 13:51:00)
    raw = parse_hex("0001 000000 00001000 06 001122334455 20120229 135100")
    record = cf.TRANSACTION_LOG_RECORD.parse(raw)
    assert record == cf.TransactionLogRecord(1, 0, 0x1000, 6, bytes.fromhex("001122334455"),
                                             dt.date(2012, 2, 29), dt.time(13, 51))
    assert record.known_transaction_type is cf.TransactionType.EP_PURCHASE
    assert record.when == dt.datetime(2012, 2, 29, 13, 51)
    changed = dataclasses.replace(record, transaction_type=0x42, overdraft_limit=0x0186A0)
    assert changed.known_transaction_type is None
    assert cf.TRANSACTION_LOG_RECORD.build(changed) == parse_hex(
        "0001 0186A0 00001000 42 001122334455 20120229 135100")


# ---------------------------------------------------------------------------------------------------------------------
# 0x1E transit record


def test_transit_record_from_the_uwb_gate():
    record = cf.TRANSIT_RECORD.parse(UWB_1E)
    assert record.record_type == 3 and record.known_record_type is cf.TransitRecordType.ENTRY
    assert record.device_id == bytes.fromhex("0000000279001102")
    assert record.industry_code == 4 and record.known_industry_code is None  # the test tool's own code
    assert (record.line, record.station, record.operator_code) == (b"\0\0", b"\0\0", b"\0\0")
    assert record.reserved == 0x15
    assert (record.amount, record.balance) == (0, 0x224A)
    assert record.transaction_time == dt.datetime(2025, 1, 14, 14, 29, 37)
    assert record.acceptor_city == b"\x58\x40"
    assert record.acceptor_institution == bytes.fromhex("12215840FFFFFFFF")
    assert record.rfu == bytes(6)


def test_transit_record_with_an_unknown_type_and_no_time():
    raw = bytes((0x77,)) + UWB_1E[1:25] + bytes(7) + UWB_1E[32:]
    record = cf.TRANSIT_RECORD.parse(raw)
    assert record.known_record_type is None and record.transaction_time is None
    assert cf.TRANSIT_RECORD.build(record) == raw


# ---------------------------------------------------------------------------------------------------------------------
# 0x1A process records


def test_bus_record_of_a_boarded_rider():
    record = cf.BUS_PROCESS_RECORD.parse(ZIBO_BOARDED)
    assert (record.record_id, record.header_byte3, record.un_flag, record.lock_flag) == (2, 1, 1, 0)
    assert not record.locked
    assert record.known_trade_state is cf.TradeState.BOARDED
    assert record.boarding_city == b"\x45\x30" and record.boarding_line == b"\x00\xfb"
    assert record.boarding_station == 3 and record.boarding_vehicle == b"00409998"
    assert record.boarding_time == dt.datetime(2020, 12, 28, 21, 45, 11)
    assert (record.max_fare, record.trade_amount) == (48, 12)
    assert record.known_direction is cf.Direction.UP
    assert record.alighting_time is None  # never alighted: all-zero date-time


def test_bus_record_offsets_follow_the_table():
    record = cf.BUS_PROCESS_RECORD.parse(ZIBO_ALIGHTED)
    raw = ZIBO_ALIGHTED
    assert raw[14] == record.trade_state == 2
    assert raw[46:53] == bytes.fromhex("20201228171159") and raw[89:96] == bytes.fromhex("20201228171222")
    assert raw[53:57] == record.max_fare.to_bytes(4, "big") and raw[57] == record.direction
    assert raw[72] == record.alighting_station == 3 and raw[96:100] == b"\0\0\0\x0c"
    assert raw[102:] == record.rfu


STOP_1 = cf.BusStop(b"\x45\x30", bytes.fromhex("13664530FFFFFFFF"), b"\x45\x30", b"\x00\xfb", 1, b"00409999",
                    bytes.fromhex("0000413106163674"))
STOP_3 = dataclasses.replace(STOP_1, station=3)


def test_blank_bus_record():
    record = cf.blank_bus_record()
    assert cf.BUS_PROCESS_RECORD.build(record) == parse_hex("27027D0101") + bytes(123)
    assert record.known_trade_state is cf.TradeState.NONE
    assert record.boarding_time is None and record.alighting_time is None
    assert cf.build_process_record(cf.blank_bus_record(0x03))[:2] == b"\x27\x03"
    with pytest.raises(ProtocolError):
        cf.blank_bus_record(0x100)


def test_board_then_alight_reproduces_a_real_trip():
    start = dataclasses.replace(cf.blank_bus_record(), rfu=ZIBO_ALIGHTED[102:])
    boarded = cf.board_bus(start, STOP_1, dt.datetime(2020, 12, 28, 17, 11, 59), 0, direction=cf.Direction.UP,
                           serial=bytes.fromhex("0000000000000336"))
    assert boarded.trade_state == 1 and type(boarded.trade_state) is int
    assert boarded.alighting_time is None and start.trade_state == 0  # the input is not changed
    alighted = cf.alight_bus(boarded, STOP_3, dt.datetime(2020, 12, 28, 17, 12, 22), 12)
    assert cf.BUS_PROCESS_RECORD.build(alighted) == ZIBO_ALIGHTED


def test_boarding_keeps_the_previous_trip_and_marks_the_fare():
    trip = cf.BUS_PROCESS_RECORD.parse(ZIBO_ALIGHTED)
    when = dt.datetime(2021, 1, 2, 8, 0, 5)
    boarded = cf.board_bus(trip, STOP_3, when, 200)
    raw = cf.BUS_PROCESS_RECORD.build(boarded)
    assert raw[14] == 0x01
    assert raw[29] == 3 and raw[46:53] == bytes.fromhex("20210102080005")
    assert raw[53:57] == (200).to_bytes(4, "big")
    assert raw[57] == 0xAB and raw[6:14] == ZIBO_ALIGHTED[6:14]  # direction and serial kept
    assert raw[58:] == ZIBO_ALIGHTED[58:]  # last alighting, amount and distance untouched
    alighted = cf.alight_bus(boarded, STOP_1, when + dt.timedelta(minutes=20), 150, distance=7,
                             direction=cf.Direction.DOWN, serial=b"\x99" * 8)
    raw = cf.BUS_PROCESS_RECORD.build(alighted)
    assert raw[14] == 0x02 and raw[57] == 0xBA and raw[6:14] == b"\x99" * 8
    assert raw[72] == 1 and raw[89:96] == bytes.fromhex("20210102082005")
    assert raw[96:100] == (150).to_bytes(4, "big") and raw[100:102] == b"\x00\x07"
    assert raw[15:57] == cf.BUS_PROCESS_RECORD.build(boarded)[15:57]


def test_a_locked_bus_record():
    raw = ZIBO_BOARDED[:5] + b"\x01" + ZIBO_BOARDED[6:]
    assert cf.BUS_PROCESS_RECORD.parse(raw).locked


def test_dispatch_by_record_id():
    assert isinstance(cf.parse_process_record(ZIBO_BOARDED), cf.BusProcessRecord)
    raw_view = cf.parse_process_record(UWB_1A)
    assert isinstance(raw_view, cf.RawProcessRecord) and raw_view.record_id == 0x12
    assert raw_view.body[94:100] == bytes.fromhex("1901023B7227")
    with pytest.raises(ProtocolError, match="not packed BCD"):  # its bytes 99..105 are no metro "last time"
        cf.parse_process_record(UWB_1A, metro_ids={0x12})
    # the bus layout under another id, and id 02 read raw when a deployment says so
    assert isinstance(cf.parse_process_record(UWB_1A, bus_ids={0x02, 0x12}), cf.BusProcessRecord)
    assert isinstance(cf.parse_process_record(ZIBO_BOARDED, bus_ids=()), cf.RawProcessRecord)
    # bus ids win over metro ids
    assert isinstance(cf.parse_process_record(ZIBO_BOARDED, metro_ids={0x02}), cf.BusProcessRecord)
    for raw in (ZIBO_BOARDED, UWB_1A):
        assert cf.build_process_record(cf.parse_process_record(raw)) == raw


@pytest.mark.parametrize("raw", [
    b"", b"\x27", ZIBO_BOARDED[:127], ZIBO_BOARDED + b"\0",
    b"\x26" + ZIBO_BOARDED[1:],  # not a 27xx record
    ZIBO_BOARDED[:2] + b"\x7c" + ZIBO_BOARDED[3:],  # length byte of a record that is not 128 bytes
    ZIBO_BOARDED[:46] + bytes.fromhex("20201328214511") + ZIBO_BOARDED[53:],  # month 13
])
@pytest.mark.parametrize("metro_ids", [(), (0x02,)])
def test_dispatch_rejects_malformed_records(raw, metro_ids):
    with pytest.raises(ProtocolError):
        cf.parse_process_record(raw, bus_ids=() if metro_ids else cf.BUS_RECORD_IDS, metro_ids=metro_ids)


def test_build_process_record_rejects_other_objects():
    with pytest.raises(ProtocolError, match="not a 0x1A record view"):
        cf.build_process_record(cf.TRANSIT_RECORD.parse(UWB_1E))  # type: ignore[arg-type]


def _metro_entry() -> cf.MetroProcessRecord:
    """An entry as a Shanghai gate writes it, with distinct values so that every offset shows."""
    entry = dt.datetime(2024, 8, 21, 18, 58, 44)
    return cf.MetroProcessRecord(
        record_id=0x03, header_byte3=1, un_flag=1, lock_flag=0,
        transaction_serial=bytes.fromhex("0000000000012345"), trade_state=cf.TradeState.ENTERED.value,
        entry_city=b"\x29\x00", exit_city=b"\0\0",
        entry_institution=bytes(7) + b"\x11", exit_institution=bytes(8),
        entry_station=bytes(7) + b"\x22", exit_station=bytes(8),
        entry_device=bytes(6) + b"\x33\x44", exit_device=bytes(8),
        entry_time=entry, exit_time=None, max_fare=0x0708, entry_line=0x0B, exit_line=0,
        entry_amount=0, entry_balance=0x1234, actual_amount=0, last_time=entry, last_device=b"\x11\x22\x33\x44",
        cumulative_amount=0x0102, cumulative_count=3, transfer_info=bytes(5),
        entry_station_sign=0x41, exit_station_sign=0, entry_exit_status=0x55, rfu=0, crc=0)


def test_metro_record_offsets_and_crc():
    raw = cf.seal_metro_record(_metro_entry())
    assert raw[:6] == parse_hex("27037D010100")
    assert raw[6:14] == bytes.fromhex("0000000000012345") and raw[14] == 0x01
    assert raw[15:17] == b"\x29\x00" and raw[26] == 0x11 and raw[42] == 0x22 and raw[57:59] == b"\x33\x44"
    assert raw[67:74] == bytes.fromhex("20240821185844") and raw[74:81] == bytes(7)
    assert raw[81:85] == bytes.fromhex("00000708") and raw[85] == 0x0B
    assert raw[91:95] == bytes.fromhex("00001234") and raw[99:106] == bytes.fromhex("20240821185844")
    assert raw[106:110] == b"\x11\x22\x33\x44" and raw[110:113] == b"\x00\x01\x02" and raw[113:115] == b"\x00\x03"
    assert (raw[120], raw[121], raw[122], raw[123]) == (0x41, 0, 0x55, 0)
    crc32 = crcmod.predefined.mkCrcFun("crc-32")  # an independent CRC-32 implementation
    assert raw[124:] == crc32(raw[6:124]).to_bytes(4, "big")
    assert cf.metro_crc(raw) == crc32(raw[6:124])
    assert cf.metro_crc_ok(raw)
    record = cf.parse_process_record(raw, metro_ids={0x03})
    assert isinstance(record, cf.MetroProcessRecord) and record.crc == crc32(raw[6:124])
    assert record.known_trade_state is cf.TradeState.ENTERED
    assert cf.build_process_record(record) == raw


def test_metro_crc_known_values():
    raw = parse_hex("27037D010100") + b"123456789" + bytes(109) + bytes(4)
    assert cf.metro_crc(raw) == 0x16F10131
    assert not cf.metro_crc_ok(raw)
    assert cf.metro_crc_ok(raw[:124] + bytes.fromhex("16F10131"))
    assert cf.metro_crc(bytes(6) + b"\xff" * 118 + bytes(4)) == crcmod.predefined.mkCrcFun("crc-32")(b"\xff" * 118)


def test_metro_crc_covers_bytes_6_to_123_only():
    raw = cf.seal_metro_record(_metro_entry())
    assert cf.metro_crc_ok(raw[:5] + b"\x01" + raw[6:])  # the lock flag sits outside the CRC
    for offset in (6, 14, 81, 123):
        tampered = bytearray(raw)
        tampered[offset] ^= 0x01
        assert not cf.metro_crc_ok(bytes(tampered)), offset
    tampered = bytearray(raw)
    tampered[127] ^= 0x01
    assert not cf.metro_crc_ok(bytes(tampered))


def test_build_keeps_a_stale_crc_and_seal_replaces_it():
    record = _metro_entry()
    record.crc = 0xDEADBEEF
    assert cf.build_process_record(record)[124:] == bytes.fromhex("DEADBEEF")
    assert cf.metro_crc_ok(cf.seal_metro_record(record))


@pytest.mark.parametrize("size", [0, 124, 127, 129])
def test_metro_crc_needs_a_whole_record(size):
    with pytest.raises(ProtocolError):
        cf.metro_crc(bytes(size))
    with pytest.raises(ProtocolError):
        cf.metro_crc_ok(bytes(size))


# ---------------------------------------------------------------------------------------------------------------------
# value-first round trips: parse(build(v)) == v for every model, on every engine


def _b(n: int) -> st.SearchStrategy[bytes]:
    return st.binary(min_size=n, max_size=n)


def _u(nbytes: int) -> st.SearchStrategy[int]:
    return st.integers(0, (1 << (8 * nbytes)) - 1)


_DATES = st.none() | st.dates()
_TIMES = st.times().map(lambda t: t.replace(microsecond=0))
_DATETIMES = st.none() | st.datetimes().map(lambda t: t.replace(microsecond=0))
_HEADER = dict(record_id=_u(1), header_byte3=_u(1), un_flag=_u(1), lock_flag=_u(1))


def _tap(prefix: str) -> dict[str, st.SearchStrategy]:
    return {f"{prefix}_city": _b(2), f"{prefix}_institution": _b(8), f"{prefix}_operator": _b(2),
            f"{prefix}_line": _b(2), f"{prefix}_station": _u(1), f"{prefix}_vehicle": _b(8),
            f"{prefix}_device": _b(8), f"{prefix}_time": _DATETIMES}


MODELS = {
    "public_app_info": (cf.PUBLIC_APP_INFO, st.builds(
        cf.PublicAppInfo, issuer_id=_b(8), app_type=_u(1), app_version=_u(1), serial=_b(10), start_date=_DATES,
        expiry_date=_DATES, issuer_defined=_b(2))),
    "cardholder": (cf.CARDHOLDER_INFO, st.builds(cf.CardholderInfo, raw=_b(55))),
    "management": (cf.MANAGEMENT_INFO, st.builds(
        cf.ManagementInfo, country_code=_b(4), province_code=_b(2), city_code=_b(2), interop_class=_u(2),
        card_type=_u(1), settlement_number=_b(4), rfu=_b(45))),
    "transaction_log": (cf.TRANSACTION_LOG_RECORD, st.builds(
        cf.TransactionLogRecord, atc=_u(2), overdraft_limit=_u(3), amount=_u(4), transaction_type=_u(1),
        terminal_number=_b(6), date=_DATES, time=_TIMES)),
    "transit": (cf.TRANSIT_RECORD, st.builds(
        cf.TransitRecord, record_type=_u(1), device_id=_b(8), industry_code=_u(1), line=_b(2), station=_b(2),
        operator_code=_b(2), reserved=_u(1), amount=_u(4), balance=_u(4), transaction_time=_DATETIMES,
        acceptor_city=_b(2), acceptor_institution=_b(8), rfu=_b(6))),
    "raw_process": (cf.RAW_PROCESS_RECORD, st.builds(cf.RawProcessRecord, **_HEADER, body=_b(122))),
    "bus_process": (cf.BUS_PROCESS_RECORD, st.builds(
        cf.BusProcessRecord, **_HEADER, transaction_serial=_b(8), trade_state=_u(1), **_tap("boarding"),
        max_fare=_u(4), direction=_u(1), **_tap("alighting"), trade_amount=_u(4), ride_distance=_u(2),
        rfu=_b(26))),
    "metro_process": (cf.METRO_PROCESS_RECORD, st.builds(
        cf.MetroProcessRecord, **_HEADER, transaction_serial=_b(8), trade_state=_u(1), entry_city=_b(2),
        exit_city=_b(2), entry_institution=_b(8), exit_institution=_b(8), entry_station=_b(8), exit_station=_b(8),
        entry_device=_b(8), exit_device=_b(8), entry_time=_DATETIMES, exit_time=_DATETIMES, max_fare=_u(4),
        entry_line=_u(1), exit_line=_u(1), entry_amount=_u(4), entry_balance=_u(4), actual_amount=_u(4),
        last_time=_DATETIMES, last_device=_b(4), cumulative_amount=_u(3), cumulative_count=_u(2),
        transfer_info=_b(5), entry_station_sign=_u(1), exit_station_sign=_u(1), entry_exit_status=_u(1),
        rfu=_u(1), crc=_u(4))),
}


@pytest.mark.parametrize("name", MODELS)
@given(data=st.data())
def test_value_round_trip(name, data):
    layout, strategy = MODELS[name]
    value = data.draw(strategy)
    raw = layout.build(value)
    assert len(raw) == layout.size
    for engine in ENGINES:
        assert layout.build_with(engine, value) == raw
        assert layout.parse_with(engine, raw) == value


@given(MODELS["bus_process"][1] | MODELS["metro_process"][1] | MODELS["raw_process"][1])
def test_dispatch_round_trips_every_view(record):
    raw = cf.build_process_record(record)
    ids = {record.record_id}
    if isinstance(record, cf.BusProcessRecord):
        parsed = cf.parse_process_record(raw, bus_ids=ids)
    elif isinstance(record, cf.MetroProcessRecord):
        parsed = cf.parse_process_record(raw, bus_ids=(), metro_ids=ids)
        assert cf.metro_crc_ok(cf.seal_metro_record(record))
    else:
        parsed = cf.parse_process_record(raw, bus_ids=())
    assert parsed == record


@given(record_id=_u(1), body=_b(122), flags=_b(3))
def test_any_27xx_header_parses_raw(record_id, body, flags):
    raw = bytes((0x27, record_id, 0x7D)) + flags + body
    record = cf.parse_process_record(raw, bus_ids=())
    assert (record.record_id, record.header_byte3, record.un_flag, record.lock_flag) == (record_id, *flags)
    assert cf.build_process_record(record) == raw


@pytest.mark.parametrize("layout,field,bad", [
    (cf.TRANSACTION_LOG_RECORD, "amount", 1 << 32),
    (cf.TRANSACTION_LOG_RECORD, "amount", -1),
    (cf.TRANSACTION_LOG_RECORD, "overdraft_limit", 1 << 24),
    (cf.TRANSACTION_LOG_RECORD, "terminal_number", bytes(5)),
    (cf.TRANSACTION_LOG_RECORD, "date", "2020-01-01"),
    (cf.TRANSIT_RECORD, "record_type", 256),
    (cf.TRANSIT_RECORD, "acceptor_institution", bytes(9)),
    (cf.TRANSIT_RECORD, "transaction_time", dt.date(2020, 1, 1)),
    (cf.BUS_PROCESS_RECORD, "record_id", 0x100),
    (cf.BUS_PROCESS_RECORD, "boarding_station", -1),
    (cf.BUS_PROCESS_RECORD, "rfu", bytes(27)),
])
def test_values_that_cannot_be_encoded(layout, field, bad):
    value = layout.parse(parse_hex(layout.examples[0][0]))
    setattr(value, field, bad)
    for engine in ENGINES:
        with pytest.raises(ProtocolError):
            layout.build_with(engine, value)
