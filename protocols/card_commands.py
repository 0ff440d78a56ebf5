"""The card's command set (spec §1): one class per command, with exact bytes in both directions.

A terminal builds a command object and sends ``to_bytes()``; a simulated card turns received bytes back into the
same object with :func:`parse_card_command` (or ``Class.from_apdu``), which refuses what a card would refuse, with
the status word it would answer: 6E00 wrong CLA, 6D00 unknown INS, 6A86 wrong P1-P2, 6700 wrong Lc or missing Le,
6Cxx wrong Le on a command whose answer has a fixed size xx (so the T=0/T=CL retry logic gets exercised), 6A80 a data
field that does not decode (a BCD date-time that is not a date-time).

``to_bytes`` is written directly (a precomputed header and the data layout's fast ``struct`` engine, packing the
field values without a model instance) because the terminal builds 8050, 80DC and 8054 on every tap; ``to_apdu``
derives from it, so the two views cannot disagree.
Fixed-size data fields and responses are :class:`~protocols.layout.Layout` s; a field of one integer or one MAC is
its own encoding and needs none.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import IntEnum
from collections.abc import Sequence
from typing import Any, ClassVar, Self

import construct as c

from .apdu import CommandAPDU, split_command
from .errors import ProtocolError
from .fields import BcdDateTime
from .layout import Layout
from .status import CardStatus, resend_with_le

MAX_SFI = 30  # SFI 31 (11111) is reserved by ISO 7816-4
_AID_SIZES = range(1, 17)  # ISO 7816-4 DF names: at most 16 bytes
_RECORD_SIZES = range(1, 256)
_MAC_SIZE = range(4, 5)


class Purse(IntEnum):
    """P2 of GET BALANCE and INITIALIZE: which purse of the application."""

    ED = 0x01  # 电子存折, passbook
    EP = 0x02  # 电子钱包, purse: what transit uses


class RecordMode(IntEnum):
    """Low 3 bits of P2 in READ RECORD / UPDATE CAPP DATA CACHE: what P1 means."""

    IDENTIFIER = 0b000  # P1 is a record identifier (the 0x1A record's id byte; 00 appends to a cyclic file)
    NUMBER = 0b100  # P1 is a record number, 1 = newest in a cyclic file


_PURSES = {p.value: p for p in Purse}
_MODES = {m.value: m for m in RecordMode}
_SELECT_P2 = (0x00, 0x0C)  # 00: return the FCI; 0C: no response data


# --- data fields and responses --------------------------------------------------------------------------------------

@dataclass(slots=True)
class InitializeData:
    """Data of INITIALIZE FOR PURCHASE / CAPP PURCHASE / LOAD: key index, amount in fen, PSAM terminal number."""

    key_index: int
    amount: int
    terminal_number: bytes


INITIALIZE_DATA = Layout(
    InitializeData,
    "key_index" / c.Int8ub,
    "amount" / c.Int32ub,
    "terminal_number" / c.Bytes(6),
    examples=(
        # BLOG-P / BLOG-L: amount 0x1000 fen at terminal 001122334455 (key index 01).
        ("01 00001000 001122334455", InitializeData(1, 0x1000, bytes.fromhex("001122334455"))),
        # §3.5/§5.2: 2.00 CNY at terminal 200041599997.
        ("01 000000C8 200041599997", InitializeData(1, 200, bytes.fromhex("200041599997"))),
    ),
)


@dataclass(slots=True)
class DebitData:
    """Data of DEBIT FOR PURCHASE / CAPP PURCHASE: the PSAM's TSN, the date-time sent to the PSAM, MAC1."""

    tsn: int
    when: dt.datetime
    mac1: bytes


DEBIT_DATA = Layout(
    DebitData,
    "tsn" / c.Int32ub,
    "when" / BcdDateTime,
    "mac1" / c.Bytes(4),
    examples=(
        # §3.5 end-to-end example: TSN 00000057, 2018-03-13 16:43:29, MAC1 2B1D974F.
        ("00000057 20180313164329 2B1D974F",
         DebitData(0x57, dt.datetime(2018, 3, 13, 16, 43, 29), bytes.fromhex("2B1D974F"))),
    ),
)


@dataclass(slots=True)
class CreditData:
    """Data of CREDIT FOR LOAD: the date-time of the load and MAC2 from the load host."""

    when: dt.datetime
    mac2: bytes


