"""What the validator knows of one debit: enough for the journal, for settlement and for tear recovery."""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass

M1_SERIAL_PREFIX = b"\0\0"
"""What goes before an M1 card's 8-byte card number to make the 10-byte serial the journal, the blacklist and the
repeat-tap rule know it by (this project's choice: no M1 card has a 10-byte serial)."""


def m1_serial(card_number: bytes) -> bytes:
    """The 10-byte serial of the M1 card numbered ``card_number`` (city, industry, issuer serial: 8 bytes)."""
    return M1_SERIAL_PREFIX + card_number


def m1_card_number(serial: bytes) -> bytes:
    """The card number back from an M1 card's 10-byte serial."""
    return serial[len(M1_SERIAL_PREFIX):]


class DebitState(str, enum.Enum):
    """Where a debit stands in the journal.

    ``pending``: the intent is written, DEBIT was (or is about to be) sent, the outcome is not known yet.
    ``complete``: the card answered DEBIT (or GET TRANSACTION PROVE proved it), the TAC is kept.
    ``void``: GET TRANSACTION PROVE proved the card never debited; nothing is owed.
    ``unconfirmed``: the card did not come back within the recovery window; the back office settles it from the card's
    own records (its ATC and the PSAM's TSN are in the row), unless the card comes back first and proves it.
    """

    PENDING = "pending"
    COMPLETE = "complete"
    VOID = "void"
    UNCONFIRMED = "unconfirmed"


class Technology(str, enum.Enum):
    """A card's purse technology, as the journal and the cut-over policy name it."""

    CPU = "cpu"  # a T-Union CPU card (ISO 14443-4, the PBOC electronic purse)
    M1 = "m1"  # a legacy MIFARE Classic city card (docs/m1-purse-layout.md)


class Evidence(str, enum.Enum):
    """How the journal learnt a debit's fate: what the card itself showed.

    ``debit``: the card's answer to DEBIT (TAC and MAC2, or the status word it refused with). ``prove``: GET
    TRANSACTION PROVE for the counter after the debit (TAC and MAC2). ``log``: the card's own 0x18 record of that
    counter, matched by amount, type, terminal and date-time (a debit made: complete, with no TAC; another debit:
    void). ``counter``: the card's counter had not moved past the row's (void). ``unprovable``: the card's counter is
    past the row and its log no longer holds that counter, so only the back office can settle the row (it stays
    unconfirmed and the validator stops asking the card). Empty: not settled yet.
    """

    NONE = ""
    DEBIT = "debit"
    PROVE = "prove"
    LOG = "log"
    COUNTER = "counter"
    UNPROVABLE = "unprovable"


@dataclass(slots=True)
class DebitRecord:
    """One purchase debit, as the journal keeps it.

    ``offline_atc`` is the counter INITIALIZE FOR PURCHASE returned (the card's counter before this debit); the card's
    proof of the debit is asked for with ``offline_atc + 1``. ``tac`` and ``mac2`` are ``None`` until the card answers
    (and stay ``None`` for a debit settled from the card's log); ``evidence`` says what settled the row.

    An M1 card's row (``technology`` m1): ``card_serial`` is ``00 00`` and the 8-byte card number, ``issuer_id`` the
    card's city and industry codes padded with ``FF``, ``offline_atc`` its counter before the debit, ``card_uid`` its
    UID, and ``mac1`` the PSAM's transaction MAC, computed before the debit and kept as the row's ``tac`` once the
    debit is known to be taken (there is no MAC2).
    """

    card_serial: bytes  # 10 bytes, file 0x15 [10..19]
    issuer_id: bytes  # 8 bytes, file 0x15 [0..7]
    card_type: int
    offline_atc: int
    amount: int  # fen
    balance_before: int  # fen
    trans_type: int  # 0x06 purchase, 0x09 composite purchase
    terminal_id: bytes  # 6 bytes, the PSAM's terminal number
    tsn: int  # the PSAM's terminal transaction serial
    when: dt.datetime  # the date-time sent to the PSAM and the card
    key_version: int
    algorithm: int
    mac1: bytes
    state: DebitState = DebitState.PENDING
    tac: bytes | None = None
    mac2: bytes | None = None
    mac2_verified: bool | None = None
    fare_note: str = ""  # which fare rule charged this (e.g. "flat", "transfer", "tap-off settle")
    evidence: Evidence = Evidence.NONE
    technology: Technology = Technology.CPU
    card_uid: bytes | None = None  # an M1 card's UID (4 or 7 bytes); None for a CPU card
