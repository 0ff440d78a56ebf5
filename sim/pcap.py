"""Packet captures of a trace, for Wireshark and tshark: the card's APDUs as ISO 14443 frames (``LINKTYPE_ISO_14443``).

Link type 264, ``LINKTYPE_ISO_14443`` (assigned by tcpdump.org in 2015; the packet format is documented at
http://www.kaiser.cx/pcap-iso14443.html and read by Wireshark's ``iso14443`` dissector). Every packet is a 4-byte
pseudo-header and one frame as it crosses the air, CRC included::

    version (1 byte, 0) | event (1 byte) | length of the frame (2 bytes, big-endian) | frame

Events: ``FF`` data card → reader, ``FE`` data reader → card, ``FD`` field off, ``FC`` field on. Wireshark reassembles
chained I-blocks and hands their INF field to its ISO 7816 dissector when told to (Decode As, "ISO14443 payload
subdissector" → ISO 7816; in tshark ``-d iso14443.subdissector,iso7816``): it does not do so by itself, since an
ISO 14443-4 card may speak something other than ISO 7816-4 APDUs.

A trace holds APDUs, not frames, so the frames are rebuilt as ISO 14443-3/-4 prescribes: at each activation REQA,
ATQA, per cascade level an ANTICOLLISION and a SELECT with the UID and SAK, then RATS (FSD 256, no CID) and the ATS;
each APDU in I-blocks chained for the card's FSC (from its ATS), each answer chained for FSD 256, every chained block
acknowledged by an R(ACK), block numbers as ISO 14443-4 toggles them, and CRC_A on every frame but REQA, ATQA and the
anticollision answers. Commands are stamped at the exchange's start, answers at its end. Only contactless (card)
links are exported: a PSAM's exchanges cross a contact line that this link type does not describe.

``.pcapng`` files get one interface per link (named after it) and nanosecond time stamps; other names get a classic
pcap file (nanosecond variant, magic ``A1B23C4D``), which holds one link.
"""

from __future__ import annotations

import datetime as dt
import os
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from protocols.errors import ProtocolError, YktError
from protocols.iso14443 import Ats, bcc, cascade_levels, chain_frames, crc_a
from terminal.link import Activation
from terminal.trace import Exchange
from terminal.tracefile import Trace, TraceActivation

LINKTYPE_ISO_14443 = 264
EVENT_TO_READER = 0xFF
EVENT_TO_CARD = 0xFE
EVENT_FIELD_OFF = 0xFD
EVENT_FIELD_ON = 0xFC
FSD = 256
"""The reader's frame size, as RATS asks for it (FSDI 8)."""

_REQA = b"\x26"
_SEL = (0x93, 0x95, 0x97)
_NVB_ANTICOLLISION = 0x20
_NVB_SELECT = 0x70
_SAK_INCOMPLETE = 0x04
_RATS = b"\xe0\x80"  # FSDI 8 (256 bytes), CID 0
_R_ACK = 0xA2
_SNAPLEN = 65535
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

Frame = tuple[int, bytes]
"""An event of the pseudo-header and the frame it carries."""


class CaptureError(YktError):
    """A capture cannot be made from this trace, or cannot be written."""


@dataclass(frozen=True, slots=True)
class Packet:
    """One packet of a capture: the interface (link) index, its time in ns since 1970 (UTC), its bytes."""

    interface: int
    unix_ns: int
    data: bytes


def iso14443_packet(event: int, frame: bytes = b"") -> bytes:
    """The pseudo-header and the frame."""
    return struct.pack(">BBH", 0, event, len(frame)) + frame


def _with_crc(frame: bytes) -> bytes:
    return frame + crc_a(frame)


def activation_frames(activation: Activation) -> list[Frame]:
    """The frames of a type A activation, as (event, frame) pairs; none when the activation lacks what they carry
    (a reader that reports only an ATR, say)."""
    try:
        levels = cascade_levels(activation.uid)
    except ProtocolError:
        return []
    if len(activation.atqa) != 2 or activation.sak is None:
        return []
    frames = [(EVENT_TO_CARD, _REQA), (EVENT_TO_READER, activation.atqa)]
    for index, part in enumerate(levels):
        sel, check = _SEL[index], bytes((bcc(part),))
        sak = activation.sak if index == len(levels) - 1 else _SAK_INCOMPLETE
        frames += [(EVENT_TO_CARD, bytes((sel, _NVB_ANTICOLLISION))), (EVENT_TO_READER, part + check),
                   (EVENT_TO_CARD, _with_crc(bytes((sel, _NVB_SELECT)) + part + check)),
                   (EVENT_TO_READER, _with_crc(bytes((sak,))))]
    if activation.ats is not None:
        frames += [(EVENT_TO_CARD, _with_crc(_RATS)), (EVENT_TO_READER, _with_crc(activation.ats))]
    return frames


