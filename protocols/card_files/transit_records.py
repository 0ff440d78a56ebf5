"""File 0x1E: the transit cyclic record (公共交通过程信息循环记录), 48 bytes per tap, written by the terminal."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar

import construct as c

from ..fields import BcdDateTime
from ..layout import Layout
from .codes import Industry, TransitRecordType, known


@dataclass(slots=True)
class TransitRecord:
    """One 0x1E record, sent with ``80 DC 00 F0 30`` before the debit; the card makes it record 1 at the debit.

    Anti-pass-back rules read the newest record's type (entry refused unless the last one was an exit, and so on).
    Some schemes put the line in bytes 12..13 rather than 10..11, so a reader shows bytes 10..16 whole as well.
    """

    CODES: ClassVar[dict[str, type[IntEnum]]] = {"record_type": TransitRecordType, "industry_code": Industry}

    record_type: int  # see TransitRecordType; kept as an int so unknown codes survive
    device_id: bytes  # 8 bytes: 0000 ‖ PSAM terminal number (bus), 00000000 ‖ device (Shanghai metro)
    industry_code: int  # see Industry: 00 other, 01 metro, 02 bus
    line: bytes  # 2 bytes
    station: bytes  # 2 bytes
    operator_code: bytes  # 2 bytes
    reserved: int  # byte 16; one gate test tool writes 15 here
    amount: int  # fen
    balance: int  # fen, after the transaction
    transaction_time: dt.datetime | None
    acceptor_city: bytes  # 2 bytes, e.g. 5840 Shenzhen
    acceptor_institution: bytes  # 8 bytes, e.g. 12215840FFFFFFFF
    rfu: bytes  # 6 bytes

    @property
    def known_record_type(self) -> TransitRecordType | None:
        return known(TransitRecordType, self.record_type)

    @property
    def known_industry_code(self) -> Industry | None:
        return known(Industry, self.industry_code)


TRANSIT_RECORD = Layout(
    TransitRecord,
    "record_type" / c.Int8ub,
    "device_id" / c.Bytes(8),
    "industry_code" / c.Int8ub,
    "line" / c.Bytes(2),
    "station" / c.Bytes(2),
    "operator_code" / c.Bytes(2),
    "reserved" / c.Int8ub,
    "amount" / c.Int32ub,
    "balance" / c.Int32ub,
    "transaction_time" / BcdDateTime,
    "acceptor_city" / c.Bytes(2),
    "acceptor_institution" / c.Bytes(8),
    "rfu" / c.Bytes(6),
    examples=(
        # An entry record written by a Shenzhen T-Union UWB gate test tool (spec §4.6).
        ("03 0000000279001102 04 0000 0000 0000 15 00000000 0000224A 20250114142937 5840 12215840FFFFFFFF 000000000000",
         TransitRecord(0x03, bytes.fromhex("0000000279001102"), 0x04, b"\0\0", b"\0\0", b"\0\0", 0x15, 0, 0x224A,
                       dt.datetime(2025, 1, 14, 14, 29, 37), b"\x58\x40", bytes.fromhex("12215840FFFFFFFF"),
                       bytes(6))),
        # A Beijing metro exit read from a card (T-Union Master's card-format notes): 5.00 CNY, balance 35.85.
        ("04 0000300089000340 01 0800 1900 3000 00 000001F4 00000E01 20241229141740 1000 01011000FFFFFFFF 000000000000",
         TransitRecord(0x04, bytes.fromhex("0000300089000340"), 0x01, b"\x08\x00", b"\x19\x00", b"\x30\x00", 0,
                       500, 0xE01, dt.datetime(2024, 12, 29, 14, 17, 40), b"\x10\x00",
                       bytes.fromhex("01011000FFFFFFFF"), bytes(6))),
    ),
)
