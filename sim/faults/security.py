"""Scenario: the purse's security holds, and no card stops the validator.

Each attack runs on a validator with a traced, on-disk journal (the trace and the settlement export go to the key
scan), against cards that record what they commit (:class:`~sim.witness.Witness`):

* **a forged MAC1**: the PSAM's MAC1 changed on its way to the card; the card refuses DEBIT, nothing is taken, the
  row is void, and the validator serves the next card;
* **a forged MAC2**: the card's MAC2 changed on its way back; the PSAM refuses it, the debit (the card has paid) is
  journaled with ``mac2_verified`` false, and the export says so;
* **a replayed DEBIT**: a DEBIT the card accepted sent again, alone and after a fresh INITIALIZE; the card refuses
  both and its counter and balance do not move;
* **a cloned card**: a copy of a card's image tapped after the card; declined as a copy, journaled as an event, and
  the validator serves the next card;
* **a blacklisted card**: blocked (APPLICATION BLOCK), then locked at every tap, also at a validator without the list;
* **a PSAM answering wrongly** (garbage to MAC1, a terminal number of the wrong length, a PSAM taken out of its
  slot, a PSAM behind the journal's transaction serials): the validator goes out of service with a reason naming the
  PSAM, charges nothing, and serves again once a good PSAM is started.
"""

from __future__ import annotations

import copy
import io
import json
from collections.abc import Callable
from pathlib import Path

from protocols import card_commands as cc
from protocols.fci import T_UNION_EP_AID
from terminal.blacklist import Blacklist, build_blacklist
from terminal.clock import ManualClock
from terminal.config import ValidatorConfig
from terminal.errors import OutOfService
from terminal.outcome import Decline, TapOutcome, TapStatus
from terminal.records import DebitState
from terminal.settlement import export

from ..card import SimCard
from ..cli.trace import open_trace
from ..device import Device
from ..issuing import load_demo_keyset
from ..psam import SimPsam
from ..stations import FARES, ValidatorStation
from ..tears import START, riders
from ..witness import Witness
from .campaign import Campaign, Figures
from .intercept import Intercepted

TERMINAL = bytes.fromhex("200041590021")


class _Changed(Intercepted):
    """``device`` with its answers to the commands starting with ``header`` changed by ``change`` on their way (a
    man in the middle, a card or a PSAM that forges)."""

    def __init__(self, device: Device, header: bytes, change: Callable[[bytes], bytes]) -> None:
        super().__init__(device)
        self.header = header
        self.change = change

    def answer(self, index: int, apdu: bytes, answer: bytes) -> bytes:
        return self.change(answer) if apdu.startswith(self.header) else answer


def _flip(index: int) -> Callable[[bytes], bytes]:
    return lambda answer: answer[:index] + bytes([answer[index] ^ 0x01]) + answer[index + 1:]


class _Bench:
    """A validator station with a trace and a SQLite journal in ``where``, a supply of fresh cards, and a tap."""

    def __init__(self, campaign: Campaign, where: Path, name: str, *, blacklist: Blacklist | None = None) -> None:
        self.campaign = campaign
        self.clock = ManualClock(START)
        self.trace = open_trace(where / f"{name}.trace.jsonl", "faults", [("reader", "card"), ("sam", "sam")],
                                config=ValidatorConfig(), fares=FARES / "demo-flat.toml", clock=self.clock)
        self.station = ValidatorStation(name, TERMINAL, self.clock, journal_path=where / f"{name}.db",
                                        blacklist=blacklist, tracer=self.trace)
        self.cards = 0
        self.name = name

    def card(self) -> Witness:
        self.cards += 1
        [card] = riders(1, self.campaign.seed, first=200_000 + 1000 * len(self.name) + self.cards)
        self.campaign.keys.add_card(card.cpu.image)
        return card

    def tap(self, device: Device, advance: int = 61) -> TapOutcome | None:
        self.clock.advance(advance)
        reader = self.station.reader
        reader.put(device)
        try:
            outcome = self.station.validator.poll()
        finally:
            if reader.present:
                reader.take()
        if outcome is not None:
            self.campaign.said(outcome.detail)
        return outcome

    def serves(self) -> bool:
        """Whether the validator takes the next card's fare."""
        outcome = self.tap(self.card())
        return outcome is not None and outcome.accepted and self.station.validator.out_of_service is None

    def close(self, where: Path) -> None:
        with open(where / f"{self.name}.export.csv", "w", encoding="utf-8") as out:
            export(self.station.journal, out)
        self.station.close()
        self.trace.close()


