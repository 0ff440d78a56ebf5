"""Strict TOML configuration files: every problem names the file, the field path and the reason.

Configuration decides what riders pay and what a validator accepts, so it is checked when it is loaded, never on a
tap, and an unknown key is an error: a misspelt key silently ignored would change behaviour without anyone noticing.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

from .errors import ConfigError

MAX_AMOUNT = 0x7FFFFFFF
"""The largest amount in fen: what the card's signed 4-byte amount fields can hold."""

MAX_MINUTES = 24 * 60
"""Windows longer than a day are taken for typos."""

_TOML_POSITION = re.compile(r"^(?P<msg>.*) \(at line (?P<line>\d+), column (?P<col>\d+)\)$", re.S)



def show(value: Any) -> str:
    """A value as an error message shows it, in TOML's terms."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return str(value)


class Where:
    """A place in the file (file name and field path) that error messages name."""

    def __init__(self, source: str, path: str) -> None:
        self.source = source
        self.path = path

    def at(self, key: str | int) -> str:
        if isinstance(key, int):
            return f"{self.path}[{key}]"
        shown = key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key, ensure_ascii=False)
        return f"{self.path}.{shown}" if self.path else shown

    def inner(self, key: str | int) -> Where:
        return Where(self.source, self.at(key))

    def error(self, reason: str, key: str | int | None = None) -> ConfigError:
        where = self.path if key is None else self.at(key)
        return ConfigError(f"{self.source}: {where}: {reason}" if where else f"{self.source}: {reason}")

    def check_int(self, value: Any, low: int, high: int, key: str | int, *, what: str = "") -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(f"must be an integer{what}, got {show(value)}", key)
        if not low <= value <= high:
            raise self.error(f"must be {low}..{high}{what}, got {value}", key)
        return value


class Table(Where):
    """One TOML table under validation."""

    def __init__(self, where: Where, data: Any) -> None:
        super().__init__(where.source, where.path)
        if not isinstance(data, dict):
            raise self.error(f"must be a table, got {show(data)}")
        self.data: dict[str, Any] = data

    def has(self, key: str) -> bool:
        return key in self.data

    def take(self, key: str) -> Any:
        return self.data.get(key)

    def table(self, key: str) -> Table | None:
        value = self.take(key)
        return None if value is None else Table(self.inner(key), value)

    def integer(self, key: str, low: int, high: int, default: int | None = None, *, what: str = "") -> int:
        value = self.take(key)
        if value is None:
            if default is None:
                raise self.error("required", key)
            return default
        return self.check_int(value, low, high, key, what=what)

    def amount(self, key: str, default: int | None = None) -> int:
        return self.integer(key, 0, MAX_AMOUNT, default, what=" (fen)")

    def minutes(self, key: str) -> int:
        return self.integer(key, 1, MAX_MINUTES, what=" (minutes)")

    def string(self, key: str, default: str) -> str:
        value = self.take(key)
        if value is None:
            return default
        if not isinstance(value, str):
            raise self.error(f"must be a string, got {show(value)}", key)
        return value

    def true(self, key: str, hint: str) -> bool:
        """A flag that can only be switched on; ``false`` is refused because it reads as if it meant something."""
        value = self.take(key)
        if value is None:
            return False
        if value is not True:
            raise self.error(f"must be true ({hint}), got {show(value)}", key)
        return True

    def only(self, allowed: frozenset[str]) -> None:
        """Refuse a key outside ``allowed``, before anything else is checked, so that a typo is named as such rather
        than reported as a missing key: a misspelt key must never be silently ignored."""
        for key in self.data:
            if key not in allowed:
                raise self.error(f"unknown key (allowed: {', '.join(sorted(allowed))})", key)


def parse_toml(text: str, source: str) -> Table:
    """TOML text to its root :class:`Table`; a syntax error is a :class:`ConfigError` with line and column."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = _TOML_POSITION.match(str(exc))
        if found:
            raise ConfigError(f"{source}: line {found['line']}, column {found['col']}: "
                              f"TOML syntax error: {found['msg']}") from None
        raise ConfigError(f"{source}: TOML syntax error: {exc}") from None
    return Table(Where(source, ""), data)


def read_text(path: str | Path) -> str:
    """A configuration file's text; an unreadable or non-UTF-8 file is a :class:`ConfigError`."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None


def check_format(root: Table, supported: int) -> None:
    """The file's ``format`` must be the one this build reads: a file of another version is refused, not half read."""
    version = root.take("format")
    if version is None:
        raise root.error(f"required (this build reads format = {supported})", "format")
    if type(version) is not int or version != supported:
        raise root.error(f"unsupported version {show(version)} (this build reads {supported})", "format")