CREDIT_DATA = Layout(
    CreditData,
    "when" / BcdDateTime,
    "mac2" / c.Bytes(4),
    examples=(
        # BLOG-L: 2011-12-21 21:48:22, MAC2 3A845BF0.
        ("20111221 214822 3A845BF0", CreditData(dt.datetime(2011, 12, 21, 21, 48, 22), bytes.fromhex("3A845BF0"))),
    ),
)


@dataclass(slots=True)
class PurchaseInitResponse:
    """Answer to INITIALIZE FOR (CAPP) PURCHASE: what the PSAM needs for MAC1, and the balance before the debit."""

    balance: int
    offline_atc: int
    overdraft_limit: int
    key_version: int
    algorithm_id: int
    random: bytes


PURCHASE_INIT_RESPONSE = Layout(
    PurchaseInitResponse,
    "balance" / c.Int32ub,
    "offline_atc" / c.Int16ub,
    "overdraft_limit" / c.BytesInteger(3),
    "key_version" / c.Int8ub,
    "algorithm_id" / c.Int8ub,
    "random" / c.Bytes(4),
    examples=(
        # BLOG-P.
        ("00000000 0000 000000 01 00 11223344", PurchaseInitResponse(0, 0, 0, 1, 0, bytes.fromhex("11223344"))),
        # §5.2 step 6 with the §3.5 numbers (balance 100.00 CNY made up): ATC 0036, random 11223344.
        ("00002710 0036 000000 01 00 11223344", PurchaseInitResponse(10000, 0x36, 0, 1, 0, bytes.fromhex("11223344"))),
    ),
)


@dataclass(slots=True)
class LoadInitResponse:
    """Answer to INITIALIZE FOR LOAD: the card's MAC1 proves it to the load host."""

    balance: int
    online_atc: int
    key_version: int
    algorithm_id: int
    random: bytes
    mac1: bytes


LOAD_INIT_RESPONSE = Layout(
    LoadInitResponse,
    "balance" / c.Int32ub,
    "online_atc" / c.Int16ub,
    "key_version" / c.Int8ub,
    "algorithm_id" / c.Int8ub,
    "random" / c.Bytes(4),
    "mac1" / c.Bytes(4),
    examples=(
        # BLOG-L.
        ("00000000 0000 02 00 11223344 2988AE5A",
         LoadInitResponse(0, 0, 2, 0, bytes.fromhex("11223344"), bytes.fromhex("2988AE5A"))),
    ),
)


@dataclass(slots=True)
class DebitResponse:
    """Answer to DEBIT FOR (CAPP) PURCHASE: TAC first, then MAC2 (GET TRANSACTION PROVE answers the other way round)."""

    tac: bytes
    mac2: bytes


DEBIT_RESPONSE = Layout(
    DebitResponse,
    "tac" / c.Bytes(4),
    "mac2" / c.Bytes(4),
    examples=(
        # §3.5 end-to-end example: TAC F252E12F, MAC2 CAEC0601.
        ("F252E12F CAEC0601", DebitResponse(bytes.fromhex("F252E12F"), bytes.fromhex("CAEC0601"))),
    ),
)


@dataclass(slots=True)
class ProveResponse:
    """Answer to GET TRANSACTION PROVE: MAC2 first, then TAC, reversed from DEBIT's answer."""

    mac2: bytes
    tac: bytes


PROVE_RESPONSE = Layout(
    ProveResponse,
    "mac2" / c.Bytes(4),
    "tac" / c.Bytes(4),
    examples=(
        # The same debit as DEBIT_RESPONSE's example, proven after a tear.
        ("CAEC0601 F252E12F", ProveResponse(bytes.fromhex("CAEC0601"), bytes.fromhex("F252E12F"))),
    ),
)


@dataclass(slots=True)
class CreditResponse:
    """Answer to CREDIT FOR LOAD."""

    tac: bytes


CREDIT_RESPONSE = Layout(
    CreditResponse,
    "tac" / c.Bytes(4),
    examples=(
        # No public load TAC exists: this is the FM layout over BLOG-L's load with BLOG-P's TAC key (self-computed).
        ("6314E5F5", CreditResponse(bytes.fromhex("6314E5F5"))),
    ),
)


@dataclass(slots=True)
class BalanceResponse:
    """Answer to GET BALANCE, in fen. Some cards use bit 31 as a flag; masking it is the display's business."""

    balance: int


BALANCE_RESPONSE = Layout(
    BalanceResponse,
    "balance" / c.Int32ub,
    examples=(("00002710", BalanceResponse(10000)),),
)


