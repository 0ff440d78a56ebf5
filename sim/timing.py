"""Timing model of the simulated reader: how long each exchange would take with a real card, reader and PSAM.

Every figure is a pure function of (command, response, settings), so ``ykt tap`` can print each exchange's modeled air
time, card time and PSAM time and add them up against the 400 ms that DB31/T 239-2020 §6.3.2 allows for one purchase.

Contactless card, ISO 14443-A/-4 (:class:`ContactlessTiming`, :class:`ContactlessModel`)
    One etu is 128/fc at 106 kbit/s, halved at 212, 424 and 848 (``protocols.iso14443.etu``). A type A standard
    frame carries each byte as 8 data bits and an odd parity bit, 1 etu each, so **9 etu per byte**, framed by a
    start of communication (1 etu) and an end of communication: 2 etu from the reader (a logic 0 then sequence Y,
    Modified Miller) and 1 etu from the card (sequence F, Manchester). (Characters of 10 etu, with start and stop
    bits, are type B's; type A has none around each byte.)::

        reader frame = (3 + 9·n) etu        card frame = (2 + 9·n) etu      n = bytes incl. PCB, [CID] and CRC_A

    The same framing is used at every bit rate; the higher-rate start/end patterns differ by an etu or two, which
    is below the model's precision. Every frame is followed by the minimum frame delay time **1172/fc** (ISO 14443-3
    FDT = (n·128 + 20)/fc with n = 9 is its floor; the reader's next frame has the same floor), so::

        line = Σ frame durations + (number of frames) · 1172/fc

    An APDU travels as ISO 14443-4 I-blocks (PCB, [CID], INF, CRC_A) split for the card's FSC from the ATS
    (``chain_payloads``); every block but the last is acknowledged by the card's R(ACK) (PCB [CID] CRC, 3 bytes).
    The card's answer is split for the reader's FSD the same way, each chained block acknowledged by the reader.
    The bit rate is the fastest the card's ATS (TA(1)) allows up to the one asked for, as a reader's PPS would
    choose.

    The card's processing time (``device_us``) is counted *on top of* the minimum FDT. When it exceeds the frame
    waiting time of the ATS, the card must ask for waiting time extensions: it sends S(WTX) with the smallest
    multiplier WTXM (≤ 59) that covers the rest of its work, the reader echoes it, until the work is covered.
    Each round adds two 4-byte frames to ``line_us`` (a conservative bound: a card may keep computing while they
    fly) and is counted in ``wtx`` so a report can flag it.

PSAM, ISO 7816-3 T=0 (:class:`ContactTiming`, :class:`ContactModel`)
    One etu is Fi / (Di · f): 372 / f after reset (9600 Bd at f = 3.5712 MHz; CL opens its PSAM at 9600), then
    the rate the SAM's ATR offers in TA1 once the SAM slot has asked for it with a PPS exchange (ISO 7816-3; a PSAM
    offering Di = 12 speaks at 115200 Bd), or a fixed rate when configured. Every character takes **12 etu**
    (start bit, 8 data bits, parity, 2 etu guard time) plus the extra guard time N of TC(1); when the direction
    changes, ISO 7816-3 wants 16 etu between the leading edges of the two characters, so a turnaround costs
    ``max(0, 16 - (12 + N))`` etu more. The exchange is the T=0 procedure::

        header (5) → [ACK procedure byte (1) → data (Lc)] → [ACK (1) if not yet sent] → response data → SW (2)

    with one turnaround after the header, two more around the data a case 3 command sends, and one at the end
    (before the reader's next header). The PSAM's compute time is ``device_us``.

Processing times (:class:`ProcessingTimes`)
    Per INS, configurable. The defaults are estimates: spec §7 puts the card's EEPROM commits at 80DC and 8054 at
    about 10 to 30 ms each (UNCONFIRMED), the whole transaction typically at 150 to 300 ms, and gives no figure for
    reads or the PSAM; reads are taken at 1 to 2 ms, INITIALIZE at 5 ms (a session key and a random), and the PSAM's
    cryptography at a few ms (8070 at 10 ms, diversification and the TSN's EEPROM update included). A command the
    card refuses (a status word other than 9000, 61xx, 62xx, 63xx) costs ``rejected_us`` at most: it wrote nothing.

MIFARE Classic (:class:`MifareTiming`, :class:`MifareModel`)
    Always 106 kbit/s, standard frames as above, plus the card's 4-bit ACK/NAK: a short frame of **6 etu** (start,
    4 bits, end; no parity). A pseudo-APDU is priced by the MIFARE commands the reader turned it into (a LOAD KEY
    or GET DATA never reaches the card and costs nothing on the air); CRC_A is on every frame but AUTH's second and
    third passes (nonces)::

        AUTH       60/61 blk CRC (4) → nT (4); nR ‖ aR (8) → aT (4)               three-pass, Crypto1 from then on
        READ       30 blk CRC (4) → data CRC (18)
        WRITE      A0 blk CRC (4) → ACK; data CRC (18) → ACK                          the card writes its EEPROM
        INC/DEC/RESTORE  Cx blk CRC (4) → ACK; operand CRC (6) → (no answer)    the reader waits ``passive_ack_us``
        TRANSFER   B0 blk CRC (4) → ACK                                              the card writes its EEPROM

    Card time: ``eeprom_write_us`` for WRITE and TRANSFER (2.5 ms: an estimate, UNCONFIRMED: no public figure was
    found), ``auth_us`` for the Crypto1 start, nothing for READ and the value operations (RAM). A command the card
    does not answer (a failed AUTH) costs ``no_answer_us`` of waiting.

A torn exchange (the card left) costs the command frames plus one frame waiting time (contactless) or work waiting
time (T=0): the least a reader spends before it can call the card gone; ``device_us`` is the card's work if it ran.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Protocol

from protocols.atr import DEFAULT_TA1, Atr, etu_us
from protocols.errors import ProtocolError
from protocols.iso14443 import CRC_SIZE, FC_HZ, Ats, chain_payloads, etu
from protocols.mifare import (
    ACK,
    BLOCK_SIZE,
    READ,
    TRANSFER,
    WRITE,
    KeyType,
    ValueOperation,
)
from terminal.errors import ConfigError
from terminal.link import Activation, ModeledTime

_US = 1_000_000
FDT_MIN_FC = 1172
"""Minimum frame delay time between a frame and the answer to it, in carrier cycles (ISO 14443-3)."""

_ETU_PER_BYTE = 9
_READER_FRAMING_ETU = 3  # start of communication (1) + end of communication (2)
_CARD_FRAMING_ETU = 2  # start of communication (1) + end of communication (1)
_R_BLOCK_BYTES = 1 + CRC_SIZE  # R(ACK): PCB, CRC_A (a CID byte is added when used)
_S_WTX_BYTES = 2 + CRC_SIZE  # S(WTX): PCB, WTXM, CRC_A
_WTXM_MAX = 59
_BIT_RATES = (106, 212, 424, 848)

_T0_CHAR_ETU = 12
_T0_TURNAROUND_ETU = 16
_T0_HEADER = 5
_T0_SW = 2

_COMPLETED_SW1 = frozenset((0x90, 0x61, 0x62, 0x63))
"""SW1 of answers after which the card has done the command's work (normal processing and warnings)."""

