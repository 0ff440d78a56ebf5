"""An issuer's key set: the master keys a PSAM, a load host or a back office derives every card's keys from.

File format (JSON, UTF-8), version 1::

    {
      "format": "yikatong-keyset",
      "version": 1,
      "test_only": true,
      "description": "free text",
      "algorithm": "3DES",
      "diversification_levels": 2,
      "master_keys": {
        "purchase": {"01": "00112233445566778899AABBCCDDEEFF"},
        "load":     {"01": "..."},
        "tac":      {"01": "..."},
        "damk":     {"01": "..."}
      }
    }

``format``, ``version``, ``test_only``, ``algorithm``, ``diversification_levels`` and ``master_keys`` are required;
``description`` and ``m1_key_rule`` are optional; any other field is an error (a typo must not pass silently).

* ``test_only``: ``true`` for made-up keys (the demo set); tools say so when they use such a set.
* ``algorithm``: ``"3DES"`` (two-key EDE) or ``"SM4"``; every key is 16 bytes, 32 hex digits.
* ``diversification_levels``: 1 (the card serial's last 8 bytes) or 2 (issuer id, then card serial: T-Union).
* ``master_keys``: by usage (``purchase`` MPK, ``load`` MLK, ``tac`` MTK, ``damk`` maintenance/application
  maintenance key), then by key version/index as two hex digits (``"01"``, the byte a terminal sends in INITIALIZE
  and a card answers). A usage may be absent; a usage present needs at least one key. The legacy M1 purse
  (``docs/m1-purse-layout.md``) has usages of its own, by key version: ``m1_key_a`` and ``m1_key_b`` (the sector-key
  masters), ``m1_auth`` (the issuer authentication code) and ``m1_tac`` (the transaction MAC).
* ``m1_key_rule``: how M1 sector keys come from ``m1_key_a``/``m1_key_b`` (:class:`protocols.m1.keys.KeyRule`):
  ``{"issuance_version": "01", "constant": "000000"}``, both optional, these the defaults.

Keys are read into :mod:`protocols.crypto` key objects and never appear in a ``repr``, a log or an error message:
errors name the field and the reason only. A :class:`Keyset` keeps the key objects it makes (and the issuer-level
keys of two-level sets), so it belongs to one holder, like the key objects themselves.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping
from typing import Any

from protocols.crypto import Algorithm, CardKey, diversify, serial_factor
from protocols.errors import ProtocolError
from protocols.m1.keys import KeyRule
from protocols.mifare import KeyType
from terminal.errors import ConfigError
from terminal.jsondoc import load_document

FORMAT = "yikatong-keyset"
VERSION = 1

_REQUIRED = ("format", "version", "test_only", "algorithm", "diversification_levels", "master_keys")
_OPTIONAL = ("description", "m1_key_rule")
_RULE_FIELDS = ("issuance_version", "constant")
_HEX = frozenset("0123456789abcdefABCDEF")


class KeyUsage(str, enum.Enum):
    """What a master key is for; the values are the names used in the key-set file."""

    PURCHASE = "purchase"
    LOAD = "load"
    TAC = "tac"
    MAINTENANCE = "damk"
    M1_KEY_A = "m1_key_a"
    M1_KEY_B = "m1_key_b"
    M1_AUTH = "m1_auth"
    M1_TAC = "m1_tac"


_M1_SECTOR_MASTERS = {KeyType.A: KeyUsage.M1_KEY_A, KeyType.B: KeyUsage.M1_KEY_B}


class Keyset:
    """Master keys by (usage, key version/index), their algorithm and diversification depth."""

    def __init__(self, *, algorithm: Algorithm, levels: int, keys: Mapping[tuple[KeyUsage, int], bytes],
                 test_only: bool, description: str = "", m1_rule: KeyRule | None = None) -> None:
        if levels not in (1, 2):
            raise ConfigError(f"diversification levels must be 1 or 2, got {levels!r}")
        self.algorithm = algorithm
        self.levels = levels
        self.test_only = test_only
        self.description = description
        self.m1_rule = KeyRule() if m1_rule is None else m1_rule
        self._masters: dict[tuple[KeyUsage, int], CardKey] = {}
        for (usage, index), raw in keys.items():
            try:
                self._masters[(KeyUsage(usage), index)] = algorithm.key(raw)
            except ProtocolError:
                raise ConfigError(f"master key {KeyUsage(usage).value} {index:02X}: must be 16 bytes") from None
        self._issuer_keys: dict[tuple[KeyUsage, int, bytes], CardKey] = {}

    def indexes(self, usage: KeyUsage) -> tuple[int, ...]:
        """The key versions/indexes held for ``usage``, ascending."""
        return tuple(sorted(index for u, index in self._masters if u is usage))

    def master(self, usage: KeyUsage, index: int) -> CardKey:
        """The master key of ``usage`` at version/index ``index``; :class:`ConfigError` if the set has none."""
        key = self._masters.get((usage, index))
        if key is None:
            shown = f"{index:02X}" if isinstance(index, int) else repr(index)
            raise ConfigError(f"the key set has no {KeyUsage(usage).value} key with version/index {shown}")
        return key

    def card_key(self, usage: KeyUsage, index: int, *, issuer_id: bytes, card_serial: bytes) -> CardKey:
        """One card's key (DPK, DLK, DTK or DAMK): the master diversified by issuer (two levels) then card serial.

        ``card_serial`` is the 10-byte application serial (file 0x15 bytes 10..19); its last 8 bytes are the factor.
        Two-level sets keep the issuer-level key per issuer, so each further card costs one diversification.
        """
        master = self.master(usage, index)
        factor = serial_factor(card_serial)
        if self.levels == 1:
            return diversify(master, factor)
        cache_key = (usage, index, bytes(issuer_id))
        issuer_key = self._issuer_keys.get(cache_key)
        if issuer_key is None:
            issuer_key = diversify(master, issuer_id)
            self._issuer_keys[cache_key] = issuer_key
        return diversify(issuer_key, factor)

    def m1_sector_key(self, key_type: KeyType, uid: bytes, sector: int, card_version: int) -> bytes:
        """The 6-byte key ``key_type`` of ``sector`` of the M1 card with ``uid`` whose block 4 names key version
        ``card_version``, by the key set's M1 key rule; :class:`ConfigError` if the set lacks that master."""
        rule = self.m1_rule
        master = self.master(_M1_SECTOR_MASTERS[KeyType(key_type)], rule.version(sector, card_version))
        return rule.key(master, uid, sector, KeyType(key_type))

    def m1_card_key(self, usage: KeyUsage, version: int, card_number: bytes) -> CardKey:
        """An M1 card's auth-code or transaction-MAC key: the master diversified by the 8-byte card number."""
        master = self.master(usage, version)
        return diversify(master, card_number)

    def __repr__(self) -> str:
        held = ", ".join(f"{usage.value} {index:02X}" for usage, index in sorted(self._masters))
        flag = ", test only" if self.test_only else ""
        return f"Keyset({self.algorithm.value}, {self.levels} level(s), keys: {held}{flag})"