# --- the command classes --------------------------------------------------------------------------------------------

class Command:
    """What every command class offers. Subclasses are slotted dataclasses and set the class constants.

    ``P1``/``P2`` are set when the command fixes them (the dispatcher routes on a fixed P1); ``RESPONSE`` is the
    layout of the answer when it has a fixed size.
    """

    __slots__ = ()
    CLA: ClassVar[int]
    INS: ClassVar[int]
    P1: ClassVar[int | None] = None
    P2: ClassVar[int | None] = None
    RESPONSE: ClassVar[Layout | None] = None

    def to_bytes(self) -> bytes:
        raise NotImplementedError

    def to_apdu(self) -> CommandAPDU:
        """The command as a :class:`CommandAPDU`, made from :meth:`to_bytes` so the two never disagree."""
        return CommandAPDU.parse(self.to_bytes())

    @classmethod
    def from_apdu(cls, apdu: CommandAPDU) -> Self:
        """The command in ``apdu``; :class:`ProtocolError` with the card's status word when it is not this one."""
        if apdu.cla != cls.CLA:
            raise cls._error(f"CLA {apdu.cla:02X}, expected {cls.CLA:02X}", CardStatus.UNKNOWN_CLA)
        if apdu.ins != cls.INS:
            raise cls._error(f"INS {apdu.ins:02X}, expected {cls.INS:02X}", CardStatus.UNKNOWN_INS)
        cls._check_parameters(apdu.p1, apdu.p2, apdu.extended)
        return cls._decode(apdu.p1, apdu.p2, apdu.data, apdu.le)

    @classmethod
    def from_bytes(cls, raw: bytes) -> Self:
        return cls.from_apdu(CommandAPDU.parse(raw))

    @classmethod
    def _decode(cls, p1: int, p2: int, data: bytes, le: int | None) -> Self:
        """The command from the parts of a short APDU whose CLA, INS and fixed P1/P2 are this command's."""
        raise NotImplementedError

    @classmethod
    def _error(cls, message: str, sw: int | None = None) -> ProtocolError:
        return ProtocolError(f"{cls.__name__}: {message}", sw=sw)

    @classmethod
    def _check_parameters(cls, p1: int, p2: int, extended: bool) -> None:
        """The P1 and P2 the command fixes, and short length fields (no command here takes an extended APDU)."""
        if (cls.P1 is not None and p1 != cls.P1) or (cls.P2 is not None and p2 != cls.P2):
            raise cls._error(f"P1-P2 {p1:02X}{p2:02X} not supported", CardStatus.WRONG_P1P2)
        if extended:
            raise cls._error("extended length APDUs are not supported", CardStatus.WRONG_LENGTH)

    @classmethod
    def _check_no_data(cls, data: bytes) -> None:
        if data:
            raise cls._error(f"takes no data, got {len(data)} bytes", CardStatus.WRONG_LENGTH)

    @classmethod
    def _check_data_size(cls, data: bytes, size: int) -> None:
        if len(data) != size:
            raise cls._error(f"Lc must be {size}, got {len(data)}", CardStatus.WRONG_LENGTH)

    @classmethod
    def _check_no_le(cls, le: int | None) -> None:
        if le is not None:
            raise cls._error("takes no Le", CardStatus.WRONG_LENGTH)

    @classmethod
    def _check_fixed_le(cls, le: int | None, size: int, *, required: bool = False) -> None:
        """Le for an answer of exactly ``size`` bytes must be ``size``, ``00`` (256, "all there is") or absent (6700
        when ``required``); a wrong Le is 6Cxx, the card's "resend with Le = xx"."""
        if le is None:
            if required:
                raise cls._error("Le is missing", CardStatus.WRONG_LENGTH)
        elif le != size and le != 256:
            raise cls._error(f"Le {le}, the answer is {size} bytes", resend_with_le(size))

    @classmethod
    def _fixed_le_byte(cls, le: int | None, size: int, *, required: bool = False) -> bytes:
        """The Le byte to send for an answer of exactly ``size`` bytes (checked by :meth:`_check_fixed_le`)."""
        cls._check_fixed_le(le, size, required=required)
        return b"" if le is None else bytes((le & 0xFF,))

    @classmethod
    def _required_le(cls, le: int | None) -> int:
        """Le that must be there, 1..256 (6700 otherwise), for commands whose answer has no fixed size."""
        if le is None:
            raise cls._error("Le is missing", CardStatus.WRONG_LENGTH)
        cls._le_byte(le)
        return le

    @classmethod
    def _le_byte(cls, le: int | None, *, required: bool = False) -> bytes:
        """Le for an answer of any size, 1..256 (256 is sent as ``00``); absent is 6700 when ``required``."""
        if le is None:
            if required:
                raise cls._error("Le is missing", CardStatus.WRONG_LENGTH)
            return b""
        if not isinstance(le, int) or not 1 <= le <= 256:
            raise cls._error(f"Le must be 1..256, got {le!r}", CardStatus.WRONG_LENGTH)
        return bytes((le & 0xFF,))

    @classmethod
    def _check_byte(cls, value: int, what: str, sw: int | None = None) -> int:
        if not isinstance(value, int) or not 0 <= value <= 0xFF:
            raise cls._error(f"{what} must be one byte, got {value!r}", sw)
        return value

    @classmethod
    def _check_sfi(cls, sfi: int) -> int:
        if not isinstance(sfi, int) or not 1 <= sfi <= MAX_SFI:
            raise cls._error(f"SFI must be 1..{MAX_SFI}, got {sfi!r}", CardStatus.WRONG_P1P2)
        return sfi

    @classmethod
    def _check_mode(cls, mode: int) -> RecordMode:
        found = _MODES.get(mode)
        if found is None:
            raise cls._error(f"record mode {mode!r} not supported (P2 low bits 000 or 100)", CardStatus.WRONG_P1P2)
        return found

    @classmethod
    def _check_purse(cls, purse: int) -> Purse:
        found = _PURSES.get(purse)
        if found is None:
            raise cls._error(f"purse {purse!r} is neither 01 (ED) nor 02 (EP)", CardStatus.WRONG_P1P2)
        return found

    @classmethod
    def _check_bytes(cls, value: bytes, sizes: range, what: str) -> bytes:
        if not isinstance(value, bytes) or len(value) not in sizes:
            got = f"{len(value)} bytes" if isinstance(value, bytes) else type(value).__name__
            expected = sizes.start if len(sizes) == 1 else f"{sizes.start}..{sizes.stop - 1}"
            raise cls._error(f"{what} must be {expected} bytes, got {got}", CardStatus.WRONG_LENGTH)
        return value

    @classmethod
    def _check_when(cls, when: dt.datetime | None) -> None:
        if when is None:
            raise cls._error("the date-time is missing (all zeros)", CardStatus.WRONG_DATA)

    @classmethod
    def _parse_data(cls, layout: Layout, data: bytes) -> Sequence[Any]:
        """``layout.values``: the data field's values, with the sw a card gives a data field that is the right size
        but does not decode."""
        try:
            return layout.values(data)
        except ProtocolError as exc:
            if exc.sw is not None:
                raise
            raise cls._error(str(exc), CardStatus.WRONG_DATA) from None


