"""Every parser of the project as a fuzzing target, with the valid bytes its hostile input starts from.

The valid bytes (:class:`Corpus`) are what really goes over the wire: the card and PSAM exchanges of a composite
purchase, of a torn debit's recovery and of a load, their PN532 frames, and a MIFARE Classic card's blocks and
commands. The targets are the codecs (APDUs, status words and TLV, the FCI, card and PSAM commands, every fixed
layout of ``protocols``, PN532 frames and messages, ATS, MIFARE commands, blocks and PC/SC pseudo-APDUs, the M1
debit's recovery reading), the decoders behind ``ykt decode``, the simulated devices that parse what they are sent
(the T-Union card, the PSAM, the MIFARE Classic card, the PN532 chip), the load host's JSON messages, and the two
terminals fed garbled answers: a validator (from a T-Union card, an M1 card and its PSAM) and a load terminal.
"""

from __future__ import annotations

import copy
import importlib
import pkgutil
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from hypothesis import strategies as st

import protocols
from protocols import mifare, pn532, tlv
from protocols.apdu import CommandAPDU, ResponseAPDU
from protocols.card_commands import parse_card_command
from protocols.errors import YktError
from protocols.fci import Fci
from protocols.iso14443 import Ats
from protocols.layout import Layout
from protocols.m1.debit import assess
from protocols.m1.layout import parse_public_info
from protocols.pcsc_mifare import parse_storage_command
from protocols.psam_commands import parse_psam_command
from terminal.clock import ManualClock
from terminal.errors import OutOfService, ReaderGone
from terminal.loads import messages
from terminal.trace import ExchangeLog

from ..card import SimCard
from ..card.image import CardImage
from ..card.m1_card import M1Card, M1Image
from ..card.m1_issuing import issue_m1_card
from ..decoding import decode_command, decode_file, decode_response
from ..device import Device
from ..issuing import load_demo_keyset
from ..pn532 import Pn532Chip
from ..psam import demo_psam
from ..reader import Tear
from ..stations import LoadStation, Station, ValidatorStation
from ..tears import START, TERMINAL, m1_riders, riders
from .inputs import hostile
from .intercept import Intercepted

FILES = (0x15, 0x16, 0x17, 0x18, 0x1A, 0x1E)
T = TypeVar("T")


class Undocumented(Exception):
    """A project error a terminal's API does not document for that call (``poll`` documents only ``OutOfService``
    and ``ReaderGone``): counted as an exception that must not happen."""


def all_layouts() -> list[tuple[str, Layout[Any]]]:
    """Every :class:`~protocols.layout.Layout` declared at module level in ``protocols``, by dotted name."""
    found: dict[int, tuple[str, Layout[Any]]] = {}
    for info in pkgutil.walk_packages(protocols.__path__, "protocols."):
        module = importlib.import_module(info.name)
        for attr, value in vars(module).items():
            if isinstance(value, Layout) and id(value) not in found:
                found[id(value)] = (f"{info.name}.{attr}", value)
    return sorted(found.values(), key=lambda item: item[0])


@dataclass
class Corpus:
    """Valid bytes of every kind, from real runs of the terminals on simulated devices."""

    card: list[tuple[bytes, bytes]] = field(default_factory=list)  # (command, answer) of the card
    m1_card: list[tuple[bytes, bytes]] = field(default_factory=list)  # (pseudo-APDU, answer) of an M1 card's debit
    psam: list[tuple[bytes, bytes]] = field(default_factory=list)  # (command, answer) of the PSAM
    m1_blocks: list[bytes] = field(default_factory=list)
    m1_commands: list[bytes] = field(default_factory=list)
    card_images: list[CardImage] = field(default_factory=list)
    m1_images: list[M1Image] = field(default_factory=list)
    """The cards the exchanges are of, T-Union and M1 (the fuzzed devices start from copies of the first T-Union
    card and the last M1 card; every one's keys go in the key ring)."""

    @property
    def card_commands(self) -> tuple[bytes, ...]:
        return tuple(command for command, _ in self.card)

    @property
    def card_answers(self) -> tuple[bytes, ...]:
        return tuple(answer for _, answer in self.card)

    @property
    def psam_commands(self) -> tuple[bytes, ...]:
        return tuple(command for command, _ in self.psam)

    @property
    def frames(self) -> tuple[bytes, ...]:
        """PN532 frames: the card's commands as the host sends them, its answers as the chip does."""
        host = (pn532.host_frame(pn532.InDataExchange(1, command).to_bytes()) for command in self.card_commands[:12])
        chip = (pn532.chip_frame(b"\x41\x00" + answer) for answer in self.card_answers[:12])
        return (*host, *chip, *(control.value for control in pn532.ControlFrame))


