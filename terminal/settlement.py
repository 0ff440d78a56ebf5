"""Settlement: the journal as the back office reads it. Export for upload, and TAC verification.

Export format (also in ``docs/settlement-format.md``). One record per journal row, in row-id order, with these fields
in this order (type, then meaning):

* ``row``: integer, the journal row id;
* ``tac``: 8 hex digits, empty unless the row is complete;
* ``card_serial``: 20 hex digits, file 0x15 bytes 10..19 (decimal digits on issued cards);
* ``issuer``: 16 hex digits, file 0x15 bytes 0..7;
* ``atc``: integer, the card's offline ATC as INITIALIZE returned it (before this debit);
* ``tsn``: integer, the PSAM's terminal transaction serial;
* ``amount``: integer, fen;
* ``type``: 2 hex digits, the transaction type (06 purchase, 09 composite purchase);
* ``terminal``: 12 hex digits, the PSAM's terminal number;
* ``datetime``: ISO 8601 ``YYYY-MM-DDThh:mm:ss``, the card's local date-time of the debit, no offset;
* ``state``: pending, complete, void or unconfirmed;
* ``mac2_verified``: true, false, or empty when the PSAM was not asked;
* ``key_version``: 2 hex digits, the purchase key version the card answered (it selects the TAC master key);
* ``algorithm``: 2 hex digits, the algorithm id the card answered (00 = 3DES);
* ``evidence``: what settled the row: debit, prove, log, counter or unprovable; empty while the row is open;
* ``card_record``: the card's own record that settled the row (evidence ``log``): 46 hex digits, a CPU card's 0x18
  record; 32, an M1 card's trip record; else empty;
* ``technology``: ``cpu`` or ``m1``, the card's purse technology;
* ``card_uid``: an M1 card's UID (8 or 14 hex digits), empty for a CPU card.

An M1 card's row: ``card_serial`` is ``0000`` and the card number (city, industry, issuer serial), ``issuer`` the
card's city and industry then ``FFFFFFFF``, ``atc`` its counter before the debit, ``type`` 06, ``tac`` the PSAM's
transaction MAC (``docs/m1-purse-layout.md``), ``key_version`` the card's key version, ``algorithm`` 00.

Hex is upper case. CSV: UTF-8, a header line with the field names, ``,`` separators, LF line ends, no quoting (no
field can hold a comma or a quote). JSON Lines: one compact JSON object per line with the same names in the same order;
integers are JSON numbers, hex and text are strings, ``mac2_verified`` is ``true``/``false``/``null``, an absent TAC
is ``null``.

Verification recomputes each complete row's TAC from the master TAC key, as a back office does: the card's DTK is
the master diversified by issuer then card serial (one level: serial only), the TAC key is DTK_L xor DTK_R (3DES), and
the TAC is the MAC over amount, type, terminal, TSN, date and time (spec §3.4). The master key is picked by the row's
key version. A complete CPU row settled from the card's 0x18 record has no TAC: it is listed apart (``from_log``),
with the record, and neither verifies nor fails. An M1 row's MAC is recomputed from the ``m1_tac`` master of its key
version diversified by the card number, over the card number, UID, counter after the debit, balance before, amount,
type, terminal, TSN and date-time (:data:`protocols.m1.crypto.PURCHASE_MAC_DATA`), whatever settled the row.

Both read the journal whole or not at all: an export is written to ``out`` only once every row has been read (a
damaged journal under the ``stop`` policy writes nothing), and a journal opened here from a path reads under
``damaged``; pass an open journal to read its :attr:`~terminal.journal.Journal.quarantined` rows afterwards.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TextIO

from protocols.bcd import encode_datetime
from protocols.crypto import (
    SessionKey,
    algorithm_for,
    macs_equal,
    purchase_tac,
    tac_key,
)
from protocols.errors import YktError
from protocols.hexutil import to_hex
from protocols.m1.crypto import PURCHASE_MAC_DATA, purchase_mac
from protocols.mifare import auth_uid
from terminal.journal import DamagedRow, Journal, JournalEntry, SqliteJournal
from terminal.keyset import Keyset, KeyUsage
from terminal.records import DebitState, Evidence, Technology, m1_card_number

EXPORT_FIELDS = ("row", "tac", "card_serial", "issuer", "atc", "tsn", "amount", "type", "terminal", "datetime",
                 "state", "mac2_verified", "key_version", "algorithm", "evidence", "card_record", "technology",
                 "card_uid")
_SPOOL = 16 << 20  # an export is held in memory up to this size, in a temporary file beyond
FORMATS = ("csv", "jsonl")
PURCHASE_TYPES = frozenset((0x05, 0x06, 0x09))
"""Transaction types whose TAC has the purchase layout: passbook, purse and composite purchase."""


class SettlementError(YktError):
    """An export or verification request is invalid (unknown format, unknown state)."""


def settlement_record(entry: JournalEntry) -> dict[str, Any]:
    """One row's export fields, typed as the JSON Lines format writes them."""
    rec = entry.record
    return {
        "row": entry.row_id,
        "tac": None if rec.tac is None else to_hex(rec.tac),
        "card_serial": to_hex(rec.card_serial),
        "issuer": to_hex(rec.issuer_id),
        "atc": rec.offline_atc,
        "tsn": rec.tsn,
        "amount": rec.amount,
        "type": f"{rec.trans_type:02X}",
        "terminal": to_hex(rec.terminal_id),
        "datetime": rec.when.isoformat(),
        "state": rec.state.value,
        "mac2_verified": rec.mac2_verified,
        "key_version": f"{rec.key_version:02X}",
        "algorithm": f"{rec.algorithm:02X}",
        "evidence": rec.evidence.value or None,
        "card_record": None if (record := entry.card_record) is None else to_hex(record),
        "technology": rec.technology.value,
        "card_uid": None if rec.card_uid is None else to_hex(rec.card_uid),
    }


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _states(states: Iterable[DebitState | str] | None) -> tuple[DebitState, ...] | None:
    if states is None:
        return None
    wanted = []
    for state in states:
        try:
            wanted.append(DebitState(state))
        except ValueError:
            known = ", ".join(s.value for s in DebitState)
            raise SettlementError(f"unknown state {state!r} (known: {known})") from None
    return tuple(wanted)


