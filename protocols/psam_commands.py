"""The PSAM's command set (spec §2): MAC1 and MAC2 for purchases, key diversification and general DES/MAC.

Reading the terminal number and the purchase key index, and selecting the T-Union DF, are plain ISO commands: the
card classes :class:`~protocols.card_commands.ReadBinary` and :class:`~protocols.card_commands.SelectByFid` serve, and
the helpers below only name their parameters. On T=0, which most PSAMs use, a command with data goes without Le and
the PSAM answers ``61xx``; :class:`~protocols.card_commands.GetResponse` fetches the answer.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import IntEnum
from typing import Self

import construct as c

from .card_commands import (Command, CommandSet, GetResponse,
                            MacCommand, ReadBinary, SelectByFid, SelectByName)
from .fields import BcdDateTime
from .layout import Layout
from .status import PsamStatus

T_UNION_PSAM_DF = 0x8011
"""DF of the 交通部 (T-Union) PSAM application."""
MOHURD_PSAM_DF = 0x1003
"""DF of the 住建部 (city-card, MOHURD) PSAM application."""
SFI_TERMINAL_NUMBER = 0x16  # in the MF
TERMINAL_NUMBER_SIZE = 6
SFI_KEY_INDEX = 0x17  # in DF 8011


def read_terminal_number() -> ReadBinary:
    """``00 B0 96 00 06``: the 6-byte terminal number (终端机编号) that goes into 8050 and every record."""
    return ReadBinary(SFI_TERMINAL_NUMBER, 0, TERMINAL_NUMBER_SIZE)


def select_application(fid: int = T_UNION_PSAM_DF) -> SelectByFid:
    """``00 A4 00 00 02 8011``: the PSAM's purchase application."""
    return SelectByFid(fid)


def read_key_index() -> ReadBinary:
    """``00 B0 97 00 01``: the purchase key index, sent as the key index of INITIALIZE FOR PURCHASE."""
    return ReadBinary(SFI_KEY_INDEX, 0, 1)


# --- INIT SAM FOR PURCHASE (8070) -------------------------------------------------------------------------------------

@dataclass(slots=True)
class SamPurchaseDataOneLevel:
    """8070 data with one-level diversification (Lc 1C): the factor is the card serial alone (city-only PSAMs)."""

    random: bytes
    offline_atc: int
    amount: int
    transaction_type: int
    when: dt.datetime
    key_version: int
    algorithm_id: int
    card_serial: bytes


@dataclass(slots=True)
class SamPurchaseDataTwoLevel:
    """8070 data with two-level diversification (Lc 24), as T-Union cards need: card serial, then issuer ID."""

    random: bytes
    offline_atc: int
    amount: int
    transaction_type: int
    when: dt.datetime
    key_version: int
    algorithm_id: int
    card_serial: bytes
    issuer_id: bytes


_SAM_PURCHASE_FIELDS = (
    "random" / c.Bytes(4),  # INITIALIZE response [11..14]
    "offline_atc" / c.Int16ub,  # INITIALIZE response [4..5]
    "amount" / c.Int32ub,
    "transaction_type" / c.Int8ub,  # 06 EP purchase, 05 ED purchase, 09 composite
    "when" / BcdDateTime,  # the same 7 bytes go into DEBIT
    "key_version" / c.Int8ub,  # INITIALIZE response [9]
    "algorithm_id" / c.Int8ub,  # INITIALIZE response [10]
    "card_serial" / c.Bytes(8),  # file 0x15 [12..19], the last 8 of the 10-byte serial
)

SAM_PURCHASE_DATA_1 = Layout(
    SamPurchaseDataOneLevel,
    *_SAM_PURCHASE_FIELDS,
    examples=(
        # BLOG-P's purchase (ATC 0000, 0x1000 fen, type 06, 2012-02-29 13:51:00, key version 01, algorithm 00) for the
        # §3.5 card serial.
        ("11223344 0000 00001000 06 20120229135100 01 00 4991585000011383",
         SamPurchaseDataOneLevel(bytes.fromhex("11223344"), 0, 0x1000, 0x06, dt.datetime(2012, 2, 29, 13, 51), 1, 0,
                                 bytes.fromhex("4991585000011383"))),
    ),
)

