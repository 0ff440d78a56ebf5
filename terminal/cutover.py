"""The cut-over policy: which cards a validator still takes while a city moves its riders from old cards to new ones.

Cities replace their MIFARE Classic (M1) cards with T-Union CPU cards in phases: both accepted; the old card no longer
sold but still accepted; the old card refused, with a request to exchange it, for a long exchange period. The
validator settings say it per card technology and card type, in a ``[cutover.<technology>]`` table::

    [cutover.m1]
    normal = "accepted"
    student = 2026-08-31      # accepted until the end of that day, refused from the next
    other = "refused"         # every card type not listed

A technology without a table, and a card type its table does not list (with no ``other``), is accepted. A refused
card is declined with :attr:`~terminal.outcome.Decline.EXCHANGE_CARD` ("please exchange your card") and journaled as
an ``exchange_card`` event, so that an operator can count the old cards still in use (``ykt journal events
--summary``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from .fare_config import card_type_label, card_type_table
from .records import Technology
from .tomlconf import Table, show

ACCEPTED = "accepted"
REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class Acceptance:
    """One phase: accepted (``until`` ``None``), accepted until a day (inclusive), or refused."""

    until: dt.date | None = None
    refused: bool = False

    def refuses(self, day: dt.date) -> bool:
        return self.refused or (self.until is not None and day > self.until)

    def describe(self) -> str:
        if self.refused:
            return "refused"
        return "accepted" if self.until is None else f"accepted until {self.until.isoformat()}"


@dataclass(frozen=True, slots=True)
class CutoverPolicy:
    """The phases by technology (``cpu``, ``m1``): by card type code, and for the card types not listed."""

    card_types: Mapping[str, Mapping[int, Acceptance]] = field(default_factory=lambda: MappingProxyType({}))
    other: Mapping[str, Acceptance] = field(default_factory=lambda: MappingProxyType({}))

    def refusal(self, technology: str, card_type: int, day: dt.date) -> str | None:
        """Why a card of ``technology`` and ``card_type`` is refused on ``day`` (for the decline and the event), or
        ``None`` when it is accepted."""
        rule = self.card_types.get(technology, {}).get(card_type) or self.other.get(technology)
        if rule is None or not rule.refuses(day):
            return None
        return f"{technology} {card_type_label(card_type)} card {rule.describe()}"


def _acceptance(table: Table, key: str) -> Acceptance:
    value = table.take(key)
    if value == ACCEPTED:
        return Acceptance()
    if value == REFUSED:
        return Acceptance(refused=True)
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return Acceptance(until=value)
    raise table.error(f'must be "{ACCEPTED}", "{REFUSED}" or the last day accepted (a TOML date such as '
                      f"2026-12-31), got {show(value)}", key)


def parse_cutover(table: Table | None) -> CutoverPolicy:
    """The ``[cutover]`` table of the validator settings (``None``: every card accepted)."""
    if table is None:
        return CutoverPolicy()
    table.only(frozenset(t.value for t in Technology))
    card_types: dict[str, Mapping[int, Acceptance]] = {}
    other: dict[str, Acceptance] = {}
    for technology in table.data:
        rules, rest = card_type_table(table.table(technology), _acceptance)
        card_types[technology] = MappingProxyType(rules)
        if rest is not None:
            other[technology] = rest
    return CutoverPolicy(MappingProxyType(card_types), MappingProxyType(other))
