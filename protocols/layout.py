"""Fixed-width message layouts: one construct declaration, three engines.

A :class:`Layout` pairs a frozen dataclass with a construct ``Struct`` of fixed-width fields. The declaration is the
documentation and the reference parser; from it the layout derives

* ``interpreted``: the construct ``Struct`` (ending in ``Terminated``), the reference;
* ``compiled``: ``Struct.compile()``, about 4x faster;
* ``fast``: a :mod:`struct` format derived from the same fields, about 30x faster, used on the purchase hot path.

All three are held to the same behaviour by a differential test. The length is checked before any engine runs, which
also closes the known compiled-construct trap of not checking a ``Bytes`` field's length.
"""

from __future__ import annotations

import dataclasses
import operator
import struct
from collections.abc import Sequence
from typing import Any, Callable, Generic, Literal, TypeVar

import construct as c

from .errors import ProtocolError
from .status import CardStatus

M = TypeVar("M")
Engine = Literal["fast", "compiled", "interpreted"]

_Convert = Callable[[Any], Any] | None


@dataclasses.dataclass(frozen=True)
class _FastField:
    """How one declared field maps onto the derived :mod:`struct` format."""

    name: str | None  # None for a constant
    code: str
    decode: _Convert
    encode: _Convert
    const: bytes | None = None
    width: int | None = None  # byte length to check on build, for byte-string fields

    @property
    def size(self) -> int:
        """The field's bytes on the wire."""
        return struct.calcsize(">" + self.code)


def _fast_field(name: str | None, sub: c.Construct) -> _FastField:
    if isinstance(sub, c.FormatField) and (sub.fmtstr[0] == ">" or sub.length == 1):
        return _FastField(name, sub.fmtstr[1:], None, None)
    if isinstance(sub, c.FormatField) and sub.fmtstr[0] == "<" and sub.fmtstr[1] in "hHiIlLqQ":
        # The derived format has one byte order (big-endian): little-endian integers go through int.from_bytes.
        n, signed = sub.length, sub.fmtstr[1].islower()
        return _FastField(name, f"{n}s", lambda raw: int.from_bytes(raw, "little", signed=signed),
                          lambda v: v.to_bytes(n, "little", signed=signed))
    if isinstance(sub, c.BytesInteger) and isinstance(sub.length, int) and not sub.signed and not sub.swapped:
        n = sub.length
        return _FastField(name, f"{n}s", lambda raw: int.from_bytes(raw, "big"), lambda v: v.to_bytes(n, "big"))
    if isinstance(sub, c.Bytes) and isinstance(sub.length, int):
        return _FastField(name, f"{sub.length}s", None, None, width=sub.length)
    if isinstance(sub, c.Const):
        inner = _fast_field(name, sub.subcon)
        return _FastField(None, inner.code, None, None, const=sub.build(None))
    if isinstance(sub, c.Adapter):
        inner = _fast_field(name, sub.subcon)
        if inner.decode or inner.encode:
            raise TypeError(f"field {name!r}: an adapter over a converted field has no fast path")
        # an adapter that ignores construct's context may hand over its conversions as plain functions
        decode = getattr(sub, "decode_value", None) or (lambda raw: sub._decode(raw, None, None))
        encode = getattr(sub, "encode_value", None) or (lambda v: sub._encode(v, None, None))
        return _FastField(name, inner.code, decode, encode)
    raise TypeError(f"field {name!r}: {type(sub).__name__} is not a fixed-width field")


@dataclasses.dataclass(frozen=True, slots=True)
class PartialParse:
    """What a layout makes of bytes that are not exactly one message: a read cut short, a read longer than the layout,
    or fields whose bytes do not decode (a BCD date that is no date). Nothing is guessed:

    ``values``: the named fields whose bytes are all there and decode, in declaration order; ``invalid``: named fields
    (or ``"constant at byte N"``) whose bytes are there but do not decode, with those bytes and the reason; ``cut``: the
    field the data ends inside, with the bytes of it that are there; ``missing``: the named fields wholly past the end;
    ``extra``: the bytes past the layout's end.
    """

    values: dict[str, Any]
    invalid: dict[str, tuple[bytes, str]]
    cut: tuple[str, bytes] | None
    missing: tuple[str, ...]
    extra: bytes

    @property
    def complete(self) -> bool:
        """Every field there and decoded, nothing left over."""
        return not (self.invalid or self.cut or self.missing or self.extra)


