"""The load host's terminals file: which load terminals may ask for loads, their bearer tokens, and the limits.

TOML, strictly checked like every configuration file (docs/load-host.md, "The terminals file")::

    format = 1
    test_only = true                 # optional: the tokens are public, for tests and demos

    [limits]                         # optional; these are the defaults
    per_load = 100000                # fen: the most one load may add (1,000.00 CNY)
    purse = 100000                   # fen: the most a card may hold after a load (1,000.00 CNY)

    [[terminals]]
    number = "200041590001"          # the terminal's 6-byte number, as it sends it in INITIALIZE FOR LOAD
    token = "..."                    # its secret bearer token: 16 to 256 visible ASCII characters
    name = "station top-up machine"  # optional, for people

Tokens never appear in a message or a log: errors name the terminal by its number or its position.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from pathlib import Path

from protocols.errors import ProtocolError
from protocols.hexutil import parse_hex
from terminal.tomlconf import MAX_AMOUNT, Table, check_format, parse_toml, read_text

FORMAT = 1
DEMO_TERMINALS = Path(__file__).resolve().parent.parent / "keys" / "demo-terminals.toml"
"""The test-only terminals file: public tokens, for the demo and the tests."""
DEFAULT_PER_LOAD = 100_000
DEFAULT_PURSE = 100_000
_TOKEN_SIZES = range(16, 257)


@dataclass(frozen=True, slots=True)
class Limits:
    """What the host authorizes at most, in fen."""

    per_load: int = DEFAULT_PER_LOAD
    purse: int = DEFAULT_PURSE


@dataclass(frozen=True, slots=True)
class RegisteredTerminal:
    """One load terminal the host knows. ``repr`` leaves the token out."""

    number: bytes
    token: str
    name: str = ""

    def __repr__(self) -> str:
        return f"RegisteredTerminal({self.number.hex().upper()}, {self.name!r})"


@dataclass(frozen=True, slots=True)
class Terminals:
    """The terminals file: its terminals, its limits, and whether its tokens are test-only."""

    terminals: tuple[RegisteredTerminal, ...]
    limits: Limits = Limits()
    test_only: bool = False

    def by_token(self, token: str | None) -> RegisteredTerminal | None:
        """The terminal holding ``token``; every token is compared in constant time, so timing tells nothing."""
        found = None
        if token:
            offered = token.encode("utf-8", "replace")
            for terminal in self.terminals:
                if hmac.compare_digest(offered, terminal.token.encode("ascii")):
                    found = terminal
        return found

    def by_number(self, number: bytes) -> RegisteredTerminal | None:
        return next((t for t in self.terminals if t.number == number), None)


def parse_terminals(text: str, source: str = "<terminals>") -> Terminals:
    """A terminals file's text; :class:`terminal.errors.ConfigError` names the file, the field and the reason."""
    root = parse_toml(text, source)
    root.only(frozenset({"format", "test_only", "limits", "terminals"}))
    check_format(root, FORMAT)
    test_only = root.take("test_only")
    if test_only is not None and not isinstance(test_only, bool):
        raise root.error("must be true or false", "test_only")
    limits = Limits()
    table = root.table("limits")
    if table is not None:
        table.only(frozenset({"per_load", "purse"}))
        limits = Limits(table.integer("per_load", 1, MAX_AMOUNT, DEFAULT_PER_LOAD, what=" (fen)"),
                        table.integer("purse", 1, MAX_AMOUNT, DEFAULT_PURSE, what=" (fen)"))
    entries = root.take("terminals")
    if not isinstance(entries, list) or not entries:
        raise root.error("required: at least one [[terminals]] table", "terminals")
    where = root.inner("terminals")
    terminals: list[RegisteredTerminal] = []
    for index, value in enumerate(entries):
        entry = Table(where.inner(index), value)
        entry.only(frozenset({"number", "token", "name"}))
        terminals.append(RegisteredTerminal(_number(entry), _token(entry), entry.string("name", "")))
    numbers = [t.number for t in terminals]
    for index, terminal in enumerate(terminals):
        if numbers.index(terminal.number) != index:
            raise where.inner(index).error(f"terminal {terminal.number.hex().upper()} is listed twice", "number")
        if [t.token for t in terminals].index(terminal.token) != index:
            raise where.inner(index).error("the same token is given to two terminals", "token")
    return Terminals(tuple(terminals), limits, bool(test_only))


def _number(entry: Table) -> bytes:
    value = entry.take("number")
    if not isinstance(value, str):
        raise entry.error("required: the terminal's number, 12 hex digits", "number")
    try:
        raw = parse_hex(value, what="number")
    except ProtocolError as exc:
        raise entry.error(str(exc)) from None
    if len(raw) != 6:
        raise entry.error(f"must be 6 bytes (12 hex digits), got {len(raw)}", "number")
    return raw


def _token(entry: Table) -> str:
    value = entry.take("token")
    if not isinstance(value, str):
        raise entry.error("required: the terminal's bearer token", "token")
    if len(value) not in _TOKEN_SIZES or not all("!" <= ch <= "~" for ch in value):
        raise entry.error(f"must be {_TOKEN_SIZES.start} to {_TOKEN_SIZES.stop - 1} visible ASCII characters "
                          "(no spaces)", "token")
    return value


def load_terminals(path: str | Path) -> Terminals:
    """Read and check a terminals file."""
    return parse_terminals(read_text(path), str(path))
