"""Replaying a trace: the terminal against the recorded card and PSAM, or the recorded commands against a fixture card.

**The terminal against the recording** (:func:`replay_terminal`). A validator is built with the recording's settings
and fare file (from the trace's header; see :func:`replay_settings`) and a memory journal, and runs against a
:class:`~sim.scripted.ScriptedCard` that plays the card link's exchanges byte for byte. The PSAM's exchanges are
played by a second scripted card; a trace that holds only the card link gets the demo PSAM instead, answering with
the recorded terminal number and key index (from the first INITIALIZE), and then DEBIT's TSN and MAC1 are wildcards
(``??``): that PSAM computes its own (a PSAM link whose activation was not recorded is taken to speak T=0). Nothing
else is a wildcard, and nothing needs to be: the card's randoms and the PSAM's TSN and MACs come back as recorded,
and the clock is the recorded one. Each card activation in the trace is one
poll of the validator, the scripted card answering it as recorded (so a session of CPU and M1 cards replays as it
ran; the card link's commands are handed over as they were sent, an M1 card's pseudo-APDUs too, and their keys were
recorded zeroed, which is what the replayed terminal sends, its scripted PSAM answering zeroed keys), each PSAM
activation one start; the clock is set before each tap to the date-time the tap's
INIT SAM FOR PURCHASE or DEBIT carries (what the validator put there), else to the validator's clock recorded with the
activation, else to the previous tap's time. A failed exchange (no answer) replays as the card leaving the field.

Both scripts are strict: the first command off script stops the run, and its exchange number in the trace (as
``ykt trace show`` numbers them), what was expected and what came are reported. When the terminal stops before the
end of the recording, the first exchange it never sent is reported ("got nothing"). The journal starts empty and there
is no blacklist, so a trace whose validator recovered a debit torn before the trace began, or blocked a card, diverges
there.

**The commands against a card** (:func:`replay_card`). The card link's commands go to a simulated card loaded from a
fixture, in order, and every answer is compared with the recorded one. The card's randoms (INITIALIZE, GET CHALLENGE)
are taken from the recorded answers, so a fixture of the recorded card answers byte for byte, MACs and TAC included;
a random the recording does not show is zeros. A command that got no answer is not sent (whether the card processed
it is unknown). Taps of other cards (a recorded SELECT answering another serial) are skipped.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from protocols import card_commands as cc
from protocols.card_commands import parse_card_command
from protocols.card_files import PUBLIC_APP_INFO
from protocols.errors import ProtocolError, YktError
from protocols.fci import Fci
from protocols.hexutil import to_hex
from protocols.psam_commands import parse_psam_command
from terminal.clock import ManualClock
from terminal.config import ValidatorConfig, load_config, parse_config
from terminal.fare_config import parse_fares
from terminal.fares import FareRules, load_fares
from terminal.journal import MemoryJournal
from terminal.link import Activation
from terminal.outcome import TapOutcome
from terminal.trace import Exchange
from terminal.tracefile import Trace, TraceActivation, TraceLink
from terminal.validator import Validator

from .card import CardImage, SimCard
from .demo import DEMO_FARES
from .psam import SimPsam, demo_psam
from .reader import SimSamSlot, SimSlot
from .scripted import DEFAULT_ACTIVATION, ApduPattern, ScriptDivergence, ScriptedCard, Step
from .tap import command_label

_DEBIT_WILDCARDS = (*range(5, 9), *range(16, 20))  # TSN and MAC1 in 80 54 01 00 0F TSN(4) date-time(7) MAC1(4) [Le]
_TERMINAL_NUMBER = slice(10, 16)  # in 80 50 P1 P2 0B key-index(1) amount(4) terminal(6) [Le]


class ReplayError(YktError):
    """A trace cannot be replayed (no card link, two of them, ...)."""


# --- the settings of the recording validator ------------------------------------------------------------------------

def replay_settings(trace: Trace, *, config: Path | None = None, fares: Path | None = None
                    ) -> tuple[ValidatorConfig, FareRules, str]:
    """The validator settings and fares to replay ``trace`` with: the files given, else those the trace's header
    carries, else the defaults (built-in settings, the demo flat fare). The text says where they came from."""
    recorded = trace.header.validator
    if config is not None:
        settings, config_from = load_config(config), str(config)
    elif recorded is not None:
        settings, config_from = parse_config(recorded.config, "trace header: validator.config"), "the trace"
    else:
        settings, config_from = ValidatorConfig(), "built-in"
    if fares is not None:
        rules, fares_from = load_fares(fares), str(fares)
    elif recorded is not None:
        rules, fares_from = FareRules(parse_fares(recorded.fares, "trace header: validator.fares")), "the trace"
    else:
        rules, fares_from = load_fares(DEMO_FARES), "demo flat fare"
    return settings, rules, f"settings: {config_from}; fares: {fares_from}"


# --- the terminal against the recording -----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ReplayDivergence:
    """Where the terminal left the recording. ``number``: the trace's exchange number (1-based, over all links) of
    the expected exchange, ``None`` when that link's recording was used up; ``expected`` ``None`` likewise; ``got``
    ``None`` when the terminal never sent it."""

    number: int | None
    link: str
    role: str
    expected: ApduPattern | None
    got: bytes | None
    after: int | None = None
    """The last recorded exchange number of the link, when its recording was used up."""

    @property
    def first_difference(self) -> int | None:
        """The first byte where ``got`` differs from ``expected`` (``None`` when either is missing)."""
        if self.expected is None or self.got is None:
            return None
        value, mask = self.expected.value, self.expected.mask or b"\xff" * len(self.expected.value)
        for index in range(max(len(value), len(self.got))):
            if index >= len(value):
                return None if self.expected.prefix else index
            if index >= len(self.got) or (mask[index] and value[index] != self.got[index]):
                return index
        return None

    def __str__(self) -> str:
        peer = "card" if self.role == "card" else "PSAM"
        if self.expected is None:
            where = f"after exchange {self.after}, the last on {peer} link {self.link!r}" if self.after else \
                f"{peer} link {self.link!r}, which recorded no exchange"
            got = self.got or b""
            return f"{where}: expected nothing more, got {to_hex(got)} ({command_label(got, self.role)})"
        label = command_label(self.expected.value, self.role)
        text = f"exchange {self.number} ({peer} link {self.link!r}, {label}): expected {self.expected}, got "
        if self.got is None:
            return text + "nothing (the terminal never sent it)"
        at = self.first_difference
        return text + to_hex(self.got) + ("" if at is None else f" (first difference at byte {at})")

    def as_dict(self) -> dict[str, Any]:
        return {"exchange": self.number, "link": self.link, "role": self.role,
                "expected": None if self.expected is None else str(self.expected),
                "expected_command": None if self.expected is None else command_label(self.expected.value, self.role),
                "got": None if self.got is None else to_hex(self.got), "first_difference": self.first_difference,
                "after": self.after, "message": str(self)}


@dataclass(slots=True)
class ReplayReport:
    """What a terminal replay did: taps polled, recorded exchanges, the PSAM used (``"scripted"`` or ``"demo"``),
    the first divergence (``None``: the terminal followed the recording to its end) and an error that ended the run
    early."""

    taps: int
    exchanges: int
    psam: str
    outcomes: list[TapOutcome] = field(default_factory=list)
    divergence: ReplayDivergence | None = None
    stopped: str | None = None


def _one_card_link(trace: Trace) -> TraceLink:
    cards = trace.links("card")
    if len(cards) != 1:
        raise ReplayError(f"a replay needs exactly one card link; the trace has {len(cards)}")
    return cards[0]


def _first_activation(trace: Trace, link: str) -> Activation | None:
    return next((e.activation for e in trace.events if isinstance(e, TraceActivation) and e.link == link), None)


def _carried_time(exchange: Exchange, role: str) -> dt.datetime | None:
    """The date-time the validator put into DEBIT (card) or INIT SAM FOR PURCHASE (PSAM), if this is one."""
    if len(exchange.command) < 2 or exchange.command[1] != (0x54 if role == "card" else 0x70):
        return None
    try:
        parsed = parse_card_command(exchange.command) if role == "card" else parse_psam_command(exchange.command)
    except ProtocolError:
        return None
    return getattr(parsed, "when", None)


def _local(when: dt.datetime) -> dt.datetime:
    """A UTC time as the validator's clock shows it: local, naive, to the second."""
    return when.astimezone().replace(tzinfo=None, microsecond=0)


