"""Purse flows: what a tap does that depends on the card's technology (:mod:`terminal.flows.base` says how a flow
and the validator share a tap). :class:`CpuFlow` runs T-Union CPU cards."""

from .base import CardView, FlowHost, PurseFlow, Records, TapStop
from .cpu import CpuCard, CpuFlow

__all__ = ["CardView", "CpuCard", "CpuFlow", "FlowHost", "PurseFlow", "Records", "TapStop"]