SAM_PURCHASE_DATA_2 = Layout(
    SamPurchaseDataTwoLevel,
    *_SAM_PURCHASE_FIELDS,
    "issuer_id" / c.Bytes(8),  # file 0x15 [0..7]
    examples=(
        # §3.5 two-level example (key version 01, algorithm 00 filled in for the spec's <kv> <alg>).
        ("11223344 0036 000000C8 09 20180313164329 01 00 4991585000011383 02403640FFFFFFFF",
         SamPurchaseDataTwoLevel(bytes.fromhex("11223344"), 0x36, 200, 0x09, dt.datetime(2018, 3, 13, 16, 43, 29),
                                 1, 0, bytes.fromhex("4991585000011383"), bytes.fromhex("02403640FFFFFFFF"))),
    ),
)


@dataclass(slots=True)
class SamPurchaseResponse:
    """Answer to INIT SAM FOR PURCHASE: the PSAM's TSN, copied byte-exact into DEBIT, and MAC1."""

    tsn: int
    mac1: bytes


SAM_PURCHASE_RESPONSE = Layout(
    SamPurchaseResponse,
    "tsn" / c.Int32ub,
    "mac1" / c.Bytes(4),
    examples=(("00000057 2B1D974F", SamPurchaseResponse(0x57, bytes.fromhex("2B1D974F"))),),  # §3.5
)


@dataclass(slots=True)
class InitSamForPurchase(Command):
    """INIT SAM FOR PURCHASE: ``80 70 00 00 Lc data [08]``; the PSAM derives the session key and answers TSN ‖ MAC1.

    ``issuer_id`` given: two-level diversification (Lc 24, T-Union); ``None``: one level (Lc 1C). Three levels
    (Lc 2C) appear in no source and are refused.
    """

    CLA = 0x80
    INS = 0x70
    P1 = 0x00
    P2 = 0x00
    RESPONSE = SAM_PURCHASE_RESPONSE

    random: bytes
    offline_atc: int
    amount: int
    transaction_type: int
    when: dt.datetime
    key_version: int
    algorithm_id: int
    card_serial: bytes
    issuer_id: bytes | None = None
    le: int | None = None

    def to_bytes(self) -> bytes:
        self._check_when(self.when)
        if self.issuer_id is None:
            data = SAM_PURCHASE_DATA_1.pack(self.random, self.offline_atc, self.amount, self.transaction_type,
                                            self.when, self.key_version, self.algorithm_id, self.card_serial)
        else:
            data = SAM_PURCHASE_DATA_2.pack(self.random, self.offline_atc, self.amount, self.transaction_type,
                                            self.when, self.key_version, self.algorithm_id, self.card_serial,
                                            self.issuer_id)
        return bytes((0x80, 0x70, 0x00, 0x00, len(data))) + data + self._fixed_le_byte(self.le, 8)

    @classmethod
    def _decode(cls, p1: int, p2: int, data: bytes, le: int | None) -> Self:
        size = len(data)
        if size == SAM_PURCHASE_DATA_2.size:
            random, atc, amount, kind, when, key_version, algorithm_id, card_serial, issuer_id = cls._parse_data(
                SAM_PURCHASE_DATA_2, data)
        elif size == SAM_PURCHASE_DATA_1.size:
            random, atc, amount, kind, when, key_version, algorithm_id, card_serial = cls._parse_data(
                SAM_PURCHASE_DATA_1, data)
            issuer_id = None
        else:
            raise cls._error(f"Lc must be 1C (one-level) or 24 (two-level), got {size:02X}", PsamStatus.WRONG_LENGTH)
        cls._check_when(when)
        cls._check_fixed_le(le, 8)
        return cls(random, atc, amount, kind, when, key_version, algorithm_id, card_serial, issuer_id, le)


