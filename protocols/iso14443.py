"""ISO/IEC 14443 type A helpers: CRCs, ATQA/SAK/UID rules, the ATS and its timings, and ISO-DEP block framing.

The reader chip (a PN532, say) does anticollision, RATS and the block protocol itself, so the terminal mostly needs
these to *interpret* what the chip reports (ATS → FSC and frame waiting time) and to *count* what goes over the air: a
timing model splits an APDU into chained I-blocks for the card's FSC and prices each frame in etu.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import crcmod

from .errors import ProtocolError

FC_HZ = 13_560_000
"""The carrier frequency fc."""

_CRC_A = crcmod.mkCrcFun(0x11021, initCrc=0x6363, rev=True, xorOut=0x0000)
# crcmod folds the final XOR into its initial value: register 0xFFFF, complemented at the end.
_CRC_B = crcmod.mkCrcFun(0x11021, initCrc=0x0000, rev=True, xorOut=0xFFFF)


def crc_a(data: bytes) -> bytes:
    """CRC_A (ISO 14443-3 annex B: x^16+x^12+x^5+1, register 6363, reflected), low byte first as transmitted."""
    return _CRC_A(data).to_bytes(2, "little")


def crc_b(data: bytes) -> bytes:
    """CRC_B (register FFFF, reflected, complemented), low byte first as transmitted."""
    return _CRC_B(data).to_bytes(2, "little")


def strip_crc_a(frame: bytes) -> bytes:
    """A received frame without its trailing CRC_A, after checking it."""
    if len(frame) < 2 or crc_a(frame[:-2]) != frame[-2:]:
        raise ProtocolError(f"CRC_A mismatch in {frame.hex().upper()}")
    return frame[:-2]


def strip_crc_b(frame: bytes) -> bytes:
    """A received frame without its trailing CRC_B, after checking it."""
    if len(frame) < 2 or crc_b(frame[:-2]) != frame[-2:]:
        raise ProtocolError(f"CRC_B mismatch in {frame.hex().upper()}")
    return frame[:-2]


# --- bit timing ---------------------------------------------------------------------------------------------------

_DIVISORS = {106: 1, 212: 2, 424: 4, 848: 8}


def etu(kbps: int = 106) -> float:
    """One elementary time unit in seconds: 128/fc at 106 kbit/s, divided by 2, 4, 8 at 212, 424, 848."""
    try:
        return 128 / FC_HZ / _DIVISORS[kbps]
    except KeyError:
        raise ProtocolError(f"no ISO 14443 bit rate of {kbps} kbit/s (106, 212, 424 or 848)") from None


def fwt(fwi: int) -> float:
    """Frame waiting time in seconds: (256·16/fc)·2^FWI, FWI 0..14."""
    if not 0 <= fwi <= 14:
        raise ProtocolError(f"FWI {fwi} is outside 0..14")
    return 256 * 16 / FC_HZ * (1 << fwi)


def sfgt(sfgi: int) -> float:
    """Start-up frame guard time in seconds: (256·16/fc)·2^SFGI; SFGI 0 means none is needed."""
    if not 0 <= sfgi <= 14:
        raise ProtocolError(f"SFGI {sfgi} is outside 0..14")
    return 0.0 if sfgi == 0 else 256 * 16 / FC_HZ * (1 << sfgi)


FSC_TABLE = (16, 24, 32, 40, 48, 64, 96, 128, 256)


def fsc(fsci: int) -> int:
    """Frame size for the card (bytes, CRC included) for an FSCI; codes above 8 are treated as 256."""
    if not 0 <= fsci <= 15:
        raise ProtocolError(f"FSCI {fsci} is not a 4-bit code")
    return FSC_TABLE[min(fsci, 8)]


# --- ATQA, SAK, UID -----------------------------------------------------------------------------------------------

SAK_UID_INCOMPLETE = 0x04
"""SAK cascade bit: the UID continues at the next cascade level."""
SAK_ISO14443_4 = 0x20
"""SAK bit: the PICC speaks ISO 14443-4 (answers RATS)."""

CASCADE_TAG = 0x88
UID_SIZES = (4, 7, 10)


def atqa_uid_size(atqa: int) -> int:
    """UID length in bytes announced by ATQA bits 8..7 (ATQA as the 16-bit value, e.g. 0x0044 → 7)."""
    code = (atqa >> 6) & 0b11
    if code == 0b11:
        raise ProtocolError(f"ATQA {atqa:04X}: UID size code 11 is RFU")
    return UID_SIZES[code]


def atqa_bit_frame_anticollision(atqa: int) -> bool:
    """ATQA bits 5..1 must have exactly one bit set for a card that takes part in bit-frame anticollision."""
    bits = atqa & 0x1F
    return bits != 0 and bits & (bits - 1) == 0


def sak_iso14443_4(sak: int) -> bool:
    """Whether a final SAK (cascade bit clear) announces an ISO 14443-4 card, one that answers RATS."""
    return bool(sak & SAK_ISO14443_4) and not sak & SAK_UID_INCOMPLETE


CLASSIC_SAKS = {1024: 0x08, 4096: 0x18, 320: 0x09}
"""The SAK of a MIFARE Classic by memory size in bytes (1K, 4K, Mini), as NXP's cards answer."""
_CLASSIC_SIZES = {sak: size for size, sak in CLASSIC_SAKS.items()}


