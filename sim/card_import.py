"""A card fixture from a capture: the twin of a rider's card, under a test key set (``docs/card-capture.md``).

The capture is a trace (``ykt read --out``, or a validator's trace of a tap, ``docs/trace-format.md``) or a plain log
of command and response hex pairs, one exchange a line. :func:`terminal.readout.interpret` works out what the card
held as it came into the field; the twin holds that: its files, records, balance and counters as read, its UID and
ATS. Its keys cannot be the card's (no capture holds keys): they are the key set's, diversified with the card's
issuer and serial as a PSAM holding that key set derives them, so the twin pays at a simulated validator with that
PSAM as the card pays at a real one. A tap on the twin therefore gets the fare or the decline the card would get;
its MACs and TACs are the test keys', not the card's.

What the capture does not hold is filled in the way issued cards are and said in a note: a file 0x16 not read is
an anonymous holder's; the bytes of 0x17 past a short read take an issued card's values; counters not answered by
INITIALIZE come from the newest 0x18 record of their kind, else 0. A capture without the card's 0x15, or without
the balance of a card that is not blocked, cannot make a twin.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from protocols import card_files as cf
from protocols.errors import ProtocolError
from protocols.fci import T_UNION_EP_AID, Fci
from protocols.hexutil import parse_hex, to_hex
from protocols.iso14443 import Ats, check_uid
from protocols.schemes import T_UNION
from terminal.keyset import Keyset
from terminal.link import Activation
from terminal.readout import Captured, CaptureError, CardReading, interpret
from terminal.tracefile import TraceActivation, TraceError, parse_trace

from .card import DEFAULT_ATS, DEFAULT_SAK, CardImage, PurseState, default_atqa
from .issuing import (
    ANONYMOUS_HOLDER,
    card_keys,
    maintenance_key,
    management_file,
    uid_from_serial,
)

_SEPARATOR = re.compile(r"\s*(?:->|=>|<-|\||;|,|\t)\s*")
_LOADS = frozenset((cf.TransactionType.EP_LOAD,))
_PURCHASES = frozenset((cf.TransactionType.EP_PURCHASE, cf.TransactionType.COMPOSITE_PURCHASE))
_TOP_BIT = 0x80000000


@dataclass(slots=True)
class Capture:
    """A capture's card exchanges and activations, and what kind of file it was (``trace`` or ``log``)."""

    source: str
    kind: str
    exchanges: list[Captured]
    activations: list[Activation] = field(default_factory=list)


@dataclass(slots=True)
class Twin:
    """The twin's image, what the capture showed, and the notes on what was filled in."""

    image: CardImage
    reading: CardReading
    capture: Capture
    notes: list[str]


