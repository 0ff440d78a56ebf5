"""The fare engine: exact amounts, notes, 0x1E record types and 0x1A bus records for every feature."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.card_files import BUS_PROCESS_RECORD, BusProcessRecord, BusStop, TransitRecord, blank_bus_record
from protocols.hexutil import parse_hex
from terminal.fare_config import CardTypeRule, FareBand, FareTable, SectionFares, parse_fares
from terminal.fares import (
    ALIGHT,
    BOARD,
    NEED_BUS_RECORD,
    NEED_TRANSIT_RECORD,
    SINGLE_FARE,
    FareContext,
    FareQuote,
    FareRefusal,
    FareRules,
    load_fares,
)

ROOT = Path(__file__).resolve().parents[2]

SHANGHAI = b"\x29\x00"
INSTITUTION = bytes.fromhex("12342900FFFFFFFF")
OPERATOR = b"\x00\x01"
BUS_A = b"00409998"
BUS_B = b"00409999"
DEVICE_A = bytes.fromhex("0000413106163675")
DEVICE_B = bytes.fromhex("0000413106163676")
LINE_1, LINE_7, LINE_801, LINE_802 = b"\x00\x01", b"\x00\x07", b"\x03\x21", b"\x03\x22"
T0 = dt.datetime(2025, 3, 1, 8, 0, 0)

NETWORK = """
format = 1

[fare]
base = 200

[lines.1]
base = 100

[lines.801]
max_trip_minutes = 180
max_fare = 500
bands = [{ up_to = 5, fare = 200 }, { up_to = 10, fare = 300 }, { up_to = 20, fare = 400 }]

[lines.802]
max_trip_minutes = 120
boarding_fare = 100
matrix = [
    [100, 100, 200, 300, 400],
    [100, 100, 100, 200, 300],
    [200, 100, 100, 100, 200],
    [300, 200, 100, 100, 100],
    [400, 300, 200, 100, 100],
]

