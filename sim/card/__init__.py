"""The simulated T-Union CPU card: its persistent image and the device that answers APDUs over it."""

from .cpu_card import EP_LABEL, MF_FID, T_UNION_EP_FID, SimCard
from .image import (
    DEFAULT_ATS, DEFAULT_SAK, MAX_ATC, MAX_BALANCE, MAX_OVERDRAFT, CardImage, KeySlot, Proof, PurseState,
    default_atqa,
)

__all__ = [
    "DEFAULT_ATS", "DEFAULT_SAK", "EP_LABEL", "MAX_ATC", "MAX_BALANCE", "MAX_OVERDRAFT", "MF_FID", "T_UNION_EP_FID",
    "CardImage", "KeySlot", "Proof", "PurseState", "SimCard", "default_atqa",
]
