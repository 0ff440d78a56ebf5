"""Issuing simulated M1 city cards from a key set: the whole card image, every sector keyed by the key rule.

The card is laid out as ``docs/m1-purse-layout.md`` says: the manufacturer block from the UID, the sector directory,
the issuance blocks with the issuer's authentication code, the purse and its backup holding the balance (and the
last-load block saying it was loaded at issue), an empty record ring, the public info and its backup, and in every
sector's trailer its key A, the purse's access bits and key B. The card keeps only its own sector keys; the masters
stay in the key set.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random

from protocols import bcd
from protocols.card_files import CardType
from protocols.iso14443 import CASCADE_TAG, bcc
from protocols.m1.crypto import auth_code, auth_code_data
from protocols.m1.layout import (
    BLACK_FLAG,
    DIRECTORY,
    DIRECTORY_BLOCK,
    GPB,
    ISSUANCE,
    ISSUANCE_BLOCK,
    LOAD_BLOCK,
    LOAD_INFO,
    MAX_BALANCE,
    PUBLIC_BACKUP_BLOCK,
    PUBLIC_BLOCK,
    PURSE_BACKUP_BLOCK,
    PURSE_BLOCK,
    RECORD_RING,
    VALIDITY,
    VALIDITY_BLOCK,
    EnableFlag,
    Issuance,
    LoadInfo,
    ProcessFlag,
    Validity,
    parse_public_info,
    public_info,
    sector_access,
)
from protocols.mifare import CardSize, KeyType, ValueBlock, trailer_block
from terminal.keyset import Keyset, KeyUsage

from ..issuing import IssueError, draw_card, draw_odd_trait
from .m1_card import M1Card, M1Image, classic_atqa, classic_sak

DEFAULT_CITY = bytes.fromhex("3640")
"""The city of the demo issuer (the spec's end-to-end example issuer 02403640FFFFFFFF is city 3640)."""
DEFAULT_INDUSTRY = bytes.fromhex("0001")
"""Industry code 0001 (行业代码): the MOHURD code list is not public here, so this is a placeholder (UNCONFIRMED)."""
DEFAULT_ISSUE = dt.date(2020, 1, 1)
DEFAULT_EXPIRY = dt.date(2040, 12, 31)
MANUFACTURER_DATA = b"YKT-SIM1"
"""Bytes 8..15 of block 0 of a 4-byte-UID card (an NXP card has its own production data there)."""


def _check(condition: bool, field: str, reason: str) -> None:
    if not condition:
        raise IssueError(f"{field}: {reason}")


def uid_for(card_number: bytes) -> bytes:
    """A 4-byte UID fixed by the card number (never starting with the cascade tag 88)."""
    uid = bytearray(hashlib.sha256(b"m1 uid:" + card_number).digest()[:4])
    if uid[0] == CASCADE_TAG:
        uid[0] ^= 0x01
    return bytes(uid)


def manufacturer_block(uid: bytes, sak: int, atqa: bytes) -> bytes:
    """Block 0: a 4-byte UID, its BCC, SAK, ATQA (least significant byte first) and manufacturer data; a 7-byte UID
    and manufacturer data (NXP's layouts)."""
    if len(uid) == 4:
        return uid + bytes((bcc(uid), sak, atqa[1], atqa[0])) + MANUFACTURER_DATA
    return uid + bytes((sak, atqa[1], atqa[0])) + MANUFACTURER_DATA[:6]


def trailer(keyset: Keyset, uid: bytes, sector: int, key_version: int) -> bytes:
    """A sector trailer: key A, the layout's access bits, GPB, key B, both keys by the key set's rule."""
    key_a = keyset.m1_sector_key(KeyType.A, uid, sector, key_version)
    key_b = keyset.m1_sector_key(KeyType.B, uid, sector, key_version)
    return key_a + sector_access(sector).to_bytes() + bytes((GPB,)) + key_b


def issue_m1_card(keyset: Keyset, *, issuer_serial: bytes, city: bytes = DEFAULT_CITY,
                  industry: bytes = DEFAULT_INDUSTRY, card_type: int = CardType.NORMAL, balance: int = 0,
                  uid: bytes | None = None, size: CardSize = CardSize.K1, key_version: int = 0x01,
                  issue_date: dt.date = DEFAULT_ISSUE, start: dt.date = DEFAULT_ISSUE,
                  expiry: dt.date = DEFAULT_EXPIRY, deposit: int = 0,
                  enable_flag: int = EnableFlag.NORMAL) -> M1Card:
    """An M1 card personalised from ``keyset``: sector keys by its rule, auth code from its ``m1_auth`` master.

    ``issuer_serial`` is 4 bytes; ``city`` and ``industry`` 2 each (the three make the card number). The UID defaults
    to 4 bytes fixed by the card number.
    """
    _check(isinstance(issuer_serial, bytes) and len(issuer_serial) == 4, "issuer_serial", "4 bytes")
    _check(isinstance(city, bytes) and len(city) == 2, "city", "2 bytes")
    _check(isinstance(industry, bytes) and len(industry) == 2, "industry", "2 bytes")
    _check(size in (CardSize.K1, CardSize.K4), "size", "a MIFARE Classic 1K or 4K")
    _check(0 <= balance <= MAX_BALANCE, "balance", f"0 to {MAX_BALANCE} fen")
    _check(0 <= deposit <= 0xFFFF, "deposit", "0 to 65535 fen")
    _check(0 <= card_type <= 0xFF and 0 <= key_version <= 0xFF and 0 <= enable_flag <= 0xFF, "card_type",
           "card type, key version and enable flag are one byte each")
    _check(start <= expiry, "start", f"the start date {start} is after the expiry date {expiry}")
    card_number = city + industry + issuer_serial
    uid = uid_for(card_number) if uid is None else uid
    _check(isinstance(uid, bytes) and len(uid) in (4, 7), "uid", "4 or 7 bytes")
    sak, atqa = classic_sak(size), classic_atqa(uid, size)
    image = M1Image(uid, atqa, sak, bytearray(size))
    validity = VALIDITY.build(Validity(issue_date, start, expiry, deposit, bytes(2)))
    issuance = Issuance(city, industry, issuer_serial, bytes(4), enable_flag, card_type, key_version, 0)
    data = auth_code_data(uid, ISSUANCE.build(issuance), validity)
    issuance.auth_code = auth_code(keyset.m1_card_key(KeyUsage.M1_AUTH, key_version, card_number), data)
    blocks = {
        0: manufacturer_block(uid, sak, atqa),
        DIRECTORY_BLOCK: DIRECTORY,
        ISSUANCE_BLOCK: ISSUANCE.build(issuance),
        VALIDITY_BLOCK: validity,
        PURSE_BLOCK: ValueBlock(balance, PURSE_BLOCK).to_bytes(),
        PURSE_BACKUP_BLOCK: ValueBlock(balance, PURSE_BLOCK).to_bytes(),
        PUBLIC_BLOCK: public_info(RECORD_RING - 1, 0, ProcessFlag.FRESH),
        PUBLIC_BACKUP_BLOCK: public_info(RECORD_RING - 1, 0, ProcessFlag.FRESH),
    }
    if balance:
        when = dt.datetime.combine(issue_date, dt.time())
        blocks[LOAD_BLOCK] = LOAD_INFO.build(LoadInfo(1, balance, when, bytes(4)))
    for number, content in blocks.items():
        image.set_block(number, content)
    for sector in range(size.sectors):
        image.set_block(trailer_block(sector, size), trailer(keyset, uid, sector, key_version))
    return M1Card(image)


def generate_m1_population(keyset: Keyset, n: int, seed: int, *, odd_share: float = 0.0,
                           on: dt.date | None = None, city: bytes = DEFAULT_CITY,
                           card_type: int | None = None) -> list[M1Card]:
    """``n`` M1 cards of ``city`` issued from ``keyset``, the same for the same arguments (``on`` defaults to today):
    the card types (or every card ``card_type``), validity and balances of :func:`sim.issuing.generate_population`,
    distinct issuer serials, UIDs fixed by the card numbers. ``odd_share`` of the cards get one odd trait each:
    expired, not yet valid, blocked (the black flag set), a low balance, or issued by another city (M1 cards are valid
    in their own city only)."""
    _check(isinstance(n, int) and 0 <= n < 10**8, "n", "a count of cards, 0 to 99999999")
    _check(0.0 <= odd_share <= 1.0, "odd_share", "a share between 0 and 1")
    on = dt.date.today() if on is None else on
    rng = random.Random(seed)
    first = rng.randrange(10**8 - n)
    other_city = bytes((city[0], (city[1] + 1) % 0x100))
    cards = []
    for i in range(n):
        drawn, start, expiry, balance = draw_card(rng, on)
        trait, start, expiry, balance = draw_odd_trait(rng, odd_share, on, start, expiry, balance)
        card = issue_m1_card(keyset, issuer_serial=bcd.from_digits(f"{first + i:08d}", 4),
                             city=other_city if trait == "non_interoperable" else city,
                             card_type=drawn if card_type is None else card_type,
                             balance=min(balance, MAX_BALANCE), start=start, expiry=expiry, issue_date=start)
        if trait == "blocked":
            info = parse_public_info(card.image.block(PUBLIC_BLOCK))
            for block in (PUBLIC_BLOCK, PUBLIC_BACKUP_BLOCK):
                card.image.set_block(block, public_info(info.record_pointer, info.counter, info.process_flag,
                                                        BLACK_FLAG))
        cards.append(card)
    return cards
