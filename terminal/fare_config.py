"""The fare file: a versioned TOML document validated into frozen dataclasses.

A fare file decides what every rider pays, so it is checked strictly when it is loaded, never on a tap: every problem
is a :class:`ConfigError` that names the file, the field path and the reason (``fares.toml: card_types.student.percent:
must be 0..100, got 150``), and an unknown key is an error, because a misspelt key silently ignored would charge the
wrong fare. The format is documented, with an example of every feature, in ``docs/fares.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, TypeVar, cast

from protocols.card_files import CardType

from .tomlconf import MAX_AMOUNT, Table, Where, check_format, parse_toml, read_text, show

FORMAT = 1
"""The ``format`` this build reads; a file of another version is refused rather than half understood."""

CARD_TYPE_CODES: Mapping[str, int] = MappingProxyType({t.name.lower(): t.value for t in CardType})
"""Card type names a fare file may use (file 0x17 byte 10); any other code is written as its number."""

OTHER_CARD_TYPES = "other"
"""The ``card_types`` key whose rule applies to every card type code the file does not list."""

LineNumbers = Literal["binary", "bcd"]


def card_type_label(code: int) -> str:
    """The name a journal shows for a card type code: ``student``, or ``type 9`` for a code without a name."""
    for name, value in CARD_TYPE_CODES.items():
        if value == code:
            return name
    return f"type {code}"


def _round_percent(fare: int, percent: int) -> int:
    """``percent`` of ``fare`` in whole fen, half a fen rounded up (125 fen at 50% is 63)."""
    return (fare * percent + 50) // 100


@dataclass(frozen=True, slots=True)
class CardTypeRule:
    """What one card type pays: a percent of the fare, a fixed fare, nothing, or it is refused.

    ``value`` is the percent paid (``percent``) or the fare in fen (``fixed``); ``reason`` is the text a refusal shows.
    """

    kind: Literal["percent", "fixed", "free", "refuse"]
    value: int = 0
    reason: str = ""

    def apply(self, fare: int) -> int:
        """The fare this card type pays for a ride whose full fare is ``fare``.

        A fixed fare replaces any non-zero fare and leaves a zero fare at zero, so a tap-on that charges nothing
        still charges nothing and the fixed amount is paid once per trip.
        """
        if self.kind == "percent":
            return _round_percent(fare, self.value)
        if self.kind == "fixed":
            return self.value if fare else 0
        return 0

    @property
    def note(self) -> str:
        """The rule's part of a journal note: ``50%``, ``fixed 100``, ``free``, ``refused``."""
        if self.kind == "percent":
            return f"{self.value}%"
        if self.kind == "fixed":
            return f"fixed {self.value}"
        return "free" if self.kind == "free" else "refused"


@dataclass(frozen=True, slots=True)
class TransferRule:
    """A discount on a ride taken on another line within ``window_minutes`` after a paid ride.

    Exactly one of ``off`` (fen off the fare) and ``percent`` (percent of the fare paid) is set; ``card_types`` limits
    the discount to those codes (``None``: every card type).
    """

    window_minutes: int
    off: int | None = None
    percent: int | None = None
    card_types: frozenset[int] | None = None

    def apply(self, fare: int) -> int:
        """The fare after the transfer discount, never below zero."""
        if self.off is not None:
            return max(0, fare - self.off)
        return _round_percent(fare, self.percent or 0)

    def applies_to(self, card_type: int) -> bool:
        return self.card_types is None or card_type in self.card_types

    @property
    def note(self) -> str:
        """``transfer -100`` or ``transfer 50%``."""
        return f"transfer -{self.off}" if self.off is not None else f"transfer {self.percent}%"


@dataclass(frozen=True, slots=True)
class FlatFare:
    """One fare for every ride on the line, in fen."""

    base: int


@dataclass(frozen=True, slots=True)
class FareBand:
    """Rides of up to ``up_to`` stations (and more than the band before) cost ``fare`` fen."""

    up_to: int
    fare: int