class BlockFramer:
    """ISO 14443-4 block framing of APDUs for one card, with the block number kept across exchanges."""

    def __init__(self, activation: Activation | None = None) -> None:
        ats = activation.ats if activation is not None else None
        try:
            self.fsc = Ats.parse(ats).fsc if ats is not None else Ats().fsc
        except ProtocolError as exc:
            raise CaptureError(f"the card's ATS does not parse: {exc}") from None
        self.block = 0

    def exchange(self, command: bytes, response: bytes | None) -> tuple[list[Frame], list[Frame]]:
        """The frames of one exchange: those sent at its start (the command, and the card's R(ACK)s of a chained one)
        and those of the answer (none when the card did not answer)."""
        out: list[Frame] = []
        blocks = chain_frames(command, self.fsc, block_number=self.block)
        for index, frame in enumerate(blocks):
            out.append((EVENT_TO_CARD, frame))
            if index < len(blocks) - 1:
                out.append((EVENT_TO_READER, _with_crc(bytes((_R_ACK | frame[0] & 1,)))))
        last = blocks[-1][0] & 1
        answer: list[Frame] = []
        if response is None:
            self.block = last ^ 1
            return out, answer
        blocks = chain_frames(response, FSD, block_number=last)
        for index, frame in enumerate(blocks):
            if index:
                answer.append((EVENT_TO_CARD, _with_crc(bytes((_R_ACK | frame[0] & 1,)))))
            answer.append((EVENT_TO_READER, frame))
        self.block = (blocks[-1][0] & 1) ^ 1
        return out, answer


def trace_packets(trace: Trace, links: Sequence[str]) -> list[Packet]:
    """The packets of ``links`` (each one interface, in the order given), in trace order."""
    origin = (trace.header.created - _EPOCH) // dt.timedelta(microseconds=1) * 1000
    index = {name: position for position, name in enumerate(links)}
    framers: dict[str, BlockFramer] = {}
    packets: list[Packet] = []

    def add(interface: int, at_ns: int, frames: Iterable[Frame]) -> None:
        packets.extend(Packet(interface, origin + at_ns, iso14443_packet(event, frame)) for event, frame in frames)

    for event in trace.events:
        interface = index.get(event.link)
        if interface is None:
            continue
        if isinstance(event, TraceActivation):
            if event.link not in framers:
                add(interface, event.at_ns, [(EVENT_FIELD_ON, b"")])
            framers[event.link] = BlockFramer(event.activation)
            add(interface, event.at_ns, activation_frames(event.activation))
        elif isinstance(event, Exchange):
            framer = framers.setdefault(event.link, BlockFramer())
            sent, answer = framer.exchange(event.command, event.response)
            add(interface, event.start_ns, sent)
            add(interface, event.start_ns + event.duration_ns, answer)
    return packets


# --- file formats --------------------------------------------------------------------------------------------------

def write_pcap(path: str | os.PathLike[str], packets: Iterable[Packet], linktype: int = LINKTYPE_ISO_14443) -> None:
    """A classic pcap file with nanosecond time stamps (all packets on one link)."""
    out = bytearray(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, _SNAPLEN, linktype))
    for packet in packets:
        seconds, nanos = divmod(packet.unix_ns, 1_000_000_000)
        out += struct.pack("<IIII", seconds, nanos, len(packet.data), len(packet.data)) + packet.data
    _save(path, bytes(out))


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + bytes(-len(value) % 4)


def _block(kind: int, body: bytes) -> bytes:
    length = 12 + len(body)
    return struct.pack("<II", kind, length) + body + struct.pack("<I", length)


def write_pcapng(path: str | os.PathLike[str], interfaces: Sequence[str], packets: Iterable[Packet], *,
                 application: str = "yikatong", linktype: int = LINKTYPE_ISO_14443) -> None:
    """A pcapng file: one section, one interface per name (``if_name``, nanosecond ``if_tsresol``), one enhanced
    packet block per packet."""
    end = _option(0, b"")
    out = bytearray(_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)
                           + _option(4, application.encode()) + end))
    for name in interfaces:
        out += _block(1, struct.pack("<HHI", linktype, 0, _SNAPLEN) + _option(2, name.encode()) + _option(9, b"\x09")
                      + end)
    for packet in packets:
        data = packet.data + bytes(-len(packet.data) % 4)
        out += _block(6, struct.pack("<IIIII", packet.interface, packet.unix_ns >> 32, packet.unix_ns & 0xFFFFFFFF,
                                     len(packet.data), len(packet.data)) + data)
    _save(path, bytes(out))


def _save(path: str | os.PathLike[str], data: bytes) -> None:
    try:
        Path(path).write_bytes(data)
    except OSError as exc:
        raise CaptureError(f"{os.fspath(path)}: cannot write: {exc.strerror or exc}") from None


def export_capture(trace: Trace, path: str | os.PathLike[str], links: Sequence[str] | None = None) -> int:
    """Write the capture of ``links`` (default: every card link) to ``path``; pcapng when the name ends in
    ``.pcapng``, else pcap. Returns the number of packets."""
    chosen = list(links) if links else [link.name for link in trace.links("card")]
    if not chosen:
        raise CaptureError("the trace has no card link to export")
    for name in chosen:
        if trace.role(name) != "card":
            raise CaptureError(f"link {name!r} reaches a {trace.role(name)}: only contactless card links have an "
                               f"ISO 14443 capture")
    packets = trace_packets(trace, chosen)
    if Path(path).suffix.lower() == ".pcapng":
        write_pcapng(path, chosen, packets, application=trace.header.tool)
    elif len(chosen) > 1:
        raise CaptureError(f"a pcap file holds one link, and {len(chosen)} were chosen: name a .pcapng file, or "
                           f"choose one link")
    else:
        write_pcap(path, packets)
    return len(packets)
