"""Card schemes told apart by the application a card selects: its AID, the DF name in the FCI.

Chinese transport cards carry one or more PBOC-style purse applications; which one decides how file 0x15 (and the
FCI's 9F0C, which carries the same bytes) is laid out, which keys the purse is under and which validators take the
card. :func:`scheme_of` names the scheme of a DF name; a scheme whose 0x15 layout is public has it in
:attr:`Scheme.file15`, the others are named and left raw. The AIDs are those public card readers select (nfsee,
Metrodroid, Trip Reader's card emulator) and those cards answer in their FCIs and directories.
"""

from __future__ import annotations

from dataclasses import dataclass

from .card_files import (
    CITY_APP_INFO,
    PUBLIC_APP_INFO,
    SHENZHEN_TONG_INFO,
    SUZHOU_APP_INFO,
)
from .layout import Layout

PURSE = "purse"
"""A stored-value application a fare can be taken from."""
COMPANION = "companion"
"""An application next to a purse on the same card (a cash application, a city's private data)."""
DIRECTORY = "directory"
"""A directory of the card's applications (PPSE, a PSE)."""
PAYMENT = "payment"
"""A bank card application (EMV)."""


@dataclass(frozen=True, slots=True)
class Scheme:
    """A card application family: ``key`` for programs, ``name`` for people, the DF names that select it (exact
    ``aids``, or a registered application provider's ``prefixes``), what kind of application it is, and the layout of
    its 0x15 when a public source describes it."""

    key: str
    name: str
    kind: str
    aids: tuple[bytes, ...] = ()
    prefixes: tuple[bytes, ...] = ()
    file15: Layout | None = None

    def matches(self, df_name: bytes) -> bool:
        return df_name in self.aids or any(df_name.startswith(prefix) for prefix in self.prefixes)


T_UNION = Scheme("t-union", "T-Union purse 交通联合", PURSE,
                 (bytes.fromhex("A000000632010105"),), file15=PUBLIC_APP_INFO)
T_UNION_CASH = Scheme("t-union-cash", "T-Union cash application", COMPANION,
                      (bytes.fromhex("A000000632010106"),))
PPSE = Scheme("ppse", "proximity payment directory (PPSE, 2PAY.SYS.DDF01)", DIRECTORY, (b"2PAY.SYS.DDF01",))
CITY_PSE = Scheme("city-pse", "MOHURD city card directory (1PUB.SYS.DDF01)", DIRECTORY, (b"1PUB.SYS.DDF01",))
MOHURD = Scheme("mohurd", "MOHURD city card 住建部城市一卡通", PURSE, (bytes.fromhex("A00000000386980701"),),
                file15=CITY_APP_INFO)
MOHURD_OTHER = Scheme("mohurd-other", "MOHURD city card, another application", COMPANION,
                      (bytes.fromhex("A00000000386980702"), bytes.fromhex("A00000000386980703")))
SHENZHEN_TONG = Scheme("shenzhen-tong", "Shenzhen Tong 深圳通", PURSE, (b"PAY.SZT",),
                       file15=SHENZHEN_TONG_INFO)
WUHAN_TONG = Scheme("wuhan-tong", "Wuhan Tong 武汉通", PURSE, (b"AP1.WHCTC",), file15=CITY_APP_INFO)
LINGNAN_PASS = Scheme("lingnan-pass", "Lingnan Pass 岭南通", PURSE, (b"PAY.APPY", b"PAY.TICL"))
SUZHOU = Scheme("suzhou-citizen-card", "Suzhou citizen card 苏州市民卡", PURSE, (b"SUXIN.DDF01",),
                file15=SUZHOU_APP_INFO)
BEIJING_BMAC = Scheme("beijing-bmac", "Beijing municipal card application", COMPANION,
                      (bytes.fromhex("91560000144D4F542E424D4143303031"),))
MACAU_PASS = Scheme("macau-pass", "Macau Pass 澳门通", PURSE, ("澳门通钱包".encode("gbk"),))
T_MONEY = Scheme("t-money", "T-money (Korea)", PURSE, (bytes.fromhex("D4100000030001"),))
UNIONPAY = Scheme("unionpay", "UnionPay bank card", PAYMENT, prefixes=(bytes.fromhex("A000000333"),))
VISA = Scheme("visa", "Visa bank card", PAYMENT, prefixes=(bytes.fromhex("A000000003"),))
MASTERCARD = Scheme("mastercard", "Mastercard bank card", PAYMENT, prefixes=(bytes.fromhex("A000000004"),))

SCHEMES: tuple[Scheme, ...] = (T_UNION, T_UNION_CASH, PPSE, CITY_PSE, MOHURD, MOHURD_OTHER, SHENZHEN_TONG, WUHAN_TONG,
                               LINGNAN_PASS, SUZHOU, BEIJING_BMAC, MACAU_PASS, T_MONEY, UNIONPAY, VISA, MASTERCARD)
BY_KEY = {scheme.key: scheme for scheme in SCHEMES}

PURSE_AIDS: tuple[bytes, ...] = tuple(aid for scheme in SCHEMES if scheme.kind == PURSE for aid in scheme.aids)
"""The purse applications a reader tries when a card lists none, T-Union's first."""


def scheme_of(df_name: bytes) -> Scheme | None:
    """The scheme a DF name (an AID, ``2PAY.SYS.DDF01``, ...) selects; ``None`` when no public source names it."""
    return next((scheme for scheme in SCHEMES if scheme.matches(df_name)), None)