@dataclass(frozen=True, slots=True)
class SectionFares:
    """Tap-on / tap-off fares of one line, by stations travelled (``bands``) or by station pair (``matrix``).

    ``matrix[b - 1][a - 1]`` is the fare from station ``b`` to station ``a`` (stations numbered from 1). A ride longer
    than the last band, or between stations outside the matrix, costs ``max_fare``, which also caps every fare and is
    what a rider who never taps off pays. ``boarding_fare`` is charged at tap-on and counted toward the trip.
    """

    max_trip_minutes: int
    max_fare: int
    boarding_fare: int = 0
    bands: tuple[FareBand, ...] = ()
    matrix: tuple[tuple[int, ...], ...] = ()
    _by_distance: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_distance = []
        bands = iter(self.bands)
        band = next(bands, None)
        for distance in range(256):  # a bus record's station is one byte
            while band is not None and distance > band.up_to:
                band = next(bands, None)
            by_distance.append(self.max_fare if band is None else min(band.fare, self.max_fare))
        object.__setattr__(self, "_by_distance", tuple(by_distance))

    def fare(self, boarded: int, alighted: int) -> int:
        """The full fare (before card-type and transfer rules) from station ``boarded`` to station ``alighted``."""
        if self.matrix:
            size = len(self.matrix)
            if 1 <= boarded <= size and 1 <= alighted <= size:
                return min(self.matrix[boarded - 1][alighted - 1], self.max_fare)
            return self.max_fare
        return self._by_distance[abs(alighted - boarded)]


LineFare = FlatFare | SectionFares


@dataclass(frozen=True, slots=True)
class FareTable:
    """A whole fare file, validated.

    ``lines`` maps a line as the card stores it (2 bytes, see ``line_numbers``) to its fare; ``default`` is the flat
    fare of every other line (``None``: other lines are refused). ``card_types`` maps listed codes to their rules and
    ``other_card_types`` applies to the rest (``None``: full fare).
    """

    source: str
    name: str
    line_numbers: LineNumbers
    default: FlatFare | None
    lines: Mapping[bytes, LineFare]
    card_types: Mapping[int, CardTypeRule]
    other_card_types: CardTypeRule | None
    transfer: TransferRule | None

    def card_rule(self, code: int) -> CardTypeRule | None:
        """The rule of a card type code; ``None`` means full fare."""
        return self.card_types.get(code, self.other_card_types)


def encode_line(number: int, line_numbers: LineNumbers) -> bytes:
    """A line number as the 2 bytes the card records carry: big-endian binary (251 → 00FB) or BCD (801 → 0801).

    Which one a network uses is the operator's choice (both are seen), hence the fare file's ``line_numbers``.
    """
    if line_numbers == "bcd":
        if not 0 <= number <= 9999:
            raise ValueError(f"a BCD line number is 0..9999, got {number}")
        return bytes.fromhex(f"{number:04d}")
    if not 0 <= number <= 0xFFFF:
        raise ValueError(f"a binary line number is 0..65535, got {number}")
    return number.to_bytes(2, "big")


def line_name(code: bytes, line_numbers: LineNumbers) -> str:
    """The 2 bytes of a line as people name it: ``251`` for 00FB in binary, ``801`` for 0801 in BCD; bytes that are
    not a line number in that encoding are shown in hex."""
    text = code.hex().upper()
    if line_numbers == "bcd":
        return str(int(text)) if text.isdigit() else text
    return str(int.from_bytes(code, "big"))


def card_type_code(where: Where, name: Any, key: str | int) -> int:
    """A card type as a settings file names it (a name of :data:`CARD_TYPE_CODES`, or a code 0..255) to its code."""
    if isinstance(name, str):
        if name in CARD_TYPE_CODES:
            return CARD_TYPE_CODES[name]
        if name.isascii() and name.isdigit():
            return where.check_int(int(name), 0, 0xFF, key, what=" (a card type code)")
    elif isinstance(name, int) and not isinstance(name, bool):
        return where.check_int(name, 0, 0xFF, key, what=" (a card type code)")
    names = ", ".join(CARD_TYPE_CODES)
    raise where.error(f"unknown card type {show(name)} (names: {names}, or a code 0..255)", key)