def recorded(directory: Path) -> Corpus:
    """The exchanges of a composite purchase, a torn debit and its recovery, an M1 debit, a load, and an M1 card's
    blocks and commands."""
    corpus = Corpus()
    log = ExchangeLog()
    clock = ManualClock(START)
    validator = ValidatorStation("corpus", TERMINAL, clock, tracer=log)
    card, torn = riders(2, 7, first=300_000)
    validator.tap(card)
    validator.tap(torn, Tear.after("8054"))
    clock.advance(2)
    validator.tap(torn)
    [m1_rider] = m1_riders(1, 7, first=300_020)
    start = len(log.exchanges)
    validator.tap(m1_rider)
    corpus.m1_card = [(e.command, e.response) for e in log.exchanges[start:]
                      if e.link != "sam" and e.response is not None]
    del log.exchanges[start:]
    loader = LoadStation("corpus-load", clock, directory, tracer=log)
    [loaded] = riders(1, 7, first=300_010)
    loader.tap(loaded)
    validator.close()
    loader.close()
    for exchange in log.exchanges:
        if exchange.response is None:
            continue
        pair = (exchange.command, exchange.response)
        (corpus.psam if exchange.link == "sam" else corpus.card).append(pair)
    m1 = issue_m1_card(load_demo_keyset(), issuer_serial=bytes.fromhex("00000042"), balance=10000)
    corpus.card_images = [card.cpu.image, torn.cpu.image, loaded.cpu.image]
    corpus.m1_images = [m1_rider.m1_card.image, m1.image]
    memory = bytes(m1.image.memory)
    corpus.m1_blocks = [memory[n:n + 16] for n in range(0, len(memory), 16)]
    uid = m1.image.uid[:4]
    for sector in range(16):
        trailer = mifare.trailer_block(sector)
        corpus.m1_commands.append(mifare.Authenticate(mifare.KeyType.A, trailer, memory[16 * trailer:16 * trailer + 6],
                                                      uid).to_bytes())
        corpus.m1_commands += [mifare.Read(trailer - 1).to_bytes(), mifare.Write(trailer - 1, bytes(16)).to_bytes()]
    corpus.m1_commands += [mifare.ValueCommand(mifare.ValueOperation.DECREMENT, 8, 100).to_bytes(),
                           mifare.Transfer(8).to_bytes()]
    return corpus


class _Garbled(Intercepted):
    """A device whose answers at the exchanges of ``changes`` (index since power-on → bytes) are replaced."""

    def __init__(self, device: Device, changes: dict[int, bytes]) -> None:
        super().__init__(device)
        self.changes = changes

    def answer(self, index: int, apdu: bytes, answer: bytes) -> bytes:
        return self.changes.get(index, answer)


def _changes(answers: tuple[bytes, ...], most: int = 14) -> st.SearchStrategy[dict[int, bytes]]:
    return st.dictionaries(st.integers(0, most), hostile(answers, max_size=80), min_size=1, max_size=3)


@dataclass(frozen=True, slots=True)
class Target(Generic[T]):
    """A fuzzing target: its ``name``, the hostile ``inputs`` it takes, what it ``run``s on each, and its share of
    the campaign's inputs (``weight``)."""

    name: str
    inputs: st.SearchStrategy[T]
    run: Callable[[T], object]
    weight: float = 1.0