@dataclass(slots=True)
class SelectByName(Command):
    """SELECT by DF name: ``00 A4 04 P2 Lc name [Le]``, for the PPSE and the purse application (answer: FCI)."""

    CLA = 0x00
    INS = 0xA4
    P1 = 0x04

    aid: bytes
    p2: int = 0x00
    le: int | None = None

    def to_bytes(self) -> bytes:
        aid = self._check_bytes(self.aid, _AID_SIZES, "DF name")
        if self.p2 not in _SELECT_P2:
            raise self._error(f"P2 must be 00 or 0C, got {self.p2!r}", CardStatus.WRONG_P1P2)
        return bytes((0x00, 0xA4, 0x04, self.p2, len(aid))) + aid + self._le_byte(self.le)

    @classmethod
    def _decode(cls, p1: int, p2: int, data: bytes, le: int | None) -> Self:
        if p2 not in _SELECT_P2:
            raise cls._error(f"P2 {p2:02X} not supported", CardStatus.WRONG_P1P2)
        return cls(cls._check_bytes(data, _AID_SIZES, "DF name"), p2, le)


@dataclass(slots=True)
class SelectByFid(Command):
    """SELECT by file identifier: ``00 A4 00 P2 02 FID [Le]`` (3F00 MF, 1001 city ADF, 8011 the PSAM's DF)."""

    CLA = 0x00
    INS = 0xA4
    P1 = 0x00

    fid: int
    p2: int = 0x00
    le: int | None = None

    def to_bytes(self) -> bytes:
        fid = self.fid
        if not isinstance(fid, int) or not 0 <= fid <= 0xFFFF:
            raise self._error(f"FID must be two bytes, got {fid!r}")
        if self.p2 not in _SELECT_P2:
            raise self._error(f"P2 must be 00 or 0C, got {self.p2!r}", CardStatus.WRONG_P1P2)
        return bytes((0x00, 0xA4, 0x00, self.p2, 2, fid >> 8, fid & 0xFF)) + self._le_byte(self.le)

    @classmethod
    def _decode(cls, p1: int, p2: int, data: bytes, le: int | None) -> Self:
        if p2 not in _SELECT_P2:
            raise cls._error(f"P2 {p2:02X} not supported", CardStatus.WRONG_P1P2)
        cls._check_data_size(data, 2)
        return cls(int.from_bytes(data, "big"), p2, le)