_CARD_TYPE_KEYS = frozenset({"percent", "fixed", "free", "refuse", "reason"})
_TRANSFER_KEYS = frozenset({"window_minutes", "off", "percent", "card_types"})
_BAND_KEYS = frozenset({"up_to", "fare"})
_FARE_KEYS = frozenset({"base"})
_TOP_KEYS = frozenset({"format", "name", "line_numbers", "fare", "lines", "card_types", "transfer"})


def _card_type_rule(table: Table) -> CardTypeRule:
    table.only(_CARD_TYPE_KEYS)
    kinds = [k for k in ("percent", "fixed", "free", "refuse") if table.has(k)]
    rule: CardTypeRule
    if len(kinds) != 1:
        got = f", got {' and '.join(kinds)}" if kinds else ""
        raise table.error(f"give exactly one of percent, fixed, free, refuse{got}")
    kind = kinds[0]
    if kind != "refuse" and table.has("reason"):
        raise table.error("only with refuse = true", "reason")
    if kind == "percent":
        rule = CardTypeRule("percent", table.integer("percent", 0, 100))
    elif kind == "fixed":
        rule = CardTypeRule("fixed", table.amount("fixed"))
    elif kind == "free":
        table.true("free", "omit the entry for full fare")
        rule = CardTypeRule("free")
    else:
        table.true("refuse", "omit the entry to accept the card type")
        rule = CardTypeRule("refuse", reason=table.string("reason", ""))
    return rule


T = TypeVar("T")


def card_type_table(table: Table | None, entry: Callable[[Table, str], T]) -> tuple[dict[int, T], T | None]:
    """A table keyed by card type (names or codes, each once, and ``other`` for the rest): ``entry`` reads the value
    of each key; returns the values by code, and the value of ``other`` (``None`` when absent)."""
    rules: dict[int, T] = {}
    given_as: dict[int, str] = {}
    other: T | None = None
    if table is None:
        return rules, other
    for key in table.data:
        if key == OTHER_CARD_TYPES:
            other = entry(table, key)
            continue
        code = card_type_code(table, key, key)
        if code in given_as:
            raise table.error(f"card type {code} is also given as {table.at(given_as[code])}", key)
        given_as[code] = key
        rules[code] = entry(table, key)
    return rules, other


def _card_type_entry(table: Table, key: str) -> CardTypeRule:
    entry = table.table(key)
    assert entry is not None
    return _card_type_rule(entry)


def _card_types(root: Table) -> tuple[dict[int, CardTypeRule], CardTypeRule | None]:
    return card_type_table(root.table("card_types"), _card_type_entry)


def _transfer(root: Table) -> TransferRule | None:
    table = root.table("transfer")
    if table is None:
        return None
    table.only(_TRANSFER_KEYS)
    if table.has("off") == table.has("percent"):
        raise table.error("give exactly one of off (fen) and percent (percent of the fare paid)")
    window = table.minutes("window_minutes")
    off = table.amount("off") if table.has("off") else None
    percent = table.integer("percent", 0, 100) if table.has("percent") else None
    card_types = None
    names = table.take("card_types")
    if names is not None:
        if not isinstance(names, list) or not names:
            raise table.error(f"must be a non-empty array of card types, got {show(names)}", "card_types")
        where = table.inner("card_types")
        card_types = frozenset(card_type_code(where, name, i) for i, name in enumerate(names))
    return TransferRule(window, off, percent, card_types)


def _bands(line: Table) -> tuple[FareBand, ...]:
    raw = line.take("bands")
    if not isinstance(raw, list) or not raw:
        raise line.error(f"must be a non-empty array of {{ up_to, fare }} tables, got {show(raw)}", "bands")
    bands: list[FareBand] = []
    for i, item in enumerate(raw):
        band = Table(line.inner("bands").inner(i), item)
        band.only(_BAND_KEYS)
        up_to = band.integer("up_to", 0, 0xFF, what=" (stations)")
        fare = band.amount("fare")
        if bands and up_to <= bands[-1].up_to:
            raise band.error(f"must be more than the band before ({bands[-1].up_to}), got {up_to}", "up_to")
        bands.append(FareBand(up_to, fare))
    return tuple(bands)


