"""Issuing simulated cards: personalisation from card keys or from an issuer's key set, and seeded populations.

A card's keys come from the key set exactly as the PSAM and the back office derive them (:meth:`Keyset.card_key`:
each master diversified by the issuer ID, then by the last 8 bytes of the card serial; one level: serial only), so
a card issued here works with a :class:`~sim.psam.SimPsam` holding the same key set. The card keeps only its own
diversified keys; master keys stay in the :class:`Keyset` and appear in no card, fixture or message.

The demo key set (``sim/keys/demo-keyset.json``) is made-up and public: for simulation and tests only.

Populations (:func:`generate_population`) are deterministic for a seed and a reference date. By default every card
is valid on that date; ``odd_share`` turns that share of the cards into the cases QA wants to see refused or
warned about, each card getting one trait of :data:`ODD_TRAITS`:

* ``expired``: the expiry date is 1 to 365 days before the reference date;
* ``not_yet_valid``: the start date is 1 to 60 days after it;
* ``blocked``: the application is blocked (SELECT answers 6283);
* ``low_balance``: 0 to 99 fen;
* ``non_interoperable``: interoperability class 0000 in file 0x17.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from protocols import bcd
from protocols.card_files import (
    CARDHOLDER_INFO, MANAGEMENT_INFO, PUBLIC_APP_INFO, CardholderInfo, CardType, ManagementInfo, PublicAppInfo,
    blank_bus_record, build_process_record,
)
from protocols.crypto import Algorithm, CardKey
from protocols.errors import ProtocolError, YktError
from protocols.iso14443 import CASCADE_TAG, check_uid
from terminal.blacklist import parse_serial
from terminal.keyset import Keyset, KeyUsage, load_keyset

from .card import DEFAULT_ATS, DEFAULT_SAK, MAX_BALANCE, MAX_OVERDRAFT, CardImage, KeySlot, PurseState, SimCard
from .card.image import default_atqa

DEMO_KEYSET = Path(__file__).resolve().parent / "keys" / "demo-keyset.json"
"""The test-only key set that makes simulated cards and PSAMs work out of the box."""

DEFAULT_START = dt.date(2020, 1, 1)
DEFAULT_EXPIRY = dt.date(2040, 12, 31)
COUNTRY_CHINA = bytes.fromhex("00000156")
ANONYMOUS_HOLDER = bytes(2) + b" " * 52 + bytes(1)
"""File 0x16 of an anonymous T-Union card: holder type and staff flag 00, blank name and ID, ID type 00."""
PROCESS_RECORD_IDS = (0x01, 0x02)
"""The 0x1A records a card is issued with: id 01 (read as record 1 by metro gates) and the bus record, id 02 (read as
record 2 by bus validators), both blank."""

LOCAL_ISSUER = bytes.fromhex("02403640FFFFFFFF")
"""The issuer of the spec's end-to-end example, taken as the home issuer of generated populations."""
DEFAULT_ISSUERS = (
    LOCAL_ISSUER,
    bytes.fromhex("02002900FFFFFFFF"),  # Shanghai (a real FCI, spec §1.1)
    bytes.fromhex("01011000FFFFFFFF"),  # Beijing
    bytes.fromhex("05212482FFFFFFFF"),  # the public personalisation blob's issuer
)
ODD_TRAITS = ("expired", "not_yet_valid", "blocked", "low_balance", "non_interoperable")
_CARD_TYPES = (CardType.NORMAL, CardType.STUDENT, CardType.ELDERLY, CardType.MILITARY, CardType.TEST)
_CARD_TYPE_WEIGHTS = (70, 12, 12, 3, 3)
_FUDAN = 0x1D  # manufacturer byte of 7-byte UIDs (ISO/IEC 7816-6 code of Shanghai Fudan Microelectronics)


class IssueError(YktError):
    """A card cannot be issued as asked; the message names the field and the reason, never a key."""


def load_demo_keyset() -> Keyset:
    """The demo key set shipped with the simulator (test-only, made-up keys)."""
    return load_keyset(DEMO_KEYSET)