def classic_size_from_sak(sak: int) -> int | None:
    """Memory size in bytes of the MIFARE Classic the SAK announces (0x08 1K, 0x18 4K, 0x09 Mini), else ``None``.

    Bit 0x20 may be set beside it (a smart card emulating a Classic answers 0x28 or 0x38).
    """
    return _CLASSIC_SIZES.get(sak & 0x19) if not sak & SAK_UID_INCOMPLETE else None


def check_uid(uid: bytes) -> bytes:
    """Return ``uid`` if it is a valid single, double or triple size UID, else raise.

    The cascade tag 88 may not be uid0 of a single size UID, nor (since ISO 14443-3 Amd 1) uid3 of a double size
    UID: at that cascade level a longer UID sends the tag, and the two would not collide. A triple size UID's last
    level competes with no longer UID, so it has no such rule.
    """
    if len(uid) not in UID_SIZES:
        raise ProtocolError(f"UID of {len(uid)} bytes: ISO 14443-3 UIDs have 4, 7 or 10")
    if len(uid) < 10 and uid[len(uid) - 4] == CASCADE_TAG:
        raise ProtocolError(f"UID {uid.hex().upper()}: byte {len(uid) - 4} is the cascade tag 88")
    return uid


def bcc(part: bytes) -> int:
    """Block check character: XOR of the four UID CLn bytes."""
    return part[0] ^ part[1] ^ part[2] ^ part[3]


def cascade_levels(uid: bytes) -> tuple[bytes, ...]:
    """The 4-byte UID CLn fields a PCD selects level by level: every level but the last starts with the cascade tag."""
    check_uid(uid)
    ct = bytes((CASCADE_TAG,))
    if len(uid) == 4:
        return (uid,)
    if len(uid) == 7:
        return (ct + uid[:3], uid[3:])
    return (ct + uid[:3], ct + uid[3:6], uid[6:])


def uid_from_levels(levels: tuple[bytes, ...] | list[bytes]) -> bytes:
    """Inverse of :func:`cascade_levels`: drop the cascade tags and join the levels."""
    if not 1 <= len(levels) <= 3 or any(len(level) != 4 for level in levels):
        raise ProtocolError("UID cascade: one to three levels of 4 bytes each")
    for level in levels[:-1]:
        if level[0] != CASCADE_TAG:
            raise ProtocolError(f"UID cascade level {level.hex().upper()} lacks the cascade tag 88")
    return check_uid(b"".join(level[1:] for level in levels[:-1]) + levels[-1])


# --- ATS ----------------------------------------------------------------------------------------------------------

_TA_PRESENT, _TB_PRESENT, _TC_PRESENT = 0x10, 0x20, 0x40
_DEFAULT_FSCI, _DEFAULT_FWI = 2, 4