@dataclass(slots=True)
class CreditSamForPurchase(MacCommand):
    """CREDIT SAM FOR PURCHASE: ``80 72 00 00 04 MAC2``; 9000 means the card's MAC2 is genuine.

    ``mac`` is the card's MAC2 from DEBIT's answer. Valid once, right after 8070 (how PBOC PSAMs behave; UNCONFIRMED).
    """

    CLA = 0x80
    INS = 0x72


# --- key diversification and general DES (801A, 80FA) ---------------------------------------------------------------

class KeyUsage(IntEnum):
    """P1 of DES INIT values seen in validator code; a PSAM may hold others, so the field stays an int."""

    TAC = 0x44  # recompute a TAC (TAC-P)
    MAINTENANCE = 0x45  # line-protection MAC for APPLICATION BLOCK (BJ, SH)
    M1_AUTH = 0x25  # an M1 card's issuer authentication code: this project's choice, no source shows one


@dataclass(slots=True)
class DesInit(Command):
    """DES INIT: ``80 1A <key usage> <key version> Lc factors``: diversify a master key for the next 80FA.

    ``factors`` are 8 bytes each, one to three, lowest level first (card serial, then issuer ID).
    """

    CLA = 0x80
    INS = 0x1A

    key_usage: int
    key_version: int
    factors: tuple[bytes, ...]

    def to_bytes(self) -> bytes:
        p1 = self._check_byte(self.key_usage, "key usage", PsamStatus.WRONG_P1P2)
        p2 = self._check_byte(self.key_version, "key version", PsamStatus.WRONG_P1P2)
        factors = self.factors
        if not isinstance(factors, tuple) or not 1 <= len(factors) <= 3:
            raise self._error("one to three diversification factors are needed", PsamStatus.WRONG_LENGTH)
        data = b"".join(self._check_bytes(f, _BLOCK, "diversification factor") for f in factors)
        return bytes((0x80, 0x1A, p1, p2, len(data))) + data

    @classmethod
    def _decode(cls, p1: int, p2: int, data: bytes, le: int | None) -> Self:
        if len(data) not in (8, 16, 24):
            raise cls._error(f"Lc must be 08, 10 or 18, got {len(data):02X}", PsamStatus.WRONG_LENGTH)
        cls._check_no_le(le)
        return cls(p1, p2, tuple(data[i:i + 8] for i in range(0, len(data), 8)))


@dataclass(slots=True)
class DesEncrypt(Command):
    """DES CRYPT, encrypt: ``80 FA 00 00 Lc data [Le]`` with the key DES INIT prepared; whole 8-byte blocks."""

    CLA = 0x80
    INS = 0xFA
    P1 = 0x00
    P2 = 0x00

    data: bytes
    le: int | None = None

    def to_bytes(self) -> bytes:
        data = _check_blocks(self, self.data, 1, _MAX_BLOCKS)
        return bytes((0x80, 0xFA, 0x00, 0x00, len(data))) + data + self._le_byte(self.le)

    @classmethod
    def _decode(cls, p1: int, p2: int, data: bytes, le: int | None) -> Self:
        return cls(_check_blocks(cls, data, 1, _MAX_BLOCKS), le)


@dataclass(slots=True)
class DesMac(Command):
    """DES CRYPT, MAC: ``80 FA 05 00 Lc IV data [Le]``; the caller pads ``data`` (ISO 9797-1 method 2) itself.

    Answers the MAC, 4 bytes on most PSAMs, 8 on some. The rest of 80FA's P1 bit map is UNCONFIRMED.
    """

    CLA = 0x80
    INS = 0xFA
    P1 = 0x05
    P2 = 0x00

    iv: bytes
    data: bytes
    le: int | None = None

    def to_bytes(self) -> bytes:
        iv = self._check_bytes(self.iv, _BLOCK, "IV")
        data = _check_blocks(self, self.data, 1, _MAX_BLOCKS - 1)
        return bytes((0x80, 0xFA, 0x05, 0x00, 8 + len(data))) + iv + data + self._le_byte(self.le)

    @classmethod
    def _decode(cls, p1: int, p2: int, data: bytes, le: int | None) -> Self:
        data = _check_blocks(cls, data, 2, _MAX_BLOCKS)
        return cls(data[:8], data[8:], le)


