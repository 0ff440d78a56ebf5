"""File 0x1A: the composite-application process records (公共交通过程信息), 128 bytes each.

Every record starts ``27 <id> 7D 01 01 <lock flag>``: ``27xx`` is the record's identifier, 7D the number of bytes after
the first three, and the id byte doubles as P1 of ``80 DC <id> D0 80`` when the terminal writes the record back. What
follows depends on the id and on the operator, so there are three views of the same 128 bytes:

* :class:`BusProcessRecord`, id 02 (公共汽电车应用信息记录), as Beijing-area bus validators read and write it; the one
  the terminal updates on every tap (:func:`board_bus`, :func:`alight_bus`);
* :class:`MetroProcessRecord`, the Shanghai metro gate layout with its CRC-32. It is Shanghai-specific as far as the
  sources show: whether JT/T 978 mandates these offsets or the CRC is UNCONFIRMED, so no id maps to it by default;
* :class:`RawProcessRecord`, the header and 122 opaque bytes, for every other id.

:func:`parse_process_record` picks the view by the id byte. The meaning of header bytes 3 and 4 (01 01 in every sample;
Shanghai calls byte 4 "UNFlag") and the full id table are UNCONFIRMED, so both bytes are kept as data.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import zlib
from collections.abc import Container, Mapping
from dataclasses import dataclass
from enum import IntEnum
from types import MappingProxyType
from typing import ClassVar

import construct as c

from ..errors import ProtocolError
from ..fields import BcdDateTime
from ..layout import Layout
from .catalog import PROCESS_RECORD_SIZE
from .codes import Direction, TradeState, known

PROCESS_RECORD_TAG = 0x27
BUS_RECORD_ID = 0x02
BUS_RECORD_IDS: frozenset[int] = frozenset({BUS_RECORD_ID})

_HEADER = (
    c.Const(bytes((PROCESS_RECORD_TAG,))),
    "record_id" / c.Int8ub,
    c.Const(b"\x7d"),
    "header_byte3" / c.Int8ub,
    "un_flag" / c.Int8ub,
    "lock_flag" / c.Int8ub,
)


@dataclass(slots=True)
class ProcessRecordHeader:
    """The six bytes every 0x1A record starts with."""

    record_id: int  # byte 1, P1 of the 80DC that writes the record
    header_byte3: int  # 01 in every sample, meaning UNCONFIRMED
    un_flag: int  # 01 in every sample ("UNFlag" to Shanghai), meaning UNCONFIRMED
    lock_flag: int  # 00 usable; validators refuse the card otherwise

    @property
    def locked(self) -> bool:
        return self.lock_flag != 0


@dataclass(slots=True)
class RawProcessRecord(ProcessRecordHeader):
    """A record whose id has no known layout: the header, then the body kept as it is."""

    body: bytes  # bytes 6..127


RAW_PROCESS_RECORD = Layout(
    RawProcessRecord,
    *_HEADER,
    "body" / c.Bytes(122),
    examples=(
        # The id-12 record a Shenzhen T-Union UWB gate test tool writes with 80DC 12 D0 80.
        ("27127D0101 00" + "00" * 94 + "1901023B7227" + "00" * 22,
         RawProcessRecord(0x12, 1, 1, 0, bytes(94) + bytes.fromhex("1901023B7227") + bytes(22))),
    ),
)


@dataclass(slots=True)
class BusProcessRecord(ProcessRecordHeader):
    """The bus record (id 02): where and when the rider boarded and alighted, for tap-on/tap-off fares.

    Offsets follow Beijing-area validators. The marked fare is what the next validator charges if the rider never
    taps off. Places are kept as the card's bytes: whether lines and codes are binary or BCD varies by operator.
    """

    CODES: ClassVar[dict[str, type[IntEnum]]] = {"trade_state": TradeState, "direction": Direction}

    transaction_serial: bytes  # 8 bytes (交易流水)
    trade_state: int  # see TradeState
    boarding_city: bytes  # 2 bytes
    boarding_institution: bytes  # 8 bytes
    boarding_operator: bytes  # 2 bytes
    boarding_line: bytes  # 2 bytes
    boarding_station: int
    boarding_vehicle: bytes  # 8 bytes
    boarding_device: bytes  # 8 bytes
    boarding_time: dt.datetime | None
    max_fare: int  # fen (标注金额)
    direction: int  # see Direction
    alighting_city: bytes
    alighting_institution: bytes
    alighting_operator: bytes
    alighting_line: bytes
    alighting_station: int
    alighting_vehicle: bytes
    alighting_device: bytes
    alighting_time: dt.datetime | None
    trade_amount: int  # fen
    ride_distance: int
    rfu: bytes  # 26 bytes; some operators store data of their own here

    @property
    def known_trade_state(self) -> TradeState | None:
        return known(TradeState, self.trade_state)

    @property
    def known_direction(self) -> Direction | None:
        return known(Direction, self.direction)


def _tap_fields(prefix: str) -> tuple[c.Construct, ...]:
    return (
        f"{prefix}_city" / c.Bytes(2),
        f"{prefix}_institution" / c.Bytes(8),
        f"{prefix}_operator" / c.Bytes(2),
        f"{prefix}_line" / c.Bytes(2),
        f"{prefix}_station" / c.Int8ub,
        f"{prefix}_vehicle" / c.Bytes(8),
        f"{prefix}_device" / c.Bytes(8),
        f"{prefix}_time" / BcdDateTime,
    )


BUS_PROCESS_RECORD = Layout(
    BusProcessRecord,
    *_HEADER,
    "transaction_serial" / c.Bytes(8),
    "trade_state" / c.Int8ub,
    *_tap_fields("boarding"),
    "max_fare" / c.Int32ub,
    "direction" / c.Int8ub,
    *_tap_fields("alighting"),
    "trade_amount" / c.Int32ub,
    "ride_distance" / c.Int16ub,
    "rfu" / c.Bytes(26),
    examples=(
        # Two records read from T-Union cards by a Zibo (city 4530) bus validator, kept in its public source.
        # Boarded, not yet alighted:
        ("27027D0101 00 0000000000000126 01"
         " 4530 13664530FFFFFFFF 4530 00FB 03 3030343039393938 0000413106163675 20201228214511"
         " 00000030 AB"
         " 0000 0000000000000000 4530 0000 00 0000000000000000 0000000000000000 00000000000000"
         " 0000000C 0000 2840002100500000000000000000000000000000000000000000",
         BusProcessRecord(
             0x02, 1, 1, 0, bytes.fromhex("0000000000000126"), 0x01,
             b"\x45\x30", bytes.fromhex("13664530FFFFFFFF"), b"\x45\x30", b"\x00\xfb", 3, b"00409998",
             bytes.fromhex("0000413106163675"), dt.datetime(2020, 12, 28, 21, 45, 11),
             0x30, 0xAB,
             b"\0\0", bytes(8), b"\x45\x30", b"\0\0", 0, bytes(8), bytes(8), None,
             0x0C, 0, bytes.fromhex("284000210050") + bytes(20))),
        # Boarded at station 1 and alighted at station 3 of the same line:
        ("27027D0101 00 0000000000000336 02"
         " 4530 13664530FFFFFFFF 4530 00FB 01 3030343039393939 0000413106163674 20201228171159"
         " 00000000 AB"
         " 4530 13664530FFFFFFFF 4530 00FB 03 3030343039393939 0000413106163674 20201228171222"
         " 0000000C 0000 2840002100640000000000000000000000000000000000000000",
         BusProcessRecord(
             0x02, 1, 1, 0, bytes.fromhex("0000000000000336"), 0x02,
             b"\x45\x30", bytes.fromhex("13664530FFFFFFFF"), b"\x45\x30", b"\x00\xfb", 1, b"00409999",
             bytes.fromhex("0000413106163674"), dt.datetime(2020, 12, 28, 17, 11, 59),
             0, 0xAB,
             b"\x45\x30", bytes.fromhex("13664530FFFFFFFF"), b"\x45\x30", b"\x00\xfb", 3, b"00409999",
             bytes.fromhex("0000413106163674"), dt.datetime(2020, 12, 28, 17, 12, 22),
             0x0C, 0, bytes.fromhex("284000210064") + bytes(20))),
    ),
)


@dataclass(frozen=True, slots=True)
class BusStop:
    """Everything a bus record says about the place of a tap: one per validator and stop, made once, reused."""

    city_code: bytes  # 2 bytes
    institution_id: bytes  # 8 bytes
    operator_code: bytes  # 2 bytes
    line: bytes  # 2 bytes
    station: int
    vehicle: bytes  # 8 bytes
    device: bytes  # 8 bytes


def board_bus(record: BusProcessRecord, stop: BusStop, when: dt.datetime, max_fare: int, *,
              direction: int | None = None, serial: bytes | None = None) -> BusProcessRecord:
    """The record after a tap-on: state boarded, boarding place and time, and the fare owed if the rider never taps
    off. The alighting fields of the previous trip are left as they are, as Beijing-area validators do.

    ``direction`` and ``serial`` (the transaction serial) are kept from ``record`` unless given.
    """
    return dataclasses.replace(
        record,
        transaction_serial=record.transaction_serial if serial is None else serial,
        trade_state=TradeState.BOARDED.value,
        boarding_city=stop.city_code,
        boarding_institution=stop.institution_id,
        boarding_operator=stop.operator_code,
        boarding_line=stop.line,
        boarding_station=stop.station,
        boarding_vehicle=stop.vehicle,
        boarding_device=stop.device,
        boarding_time=when,
        max_fare=max_fare,
        direction=record.direction if direction is None else direction,
    )


def alight_bus(record: BusProcessRecord, stop: BusStop, when: dt.datetime, amount: int, *, distance: int = 0,
               direction: int | None = None, serial: bytes | None = None) -> BusProcessRecord:
    """The record after a tap-off: state alighted, alighting place and time, the fare actually charged and the ride
    distance. The boarding fields stay, so the record describes the whole trip.
    """
    return dataclasses.replace(
        record,
        transaction_serial=record.transaction_serial if serial is None else serial,
        trade_state=TradeState.ALIGHTED.value,
        alighting_city=stop.city_code,
        alighting_institution=stop.institution_id,
        alighting_operator=stop.operator_code,
        alighting_line=stop.line,
        alighting_station=stop.station,
        alighting_vehicle=stop.vehicle,
        alighting_device=stop.device,
        alighting_time=when,
        trade_amount=amount,
        ride_distance=distance,
        direction=record.direction if direction is None else direction,
    )


def blank_bus_record(record_id: int = BUS_RECORD_ID) -> BusProcessRecord:
    """A bus record as personalised: header ``27 <id> 7D 01 01``, everything else zero (no trip yet)."""
    if not 0 <= record_id <= 0xFF:
        raise ProtocolError(f"0x1A record id must be one byte, got {record_id}")
    return BUS_PROCESS_RECORD.parse(bytes((PROCESS_RECORD_TAG, record_id, 0x7D, 1, 1)) + bytes(123))


@dataclass(slots=True)
class MetroProcessRecord(ProcessRecordHeader):
    """The metro record as a Shanghai gate (AGM) reads and writes it: Shanghai-specific, UNCONFIRMED elsewhere.

    ``crc`` is a CRC-32 over bytes 6..123 (:func:`metro_crc`); the gate discards the trip data when it does not match.
    """

    CODES: ClassVar[dict[str, type[IntEnum]]] = {"trade_state": TradeState}

    transaction_serial: bytes  # 8 bytes, BCD
    trade_state: int  # see TradeState: 01 entered, 02 exited
    entry_city: bytes  # 2 bytes
    exit_city: bytes
    entry_institution: bytes  # 8 bytes
    exit_institution: bytes
    entry_station: bytes  # 8 bytes
    exit_station: bytes
    entry_device: bytes  # 8 bytes
    exit_device: bytes
    entry_time: dt.datetime | None
    exit_time: dt.datetime | None
    max_fare: int  # fen
    entry_line: int
    exit_line: int
    entry_amount: int  # fen
    entry_balance: int  # fen
    actual_amount: int  # fen
    last_time: dt.datetime | None
    last_device: bytes  # 4 bytes
    cumulative_amount: int  # 3 bytes, fen
    cumulative_count: int  # 2 bytes
    transfer_info: bytes  # 5 bytes
    entry_station_sign: int
    exit_station_sign: int
    entry_exit_status: int  # 55 written at entry
    rfu: int
    crc: int

    @property
    def known_trade_state(self) -> TradeState | None:
        return known(TradeState, self.trade_state)


METRO_PROCESS_RECORD = Layout(
    MetroProcessRecord,
    *_HEADER,
    "transaction_serial" / c.Bytes(8),
    "trade_state" / c.Int8ub,
    "entry_city" / c.Bytes(2),
    "exit_city" / c.Bytes(2),
    "entry_institution" / c.Bytes(8),
    "exit_institution" / c.Bytes(8),
    "entry_station" / c.Bytes(8),
    "exit_station" / c.Bytes(8),
    "entry_device" / c.Bytes(8),
    "exit_device" / c.Bytes(8),
    "entry_time" / BcdDateTime,
    "exit_time" / BcdDateTime,
    "max_fare" / c.Int32ub,
    "entry_line" / c.Int8ub,
    "exit_line" / c.Int8ub,
    "entry_amount" / c.Int32ub,
    "entry_balance" / c.Int32ub,
    "actual_amount" / c.Int32ub,
    "last_time" / BcdDateTime,
    "last_device" / c.Bytes(4),
    "cumulative_amount" / c.BytesInteger(3),
    "cumulative_count" / c.Int16ub,
    "transfer_info" / c.Bytes(5),
    "entry_station_sign" / c.Int8ub,
    "exit_station_sign" / c.Int8ub,
    "entry_exit_status" / c.Int8ub,
    "rfu" / c.Int8ub,
    "crc" / c.Int32ub,
)

_CRC_START, _CRC_END = 6, 124


def metro_crc(record: bytes) -> int:
    """The CRC a Shanghai gate stores at bytes 124..127 of a 128-byte record: the common CRC-32 (as zlib's, reflected
    polynomial 04C11DB7, init and final XOR FFFFFFFF) over bytes 6..123, stored big-endian.
    """
    if len(record) != PROCESS_RECORD_SIZE:
        raise ProtocolError(f"0x1A record: expected {PROCESS_RECORD_SIZE} bytes, got {len(record)}", sw=0x6700)
    return zlib.crc32(record[_CRC_START:_CRC_END])


def metro_crc_ok(record: bytes) -> bool:
    """Whether a 128-byte metro record carries the CRC of its own bytes 6..123."""
    return metro_crc(record) == int.from_bytes(record[_CRC_END:], "big")


def seal_metro_record(record: MetroProcessRecord) -> bytes:
    """The record's bytes with a freshly computed CRC, ready for ``80 DC <id> D0 80``; ``record.crc`` is ignored."""
    raw = METRO_PROCESS_RECORD.build(record)
    return raw[:_CRC_END] + metro_crc(raw).to_bytes(4, "big")


