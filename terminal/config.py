"""Validator settings: where it stands, what it accepts, and its windows. A versioned TOML file, strictly checked.

Every setting has a default that works with the simulator out of the box; a real deployment sets at least the place
(city, institution, operator, line, vehicle) and the accepted issuers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .cutover import CutoverPolicy, parse_cutover
from .journal import DAMAGE_POLICIES
from .tomlconf import MAX_MINUTES, Table, Where, check_format, parse_toml, read_text

FORMAT = 1


@dataclass(frozen=True, slots=True)
class Place:
    """Where the validator stands, as the card's 0x1A and 0x1E records name it (bytes as the cards store them)."""

    city_code: bytes = bytes.fromhex("2900")
    institution_id: bytes = bytes.fromhex("02002900FFFFFFFF")
    operator_code: bytes = bytes.fromhex("0001")
    line: int = 1
    station: int = 1
    vehicle: bytes = bytes.fromhex("0000000000000001")
    industry_code: int = 0x02  # 0x1E byte 9: 02 bus (01 metro, 00 other; protocols.card_files.Industry)


@dataclass(frozen=True, slots=True)
class ValidatorConfig:
    """What a validator checks and how long it waits.

    ``accepted_issuers``: issuer IDs (file 0x15 bytes 0..7) accepted; empty accepts every issuer. A card whose issuer
    city (issuer ID bytes 2..3) is not ``place.city_code`` is non-local and must carry a non-zero interoperability class
    in file 0x17. ``purchase``: ``composite`` (INITIALIZE FOR CAPP PURCHASE, transaction type 09, with 0x1E and, for
    section fares, 0x1A records) or ``simple`` (type 06, no records: only for flat fares). ``recovery_window_s``: how
    long a torn debit stays ``pending`` before it is reported to the back office as ``unconfirmed`` (it stays open: the
    card settles it whenever it comes back). ``retap_same_ride_s``: a card back this soon after a torn debit it did make
    (proven by the card) is the same rider on the same ride: the tap is that ride's, "recovered", nothing more charged;
    later, the rider walked away with that ride, the row is settled from the card's evidence all the same and the tap is
    charged as a new ride. Default an hour, the length of a long bus trip; at least ``recovery_window_s``.
    ``repeat_tap_s``: a card accepted less than this long ago is not charged again; ``repeat_tap_scope`` says by whom:
    ``validator`` (by this validator, from its own memory) or ``line`` (also by any validator of this operator on this
    line, from the card's newest 0x1E record: one more READ RECORD per tap unless the fares read it anyway; for vehicles
    with several validators). ``damaged_rows``: what a damaged journal row does at start-up and on a tap, ``stop`` (the
    validator does not start: a typed error names the row and the field) or ``quarantine`` (the row is set aside,
    journaled as an event, and the validator goes on). ``cutover``: which card technologies and types are still accepted
    while a city moves to new cards (:mod:`terminal.cutover`; by default every card).
    """

    place: Place = field(default_factory=Place)
    purchase: str = "composite"
    application_types: frozenset[int] = frozenset({0x02})
    min_application_version: int = 1
    accepted_issuers: frozenset[bytes] = frozenset()
    recovery_window_s: int = 30
    repeat_tap_s: int = 60
    repeat_tap_scope: str = "validator"
    card_timeout_s: float = 0.5
    sam_timeout_s: float = 2.0
    maintenance_key_version: int = 0x01
    psam_two_level: bool = True
    damaged_rows: str = "stop"
    retap_same_ride_s: int = 3600
    cutover: CutoverPolicy = field(default_factory=CutoverPolicy)


_TOP = frozenset({"format", "place", "purchase", "application_types", "min_application_version", "accepted_issuers",
                  "recovery_window_s", "repeat_tap_s", "repeat_tap_scope", "card_timeout_s", "sam_timeout_s",
                  "maintenance_key_version", "psam_two_level", "damaged_rows", "retap_same_ride_s", "cutover"})
_PLACE = frozenset({"city_code", "institution_id", "operator_code", "line", "station", "vehicle", "industry_code"})