[card_types]
student = { percent = 50 }
elderly = { free = true }
test = { fixed = 1 }
9 = { percent = 80 }
12 = { refuse = true }
14 = { refuse = true, reason = "staff card: show it to the driver" }
"""

TRANSFER_OFF = '\n[transfer]\nwindow_minutes = 90\noff = 100\ncard_types = ["normal", "student", "test", 9]\n'
TRANSFER_PERCENT = "\n[transfer]\nwindow_minutes = 90\npercent = 50\n"


def rules(text: str) -> FareRules:
    return FareRules(parse_fares(text, "test.toml"))


def stop(line: bytes = LINE_801, station: int = 3, vehicle: bytes = BUS_A, device: bytes = DEVICE_A,
         city: bytes = SHANGHAI) -> BusStop:
    return BusStop(city, INSTITUTION, OPERATOR, line, station, vehicle, device)


def ride(record_type: int = ALIGHT, line: bytes = LINE_1, amount: int = 200, when: dt.datetime | None = T0,
         city: bytes = SHANGHAI) -> TransitRecord:
    """A 0x1E record as a validator on ``line`` would have written it."""
    return TransitRecord(record_type, b"\0\0" + DEVICE_B[2:], 0x02, line, b"\x00\x05", OPERATOR, 0, amount, 1000,
                         when, city, INSTITUTION, bytes(6))


def written(quote: FareQuote, place: BusStop, now: dt.datetime) -> TransitRecord:
    """The 0x1E record the tap state machine writes for a quote."""
    return ride(quote.record_type, place.line, quote.amount, now, place.city_code)


def quote(r: FareRules, card_type: int = 1, now: dt.datetime = T0, place: BusStop | None = None,
          transit: TransitRecord | None = None, bus: BusProcessRecord | None = None) -> FareQuote | FareRefusal:
    return r.quote(FareContext(card_type, now, place or stop(LINE_7), transit, bus))


def minutes(n: float) -> dt.timedelta:
    return dt.timedelta(minutes=n)


# --- 1. flat fare ---------------------------------------------------------------------------------------------------


def test_plain_flat_fare():
    r = rules("format = 1\n[fare]\nbase = 200\n")
    assert quote(r) == FareQuote(200, "flat", SINGLE_FARE, None, 0)
    assert SINGLE_FARE == 0x06
    assert r.needs == frozenset()
    assert r.needs_for(LINE_7) == frozenset()


def test_flat_quote_is_reused_not_rebuilt():
    r = rules(NETWORK)
    assert quote(r, 2) is quote(r, 2, now=T0 + minutes(5))


def test_line_fares_and_default():
    r = rules(NETWORK)
    assert quote(r, place=stop(LINE_1)) == FareQuote(100, "flat", SINGLE_FARE)
    assert quote(r, place=stop(LINE_7)) == FareQuote(200, "flat", SINGLE_FARE)


def test_line_without_fare_is_refused():
    r = rules("format = 1\n[lines.801]\nbase = 300\n")
    assert quote(r, place=stop(LINE_7)) == FareRefusal("no fare for line 7", "line")
    assert r.needs_for(LINE_7) == frozenset()
    bcd = rules("format = 1\nline_numbers = \"bcd\"\n[lines.802]\nbase = 300\n")
    assert quote(bcd, place=stop(b"\x08\x01")) == FareRefusal("no fare for line 801", "line")
    assert quote(bcd, place=stop(b"\x08\x02")) == FareQuote(300, "flat", SINGLE_FARE)
    assert bcd.line_code(802) == b"\x08\x02"


# --- 2. card types ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("card_type, amount, rule", [
    (1, 200, "flat"),
    (2, 100, "flat, student 50%"),
    (3, 0, "flat, elderly free"),
    (4, 1, "flat, test fixed 1"),
    (5, 200, "flat"),  # not listed, no "other": full fare
    (9, 160, "flat, type 9 80%"),
    (0, 200, "flat"),
    (255, 200, "flat"),
])
def test_card_types_on_flat_fare(card_type, amount, rule):
    assert quote(rules(NETWORK), card_type) == FareQuote(amount, rule, SINGLE_FARE)


def test_refused_card_types():
    r = rules(NETWORK)
    assert quote(r, 12) == FareRefusal("type 12 card not accepted", "card_type")
    assert quote(r, 14) == FareRefusal("staff card: show it to the driver", "card_type")
    student = rules("format = 1\n[fare]\nbase = 200\n[card_types]\nstudent = { refuse = true }\n")
    assert quote(student, 2) == FareRefusal("student card not accepted", "card_type")


def test_refusal_comes_before_the_line_check():
    r = rules("format = 1\n[lines.1]\nbase = 100\n[card_types]\n12 = { refuse = true }\n")
    assert quote(r, 12, place=stop(LINE_7)) == FareRefusal("type 12 card not accepted", "card_type")


def test_other_card_types():
    r = rules("format = 1\n[fare]\nbase = 200\n[card_types]\nnormal = { percent = 100 }\n"
              "student = { percent = 50 }\nother = { refuse = true }\n")
    assert quote(r, 1) == FareQuote(200, "flat", SINGLE_FARE)  # percent = 100 is full fare, no note
    assert quote(r, 2) == FareQuote(100, "flat, student 50%", SINGLE_FARE)
    assert quote(r, 3) == FareRefusal("elderly card not accepted", "card_type")
    assert quote(r, 77) == FareRefusal("type 77 card not accepted", "card_type")


def test_percent_rounds_half_a_fen_up():
    r = rules("format = 1\n[fare]\nbase = 125\n[card_types]\nstudent = { percent = 50 }\n9 = { percent = 33 }\n")
    assert quote(r, 2).amount == 63
    assert quote(r, 9).amount == 41  # 41.25


# --- 3. transfers ----------------------------------------------------------------------------------------------------

NOW = T0 + minutes(30)


@pytest.mark.parametrize("transit, amount", [
    (ride(ALIGHT, LINE_1, 200, T0), 100),  # a finished ride on another line 30 minutes ago
    (ride(SINGLE_FARE, LINE_1, 1, T0), 100),  # any amount above zero is a paid ride
    (ride(SINGLE_FARE, LINE_1, 200, NOW - minutes(90)), 100),  # the window's last second
    (ride(SINGLE_FARE, LINE_1, 200, NOW), 100),  # the same second
    (ride(SINGLE_FARE, LINE_1, 200, NOW - minutes(90) - dt.timedelta(seconds=1)), 200),  # too late
    (ride(SINGLE_FARE, LINE_1, 200, NOW + dt.timedelta(seconds=1)), 200),  # a record from the future
    (ride(SINGLE_FARE, LINE_7, 200, T0), 200),  # same line: a repeat or a new trip
    (ride(SINGLE_FARE, LINE_1, 0, T0), 200),  # the last ride was not paid
    (ride(BOARD, LINE_1, 200, T0), 200),  # a tap-on is not a finished ride
    (ride(0x02, LINE_1, 5000, T0), 200),  # a load
    (ride(0x12, LINE_1, 200, T0), 200),  # a lock record
    (ride(SINGLE_FARE, LINE_1, 200, T0, city=b"\x10\x00"), 200),  # another city's line 1
    (ride(SINGLE_FARE, LINE_1, 200, None), 200),  # an empty record
    (None, 200),
])
def test_transfer_on_flat_line(transit, amount):
    r = rules(NETWORK + TRANSFER_OFF)
    expected = FareQuote(amount, "flat, transfer -100" if amount == 100 else "flat", SINGLE_FARE)
    assert quote(r, 1, NOW, stop(LINE_7), transit) == expected


def test_transfer_after_card_type_rule():
    r = rules(NETWORK + TRANSFER_OFF)
    last = ride(ALIGHT, LINE_1, 100, T0)
    assert quote(r, 2, NOW, stop(LINE_7), last) == FareQuote(0, "flat, student 50%, transfer -100", SINGLE_FARE)
    assert quote(r, 9, NOW, stop(LINE_7), last) == FareQuote(60, "flat, type 9 80%, transfer -100", SINGLE_FARE)
    assert quote(r, 4, NOW, stop(LINE_7), last) == FareQuote(0, "flat, test fixed 1, transfer -100", SINGLE_FARE)


def test_transfer_limited_to_card_types():
    r = rules(NETWORK + TRANSFER_OFF)
    last = ride(ALIGHT, LINE_1, 100, T0)
    assert quote(r, 5, NOW, stop(LINE_7), last) == FareQuote(200, "flat", SINGLE_FARE)  # military: not listed


def test_no_transfer_note_on_a_free_ride():
    r = rules(NETWORK + "\n[transfer]\nwindow_minutes = 90\noff = 100\n")
    assert quote(r, 3, NOW, stop(LINE_7), ride(ALIGHT, LINE_1, 100, T0)) == \
        FareQuote(0, "flat, elderly free", SINGLE_FARE)


def test_transfer_percent():
    r = rules(NETWORK + TRANSFER_PERCENT)
    last = ride(SINGLE_FARE, LINE_7, 200, T0)
    assert quote(r, 1, NOW, stop(LINE_1), last) == FareQuote(50, "flat, transfer 50%", SINGLE_FARE)
    assert quote(r, 2, NOW, stop(b"\x00\x09"), last) == \
        FareQuote(50, "flat, student 50%, transfer 50%", SINGLE_FARE)


def test_transfer_chain_ends_at_a_free_ride():
    r = rules("format = 1\n[fare]\nbase = 100\n[transfer]\nwindow_minutes = 90\noff = 100\n")
    first = quote(r, 1, T0, stop(LINE_1))
    second = quote(r, 1, T0 + minutes(20), stop(LINE_7), written(first, stop(LINE_1), T0))
    assert (first.amount, second.amount, second.rule) == (100, 0, "flat, transfer -100")
    third = quote(r, 1, T0 + minutes(40), stop(LINE_1), written(second, stop(LINE_7), T0 + minutes(20)))
    assert (third.amount, third.rule) == (100, "flat")


def test_needs_with_transfer():
    r = rules(NETWORK + TRANSFER_OFF)
    assert r.needs_for(LINE_7) == frozenset({NEED_TRANSIT_RECORD})
    assert r.needs_for(LINE_1) == frozenset({NEED_TRANSIT_RECORD})
    assert r.needs_for(LINE_801) == frozenset({NEED_TRANSIT_RECORD, NEED_BUS_RECORD})
    assert r.needs == frozenset({NEED_TRANSIT_RECORD, NEED_BUS_RECORD})


def test_needs_without_transfer():
    r = rules(NETWORK)
    assert r.needs_for(LINE_7) == frozenset()
    assert r.needs_for(LINE_801) == frozenset({NEED_BUS_RECORD})
    assert r.needs_for(LINE_802) == frozenset({NEED_BUS_RECORD})
    assert r.needs == frozenset({NEED_BUS_RECORD})


# --- 4. tap-on / tap-off sections ------------------------------------------------------------------------------------

NO_ALIGHTING = "0000 0000000000000000 0000 0000 00 0000000000000000 0000000000000000 00000000000000"
RFU = "00" * 26


def test_board_a_card_without_bus_record():
    q = quote(rules(NETWORK), 1, T0, stop(LINE_801, station=3))
    assert (q.amount, q.rule, q.record_type, q.penalty) == (0, "board", BOARD, 0)
    assert BOARD == 0x03
    assert BUS_PROCESS_RECORD.build(q.bus_record) == parse_hex(
        "27027D0101 00 0000000000000000 01"
        " 2900 12342900FFFFFFFF 0001 0321 03 3030343039393938 0000413106163675 20250301080000"
        " 000001F4 00"
        f" {NO_ALIGHTING}"
        f" 00000000 0000 {RFU}")


def test_board_over_a_closed_trip_keeps_header_lock_serial_and_last_alighting():
    closed = BUS_PROCESS_RECORD.parse(parse_hex(
        "27027D0101 01 0000000000000336 02"
        " 4530 13664530FFFFFFFF 4530 00FB 01 3030343039393939 0000413106163674 20201228171159"
        " 00000000 AB"
        " 4530 13664530FFFFFFFF 4530 00FB 03 3030343039393939 0000413106163674 20201228171222"
        " 0000000C 0002 2840002100640000000000000000000000000000000000000000"))
    q = quote(rules(NETWORK), 1, T0, stop(LINE_801, station=7), bus=closed)
    assert (q.amount, q.rule, q.record_type, q.penalty) == (0, "board", BOARD, 0)
    assert BUS_PROCESS_RECORD.build(q.bus_record) == parse_hex(
        "27027D0101 01 0000000000000336 01"
        " 2900 12342900FFFFFFFF 0001 0321 07 3030343039393938 0000413106163675 20250301080000"
        " 000001F4 AB"
        " 4530 13664530FFFFFFFF 4530 00FB 03 3030343039393939 0000413106163674 20201228171222"
        " 00000000 0002 2840002100640000000000000000000000000000000000000000")
    assert closed.trade_state == 0x02 and closed.trade_amount == 0x0C  # the card's record is not changed


def test_never_used_record_boards():
    q = quote(rules(NETWORK), 1, T0, stop(LINE_801), bus=blank_bus_record())
    assert (q.amount, q.rule, q.penalty) == (0, "board", 0)


def _boarded(r: FareRules, card_type: int = 1, line: bytes = LINE_801, station: int = 3,
             when: dt.datetime = T0) -> BusProcessRecord:
    q = quote(r, card_type, when, stop(line, station=station))
    assert q.record_type == BOARD
    return q.bus_record


def test_alight_same_line_and_vehicle():
    r = rules(NETWORK)
    on = _boarded(r)
    q = quote(r, 1, T0 + minutes(25), stop(LINE_801, station=9, device=DEVICE_B), bus=on)
    assert (q.amount, q.rule, q.record_type, q.penalty) == (300, "alight 6 stations", ALIGHT, 0)
    assert ALIGHT == 0x04
    assert BUS_PROCESS_RECORD.build(q.bus_record) == parse_hex(
        "27027D0101 00 0000000000000000 02"
        " 2900 12342900FFFFFFFF 0001 0321 03 3030343039393938 0000413106163675 20250301080000"
        " 000001F4 00"
        " 2900 12342900FFFFFFFF 0001 0321 09 3030343039393938 0000413106163676 20250301082500"
        f" 0000012C 0006 {RFU}")


@pytest.mark.parametrize("alight_at, amount, rule", [
    (3, 200, "alight 0 stations"),  # tapped off where it tapped on
    (4, 200, "alight 1 station"),
    (8, 200, "alight 5 stations"),
    (9, 300, "alight 6 stations"),
    (13, 300, "alight 10 stations"),
    (14, 400, "alight 11 stations"),
    (23, 400, "alight 20 stations"),
    (24, 500, "alight 21 stations"),  # beyond the last band: the max fare
    (255, 500, "alight 252 stations"),
    (1, 200, "alight 2 stations"),  # travelled the other way
])
def test_alight_fares_by_bands(alight_at, amount, rule):
    r = rules(NETWORK)
    q = quote(r, 1, T0 + minutes(5), stop(LINE_801, station=alight_at), bus=_boarded(r, station=3))
    assert (q.amount, q.rule) == (amount, rule)
    assert q.bus_record.trade_amount == amount
    assert q.bus_record.ride_distance == abs(alight_at - 3)


def test_alight_never_charges_more_than_the_marked_fare():
    r = rules(NETWORK)
    on = dataclasses.replace(_boarded(r), max_fare=250)  # marked under an older, cheaper fare file
    q = quote(r, 1, T0 + minutes(5), stop(LINE_801, station=20), bus=on)
    assert (q.amount, q.bus_record.trade_amount) == (250, 250)


def test_matrix_line_with_boarding_fare():
    r = rules(NETWORK)
    q_on = quote(r, 1, T0, stop(LINE_802, station=1))
    assert (q_on.amount, q_on.rule, q_on.record_type) == (100, "board", BOARD)
    assert (q_on.bus_record.max_fare, q_on.bus_record.trade_amount) == (400, 100)
    on = q_on.bus_record
    later = T0 + minutes(10)
    assert quote(r, 1, later, stop(LINE_802, station=5), bus=on) == FareQuote(
        300, "alight 1-5", ALIGHT, quote(r, 1, later, stop(LINE_802, station=5), bus=on).bus_record)
    assert quote(r, 1, later, stop(LINE_802, station=2), bus=on).amount == 0  # 100, all paid at tap-on
    assert quote(r, 1, later, stop(LINE_802, station=9), bus=on).amount == 300  # off the matrix: max fare
    back = quote(r, 1, T0, stop(LINE_802, station=5)).bus_record
    q_back = quote(r, 1, later, stop(LINE_802, station=3), bus=back)
    assert (q_back.amount, q_back.rule, q_back.bus_record.trade_amount) == (100, "alight 5-3", 200)


@pytest.mark.parametrize("place, later, penalty", [
    (stop(LINE_801, station=5, vehicle=BUS_B), minutes(10), 500),  # another bus of the same line
    (stop(LINE_802, station=5), minutes(10), 500),  # another line (on the same bus)
    (stop(LINE_801, station=5), minutes(180) + dt.timedelta(seconds=1), 500),  # too long after tap-on
])
def test_missed_tap_off_is_charged_then_boards(place, later, penalty):
    r = rules(NETWORK)
    on = _boarded(r)
    q = quote(r, 1, T0 + later, place, bus=on)
    boarding = 100 if place.line == LINE_802 else 0
    assert (q.amount, q.penalty, q.record_type) == (penalty + boarding, penalty, BOARD)
    assert q.rule == f"missed tap-off {penalty}, board"
    new = q.bus_record
    assert (new.trade_state, new.boarding_line, new.boarding_station, new.boarding_vehicle, new.boarding_time) == \
        (0x01, place.line, 5, place.vehicle, T0 + later)
    assert (new.max_fare, new.trade_amount) == ((400, 100) if place.line == LINE_802 else (500, 0))


@pytest.mark.parametrize("later", [minutes(180), dt.timedelta(0), -minutes(30)])
def test_tap_within_the_trip_time_alights(later):
    r = rules(NETWORK)
    q = quote(r, 1, T0 + later, stop(LINE_801, station=5), bus=_boarded(r))
    assert (q.record_type, q.amount, q.penalty) == (ALIGHT, 200, 0)


def test_missed_tap_off_penalty_subtracts_what_was_paid_at_tap_on():
    r = rules(NETWORK)
    on = _boarded(r, line=LINE_802, station=1)  # paid 100, marked 400
    q = quote(r, 1, T0 + minutes(10), stop(LINE_801, station=4), bus=on)
    assert (q.amount, q.penalty, q.rule) == (300, 300, "missed tap-off 300, board")


def test_penalty_is_never_negative():
    r = rules(NETWORK)
    on = dataclasses.replace(_boarded(r), max_fare=100, trade_amount=150)
    q = quote(r, 1, T0 + minutes(10), stop(LINE_801, vehicle=BUS_B), bus=on)
    assert (q.amount, q.penalty, q.rule) == (0, 0, "board")


def test_open_trip_without_boarding_time_cannot_be_closed():
    r = rules(NETWORK)
    odd = dataclasses.replace(_boarded(r), boarding_time=None)
    q = quote(r, 1, T0, stop(LINE_801), bus=odd)
    assert (q.record_type, q.penalty) == (BOARD, 500)


def test_flat_line_ignores_an_open_trip():
    r = rules(NETWORK)
    assert quote(r, 1, T0 + minutes(10), stop(LINE_7), bus=_boarded(r)) == FareQuote(200, "flat", SINGLE_FARE)


@pytest.mark.parametrize("card_type, marked, board, alight, rule", [
    (2, 250, 0, 150, "alight 6 stations, student 50%"),
    (3, 0, 0, 0, "alight 6 stations, elderly free"),
    (4, 1, 0, 1, "alight 6 stations, test fixed 1"),  # a fixed fare is paid once, at tap-off
    (9, 400, 0, 240, "alight 6 stations, type 9 80%"),
])
def test_card_types_on_section_line(card_type, marked, board, alight, rule):
    r = rules(NETWORK)
    q_on = quote(r, card_type, T0, stop(LINE_801, station=3))
    assert (q_on.amount, q_on.bus_record.max_fare) == (board, marked)
    q_off = quote(r, card_type, T0 + minutes(20), stop(LINE_801, station=9), bus=q_on.bus_record)
    assert (q_off.amount, q_off.rule, q_off.bus_record.trade_amount) == (alight, rule, alight)


def test_fixed_fare_with_boarding_fare_is_paid_at_tap_on():
    r = rules(NETWORK)
    q_on = quote(r, 4, T0, stop(LINE_802, station=1))
    assert (q_on.amount, q_on.rule, q_on.bus_record.max_fare, q_on.bus_record.trade_amount) == \
        (1, "board, test fixed 1", 1, 1)
    q_off = quote(r, 4, T0 + minutes(9), stop(LINE_802, station=5), bus=q_on.bus_record)
    assert (q_off.amount, q_off.bus_record.trade_amount) == (0, 1)


def test_refused_card_type_on_section_line():
    r = rules(NETWORK)
    assert quote(r, 12, T0, stop(LINE_801), bus=_boarded(r)) == FareRefusal("type 12 card not accepted", "card_type")


def test_transfer_at_tap_on_carries_a_fixed_discount_to_tap_off():
    r = rules(NETWORK + TRANSFER_OFF)
    last = ride(SINGLE_FARE, LINE_7, 200, T0)
    q_on = quote(r, 1, T0 + minutes(20), stop(LINE_801, station=3), transit=last)
    assert (q_on.amount, q_on.rule, q_on.bus_record.trade_amount, q_on.bus_record.max_fare) == \
        (0, "board, transfer -100", 100, 500)
    # at tap-off the newest 0x1E record is the rider's own tap-on: no second discount
    tap_on = written(q_on, stop(LINE_801, station=3), T0 + minutes(20))
    q_off = quote(r, 1, T0 + minutes(40), stop(LINE_801, station=9), transit=tap_on, bus=q_on.bus_record)
    assert (q_off.amount, q_off.rule, q_off.bus_record.trade_amount) == (200, "alight 6 stations", 300)


def test_transfer_at_tap_on_with_boarding_fare():
    r = rules(NETWORK + TRANSFER_OFF)
    last = ride(SINGLE_FARE, LINE_7, 200, T0)
    q_on = quote(r, 1, T0 + minutes(20), stop(LINE_802, station=1), transit=last)
    assert (q_on.amount, q_on.rule, q_on.bus_record.trade_amount) == (0, "board, transfer -100", 100)
    q_off = quote(r, 1, T0 + minutes(30), stop(LINE_802, station=5), bus=q_on.bus_record)
    assert q_off.amount == 300  # 400 less the 100 counted at tap-on
    big = rules(NETWORK.replace("boarding_fare = 100", "boarding_fare = 150") + TRANSFER_OFF)
    q_big = quote(big, 1, T0 + minutes(20), stop(LINE_802, station=1), transit=last)
    assert (q_big.amount, q_big.bus_record.trade_amount) == (50, 150)
    student = quote(r, 2, T0 + minutes(20), stop(LINE_801, station=1), transit=last)
    assert (student.amount, student.rule, student.bus_record.trade_amount, student.bus_record.max_fare) == \
        (0, "board, student 50%, transfer -100", 100, 250)


def test_transfer_percent_on_section_line_discounts_the_boarding_charge():
    r = rules(NETWORK + TRANSFER_PERCENT)
    last = ride(SINGLE_FARE, LINE_7, 200, T0)
    q_802 = quote(r, 1, T0 + minutes(20), stop(LINE_802, station=1), transit=last)
    assert (q_802.amount, q_802.rule, q_802.bus_record.trade_amount) == (50, "board, transfer 50%", 100)
    q_801 = quote(r, 1, T0 + minutes(20), stop(LINE_801, station=1), transit=last)
    assert (q_801.amount, q_801.rule) == (0, "board")  # nothing to discount at tap-on


def test_transfer_does_not_apply_to_free_section_ride():
    r = rules(NETWORK + "\n[transfer]\nwindow_minutes = 90\noff = 100\n")
    q = quote(r, 3, T0 + minutes(20), stop(LINE_801), transit=ride(SINGLE_FARE, LINE_7, 200, T0))
    assert (q.amount, q.rule, q.bus_record.trade_amount) == (0, "board, elderly free", 0)


def test_no_transfer_after_a_missed_tap_off():
    r = rules(NETWORK + TRANSFER_OFF)
    q_on = quote(r, 1, T0, stop(LINE_802, station=1))
    tap_on = written(q_on, stop(LINE_802, station=1), T0)
    q = quote(r, 1, T0 + minutes(10), stop(LINE_801, station=2), transit=tap_on, bus=q_on.bus_record)
    assert (q.amount, q.rule) == (300, "missed tap-off 300, board")


# --- properties ------------------------------------------------------------------------------------------------------


@st.composite
def section_lines(draw):
    ups = sorted(draw(st.sets(st.integers(0, 255), min_size=1, max_size=6)))
    bands = tuple(FareBand(u, draw(st.integers(0, 2000))) for u in ups)
    max_fare = draw(st.integers(0, 3000))
    boarding = draw(st.integers(0, max_fare))
    return SectionFares(draw(st.integers(1, 1440)), max_fare, boarding, bands)


@given(section_lines(), st.integers(0, 100), st.integers(0, 255), st.integers(0, 255), st.integers(0, 1440 * 60))
def test_tapping_off_is_never_worse_than_not(fares, percent, boarded, alighted, seconds):
    """Board then alight: the two charges make the trip's fare, which never exceeds what a rider who never taps off
    pays; every record written builds into a 128-byte bus record that parses back to itself."""
    table = FareTable("prop", "", "binary", None, {LINE_801: fares}, {1: CardTypeRule("percent", percent)},
                      None, None)
    r = FareRules(table)
    on = quote(r, 1, T0, stop(LINE_801, station=boarded))
    later = T0 + dt.timedelta(seconds=seconds)
    off = quote(r, 1, later, stop(LINE_801, station=alighted), bus=on.bus_record)
    missed = quote(r, 1, later, stop(LINE_801, station=alighted, vehicle=BUS_B), bus=on.bus_record)
    within = seconds <= fares.max_trip_minutes * 60
    assert off.record_type == (ALIGHT if within else BOARD)
    trip = CardTypeRule("percent", percent).apply(fares.fare(boarded, alighted))
    if within:
        assert on.amount + off.amount == max(trip, on.amount)
        assert off.amount <= missed.penalty
    assert missed.penalty == CardTypeRule("percent", percent).apply(fares.max_fare) - on.amount
    for q in (on, off, missed):
        raw = BUS_PROCESS_RECORD.build(q.bus_record)
        assert len(raw) == 128 and BUS_PROCESS_RECORD.parse(raw) == q.bus_record


# --- the shipped demo files ------------------------------------------------------------------------------------------


def test_demo_flat():
    r = load_fares(ROOT / "sim" / "fares" / "demo-flat.toml")
    assert r.needs == frozenset()
    assert [quote(r, c) for c in (1, 2, 3, 4, 5)] == [
        FareQuote(200, "flat", SINGLE_FARE),
        FareQuote(100, "flat, student 50%", SINGLE_FARE),
        FareQuote(0, "flat, elderly free", SINGLE_FARE),
        FareQuote(1, "flat, test fixed 1", SINGLE_FARE),
        FareQuote(0, "flat, military free", SINGLE_FARE),
    ]
    assert quote(r, 6) == FareRefusal("card type not accepted", "card_type")


def test_demo_sections_day():
    """A rider's morning on the demo network: tap on 801, tap off, transfer to line 1, then 802 without tapping off,
    and on 801 again."""
    r = load_fares(ROOT / "sim" / "fares" / "demo-sections.toml")
    assert r.line_code(801) == LINE_801
    card_1a: BusProcessRecord | None = None
    card_1e: TransitRecord | None = None
    charged = []
    for minute, place in [(0, stop(LINE_801, station=2)), (25, stop(LINE_801, station=9)),
                          (40, stop(LINE_1)), (60, stop(LINE_802, station=1)), (90, stop(LINE_801, station=4))]:
        now = T0 + minutes(minute)
        needs = r.needs_for(place.line)
        q = r.quote(FareContext(1, now, place, card_1e if NEED_TRANSIT_RECORD in needs else None,
                                card_1a if NEED_BUS_RECORD in needs else None))
        charged.append((q.amount, q.rule))
        card_1a = q.bus_record or card_1a
        card_1e = written(q, place, now)
    assert charged == [
        (0, "board"),
        (300, "alight 7 stations"),
        (0, "flat, transfer -100"),  # line 1 costs 100; a transfer within 90 minutes of the paid tap-off
        (100, "board"),  # the line-1 ride was free, so no transfer
        (300, "missed tap-off 300, board"),  # 802 never tapped off: marked 400, 100 paid at tap-on; 801 boards free
    ]
