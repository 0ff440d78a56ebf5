"""The fault campaign behind ``ykt faults``: what a validator meets on a bus, done on purpose, with figures.

One module per scenario, run in this order (:data:`SCENARIOS`): card tears at every exchange of every flow and a
population of riders (:mod:`.tears`), power cuts of a ``ykt validate`` process (:mod:`.power`), a noisy serial line
and a reader that stops answering (:mod:`.serial`), attacks on the purse's security (:mod:`.security`), hostile input
to every parser and loader (:mod:`.fuzz`), and last the scan of everything the campaign wrote for keys
(:mod:`.keyscan`). The frame they share is :mod:`.campaign`; the flows the tear scenario tears are :mod:`.flows`.
"""

from __future__ import annotations

from .campaign import Campaign, CampaignReport, Figures, Scenario, run_campaign
from .fuzz import hostile_input
from .keyscan import scan_for_keys
from .power import power_cuts
from .security import attacks
from .serial import noisy_and_silent_line
from .tears import card_tears

SCENARIOS: list[tuple[str, Scenario]] = [
    ("tears", card_tears),
    ("power", power_cuts),
    ("serial", noisy_and_silent_line),
    ("security", attacks),
    ("fuzz", hostile_input),
    ("keys", scan_for_keys),
]

__all__ = ["SCENARIOS", "Campaign", "CampaignReport", "Figures", "Scenario", "run_campaign"]
