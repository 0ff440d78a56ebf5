"""Known-answer vectors for the purse cryptography, all from spec §3.5 and §3.7 (and the classic DES example).

Each vector recomputes one published or spec-recorded value from its inputs through the public API; one test runs
them all. The two-level end-to-end example uses made-up keys and is a regression vector, not an interop one; the
purchase TAC ``B3A0D49C`` is self-computed from the spec's layout, not a published value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..hexutil import parse_hex as h
from .ciphers import DesKey, Sm4Key, TdesKey
from .keys import diversify, serial_factor
from .mac import line_protection_mac, mac_block
from .purse import (load_mac1, load_mac2, load_session_key, purchase_mac1, purchase_mac2, purchase_session_key,
                    purchase_tac, tac_key)


@dataclass(frozen=True, slots=True)
class Vector:
    name: str
    source: str
    compute: Callable[[], bytes]
    expected: bytes


# Purchase (BLOG-P) and load (BLOG-L): the same card key serves as DPK and DLK.
_CARD_KEY = "11223344556677888877665544332211"
_TERMINAL = h("001122334455")


def _purchase_sk() -> DesKey | Sm4Key:
    return purchase_session_key(TdesKey(h(_CARD_KEY)), h("11223344"), 0x0000, 0x00000001)


def _load_sk() -> DesKey | Sm4Key:
    return load_session_key(TdesKey(h(_CARD_KEY)), h("11223344"), 0x0000)


# The two-level end-to-end example: MPK/MTK diversified by serial (card level) then issuer, lowest level first.
_MPK = "00112233445566778899AABBCCDDEEFF"
_MTK = "FFEEDDCCBBAA99887766554433221100"
_ISSUER = h("02403640FFFFFFFF")
_SERIAL = serial_factor(h("03104991585000011383"))
_E2E_TERMINAL = h("200041599997")
_E2E_WHEN = h("20180313164329")


def _e2e_sk() -> DesKey | Sm4Key:
    dpk = diversify(TdesKey(h(_MPK)), _SERIAL, _ISSUER)
    return purchase_session_key(dpk, h("11223344"), 0x0036, 0x00000057)


VECTORS: tuple[Vector, ...] = (
    Vector("DES (FIPS 46 worked example)", "classic",
           lambda: DesKey(h("133457799BBCDFF1")).encrypt(h("0123456789ABCDEF")), h("85E813540F0AB405")),
    Vector("ISO 9797-1 MAC algorithm 3, no padding", "§3.3",
           lambda: mac_block(TdesKey(h("0123456789ABCDEFFEDCBA9876543210")), b"Now is the time for all ", pad=False),
           h("A1C72E74EA3FA9B6")),
    Vector("SM4 encryption example", "§3.7, GB/T 32907",
           lambda: Sm4Key(h("0123456789ABCDEFFEDCBA9876543210")).encrypt(h("0123456789ABCDEFFEDCBA9876543210")),
           h("681EDF34D206965E86B3E94F536E4246")),
    Vector("purchase session key", "§3.5 BLOG-P", lambda: _purchase_sk().export(), h("003238ABC57659DD")),
    Vector("purchase MAC1", "§3.5 BLOG-P",
           lambda: purchase_mac1(_purchase_sk(), 0x1000, 0x06, _TERMINAL, h("20120229135100")), h("F15CAB75")),
    Vector("purchase MAC2", "§3.5 BLOG-P", lambda: purchase_mac2(_purchase_sk(), 0x1000), h("56988A13")),
    Vector("TAC key DTK_L xor DTK_R", "§3.5 BLOG-P",
           lambda: tac_key(TdesKey(h("00112233445566778899AABBCCDDEEFF"))).export(), h("8888888888888888")),
    Vector("purchase TAC (self-computed)", "§3.5",
           lambda: purchase_tac(tac_key(TdesKey(h("00112233445566778899AABBCCDDEEFF"))), 0x1000, 0x06, _TERMINAL,
                                0x00000001, h("20120229135100")), h("B3A0D49C")),
    Vector("load session key", "§3.5 BLOG-L", lambda: _load_sk().export(), h("9B1D924E05595603")),
    Vector("load MAC1", "§3.5 BLOG-L", lambda: load_mac1(_load_sk(), 0, 0x1000, 0x01, _TERMINAL), h("2988AE5A")),
    Vector("load MAC2", "§3.5 BLOG-L",
           lambda: load_mac2(_load_sk(), 0x1000, 0x01, _TERMINAL, h("20111221214822")), h("3A845BF0")),
    Vector("end-to-end K_issuer", "§3.5 example",
           lambda: diversify(TdesKey(h(_MPK)), _ISSUER).export(), h("BB5897C2BF74DFA3914305EDCF729773")),
    Vector("end-to-end DPK (two levels)", "§3.5 example",
           lambda: diversify(TdesKey(h(_MPK)), _SERIAL, _ISSUER).export(), h("1EA06A5CD2621CFB23F65172C5C2A893")),
    Vector("end-to-end DTK (two levels)", "§3.5 example",
           lambda: diversify(TdesKey(h(_MTK)), _SERIAL, _ISSUER).export(), h("2917830D4877A288623E37D2B382009D")),
    Vector("end-to-end session key", "§3.5 example", lambda: _e2e_sk().export(), h("C3119FFF4E55895C")),
    Vector("end-to-end MAC1", "§3.5 example",
           lambda: purchase_mac1(_e2e_sk(), 0xC8, 0x09, _E2E_TERMINAL, _E2E_WHEN), h("2B1D974F")),
    Vector("end-to-end MAC2", "§3.5 example", lambda: purchase_mac2(_e2e_sk(), 0xC8), h("CAEC0601")),
    Vector("end-to-end TAC", "§3.5 example",
           lambda: purchase_tac(tac_key(diversify(TdesKey(h(_MTK)), _SERIAL, _ISSUER)), 0xC8, 0x09, _E2E_TERMINAL,
                                0x00000057, _E2E_WHEN), h("F252E12F")),
    Vector("end-to-end line-protection retail MAC", "§3.5 example, §3.6",
           lambda: line_protection_mac(TdesKey(h("404142434445464748494A4B4C4D4E4F")), h("AABBCCDD"), h("841E000004")),
           h("9445D2D6")),
)
