"""Key diversification: the one-level formulas, the order of levels, determinism and typed errors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.crypto.ciphers import DesKey, Sm4Key, TdesKey
from protocols.crypto.keys import diversify, serial_factor
from protocols.errors import ProtocolError
from protocols.hexutil import parse_hex

factors = st.binary(min_size=8, max_size=8)
raw16 = st.binary(min_size=16, max_size=16)


def invert(data: bytes) -> bytes:
    return bytes(b ^ 0xFF for b in data)


@given(raw16, factors)
def test_3des_level_is_two_encryptions(raw, factor):
    master = TdesKey(raw)
    key = diversify(master, factor)
    assert isinstance(key, TdesKey)
    assert key.export() == master.encrypt(factor) + master.encrypt(invert(factor))


@given(raw16, factors)
def test_sm4_level_is_one_block_of_factor_and_complement(raw, factor):
    master = Sm4Key(raw)
    key = diversify(master, factor)
    assert isinstance(key, Sm4Key)
    assert key.export() == master.encrypt(factor + invert(factor))


@given(st.sampled_from((TdesKey, Sm4Key)), raw16, st.lists(factors, min_size=1, max_size=3))
def test_diversify_is_deterministic(key_type, raw, levels):
    assert diversify(key_type(raw), *levels).export() == diversify(key_type(raw), *levels).export()


@given(st.sampled_from((TdesKey, Sm4Key)), raw16, factors, factors, factors)
def test_levels_are_given_lowest_first_and_applied_highest_first(key_type, raw, card, city, province):
    master = key_type(raw)
    stepwise = diversify(diversify(diversify(master, province), city), card)
    assert diversify(master, card, city, province).export() == stepwise.export()


def test_two_level_example_and_its_order():
    mpk = TdesKey(parse_hex("00112233445566778899AABBCCDDEEFF"))
    serial, issuer = parse_hex("4991585000011383"), parse_hex("02403640FFFFFFFF")
    assert diversify(mpk, serial, issuer).export() == parse_hex("1EA06A5CD2621CFB23F65172C5C2A893")
    assert diversify(mpk, issuer, serial).export() != parse_hex("1EA06A5CD2621CFB23F65172C5C2A893")


def test_master_is_not_disturbed():
    mpk = TdesKey(parse_hex("00112233445566778899AABBCCDDEEFF"))
    before = mpk.export()
    diversify(mpk, bytes(8), bytes(8))
    assert mpk.export() == before


@pytest.mark.parametrize("bad", [b"", bytes(7), bytes(9), bytes(16), "49915850", None])
def test_bad_factor_is_protocol_error(bad):
    with pytest.raises(ProtocolError, match="diversification factor must be 8 bytes"):
        diversify(TdesKey(bytes(16)), bad)
    with pytest.raises(ProtocolError, match="diversification factor must be 8 bytes"):
        diversify(Sm4Key(bytes(16)), bytes(8), bad)


def test_no_factor_or_single_des_master_is_protocol_error():
    with pytest.raises(ProtocolError, match="at least one factor"):
        diversify(TdesKey(bytes(16)))
    with pytest.raises(ProtocolError, match="master key"):
        diversify(DesKey(bytes(8)), bytes(8))
    with pytest.raises(ProtocolError, match="master key"):
        diversify(bytes(16), bytes(8))


def test_serial_factor_is_the_last_8_bytes():
    assert serial_factor(parse_hex("03104991585000011383")) == parse_hex("4991585000011383")
    for bad in (bytes(8), bytes(11), "03104991585000011383"):
        with pytest.raises(ProtocolError, match="10 bytes"):
            serial_factor(bad)