def _opened(db: Journal | str | os.PathLike[str], damaged: str) -> tuple[Journal, bool]:
    """The journal to read, and whether it was opened here (a path opens the SQLite file read-only)."""
    if isinstance(db, Journal):
        return db, False
    return SqliteJournal(db, readonly=True, damaged=damaged), True


def export(db: Journal | str | os.PathLike[str], out: TextIO, format: str = "csv",
           states: Iterable[DebitState | str] | None = None, *, damaged: str = "stop") -> int:
    """Write the rows of ``db`` (a journal, or the path of a SQLite journal) to ``out``; returns how many rows.

    ``states`` keeps only rows in those states (all rows when ``None``). Nothing reaches ``out`` until every row has
    been read: a journal that cannot be read whole raises and writes nothing.
    """
    if format not in FORMATS:
        raise SettlementError(f"unknown export format {format!r} (known: {', '.join(FORMATS)})")
    wanted = _states(states)
    journal, owned = _opened(db, damaged)
    count = 0
    with tempfile.SpooledTemporaryFile(_SPOOL, mode="w+", encoding="utf-8", newline="") as held:
        try:
            if format == "csv":
                writer = csv.writer(held, lineterminator="\n")
                writer.writerow(EXPORT_FIELDS)
                for entry in journal.entries(wanted):
                    writer.writerow([_csv_value(v) for v in settlement_record(entry).values()])
                    count += 1
            else:
                for entry in journal.entries(wanted):
                    held.write(json.dumps(settlement_record(entry), separators=(",", ":")) + "\n")
                    count += 1
        finally:
            if owned:
                journal.close()
        held.seek(0)
        shutil.copyfileobj(held, out)
    return count


@dataclass(frozen=True, slots=True)
class Mismatch:
    """A complete row whose journaled TAC is not the one its keys give."""

    row_id: int
    card_serial: bytes
    atc: int
    expected: bytes
    journaled: bytes


@dataclass(frozen=True, slots=True)
class Unverifiable:
    """A complete row whose TAC cannot be recomputed with this key set (the reason says why)."""

    row_id: int
    card_serial: bytes
    atc: int
    reason: str