class Terminals:
    """The terminals the garbled-answer targets tap at (made once, kept from input to input, like a validator that
    meets one strange card after another)."""

    def __init__(self, directory: Path) -> None:
        self.clock = ManualClock(START)
        self.validator = ValidatorStation("fuzz", TERMINAL, self.clock)
        self.loader = LoadStation("fuzz-load", self.clock, directory)
        self.cards = riders(4, 11, first=310_000)
        self.m1_cards = m1_riders(2, 11, first=310_000)
        self.psam = demo_psam(TERMINAL)
        self.rng = random.Random(11)

    def close(self) -> None:
        self.validator.close()
        self.loader.close()

    def card_answers(self, changes: dict[int, bytes]) -> None:
        self._tap(self.validator, _Garbled(self.rng.choice(self.cards), changes))

    def psam_answers(self, changes: dict[int, bytes]) -> None:
        station = self.validator
        station.sam.take()
        station.sam.put(_Garbled(self.psam, changes))
        try:
            station.restart()
        except OutOfService:
            return  # the documented end of a PSAM answering garbage at start-up
        self._tap(station, self.rng.choice(self.cards))

    def m1_answers(self, changes: dict[int, bytes]) -> None:
        self._tap(self.validator, _Garbled(self.rng.choice(self.m1_cards), changes))

    def load_answers(self, changes: dict[int, bytes]) -> None:
        self._tap(self.loader, _Garbled(self.rng.choice(self.cards), changes))

    def _tap(self, station: Station, device: Device) -> None:
        self.clock.advance(61)
        try:
            station.tap(device)
        except (OutOfService, ReaderGone):
            if isinstance(station, ValidatorStation):
                station.validator.out_of_service = None  # a PSAM fault: the next input starts it again
        except YktError as exc:
            raise Undocumented(f"{type(exc).__name__}: {exc}") from exc


