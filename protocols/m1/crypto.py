"""The M1 purse's two MACs: the issuer authentication code in block 4, and the transaction MAC a PSAM computes for
every debit (the journal's equivalent of a CPU card's TAC).

Both are PBOC MACs (:func:`protocols.crypto.pboc_mac`: ISO 9797-1 padding method 2, a zero IV, the retail MAC for a
16-byte 3DES key, SM4 CBC-MAC for an SM4 key, the left 4 bytes) under a card key diversified from a master by the
8-byte card number (city ‖ industry ‖ issuer serial), one level, as :func:`protocols.crypto.diversify` does:

* auth code: master usage ``m1_auth``, over :func:`auth_code_data` (the UID, so a copy on another card does not pass,
  and the issuance fields a validator relies on). The enable flag is left out: an issuer changes it over the card's
  life, and it is written with key B anyway.
* transaction MAC: master usage ``m1_tac``, over :data:`PURCHASE_MAC_DATA`. A PSAM computes it with DES INIT
  (``80 1A 24 <key version> 08 <card number>``) and DES CRYPT's MAC (``80 FA 05 00 38`` + a zero IV + the data padded
  by the terminal), as a public Tianjin validator computes its city cards' TAC (``80 1A 24 01 08`` with a zero
  factor, then ``80 FA 05 00 28``). The key usage 24 comes from that validator alone; the data layout here is this
  project's (UNCONFIRMED: no source shows a standard one).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import construct as c

from ..crypto import BlockKey, pboc_mac
from ..fields import BcdDateTime
from ..layout import Layout
from ..mifare import auth_uid
from .layout import check_block

AUTH_CODE_DATA_SIZE = 28


def auth_code_data(uid: bytes, issuance_block: bytes, validity_block: bytes) -> bytes:
    """What the auth code covers, 28 bytes: UID (4) ‖ city, industry, issuer serial (block 4 bytes 0..7) ‖ card type
    and key version (block 4 bytes 13..14) ‖ issue, start and expiry dates and deposit (block 5 bytes 0..13)."""
    issuance = check_block(issuance_block, "issuance block")
    validity = check_block(validity_block, "validity block")
    return auth_uid(uid) + issuance[0:8] + issuance[13:15] + validity[0:14]


def auth_code(key: BlockKey, data: bytes) -> bytes:
    """The issuer authentication code: the MAC of :func:`auth_code_data` under the card's auth key."""
    return pboc_mac(key, data)


@dataclass(slots=True)
class PurchaseMacData:
    """What the transaction MAC of an M1 debit covers: the card (number and UID), its counter after the debit, the
    money (balance before and amount), the transaction type, where (PSAM terminal number), the terminal's serial and
    when."""

    card_number: bytes
    uid: bytes
    counter: int
    balance_before: int
    amount: int
    transaction_type: int
    terminal: bytes
    tsn: int
    when: dt.datetime | None


PURCHASE_MAC_DATA = Layout(
    PurchaseMacData,
    "card_number" / c.Bytes(8),
    "uid" / c.Bytes(4),
    "counter" / c.Int16ub,
    "balance_before" / c.Int32ub,
    "amount" / c.Int32ub,
    "transaction_type" / c.Int8ub,
    "terminal" / c.Bytes(6),
    "tsn" / c.Int32ub,
    "when" / BcdDateTime,
    examples=(
        ("3640000100000042 40C2AB5C 0001 00002710 000000C8 06 200041599997 00000057 20250314083000",
         PurchaseMacData(bytes.fromhex("3640000100000042"), bytes.fromhex("40C2AB5C"), 1, 10000, 200, 0x06,
                         bytes.fromhex("200041599997"), 0x57, dt.datetime(2025, 3, 14, 8, 30))),
    ),
)


def purchase_mac(key: BlockKey, data: bytes) -> bytes:
    """The transaction MAC of an M1 debit: the MAC of :data:`PURCHASE_MAC_DATA` bytes under the card's M1 TAC key."""
    return pboc_mac(key, data)