def _serial_bytes(serial: bytes | str) -> bytes:
    if isinstance(serial, str):
        try:
            return parse_serial(serial)
        except ProtocolError as exc:
            raise IssueError(str(exc)) from None
    if not isinstance(serial, bytes) or len(serial) != 10:
        raise IssueError(f"serial: 10 bytes of BCD, got {serial!r}")
    try:
        bcd.digits(serial, what="serial")
    except ProtocolError as exc:
        raise IssueError(str(exc)) from None
    return serial


def uid_from_serial(serial: bytes) -> bytes:
    """A 4-byte UID fixed by the serial, so that the same serial always gives the same card."""
    uid = bytearray(hashlib.sha256(b"uid:" + serial).digest()[:4])
    if uid[0] == CASCADE_TAG:
        uid[0] ^= 0x01
    return bytes(uid)


def _seven_byte_uid(rng: random.Random) -> bytes:
    """A double-size UID: manufacturer byte, then 6 random bytes, the cascade tag kept out of byte 3 (ISO 14443-3)."""
    uid = bytearray((_FUDAN,)) + rng.randbytes(6)
    if uid[3] == CASCADE_TAG:
        uid[3] ^= 0x01
    return bytes(uid)


def _years_later(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def _check(condition: bool, field: str, reason: str) -> None:
    if not condition:
        raise IssueError(f"{field}: {reason}")


def management_file(city: bytes, province: bytes | None = None, interop_class: int = 1,
                    card_type: int = CardType.NORMAL) -> bytes:
    """File 0x17 as issued: China, the city and its province (the city's first byte and 00, as UnionPay region codes
    go: city 2482, province 2400), the interoperability class and the card type, the rest zeros."""
    province = bytes((city[0], 0)) if province is None else province
    return MANAGEMENT_INFO.build(ManagementInfo(COUNTRY_CHINA, province, city, interop_class, card_type, bytes(4),
                                                bytes(45)))


def personalise(*, issuer_id: bytes, serial: bytes | str, algorithm: Algorithm, keys: Mapping[int, KeySlot],
                maintenance_key: CardKey | None = None, start: dt.date = DEFAULT_START,
                expiry: dt.date = DEFAULT_EXPIRY, card_type: int = CardType.NORMAL, city: bytes | None = None,
                province: bytes | None = None, interop_class: int = 1, balance: int = 0, overdraft: int = 0,
                uid: bytes | None = None, passbook: PurseState | None = None, ppse: bool = False,
                app_version: int = 1, process_record_ids: Iterable[int] = PROCESS_RECORD_IDS) -> CardImage:
    """A card image personalised with the given card keys (already diversified) and card fields.

    ``city`` defaults to the issuer ID's bytes 2..3 and ``province`` to the city's first byte followed by 00 (UnionPay
    region codes: city 2482, province 2400). The UID defaults to 4 bytes fixed by the serial.
    """
    raw_serial = _serial_bytes(serial)
    _check(isinstance(issuer_id, bytes) and len(issuer_id) == 8, "issuer_id", "8 bytes")
    city = issuer_id[2:4] if city is None else city
    _check(isinstance(city, bytes) and len(city) == 2, "city", "2 bytes")
    province = bytes((city[0], 0)) if province is None else province
    _check(isinstance(province, bytes) and len(province) == 2, "province", "2 bytes")
    _check(start <= expiry, "start", f"the start date {start} is after the expiry date {expiry}")
    _check(0 <= card_type <= 0xFF, "card_type", "one byte")
    _check(0 <= interop_class <= 0xFFFF, "interop_class", "two bytes")
    _check(0 <= overdraft <= MAX_OVERDRAFT, "overdraft", f"0 to {MAX_OVERDRAFT} fen")
    _check(-overdraft <= balance <= MAX_BALANCE, "balance", f"{-overdraft} to {MAX_BALANCE} fen")
    _check(0 <= app_version <= 0xFF, "app_version", "one byte")
    _check(bool(keys), "keys", "a card needs at least one key index")
    for index, slot in keys.items():
        for usage in ("purchase", "load", "tac"):
            key = getattr(slot, usage)
            _check(key is None or isinstance(key, algorithm.key_type), f"keys.{index:02X}.{usage}",
                   f"not a {algorithm.value} key")
    _check(maintenance_key is None or isinstance(maintenance_key, algorithm.key_type), "maintenance_key",
           f"not a {algorithm.value} key")
    uid = uid_from_serial(raw_serial) if uid is None else uid
    try:
        check_uid(uid)
    except ProtocolError as exc:
        raise IssueError(f"uid: {exc}") from None
    try:
        public_info = PUBLIC_APP_INFO.build(PublicAppInfo(issuer_id, 0x02, app_version, raw_serial, start, expiry,
                                                          bytes(2)))
        management = management_file(city, province, interop_class, card_type)
        cardholder = CARDHOLDER_INFO.build(CardholderInfo(ANONYMOUS_HOLDER))
        process = {record_id: build_process_record(blank_bus_record(record_id)) for record_id in
                   sorted(set(process_record_ids))}
    except ProtocolError as exc:
        raise IssueError(str(exc)) from None
    return CardImage(
        uid=uid, atqa=default_atqa(uid), sak=DEFAULT_SAK, ats=DEFAULT_ATS, algorithm=algorithm,
        public_info=public_info, cardholder=cardholder, management=management, transaction_log=[],
        process_records=process, transit_log=[], purse=PurseState(balance, overdraft), keys=dict(keys),
        maintenance_key=maintenance_key, passbook=passbook, ppse=ppse,
    )


def card_keys(keyset: Keyset, issuer_id: bytes, serial: bytes,
              indexes: Iterable[int] | None = None) -> dict[int, KeySlot]:
    """The card keys of one card at each key index (default: every purchase key index of the key set).

    The key version a card answers is the index, as the key-set format defines it. A usage the key set lacks at an
    index is left out (INITIALIZE then answers 9403 for it).
    """
    chosen = keyset.indexes(KeyUsage.PURCHASE) if indexes is None else tuple(indexes)
    _check(bool(chosen), "keys", "the key set has no purchase key")
    slots = {}
    for index in chosen:
        derived = {}
        for usage, name in ((KeyUsage.PURCHASE, "purchase"), (KeyUsage.LOAD, "load"), (KeyUsage.TAC, "tac")):
            if index in keyset.indexes(usage):
                derived[name] = keyset.card_key(usage, index, issuer_id=issuer_id, card_serial=serial)
        _check("purchase" in derived, f"keys.{index:02X}", "the key set has no purchase key at this index")
        slots[index] = KeySlot(index, **derived)
    return slots


def issue_card(keyset: Keyset, *, issuer_id: bytes = LOCAL_ISSUER, serial: bytes | str,
               algorithm: Algorithm | None = None, key_indexes: Iterable[int] | None = None,
               maintenance_index: int | None = None, randbytes: Callable[[int], bytes] | None = None,
               **fields: object) -> SimCard:
    """A card personalised from ``keyset`` with the same derivation its PSAM uses.

    ``fields`` are those of :func:`personalise` (dates, card type, city, interoperability class, balance, overdraft,
    UID, ...). The maintenance key (line protection of APPLICATION BLOCK) comes from the key set's ``damk`` usage,
    at ``maintenance_index`` (default: its lowest index); a key set without one issues cards that cannot be blocked.
    """
    _check(algorithm is None or algorithm is keyset.algorithm, "algorithm",
           f"the key set is {keyset.algorithm.value}; it issues {keyset.algorithm.value} cards only")
    raw_serial = _serial_bytes(serial)
    _check(isinstance(issuer_id, bytes) and len(issuer_id) == 8, "issuer_id", "8 bytes")
    maintenance = maintenance_key(keyset, issuer_id, raw_serial, maintenance_index)
    image = personalise(issuer_id=issuer_id, serial=raw_serial, algorithm=keyset.algorithm,
                        keys=card_keys(keyset, issuer_id, raw_serial, key_indexes), maintenance_key=maintenance,
                        **fields)  # type: ignore[arg-type]  # personalise's own keywords, passed through
    return SimCard(image, randbytes=randbytes)


def maintenance_key(keyset: Keyset, issuer_id: bytes, serial: bytes, index: int | None = None) -> CardKey | None:
    """The card's line-protection key from the key set's ``damk`` usage at ``index`` (default: its lowest index);
    ``None`` for a key set without one (its cards cannot be blocked)."""
    held = keyset.indexes(KeyUsage.MAINTENANCE)
    if index is None and not held:
        return None
    index = held[0] if index is None else index
    _check(index in held, "maintenance_index", f"the key set has no damk key at index {index:02X}")
    return keyset.card_key(KeyUsage.MAINTENANCE, index, issuer_id=issuer_id, card_serial=serial)


def draw_card(rng: random.Random, on: dt.date) -> tuple[int, dt.date, dt.date, int]:
    """A generated card's type, validity around ``on`` and balance (5 to 500 yuan), drawn from ``rng``."""
    card_type = rng.choices(_CARD_TYPES, _CARD_TYPE_WEIGHTS)[0]
    start = on - dt.timedelta(days=rng.randrange(30, 3650))
    return card_type, start, _years_later(start, 20), rng.randrange(500, 50001)


def draw_odd_trait(rng: random.Random, odd_share: float, on: dt.date, start: dt.date, expiry: dt.date,
                   balance: int) -> tuple[str | None, dt.date, dt.date, int]:
    """With ``odd_share`` chance, one trait of :data:`ODD_TRAITS` (``None`` otherwise), and the dates and balance it
    leaves; ``blocked`` and ``non_interoperable`` are for the caller to make, as the card's technology has them."""
    if not odd_share or rng.random() >= odd_share:
        return None, start, expiry, balance
    trait = rng.choice(ODD_TRAITS)
    if trait == "expired":
        expiry = on - dt.timedelta(days=rng.randrange(1, 366))
        start = min(start, expiry)
    elif trait == "not_yet_valid":
        start = on + dt.timedelta(days=rng.randrange(1, 61))
    elif trait == "low_balance":
        balance = rng.randrange(0, 100)
    return trait, start, expiry, balance


def generate_population(keyset: Keyset, n: int, seed: int, *, odd_share: float = 0.0, on: dt.date | None = None,
                        issuers: Sequence[bytes] = DEFAULT_ISSUERS) -> list[SimCard]:
    """``n`` cards issued from ``keyset``, the same for the same arguments (``on`` defaults to today).

    Mixed card types (mostly normal, some student, elderly, military and test cards), issuers (``issuers[0]`` is
    the home issuer and issues about half the cards; every card is interoperable, class 0001), balances of 5 to 500
    yuan, validity around ``on``, 4-byte and some 7-byte UIDs, distinct serials. ``odd_share`` (0 to 1) of the cards
    get one odd trait each (module docstring). All cards draw their randoms from one PRNG seeded from ``seed``, so a
    benchmark that drives them in the same order sees the same bytes.
    """
    _check(isinstance(n, int) and n >= 0, "n", "a count of cards, 0 or more")
    _check(0.0 <= odd_share <= 1.0, "odd_share", "a share between 0 and 1")
    _check(bool(issuers), "issuers", "at least one issuer")
    on = dt.date.today() if on is None else on
    rng = random.Random(seed)
    card_random = random.Random(rng.getrandbits(64)).randbytes
    first_number = rng.randrange(10**12 - n) if n < 10**12 else 0
    issuer_weights = [len(issuers)] + [1] * (len(issuers) - 1)
    cards = []
    for i in range(n):
        issuer = rng.choices(issuers, issuer_weights)[0]
        serial = "0310" + "".join(c if c.isdigit() else "0" for c in issuer[2:4].hex()) + f"{first_number + i:012d}"
        card_type, start, expiry, balance = draw_card(rng, on)
        uid = _seven_byte_uid(rng) if rng.random() < 0.2 else None
        trait, start, expiry, balance = draw_odd_trait(rng, odd_share, on, start, expiry, balance)
        interop_class, blocked = (0 if trait == "non_interoperable" else 1), trait == "blocked"
        card = issue_card(keyset, issuer_id=issuer, serial=serial, randbytes=card_random, card_type=card_type,
                          start=start, expiry=expiry, balance=balance, uid=uid, interop_class=interop_class)
        card.image.blocked = blocked
        cards.append(card)
    return cards