@dataclass(slots=True)
class ReadBinary(Command):
    """READ BINARY of a transparent file by SFI: ``00 B0 80|SFI offset Le`` (``le`` 256 sends ``00``)."""

    CLA = 0x00
    INS = 0xB0

    sfi: int
    offset: int = 0
    le: int = 256

    def to_bytes(self) -> bytes:
        sfi = self._check_sfi(self.sfi)
        offset = self._check_byte(self.offset, "offset", CardStatus.WRONG_P1P2)
        return bytes((0x00, 0xB0, 0x80 | sfi, offset)) + self._le_byte(self.le, required=True)

    @classmethod
    def _decode(cls, p1: int, p2: int, data: bytes, le: int | None) -> Self:
        if p1 & 0xE0 != 0x80:
            raise cls._error(f"P1 {p1:02X}: only SFI addressing (100xxxxx) is supported", CardStatus.WRONG_P1P2)
        sfi = cls._check_sfi(p1 & 0x1F)
        cls._check_no_data(data)
        return cls(sfi, p2, cls._required_le(le))


@dataclass(slots=True)
class ReadRecord(Command):
    """READ RECORD by SFI: ``00 B2 P1 SFI<<3|mode Le``; P1 is a record number or identifier as ``mode`` says."""

    CLA = 0x00
    INS = 0xB2

    sfi: int
    record: int
    mode: RecordMode = RecordMode.NUMBER
    le: int = 256

    def to_bytes(self) -> bytes:
        p2 = self._check_sfi(self.sfi) << 3 | self._check_mode(self.mode)
        record = self._check_byte(self.record, "record", CardStatus.WRONG_P1P2)
        return bytes((0x00, 0xB2, record, p2)) + self._le_byte(self.le, required=True)

    @classmethod
    def _decode(cls, p1: int, p2: int, data: bytes, le: int | None) -> Self:
        sfi = cls._check_sfi(p2 >> 3)
        mode = cls._check_mode(p2 & 0x07)
        cls._check_no_data(data)
        return cls(sfi, p1, mode, cls._required_le(le))


@dataclass(slots=True)
class GetBalance(Command):
    """GET BALANCE: ``80 5C 00 P2 04``, P2 02 for the purse (EP), 01 for the passbook (ED)."""

    CLA = 0x80
    INS = 0x5C
    P1 = 0x00
    RESPONSE = BALANCE_RESPONSE

    purse: Purse = Purse.EP
    le: int = 4

    def to_bytes(self) -> bytes:
        purse = self._check_purse(self.purse)
        return bytes((0x80, 0x5C, 0x00, purse)) + self._fixed_le_byte(self.le, 4, required=True)

    @classmethod
    def _decode(cls, p1: int, p2: int, data: bytes, le: int | None) -> Self:
        purse = cls._check_purse(p2)
        cls._check_no_data(data)
        cls._check_fixed_le(le, 4, required=True)
        return cls(purse, cls._required_le(le))


@dataclass(slots=True)
class _Initialize(Command):
    """INITIALIZE FOR …: ``80 50 P1 P2 0B key_index amount terminal_number [Le]``; P1 names the transaction."""

    CLA = 0x80
    INS = 0x50

    key_index: int
    amount: int
    terminal_number: bytes
    purse: Purse = Purse.EP

    def to_bytes(self) -> bytes:
        purse = self._check_purse(self.purse)
        data = INITIALIZE_DATA.pack(self.key_index, self.amount, self.terminal_number)
        return (bytes((0x80, 0x50, self.P1, purse, 11)) + data  # type: ignore[arg-type]  # set by each subclass
                + self._fixed_le_byte(self.le, self.RESPONSE.size))  # type: ignore[attr-defined,union-attr]

    @classmethod
    def _decode(cls, p1: int, p2: int, data: bytes, le: int | None) -> Self:
        purse = cls._check_purse(p2)
        key_index, amount, terminal_number = cls._parse_data(INITIALIZE_DATA, data)
        cls._check_fixed_le(le, cls.RESPONSE.size)  # type: ignore[union-attr]
        return cls(key_index, amount, terminal_number, purse, le)  # type: ignore[call-arg]