def _hex_value(where: Where, value: object, size: int, key: str | int) -> bytes:
    if not isinstance(value, str):
        raise where.error(f"must be a hex string of {size} bytes", key)
    try:
        raw = bytes.fromhex(value.replace(" ", ""))
    except ValueError:
        raise where.error(f"{value!r} is not hex", key) from None
    if len(raw) != size:
        raise where.error(f"must be {size} bytes, got {len(raw)}", key)
    return raw


def _hex(table: Table, key: str, size: int, default: bytes) -> bytes:
    value = table.take(key)
    return default if value is None else _hex_value(table, value, size, key)


def _seconds(table: Table, key: str, default: float, low: float, high: float) -> float:
    value = table.take(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise table.error(f"must be a number of seconds {low}..{high}, got {value!r}", key)
    return float(value)


def parse_config(text: str, source: str = "<validator>") -> ValidatorConfig:
    """A validator settings file's text to a :class:`ValidatorConfig`; errors name the file and field."""
    root = parse_toml(text, source)
    root.only(_TOP)
    check_format(root, FORMAT)
    defaults = ValidatorConfig()
    place = defaults.place
    table = root.table("place")
    if table is not None:
        table.only(_PLACE)
        place = Place(_hex(table, "city_code", 2, place.city_code),
                      _hex(table, "institution_id", 8, place.institution_id),
                      _hex(table, "operator_code", 2, place.operator_code),
                      table.integer("line", 0, 0xFFFF, place.line), table.integer("station", 0, 0xFF, place.station),
                      _hex(table, "vehicle", 8, place.vehicle),
                      table.integer("industry_code", 0, 0xFF, place.industry_code))
    purchase = root.string("purchase", defaults.purchase)
    if purchase not in ("composite", "simple"):
        raise root.error(f'must be "composite" or "simple", got {purchase!r}', "purchase")
    scope = root.string("repeat_tap_scope", defaults.repeat_tap_scope)
    if scope not in ("validator", "line"):
        raise root.error(f'must be "validator" or "line", got {scope!r}', "repeat_tap_scope")
    damaged = root.string("damaged_rows", defaults.damaged_rows)
    if damaged not in DAMAGE_POLICIES:
        raise root.error(f'must be "stop" or "quarantine", got {damaged!r}', "damaged_rows")
    types = root.take("application_types")
    if types is None:
        app_types = defaults.application_types
    elif isinstance(types, list) and types:
        app_types = frozenset(root.inner("application_types").check_int(t, 0, 0xFF, i) for i, t in enumerate(types))
    else:
        raise root.error("must be a non-empty array of application type codes", "application_types")
    issuers = root.take("accepted_issuers")
    accepted: frozenset[bytes] = frozenset()
    if issuers is not None:
        if not isinstance(issuers, list):
            raise root.error("must be an array of 8-byte issuer IDs in hex", "accepted_issuers")
        where = root.inner("accepted_issuers")
        accepted = frozenset(_hex_value(where, v, 8, i) for i, v in enumerate(issuers))
    window = root.integer("recovery_window_s", 0, MAX_MINUTES * 60, defaults.recovery_window_s)
    same_ride = root.integer("retap_same_ride_s", 0, MAX_MINUTES * 60, max(defaults.retap_same_ride_s, window))
    if same_ride < window:
        raise root.error(f"must be at least recovery_window_s ({window}), got {same_ride}", "retap_same_ride_s")
    return ValidatorConfig(
        place, purchase, app_types, root.integer("min_application_version", 0, 0xFF, defaults.min_application_version),
        accepted, window, root.integer("repeat_tap_s", 0, MAX_MINUTES * 60, defaults.repeat_tap_s), scope,
        _seconds(root, "card_timeout_s", defaults.card_timeout_s, 0.01, 60),
        _seconds(root, "sam_timeout_s", defaults.sam_timeout_s, 0.01, 60),
        root.integer("maintenance_key_version", 0, 0xFF, defaults.maintenance_key_version),
        _flag(root, "psam_two_level", defaults.psam_two_level), damaged, retap_same_ride_s=same_ride,
        cutover=parse_cutover(root.table("cutover")))


def _flag(table: Table, key: str, default: bool) -> bool:
    value = table.take(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise table.error(f"must be true or false, got {value!r}", key)
    return value


def load_config(path: str | Path) -> ValidatorConfig:
    """Read and validate a validator settings file; any problem is a :class:`terminal.errors.ConfigError`."""
    return parse_config(read_text(path), str(path))
