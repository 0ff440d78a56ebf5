"""One tap on the simulated reader, with the timing model's breakdown: what ``ykt tap`` prints and draws.

The validator runs as it would in a bus (demo PSAM over T=0, the demo flat fare, a journal) against a card from a
fixture, on a simulated reader whose timing model (:mod:`sim.timing`) prices every exchange: air time on the
contactless link, contact-line time to the PSAM, and the time the card and the PSAM spend computing. The tap's total
is the activation's air time plus every exchange's line and device time, one after the other, except where the
validator sent a command ahead (the PSAM's MAC1 while the card stages its 0x1E record): that exchange runs beside the
ones made until the validator waits for its answer, each link one exchange at a time (a validator's SAM slot has a
line of its own). The total is held against the 400 ms that DB31/T 239-2020 §6.3.2 allows for one purchase. The PSAM's
start-up (its ATR, the PPS exchange that raises its line speed to what the ATR offers, the reads of its terminal
number and key index) happens when the validator starts, before any card, and is not part of a tap.

An M1 card (MIFARE Classic) is tapped the same way: each pseudo-APDU is priced by the MIFARE commands the reader sends
for it, at 106 kbit/s (the MIFARE timing model), and drawn with its card time after its air time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from protocols import card_commands as cc
from protocols import pcsc_mifare as pm
from protocols.card_commands import parse_card_command
from protocols.errors import ProtocolError
from protocols.psam_commands import parse_psam_command
from terminal.clock import Clock
from terminal.config import ValidatorConfig
from terminal.fares import load_fares
from terminal.journal import MemoryJournal
from terminal.outcome import TapOutcome
from terminal.trace import Tracer, Tracers
from terminal.validator import Validator

from .card import SimCard
from .card.m1_card import M1Card
from .demo import DEMO_FARES
from .devices import sim_psam
from .reader import SimReader, SimSamSlot
from .schedule import SendAheadWaits, schedule
from .timing import ContactlessTiming, ContactTiming

LIMIT_US = 400_000.0
"""DB31/T 239-2020 §6.3.2: one IC-card purchase, record included, in at most 400 ms."""
CARD_LINK = "reader"
SAM_LINK = "psam"

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


_STORAGE_LABELS = {pm.GeneralAuthenticate: "AUTHENTICATE", pm.LegacyAuthenticate: "AUTHENTICATE",
                   pm.ReadBlock: "READ BLOCK", pm.UpdateBlock: "UPDATE BLOCK", pm.ReadValueBlock: "READ VALUE"}
_VALUE_OPS = {pm.ValueOp.STORE: "STORE VALUE", pm.ValueOp.INCREMENT: "INCREMENT", pm.ValueOp.DECREMENT: "DECREMENT"}


def _storage_label(command: bytes) -> str:
    """A storage-card pseudo-APDU's name, with the block it works on: ``READ BLOCK 24``, ``DECREMENT 9``."""
    parsed = pm.parse_storage_command(command)
    if isinstance(parsed, pm.ValueBlockOperation):
        return f"{_VALUE_OPS.get(parsed.operation, 'VALUE OPERATION')} {parsed.block}"  # type: ignore[call-overload]
    if isinstance(parsed, pm.RestoreValueBlock):
        return f"COPY VALUE {parsed.source} TO {parsed.target}"
    if isinstance(parsed, (pm.LoadKey, pm.GetData)):
        return "LOAD KEY" if isinstance(parsed, pm.LoadKey) else "GET DATA (UID)"
    return f"{_STORAGE_LABELS[type(parsed)]} {parsed.block}"


def command_label(command: bytes, role: str = "card") -> str:
    """A command's name as the spec writes it, with the file it reads or writes: ``READ BINARY 0x17``,
    ``INIT SAM FOR PURCHASE``, an M1 card's ``READ BLOCK 24``. ``role`` (``"card"``/``"sam"``) says which command set
    to read it with."""
    try:
        if role == "card" and command[:1] == b"\xff":
            return _storage_label(command)
        parsed = parse_psam_command(command) if role == "sam" else parse_card_command(command)
    except ProtocolError:
        return f"{command[:2].hex().upper()} (unknown command)" if len(command) >= 2 else "(not a command)"
    name = _CAMEL.sub(" ", type(parsed).__name__).upper()
    if isinstance(parsed, cc.SelectByName):
        return f"SELECT {parsed.aid.hex().upper()}"
    if isinstance(parsed, cc.SelectByFid):
        return f"SELECT {parsed.fid:04X}"
    if isinstance(parsed, (cc.ReadBinary, cc.ReadRecord, cc.UpdateCappDataCache)):
        return f"{name} 0x{parsed.sfi:02X}"
    return name