CARD_US: Mapping[int, float] = MappingProxyType({
    0xA4: 2_000,  # SELECT
    0xB0: 1_500,  # READ BINARY
    0xB2: 1_500,  # READ RECORD
    0xC0: 500,  # GET RESPONSE
    0x84: 1_000,  # GET CHALLENGE
    0x5C: 1_000,  # GET BALANCE
    0x50: 5_000,  # INITIALIZE FOR (CAPP) PURCHASE / LOAD: session key, random
    0xDC: 15_000,  # UPDATE CAPP DATA CACHE: EEPROM write
    0x54: 25_000,  # DEBIT FOR (CAPP) PURCHASE: MAC1, EEPROM commit of balance, ATC, records; MAC2, TAC
    0x52: 25_000,  # CREDIT FOR LOAD: the same kind of commit
    0x5A: 3_000,  # GET TRANSACTION PROVE
    0x1E: 15_000,  # APPLICATION BLOCK: MAC check, EEPROM write
    0x18: 15_000,  # APPLICATION UNBLOCK
})
"""Default card processing time per INS, µs (UNCONFIRMED estimates, see the module notes)."""

PSAM_US: Mapping[int, float] = MappingProxyType({
    0xA4: 1_000,  # SELECT
    0xB0: 1_000,  # READ BINARY
    0xC0: 200,  # GET RESPONSE
    0x70: 10_000,  # INIT SAM FOR PURCHASE: diversification, session key, MAC1, TSN update
    0x72: 3_000,  # CREDIT SAM FOR PURCHASE: MAC2 check
    0x1A: 3_000,  # DES INIT (diversification)
    0xFA: 3_000,  # DES CRYPT
})
"""Default PSAM processing time per INS, µs (UNCONFIRMED estimates, see the module notes)."""