def attacks(campaign: Campaign) -> Figures:
    figures = Figures("security", "Forged MACs, a replayed DEBIT, a clone, a blacklisted card, a PSAM gone wrong")
    where = campaign.path("security")
    where.mkdir(parents=True, exist_ok=True)
    rounds = campaign.size(2, 20)
    failures = {name: 0 for name in ("forged_mac1_not_refused", "forged_mac2_not_flagged", "replayed_debits_taken",
                                     "clones_not_declined", "blacklisted_not_locked", "psam_faults_not_reported",
                                     "stopped_by_a_card", "money_astray")}
    with campaign.progress("security", rounds * 6, "attack") as advance:
        for round_ in range(rounds):
            bench = _Bench(campaign, where, f"round-{round_}")
            try:
                for attack in (_forged_mac1, _forged_mac2, _replayed_debit, _clone):
                    for failure in attack(bench):
                        failures[failure] += 1
                    advance(1)
                for failure in _psam_wrong(bench, round_):
                    failures[failure] += 1
                advance(1)
            finally:
                bench.close(where)
            for failure in _blacklisted(campaign, where, round_):
                failures[failure] += 1
            advance(1)
    figures.count("rounds", rounds)
    figures.count("attacks", rounds * 6)
    for name, count in failures.items():
        figures.must_be_zero(name, count)
    return figures


def _forged_mac1(bench: _Bench) -> list[str]:
    station = bench.station
    good = station.sam.take()
    assert good is not None
    station.sam.put(_Changed(good, b"\x80\x70", _flip(4)))  # TSN (4 bytes), then MAC1
    station.restart()
    card = bench.card()
    before = card.cpu.balance
    outcome = bench.tap(card)
    failed = []
    if outcome is None or outcome.decline is not Decline.MAC1_REJECTED or card.committed:
        failed.append("forged_mac1_not_refused")
    if card.cpu.balance != before or any(e.record.state is not DebitState.VOID
                                          for e in station.journal.entries() if e.record.card_serial == card.serial):
        failed.append("money_astray")
    if not _restored(bench, good):
        failed.append("stopped_by_a_card")
    return failed


def _forged_mac2(bench: _Bench) -> list[str]:
    card = bench.card()
    outcome = bench.tap(_Changed(card, b"\x80\x54", _flip(4)))  # TAC (4 bytes), then MAC2
    rows = [e.record for e in bench.station.journal.entries() if e.record.card_serial == card.serial]
    failed = []
    if outcome is None or not outcome.accepted or outcome.mac2_verified is not False or \
            [(r.state, r.mac2_verified) for r in rows] != [(DebitState.COMPLETE, False)]:
        failed.append("forged_mac2_not_flagged")
    if len(card.committed) != 1 or sum(r.amount for r in rows) != card.committed[0].amount:
        failed.append("money_astray")
    text = io.StringIO()
    export(bench.station.journal, text, "jsonl")
    exported = [json.loads(line) for line in text.getvalue().splitlines()]
    if [row["mac2_verified"] for row in exported if row["card_serial"] == card.serial.hex().upper()] != [False]:
        failed.append("forged_mac2_not_flagged")
    if not bench.serves():
        failed.append("stopped_by_a_card")
    return failed


def _replayed_debit(bench: _Bench) -> list[str]:
    card = bench.card()
    outcome = bench.tap(card)
    failed = []
    debit = next((e.command for e in (outcome.exchanges if outcome else []) if e.command[:2] == b"\x80\x54"), None)
    if debit is None or outcome is None or not outcome.accepted:
        return ["stopped_by_a_card"]
    purse = card.cpu.image.purse
    counters = (purse.offline_atc, purse.balance)
    sim = card.cpu
    select = cc.SelectByName(T_UNION_EP_AID).to_bytes()
    initialize = cc.InitializeForCappPurchase(bench.station.validator.psam.key_index, outcome.fare,
                                              TERMINAL).to_bytes()
    for commands in ((select, debit), (select, initialize, debit)):
        sim.power_on()
        answers = [sim.execute(command) for command in commands]
        if answers[-1][-2:] == b"\x90\x00":
            failed.append("replayed_debits_taken")
    if (card.cpu.image.purse.offline_atc, card.cpu.image.purse.balance) != counters:
        failed.append("money_astray")
    return failed


