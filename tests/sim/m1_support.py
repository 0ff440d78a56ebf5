"""What the M1 tests share: the demo M1 card (card number 3640000100000042, UID 40C2AB5C), its keys, and commands."""

from __future__ import annotations

from protocols.mifare import Authenticate, KeyType, trailer_block
from sim.card.m1_card import M1Card
from sim.card.m1_issuing import issue_m1_card
from sim.issuing import load_demo_keyset

KEYSET = load_demo_keyset()
ISSUER_SERIAL = bytes.fromhex("00000042")
UID = bytes.fromhex("40C2AB5C")


def new_m1(balance: int = 10000, **fields: object) -> M1Card:
    """The demo M1 card (or another, with ``fields`` for :func:`issue_m1_card`), issued from the demo key set."""
    return issue_m1_card(KEYSET, issuer_serial=ISSUER_SERIAL, balance=balance, **fields)  # type: ignore[arg-type]


def key_of(card: M1Card, sector: int, key_type: KeyType = KeyType.A) -> bytes:
    trailer = card.image.block(trailer_block(sector, card.image.size))
    return trailer[:6] if key_type is KeyType.A else trailer[10:]


def authenticate(card: M1Card, block: int, key_type: KeyType = KeyType.A, key: bytes | None = None) -> bytes:
    """AUTH of ``block``'s sector with the card's own key (or ``key``)."""
    sector_key = key_of(card, block // 4 if block < 128 else 32 + (block - 128) // 16, key_type) if key is None else key
    return card.execute(Authenticate(key_type, block, sector_key, card.image.uid[-4:]).to_bytes())