def _is_time(us: object) -> bool:
    return isinstance(us, (int, float)) and not isinstance(us, bool) and us >= 0


@dataclass(frozen=True, slots=True)
class ProcessingTimes:
    """How long a card or SAM computes, by INS, in µs (``default_us`` for an INS not listed)."""

    by_ins: Mapping[int, float]
    default_us: float = 2_000.0
    rejected_us: float = 1_000.0

    def __post_init__(self) -> None:
        times = {}
        for ins, us in self.by_ins.items():
            if type(ins) is not int or not 0 <= ins <= 0xFF or not _is_time(us):
                raise ConfigError(f"processing time: INS {ins!r} → {us!r} µs (INS 00..FF, time ≥ 0)")
            times[ins] = float(us)
        object.__setattr__(self, "by_ins", MappingProxyType(times))
        if not (_is_time(self.default_us) and _is_time(self.rejected_us)):
            raise ConfigError("processing time: default_us and rejected_us must be numbers ≥ 0")

    def us(self, command: bytes, response: bytes) -> float:
        """The device's time for one command and the answer it gave."""
        us = self.by_ins.get(command[1], self.default_us) if len(command) > 1 else self.default_us
        if len(response) >= 2 and response[-2] not in _COMPLETED_SW1 and us > self.rejected_us:
            return self.rejected_us
        return us

    def updated(self, by_ins: Mapping[int, float]) -> ProcessingTimes:
        """These times with some INS changed or added."""
        return ProcessingTimes({**self.by_ins, **by_ins}, self.default_us, self.rejected_us)


CARD_PROCESSING = ProcessingTimes(CARD_US)
PSAM_PROCESSING = ProcessingTimes(PSAM_US, default_us=2_000.0, rejected_us=1_000.0)


# --- contactless ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ContactlessTime(ModeledTime):
    """One contactless exchange: ``blocks_out``/``blocks_in`` I-blocks each way, ``wtx`` waiting time extensions."""

    blocks_out: int
    blocks_in: int
    wtx: int


@dataclass(frozen=True, slots=True)
class ContactlessTiming:
    """Settings of the contactless model: the bit rate the reader asks for, its FSD, CID use, card processing times."""

    kbps: int = 106
    fsd: int = 256
    cid: bool = False
    card: ProcessingTimes = CARD_PROCESSING

    def __post_init__(self) -> None:
        if self.kbps not in _BIT_RATES:
            raise ConfigError(f"contactless bit rate {self.kbps} kbit/s: choose 106, 212, 424 or 848")
        if not 16 <= self.fsd <= 4096:
            raise ConfigError(f"FSD {self.fsd}: a reader's frame size is 16..4096 bytes")

    def model(self, activation: Activation | None = None) -> ContactlessModel:
        """The model for one card, from its ATS (the ISO 14443-4 defaults when it has none)."""
        ats = Ats.parse(activation.ats) if activation is not None and activation.ats is not None else Ats()
        return ContactlessModel(self, ats)