def _matrix(line: Table) -> tuple[tuple[int, ...], ...]:
    raw = line.take("matrix")
    where = line.inner("matrix")
    if not isinstance(raw, list) or not raw:
        raise line.error(f"must be a non-empty array of rows, got {show(raw)}", "matrix")
    if len(raw) > 0xFF:
        raise line.error(f"has {len(raw)} rows; a bus record numbers stations 1..255", "matrix")
    rows = []
    for i, row in enumerate(raw):
        if not isinstance(row, list):
            raise where.error(f"must be an array of fares, got {show(row)}", i)
        if len(row) != len(raw):
            raise where.error(f"has {len(row)} fares; the matrix has {len(raw)} rows and must be square", i)
        cells = where.inner(i)
        rows.append(tuple(cells.check_int(v, 0, MAX_AMOUNT, j, what=" (fen)") for j, v in enumerate(row)))
    return tuple(rows)


_LINE_KEYS = frozenset({"base", "bands", "matrix", "max_fare", "boarding_fare", "max_trip_minutes"})


def _line(table: Table) -> LineFare:
    table.only(_LINE_KEYS)
    if table.has("base"):
        for key in table.data:
            if key != "base":
                raise table.error("only for a section-fare line (this line has base, a flat fare)", key)
        return FlatFare(table.amount("base"))
    if table.has("bands") == table.has("matrix"):
        raise table.error("give base (a flat fare), or bands or matrix (tap-on / tap-off section fares)")
    bands = _bands(table) if table.has("bands") else ()
    matrix = _matrix(table) if table.has("matrix") else ()
    highest = max([b.fare for b in bands] + [f for row in matrix for f in row])
    max_fare = table.amount("max_fare", highest)
    boarding_fare = table.amount("boarding_fare", 0)
    if boarding_fare > max_fare:
        raise table.error(f"must not exceed max_fare ({max_fare}), got {boarding_fare}", "boarding_fare")
    return SectionFares(table.minutes("max_trip_minutes"), max_fare, boarding_fare, bands, matrix)


def _lines(root: Table, line_numbers: LineNumbers) -> dict[bytes, LineFare]:
    table = root.table("lines")
    lines: dict[bytes, LineFare] = {}
    if table is None:
        return lines
    for key in table.data:
        entry = table.table(key)
        assert entry is not None
        if not (key.isascii() and key.isdigit()):
            raise table.error("a line is named by its number (decimal digits)", key)
        try:
            code = encode_line(int(key), line_numbers)
        except ValueError as exc:
            raise table.error(str(exc), key) from None
        if code in lines:
            raise table.error(f"line {int(key)} is given twice", key)
        lines[code] = _line(entry)
    return lines


def parse_fares(text: str, source: str = "<fares>") -> FareTable:
    """A fare file's text to a :class:`FareTable`; ``source`` names the file in error messages."""
    root = parse_toml(text, source)
    root.only(_TOP_KEYS)
    check_format(root, FORMAT)
    name = root.string("name", "")
    numbers = root.string("line_numbers", "binary")
    if numbers not in ("binary", "bcd"):
        raise root.error(f'must be "binary" or "bcd", got {show(numbers)}', "line_numbers")
    line_numbers = cast(LineNumbers, numbers)
    fare = root.table("fare")
    default = None
    if fare is not None:
        fare.only(_FARE_KEYS)
        default = FlatFare(fare.amount("base"))
    lines = _lines(root, line_numbers)
    if default is None and not lines:
        raise root.error("no fare: give [fare] base (every line) or at least one [lines.<number>]")
    card_types, other = _card_types(root)
    transfer = _transfer(root)
    return FareTable(source, name, line_numbers, default, MappingProxyType(lines), MappingProxyType(card_types),
                     other, transfer)


def read_fares(path: str | Path) -> FareTable:
    """Read and validate a fare file; any problem, including an unreadable file, is a :class:`ConfigError`."""
    return parse_fares(read_text(path), str(path))