@dataclass(slots=True)
class InitializeForPurchase(_Initialize):
    """INITIALIZE FOR PURCHASE, ``80 50 01 02``: a simple purse debit (transaction type 06) follows."""

    P1 = 0x01
    RESPONSE = PURCHASE_INIT_RESPONSE

    le: int | None = PURCHASE_INIT_RESPONSE.size


@dataclass(slots=True)
class InitializeForCappPurchase(_Initialize):
    """INITIALIZE FOR CAPP PURCHASE, ``80 50 03 02``: a composite debit (type 09), UPDATE CAPP DATA CACHE allowed."""

    P1 = 0x03
    RESPONSE = PURCHASE_INIT_RESPONSE

    le: int | None = PURCHASE_INIT_RESPONSE.size


@dataclass(slots=True)
class InitializeForLoad(_Initialize):
    """INITIALIZE FOR LOAD, ``80 50 00 02``: the card answers with its MAC1 for the load host."""

    P1 = 0x00
    RESPONSE = LOAD_INIT_RESPONSE

    le: int | None = LOAD_INIT_RESPONSE.size


@dataclass(slots=True)
class UpdateCappDataCache(Command):
    """UPDATE CAPP DATA CACHE: ``80 DC P1 SFI<<3|mode Lc record``, staged by the card until the debit commits it.

    The 0x1A process record goes as ``80 DC <id> D0 80`` (identifier mode), the 0x1E transit record as
    ``80 DC 00 F0 30``.
    """

    CLA = 0x80
    INS = 0xDC

    sfi: int
    record: int
    data: bytes
    mode: RecordMode = RecordMode.IDENTIFIER

    def to_bytes(self) -> bytes:
        p2 = self._check_sfi(self.sfi) << 3 | self._check_mode(self.mode)
        record = self._check_byte(self.record, "record", CardStatus.WRONG_P1P2)
        data = self._check_bytes(self.data, _RECORD_SIZES, "record")
        return bytes((0x80, 0xDC, record, p2, len(data))) + data

    @classmethod
    def _decode(cls, p1: int, p2: int, data: bytes, le: int | None) -> Self:
        sfi = cls._check_sfi(p2 >> 3)
        mode = cls._check_mode(p2 & 0x07)
        cls._check_bytes(data, _RECORD_SIZES, "record")
        cls._check_no_le(le)
        return cls(sfi, p1, data, mode)


@dataclass(slots=True)
class DebitForPurchase(Command):
    """DEBIT FOR PURCHASE / CAPP PURCHASE: ``80 54 01 00 0F tsn date-time mac1 [08]``; answers TAC ‖ MAC2."""

    CLA = 0x80
    INS = 0x54
    P1 = 0x01
    P2 = 0x00
    RESPONSE = DEBIT_RESPONSE

    tsn: int
    when: dt.datetime
    mac1: bytes
    le: int | None = DEBIT_RESPONSE.size

    def to_bytes(self) -> bytes:
        self._check_when(self.when)
        return (b"\x80\x54\x01\x00\x0f" + DEBIT_DATA.pack(self.tsn, self.when, self.mac1)
                + self._fixed_le_byte(self.le, 8))

    @classmethod
    def _decode(cls, p1: int, p2: int, data: bytes, le: int | None) -> Self:
        tsn, when, mac1 = cls._parse_data(DEBIT_DATA, data)
        cls._check_when(when)
        cls._check_fixed_le(le, 8)
        return cls(tsn, when, mac1, le)


