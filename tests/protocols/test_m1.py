"""The M1 purse's blocks, key rule and MACs, byte for byte; the keys and MACs also against the ciphers computed here
with ``cryptography`` directly, so the project's own diversification and MAC code is not checking itself."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

try:
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
except ImportError:  # older cryptography
    from cryptography.hazmat.primitives.ciphers.algorithms import TripleDES  # type: ignore[attr-defined,no-redef]

from protocols.crypto import Sm4Key, TdesKey
from protocols.errors import ProtocolError
from protocols.hexutil import parse_hex
from protocols.m1.crypto import (
    AUTH_CODE_DATA_SIZE,
    PURCHASE_MAC_DATA,
    PurchaseMacData,
    auth_code,
    auth_code_data,
    purchase_mac,
)
from protocols.m1.keys import PUBLIC_KEY_A, KeyRule
from protocols.m1.layout import (
    DIRECTORY,
    ISSUANCE,
    PUBLIC_INFO,
    RECORD_BLOCKS,
    RECORD_RING,
    SECTOR_ACCESS,
    TRIP_RECORD,
    VALIDITY,
    EnableFlag,
    Issuance,
    ProcessFlag,
    TripRecord,
    Validity,
    next_slot,
    parse_public_info,
    previous_slot,
    public_info,
    sector_access,
)
from protocols.mifare import KeyType, sector_of

H = parse_hex
KEY_A_MASTER = H("0123456789ABCDEFFEDCBA9876543210")  # the demo key set's m1_key_a 01
KEY_B_MASTER = H("FEDCBA98765432100123456789ABCDEF")
AUTH_MASTER = H("A1A2A3A4A5A6A7A8B1B2B3B4B5B6B7B8")
TAC_MASTER = H("C1C2C3C4C5C6C7C8D1D2D3D4D5D6D7D8")
UID = H("40C2AB5C")
CARD = H("3640000100000042")


def tdes(key: bytes, data: bytes) -> bytes:
    return Cipher(TripleDES(key + key[:8]), modes.ECB()).encryptor().update(data)


def des(key: bytes, data: bytes) -> bytes:
    return Cipher(TripleDES(key * 3), modes.ECB()).encryptor().update(data)


def retail_mac(key: bytes, data: bytes) -> bytes:
    """ISO 9797-1 padding 2 and MAC algorithm 3 with a zero IV, by hand: DES CBC under K_L, 3DES on the last block."""
    data += b"\x80" + bytes(-(len(data) + 1) % 8)
    chain = bytes(8)
    for i in range(0, len(data) - 8, 8):
        chain = des(key[:8], bytes(a ^ b for a, b in zip(chain, data[i:i + 8], strict=True)))
    return tdes(key, bytes(a ^ b for a, b in zip(chain, data[-8:], strict=True)))[:4]


def invert(data: bytes) -> bytes:
    return bytes(b ^ 0xFF for b in data)


# --- the map and the blocks ---------------------------------------------------------------------------------------

def test_the_map() -> None:
    assert RECORD_BLOCKS == (12, 13, 14, 16, 17, 18, 20, 21, 22) and RECORD_RING == 9
    assert [sector_of(b) for b in RECORD_BLOCKS] == [3, 3, 3, 4, 4, 4, 5, 5, 5]
    assert DIRECTORY == H("00 01 10 03 03 03 06 FF FF FF FF FF FF FF FF FF")
    assert [next_slot(8), next_slot(0), previous_slot(0), previous_slot(5)] == [0, 1, 8, 4]


def test_access_bits_of_every_sector() -> None:
    expected = {0: "787788", 1: "787788", 2: "18778E", 3: "7F0788", 4: "7F0788", 5: "7F0788", 6: "7F0788"}
    assert {sector: access.to_bytes().hex().upper() for sector, access in SECTOR_ACCESS.items()} == expected
    assert sector_access(7).to_bytes() == H("787788") == sector_access(39).to_bytes()
    purse = SECTOR_ACCESS[2]
    value = purse.data_rights(1)
    assert (int(value.read), int(value.write), int(value.increment), int(value.decrement)) == (3, 2, 2, 3)
    trailer = purse.trailer_rights()
    assert (int(trailer.key_a_write), int(trailer.key_b_read), int(trailer.access_write)) == (2, 0, 2)


def test_issuance_block() -> None:
    raw = H("3640 0001 00000042 BE2F4CD5 02 01 01 00")
    issuance = ISSUANCE.parse(raw)
    assert issuance == Issuance(H("3640"), H("0001"), H("00000042"), H("BE2F4CD5"), EnableFlag.NORMAL, 1, 1, 0)
    assert issuance.card_number == CARD
    assert ISSUANCE.build(issuance) == raw


def test_validity_block() -> None:
    raw = H("20200101 20200315 20401231 07D0 0000")
    assert VALIDITY.parse(raw) == Validity(dt.date(2020, 1, 1), dt.date(2020, 3, 15), dt.date(2040, 12, 31), 2000,
                                           bytes(2))
    with pytest.raises(ProtocolError):
        VALIDITY.parse(H("20201301 20200315 20401231 07D0 0000"))


def test_trip_record() -> None:
    record = TripRecord(7, 0x06, 0x01F4, 0x012345, dt.datetime(2025, 12, 31, 23, 59, 58))
    assert TRIP_RECORD.build(record) == H("0007 06 0001F4 012345 20251231235958")
    with pytest.raises(ProtocolError):
        TRIP_RECORD.build(TripRecord(1, 6, 0x1000000, 0, None))  # three bytes of amount


def test_public_info_built_and_checked() -> None:
    raw = public_info(3, 0x0102, ProcessFlag.DEBITING, black_flag=0x04)
    assert raw == H("03 0102 01 0000 04 00 FFFFFFFFFFFFFF") + bytes((0x03 ^ 0x01 ^ 0x02 ^ 0x01 ^ 0x04 ^ 0xFF,))
    info = parse_public_info(raw)
    assert (info.record_pointer, info.counter, info.process_flag, info.black_flag) == (3, 0x102, 1, 4)
    assert PUBLIC_INFO.build(info) == raw
    bad_check = raw[:-1] + bytes((raw[-1] ^ 1,))
    with pytest.raises(ProtocolError, match="check byte"):
        parse_public_info(bad_check)
    with pytest.raises(ProtocolError, match="constant"):
        parse_public_info(raw[:8] + H("FF FF FF FF FF FF 00") + raw[15:])
    outside = H("09 0000 00 0000 00 00 FFFFFFFFFFFFFF") + bytes((0x09 ^ 0xFF,))
    with pytest.raises(ProtocolError, match="outside the ring"):
        parse_public_info(outside)
    with pytest.raises(ProtocolError, match="not a ring slot"):
        public_info(9, 0, 0)


def test_process_flag_parity() -> None:
    assert [ProcessFlag.in_progress(flag) for flag in (0x00, 0x01, 0x02, 0x03, 0x04)] == [False, True, False, True,
                                                                                           False]


# --- the key rule --------------------------------------------------------------------------------------------------

def test_key_rule_factor_and_versions() -> None:
    rule = KeyRule()
    assert rule.factor(UID, 6) == H("40C2AB5C 06 000000")
    assert rule.factor(H("04112233445566"), 2) == H("33445566 02 000000")  # a 7-byte UID: its last four
    assert KeyRule(constant=H("123456")).factor(UID, 1) == H("40C2AB5C 01 123456")
    assert [KeyRule(issuance_version=5).version(sector, 9) for sector in (0, 1, 2, 39)] == [5, 5, 9, 9]
    with pytest.raises(ProtocolError):
        KeyRule(constant=b"\0")
    with pytest.raises(ProtocolError):
        KeyRule(issuance_version=256)


@pytest.mark.parametrize("sector,key_a,key_b", [
    (0, "A0A1A2A3A4A5", "E2C2F60F4CF4"),
    (1, "2CF09352D53C", "88D83BBEB420"),
    (2, "1F734F80A0B0", "30453F8C6D9F"),
    (6, "A0CC66A61978", "45D18824ED0C"),
])
def test_sector_keys_of_the_demo_card(sector: int, key_a: str, key_b: str) -> None:
    rule = KeyRule()
    assert rule.key(TdesKey(KEY_A_MASTER), UID, sector, KeyType.A) == H(key_a)
    assert rule.key(TdesKey(KEY_B_MASTER), UID, sector, KeyType.B) == H(key_b)
    factor = UID + bytes((sector,)) + bytes(3)
    if sector:
        assert H(key_a) == tdes(KEY_A_MASTER, factor)[:6]
    assert H(key_b) == tdes(KEY_B_MASTER, factor)[:6]
    assert PUBLIC_KEY_A == H("A0A1A2A3A4A5")


def test_sm4_sector_key() -> None:
    factor = UID + b"\x02" + bytes(3)
    expected = Cipher(algorithms.SM4(KEY_A_MASTER), modes.ECB()).encryptor().update(factor + invert(factor))[:6]
    assert KeyRule().key(Sm4Key(KEY_A_MASTER), UID, 2, KeyType.A) == expected


# --- the MACs -------------------------------------------------------------------------------------------------------

def test_auth_code_of_the_demo_card() -> None:
    block4 = H("3640 0001 00000042 00000000 02 01 01 00")
    block5 = H("20200101 20200101 20401231 0000 0000")
    data = auth_code_data(UID, block4, block5)
    assert data == H("40C2AB5C 3640000100000042 0101 2020010120200101204012310000")
    assert len(data) == AUTH_CODE_DATA_SIZE
    card_key = tdes(AUTH_MASTER, CARD) + tdes(AUTH_MASTER, invert(CARD))  # one-level diversification by hand
    assert card_key == H("E35BC84655C50A6F5F808AEEF69E57D9")
    assert auth_code(TdesKey(card_key), data) == retail_mac(card_key, data) == H("BE2F4CD5")
    flag_changed = H("3640 0001 00000042 FFFFFFFF 04 01 01 00")  # the code and the enable flag are not covered
    assert auth_code_data(UID, flag_changed, block5) == data
    with pytest.raises(ProtocolError):
        auth_code_data(UID, block4[:15], block5)


def test_purchase_mac() -> None:
    data = PURCHASE_MAC_DATA.build(PurchaseMacData(CARD, UID, 1, 10000, 200, 0x06, H("200041599997"), 0x57,
                                                   dt.datetime(2025, 3, 14, 8, 30)))
    assert data == H("3640000100000042 40C2AB5C 0001 00002710 000000C8 06 200041599997 00000057 20250314083000")
    assert PURCHASE_MAC_DATA.size == 40
    card_key = tdes(TAC_MASTER, CARD) + tdes(TAC_MASTER, invert(CARD))
    assert card_key == H("214A2C699FAF555650112189E4E00911")
    assert purchase_mac(TdesKey(card_key), data) == retail_mac(card_key, data) == H("B67AFE80")