def tap_times(trace: Trace, card_link: str) -> list[dt.datetime]:
    """The validator's clock at each card activation, as :func:`replay_terminal` sets it (see the module notes)."""
    roles = {link.name: link.role for link in trace.header.links}
    carried: list[dt.datetime | None] = []
    recorded: list[dt.datetime | None] = []
    for event in trace.events:
        if isinstance(event, TraceActivation):
            if event.link == card_link:
                carried.append(None)
                recorded.append(event.clock)
        elif carried and carried[-1] is None:
            carried[-1] = _carried_time(event, roles[event.link])
    known = [c or r for c, r in zip(carried, recorded, strict=True)]
    fallback = next((t for t in known if t is not None), _local(trace.header.created))
    times = []
    for when in known:
        fallback = when or fallback
        times.append(fallback)
    return times


def _script(exchanges: list[Exchange], wildcards: tuple[int, ...] = ()) -> list[Step]:
    steps = []
    for exchange in exchanges:
        command = exchange.command
        pattern = ApduPattern.exact(command)
        if wildcards and command[:5] == b"\x80\x54\x01\x00\x0f" and len(command) in (20, 21):
            mask = bytes(0 if i in wildcards else 0xFF for i in range(len(command)))
            pattern = ApduPattern(bytes(b & m for b, m in zip(command, mask, strict=True)), mask)
        response = exchange.response
        steps.append(Step(pattern, b"" if response is None else response, response is None))
    return steps