@dataclass(slots=True)
class GetTransactionProve(Command):
    """GET TRANSACTION PROVE: ``80 5A 00 <type> 02 ATC [08]``; answers MAC2 ‖ TAC of the debit with that ATC.

    After a tear, validators send the ATC the interrupted INITIALIZE returned plus one (spec §5.3).
    """

    CLA = 0x80
    INS = 0x5A
    P1 = 0x00
    RESPONSE = PROVE_RESPONSE

    transaction_type: int
    atc: int
    le: int | None = PROVE_RESPONSE.size

    def to_bytes(self) -> bytes:
        p2 = self._check_byte(self.transaction_type, "transaction type", CardStatus.WRONG_P1P2)
        atc = self.atc
        if not isinstance(atc, int) or not 0 <= atc <= 0xFFFF:
            raise self._error(f"ATC must be two bytes, got {atc!r}")
        return bytes((0x80, 0x5A, 0x00, p2, 2, atc >> 8, atc & 0xFF)) + self._fixed_le_byte(self.le, 8)

    @classmethod
    def _decode(cls, p1: int, p2: int, data: bytes, le: int | None) -> Self:
        cls._check_data_size(data, 2)
        cls._check_fixed_le(le, 8)
        return cls(p2, int.from_bytes(data, "big"), le)


@dataclass(slots=True)
class CreditForLoad(Command):
    """CREDIT FOR LOAD: ``80 52 00 00 0B date-time mac2 [04]``; answers the TAC."""

    CLA = 0x80
    INS = 0x52
    P1 = 0x00
    P2 = 0x00
    RESPONSE = CREDIT_RESPONSE

    when: dt.datetime
    mac2: bytes
    le: int | None = CREDIT_RESPONSE.size

    def to_bytes(self) -> bytes:
        self._check_when(self.when)
        return (b"\x80\x52\x00\x00\x0b" + CREDIT_DATA.pack(self.when, self.mac2)
                + self._fixed_le_byte(self.le, 4))

    @classmethod
    def _decode(cls, p1: int, p2: int, data: bytes, le: int | None) -> Self:
        when, mac2 = cls._parse_data(CREDIT_DATA, data)
        cls._check_when(when)
        cls._check_fixed_le(le, 4)
        return cls(when, mac2, le)


@dataclass(slots=True)
class GetChallenge(Command):
    """GET CHALLENGE: ``00 84 00 00 04|08``; the random is the IV of a line-protection MAC (spec §3.6)."""

    CLA = 0x00
    INS = 0x84
    P1 = 0x00
    P2 = 0x00

    le: int = 4

    def to_bytes(self) -> bytes:
        if self.le not in (4, 8):
            raise self._error(f"Le must be 4 or 8, got {self.le!r}", CardStatus.WRONG_LENGTH)
        return bytes((0x00, 0x84, 0x00, 0x00, self.le))

    @classmethod
    def _decode(cls, p1: int, p2: int, data: bytes, le: int | None) -> Self:
        cls._check_no_data(data)
        if le not in (4, 8):
            raise cls._error(f"Le must be 4 or 8, got {le}", CardStatus.WRONG_LENGTH)
        return cls(le)


@dataclass(slots=True)
class MacCommand(Command):
    """A command whose whole data field is a 4-byte MAC: ``CLA INS 00 00 04 MAC``, no answer data."""

    P1 = 0x00
    P2 = 0x00

    mac: bytes

    @property
    def protected_header(self) -> bytes:
        """``CLA INS 00 00 04``: the header and Lc, what a line-protection MAC covers (spec §3.6)."""
        return bytes((self.CLA, self.INS, 0x00, 0x00, 4))

    def to_bytes(self) -> bytes:
        return self.protected_header + self._check_bytes(self.mac, _MAC_SIZE, "MAC")

    @classmethod
    def _decode(cls, p1: int, p2: int, data: bytes, le: int | None) -> Self:
        cls._check_data_size(data, 4)
        cls._check_no_le(le)
        return cls(data)


@dataclass(slots=True)
class ApplicationBlock(MacCommand):
    """APPLICATION BLOCK (temporary lock): ``84 1E 00 00 04 MAC``, MAC per spec §3.6; SELECT then answers 6283."""

    CLA = 0x84
    INS = 0x1E


@dataclass(slots=True)
class ApplicationUnblock(MacCommand):
    """APPLICATION UNBLOCK: ``84 18 00 00 04 MAC``. PBOC convention; no validator source shows it (UNCONFIRMED)."""

    CLA = 0x84
    INS = 0x18


@dataclass(slots=True)
class GetResponse(Command):
    """GET RESPONSE: ``00 C0 00 00 Le``, fetching an answer a T=0 card announced with 61xx."""

    CLA = 0x00
    INS = 0xC0
    P1 = 0x00
    P2 = 0x00

    le: int

    def to_bytes(self) -> bytes:
        return b"\x00\xc0\x00\x00" + self._le_byte(self.le, required=True)

    @classmethod
    def _decode(cls, p1: int, p2: int, data: bytes, le: int | None) -> Self:
        cls._check_no_data(data)
        return cls(cls._required_le(le))