DEFAULT_CONTACTLESS = ContactlessTiming()


def _negotiated(asked: int, offered: tuple[int, ...]) -> int:
    return max(rate for rate in offered if rate <= asked)


class ContactlessModel:
    """The contactless model for one card: the per-ATS constants computed once, then cheap arithmetic per exchange."""

    def __init__(self, timing: ContactlessTiming, ats: Ats) -> None:
        self.timing = timing
        self.ats = ats
        to_picc = _negotiated(timing.kbps, ats.bit_rates_to_picc)
        to_pcd = _negotiated(timing.kbps, ats.bit_rates_to_pcd)
        if ats.same_bit_rate_both_ways:
            to_picc = to_pcd = min(to_picc, to_pcd)
        self.kbps_to_picc = to_picc
        self.kbps_to_pcd = to_pcd
        self._card_us = timing.card.us
        self.fsc = ats.fsc
        self.fwt_us = ats.fwt * _US
        self.fdt_us = FDT_MIN_FC / FC_HZ * _US
        reader_etu = etu(to_picc) * _US
        card_etu = etu(to_pcd) * _US
        cid = int(timing.cid)
        # A frame of n bytes followed by its FDT costs base + per_byte * n.
        self._reader_base = _READER_FRAMING_ETU * reader_etu + self.fdt_us
        self._reader_byte = _ETU_PER_BYTE * reader_etu
        self._card_base = _CARD_FRAMING_ETU * card_etu + self.fdt_us
        self._card_byte = _ETU_PER_BYTE * card_etu
        self._block_overhead = 1 + cid + CRC_SIZE
        ack = _R_BLOCK_BYTES + cid
        self._card_ack_us = self._card_base + self._card_byte * ack
        self._reader_ack_us = self._reader_base + self._reader_byte * ack
        wtx = _S_WTX_BYTES + cid
        self._wtx_round_us = self._card_base + self._card_byte * wtx + self._reader_base + self._reader_byte * wtx
        self._out_blocks: dict[int, int] = {}
        self._in_blocks: dict[int, int] = {}

    def _blocks(self, length: int, size: int, cache: dict[int, int]) -> int:
        count = cache.get(length)
        if count is None:
            count = cache[length] = len(chain_payloads(bytes(length), size, cid=self.timing.cid))
        return count

    def command_us(self, length: int) -> tuple[float, int]:
        """Air time of an APDU of ``length`` bytes sent to the card (chained blocks and their R(ACK)s), and its block
        count."""
        blocks = self._blocks(length, self.fsc, self._out_blocks)
        us = (blocks * self._reader_base + self._reader_byte * (length + blocks * self._block_overhead)
              + (blocks - 1) * self._card_ack_us)
        return us, blocks

    def response_us(self, length: int) -> tuple[float, int]:
        """Air time of a response APDU of ``length`` bytes from the card, chained for the reader's FSD."""
        blocks = self._blocks(length, self.timing.fsd, self._in_blocks)
        us = (blocks * self._card_base + self._card_byte * (length + blocks * self._block_overhead)
              + (blocks - 1) * self._reader_ack_us)
        return us, blocks

    def wtx_rounds(self, device_us: float) -> int:
        """How many S(WTX) rounds a card computing ``device_us`` needs within this ATS's frame waiting time."""
        rest, rounds = device_us - self.fwt_us, 0
        while rest > 0:
            multiplier = min(_WTXM_MAX, math.ceil(rest / self.fwt_us))
            rest -= multiplier * self.fwt_us
            rounds += 1
        return rounds

    def exchange(self, command: bytes, response: bytes) -> ContactlessTime:
        """The modeled time of one command and its response."""
        out_us, out_blocks = self.command_us(len(command))
        in_us, in_blocks = self.response_us(len(response))
        device_us = self._card_us(command, response)
        wtx = self.wtx_rounds(device_us) if device_us > self.fwt_us else 0
        return ContactlessTime(out_us + in_us + wtx * self._wtx_round_us, device_us, out_blocks, in_blocks, wtx)

    def torn(self, command: bytes, response: bytes | None) -> ContactlessTime:
        """An exchange the card left: the command went out, the reader waited one FWT for nothing. ``response`` is
        what the card computed before it left (``None``: it left before processing)."""
        out_us, out_blocks = self.command_us(len(command))
        device_us = 0.0 if response is None else self._card_us(command, response)
        return ContactlessTime(out_us + self.fwt_us, device_us, out_blocks, 0, 0)

    def activation(self, activation: Activation) -> ModeledTime:
        """Air time of the activation at 106 kbit/s: REQA (7-bit short frame) and ATQA, per cascade level an
        ANTICOLLISION (SEL NVB, answered by UID CLn and BCC) and a SELECT (answered by SAK), then RATS and ATS and the
        start-up frame guard time. The card's power-up and the reader's polling period are not included."""
        reader, card = self._activation_reader, self._activation_card
        us = (_READER_FRAMING_ETU + 7) * self._activation_etu + self.fdt_us + card(2)  # REQA, ATQA
        levels = {7: 2, 10: 3}.get(len(activation.uid), 1)
        us += levels * (reader(2) + card(5) + reader(7 + CRC_SIZE) + card(1 + CRC_SIZE))
        if activation.ats is not None:
            us += reader(2 + CRC_SIZE) + card(len(activation.ats) + CRC_SIZE) + self.ats.sfgt * _US
        return ModeledTime(us, 0.0)

    _activation_etu = etu(106) * _US

    def _activation_reader(self, n: int) -> float:
        return (_READER_FRAMING_ETU + _ETU_PER_BYTE * n) * self._activation_etu + self.fdt_us

    def _activation_card(self, n: int) -> float:
        return (_CARD_FRAMING_ETU + _ETU_PER_BYTE * n) * self._activation_etu + self.fdt_us