@dataclass(slots=True)
class Ats:
    """Answer To Select. ``fsci`` is ``None`` when the ATS is the bare length byte (no T0): then the defaults apply.

    ``ta``/``tb``/``tc`` are the interface bytes TA(1), TB(1), TC(1), ``None`` when absent.
    """

    fsci: int | None = None
    ta: int | None = None
    tb: int | None = None
    tc: int | None = None
    historical: bytes = b""

    def __post_init__(self) -> None:
        if self.fsci is None and (self.ta is not None or self.tb is not None or self.tc is not None or self.historical):
            raise ProtocolError("ATS without T0 cannot carry interface or historical bytes")
        if self.fsci is not None and not 0 <= self.fsci <= 15:
            raise ProtocolError(f"ATS FSCI {self.fsci} is not a 4-bit code")
        for name in ("ta", "tb", "tc"):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= 0xFF:
                raise ProtocolError(f"ATS {name.upper()}(1) must be one byte, got {value}")
        interface = sum(value is not None for value in (self.ta, self.tb, self.tc))
        if 2 + interface + len(self.historical) > 0xFF:
            raise ProtocolError("ATS longer than 255 bytes")

    @classmethod
    def parse(cls, raw: bytes) -> Ats:
        """The ATS bytes as received, starting with TL and without CRC."""
        if not raw or raw[0] != len(raw):
            raise ProtocolError(f"ATS {raw.hex().upper()}: TL does not give its length {len(raw)}")
        if len(raw) == 1:
            return cls()
        t0 = raw[1]
        if t0 & 0x80:
            raise ProtocolError(f"ATS T0 {t0:02X}: bit 8 is RFU and must be 0")
        pos = 2
        interface: list[int | None] = []
        for present in (_TA_PRESENT, _TB_PRESENT, _TC_PRESENT):
            if t0 & present:
                if pos >= len(raw):
                    raise ProtocolError(f"ATS {raw.hex().upper()}: T0 announces more interface bytes than present")
                interface.append(raw[pos])
                pos += 1
            else:
                interface.append(None)
        ta, tb, tc = interface
        return cls(t0 & 0x0F, ta, tb, tc, raw[pos:])

    def to_bytes(self) -> bytes:
        if self.fsci is None:
            return b"\x01"
        t0 = self.fsci
        body = bytearray()
        for present, value in ((_TA_PRESENT, self.ta), (_TB_PRESENT, self.tb), (_TC_PRESENT, self.tc)):
            if value is not None:
                t0 |= present
                body.append(value)
        body += self.historical
        return bytes((len(body) + 2, t0)) + body

    @property
    def fsc(self) -> int:
        """Largest frame the card accepts, CRC included (FSCI 2, 32 bytes, when T0 is absent)."""
        return fsc(_DEFAULT_FSCI if self.fsci is None else self.fsci)

    @property
    def fwi(self) -> int:
        """FWI from TB(1); 4 when absent, and a received 15 (RFU) is taken as 4 as ISO 14443-4 asks."""
        if self.tb is None or self.tb >> 4 == 15:
            return _DEFAULT_FWI
        return self.tb >> 4

    @property
    def sfgi(self) -> int:
        """SFGI from TB(1); 0 when absent, and a received 15 (RFU) is taken as 0."""
        if self.tb is None or self.tb & 0x0F == 15:
            return 0
        return self.tb & 0x0F

    @property
    def fwt(self) -> float:
        return fwt(self.fwi)

    @property
    def sfgt(self) -> float:
        return sfgt(self.sfgi)

    @property
    def cid_supported(self) -> bool:
        """TC(1) bit 2; a card without TC(1) supports CID (the default TC(1) is 02)."""
        return True if self.tc is None else bool(self.tc & 0x02)

    @property
    def nad_supported(self) -> bool:
        return False if self.tc is None else bool(self.tc & 0x01)

    @property
    def same_bit_rate_both_ways(self) -> bool:
        """TA(1) bit 8: the card only takes the same divisor in both directions."""
        return self.ta is not None and bool(self.ta & 0x80)

    @property
    def bit_rates_to_pcd(self) -> tuple[int, ...]:
        """Bit rates (kbit/s) the card can send at: 106 always, then DS=2, 4, 8 from TA(1) bits 5..7."""
        return _bit_rates((self.ta or 0) >> 4)

    @property
    def bit_rates_to_picc(self) -> tuple[int, ...]:
        """Bit rates (kbit/s) the card can receive at: 106 always, then DR=2, 4, 8 from TA(1) bits 1..3."""
        return _bit_rates(self.ta or 0)


def _bit_rates(bits: int) -> tuple[int, ...]:
    return (106,) + tuple(rate for bit, rate in ((1, 212), (2, 424), (4, 848)) if bits & bit)


# --- ISO-DEP blocks (ISO 14443-4) ---------------------------------------------------------------------------------

PCB_CHAINING = 0x10
PCB_CID = 0x08
PCB_NAD = 0x04
PCB_BLOCK_NUMBER = 0x01
CRC_SIZE = 2


