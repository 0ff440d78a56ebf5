"""File 0x18: the card's own transaction log (交易明细), one 23-byte record per debit or load."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar

import construct as c

from ..fields import BcdDate, BcdTime
from ..layout import Layout
from .codes import TransactionType, known


@dataclass(slots=True)
class TransactionLogRecord:
    """One 0x18 record. The card writes it at DEBIT/CREDIT; a terminal only reads it (repeat-tap checks, display).

    A slot never written reads as all zeros: ``date`` is then ``None`` (and ``time`` midnight).
    """

    CODES: ClassVar[dict[str, type[IntEnum]]] = {"transaction_type": TransactionType}

    atc: int  # online ATC for a load, offline ATC for a purchase
    overdraft_limit: int  # 3 bytes; "reserved" on some cards
    amount: int  # fen
    transaction_type: int  # see TransactionType; kept as an int so unknown codes survive
    terminal_number: bytes  # 6 bytes, the PSAM terminal number
    date: dt.date | None
    time: dt.time

    @property
    def known_transaction_type(self) -> TransactionType | None:
        return known(TransactionType, self.transaction_type)

    @property
    def when(self) -> dt.datetime | None:
        """Date and time together; ``None`` for an empty record."""
        return None if self.date is None else dt.datetime.combine(self.date, self.time)


TRANSACTION_LOG_RECORD = Layout(
    TransactionLogRecord,
    "atc" / c.Int16ub,
    "overdraft_limit" / c.BytesInteger(3),
    "amount" / c.Int32ub,
    "transaction_type" / c.Int8ub,
    "terminal_number" / c.Bytes(6),
    "date" / BcdDate,
    "time" / BcdTime,
    examples=(
        # A slot the card has not written yet.
        ("00" * 23, TransactionLogRecord(0, 0, 0, 0, bytes(6), None, dt.time(0, 0))),
        # The newest record of a Beijing T-Union card (T-Union Master's card-format notes): a composite purchase of
        # 5.00 CNY, ATC 042D, at a metro terminal.
        ("042D 000000 000001F4 09 300089000340 20241229 141740",
         TransactionLogRecord(0x042D, 0, 500, 0x09, bytes.fromhex("300089000340"), dt.date(2024, 12, 29),
                              dt.time(14, 17, 40))),
    ),
)