def _stand_in_psam(card_exchanges: list[Exchange]) -> SimPsam:
    """The demo PSAM, with the terminal number and key index of the first recorded INITIALIZE."""
    for exchange in card_exchanges:
        command = exchange.command
        if len(command) >= 16 and command[:2] == b"\x80\x50" and command[4] == 0x0B:
            return demo_psam(command[_TERMINAL_NUMBER], key_index=command[5], t0=True)
    return demo_psam(t0=True)


def replay_terminal(trace: Trace, config: ValidatorConfig, fares: FareRules) -> ReplayReport:
    """Run a validator with ``config`` and ``fares`` against the recording (see the module notes)."""
    card_link = _one_card_link(trace)
    sam_links = trace.links("sam")
    if len(sam_links) > 1:
        raise ReplayError(f"a replay needs at most one PSAM link; the trace has {len(sam_links)}")
    numbers: dict[str, list[int]] = {}
    for number, exchange in enumerate(trace.exchanges(), 1):
        numbers.setdefault(exchange.link, []).append(number)
    card_exchanges = trace.exchanges(card_link.name)
    sam_link = sam_links[0] if sam_links else None
    scripted_psam = sam_link is not None and (_first_activation(trace, sam_link.name) is not None
                                              or bool(trace.exchanges(sam_link.name)))
    card = ScriptedCard(_script(card_exchanges, () if scripted_psam else _DEBIT_WILDCARDS),
                        activation=_first_activation(trace, card_link.name) or DEFAULT_ACTIVATION, strict=True)
    sam_name = sam_link.name if sam_link is not None else "sam"
    scripted: list[tuple[ScriptedCard, str, str]] = [(card, card_link.name, "card")]
    psam: ScriptedCard | SimPsam
    if scripted_psam:
        psam = ScriptedCard(_script(trace.exchanges(sam_name)), strict=True,
                            activation=_first_activation(trace, sam_name) or Activation("T=0"))
        scripted.append((psam, sam_name, "sam"))
    else:
        psam = _stand_in_psam(card_exchanges)
    times = tap_times(trace, card_link.name)
    clock = ManualClock(times[0] if times else _local(trace.header.created))
    # the recording holds what the terminal sent (an M1 card's pseudo-APDUs too): the slot hands them over untranslated
    reader = SimSlot(card, name=card_link.name)
    sam = SimSamSlot(psam, timing=None, name=sam_name)
    validator = Validator(reader, sam, fares, MemoryJournal(clock=clock), clock=clock, config=config)
    report = ReplayReport(0, len(card_exchanges) + len(trace.exchanges(sam_name)),
                          "scripted" if scripted_psam else "demo")
    started = False
    try:
        for event in trace.events:
            if not isinstance(event, TraceActivation):
                continue
            if event.link == sam_name and scripted_psam:
                started = True
                validator.start()
            elif event.link == card_link.name:
                if not started:
                    started = True
                    validator.start()
                clock.advance((times[report.taps] - clock.now()).total_seconds())
                if event.activation is not None:  # each tap's card as it answered (a mixed session: CPU and M1)
                    card.activation = event.activation
                if not reader.present:
                    reader.put_back()
                report.taps += 1
                outcome = validator.poll()
                if outcome is not None:
                    report.outcomes.append(outcome)
    except ScriptDivergence:
        pass  # the scripted device kept it; reported below
    except YktError as exc:
        report.stopped = f"{type(exc).__name__}: {exc}"
    report.divergence = _first_divergence(scripted, numbers)
    return report


