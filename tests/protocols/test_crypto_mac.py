"""ISO 9797-1 method 2 padding and the PBOC MACs, held to definitions written out with fresh cipher contexts."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given
from hypothesis import strategies as st

from protocols.crypto.ciphers import DesKey, Sm4Key, TdesKey, TripleDES  # TripleDES: where this release keeps it
from protocols.crypto.mac import line_protection_mac, mac_block, macs_equal, pboc_mac
from protocols.crypto.padding import pad, unpad
from protocols.errors import ProtocolError
from protocols.hexutil import parse_hex

blocks = st.sampled_from((8, 16))


# --- padding --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("data,block,padded", [
    ("", 8, "8000000000000000"),
    ("00001000", 8, "0000100080000000"),
    ("11223344556677", 8, "1122334455667780"),
    ("1122334455667788", 8, "11223344556677888000000000000000"),
    ("1122334455667788", 16, "11223344556677888000000000000000"),
    ("841E000004", 8, "841E000004800000"),
])
def test_pad_examples(data, block, padded):
    assert pad(parse_hex(data), block) == parse_hex(padded)
    assert unpad(parse_hex(padded), block) == parse_hex(data)


@given(st.binary(max_size=80), blocks)
def test_pad_round_trips_and_is_whole_blocks(data, block):
    padded = pad(data, block)
    assert len(padded) % block == 0
    assert 1 <= len(padded) - len(data) <= block
    assert padded.startswith(data)
    assert unpad(padded, block) == data


@given(st.binary(max_size=40), blocks)
def test_unpad_of_random_bytes_returns_or_raises_protocol_error(data, block):
    try:
        body = unpad(data, block)
    except ProtocolError:
        return
    assert pad(body, block) == data  # whatever unpad accepts is exactly a padding


@pytest.mark.parametrize("bad", ["", "1122334455667788", "11223344556677", "8000000000000000" "0000000000000000",
                                 "1122334455668001"])
def test_unpad_refuses_what_pad_cannot_make(bad):
    with pytest.raises(ProtocolError):
        unpad(parse_hex(bad), 8)


@pytest.mark.parametrize("block", [0, -8, 17])
def test_pad_refuses_impossible_block_sizes(block):
    with pytest.raises(ProtocolError, match="block size"):
        pad(b"x", block)
    with pytest.raises(ProtocolError, match="block size"):
        unpad(b"\x80" * 8, block)


def test_pad_refuses_non_bytes():
    with pytest.raises(ProtocolError, match="must be bytes"):
        pad("text")


# --- MAC definitions, spelled out with cryptography directly --------------------------------------------------------

def ecb(algorithm, block: bytes, *, decrypt: bool = False) -> bytes:
    cipher = Cipher(algorithm, modes.ECB())
    ctx = cipher.decryptor() if decrypt else cipher.encryptor()
    return ctx.update(block)


def xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def cbc_mac_definition(algorithm, data: bytes, iv: bytes) -> bytes:
    bs = len(iv)
    h = iv
    for i in range(0, len(data), bs):
        h = ecb(algorithm, xor(h, data[i:i + bs]))
    return h


def retail_mac_definition(raw: bytes, data: bytes, iv: bytes) -> bytes:
    """ISO/IEC 9797-1 MAC algorithm 3: DES-CBC under K, then decrypt under K', encrypt under K."""
    left, right = TripleDES(raw[:8] * 3), TripleDES(raw[8:] * 3)
    h = cbc_mac_definition(left, data, iv)
    return ecb(left, ecb(right, h, decrypt=True))


@given(st.binary(min_size=8, max_size=8), st.binary(max_size=64), st.binary(min_size=8, max_size=8))
def test_des_mac_is_des_cbc_mac(raw, data, iv):
    expected = cbc_mac_definition(TripleDES(raw * 3), pad(data), iv)
    assert mac_block(DesKey(raw), data, iv=iv) == expected
    assert pboc_mac(DesKey(raw), data, iv=iv) == expected[:4]


