"""The result of one tap, typed, for a validator's display, beeper and logs."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from .trace import Exchange


class TapStatus(str, enum.Enum):
    ACCEPTED = "accepted"  # charged (or proven charged after a tear), or free ride granted
    DECLINED = "declined"  # not charged, for the reason given
    RETRY = "retry"  # the card left during the debit: "please tap again"; the debit is pending in the journal
    OUT_OF_SERVICE = "out_of_service"  # the validator cannot take fares (its PSAM or its journal failed), never a card


class Decline(str, enum.Enum):
    """Why a card was not charged. Each check of the tap has its own reason."""

    NOT_TRANSIT_CARD = "not a T-Union card"
    SCHEME_NOT_ACCEPTED = "card not accepted here"  # a card of another scheme (a city card), named in the detail
    CARD_LOCKED = "card blocked"
    CARD_INVALID = "card permanently locked"
    BAD_APPLICATION = "application type or version not accepted"
    NOT_YET_VALID = "card not yet valid"
    EXPIRED = "card expired"
    ISSUER_NOT_ACCEPTED = "issuer not accepted"
    NOT_INTEROPERABLE = "card not valid outside its city"
    CARD_TYPE_REFUSED = "card type not accepted"
    NO_FARE = "no fare for this line"
    BLACKLISTED = "card on the blacklist (blocked)"
    INSUFFICIENT_FUNDS = "insufficient balance"
    REPEAT_TAP = "already paid"
    DUPLICATE_CARD = "card refused: copied or replayed card, please see the service desk"
    CARD_NOT_AUTHENTIC = "card refused: it failed authentication, please see the service desk"
    EXCHANGE_CARD = "please exchange your card"  # a card the cut-over policy no longer accepts
    CARD_REMOVED = "card removed before payment"
    CARD_ERROR = "card answered an error"
    MAC1_REJECTED = "card rejected the PSAM's MAC1"
    SAM_REFUSED = "PSAM refused the card"


@dataclass(slots=True)
class TapOutcome:
    """Everything a display and a log need of one tap.

    Amounts are fen. ``balance_before``/``balance_after`` are known once INITIALIZE answered (``None`` before that).
    ``recovered`` marks a debit that was torn earlier and proven now by the card (GET TRANSACTION PROVE, or its own 0x18
    record of the debit: then ``tac`` is ``None``): this tap is that ride's, nothing more is charged. ``exchanges`` are
    the tap's card and PSAM exchanges with their wall-clock (and, on a simulated reader, modeled) durations.
    ``technology`` is the card's purse technology (``cpu``, ``m1``), empty when no purse flow took the card.
    """

    status: TapStatus
    decline: Decline | None = None
    detail: str = ""
    card_serial: bytes | None = None
    card_type: int | None = None
    fare: int = 0
    rule: str = ""
    balance_before: int | None = None
    balance_after: int | None = None
    tac: bytes | None = None
    mac2_verified: bool | None = None
    recovered: bool = False
    journal_row: int | None = None
    exchanges: list[Exchange] = field(default_factory=list)
    technology: str = ""

    @property
    def accepted(self) -> bool:
        return self.status is TapStatus.ACCEPTED

    @property
    def message(self) -> str:
        """One line for the display."""
        if self.status is TapStatus.ACCEPTED:
            shown = f"paid {self.fare / 100:.2f}"
            if self.balance_after is not None:
                shown += f", balance {(self.balance_after & 0x7FFFFFFF) / 100:.2f}"
            return shown + (" (recovered)" if self.recovered else "")
        if self.status is TapStatus.RETRY:
            return "please tap again"
        if self.status is TapStatus.OUT_OF_SERVICE:
            return f"out of service: {self.detail}"
        text = self.decline.value if self.decline else "declined"
        if self.decline is Decline.INSUFFICIENT_FUNDS and self.balance_before is not None:
            text += f", balance {(self.balance_before & 0x7FFFFFFF) / 100:.2f}"
        return text + (f" ({self.detail})" if self.detail else "")