# --- MIFARE Classic ------------------------------------------------------------------------------------------------

_NIBBLE_FRAME_ETU = 6  # the card's 4-bit ACK/NAK: start, 4 bits, end
_AUTH_NONCE = 4
_AUTH_READER = 8  # nR ‖ aR
_VALUE_OPERAND = 4 + CRC_SIZE
_MIFARE_COMMAND = 2 + CRC_SIZE  # code, block, CRC


class _HasExchanges(Protocol):
    @property
    def exchanges(self) -> Sequence[tuple[bytes, bytes]]: ...


@dataclass(frozen=True, slots=True)
class MifareTiming:
    """Settings of the MIFARE Classic model, µs: EEPROM write (WRITE, TRANSFER), Crypto1 start (AUTH), the wait after
    a value operand (the card does not acknowledge it), and the wait for a card that does not answer."""

    eeprom_write_us: float = 2_500.0
    auth_us: float = 100.0
    passive_ack_us: float = 1_000.0
    no_answer_us: float = 5_000.0

    def __post_init__(self) -> None:
        if not all(_is_time(getattr(self, name)) for name in self.__dataclass_fields__):
            raise ConfigError("MIFARE timing: every time is a number ≥ 0 (µs)")

    def model(self, source: _HasExchanges) -> MifareModel:
        """The model for one card, pricing the MIFARE commands ``source.exchanges`` holds after each exchange."""
        return MifareModel(self, source)


DEFAULT_MIFARE = MifareTiming()


