"""Purse flows: what a tap does that depends on the card's technology (:mod:`terminal.flows.base` says how a flow
and the validator share a tap). :class:`CpuFlow` runs T-Union CPU cards, :class:`M1Flow` legacy MIFARE Classic city
cards."""

from .base import CardView, FlowHost, PurseFlow, Records, TapStop
from .cpu import CpuCard, CpuFlow
from .m1 import M1Card, M1Flow

__all__ = ["CardView", "CpuCard", "CpuFlow", "FlowHost", "M1Card", "M1Flow", "PurseFlow", "Records", "TapStop"]
