"""The card image: everything a T-Union card keeps in EEPROM, apart from what it holds only while powered.

A :class:`CardImage` is what personalisation writes, what a fixture file stores and what survives
:meth:`~sim.card.SimCard.power_on`. The simulated card works on the image in place, one atomic assignment group per
command, so the image after any command (or after a tear following any command) is a state a real card can be in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from protocols.crypto import Algorithm, CardKey, SessionKey, tac_key
from protocols.errors import ProtocolError
from protocols.iso14443 import Ats

MAX_BALANCE = 0x7FFFFFFF
"""Largest balance a load may reach: the 4-byte balance field with its top bit, which some readers treat as a flag,
left clear."""
MAX_OVERDRAFT = 0xFFFFFF
"""The overdraft limit is a 3-byte field of the INITIALIZE answer and the 0x18 record."""
MAX_ATC = 0xFFFF

DEFAULT_SAK = 0x20
"""SAK of an ISO 14443-4 card that is not also a MIFARE Classic."""
DEFAULT_ATS = Ats(fsci=5, ta=0x77, tb=0x70, tc=0x02).to_bytes()
"""``05 75 77 70 02``: FSC 64 bytes (so a 133-byte UPDATE CAPP DATA CACHE needs chaining), 106 to 848 kbit/s both
ways, FWI 7 (about 39 ms) and SFGI 0, CID supported, no historical bytes."""


def default_atqa(uid: bytes) -> bytes:
    """ATQA (most significant byte first, as readers report it) announcing the UID size and bit-frame anticollision."""
    return b"\x00\x44" if len(uid) == 7 else b"\x00\x04"


@dataclass(slots=True)
class PurseState:
    """One purse: the electronic purse (EP) every card has, or the passbook (ED) some also have.

    ``balance`` is signed: a debit may take it down to ``-overdraft_limit``. On the wire a negative balance is the
    32-bit two's complement (UNCONFIRMED: no source shows a card in overdraft).
    """

    balance: int = 0
    overdraft_limit: int = 0
    offline_atc: int = 0  # purchases
    online_atc: int = 0  # loads


@dataclass(slots=True)
class KeySlot:
    """The card keys at one key index (the byte INITIALIZE names) and the key version the card answers for them.

    A usage may be absent: INITIALIZE then answers 9403 for that transaction. ``tac`` is the DTK; the key TACs are
    computed with (its halves folded for 3DES) is made once, on first use.
    """

    version: int
    purchase: CardKey | None = None  # DPK
    load: CardKey | None = None  # DLK
    tac: CardKey | None = None  # DTK
    _tac_key: SessionKey | None = field(default=None, init=False, repr=False, compare=False)

    def tac_key(self) -> SessionKey:
        """The TAC key of this slot; callers check that ``tac`` is present first (else 9403, as INITIALIZE answers)."""
        if self._tac_key is None:
            if self.tac is None:
                raise ProtocolError(f"key version {self.version:02X} has no TAC key (DTK)", sw=0x9403)
            self._tac_key = tac_key(self.tac)
        return self._tac_key


class Proof(NamedTuple):
    """What GET TRANSACTION PROVE answers for the last transaction of one type: the card's counter after it (the
    ATC INITIALIZE returned, plus one), MAC2 and TAC."""

    atc: int
    mac2: bytes
    tac: bytes


@dataclass(slots=True)
class CardImage:
    """The card's persistent state.

    Files are the bytes the card serves: ``public_info`` (0x15, 30 bytes), ``cardholder`` (0x16, 55) and
    ``management`` (0x17, 60) are transparent; ``transaction_log`` (0x18, 23-byte records) and ``transit_log``
    (0x1E, 48-byte records) are cyclic, newest first, at most 10 and 30 records; ``process_records`` (0x1A) maps a
    record id (byte 1 of the record) to its 128 bytes, in ascending id order, which is record-number order.
    ``proofs`` maps a transaction type to the proof of the last transaction of that type.
    """

    uid: bytes
    atqa: bytes
    sak: int
    ats: bytes
    algorithm: Algorithm
    public_info: bytes
    cardholder: bytes
    management: bytes
    transaction_log: list[bytes]
    process_records: dict[int, bytes]
    transit_log: list[bytes]
    purse: PurseState
    keys: dict[int, KeySlot]
    maintenance_key: CardKey | None = None  # DAMK: line protection of APPLICATION BLOCK / UNBLOCK
    passbook: PurseState | None = None
    blocked: bool = False
    ppse: bool = False  # whether the card answers SELECT 2PAY.SYS.DDF01
    proofs: dict[int, Proof] = field(default_factory=dict)
    description: str = ""  # free text kept with the image in its fixture file (what the card is for, in QA)