def load_capture(path: str | os.PathLike[str]) -> Capture:
    """Read a capture file: a trace when its first line is a JSON object, else a plain log."""
    source = os.fspath(path)
    try:
        text = Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise CaptureError(f"{source}: cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise CaptureError(f"{source}: not UTF-8 text") from None
    if text.lstrip().startswith("{"):
        return _from_trace(text, source)
    return parse_log(text, source)


def _from_trace(text: str, source: str) -> Capture:
    try:
        trace = parse_trace(text, source)
    except TraceError as exc:
        raise CaptureError(str(exc)) from None
    card_links = {link.name for link in trace.links("card")}
    used = {event.link for event in trace.exchanges() if event.link in card_links}
    if len(used) > 1:
        raise CaptureError(f"{source}: exchanges on {len(used)} card links ({', '.join(sorted(used))}); a capture "
                           f"holds one card")
    exchanges = [Captured(f"exchange {number}", event.command, event.response, event.error)
                 for number, event in enumerate(trace.exchanges(), 1) if event.link in card_links]
    activations = [event.activation for event in trace.events
                   if isinstance(event, TraceActivation) and event.link in card_links]
    if not exchanges:
        raise CaptureError(f"{source}: the trace holds no exchange with a card")
    return Capture(source, "trace", exchanges, activations)


def parse_log(text: str, source: str = "log") -> Capture:
    """A plain log: one exchange a line, the command and the response in hex, separated by ``->``, ``=>``, ``|``,
    ``;``, ``,``, a tab, or (when neither has spaces inside) a space; ``#`` starts a comment."""
    exchanges: list[Captured] = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = _SEPARATOR.split(line, maxsplit=1)
        if len(parts) != 2:
            parts = line.split()
        if len(parts) != 2:
            raise CaptureError(f"{source}: line {number}: expected a command and its response, got {line!r}")
        try:
            command = parse_hex(parts[0], what="command")
            response = parse_hex(parts[1], what="response")
        except ProtocolError as exc:
            raise CaptureError(f"{source}: line {number}: {exc}") from None
        if len(command) < 4 or len(response) < 2:
            raise CaptureError(f"{source}: line {number}: a command has at least 4 bytes and a response its status "
                               f"word")
        exchanges.append(Captured(f"exchange {len(exchanges) + 1} (line {number})", command, response))
    if not exchanges:
        raise CaptureError(f"{source}: no exchange in it")
    return Capture(source, "log", exchanges)


def make_twin(capture: Capture, keyset: Keyset) -> Twin:
    """The twin of the capture's card under ``keyset`` (module notes); :class:`CaptureError` when the capture
    contradicts itself or cannot make a T-Union card."""
    reading = interpret(capture.exchanges, capture.activations)
    source = capture.source
    if reading.scheme is None:
        raise CaptureError(f"{source}: no purse application is selected in it")
    if reading.scheme is not T_UNION:
        raise CaptureError(f"{source}: the card is a {reading.scheme.name} card ({reading.sources['application']}); "
                           f"twins are T-Union purse cards, the ones the simulator plays")
    notes: list[str] = []
    public_info = reading.files.get(cf.SFI_PUBLIC_APP_INFO, b"")
    if len(public_info) != cf.PUBLIC_APP_INFO_SIZE:
        raise CaptureError(f"{source}: file 0x15 is {len(public_info)} bytes in it; the twin needs its "
                           f"{cf.PUBLIC_APP_INFO_SIZE} (issuer, serial and validity)")
    if reading.balance is None and not reading.blocked:
        raise CaptureError(f"{source}: the card's balance is not in it (no GET BALANCE or INITIALIZE answer)")
    issuer, serial = public_info[0:8], public_info[10:20]
    image = CardImage(
        *_activation(reading.activation, serial, notes), algorithm=keyset.algorithm, public_info=public_info,
        cardholder=_filled(reading, cf.SFI_CARDHOLDER, ANONYMOUS_HOLDER, "an anonymous holder's", notes),
        management=_filled(reading, cf.SFI_MANAGEMENT, management_file(issuer[2:4]),
                           "an issued card's (China, the issuer's city, interoperable, normal card)", notes),
        transaction_log=_records(reading, cf.SFI_TRANSACTION_LOG, cf.TRANSACTION_LOG_RECORD_SIZE,
                                 cf.TRANSACTION_LOG_RECORDS, notes),
        process_records=_process_records(reading, notes),
        transit_log=_records(reading, cf.SFI_TRANSIT_LOG, cf.TRANSIT_RECORD_SIZE, cf.TRANSIT_RECORDS, notes),
        purse=_purse(reading, notes), keys=card_keys(keyset, issuer, serial),
        maintenance_key=maintenance_key(keyset, issuer, serial), blocked=reading.blocked, ppse=_lists_purse(reading),
    )
    for sfi in (cf.SFI_TRANSACTION_LOG, cf.SFI_PROCESS, cf.SFI_TRANSIT_LOG):
        if sfi not in reading.records_asked:
            notes.append(f"file 0x{sfi:02X}: no record of it is read in the capture; the twin holds none")
    if reading.passbook_balance is not None:
        image.passbook = PurseState(reading.passbook_balance & ~_TOP_BIT)
        notes.append("the passbook's counters are not in the capture: 0")
    init = reading.purchase_init or reading.load_init
    if init is not None and (init.key_version, init.algorithm_id) != (1, 0):
        notes.append(f"the card answered key version {init.key_version:02X}, algorithm {init.algorithm_id:02X}; "
                     f"the twin answers its key set's")
    notes[:0] = reading.notes
    number = serial.hex()[1:] if serial.hex().isdigit() else to_hex(serial)
    image.description = (f"Twin of card {number}, imported from {capture.kind} {Path(source).name}: the card's files, "
                         f"records, balance and counters as read, with keys of the "
                         f"{'test-only ' if keyset.test_only else ''}key set in place of the card's.")
    return Twin(image, reading, capture, notes)


def _activation(activation: Activation | None, serial: bytes,
                notes: list[str]) -> tuple[bytes, bytes, int, bytes]:
    if activation is not None and activation.protocol == "T=CL" and activation.ats and activation.sak is not None:
        try:
            check_uid(activation.uid)
            Ats.parse(activation.ats)
            return activation.uid, activation.atqa or default_atqa(activation.uid), activation.sak, activation.ats
        except ProtocolError as exc:
            notes.append(f"the captured activation does not make a card ({exc}); an issued card's is used")
    else:
        notes.append("no ISO 14443-4 activation in the capture: UID, ATQA, SAK and ATS are an issued card's")
    uid = uid_from_serial(serial)
    return uid, default_atqa(uid), DEFAULT_SAK, DEFAULT_ATS


def _filled(reading: CardReading, sfi: int, issued: bytes, whose: str, notes: list[str]) -> bytes:
    read = reading.files.get(sfi, b"")[:len(issued)]
    if len(read) < len(issued):
        got = f"bytes {len(read)}..{len(issued) - 1}" if read else "all of it"
        notes.append(f"file 0x{sfi:02X}: {got} not in the capture; filled as {whose}")
    return read + issued[len(read):]


def _records(reading: CardReading, sfi: int, size: int, most: int, notes: list[str]) -> list[bytes]:
    """The records numbered 1, 2, ... as read, up to the first one missing or of another size."""
    found = reading.records.get(sfi, {})
    kept = []
    for number in range(1, len(found) + 1):
        record = found.get(number)
        if record is None:
            notes.append(f"file 0x{sfi:02X}: record {number} is not in the capture; the records after it are left out")
            break
        if len(record) != size or number > most:
            notes.append(f"file 0x{sfi:02X}: record {number} is {len(record)} bytes (a record is {size}, at most "
                         f"{most} of them); it and those after it are left out")
            break
        kept.append(record)
    return kept


def _process_records(reading: CardReading, notes: list[str]) -> dict[int, bytes]:
    kept = {}
    for record_id, record in sorted(reading.process_records.items()):
        if len(record) == cf.PROCESS_RECORD_SIZE and record[0] == cf.PROCESS_RECORD_TAG:
            kept[record_id] = record
        else:
            notes.append(f"0x1A record {record_id:02X}: not a {cf.PROCESS_RECORD_SIZE}-byte record starting 27; "
                         f"left out")
    return kept


def _purse(reading: CardReading, notes: list[str]) -> PurseState:
    balance = reading.balance
    if balance is None:  # a blocked card does not tell it
        notes.append("the card is blocked and does not tell its balance: the twin holds 0, which no tap sees while "
                     "it is blocked")
        balance = 0
    if balance & _TOP_BIT:
        notes.append(f"the balance {balance:08X} has its top bit set, which some schemes use as a flag: the twin "
                     f"holds the other 31 bits, {balance & ~_TOP_BIT} fen")
        balance &= ~_TOP_BIT
    purchase, load = reading.purchase_init, reading.load_init
    overdraft = 0 if purchase is None else purchase.overdraft_limit
    if purchase is None:
        notes.append("the overdraft limit is not in the capture (no INITIALIZE FOR PURCHASE answer): 0")
    offline = purchase.offline_atc if purchase is not None else _after_newest(reading, _PURCHASES, "offline", notes)
    online = load.online_atc if load is not None else _after_newest(reading, _LOADS, "online", notes)
    return PurseState(balance, overdraft, offline, online)


def _after_newest(reading: CardReading, kinds: frozenset[int], counter: str, notes: list[str]) -> int:
    for number, raw in sorted(reading.records.get(cf.SFI_TRANSACTION_LOG, {}).items()):
        try:
            record = cf.TRANSACTION_LOG_RECORD.parse(raw)
        except ProtocolError:
            continue
        if record.transaction_type in kinds:
            notes.append(f"the {counter} ATC is not in the capture (no INITIALIZE answer): one past 0x18 record "
                         f"{number}'s, {record.atc + 1}")
            return record.atc + 1
    notes.append(f"the {counter} ATC is not in the capture (no INITIALIZE answer, no record of its kind): 0")
    return 0


def _lists_purse(reading: CardReading) -> bool:
    if reading.ppse is None:
        return False
    try:
        return any(entry.aid == T_UNION_EP_AID for entry in Fci.parse(reading.ppse).directory)
    except ProtocolError:
        return False
