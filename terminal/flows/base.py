"""What a purse flow is: the part of a tap that depends on the card's technology, behind one small protocol.

The validator (:mod:`terminal.validator`) runs every tap the same way: it picks the flow that takes the card's
activation, lets it identify the card, settles the card's open journal rows with the card's own evidence, applies
the repeat-tap rule, the flow's card checks, the blacklist and the cut-over policy, quotes the fare, and hands the
debit to the flow. A flow does only what its technology needs (a CPU card's SELECT, INITIALIZE and DEBIT; an M1
card's block reads and value operations) and uses the validator's journal, PSAM and bookkeeping through
:class:`FlowHost`. Adding a technology is adding a flow; no other flow changes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Protocol

from protocols.card_files import BusProcessRecord, BusStop, TransitRecord

from ..channel import Channel
from ..config import ValidatorConfig
from ..fares import FareQuote
from ..journal import Journal, JournalEntry
from ..link import Activation
from ..outcome import Decline, TapOutcome
from ..psam import Psam
from ..records import DebitRecord


class TapStop(Exception):
    """Ends a tap early with its outcome (a decline, a retry, a recovered debit)."""

    def __init__(self, outcome: TapOutcome) -> None:
        super().__init__(outcome.status.value)
        self.outcome = outcome


@dataclass(slots=True)
class CardView:
    """What the validator needs of the card in the field, whatever its technology; a flow subclasses it with what it
    read. ``serial`` (10 bytes) is what the journal, the blacklist and the repeat-tap rule know the card by;
    ``card_type`` is known once the flow's checks ran (``None`` before)."""

    technology: str
    serial: bytes
    card_type: int | None = None


class FlowHost(Protocol):
    """What the validator lends a flow: its links, PSAM, journal, settings and the bookkeeping every flow shares."""

    card: Channel
    psam: Psam
    journal: Journal
    config: ValidatorConfig
    stop: BusStop | None
    needs: frozenset[str]
    """What the fare rules of the validator's line read from the card (:meth:`terminal.fares.FareRules.needs_for`)."""
    out_of_service: str | None

    def decline(self, reason: Decline, serial: bytes, detail: str = "", **fields: Any) -> TapStop:
        """The stop that declines the tap for ``reason``."""

    def record_intent(self, record: DebitRecord) -> int:
        """Journal a debit about to reach the card; a card showing a counter already journaled is declined."""

    def torn(self, row: int, record: DebitRecord, now: dt.datetime) -> None:
        """The card left while its debit's fate was unknown: the row stays open until the card settles it."""

    def settled(self, entry: JournalEntry) -> None:
        """An open row was settled (or given up): no card will be asked about it again."""

    def settle_by_counter(self, rows: list[JournalEntry], counter: int, card_type: int | None) -> None:
        """Settle rows no other evidence settled from the card's counter: void, given up, or a copy declined."""

    def recovered(self, entry: JournalEntry) -> TapOutcome:
        """The outcome of a tap that a proven torn debit paid for."""


Records = tuple[TransitRecord | None, BusProcessRecord | None]
"""What the fare rules read of the card's earlier rides: its newest transit record and its bus record."""


class PurseFlow(Protocol):
    """One purse technology's part of a tap (the module notes say the order the validator calls these in)."""

    technology: str
    """The journal's name for the technology (``cpu``, ``m1``), also the cut-over policy's."""

    def takes(self, activation: Activation) -> bool:
        """Whether this flow runs the card that answered ``activation``."""

    def start(self) -> None:
        """The validator is starting (or restarting) with its PSAM and place: check the settings the flow depends on
        (:class:`~terminal.errors.ConfigError`) and forget anything tied to the old PSAM."""

    def identify(self, activation: Activation, now: dt.datetime) -> CardView:
        """Read what names the card and its purse; raise :class:`TapStop` for a card that is not a purse of ours."""

    def settle(self, card: CardView, rows: list[JournalEntry]) -> tuple[list[JournalEntry], TapOutcome | None]:
        """Settle the card's open rows from its own evidence. Returns the rows left for the purchase to settle, and
        the tap's outcome when one of them is the card's newest purchase (this tap is that ride's)."""

    def check(self, card: CardView, now: dt.datetime) -> None:
        """The card's own checks (application, dates, state, city); sets ``card.card_type``."""

    def block(self, card: CardView) -> str:
        """Mark a blacklisted card on the card itself; returns what happened, for the decline's detail."""

    def records(self, card: CardView, needs: frozenset[str], line_scope: bool) -> Records:
        """What the fares (``needs``) and the line-wide repeat-tap rule (``line_scope``) read of earlier rides."""

    def purchase(self, card: CardView, quote: FareQuote, now: dt.datetime,
                 unsettled: list[JournalEntry]) -> TapOutcome:
        """Take ``quote.amount`` from the card, journaled; ``unsettled`` are the open rows :meth:`settle` left."""
