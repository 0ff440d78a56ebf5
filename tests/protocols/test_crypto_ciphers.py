"""Key objects: block operations against a fresh-context reference, CBC chaining across calls, lengths, secrecy."""

from __future__ import annotations

import copy
import pickle
import warnings

import pytest
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given
from hypothesis import strategies as st

from protocols.crypto import ciphers
from protocols.crypto.ciphers import DesKey, Sm4Key, TdesKey, TripleDES  # TripleDES: where this release keeps it
from protocols.errors import ProtocolError, YktError
from protocols.hexutil import parse_hex

KEY_TYPES = (DesKey, TdesKey, Sm4Key)


def reference_algorithm(key_type: type, raw: bytes):
    """What each key class means, spelled out with cryptography directly."""
    if key_type is DesKey:
        return TripleDES(raw * 3)
    if key_type is TdesKey:
        return TripleDES(raw + raw[:8])
    return algorithms.SM4(raw)


def reference_cbc_last(key_type: type, raw: bytes, data: bytes, iv: bytes) -> bytes:
    enc = Cipher(reference_algorithm(key_type, raw), modes.CBC(iv)).encryptor()
    return (enc.update(data) + enc.finalize())[-key_type.block_size:]


@st.composite
def keys_and_blocks(draw, max_blocks: int = 4):
    key_type = draw(st.sampled_from(KEY_TYPES))
    raw = draw(st.binary(min_size=key_type.key_size, max_size=key_type.key_size))
    n = draw(st.integers(1, max_blocks))
    data = draw(st.binary(min_size=n * key_type.block_size, max_size=n * key_type.block_size))
    return key_type, raw, data


@given(keys_and_blocks())
def test_encrypt_matches_reference_and_decrypt_inverts(case):
    key_type, raw, data = case
    key = key_type(raw)
    enc = Cipher(reference_algorithm(key_type, raw), modes.ECB()).encryptor()
    ciphertext = key.encrypt(data)
    assert ciphertext == enc.update(data)
    assert key.decrypt(ciphertext) == data
    assert key.encrypt(data) == ciphertext  # the kept context is stateless in ECB


def test_des_decrypts_the_classic_example():
    assert DesKey(parse_hex("133457799BBCDFF1")).decrypt(parse_hex("85E813540F0AB405")) == parse_hex("0123456789ABCDEF")


@given(st.sampled_from(KEY_TYPES), st.data())
def test_cbc_chains_restart_correctly_across_calls(key_type, data):
    """One kept CBC context serves a sequence of chains with different IVs, each equal to a fresh computation."""
    raw = data.draw(st.binary(min_size=key_type.key_size, max_size=key_type.key_size))
    key = key_type(raw)
    bs = key_type.block_size
    for _ in range(data.draw(st.integers(1, 5))):
        n = data.draw(st.integers(1, 4))
        message = data.draw(st.binary(min_size=n * bs, max_size=n * bs))
        iv = data.draw(st.none() | st.binary(min_size=bs, max_size=bs))
        assert key.cbc_last(message, iv) == reference_cbc_last(key_type, raw, message, iv or bytes(bs))


def test_rejected_call_leaves_the_chain_intact():
    key = DesKey(bytes(range(8)))
    message = bytes(range(16))
    first = key.cbc_last(message)
    with pytest.raises(ProtocolError):
        key.cbc_last(message, b"\x01" * 7)
    with pytest.raises(ProtocolError):
        key.cbc_last(message[:9])
    assert key.cbc_last(message) == first


def test_two_key_3des_with_equal_halves_is_single_des():
    half = parse_hex("0123456789ABCDEF")
    block = parse_hex("4E6F772069732074")
    assert TdesKey(half + half).encrypt(block) == DesKey(half).encrypt(block)


def test_left_and_xor_halves():
    key = TdesKey(parse_hex("00112233445566778899AABBCCDDEEFF"))
    block = bytes(8)
    assert key.left.encrypt(block) == DesKey(parse_hex("0011223344556677")).encrypt(block)
    assert key.left is key.left  # made once, kept
    assert key.xor_halves().export() == parse_hex("8888888888888888")