@dataclass(slots=True, frozen=True)
class Pcb:
    """A protocol control byte. ``kind`` is ``"I"``, ``"R"`` or ``"S"``.

    ``chaining`` is the I-block chaining bit; on an R-block the same bit means NAK (``nak``); on an S-block the
    bits 6..5 say DESELECT (00) or WTX (11), kept in ``wtx``.
    """

    kind: Literal["I", "R", "S"]
    block_number: int = 0
    chaining: bool = False
    cid: bool = False
    nad: bool = False
    nak: bool = False
    wtx: bool = False

    def __post_init__(self) -> None:
        if self.kind not in ("I", "R", "S"):
            raise ProtocolError(f"PCB kind {self.kind!r} is not I, R or S")
        if self.block_number not in (0, 1):
            raise ProtocolError(f"PCB block number {self.block_number} is not 0 or 1")
        extra = {"I": ("nak", "wtx"), "R": ("chaining", "nad", "wtx"), "S": ("chaining", "nad", "nak")}[self.kind]
        if any(getattr(self, name) for name in extra) or (self.kind == "S" and self.block_number):
            raise ProtocolError(f"{self.kind}-block PCB cannot carry {', '.join(extra)}")

    def to_byte(self) -> int:
        cid = PCB_CID if self.cid else 0
        if self.kind == "I":
            return (0x02 | self.block_number | cid | (PCB_NAD if self.nad else 0)
                    | (PCB_CHAINING if self.chaining else 0))
        if self.kind == "R":
            return 0xA2 | self.block_number | cid | (0x10 if self.nak else 0)
        return (0xF2 if self.wtx else 0xC2) | cid

    @classmethod
    def parse(cls, pcb: int) -> Pcb:
        if not 0 <= pcb <= 0xFF:
            raise ProtocolError(f"PCB {pcb} is not a byte")
        cid = bool(pcb & PCB_CID)
        if pcb & 0xE2 == 0x02:
            return cls("I", pcb & 1, bool(pcb & PCB_CHAINING), cid, bool(pcb & PCB_NAD))
        if pcb & 0xE6 == 0xA2:
            return cls("R", pcb & 1, cid=cid, nak=bool(pcb & 0x10))
        if pcb & 0xC7 == 0xC2 and pcb & 0x30 in (0x00, 0x30):
            return cls("S", cid=cid, wtx=bool(pcb & 0x30))
        raise ProtocolError(f"PCB {pcb:02X} is not a valid I-, R- or S-block")


def i_block_pcb(block_number: int, *, chaining: bool = False, cid: bool = False, nad: bool = False) -> int:
    return Pcb("I", block_number, chaining, cid, nad).to_byte()


def chain_payloads(apdu: bytes, fsc: int, *, cid: bool = False, nad: bool = False) -> list[bytes]:
    """Split an APDU into the INF fields of chained I-blocks that each fit in ``fsc`` bytes.

    Every block spends one byte on the PCB, one on the CID when used, and two on CRC_A; NAD goes in the first
    block of a chain only (ISO 14443-4 7.1.1.3), so later blocks carry one byte more.
    """
    first = fsc - 1 - cid - nad - CRC_SIZE
    rest = first + nad
    if first < 1:
        raise ProtocolError(f"FSC {fsc} leaves no room for data")
    chunks = [apdu[:first]]
    for start in range(first, len(apdu), rest):
        chunks.append(apdu[start:start + rest])
    return chunks


def chain_frames(apdu: bytes, fsc: int, *, block_number: int = 0, cid: int | None = None,
                 nad: int | None = None) -> list[bytes]:
    """The I-block frames (PCB, [CID], [NAD], INF, CRC_A) that carry ``apdu``, block numbers toggling from
    ``block_number``. Their count and lengths are what a timing model prices."""
    for name, value in (("CID", cid), ("NAD", nad)):
        if value is not None and not 0 <= value <= (14 if name == "CID" else 0xFF):
            raise ProtocolError(f"{name} {value} is out of range")
    frames = []
    payloads = chain_payloads(apdu, fsc, cid=cid is not None, nad=nad is not None)
    for index, inf in enumerate(payloads):
        with_nad = nad is not None and index == 0
        head = bytearray((i_block_pcb(block_number, chaining=index < len(payloads) - 1, cid=cid is not None,
                                      nad=with_nad),))
        if cid is not None:
            head.append(cid)
        if with_nad and nad is not None:
            head.append(nad)
        frame = bytes(head) + inf
        frames.append(frame + crc_a(frame))
        block_number ^= 1
    return frames