@dataclass(frozen=True, slots=True)
class TapStep:
    """One exchange of the tap: ``role`` ``"card"`` or ``"sam"``; ``line_us`` on the air (card) or the contact line
    (PSAM), of which ``out_us`` carries the command before the device computes and the rest its answer; ``device_us``
    computing in the card or the PSAM; ``start_us`` on the tap's timeline (0 = the start of the activation)."""

    number: int
    role: str
    label: str
    command: bytes
    response: bytes | None
    line_us: float
    out_us: float
    device_us: float
    start_us: float

    @property
    def total_us(self) -> float:
        return self.line_us + self.device_us


@dataclass(slots=True)
class TapReport:
    """A tap and its modeled times."""

    outcome: TapOutcome
    kbps: int
    kbps_to_card: int
    kbps_to_reader: int
    baud: int
    activation_us: float
    steps: list[TapStep]
    pps: bool = False  # the PSAM's rate was negotiated up by PPS at start-up (before the tap, not counted in it)
    end_us: float = 0.0  # where the timeline ends: the sum of every part less what ran side by side

    @property
    def busy_us(self) -> float:
        """Every part's time added up: the tap's length if nothing ran side by side."""
        return self.air_us + self.card_us + self.psam_line_us + self.psam_us

    @property
    def overlap_us(self) -> float:
        """Time the PSAM worked on a command sent ahead while the card was busy (:meth:`Channel.send`)."""
        return self.busy_us - self.end_us

    def _sum(self, role: str, attr: str) -> float:
        return sum(getattr(step, attr) for step in self.steps if step.role == role)

    @property
    def air_us(self) -> float:
        """Air time of the contactless link: the activation and every card exchange."""
        return self.activation_us + self._sum("card", "line_us")

    @property
    def card_us(self) -> float:
        return self._sum("card", "device_us")

    @property
    def psam_line_us(self) -> float:
        return self._sum("sam", "line_us")

    @property
    def psam_us(self) -> float:
        return self._sum("sam", "device_us")

    @property
    def total_us(self) -> float:
        """The tap's length on its timeline."""
        return self.end_us

    @property
    def within_limit(self) -> bool:
        return self.total_us <= LIMIT_US


def run_tap(card: SimCard | M1Card, clock: Clock, *, kbps: int = 106, baud: int | None = None,
            config: ValidatorConfig | None = None, fares: Path = DEMO_FARES, tracer: Tracer | None = None) -> TapReport:
    """Start a validator with the demo PSAM (T=0 at the rate its ATR offers, negotiated by PPS at start-up, or at a
    fixed ``baud``) and tap ``card`` once at ``kbps`` (an M1 card at 106 kbit/s, MIFARE Classic's only rate);
    ``tracer`` sees the PSAM's start-up and the tap, on links :data:`CARD_LINK` and :data:`SAM_LINK`."""
    timing, contact = ContactlessTiming(kbps=kbps), ContactTiming(baud=baud)
    reader = SimReader(card, timing=timing, name=CARD_LINK)
    sam = SimSamSlot(sim_psam("psam"), timing=contact, name=SAM_LINK)
    seen = SendAheadWaits(CARD_LINK)
    validator = Validator(reader, sam, load_fares(fares), MemoryJournal(clock=clock), clock=clock, config=config,
                          tracer=seen if tracer is None else Tracers(seen, tracer))
    validator.start()
    outcome = validator.poll()
    activation = seen.last.get(CARD_LINK)
    assert outcome is not None and activation is not None and reader.activation_model is not None, \
        "a card in the field is always tapped"
    model, contact_model = timing.model(activation), sam.model
    assert contact_model is not None, "the SAM slot has a timing model"
    mifare = activation.protocol == "MIFARE"
    plan = schedule(outcome.exchanges, seen.waits, reader.activation_model.total_us)
    steps = []
    for number, (exchange, start) in enumerate(zip(outcome.exchanges, plan.starts, strict=True), 1):
        role = "card" if exchange.link == CARD_LINK else "sam"
        line = exchange.model.line_us if exchange.model is not None else 0.0
        device = exchange.model.device_us if exchange.model is not None else 0.0
        if role == "card":
            out = line if mifare else model.command_us(len(exchange.command))[0]
        else:  # what a torn exchange costs on the line, less the waiting: the header and data that went out
            out = contact_model.torn(exchange.command, None).line_us - contact.wwt_us
        steps.append(TapStep(number, role, command_label(exchange.command, role), exchange.command, exchange.response,
                             line, min(out, line), device, start))
    rates = (106, 106) if mifare else (model.kbps_to_picc, model.kbps_to_pcd)
    return TapReport(outcome, kbps, *rates, contact_model.baud, reader.activation_model.total_us, steps,
                     sam.activation_model is not None, plan.end_us)
