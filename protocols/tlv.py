"""BER-TLV as ISO/IEC 7816-4 and EMV use it in FCIs and directory records.

Parsing is tolerant in the ways real cards need: a tag nobody here knows is kept as a raw node (never an error), and
the ``00``/``FF`` padding ISO 7816-4 allows before, between and after data objects is skipped. It is strict where the
bytes cannot be read: a truncated tag or length, a value running past its container, the indefinite length form and
nesting deeper than :data:`MAX_DEPTH` raise :class:`ProtocolError`.

Encoding is exact for canonical input: ``build(parse(b)) == b`` when every length uses its shortest form and there is
no padding. A non-minimal length (``81 05`` for 5, say) is accepted and the tree is normalised: the enclosing
constructed values are re-encoded with minimal lengths, so ``build`` gives the canonical (DER-length) form, and
``parse(build(parse(b))) == parse(b)`` always holds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from .errors import ProtocolError

MAX_DEPTH = 16
"""Deepest nesting of constructed objects accepted; FCIs use three levels (6F/A5/BF0C/61)."""

MAX_TAG_BYTES = 4
_PADDING = (0x00, 0xFF)
_CONSTRUCTED = 0x20


def tag_bytes(tag: int) -> bytes:
    """The encoding of ``tag``, checked: a first byte that says "more follows" (low 5 bits 11111) must be followed by
    bytes with bit 8 set up to a last one with bit 8 clear; a first byte of ``00`` or ``FF`` is padding, not a tag."""
    if not isinstance(tag, int) or tag <= 0 or tag >= 1 << (8 * MAX_TAG_BYTES):
        raise ProtocolError(f"TLV tag must be 1 to {MAX_TAG_BYTES} bytes, got {tag!r}")
    raw = tag.to_bytes((tag.bit_length() + 7) // 8, "big")
    first = raw[0]
    if first in _PADDING:
        raise ProtocolError(f"TLV tag {raw.hex().upper()}: a first byte of 00 or FF is padding, not a tag")
    if first & 0x1F != 0x1F:
        if len(raw) != 1:
            raise ProtocolError(f"TLV tag {raw.hex().upper()}: first byte {first:02X} announces a one-byte tag")
    elif len(raw) == 1 or any(b & 0x80 == 0 for b in raw[1:-1]) or raw[-1] & 0x80:
        raise ProtocolError(f"TLV tag {raw.hex().upper()}: malformed multi-byte tag")
    return raw


def length_bytes(length: int) -> bytes:
    """The shortest BER length field for ``length``: one byte up to 127, else ``81``/``82``/``83``/``84`` and the
    value."""
    if length < 0x80:
        return bytes((length,))
    n = (length.bit_length() + 7) // 8
    if n > 4:
        raise ProtocolError(f"TLV value of {length} bytes is too long to encode")
    return bytes((0x80 | n,)) + length.to_bytes(n, "big")


def constructed_tag(tag: int) -> bool:
    """Bit 6 of a tag's first byte marks a constructed object, whose value is itself a series of TLVs."""
    return bool((tag >> (8 * ((tag.bit_length() - 1) // 8))) & _CONSTRUCTED)


@dataclass(frozen=True, slots=True)
class Tlv:
    """One data object. ``value`` is the raw content; ``children`` is the parsed content of a constructed object
    (``None`` for a primitive one). Make nodes with :meth:`primitive` and :meth:`constructed`, which keep the two in
    step; the constructor only checks the tag and that ``children`` matches the tag's constructed bit.
    """

    tag: int
    value: bytes
    children: tuple[Tlv, ...] | None = None

    def __post_init__(self) -> None:
        tag_bytes(self.tag)
        if not isinstance(self.value, bytes):
            raise ProtocolError(f"TLV {self.tag:X}: value must be bytes, got {type(self.value).__name__}")
        if self.children is None:
            if constructed_tag(self.tag):
                raise ProtocolError(f"TLV tag {self.tag:X} is constructed: its children must be given")
        elif not constructed_tag(self.tag):
            raise ProtocolError(f"TLV tag {self.tag:X} is primitive: it cannot have children")
        else:
            _check_children(self.tag, self.children)

    @classmethod
    def primitive(cls, tag: int, value: bytes) -> Tlv:
        return cls(tag, value)

    @classmethod
    def constructed(cls, tag: int, *children: Tlv) -> Tlv:
        return cls(tag, build(_check_children(tag, children)), children)

    @property
    def is_constructed(self) -> bool:
        return self.children is not None

    def to_bytes(self) -> bytes:
        return tag_bytes(self.tag) + length_bytes(len(self.value)) + self.value

    def child(self, tag: int) -> Tlv | None:
        """The first direct child with ``tag``."""
        for node in self.children or ():
            if node.tag == tag:
                return node
        return None

    def lookup(self, *path: int) -> Tlv | None:
        """Follow direct children tag by tag: ``fci.lookup(0xA5, 0x9F0C)``; ``None`` if any step is missing."""
        node: Tlv | None = self
        for tag in path:
            node = node.child(tag) if node is not None else None
        return node

    def find(self, tag: int) -> Tlv | None:
        """The first object with ``tag`` anywhere below this one, depth first in card order."""
        return next(self._walk(tag), None)

    def find_all(self, tag: int) -> list[Tlv]:
        """Every object with ``tag`` below this one, depth first in card order."""
        return list(self._walk(tag))

    def _walk(self, tag: int) -> Iterator[Tlv]:
        for node in self.children or ():
            if node.tag == tag:
                yield node
            yield from node._walk(tag)

    def __repr__(self) -> str:
        if self.children is None:
            return f"Tlv({self.tag:X}, {self.value.hex().upper() or '-'})"
        return f"Tlv({self.tag:X}, [{', '.join(map(repr, self.children))}])"


def parse(data: bytes) -> tuple[Tlv, ...]:
    """A series of data objects (possibly empty); padding between them is skipped."""
    data = bytes(data)
    nodes, _ = _parse(data, 0, len(data), 0)
    return tuple(nodes)


def parse_one(data: bytes) -> Tlv:
    """Exactly one data object, as in a SELECT response; anything but padding around it is an error."""
    nodes = parse(data)
    if len(nodes) != 1:
        raise ProtocolError(f"expected one TLV object, found {len(nodes)}")
    return nodes[0]


def build(nodes: Iterable[Tlv]) -> bytes:
    """The concatenated encodings of ``nodes``, lengths in shortest form."""
    return b"".join(node.to_bytes() for node in nodes)


def find(nodes: Iterable[Tlv], tag: int) -> Tlv | None:
    """The first object with ``tag`` among ``nodes`` or anywhere below them, depth first in order."""
    for node in nodes:
        if node.tag == tag:
            return node
        found = node.find(tag)
        if found is not None:
            return found
    return None


def _check_children(tag: int, children: object) -> tuple[Tlv, ...]:
    if not isinstance(children, tuple) or not all(isinstance(c, Tlv) for c in children):
        raise ProtocolError(f"TLV {tag:X}: children must be a tuple of Tlv")
    return children


_new_node = object.__new__
_set_tag: Callable[[Tlv, int], None] = Tlv.__dict__["tag"].__set__
_set_value: Callable[[Tlv, bytes], None] = Tlv.__dict__["value"].__set__
_set_children: Callable[[Tlv, tuple[Tlv, ...] | None], None] = Tlv.__dict__["children"].__set__
"""The parser makes its nodes through the slots' descriptors, which the frozen class's ``__setattr__`` would refuse:
it has already established what ``Tlv.__post_init__`` checks, and an FCI is parsed on every tap."""


def _parse(data: bytes, pos: int, end: int, depth: int) -> tuple[list[Tlv], bool]:
    """Parse ``data[pos:end]``; also say whether it was canonical (minimal lengths, no padding)."""
    nodes: list[Tlv] = []
    canonical = True
    while pos < end:
        first = data[pos]
        if first == 0x00 or first == 0xFF:  # _PADDING
            pos += 1
            canonical = False
            continue
        start, pos = pos, pos + 1
        if first & 0x1F == 0x1F:
            while True:
                if pos >= end:
                    raise ProtocolError(f"TLV tag at offset {start} is cut short")
                pos += 1
                if not data[pos - 1] & 0x80:
                    break
                if pos - start >= MAX_TAG_BYTES:
                    raise ProtocolError(f"TLV tag at offset {start} is longer than {MAX_TAG_BYTES} bytes")
            tag = int.from_bytes(data[start:pos], "big")
        else:
            tag = first
        if pos >= end:
            raise ProtocolError(f"TLV {tag:X} at offset {start} has no length")
        length = data[pos]
        pos += 1
        if length & 0x80:
            n = length & 0x7F
            if n == 0:
                raise ProtocolError(f"TLV {tag:X} at offset {start}: the indefinite length form is not supported")
            if n > 4:
                raise ProtocolError(f"TLV {tag:X} at offset {start}: a {n}-byte length field is not supported")
            if pos + n > end:
                raise ProtocolError(f"TLV {tag:X} at offset {start}: length field cut short")
            length = int.from_bytes(data[pos:pos + n], "big")
            pos += n
            if length < (0x80 if n == 1 else 1 << (8 * (n - 1))):
                canonical = False
        stop = pos + length
        if stop > end:
            raise ProtocolError(f"TLV {tag:X} at offset {start}: {length} bytes of value run past the end "
                                f"({end - pos} left)")
        value = data[pos:stop]
        node = _new_node(Tlv)
        _set_tag(node, tag)
        if first & _CONSTRUCTED:
            if depth >= MAX_DEPTH:
                raise ProtocolError(f"TLV nesting deeper than {MAX_DEPTH} levels")
            children, inner_canonical = _parse(data, pos, stop, depth + 1)
            if not inner_canonical:
                value = build(children)
                canonical = False
            _set_children(node, tuple(children))
        else:
            _set_children(node, None)
        _set_value(node, value)
        nodes.append(node)
        pos = stop
    return nodes, canonical