class M1KeyType(IntEnum):
    """P1 of M1 SECTOR KEYS: which of a sector's two keys."""

    A = 0x01
    B = 0x02


M1_MAX_SECTORS = 40  # a MIFARE Classic 4K


@dataclass(slots=True)
class M1SectorKeys(Command):
    """M1 SECTOR KEYS: ``80 FC <key type> <key version> Lc UID(4) ‖ sector numbers [Le]``; the PSAM answers the
    6-byte key of each sector, in order, from its M1 masters by the key rule (:mod:`protocols.m1.keys`).

    Modeled on the command a public Tianjin validator sends its MOHURD PSAM for an M1 city card's sector keys
    (``80 FC 01 01`` with 16 bytes of card data, answered by four 6-byte keys); that command's data layout is not
    public, so this one is this project's (UNCONFIRMED). ``key_version`` is the card's key version (block 4); the
    rule keys sectors 0 and 1 with its issuance version whatever this says.
    """

    CLA = 0x80
    INS = 0xFC

    key_type: int
    key_version: int
    uid: bytes
    sectors: tuple[int, ...]
    le: int | None = None

    def to_bytes(self) -> bytes:
        p1 = self._check_byte(self.key_type, "key type", PsamStatus.WRONG_P1P2)
        p2 = self._check_byte(self.key_version, "key version", PsamStatus.WRONG_P1P2)
        uid = self._check_bytes(self.uid, range(4, 5), "UID")
        sectors = self.sectors
        if not isinstance(sectors, tuple) or not 1 <= len(sectors) <= M1_MAX_SECTORS:
            raise self._error(f"one to {M1_MAX_SECTORS} sectors", PsamStatus.WRONG_LENGTH)
        data = uid + bytes(self._check_byte(sector, "sector", PsamStatus.WRONG_DATA) for sector in sectors)
        return bytes((0x80, 0xFC, p1, p2, len(data))) + data + self._le_byte(self.le)

    @classmethod
    def _decode(cls, p1: int, p2: int, data: bytes, le: int | None) -> Self:
        if p1 not in tuple(M1KeyType):
            raise cls._error(f"key type {p1:02X}: 01 key A or 02 key B", PsamStatus.WRONG_P1P2)
        if not 5 <= len(data) <= 4 + M1_MAX_SECTORS:
            raise cls._error(f"Lc must be 05..{4 + M1_MAX_SECTORS:02X}, got {len(data):02X}", PsamStatus.WRONG_LENGTH)
        if any(sector >= M1_MAX_SECTORS for sector in data[4:]):
            raise cls._error(f"a sector number is 00..{M1_MAX_SECTORS - 1:02X}", PsamStatus.WRONG_DATA)
        return cls(p1, p2, data[:4], tuple(data[4:]), le)


@dataclass(slots=True)
class M1PurchaseMacInput:
    """What the terminal gives M1 PURCHASE MAC: the debit as :data:`protocols.m1.crypto.PURCHASE_MAC_DATA` covers it,
    less the terminal number and serial, which are the PSAM's own."""

    card_number: bytes
    uid: bytes
    counter: int
    balance_before: int
    amount: int
    transaction_type: int
    when: dt.datetime


M1_PURCHASE_MAC_INPUT = Layout(
    M1PurchaseMacInput,
    "card_number" / c.Bytes(8),
    "uid" / c.Bytes(4),  # the 4 bytes AUTH carries
    "counter" / c.Int16ub,  # the card's counter after the debit
    "balance_before" / c.Int32ub,
    "amount" / c.Int32ub,
    "transaction_type" / c.Int8ub,
    "when" / BcdDateTime,
    examples=(
        # the debit of docs/m1-purse-layout.md: 2.00 from 100.00, counter 0 to 1
        ("3640000100000042 40C2AB5C 0001 00002710 000000C8 06 20250314083000",
         M1PurchaseMacInput(bytes.fromhex("3640000100000042"), bytes.fromhex("40C2AB5C"), 1, 10000, 200, 0x06,
                            dt.datetime(2025, 3, 14, 8, 30))),
    ),
)