@given(st.binary(min_size=16, max_size=16), st.binary(max_size=64), st.binary(min_size=8, max_size=8))
def test_3des_mac_is_iso9797_algorithm_3(raw, data, iv):
    key = TdesKey(raw)
    assert mac_block(key, data, iv=iv) == retail_mac_definition(raw, pad(data), iv)


@given(st.binary(min_size=16, max_size=16), st.binary(max_size=64), st.binary(min_size=16, max_size=16))
def test_sm4_mac_is_sm4_cbc_mac_over_16_byte_blocks(raw, data, iv):
    expected = cbc_mac_definition(algorithms.SM4(raw), pad(data, 16), iv)
    assert mac_block(Sm4Key(raw), data, iv=iv) == expected
    assert len(expected) == 16


@given(st.data())
def test_mac_of_random_data_never_raises(data):
    key_type = data.draw(st.sampled_from((DesKey, TdesKey, Sm4Key)))
    key = key_type(data.draw(st.binary(min_size=key_type.key_size, max_size=key_type.key_size)))
    message = data.draw(st.binary(max_size=200))
    use_iv = data.draw(st.booleans())
    iv = data.draw(st.binary(min_size=key.block_size, max_size=key.block_size)) if use_iv else None
    assert len(pboc_mac(key, message, iv=iv)) == 4
    assert len(mac_block(key, message, iv=iv)) == key.block_size
    unpadded = data.draw(st.integers(1, 6)) * key.block_size
    assert len(mac_block(key, bytes(unpadded), iv=iv, pad=False)) == key.block_size


def test_retail_mac_with_equal_halves_is_the_des_mac():
    half = parse_hex("0123456789ABCDEF")
    data = b"Now is the time for all "
    assert mac_block(TdesKey(half + half), data) == mac_block(DesKey(half), data)


def test_zero_iv_is_the_default():
    key = TdesKey(parse_hex("0123456789ABCDEFFEDCBA9876543210"))
    assert pboc_mac(key, b"abc") == pboc_mac(key, b"abc", iv=bytes(8))


@pytest.mark.parametrize("key", [DesKey(bytes(8)), TdesKey(bytes(16)), Sm4Key(bytes(16))], ids=repr)
@pytest.mark.parametrize("data", [b"", b"\x01" * 7, b"\x01" * 9, "text-of-8"])
def test_unpadded_data_must_be_whole_blocks(key, data):
    with pytest.raises(ProtocolError):
        mac_block(key, data, pad=False)


@pytest.mark.parametrize("key", [DesKey(bytes(8)), TdesKey(bytes(16)), Sm4Key(bytes(16))], ids=repr)
def test_wrong_iv_length(key):
    with pytest.raises(ProtocolError, match="IV must be"):
        pboc_mac(key, b"data", iv=bytes(key.block_size - 1))


def test_line_protection_mac_takes_a_4_or_8_byte_challenge():
    key = TdesKey(parse_hex("404142434445464748494A4B4C4D4E4F"))
    command = parse_hex("841E000004")
    assert line_protection_mac(key, parse_hex("AABBCCDD"), command) == parse_hex("9445D2D6")
    assert line_protection_mac(key, parse_hex("AABBCCDD00000000"), command) == parse_hex("9445D2D6")
    assert pboc_mac(key, command, iv=parse_hex("AABBCCDD00000000")) == parse_hex("9445D2D6")
    for bad in (b"", b"\x01" * 3, b"\x01" * 5, b"\x01" * 16):
        with pytest.raises(ProtocolError, match="challenge"):
            line_protection_mac(key, bad, command)
    with pytest.raises(ProtocolError, match="3DES key"):
        line_protection_mac(DesKey(bytes(8)), parse_hex("AABBCCDD"), command)


def test_macs_equal():
    assert macs_equal(parse_hex("F15CAB75"), parse_hex("F15CAB75"))
    assert not macs_equal(parse_hex("F15CAB75"), parse_hex("F15CAB74"))
    assert not macs_equal(parse_hex("F15CAB75"), parse_hex("F15CAB"))
    with pytest.raises(ProtocolError):
        macs_equal("F15CAB75", parse_hex("F15CAB75"))