class Layout(Generic[M]):
    """A fixed-size message: parse bytes into ``model`` instances and build them back, exactly."""

    def __init__(self, model: type[M], *fields: c.Construct, examples: tuple[tuple[str, M], ...] = ()) -> None:
        """``fields`` are construct fields named like ``"amount" / Int32ub``; constants may be unnamed.

        ``examples`` are ``(hex, value)`` pairs from the spec or captures; one generic test checks them all.
        """
        self.model = model
        self.name = model.__name__
        self.examples = examples
        self._compiled: c.Compiled | None = None
        plan = [_fast_field(getattr(f, "name", None), f.subcon if isinstance(f, c.Renamed) else f) for f in fields]
        declared = [p.name for p in plan if p.name is not None]
        model_fields = [f.name for f in dataclasses.fields(model)]  # type: ignore[arg-type]
        if declared != model_fields:
            raise TypeError(f"{self.name}: layout fields {declared} do not match the dataclass {model_fields}")
        self.schema = c.Struct(*fields, c.Terminated)
        self.size = c.Struct(*fields).sizeof()
        self._struct = struct.Struct(">" + "".join(p.code for p in plan))
        if self._struct.size != self.size:
            raise TypeError(f"{self.name}: derived format is {self._struct.size} bytes, layout {self.size}")
        self._plan = tuple(plan)
        self._simple = all(p.decode is None and p.const is None for p in plan)
        # The fast engine's work, worked out once: what parse does to the unpacked tuple (constants checked, values
        # decoded, by position in the format), the constants' positions, and what build does to the fields' values
        # (encoded, or byte strings' widths checked, since struct would pad or cut them silently).
        self._decodes = tuple((i, p.decode) for i, p in enumerate(plan) if p.decode is not None)
        self._const_positions = tuple((i, p.const) for i, p in enumerate(plan) if p.const is not None)
        named = [p for p in plan if p.name is not None]
        self._encodes = tuple((i, p.encode) for i, p in enumerate(named) if p.encode is not None)
        self._widths = tuple((i, p.width, p.name) for i, p in enumerate(named) if p.width is not None)
        self._wire_widths = tuple((i, p.size, p.name) for i, p in enumerate(named) if p.code.endswith("s"))
        self._fields = len(declared)
        getter = operator.attrgetter(*declared)
        self._values: Any = getter if len(declared) > 1 else (lambda obj: (getter(obj),))

    def __repr__(self) -> str:
        return f"Layout({self.name}, {self.size} bytes)"

    @property
    def compiled(self) -> c.Compiled:
        if self._compiled is None:
            self._compiled = self.schema.compile()
        return self._compiled

    def _check_size(self, data: bytes) -> None:
        if len(data) != self.size:
            raise ProtocolError(f"{self.name}: expected {self.size} bytes, got {len(data)}", sw=CardStatus.WRONG_LENGTH)

    def parse(self, data: bytes) -> M:
        """Bytes to a model instance (fast engine)."""
        return self.model(*self.values(data))

    def values(self, data: bytes) -> Sequence[Any]:
        """The named fields' values of ``data`` in declaration order, checked and decoded as :meth:`parse` does, without
        the model instance: for a caller that makes its own object of them (a command of its data field)."""
        if len(data) != self.size:
            self._check_size(data)
        raw = self._struct.unpack(data)
        if self._simple:
            return raw
        values = list(raw)
        for i, decode in self._decodes:
            values[i] = decode(values[i])
        if self._const_positions:
            self._drop_constants(values)
        return values

    def _drop_constants(self, values: list[Any]) -> None:
        """Check the constants among the unpacked ``values`` and take them out, leaving the named fields."""
        for i, const in reversed(self._const_positions):
            if values[i] != const:
                raise ProtocolError(f"{self.name}: expected constant {const.hex().upper()}, "
                                    f"got {bytes(values[i]).hex().upper()}")
            del values[i]

    def build(self, obj: M) -> bytes:
        """A model instance to bytes (fast engine)."""
        try:
            values = self._values(obj)
        except AttributeError as exc:
            raise ProtocolError(f"{self.name}: cannot build: {exc}") from None
        return self.pack(*values)

    def pack(self, *values: Any) -> bytes:
        """The bytes of a model with these field values, in declaration order, without making the model instance:
        :meth:`build` with the same checks, for the commands a terminal or a card builds on every tap."""
        if len(values) != self._fields:
            raise ProtocolError(f"{self.name}: cannot build: {self._fields} field values needed, got {len(values)}")
        try:
            for i, width, name in self._widths:  # byte strings: struct would pad or cut them silently
                if len(values[i]) != width:
                    raise ProtocolError(f"{self.name}.{name}: expected {width} bytes, got {len(values[i])}")
            if self._encodes or self._const_positions:  # else the values go to struct as they are
                values = list(values)  # type: ignore[assignment]
                for i, encode in self._encodes:
                    values[i] = encode(values[i])  # type: ignore[index]
                for i, const in self._const_positions:
                    values.insert(i, const)  # type: ignore[attr-defined]
            return self._struct.pack(*values)
        except (struct.error, OverflowError, TypeError, AttributeError) as exc:
            raise ProtocolError(f"{self.name}: cannot build: {exc}") from None

    def pack_wire(self, *values: Any) -> bytes:
        """:meth:`pack` of field values already in their wire form: a BCD date-time as its 7 bytes, a byte-string
        integer as its bytes. For a value encoded once and carried by several messages (a tap's date-time goes into
        INIT SAM FOR PURCHASE, the 0x1E record and DEBIT); every byte string's width is checked as :meth:`pack` does."""
        if len(values) != self._fields:
            raise ProtocolError(f"{self.name}: cannot build: {self._fields} field values needed, got {len(values)}")
        try:
            for i, width, name in self._wire_widths:
                if len(values[i]) != width:
                    raise ProtocolError(f"{self.name}.{name}: expected {width} bytes, got {len(values[i])}")
            if self._const_positions:
                values = list(values)  # type: ignore[assignment]
                for i, const in self._const_positions:
                    values.insert(i, const)  # type: ignore[attr-defined]
            return self._struct.pack(*values)
        except (struct.error, OverflowError, TypeError) as exc:
            raise ProtocolError(f"{self.name}: cannot build: {exc}") from None

    def parse_partial(self, data: bytes) -> PartialParse:
        """Decode ``data`` as far as its bytes go, field by field (:class:`PartialParse`): for captured answers of
        another length than the layout's, shown to people; a program that needs the message uses :meth:`parse`."""
        values: dict[str, Any] = {}
        invalid: dict[str, tuple[bytes, str]] = {}
        missing: list[str] = []
        cut: tuple[str, bytes] | None = None
        offset = 0
        for p in self._plan:
            width = p.size
            chunk = bytes(data[offset:offset + width])
            label = p.name or f"constant at byte {offset}"
            offset += width
            if len(chunk) < width:
                if chunk:
                    cut = (label, chunk)
                elif p.name is not None:
                    missing.append(p.name)
                continue
            if p.const is not None:
                if chunk != p.const:
                    invalid[label] = (chunk, f"expected {p.const.hex().upper()}")
                continue
            raw = struct.unpack(">" + p.code, chunk)[0]
            try:
                values[label] = raw if p.decode is None else p.decode(raw)
            except ProtocolError as exc:
                invalid[label] = (chunk, str(exc))
        return PartialParse(values, invalid, cut, tuple(missing), bytes(data[self.size:]))

    def parse_with(self, engine: Engine, data: bytes) -> M:
        """Parse with a chosen engine; the differential test and the benchmark use this."""
        if engine == "fast":
            return self.parse(data)
        self._check_size(data)
        parser = self.compiled if engine == "compiled" else self.schema
        try:
            container = parser.parse(data)
        except c.ConstructError as exc:
            raise ProtocolError(f"{self.name}: {exc}") from None
        return self.model(*(container[f.name] for f in dataclasses.fields(self.model)))  # type: ignore[arg-type]

    def build_with(self, engine: Engine, obj: M) -> bytes:
        if engine == "fast":
            return self.build(obj)
        builder = self.compiled if engine == "compiled" else self.schema
        for p in self._plan:  # compiled construct writes a Bytes field of the wrong width as it is
            value = getattr(obj, p.name, None) if p.width is not None and p.name is not None else None
            if isinstance(value, (bytes, bytearray)) and len(value) != p.width:
                raise ProtocolError(f"{self.name}.{p.name}: expected {p.width} bytes, got {len(value)}")
        try:
            return builder.build({f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)})  # type: ignore[arg-type]
        except (c.ConstructError, struct.error, OverflowError, TypeError, AttributeError, ValueError) as exc:
            raise ProtocolError(f"{self.name}: cannot build: {exc}") from None