class MifareModel:
    """The MIFARE Classic model: each pseudo-APDU priced by the MIFARE commands it became (see the module notes)."""

    def __init__(self, timing: MifareTiming, source: _HasExchanges) -> None:
        self.timing = timing
        self.source = source
        etu_us = etu(106) * _US
        fdt_us = FDT_MIN_FC / FC_HZ * _US
        self._reader_base = _READER_FRAMING_ETU * etu_us + fdt_us
        self._card_base = _CARD_FRAMING_ETU * etu_us + fdt_us
        self._byte = _ETU_PER_BYTE * etu_us
        self._nibble = _NIBBLE_FRAME_ETU * etu_us + fdt_us

    def _reader(self, n: int) -> float:
        return self._reader_base + self._byte * n

    def _card(self, n: int) -> float:
        return self._card_base + self._byte * n

    def command(self, command: bytes, answer: bytes) -> ModeledTime:
        """One MIFARE command and the card's answer."""
        timing = self.timing
        code = command[0] if command else -1
        line, device = self._reader(_MIFARE_COMMAND), 0.0
        if not answer:
            return ModeledTime(line + timing.no_answer_us, 0.0)
        if code in (KeyType.A, KeyType.B):
            line += self._card(_AUTH_NONCE) + self._reader(_AUTH_READER) + self._card(_AUTH_NONCE)
            device = timing.auth_us
        elif code == READ:
            line += self._card(len(answer) + CRC_SIZE) if len(answer) == BLOCK_SIZE else self._nibble
        elif code == WRITE:
            line += self._nibble
            if answer == ACK:
                line += self._reader(BLOCK_SIZE + CRC_SIZE) + self._nibble
                device = timing.eeprom_write_us
        elif code in tuple(ValueOperation):
            line += self._nibble
            if answer == ACK:
                line += self._reader(_VALUE_OPERAND) + timing.passive_ack_us
        else:
            line += self._nibble
            if code == TRANSFER and answer == ACK:
                device = timing.eeprom_write_us
        return ModeledTime(line, device)

    def exchange(self, command: bytes, response: bytes) -> ModeledTime:
        """A pseudo-APDU and its answer: the sum of the MIFARE commands it became."""
        line = device = 0.0
        for mifare, answer in self.source.exchanges:
            one = self.command(mifare, answer)
            line += one.line_us
            device += one.device_us
        return ModeledTime(line, device)

    def torn(self, command: bytes, response: bytes | None) -> ModeledTime:
        """A pseudo-APDU the card left during: what went out, then the wait for an answer that does not come."""
        done = self.exchange(command, response or b"") if response is not None else ModeledTime(0.0, 0.0)
        return ModeledTime(done.line_us + self.timing.no_answer_us, done.device_us)


# --- contact (PSAM, T=0) -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ContactTime(ModeledTime):
    """One T=0 exchange: ``characters`` on the I/O line, both directions."""

    characters: int


def _atr(activation: Activation | None) -> Atr | None:
    """The ATR of a contact activation, ``None`` when there is none or it does not parse (then nothing is negotiated:
    the default rate holds)."""
    if activation is None or activation.atr is None:
        return None
    try:
        return Atr.parse(activation.atr)
    except ProtocolError:
        return None