@pytest.mark.parametrize("key_type", KEY_TYPES)
@pytest.mark.parametrize("bad", [b"", b"\x01", "0123456789ABCDEF", 1234, None])
def test_bad_keys_are_protocol_errors(key_type, bad):
    with pytest.raises(ProtocolError, match=f"{key_type.__name__} key must be {key_type.key_size} bytes"):
        key_type(bad)


@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_wrong_key_length_by_one(key_type):
    for n in (key_type.key_size - 1, key_type.key_size + 1):
        with pytest.raises(ProtocolError, match=f"got {n} bytes"):
            key_type(bytes(n))


@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_bad_block_lengths_are_protocol_errors(key_type):
    key = key_type(bytes(key_type.key_size))
    for data in (b"", bytes(key_type.block_size - 1), bytes(key_type.block_size + 1), "x" * key_type.block_size):
        for op in (key.encrypt, key.decrypt, key.cbc_last):
            with pytest.raises(ProtocolError):
                op(data)


def test_bytearray_is_accepted():
    raw = bytearray(range(16))
    assert TdesKey(raw).encrypt(bytearray(8)) == TdesKey(bytes(raw)).encrypt(bytes(8))


SECRET = parse_hex("0123456789ABCDEFFEDCBA9876543210")


@pytest.mark.parametrize("key_type", (TdesKey, Sm4Key))
def test_repr_and_str_hide_the_key(key_type):
    key = key_type(SECRET)
    kcv = key.encrypt(bytes(key.block_size))[:3]
    for text in (repr(key), str(key), f"{key}", repr([key])):
        assert SECRET.hex() not in text.lower()
        assert SECRET[:4].hex() not in text.lower()
    assert repr(key) == f"{key_type.__name__}(kcv={kcv.hex().upper()})"
    assert key.check_value() == kcv


def test_error_messages_never_quote_key_bytes():
    secret = SECRET[:15]
    with pytest.raises(ProtocolError) as err:
        TdesKey(secret)
    assert secret.hex() not in str(err.value).lower()
    assert secret[:4].hex() not in str(err.value).lower()


@pytest.mark.parametrize("clone", [copy.copy, copy.deepcopy, lambda k: pickle.loads(pickle.dumps(k))])
def test_copies_are_independent(clone):
    key = DesKey(bytes(range(8)))
    message = bytes(range(24))
    expected = key.cbc_last(message)
    twin = clone(key)
    assert twin is not key
    assert twin.cbc_last(message) == expected
    assert key.cbc_last(message) == expected  # the original's chain was not disturbed by the copy's use


def test_no_deprecation_warning_from_any_key():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for key_type in KEY_TYPES:
            key = key_type(bytes(key_type.key_size))
            key.encrypt(bytes(key.block_size))
            key.decrypt(bytes(key.block_size))
            key.cbc_last(bytes(key.block_size))
        TdesKey(bytes(16)).left.cbc_last(bytes(8))


class CountingCipher:
    """Stands in for cryptography's Cipher and counts the contexts made."""

    made = 0

    def __init__(self, algorithm, mode):
        self._cipher = Cipher(algorithm, mode)

    def encryptor(self):
        CountingCipher.made += 1
        return self._cipher.encryptor()

    def decryptor(self):
        CountingCipher.made += 1
        return self._cipher.decryptor()


@pytest.fixture
def counting(monkeypatch):
    CountingCipher.made = 0
    monkeypatch.setattr(ciphers, "Cipher", CountingCipher)
    return CountingCipher


def test_contexts_are_made_once_and_lazily(counting):
    key = TdesKey(SECRET)
    assert counting.made == 0  # a key nobody uses costs no context
    for i in range(1000):
        key.encrypt(i.to_bytes(8, "big"))
    assert counting.made == 1
    for i in range(1000):
        key.cbc_last(i.to_bytes(16, "big"))
    assert counting.made == 2
    key.decrypt(bytes(8))
    key.decrypt(bytes(8))
    assert counting.made == 3


def test_unsupported_cipher_is_a_project_error(monkeypatch):
    def refuse(algorithm, mode):
        raise UnsupportedAlgorithm("not in this build")

    monkeypatch.setattr(ciphers, "Cipher", refuse)
    key = Sm4Key(bytes(16))
    with pytest.raises(YktError, match="not available"):
        key.encrypt(bytes(16))