@dataclass(slots=True)
class M1PurchaseMac(Command):
    """M1 PURCHASE MAC: ``80 7C 00 <key version> 1E data [08]``; the PSAM answers TSN ‖ MAC, as it answers INIT SAM FOR
    PURCHASE (:data:`SAM_PURCHASE_RESPONSE`, the MAC in its ``mac1``), and counts its TSN.

    The transaction MAC of an M1 city card's debit (``docs/m1-purse-layout.md``), the journal's equivalent of a CPU
    card's TAC: the PSAM diversifies its ``m1_tac`` master of ``key_version`` by the card number, MACs the debit
    (:data:`M1_PURCHASE_MAC_INPUT`) with its own terminal number and its next transaction serial, and counts that
    serial up as INIT SAM FOR PURCHASE does, so every debit of a terminal, CPU or M1, has a serial of its own. No public
    source shows how a PSAM numbers M1 debits: the command (INS 7C) and its layout are this project's (UNCONFIRMED).
    """

    CLA = 0x80
    INS = 0x7C
    P1 = 0x00
    RESPONSE = SAM_PURCHASE_RESPONSE

    key_version: int
    card_number: bytes
    uid: bytes
    counter: int
    balance_before: int
    amount: int
    transaction_type: int
    when: dt.datetime
    le: int | None = None

    def to_bytes(self) -> bytes:
        self._check_when(self.when)
        p2 = self._check_byte(self.key_version, "key version", PsamStatus.WRONG_P1P2)
        data = M1_PURCHASE_MAC_INPUT.pack(self.card_number, self.uid, self.counter, self.balance_before, self.amount,
                                          self.transaction_type, self.when)
        return bytes((0x80, 0x7C, 0x00, p2, len(data))) + data + self._fixed_le_byte(self.le, 8)

    @classmethod
    def _decode(cls, p1: int, p2: int, data: bytes, le: int | None) -> Self:
        if len(data) != M1_PURCHASE_MAC_INPUT.size:
            raise cls._error(f"Lc must be {M1_PURCHASE_MAC_INPUT.size:02X}, got {len(data):02X}",
                             PsamStatus.WRONG_LENGTH)
        card_number, uid, counter, balance_before, amount, kind, when = cls._parse_data(M1_PURCHASE_MAC_INPUT, data)
        cls._check_when(when)
        cls._check_fixed_le(le, 8)
        return cls(p2, card_number, uid, counter, balance_before, amount, kind, when, le)


_BLOCK = range(8, 9)
_MAX_BLOCKS = 31  # 248 bytes, the most whole blocks a short APDU carries


def _check_blocks(command: Command | type[Command], data: bytes, least: int, most: int) -> bytes:
    """80FA data must be whole 8-byte blocks: the PSAM pads nothing itself."""
    if not isinstance(data, bytes) or len(data) % 8 or not 8 * least <= len(data) <= 8 * most:
        got = f"{len(data)} bytes" if isinstance(data, bytes) else type(data).__name__
        raise command._error(f"data must be {least} to {most} whole 8-byte blocks, got {got}", PsamStatus.WRONG_LENGTH)
    return data

PsamCommand = (SelectByFid | SelectByName | ReadBinary | GetResponse | InitSamForPurchase | CreditSamForPurchase
               | DesInit | DesEncrypt | DesMac | M1SectorKeys | M1PurchaseMac)

PSAM_COMMANDS = CommandSet(SelectByFid, SelectByName, ReadBinary, GetResponse, InitSamForPurchase,
                           CreditSamForPurchase, DesInit, DesEncrypt, DesMac, M1SectorKeys, M1PurchaseMac)


def parse_psam_command(raw: bytes) -> PsamCommand:
    """A raw C-APDU sent to a PSAM as its command object; ProtocolError with the PSAM's status word otherwise."""
    return PSAM_COMMANDS.parse(raw)  # type: ignore[return-value]