@dataclass(slots=True)
class VerifyReport:
    """The outcome of :func:`verify`. ``ok`` only when every complete row verified."""

    verified: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)
    unverifiable: list[Unverifiable] = field(default_factory=list)
    open: list[JournalEntry] = field(default_factory=list)  # pending and unconfirmed rows, not settled yet
    from_log: list[JournalEntry] = field(default_factory=list)  # complete from the card's 0x18 record: no TAC
    void: int = 0
    quarantined: list[DamagedRow] = field(default_factory=list)  # set aside by the quarantine policy, unread
    test_only_keys: bool = False

    @property
    def ok(self) -> bool:
        """Every complete row with a TAC verified, and no row was set aside unread."""
        return not self.mismatches and not self.unverifiable and not self.quarantined


class _TacKeys:
    """TAC keys per card, made once per (card, issuer, key version) for journals with many debits per card."""

    def __init__(self, keyset: Keyset) -> None:
        self.keyset = keyset
        self._keys: dict[tuple[bytes, bytes, int], SessionKey] = {}

    def for_record(self, entry: JournalEntry) -> SessionKey:
        rec = entry.record
        if rec.trans_type not in PURCHASE_TYPES:
            raise _Skip(f"transaction type {rec.trans_type:02X} has no purchase TAC")
        algorithm = algorithm_for(rec.algorithm)
        if algorithm is not self.keyset.algorithm:
            raise _Skip(f"the card used {algorithm.value} (algorithm id {rec.algorithm:02X}), "
                        f"the key set is {self.keyset.algorithm.value}")
        cache_key = (rec.card_serial, rec.issuer_id, rec.key_version)
        key = self._keys.get(cache_key)
        if key is None:
            dtk = self.keyset.card_key(KeyUsage.TAC, rec.key_version, issuer_id=rec.issuer_id,
                                       card_serial=rec.card_serial)
            key = self._keys[cache_key] = tac_key(dtk)
        return key


class _Skip(Exception):
    """A row this key set cannot verify; the message is the reason."""


def expected_tac(key: SessionKey, entry: JournalEntry) -> bytes:
    """The purchase TAC the card should have answered for this row, under the card's TAC key."""
    rec = entry.record
    return purchase_tac(key, rec.amount, rec.trans_type, rec.terminal_id, rec.tsn, encode_datetime(rec.when))


def expected_m1_mac(keyset: Keyset, entry: JournalEntry) -> bytes:
    """The transaction MAC the PSAM should have computed for this M1 row, from the key set's ``m1_tac`` master."""
    rec = entry.record
    assert rec.card_uid is not None  # an M1 row always has one (the journal checks it)
    card_number = m1_card_number(rec.card_serial)
    data = PURCHASE_MAC_DATA.pack(card_number, auth_uid(rec.card_uid), (rec.offline_atc + 1) & 0xFFFF,
                                  rec.balance_before, rec.amount, rec.trans_type, rec.terminal_id, rec.tsn, rec.when)
    return purchase_mac(keyset.m1_card_key(KeyUsage.M1_TAC, rec.key_version, card_number), data)


def verify(db: Journal | str | os.PathLike[str], keyset: Keyset, *, damaged: str = "stop") -> VerifyReport:
    """Recompute the TAC of every complete row of ``db`` (a journal or a SQLite journal's path) with ``keyset``."""
    report = VerifyReport(test_only_keys=keyset.test_only)
    keys = _TacKeys(keyset)
    journal, owned = _opened(db, damaged)
    try:
        for entry in journal.entries():
            rec = entry.record
            if rec.state is DebitState.VOID:
                report.void += 1
                continue
            if rec.state is not DebitState.COMPLETE:
                report.open.append(entry)
                continue
            m1 = rec.technology is Technology.M1
            if rec.evidence is Evidence.LOG and not m1:
                report.from_log.append(entry)
                continue
            try:
                expected = expected_m1_mac(keyset, entry) if m1 else expected_tac(keys.for_record(entry), entry)
            except (_Skip, YktError) as exc:
                report.unverifiable.append(Unverifiable(entry.row_id, rec.card_serial, rec.offline_atc, str(exc)))
                continue
            if rec.tac is not None and macs_equal(expected, rec.tac):
                report.verified += 1
            else:
                report.mismatches.append(Mismatch(entry.row_id, rec.card_serial, rec.offline_atc, expected,
                                                  rec.tac or b""))
        report.quarantined = list(journal.quarantined.values())
    finally:
        if owned:
            journal.close()
    return report