def load_keyset(path: str | os.PathLike[str]) -> Keyset:
    """Read and check a key-set file; :class:`ConfigError` names the file, the field and the reason."""
    source = os.fspath(path)
    try:
        with open(source, encoding="utf-8") as file:
            text = file.read()
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read the key set ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{source}: not UTF-8 text (byte {exc.start})") from None
    data = load_document(text, source, ConfigError)
    return parse_keyset(data, source=source)


def parse_keyset(data: Any, *, source: str = "key set") -> Keyset:
    """Check the decoded JSON of a key-set file (see the module docstring) and build the :class:`Keyset`."""

    def fail(field: str, reason: str) -> ConfigError:
        return ConfigError(f"{source}: {field}: {reason}")

    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a key set is a JSON object")
    for field in _REQUIRED:
        if field not in data:
            raise fail(field, "missing")
    unknown = sorted(set(data) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        raise fail(unknown[0], "unknown field")
    if data["format"] != FORMAT:
        raise fail("format", f"must be {FORMAT!r}")
    if type(data["version"]) is not int or data["version"] != VERSION:
        raise fail("version", f"version {data['version']!r} is unknown (this software reads {VERSION})")
    if type(data["test_only"]) is not bool:
        raise fail("test_only", "must be true or false")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise fail("description", "must be text")
    algorithms = {a.value: a for a in Algorithm}
    if not isinstance(data["algorithm"], str) or data["algorithm"] not in algorithms:
        raise fail("algorithm", f"must be one of {', '.join(sorted(algorithms))}")
    levels = data["diversification_levels"]
    if type(levels) is not int or levels not in (1, 2):
        raise fail("diversification_levels", "must be 1 or 2")
    masters = data["master_keys"]
    if not isinstance(masters, dict) or not masters:
        raise fail("master_keys", "must be an object with at least one usage")
    keys: dict[tuple[KeyUsage, int], bytes] = {}
    for usage_name, by_index in masters.items():
        field = f"master_keys.{usage_name}"
        try:
            usage = KeyUsage(usage_name)
        except ValueError:
            raise fail(field, f"unknown usage (known: {', '.join(u.value for u in KeyUsage)})") from None
        if not isinstance(by_index, dict) or not by_index:
            raise fail(field, "must map key versions/indexes to keys")
        for index_text, key_text in by_index.items():
            where = f"{field}.{index_text}"
            if len(index_text) != 2 or not set(index_text) <= _HEX:
                raise fail(where, "a key version/index is two hex digits, e.g. \"01\"")
            index = int(index_text, 16)
            if (usage, index) in keys:
                raise fail(where, "the same key version/index is given twice")
            if not isinstance(key_text, str):
                raise fail(where, "a key is a string of hex digits")
            if len(key_text) != 32:
                raise fail(where, f"a key is 32 hex digits (16 bytes), got {len(key_text)} characters")
            if not set(key_text) <= _HEX:
                raise fail(where, "a key is hex digits only")
            keys[(usage, index)] = bytes.fromhex(key_text)
    return Keyset(algorithm=algorithms[data["algorithm"]], levels=levels, keys=keys, test_only=data["test_only"],
                  description=description, m1_rule=_m1_rule(data.get("m1_key_rule"), fail))


def _m1_rule(value: Any, fail: Any) -> KeyRule | None:
    """The ``m1_key_rule`` object: one byte ``issuance_version`` and a 3-byte ``constant``, both in hex."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise fail("m1_key_rule", "must be an object")
    unknown = sorted(set(value) - set(_RULE_FIELDS))
    if unknown:
        raise fail(f"m1_key_rule.{unknown[0]}", "unknown field")
    fields: dict[str, Any] = {}
    for name, size in (("issuance_version", 1), ("constant", 3)):
        if name not in value:
            continue
        text = value[name]
        if not isinstance(text, str) or len(text) != 2 * size or not set(text) <= _HEX:
            raise fail(f"m1_key_rule.{name}", f"must be {2 * size} hex digits")
        raw = bytes.fromhex(text)
        fields[name] = raw[0] if size == 1 else raw
    return KeyRule(**fields)