# --- dispatch -------------------------------------------------------------------------------------------------------

class CommandSet:
    """Turns raw commands into command objects of a given set of classes, by CLA, INS and (when several classes share
    an INS) P1, and answers with a card's status word for anything outside the set."""

    __slots__ = ("_by_p1", "_classes", "_instructions", "_sole")

    def __init__(self, *commands: type[Command]) -> None:
        routes: dict[tuple[int, int], dict[int | None, type[Command]]] = {}
        for command in commands:
            routes.setdefault((command.CLA, command.INS), {})[command.P1] = command
        self._sole = {key: command for key, by_p1 in routes.items() if len(by_p1) == 1 for command in by_p1.values()}
        """The class of each (CLA, INS) no other class has: nearly every command is routed by this one look-up."""
        self._by_p1 = {key: by_p1 for key, by_p1 in routes.items() if len(by_p1) > 1}
        self._classes = frozenset(cla for cla, _ in routes)
        self._instructions = frozenset(ins for _, ins in routes)

    def parse(self, raw: bytes) -> Command:
        """The command object of a raw C-APDU: its parts split once (:func:`~protocols.apdu.split_command`), routed
        by CLA, INS (and P1), and decoded by its class."""
        data, le, extended = split_command(raw)
        command = self._sole.get((raw[0], raw[1])) or self._route(raw[0], raw[1], raw[2])
        command._check_parameters(raw[2], raw[3], extended)
        return command._decode(raw[2], raw[3], data, le)

    def parse_apdu(self, apdu: CommandAPDU) -> Command:
        command = self._sole.get((apdu.cla, apdu.ins)) or self._route(apdu.cla, apdu.ins, apdu.p1)
        return command.from_apdu(apdu)

    def _route(self, cla: int, ins: int, p1: int) -> type[Command]:
        """The class of a (CLA, INS) several classes share, told apart by P1; the card's status word for a command
        outside the set."""
        by_p1 = self._by_p1.get((cla, ins))
        if by_p1 is None:
            if cla not in self._classes or ins in self._instructions:
                raise ProtocolError(f"CLA {cla:02X} not supported for INS {ins:02X}", sw=CardStatus.UNKNOWN_CLA)
            raise ProtocolError(f"INS {ins:02X} not supported", sw=CardStatus.UNKNOWN_INS)
        command = by_p1.get(p1)
        if command is None:
            raise ProtocolError(f"{cla:02X}{ins:02X}: P1 {p1:02X} not supported", sw=CardStatus.WRONG_P1P2)
        return command


CardCommand = (SelectByName | SelectByFid | ReadBinary | ReadRecord | GetBalance | InitializeForPurchase
               | InitializeForCappPurchase | InitializeForLoad | UpdateCappDataCache | DebitForPurchase
               | GetTransactionProve | CreditForLoad | GetChallenge | ApplicationBlock | ApplicationUnblock
               | GetResponse)

CARD_COMMANDS = CommandSet(SelectByName, SelectByFid, ReadBinary, ReadRecord, GetBalance, InitializeForPurchase,
                           InitializeForCappPurchase, InitializeForLoad, UpdateCappDataCache, DebitForPurchase,
                           GetTransactionProve, CreditForLoad, GetChallenge, ApplicationBlock, ApplicationUnblock,
                           GetResponse)


def parse_card_command(raw: bytes) -> CardCommand:
    """A raw C-APDU sent to a card as its command object; ProtocolError with the card's status word otherwise."""
    return CARD_COMMANDS.parse(raw)  # type: ignore[return-value]


REPEATABLE = frozenset((command.CLA, command.INS) for command in (
    SelectByName, ReadBinary, ReadRecord, GetBalance, _Initialize, GetTransactionProve, GetChallenge))
"""(CLA, INS) of the commands a card may be sent twice with no other effect than once: selection and reads, and the
commands that open a new purchase or load session or challenge (the answer that counts is the last one). DEBIT,
CREDIT, UPDATE CAPP DATA CACHE (it stages a record), the line-protected commands (they use up a challenge) and
anything unknown are not."""


def repeatable(apdu: bytes) -> bool:
    """Whether a reader may send ``apdu`` again when it cannot tell whether the card got it (see :data:`REPEATABLE`)."""
    return len(apdu) >= 4 and (apdu[0], apdu[1]) in REPEATABLE