def _first_divergence(scripted: list[tuple[ScriptedCard, str, str]],
                      numbers: dict[str, list[int]]) -> ReplayDivergence | None:
    """A command off script (at most one: the scripts are strict) comes first; else the earliest step never sent."""
    found = []
    for device, link, role in scripted:
        divergence = device.first_divergence()
        if divergence is None:
            continue
        recorded = numbers.get(link, [])
        number = recorded[divergence.step] if divergence.step < len(recorded) else None
        found.append(ReplayDivergence(number, link, role, divergence.expected, divergence.got,
                                      None if number is not None or not recorded else recorded[-1]))
    sent = [d for d in found if d.got is not None]
    if sent:
        return sent[0]
    return min(found, key=lambda d: d.number if d.number is not None else 1 << 62, default=None)


# --- the commands against a card ------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class AnswerDifference:
    """A recorded command whose answer from the simulated card differs from the recorded answer."""

    number: int
    label: str
    command: bytes
    recorded: bytes
    got: bytes

    def as_dict(self) -> dict[str, Any]:
        return {"exchange": self.number, "command": self.label, "apdu": to_hex(self.command),
                "recorded": to_hex(self.recorded), "got": to_hex(self.got)}


@dataclass(slots=True)
class CardReplayReport:
    """What a card replay compared: answers that matched, those that differ, exchange numbers not sent (no recorded
    answer) and taps skipped (another card)."""

    link: str
    matched: int = 0
    differences: list[AnswerDifference] = field(default_factory=list)
    unanswered: list[int] = field(default_factory=list)
    other_taps: int = 0


class _RecordedRandoms:
    """The card's source of randoms during a replay: the random the recorded answer shows, once."""

    def __init__(self) -> None:
        self.pending: bytes | None = None

    def __call__(self, size: int) -> bytes:
        value, self.pending = self.pending, None
        return value if value is not None and len(value) == size else bytes(size)


def recorded_random(command: bytes, response: bytes) -> bytes | None:
    """The card random a recorded answer shows: GET CHALLENGE's data, INITIALIZE's random."""
    try:
        parsed = parse_card_command(command)
    except ProtocolError:
        return None
    data = response[:-2]
    if isinstance(parsed, cc.GetChallenge):
        return data or None
    layout = type(parsed).RESPONSE
    if layout is None or len(data) != layout.size:
        return None
    try:
        return getattr(layout.parse(data), "random", None)
    except ProtocolError:
        return None


def _select_serial(exchange: Exchange) -> bytes | None:
    """The card serial in a recorded SELECT answer's FCI (9F0C), if it is one."""
    response = exchange.response
    if not exchange.command.startswith(b"\x00\xa4\x04") or response is None or response[-2:] != b"\x90\x00":
        return None
    try:
        file15 = Fci.parse(response[:-2]).file15
        return None if file15 is None else PUBLIC_APP_INFO.parse(file15).serial
    except ProtocolError:
        return None


def replay_card(trace: Trace, image: CardImage) -> CardReplayReport:
    """Send the card link's recorded commands to a simulated card in the state ``image`` holds, and compare answers."""
    link = _one_card_link(trace)
    randoms = _RecordedRandoms()
    card = SimCard(image, randbytes=randoms)
    serial = PUBLIC_APP_INFO.parse(image.public_info).serial
    report = CardReplayReport(link.name)
    numbers = {id(e): n for n, e in enumerate(trace.exchanges(), 1)}
    skipping = False
    for event in trace.events:
        if event.link != link.name:
            continue
        if isinstance(event, TraceActivation):
            card.power_on()
            skipping = False
            continue
        seen = _select_serial(event)
        if seen is not None:
            skipping = seen != serial
            report.other_taps += skipping
        if skipping:
            continue
        number = numbers[id(event)]
        if event.response is None:
            report.unanswered.append(number)
            continue
        randoms.pending = recorded_random(event.command, event.response)
        answer = card.execute(event.command)
        if answer == event.response:
            report.matched += 1
        else:
            report.differences.append(AnswerDifference(number, command_label(event.command), event.command,
                                                       event.response, answer))
    return report

