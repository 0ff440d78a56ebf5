"""ISO/IEC 7816-3 for contact cards (the PSAM): the Answer To Reset and the PPS exchange that raises the line speed.

After reset a card speaks at the default rate, one etu = 372 / f (9600 bit/s at f = 3.5712 MHz). Its ATR may offer a
faster one in TA1 (clock rate conversion Fi and baud rate adjustment Di, one etu = Fi / (Di · f)); the interface
device then asks for it with a PPS request (``FF PPS0 [PPS1] PCK``) and the card confirms by echoing it, after which
both sides use the new etu. An ATR whose TA2 is present (specific mode) leaves no choice: the card speaks at TA1's
rate at once, with no PPS.

Only what a SAM slot needs is decoded: TS, T0 and the chain of interface bytes (TA/TB/TC/TDi), the historical bytes
and TCK (present whenever a protocol other than T=0 is offered, and then checked).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import ProtocolError

FI = {0: 372, 1: 372, 2: 558, 3: 744, 4: 1116, 5: 1488, 6: 1860, 9: 512, 10: 768, 11: 1024, 12: 1536, 13: 2048}
"""Clock rate conversion factor Fi by the high nibble of TA1 (the other codes are reserved)."""
DI = {1: 1, 2: 2, 3: 4, 4: 8, 5: 16, 6: 32, 7: 64, 8: 12, 9: 20}
"""Baud rate adjustment factor Di by the low nibble of TA1 (the other codes are reserved)."""
DEFAULT_TA1 = 0x11
"""Fi = 372, Di = 1: the rate every card speaks after reset."""
PPSS = 0xFF


@dataclass(frozen=True, slots=True)
class Atr:
    """An Answer To Reset: ``interface`` holds the interface bytes by name (``TA1``, ``TB1``, ``TC1``, ``TD1``,
    ``TA2`` ...), ``protocols`` the protocols the TDi bytes offer (T=0 when none does)."""

    convention: str  # "direct" (TS 3B) or "inverse" (TS 3F)
    interface: dict[str, int] = field(default_factory=dict)
    protocols: tuple[int, ...] = (0,)
    historical: bytes = b""

    @classmethod
    def parse(cls, raw: bytes) -> Atr:
        if len(raw) < 2 or raw[0] not in (0x3B, 0x3F):
            raise ProtocolError(f"ATR {raw.hex().upper()}: TS must be 3B (direct) or 3F (inverse)")
        interface: dict[str, int] = {}
        protocols: list[int] = []
        position, level, indicator = 2, 1, raw[1]
        historical_size = raw[1] & 0x0F
        while True:
            for bit, letter in ((0x10, "A"), (0x20, "B"), (0x40, "C"), (0x80, "D")):
                if indicator & bit:
                    if position >= len(raw):
                        raise ProtocolError(f"ATR {raw.hex().upper()}: cut short in its interface bytes")
                    interface[f"T{letter}{level}"] = raw[position]
                    position += 1
            if not indicator & 0x80:
                break
            indicator = interface[f"TD{level}"]
            protocols.append(indicator & 0x0F)
            level += 1
        end = position + historical_size
        needs_tck = any(protocol != 0 for protocol in protocols)
        if len(raw) != end + needs_tck:
            raise ProtocolError(f"ATR {raw.hex().upper()}: {len(raw)} bytes, its T0 and TDi say {end + needs_tck}")
        if needs_tck and _xor(raw[1:]) != 0:
            raise ProtocolError(f"ATR {raw.hex().upper()}: TCK does not check")
        return cls("direct" if raw[0] == 0x3B else "inverse", interface, tuple(protocols) or (0,), raw[position:end])

    @property
    def ta1(self) -> int:
        """TA1 (Fi and Di), :data:`DEFAULT_TA1` when absent."""
        return self.interface.get("TA1", DEFAULT_TA1)

    @property
    def specific_mode(self) -> bool:
        """TA2 present: the card speaks at TA1's rate from the start and takes no PPS."""
        return "TA2" in self.interface

    @property
    def extra_guard_etu(self) -> int:
        """N of TC1: extra guard time between two characters from the reader, in etu."""
        return self.interface.get("TC1", 0)


def rate(ta1: int) -> tuple[int, int]:
    """(Fi, Di) of a TA1 byte; ProtocolError for reserved codes."""
    fi, di = FI.get(ta1 >> 4), DI.get(ta1 & 0x0F)
    if fi is None or di is None:
        raise ProtocolError(f"TA1 {ta1:02X}: reserved Fi or Di code")
    return fi, di


def etu_us(ta1: int, clock_hz: float) -> float:
    """One elementary time unit at the rate of ``ta1`` with the card clocked at ``clock_hz``, in µs."""
    fi, di = rate(ta1)
    return fi / di / clock_hz * 1e6


def _xor(data: bytes) -> int:
    check = 0
    for byte in data:
        check ^= byte
    return check


def pps_request(ta1: int, protocol: int = 0) -> bytes:
    """``FF PPS0 PPS1 PCK``: ask for the Fi/Di of ``ta1`` under ``protocol`` (T=0 unless given)."""
    rate(ta1)
    if not 0 <= protocol <= 15:
        raise ProtocolError(f"PPS: protocol T={protocol} is not a 4-bit code")
    body = bytes((PPSS, 0x10 | protocol, ta1))
    return body + bytes((_xor(body),))


def pps_parameters(message: bytes) -> tuple[int, int]:
    """(protocol, TA1) of a PPS request or response; a PPS without PPS1 keeps the default rate."""
    if len(message) < 3 or message[0] != PPSS or _xor(message) != 0:
        raise ProtocolError(f"PPS {message.hex().upper()}: not FF PPS0 ... PCK with a good check byte")
    pps0 = message[1]
    optional = bin(pps0 & 0x70).count("1")
    if len(message) != 3 + optional:
        raise ProtocolError(f"PPS {message.hex().upper()}: PPS0 {pps0:02X} says {3 + optional} bytes")
    return pps0 & 0x0F, message[2] if pps0 & 0x10 else DEFAULT_TA1
