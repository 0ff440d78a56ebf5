"""The transparent files of the purse application: 0x15 public info, 0x16 cardholder, 0x17 management info."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar

import construct as c

from .. import bcd
from ..fields import BcdDate
from ..layout import Layout
from ..text import lenient_text
from .codes import CardType, known


@dataclass(slots=True)
class PublicAppInfo:
    """File 0x15 (公共应用基本数据): who issued the card, its serial and its validity.

    The serial is what every key is diversified with and what blacklists list, so it is kept as the card's bytes.
    """

    issuer_id: bytes  # 8 bytes, e.g. 02002900FFFFFFFF; byte 0's meaning is UNCONFIRMED
    app_type: int  # 02 in every sample
    app_version: int  # Beijing-area validators refuse version 00
    serial: bytes  # 10 bytes packed BCD
    start_date: dt.date | None
    expiry_date: dt.date | None
    issuer_defined: bytes  # 2 bytes; Shanghai reads card type and deposit here (UNCONFIRMED)

    @property
    def city_code(self) -> bytes:
        """Issuer ID bytes 2..3, the issuing city (2900 Shanghai, 1000 Beijing)."""
        return self.issuer_id[2:4]

    @property
    def serial_digits(self) -> str:
        """The application serial as its 20 BCD digits; a non-BCD serial is a ProtocolError."""
        return bcd.digits(self.serial, what="application serial")

    @property
    def card_number(self) -> str:
        """The 19-digit number printed on the card and shown to riders: the serial without its first digit."""
        return self.serial_digits[1:]

    @property
    def diversification_factor(self) -> bytes:
        """Serial bytes 2..9 (file bytes 12..19): the card-level factor for key diversification and PSAM 8070."""
        return self.serial[2:]


PUBLIC_APP_INFO = Layout(
    PublicAppInfo,
    "issuer_id" / c.Bytes(8),
    "app_type" / c.Int8ub,
    "app_version" / c.Int8ub,
    "serial" / c.Bytes(10),
    "start_date" / BcdDate,
    "expiry_date" / BcdDate,
    "issuer_defined" / c.Bytes(2),
    examples=(
        # The 9F0C data of a real Shanghai T-Union SELECT response (spec §1.1).
        ("02002900FFFFFFFF 02 01 03104770040067442802 20200115 20401231 0114",
         PublicAppInfo(bytes.fromhex("02002900FFFFFFFF"), 0x02, 0x01, bytes.fromhex("03104770040067442802"),
                       dt.date(2020, 1, 15), dt.date(2040, 12, 31), b"\x01\x14")),
        # DGI B001 of a public T-Union personalisation blob (city 2482).
        ("05212482FFFFFFFF 02 00 03104895199900000002 20201020 20401231 0000",
         PublicAppInfo(bytes.fromhex("05212482FFFFFFFF"), 0x02, 0x00, bytes.fromhex("03104895199900000002"),
                       dt.date(2020, 10, 20), dt.date(2040, 12, 31), b"\x00\x00")),
    ),
)


@dataclass(frozen=True, slots=True)
class CardholderView:
    """A best-effort reading of file 0x16 under the PBOC convention; see :attr:`CardholderInfo.holder`."""

    holder_type: int
    staff_flag: int
    name: str
    id_number: str
    id_type: int


@dataclass(slots=True)
class CardholderInfo:
    """File 0x16 (持卡人基本信息), kept as its raw 55 bytes because its layout is UNCONFIRMED.

    Only the length is certain. Anonymous T-Union cards carry padding here; fares never depend on this file.
    """

    raw: bytes

    @property
    def holder(self) -> CardholderView:
        """Best effort, not a confirmed layout: the PBOC convention holder type(1) ‖ staff flag(1) ‖ name(20) ‖
        ID number(32) ‖ ID type(1).

        A public personalisation blob fits it (ID type 00 at byte 54); a Shanghai gate's debug print suggests another
        order (ID type at byte 21). Text fields are decoded as GBK with padding stripped and never raise; show them
        to people, do not base decisions on them.
        """
        raw = self.raw
        return CardholderView(raw[0], raw[1], lenient_text(raw[2:22]), lenient_text(raw[22:54]), raw[54])


CARDHOLDER_INFO = Layout(
    CardholderInfo,
    "raw" / c.Bytes(55),
    examples=(
        # DGI B002 of a public T-Union personalisation blob: an anonymous card.
        ("0000" + "20" * 52 + "00", CardholderInfo(bytes.fromhex("0000" + "20" * 52 + "00"))),
    ),
)


@dataclass(slots=True)
class ManagementInfo:
    """File 0x17 (管理信息): where the card belongs and which kind of rider holds it."""

    CODES: ClassVar[dict[str, type[IntEnum]]] = {"card_type": CardType}

    country_code: bytes  # 4 bytes, 00000156 for China
    province_code: bytes  # 2 bytes, UnionPay region code
    city_code: bytes  # 2 bytes
    interop_class: int  # 互通卡种: 0 = not interoperable (refused by Shanghai), 1 seen on T-Union cards
    card_type: int  # see CardType; kept as an int so unknown codes survive
    settlement_number: bytes  # 4 bytes; meaning UNCONFIRMED
    rfu: bytes  # 45 bytes

    @property
    def known_card_type(self) -> CardType | None:
        return known(CardType, self.card_type)

    @property
    def interoperable(self) -> bool:
        """Whether the card claims T-Union interoperability (a non-zero 互通卡种)."""
        return self.interop_class != 0


MANAGEMENT_INFO = Layout(
    ManagementInfo,
    "country_code" / c.Bytes(4),
    "province_code" / c.Bytes(2),
    "city_code" / c.Bytes(2),
    "interop_class" / c.Int16ub,
    "card_type" / c.Int8ub,
    "settlement_number" / c.Bytes(4),
    "rfu" / c.Bytes(45),
    examples=(
        # DGI B003 of a public T-Union personalisation blob.
        ("00000156 2400 2482 0001 01 00000000" + "00" * 45,
         ManagementInfo(bytes.fromhex("00000156"), b"\x24\x00", b"\x24\x82", 1, 1, bytes(4), bytes(45))),
    ),
)
