"""The link contract: one way to reach a card or a SAM, whatever carries the bytes.

A driver (PC/SC, PN532 over a serial line, the simulated reader, a scripted card) implements :class:`Link`: activate
whatever is in the slot, exchange raw APDUs with a timeout, deactivate. Everything above it (T=0 procedure handling,
tracing, status checking) is done once, in :mod:`terminal.channel`, for every driver alike.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Self


@dataclass(frozen=True, slots=True)
class Activation:
    """How a card or SAM answered activation.

    Contactless cards give ISO 14443-A data (UID, ATQA, SAK, and an ATS when they speak ISO 14443-4); contact cards
    (a PSAM) and PC/SC readers give an ATR. ``protocol`` is ``"T=CL"`` (ISO 14443-4), ``"T=0"``, ``"T=1"`` or
    ``"MIFARE"`` (a MIFARE Classic card without ISO-DEP).
    """

    protocol: str
    uid: bytes = b""
    atqa: bytes = b""
    sak: int | None = None
    ats: bytes | None = None
    atr: bytes | None = None


@dataclass(frozen=True, slots=True)
class ModeledTime:
    """A timing model's estimate of one exchange, in microseconds: time on the air or contact line, and time the card or
    SAM spends computing (EEPROM writes, cryptography)."""

    line_us: float
    device_us: float

    @property
    def total_us(self) -> float:
        return self.line_us + self.device_us


class Link(abc.ABC):
    """One reader slot holding at most one card or SAM.

    ``last_model`` is the modeled time of the most recent exchange, for links that have a timing model (the simulated
    reader); real drivers leave it ``None`` and their exchanges are timed by the wall clock alone.
    """

    name: str = "link"
    last_model: ModeledTime | None = None

    @abc.abstractmethod
    def activate(self, timeout: float) -> Activation | None:
        """Power up or poll the slot; ``None`` when no card is there within ``timeout`` seconds.

        Raises ReaderGone when the reader itself is unreachable.
        """

    @abc.abstractmethod
    def transceive(self, apdu: bytes, timeout: float) -> bytes:
        """Send one command APDU, return the response APDU (data and status word).

        Raises CardRemoved when the card is gone, LinkTimeout when nothing answers in ``timeout`` seconds, ReaderGone
        when the reader fails. The transmission procedure's own retries (ISO 14443-4 R-blocks, serial NACKs) belong
        here.
        """

    def deactivate(self) -> None:  # noqa: B027 (an optional step: a link with nothing to release does nothing)
        """Release the card (HLTA / power down), so that the next activation sees a fresh card."""

    def close(self) -> None:  # noqa: B027 (an optional step: a link that holds no reader does nothing)
        """Give the reader back to the system."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