ProcessRecord = BusProcessRecord | MetroProcessRecord | RawProcessRecord

_LAYOUT_OF: Mapping[type, Layout] = MappingProxyType({
    BusProcessRecord: BUS_PROCESS_RECORD,
    MetroProcessRecord: METRO_PROCESS_RECORD,
    RawProcessRecord: RAW_PROCESS_RECORD,
})


def parse_process_record(data: bytes, *, bus_ids: Container[int] = BUS_RECORD_IDS,
                         metro_ids: Container[int] = ()) -> ProcessRecord:
    """A 128-byte 0x1A record in the view its id byte selects: bus ids first, then metro ids, else raw.

    No id is metro by default because that layout is Shanghai's; a deployment that meets it passes its ids.
    """
    record_id = data[1] if len(data) > 1 else None
    if record_id in bus_ids:
        return BUS_PROCESS_RECORD.parse(data)
    if record_id in metro_ids:
        return METRO_PROCESS_RECORD.parse(data)
    return RAW_PROCESS_RECORD.parse(data)


def build_process_record(record: ProcessRecord) -> bytes:
    """The 128 bytes of any 0x1A view, exactly as parsed or as changed (a metro CRC is not recomputed here)."""
    layout = _LAYOUT_OF.get(type(record))
    if layout is None:
        raise ProtocolError(f"not a 0x1A record view: {type(record).__name__}")
    return layout.build(record)