@dataclass(frozen=True, slots=True)
class ContactTiming:
    """Settings of the T=0 model: the line speed, extra guard time N (TC(1)), work waiting time, SAM processing times.

    ``baud`` ``None`` (the default): the SAM slot negotiates the fastest rate the SAM's ATR offers in TA1 (a PPS
    exchange after the ATR; the rate TA1 sets at once in specific mode), up to ``max_baud``, the slot's own limit,
    with the SAM clocked at ``clock_hz`` (3.5712 MHz: 9600 bit/s at the default Fi/Di of 372/1). A number: that fixed
    speed, no PPS (a slot that never negotiates)."""

    baud: int | None = None
    extra_guard_etu: int = 0
    wwt_us: float = 1_000_000.0
    sam: ProcessingTimes = PSAM_PROCESSING
    clock_hz: float = 3_571_200.0
    max_baud: int = 115_200

    def __post_init__(self) -> None:
        if self.baud is not None and self.baud <= 0:
            raise ConfigError(f"baud rate {self.baud}: must be positive (9600, 38400, 115200, ...)")
        if not 0 <= self.extra_guard_etu <= 255:
            raise ConfigError(f"extra guard time N={self.extra_guard_etu}: TC(1) is one byte")
        if self.wwt_us <= 0 or self.clock_hz <= 0 or self.max_baud <= 0:
            raise ConfigError("work waiting time, SAM clock and the slot's highest speed must be positive")

    def proposal(self, activation: Activation | None) -> int | None:
        """The TA1 whose rate the slot asks for with a PPS request: the ATR's TA1 when it is faster than the default
        and within ``max_baud``; ``None`` when there is nothing to negotiate (a fixed ``baud``, no ATR, the default
        rate offered, specific mode, or a rate above the slot's)."""
        offered = None if self.baud is not None else _atr(activation)
        if offered is None or offered.specific_mode or offered.ta1 == DEFAULT_TA1:
            return None
        if self._baud(offered.ta1) > self.max_baud + 0.5:
            return None
        return offered.ta1

    def _baud(self, ta1: int) -> float:
        return _US / etu_us(ta1, self.clock_hz)

    def pps_us(self, request: bytes, response: bytes) -> float:
        """Line time of a PPS exchange, at the default rate: the request, a turnaround, the response."""
        model = self.model()
        return model._line(len(request) + len(response), 1)

    def model(self, activation: Activation | None = None, ta1: int = DEFAULT_TA1) -> ContactModel:
        """The model for one SAM at the rate of ``ta1`` (what the PPS exchange agreed: the default rate unless told),
        or at the fixed ``baud``. In specific mode (TA2 in the ATR) the rate of the ATR's TA1 holds from the start."""
        if self.baud is not None:
            return ContactModel(self, _US / self.baud)
        offered = _atr(activation)
        if offered is not None and offered.specific_mode:
            ta1 = offered.ta1
        return ContactModel(self, etu_us(ta1, self.clock_hz))


DEFAULT_CONTACT = ContactTiming()


class ContactModel:
    """The T=0 model at one line speed: character time and turnaround computed once."""

    def __init__(self, timing: ContactTiming, etu: float) -> None:
        self.timing = timing
        self.etu_us = etu
        self.baud = round(_US / etu)
        # N = 255 means the minimum, 12 etu, on T=0.
        char_etu = _T0_CHAR_ETU + (timing.extra_guard_etu if timing.extra_guard_etu < 255 else 0)
        self._char_us = char_etu * self.etu_us
        self._turn_us = max(0, _T0_TURNAROUND_ETU - char_etu) * self.etu_us

    @staticmethod
    def _data_out(command: bytes) -> int:
        """Bytes the reader sends after the ACK: Lc of a short case 3 (or 4) command."""
        if len(command) <= _T0_HEADER:
            return 0
        return command[4] or len(command) - _T0_HEADER

    def _line(self, characters: int, turnarounds: int) -> float:
        return characters * self._char_us + turnarounds * self._turn_us

    def exchange(self, command: bytes, response: bytes) -> ContactTime:
        """The modeled time of one command and its response over T=0."""
        data_out = self._data_out(command)
        data_in = max(len(response) - _T0_SW, 0)
        characters, turnarounds = _T0_HEADER + _T0_SW, 2
        if data_out:
            characters += 1 + data_out
            turnarounds += 2
        if data_in:
            characters += data_in + (0 if data_out else 1)
        device_us = self.timing.sam.us(command, response)
        return ContactTime(self._line(characters, turnarounds), device_us, characters)

    def torn(self, command: bytes, response: bytes | None) -> ContactTime:
        """An exchange the SAM left: the header (and data) went out, the reader waited one work waiting time."""
        data_out = self._data_out(command)
        characters = _T0_HEADER + (1 + data_out if data_out else 0)
        line = self._line(characters, 2 if data_out else 0) + self.timing.wwt_us
        device_us = 0.0 if response is None else self.timing.sam.us(command, response)
        return ContactTime(line, device_us, characters)