def targets(corpus: Corpus, terminals: Terminals) -> list[Target[Any]]:
    """Every parser target (the loaders are :mod:`.loaders`')."""
    commands, answers = corpus.card_commands, corpus.card_answers
    psam_commands = corpus.psam_commands
    every_command = commands + psam_commands
    layouts = all_layouts()
    card = SimCard(copy.deepcopy(corpus.card_images[0]))
    psam = demo_psam(TERMINAL)
    m1 = M1Card(copy.deepcopy(corpus.m1_images[-1]))
    pairs = tuple(corpus.card + corpus.psam)
    host_documents = (messages.encode({"load_id": 7, "mac2": "0011AABB"}),
                      messages.encode({"load_id": 7, "confirmed": True}),
                      messages.encode({"request_id": "r-1", "terminal": "200041590001", "issuer": "02403640FFFFFFFF",
                                       "serial": "03103640000000000001", "balance": 100, "amount": 5000,
                                       "online_counter": 3, "random": "01020304", "datetime": "20260302081500",
                                       "mac1": "0A0B0C0D"}))
    frames = corpus.frames
    responses = tuple(command.RESPONSE for command in pn532.COMMANDS if command.RESPONSE is not None)

    def session(device: SimCard | M1Card) -> Callable[[list[bytes]], None]:
        def run(apdus: list[bytes]) -> None:
            device.power_on()
            for apdu in apdus:
                device.execute(apdu)
        return run

    def psam_session(apdus: list[bytes]) -> None:
        psam.power_on()
        for apdu in apdus:
            psam.execute(apdu)

    def chip(data: list[bytes]) -> None:
        emulated = Pn532Chip(card)
        for piece in data:
            emulated.receive(piece, 0.0)
        emulated.due(1.0)

    def stream(data: tuple[bool, list[bytes]]) -> None:
        decoder = pn532.FrameDecoder(postamble=data[0])
        for piece in data[1]:
            decoder.feed(piece)

    def host_answer(body: bytes) -> None:
        document = messages.decode(body)
        for parse in (messages.authorization_from_json, messages.confirmation_from_json, messages.request_from_json,
                      messages.tac_from_json):
            try:
                parse(document)
            except YktError:
                continue

    return [
        Target("apdu.command", hostile(every_command, max_size=300), CommandAPDU.parse),
        Target("apdu.response", hostile(answers, max_size=300), ResponseAPDU.parse),
        Target("tlv", hostile(answers, max_size=300), tlv.parse),
        Target("fci", hostile(answers[:1], max_size=300), Fci.parse),
        Target("card_command", hostile(commands, max_size=300), parse_card_command),
        Target("psam_command", hostile(psam_commands, max_size=300), parse_psam_command),
        Target("layouts", st.sampled_from(layouts).flatmap(
            lambda named: st.tuples(st.just(named[1]), hostile(
                tuple(bytes.fromhex(h) for h, _ in named[1].examples) or (bytes(named[1].size),), max_size=200))),
            lambda pair: pair[0].parse(pair[1]), 2.0),
        Target("decode.command", hostile(every_command, max_size=300), decode_command),
        Target("decode.response", st.tuples(hostile(tuple(a for _, a in pairs), max_size=300),
                                            st.sampled_from(pairs).map(lambda p: p[0])),
               lambda pair: decode_response(pair[0], pair[1])),
        Target("decode.file", st.tuples(st.sampled_from(FILES), hostile(answers, max_size=200)),
               lambda pair: decode_file(pair[0], pair[1])),
        Target("pn532.frame", hostile(frames, max_size=300), pn532.parse_frame),
        Target("pn532.stream", st.tuples(st.booleans(), st.lists(hostile(frames, max_size=120), max_size=6)), stream),
        Target("pn532.command", hostile(tuple(f[5:-2] for f in frames if len(f) > 7), max_size=300),
               pn532.parse_command),
        Target("pn532.response", st.tuples(st.sampled_from(responses), hostile(tuple(f[5:-2] for f in frames
                                                                                    if len(f) > 7), max_size=300)),
               lambda pair: pair[0].parse(pair[1])),
        Target("pn532.chip", st.lists(hostile(frames, max_size=200), min_size=1, max_size=5), chip),
        Target("ats", hostile((bytes.fromhex("0575777002"),), max_size=40), Ats.parse),
        Target("mifare.command", hostile(tuple(corpus.m1_commands), max_size=40), mifare.parse_command),
        Target("mifare.access", hostile(tuple(b[6:9] for b in corpus.m1_blocks[3::4]), max_size=8),
               mifare.AccessConditions.parse),
        Target("mifare.value_block", hostile(tuple(corpus.m1_blocks), max_size=24), mifare.ValueBlock.parse),
        Target("pcsc_mifare.pseudo_apdu", hostile((bytes.fromhex("FF82000006FFFFFFFFFFFF"),
                                                   bytes.fromhex("FF860000050100046000"), bytes.fromhex("FFB0000410"),
                                                   bytes.fromhex("FFD6000410" + "00" * 16)), max_size=40),
               parse_storage_command),
        Target("m1.public_info", hostile(tuple(corpus.m1_blocks), max_size=24), parse_public_info),
        Target("m1.recovery", st.lists(hostile(tuple(corpus.m1_blocks), max_size=20), min_size=5, max_size=5),
               lambda blocks: assess(*blocks)),
        Target("sim.card", st.lists(hostile(commands, max_size=300), min_size=1, max_size=6), session(card)),
        Target("sim.psam", st.lists(hostile(psam_commands, max_size=300), min_size=1, max_size=4), psam_session),
        Target("sim.m1_card", st.lists(hostile(tuple(corpus.m1_commands), max_size=40), min_size=1, max_size=6),
               session(m1)),
        Target("load_host.messages", hostile(host_documents, "json", max_size=300), host_answer),
        Target("validator.card_answers", _changes(answers), terminals.card_answers, 0.5),
        Target("validator.psam_answers", _changes(tuple(a for _, a in corpus.psam), 6), terminals.psam_answers, 0.5),
        Target("validator.m1_card_answers", _changes(tuple(a for _, a in corpus.m1_card), 40),
               terminals.m1_answers, 0.5),
        Target("load_terminal.card_answers", _changes(answers, 6), terminals.load_answers, 0.5),
    ]