def _clone(bench: _Bench) -> list[str]:
    card = bench.card()
    clone = Witness(SimCard(copy.deepcopy(card.cpu.image)))
    first = bench.tap(card)
    copied = bench.tap(clone)
    failed = []
    if first is None or not first.accepted or copied is None or copied.decline is not Decline.DUPLICATE_CARD \
            or clone.committed:
        failed.append("clones_not_declined")
    if (copied is not None and copied.status is TapStatus.OUT_OF_SERVICE) or not bench.serves():
        failed.append("stopped_by_a_card")
    return failed


def _blacklisted(campaign: Campaign, where: Path, round_: int) -> list[str]:
    """A listed card is blocked, then locked at this validator and at one without the list."""
    probe = _Bench(campaign, where, f"blacklist-{round_}")
    card = probe.card()
    listed = where / f"blacklist-{round_}.txt"
    listed.write_text(card.serial.hex() + "\n", encoding="ascii")
    build_blacklist(listed, where / f"blacklist-{round_}.ykbl", fmt="text", generation=round_ + 1)
    probe.close(where)
    failed = []
    with Blacklist.open(where / f"blacklist-{round_}.ykbl") as blacklist:
        bench = _Bench(campaign, where, f"listed-{round_}", blacklist=blacklist)
        try:
            first = bench.tap(card)
            again = bench.tap(card)
            elsewhere = _Bench(campaign, where, f"unlisted-{round_}")
            later = elsewhere.tap(card)
            elsewhere.close(where)
            if first is None or first.decline is not Decline.BLACKLISTED or not card.cpu.image.blocked \
                    or again is None or again.decline is not Decline.CARD_LOCKED \
                    or later is None or later.decline is not Decline.CARD_LOCKED:
                failed.append("blacklisted_not_locked")
            if card.committed:
                failed.append("money_astray")
            if not bench.serves():
                failed.append("stopped_by_a_card")
        finally:
            bench.close(where)
    return failed


def _psam_wrong(bench: _Bench, round_: int) -> list[str]:
    """Each PSAM fault puts the validator out of service with a reason naming the PSAM, charges nothing, and a good
    PSAM started again brings it back."""
    station = bench.station
    good = station.sam.take()
    assert good is not None
    faults: list[tuple[Device | None, bool]] = [
        (_Changed(good, b"\x80\x70", lambda answer: b"\x01\x02\x90\x00"), False),  # garbage for MAC1
        (_Changed(good, b"\x00\xb0", lambda answer: b"\x20\x00\x90\x00"), True),  # a 2-byte terminal number
        (None, True),  # no PSAM in the slot
        (SimPsam(load_demo_keyset(), TERMINAL, tsn=1), False),  # behind the journal's serials
    ]
    failed = []
    for device, at_start in faults:
        if device is not None:
            station.sam.put(device)
        card = bench.card()
        reason = _out_of_service(bench, card, at_start)
        if reason is None or "PSAM" not in reason:
            failed.append("psam_faults_not_reported")
        if card.committed or any(e.record.state is DebitState.COMPLETE for e in station.journal.entries()
                                 if e.record.card_serial == card.serial):
            failed.append("money_astray")
        station.sam.take()
    if not _restored(bench, good):
        failed.append("psam_faults_not_reported")
    return failed


def _restored(bench: _Bench, good: Device) -> bool:
    """The good PSAM back in its slot and started: whether the validator serves again."""
    bench.station.sam.take()
    bench.station.sam.put(good)
    bench.station.restart()
    return bench.serves()


def _out_of_service(bench: _Bench, card: Witness, at_start: bool) -> str | None:
    """Why the validator is out of service once the PSAM in its slot is started (at start-up when ``at_start``, else
    at the card's tap); ``None`` when it stayed in service."""
    station = bench.station
    try:
        station.restart()
    except OutOfService:
        return station.validator.out_of_service if at_start else None
    outcome = bench.tap(card)
    if at_start or outcome is None or outcome.status is not TapStatus.OUT_OF_SERVICE:
        return None
    return station.validator.out_of_service
