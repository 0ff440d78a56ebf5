"""File 0x15 (and the FCI's 9F0C) of the city-card schemes whose layout is public: MOHURD (住建部) city cards and
Wuhan Tong, Shenzhen Tong, the Suzhou citizen card.

These cards run the same PBOC purse commands as T-Union cards but keep their own application information, so
their 0x15 read with the T-Union layout gives a wrong card number. Where a byte's meaning is public it is decoded;
bytes no public source describes are kept raw under a name that says so.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import construct as c

from ..fields import BcdDate
from ..layout import Layout

CHONGQING = b"\x40\x00"
"""City code of Chongqing, whose MOHURD cards keep their dates at bytes 4..11 and their number in file 0x05 of the
MF (nfsee): :data:`CITY_APP_INFO` does not describe them."""


@dataclass(slots=True)
class CityAppInfo:
    """0x15 of a MOHURD city-card application (A00000000386980701), and of Wuhan Tong: 30 bytes.

    Offsets: a published read of a Hangzhou card (cnblogs ziyan22, "公交卡的结构") names every field; nfsee reads the
    city at bytes 2..3, the number at 12..19 and the dates at 20..27 for MOHURD and Wuhan Tong cards alike.
    """

    issuer_code: bytes  # 10 bytes, 发卡机构代码; bytes 2..3 are the city code
    app_type: int
    app_version: int
    card_number: bytes  # 8 bytes packed BCD, 应用帐户 (the number printed on the card)
    start_date: dt.date | None
    expiry_date: dt.date | None
    issuer_defined: bytes  # 2 bytes

    @property
    def city_code(self) -> bytes:
        """Issuer code bytes 2..3, the city (3100 Hangzhou, 4000 Chongqing, ...)."""
        return self.issuer_code[2:4]


CITY_APP_INFO = Layout(
    CityAppInfo,
    "issuer_code" / c.Bytes(10),
    "app_type" / c.Int8ub,
    "app_version" / c.Int8ub,
    "card_number" / c.Bytes(8),
    "start_date" / BcdDate,
    "expiry_date" / BcdDate,
    "issuer_defined" / c.Bytes(2),
    examples=(
        # The 9F0C of a Hangzhou MOHURD card, from a published read of it (cnblogs ziyan22, "公交卡的结构").
        ("84753100000000000000 31 00 3100000020915087 20151010 20651010 0000",
         CityAppInfo(bytes.fromhex("84753100000000000000"), 0x31, 0x00, bytes.fromhex("3100000020915087"),
                     dt.date(2015, 10, 10), dt.date(2065, 10, 10), b"\0\0")),
        # Another Hangzhou card's 9F0C, in Trip Reader's card emulator (domosekai/cardemulator).
        ("84753100000000000000 31 00 3100000151073028 20191225 20691225 0000",
         CityAppInfo(bytes.fromhex("84753100000000000000"), 0x31, 0x00, bytes.fromhex("3100000151073028"),
                     dt.date(2019, 12, 25), dt.date(2069, 12, 25), b"\0\0")),
    ),
)


@dataclass(slots=True)
class ShenzhenTongInfo:
    """0x15 of Shenzhen Tong (PAY.SZT): the FCI's 9F0C carries 32 bytes, READ BINARY with Le 1C reads the first 28.

    Metrodroid (after NFCard) reads the card number at bytes 16..19, little-endian, and the validity at 20..27;
    nothing public describes the other bytes. nfsee reads the number big-endian; that gives 10 digits where the
    printed numbers have 9 and a check digit, so the little-endian reading is the one taken here.
    """

    unknown: bytes  # 16 bytes
    card_serial: bytes  # 4 bytes, the card number little-endian
    start_date: dt.date | None
    expiry_date: dt.date | None
    unknown_tail: bytes  # 4 bytes

    @property
    def card_number(self) -> int:
        return int.from_bytes(self.card_serial, "little")

    @property
    def printed_number(self) -> str:
        """The number as printed on the card: the digits and, in brackets, the digit that makes their sum a multiple
        of ten."""
        number = self.card_number
        check = -sum(int(digit) for digit in str(number)) % 10
        return f"{number}({check})"


SHENZHEN_TONG_INFO = Layout(
    ShenzhenTongInfo,
    "unknown" / c.Bytes(16),
    "card_serial" / c.Bytes(4),
    "start_date" / BcdDate,
    "expiry_date" / BcdDate,
    "unknown_tail" / c.Bytes(4),
    examples=(
        # The 9F0C of a Shenzhen Tong card in Trip Reader's card emulator (domosekai/cardemulator).
        ("0000000000000000FD44000051800000 E63C1D29 20171201 20271201 10100000",
         ShenzhenTongInfo(bytes.fromhex("0000000000000000FD44000051800000"), bytes.fromhex("E63C1D29"),
                          dt.date(2017, 12, 1), dt.date(2027, 12, 1), bytes.fromhex("10100000"))),
    ),
)


@dataclass(slots=True)
class SuzhouAppInfo:
    """0x15 of the Suzhou citizen card (SUXIN.DDF01), 30 bytes: nfsee reads the number at bytes 0..7 and the
    validity at 20..27; nothing public describes bytes 8..19."""

    card_number: bytes  # 8 bytes packed BCD
    unknown: bytes  # 12 bytes
    start_date: dt.date | None
    expiry_date: dt.date | None
    issuer_defined: bytes  # 2 bytes


SUZHOU_APP_INFO = Layout(
    SuzhouAppInfo,
    "card_number" / c.Bytes(8),
    "unknown" / c.Bytes(12),
    "start_date" / BcdDate,
    "expiry_date" / BcdDate,
    "issuer_defined" / c.Bytes(2),
    examples=(
        # The 9F0C of a Suzhou citizen card in Trip Reader's card emulator (domosekai/cardemulator).
        ("2150090928399151 020286000021500028399151 20190101 20501231 FFFF",
         SuzhouAppInfo(bytes.fromhex("2150090928399151"), bytes.fromhex("020286000021500028399151"),
                       dt.date(2019, 1, 1), dt.date(2050, 12, 31), b"\xff\xff")),
    ),
)
