"""Data as captured: the status word taken off only when it is one, card text, schemes named by their AIDs.

Byte strings are real answers; each names its source.
"""

from __future__ import annotations

import pytest

from protocols import card_files as cf
from protocols import schemes
from protocols.apdu import split_status_word
from protocols.fci import Fci
from protocols.hexutil import parse_hex
from protocols.status import describe, is_known
from protocols.text import card_text

# nfsee's reader mock (nfcim/nfsee, assets/reader-mock.js): a Shenzhen Tong card's 0x15 read with Le 1C, and 9000.
SZT_15 = "0000000000000000FD21000051800000A344C2132017031420270314"
# T-Union Master's card-format notes (flipperzero-firmware-wPlugins, docs/card_data_format.md): GET BALANCE.
BALANCE = "00000AC3"


@pytest.mark.parametrize("captured, size, data, sw", [
    (SZT_15 + "9000", 28, SZT_15, 0x9000),
    (SZT_15, 28, SZT_15, None),  # exactly the size: no status word, even though nothing would forbid one
    (BALANCE + "9000", 4, BALANCE, 0x9000),
    ("9000", 4, "", 0x9000),
    ("6A82", 30, "", 0x6A82),  # the answer of a card without the file: a status word and nothing else
    ("6283", None, "", 0x6283),
    (SZT_15[:22], 28, SZT_15[:22], None),  # a read cut short with no word at its end
    ("0001" + "6281", None, "0001", 0x6281),  # a warning may follow data
])
def test_split_status_word(captured: str, size: int | None, data: str, sw: int | None):
    assert split_status_word(parse_hex(captured), size) == (parse_hex(data), sw)


def test_card_text():
    assert card_text(b"MOT_T_EP") == "MOT_T_EP"
    # 9F12 of a real T-Union card's FCI (an iOS NFC demo's NFCCommandManager.swift keeps the whole answer)
    assert card_text(parse_hex("4341524420494D4147452030303031")) == "CARD IMAGE 0001"
    assert card_text("深圳通".encode("gbk") + b"\x00\x00") == "深圳通"
    assert card_text(b"\x01\x02\x03") is None and card_text(b"AB\x81") is None  # a GBK lead byte with nothing after it
    assert card_text(b"  \xff") == ""


def test_status_words_known_or_flagged():
    assert is_known(0x9401) and describe(0x9401) == "insufficient balance"
    assert is_known(0x6C1E) and is_known(0x6108) and is_known(0x63C2)
    assert not is_known(0x6A87) and describe(0x6A87) == "wrong parameters P1-P2"  # only its class is known
    assert not is_known(0x9F00) and describe(0x9F00) == "unknown status word"


@pytest.mark.parametrize("aid, key", [
    ("A000000632010105", "t-union"), ("A000000632010106", "t-union-cash"),
    ("325041592E5359532E4444463031", "ppse"), ("315055422E5359532E4444463031", "city-pse"),
    ("A00000000386980701", "mohurd"), ("A00000000386980703", "mohurd-other"),
    ("5041592E535A54", "shenzhen-tong"), ("4150312E5748435443", "wuhan-tong"), ("5041592E41505059", "lingnan-pass"),
    ("535558494E2E4444463031", "suzhou-citizen-card"), ("91560000144D4F542E424D4143303031", "beijing-bmac"),
    ("B0C4C3C5CDA8C7AEB0FC", "macau-pass"), ("D4100000030001", "t-money"),
    ("A000000333010101", "unionpay"), ("A0000000031010", "visa"), ("A0000000041010", "mastercard"),
])
def test_every_aid_public_readers_select_names_its_scheme(aid: str, key: str):
    scheme = schemes.scheme_of(parse_hex(aid))
    assert scheme is not None and scheme.key == key and schemes.BY_KEY[key] is scheme


def test_unknown_aids_name_no_scheme():
    assert schemes.scheme_of(parse_hex("A0000006320101")) is None  # a prefix of the T-Union AID is not it
    assert schemes.scheme_of(b"PAY.SZT2") is None


def test_file15_layouts_follow_the_scheme():
    assert schemes.T_UNION.file15 is cf.PUBLIC_APP_INFO
    assert schemes.MOHURD.file15 is cf.CITY_APP_INFO is schemes.WUHAN_TONG.file15
    assert schemes.SHENZHEN_TONG.file15 is cf.SHENZHEN_TONG_INFO and schemes.SUZHOU.file15 is cf.SUZHOU_APP_INFO
    assert schemes.LINGNAN_PASS.file15 is None and schemes.T_UNION_CASH.file15 is None
    assert schemes.PURSE_AIDS[0] == parse_hex("A000000632010105")  # a reader tries the T-Union purse first


def test_city_layouts_on_real_answers():
    # A Hangzhou MOHURD card, as a published read of it shows it (cnblogs ziyan22, "公交卡的结构"), and its number.
    hangzhou = cf.CITY_APP_INFO.parse(parse_hex("847531000000000000003100310000002091508720151010206510100000"))
    assert hangzhou.card_number.hex() == "3100000020915087" and hangzhou.city_code == b"\x31\x00"
    # The same bytes in the T-Union layout give another number: the misreading the schemes prevent.
    assert cf.PUBLIC_APP_INFO.parse(parse_hex("847531000000000000003100310000002091508720151010206510100000")
                                    ).serial.hex() == "31003100000020915087"
    # Shenzhen Tong: nfsee's 28-byte read and the 32 bytes of the FCI in Trip Reader's card emulator.
    szt = cf.SHENZHEN_TONG_INFO.parse_partial(parse_hex(SZT_15))
    assert szt.missing == ("unknown_tail",) and szt.values["card_serial"] == parse_hex("A344C213")
    fci = Fci.parse(parse_hex("6F3284075041592E535A54A5279F0801029F0C200000000000000000FD44000051800000E63C1D29"
                              "2017120120271201101000009000")[:-2])
    info = cf.SHENZHEN_TONG_INFO.parse(fci.discretionary_data or b"")
    assert (info.card_number, info.printed_number) == (689781990, "689781990(3)")
