"""BER-TLV: exact bytes for the forms cards use, tolerant parsing, typed errors, and round-trip properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols import tlv
from protocols.errors import ProtocolError
from protocols.hexutil import parse_hex
from protocols.tlv import Tlv

# Spec §1.1: a Shanghai T-Union card's answer to SELECT A000000632010105.
SAMPLE_FCI = parse_hex("6F31 8408A000000632010105 A525 9F080102 9F0C1E 02002900FFFFFFFF 02 01 03104770040067442802 "
                       "20200115 20401231 0114")
FILE15 = parse_hex("02002900FFFFFFFF 02 01 03104770040067442802 20200115 20401231 0114")


def test_sample_fci_parses_into_the_expected_tree():
    fci = tlv.parse_one(SAMPLE_FCI)
    assert fci == Tlv.constructed(
        0x6F,
        Tlv.primitive(0x84, parse_hex("A000000632010105")),
        Tlv.constructed(0xA5, Tlv.primitive(0x9F08, b"\x02"), Tlv.primitive(0x9F0C, FILE15)),
    )
    assert fci.is_constructed and fci.value == SAMPLE_FCI[2:]
    assert fci.lookup(0xA5, 0x9F0C).value == FILE15
    assert not fci.lookup(0x84).is_constructed
    assert tlv.build([fci]) == fci.to_bytes() == SAMPLE_FCI


@pytest.mark.parametrize("size,length_field", [
    (0, "00"), (1, "01"), (127, "7F"), (128, "8180"), (255, "81FF"), (256, "820100"), (65535, "82FFFF"),
    (65536, "83010000"), (0x123456, "83123456"),
])
def test_length_forms(size: int, length_field: str):
    value = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    raw = parse_hex("53" + length_field) + value
    assert tlv.length_bytes(size) == parse_hex(length_field)
    assert Tlv.primitive(0x53, value).to_bytes() == raw
    assert tlv.parse(raw) == (Tlv.primitive(0x53, value),)


def test_four_byte_length_field_is_read():
    assert tlv.parse(parse_hex("53 84 00000002 ABCD")) == (Tlv.primitive(0x53, b"\xAB\xCD"),)


@pytest.mark.parametrize("tag,encoded", [
    (0x84, "84"), (0x9F0C, "9F0C"), (0xBF0C, "BF0C"), (0x5F2D, "5F2D"), (0xDF8101, "DF8101"), (0x9F818001, "9F818001"),
    (0x1F20, "1F20"),  # universal class, number 32
])
def test_tags(tag: int, encoded: str):
    assert tlv.tag_bytes(tag) == parse_hex(encoded)
    node = Tlv.constructed(tag) if tlv.constructed_tag(tag) else Tlv.primitive(tag, b"\x01")
    assert tlv.parse_one(node.to_bytes()) == node


def test_constructed_bit_is_read_from_the_first_tag_byte():
    assert tlv.constructed_tag(0x6F) and tlv.constructed_tag(0xA5) and tlv.constructed_tag(0xBF0C)
    assert tlv.constructed_tag(0x61) and tlv.constructed_tag(0x7F21)
    assert not tlv.constructed_tag(0x84) and not tlv.constructed_tag(0x9F0C) and not tlv.constructed_tag(0xDF8101)


def test_unknown_tags_are_kept_raw_in_order():
    raw = parse_hex("6F14 C1 02 ABCD 84 01 01 E2 05 DF8101 01 FF 9F7F 03 010203")
    node = tlv.parse_one(raw)
    assert [c.tag for c in node.children] == [0xC1, 0x84, 0xE2, 0x9F7F]
    assert node.child(0xE2).children == (Tlv.primitive(0xDF8101, b"\xFF"),)
    assert node.to_bytes() == raw


def test_empty_constructed_and_empty_input():
    assert tlv.parse(b"") == ()
    assert tlv.parse_one(parse_hex("A500")) == Tlv.constructed(0xA5)
    assert Tlv.constructed(0xA5).to_bytes() == parse_hex("A500")


def test_non_minimal_lengths_are_accepted_and_normalised():
    nested = parse_hex("6F 0B 84 81 05 0102030405 A5 81 00")
    node = tlv.parse_one(nested)
    assert node == Tlv.constructed(0x6F, Tlv.primitive(0x84, parse_hex("0102030405")), Tlv.constructed(0xA5))
    assert node.value == parse_hex("84050102030405 A500")  # the container's value is re-encoded in minimal form
    assert node.to_bytes() == parse_hex("6F09 84050102030405 A500")
    assert tlv.parse_one(node.to_bytes()) == node
    assert tlv.build(tlv.parse(parse_hex("84 82 0003 AABBCC"))) == parse_hex("8403AABBCC")


def test_padding_between_objects_is_skipped():
    raw = parse_hex("00 84 01 AA FF FF A5 05 00 85 01 BB 00 00")
    assert tlv.parse(raw) == (Tlv.primitive(0x84, b"\xAA"), Tlv.constructed(0xA5, Tlv.primitive(0x85, b"\xBB")))
    assert tlv.build(tlv.parse(raw)) == parse_hex("8401AA A503 8501BB")
    assert tlv.parse_one(parse_hex("8401AA 0000")) == Tlv.primitive(0x84, b"\xAA")


@pytest.mark.parametrize("raw,message", [
    ("9F", "cut short"),  # multi-byte tag with nothing after its first byte
    ("9F81", "cut short"),  # continuation byte promises more
    ("BF0C", "no length"),
    ("84", "no length"),
    ("8481", "cut short"),
    ("848201", "cut short"),
    ("8405 01020304", "run past the end"),
    ("6F05 8405 0102", "run past the end"),  # inner value past the container's end
    ("6F03 8405 01020304", "run past the end"),  # inner value fits the data but not the container
    ("A580 8401AA 0000", "indefinite"),
    ("84 85 0000000001 AA", "5-byte length"),
    ("9F81818101 00", "longer than 4 bytes"),
])
def test_malformed_input_is_a_protocol_error(raw: str, message: str):
    with pytest.raises(ProtocolError, match=message):
        tlv.parse(parse_hex(raw))


def test_nesting_limit():
    def nested(levels: int) -> bytes:
        raw = b""
        for _ in range(levels):
            raw = Tlv.constructed(0xA5, *tlv.parse(raw)).to_bytes()
        return raw

    assert tlv.parse_one(nested(tlv.MAX_DEPTH)).tag == 0xA5
    with pytest.raises(ProtocolError, match="deeper"):
        tlv.parse(nested(tlv.MAX_DEPTH + 1))
    hostile = b""
    for _ in range(5000):  # far deeper than Python's stack allows: refused at the limit, not with RecursionError
        hostile = b"\x60\x82" + len(hostile).to_bytes(2, "big") + hostile
    with pytest.raises(ProtocolError, match="deeper"):
        tlv.parse(hostile)


def test_parse_one_wants_exactly_one_object():
    with pytest.raises(ProtocolError, match="found 0"):
        tlv.parse_one(b"")
    with pytest.raises(ProtocolError, match="found 2"):
        tlv.parse_one(parse_hex("8401AA 8401BB"))


@pytest.mark.parametrize("make", [
    lambda: Tlv.primitive(0, b""),
    lambda: Tlv.primitive(0xFF01, b""),  # FF is padding, never a tag's first byte
    lambda: Tlv.primitive(0x1F, b""),  # announces a second byte
    lambda: Tlv.primitive(0x9F80, b""),  # last byte says more follows
    lambda: Tlv.primitive(0x9F0080, b""),  # middle byte says nothing follows
    lambda: Tlv.primitive(0x0184, b""),  # one-byte tag number with a leading byte
    lambda: Tlv.primitive(0x9F81818101, b""),  # five bytes
    lambda: Tlv.primitive(-1, b""),
    lambda: Tlv.primitive(0x84, "text"),
    lambda: Tlv.primitive(0x84, bytearray(b"a")),
    lambda: Tlv(0x6F, b""),  # constructed tag without children
    lambda: Tlv(0x84, b"", ()),  # primitive tag with children
    lambda: Tlv(0x6F, b"", [Tlv.primitive(0x84, b"")]),  # children must be a tuple
    lambda: Tlv(0x6F, b"", ("84",)),
    lambda: Tlv.constructed(0x6F, "84"),
    lambda: Tlv.constructed(0x84, Tlv.primitive(0x84, b"")),
])
def test_invalid_nodes_are_refused(make):
    with pytest.raises(ProtocolError):
        make()


def test_lookup_helpers():
    node = tlv.parse_one(parse_hex("6F13 8401AA A50E 8701 01 BF0C08 6106 4F01BB 8701 02"))
    assert node.child(0x84).value == b"\xAA"
    assert node.child(0x87) is None  # only direct children
    assert node.lookup(0xA5, 0x87).value == b"\x01"
    assert node.lookup(0xA5, 0x99, 0x87) is None
    assert node.lookup() is node
    assert node.find(0x4F).value == b"\xBB"
    assert [n.value for n in node.find_all(0x87)] == [b"\x01", b"\x02"]  # depth first, card order
    assert node.find(0x6F) is None  # below the node only
    assert tlv.find([node], 0x6F) is node
    assert tlv.find(tlv.parse(parse_hex("8401AA A503 8701 05")), 0x87).value == b"\x05"
    assert tlv.find([], 0x84) is None


def test_repr_shows_hex():
    assert repr(tlv.parse_one(parse_hex("6F05 8401AA A500"))) == "Tlv(6F, [Tlv(84, AA), Tlv(A5, [])])"
    assert repr(Tlv.primitive(0x9F0C, b"")) == "Tlv(9F0C, -)"


def test_length_too_large_to_encode():
    with pytest.raises(ProtocolError):
        tlv.length_bytes(1 << 32)


# --- properties -----------------------------------------------------------------------------------------------------

_FIRST_BYTES = [b for b in range(1, 0xFF) if b & 0x1F != 0x1F]
_MULTI_FIRST = [b for b in range(0x1F, 0xFF, 0x20)]


def tags(constructed: bool) -> st.SearchStrategy[int]:
    flag = lambda b: bool(b & 0x20) == constructed  # noqa: E731
    single = st.sampled_from([b for b in _FIRST_BYTES if flag(b)])
    multi = st.builds(
        lambda first, middle, last: int.from_bytes(bytes([first, *middle, last]), "big"),
        st.sampled_from([b for b in _MULTI_FIRST if flag(b)]),
        st.lists(st.integers(0x80, 0xFF), max_size=2),
        st.integers(0, 0x7F),
    )
    return st.one_of(single, multi)


values = st.one_of(st.binary(max_size=16), st.binary(min_size=120, max_size=300))
primitives = st.builds(Tlv.primitive, tags(False), values)
trees = st.recursive(
    primitives,
    lambda children: st.builds(lambda tag, kids: Tlv.constructed(tag, *kids), tags(True),
                               st.lists(children, max_size=4)),
    max_leaves=10,
)


@given(st.lists(trees, max_size=4))
def test_build_then_parse_is_identity(nodes: list[Tlv]):
    raw = tlv.build(nodes)
    assert tlv.parse(raw) == tuple(nodes)
    assert tlv.build(tlv.parse(raw)) == raw


@given(trees, st.data())
def test_truncated_or_extended_object_is_a_protocol_error(node: Tlv, data):
    raw = node.to_bytes()
    cut = data.draw(st.integers(0, len(raw) - 1), label="cut")
    with pytest.raises(ProtocolError):
        tlv.parse_one(raw[:cut])
    extra = data.draw(st.binary(min_size=1, max_size=4).filter(lambda b: b[0] not in (0x00, 0xFF)), label="extra")
    with pytest.raises(ProtocolError):
        tlv.parse_one(raw + extra)


@settings(max_examples=500)
@given(st.one_of(st.binary(max_size=64), st.lists(trees, max_size=3).map(tlv.build).flatmap(
    lambda raw: st.binary(max_size=3).map(lambda noise: raw[:len(raw) // 2] + noise + raw[len(raw) // 2:]))))
def test_random_bytes_parse_or_raise_protocol_error(raw: bytes):
    try:
        nodes = tlv.parse(raw)
    except ProtocolError:
        return
    stack = list(nodes)
    while stack:  # the parser's unchecked nodes pass the constructor's checks
        node = stack.pop()
        assert Tlv(node.tag, node.value, node.children) == node
        stack.extend(node.children or ())
    canonical = tlv.build(nodes)
    assert tlv.parse(canonical) == nodes
    assert tlv.build(tlv.parse(canonical)) == canonical
