"""The simulated reader: a contactless field and a SAM slot that hold :class:`~sim.device.Device` objects and speak the
terminal's :class:`~terminal.link.Link` contract, so the terminal cannot tell them from real readers.

A slot holds at most one device: :meth:`SimSlot.put` it in, :meth:`SimSlot.take` it out. ``activate`` powers the device
on (its volatile state is lost) and returns its activation data, or ``None`` when the slot is empty; ``transceive``
hands the APDU to ``device.execute`` and raises :class:`~terminal.errors.CardRemoved` when there is no activated
device; ``deactivate`` ends the session (the next ``activate`` powers the device on again); after ``close`` every call
raises :class:`~terminal.errors.ReaderGone`. The ``timeout`` arguments are accepted and ignored: a device answers at
once, and the time an exchange *would* take is the timing model's (:mod:`sim.timing`), kept in ``last_model`` (and
``activation_model`` for the contactless activation). With ``timing=None`` there is no model and ``last_model`` stays
``None``; the reader then adds only a few attribute reads to ``device.execute``, for the throughput benchmark.

Tears. A :class:`Tear` plan says where the device leaves: before it processes an exchange (the command is lost), or
after it has processed and committed it (the answer is lost). Exchanges are counted from 0 since the last activation
(``exchanges``); a plan names an exchange index or the n-th command matching a pattern since the last activation
(``Tear.before("8054")``: the first DEBIT). A plan fires once. After a tear the device is out of the field
(``transceive`` raises ``CardRemoved``, ``activate`` returns ``None``) until the test puts it back
(:meth:`SimSlot.put_back`); each tear is recorded in ``torn``. A device may also leave by itself by raising
``CardRemoved`` from ``execute`` (a scripted card's tear step); the reader then empties its field the same way.
Tearing at every exchange::

    clean = SimReader(make_card())
    run_tap(clean)
    for tear in Tear.everywhere(clean.exchanges):
        reader = SimReader(make_card(), tears=[tear])
        ...
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import NoReturn, Protocol

from protocols.atr import DEFAULT_TA1, pps_request
from protocols.errors import YktError
from protocols.pcsc_mifare import MifareBridge
from terminal.errors import CardRemoved, ReaderGone
from terminal.link import Activation, Link, ModeledTime

from .card.m1_session import MifareSession
from .device import Device, NegotiatesRate
from .scripted import ApduPattern, as_pattern
from .timing import (
    DEFAULT_CONTACT,
    DEFAULT_CONTACTLESS,
    DEFAULT_MIFARE,
    ContactlessModel,
    ContactlessTiming,
    ContactModel,
    ContactTiming,
    MifareTiming,
)


class SlotError(YktError):
    """A simulated slot was misused: a second device put into a full slot, a tear plan that names nothing."""


@dataclass(frozen=True, slots=True)
class Tear:
    """Where a device leaves its slot: at exchange ``at`` (0-based, since the last activation), or at the
    ``occurrence``-th command matching ``command`` since the last activation. ``committed``: the device processes and
    commits the command first, and only its answer is lost; otherwise the command never reaches it."""

    at: int | None = None
    command: ApduPattern | None = None
    occurrence: int = 1
    committed: bool = False

    def __post_init__(self) -> None:
        if (self.at is None) == (self.command is None):
            raise SlotError("a tear names an exchange index or a command, one of the two")
        if self.at is not None and self.at < 0:
            raise SlotError(f"tear at exchange {self.at}: exchanges count from 0")
        if self.occurrence < 1:
            raise SlotError(f"tear at occurrence {self.occurrence}: occurrences count from 1")

    @classmethod
    def before(cls, where: int | ApduPattern | bytes | str, occurrence: int = 1) -> Tear:
        """The device leaves as exchange ``where`` (an index, or a command: bytes and hex are prefixes) arrives."""
        return cls._at(where, occurrence, committed=False)

    @classmethod
    def after(cls, where: int | ApduPattern | bytes | str, occurrence: int = 1) -> Tear:
        """The device processes and commits exchange ``where``, then leaves before its answer reaches the reader."""
        return cls._at(where, occurrence, committed=True)

    @classmethod
    def _at(cls, where: int | ApduPattern | bytes | str, occurrence: int, *, committed: bool) -> Tear:
        if isinstance(where, int):
            return cls(at=where, committed=committed)
        return cls(command=as_pattern(where), occurrence=occurrence, committed=committed)

    @classmethod
    def everywhere(cls, exchanges: int) -> list[Tear]:
        """A tear before and a tear after each of the first ``exchanges`` exchanges: one plan per test run."""
        return [plan for index in range(exchanges) for plan in (cls.before(index), cls.after(index))]


@dataclass(frozen=True, slots=True)
class TearEvent:
    """A tear that happened: exchange ``index`` since activation, the ``command`` sent, whether the device processed
    it (``committed``) and the ``response`` it computed that the reader never got; ``plan`` is ``None`` when the device
    left by itself."""

    index: int
    command: bytes
    committed: bool
    response: bytes | None
    plan: Tear | None


class _Model(Protocol):
    def exchange(self, command: bytes, response: bytes) -> ModeledTime: ...

    def torn(self, command: bytes, response: bytes | None) -> ModeledTime: ...


class SimSlot(Link):
    """A slot holding at most one device, with tear injection; subclasses choose the timing model."""

    def __init__(self, device: Device | None = None, *, tears: Iterable[Tear] = (), name: str = "slot") -> None:
        self.name = name
        self.device: Device | None = None
        """The device in the slot (activated or not)."""
        self.removed: Device | None = None
        """The device that last left the slot, by :meth:`take` or by a tear."""
        self.activation: Activation | None = None
        self.exchanges = 0
        """Exchanges since the last activation."""
        self.torn: list[TearEvent] = []
        self.last_model: ModeledTime | None = None
        self._session: Device | None = None
        self._model: _Model | None = None
        self._plans: list[Tear] = []
        self._seen: list[int] = []
        self._closed = False
        if device is not None:
            self.put(device)
        self.plan_tear(*tears)

    # --- the field -------------------------------------------------------------------------------------------------

    @property
    def present(self) -> bool:
        return self.device is not None

    def put(self, device: Device) -> None:
        """Put a device into the empty slot; it answers once activated."""
        if self.device is not None:
            raise SlotError(f"{self.name} already holds a device; take() it first")
        self.device = device

    def take(self) -> Device | None:
        """Take the device out (ending its session); ``None`` when the slot was empty."""
        device = self.device
        if device is not None:
            self.removed = device
        self.device = self._session = None
        return device

    def put_back(self) -> Device:
        """Put back the device that last left (after a tear, say)."""
        if self.removed is None:
            raise SlotError(f"no device has left {self.name}")
        device = self.removed
        self.put(device)
        return device

    # --- tear plans ------------------------------------------------------------------------------------------------

    def plan_tear(self, *plans: Tear) -> None:
        for plan in plans:
            self._plans.append(plan)
            self._seen.append(0)

    def cancel_tears(self) -> None:
        self._plans.clear()
        self._seen.clear()

    @property
    def planned(self) -> tuple[Tear, ...]:
        """Plans that have not fired yet."""
        return tuple(self._plans)

    # --- Link ------------------------------------------------------------------------------------------------------

    def activate(self, timeout: float) -> Activation | None:
        if self._closed:
            raise ReaderGone(f"{self.name} is closed")
        self._session = None
        self.exchanges = 0
        self._seen = [0] * len(self._plans)
        self.last_model = None
        device = self.device
        if device is None:
            self.activation = None
            return None
        session, activation = self._session_for(device, device.power_on())
        self.activation = activation
        self._model = self._model_for(activation)
        self._session = session
        return activation

    def transceive(self, apdu: bytes, timeout: float) -> bytes:
        device = self._session
        if device is None:
            raise self._no_session()
        index = self.exchanges
        self.exchanges = index + 1
        if self._plans:
            plan = self._due(apdu, index)
            if plan is not None:
                self._tear(device, apdu, index, plan)
        try:
            response = device.execute(apdu)
        except CardRemoved:
            self._leave(TearEvent(index, apdu, False, None, None))
            raise
        if self._model is not None:
            self.last_model = self._model.exchange(apdu, response)
        return response

    def deactivate(self) -> None:
        self._session = None
        self.activation = None

    def close(self) -> None:
        self._closed = True
        self._session = None

    # --- internals -------------------------------------------------------------------------------------------------

    def _session_for(self, device: Device, activation: Activation) -> tuple[Device, Activation]:
        """What the slot exchanges with for the device that answered ``activation``, and the activation it reports."""
        return device, activation

    def _model_for(self, activation: Activation) -> _Model | None:
        """The timing model for the activated device, ``None`` without timing."""
        return None

    def _no_session(self) -> YktError:
        self.last_model = None
        if self._closed:
            return ReaderGone(f"{self.name} is closed")
        if self.device is None:
            return CardRemoved(f"{self.name}: no card in the field")
        return CardRemoved(f"{self.name}: the card is not activated")

    def _due(self, apdu: bytes, index: int) -> Tear | None:
        """The plan that fires at this exchange, taken off the list."""
        for position, plan in enumerate(self._plans):
            if plan.command is None:
                if plan.at != index:
                    continue
            elif plan.command.matches(apdu):
                self._seen[position] += 1
                if self._seen[position] != plan.occurrence:
                    continue
            else:
                continue
            del self._plans[position], self._seen[position]
            return plan
        return None

    def _tear(self, device: Device, apdu: bytes, index: int, plan: Tear) -> NoReturn:
        response = None
        if plan.committed:
            try:
                response = device.execute(apdu)
            except CardRemoved:
                self._leave(TearEvent(index, apdu, False, None, None))
                raise
        self._leave(TearEvent(index, apdu, plan.committed, response, plan))
        when = "after the card processed" if plan.committed else "before the card processed"
        raise CardRemoved(f"{self.name}: the card left the field {when} exchange {index}")

    def _leave(self, event: TearEvent) -> None:
        self.torn.append(event)
        if self._model is not None:
            self.last_model = self._model.torn(event.command, event.response)
        self.take()


class SimReader(SimSlot):
    """A contactless reader's field (ISO 14443-4), with the contactless timing model (``timing=None``: none).

    A MIFARE Classic (a device whose activation says ``MIFARE``) is served as a PC/SC reader serves one: the terminal
    sends storage-card pseudo-APDUs, which the reader's firmware (:class:`~sim.card.m1_session.MifareSession`) turns
    into the card's MIFARE commands; the activation carries the PC/SC ATR, and each exchange is priced by the MIFARE
    timing model (``mifare_timing``) from the commands it became. Loaded keys stay in the reader between cards.
    """

    def __init__(self, device: Device | None = None, *, timing: ContactlessTiming | None = DEFAULT_CONTACTLESS,
                 mifare_timing: MifareTiming = DEFAULT_MIFARE, tears: Iterable[Tear] = (),
                 name: str = "reader") -> None:
        self.timing = timing
        self.mifare_timing = mifare_timing
        self.activation_model: ModeledTime | None = None
        """Modeled air time of the last activation (anticollision, RATS/ATS)."""
        self._models: dict[bytes | None, ContactlessModel] = {}
        self._bridge = MifareBridge()
        self._mifare: MifareSession | None = None
        super().__init__(device, tears=tears, name=name)

    def _session_for(self, device: Device, activation: Activation) -> tuple[Device, Activation]:
        if activation.protocol != "MIFARE":
            self._mifare = None
            return device, activation
        self._mifare = MifareSession(device, self._bridge)
        return self._mifare, self._mifare.activated(activation)

    def _model_for(self, activation: Activation) -> _Model | None:
        if self.timing is None:
            return None
        if self._mifare is not None:
            model: _Model = self.mifare_timing.model(self._mifare)
            self.activation_model = self.timing.model(activation).activation(activation)
            return model
        contactless = self._models.get(activation.ats)
        if contactless is None:
            contactless = self._models[activation.ats] = self.timing.model(activation)
        self.activation_model = contactless.activation(activation)
        return contactless


class SimSamSlot(SimSlot):
    """A SAM slot (ISO 7816 contacts), with the T=0 timing model (``timing=None``: none).

    After the ATR the slot raises the line speed as the SAM's ATR allows (:meth:`ContactTiming.proposal`): it sends
    a SAM that takes one (:class:`~sim.device.NegotiatesRate`) a PPS request for the rate of its TA1, and a confirming
    echo sets the rate of the session (``ta1``); ``activation_model`` is then the PPS exchange's line time.
    """

    def __init__(self, device: Device | None = None, *, timing: ContactTiming | None = DEFAULT_CONTACT,
                 tears: Iterable[Tear] = (), name: str = "sam") -> None:
        self.timing = timing
        self.ta1 = DEFAULT_TA1
        """The rate (TA1 code) agreed at the last activation."""
        self.activation_model: ModeledTime | None = None
        """Modeled line time of the last activation's PPS exchange (``None``: none took place)."""
        self.model: ContactModel | None = None
        """The timing model of the session at its agreed rate."""
        super().__init__(device, tears=tears, name=name)

    def _session_for(self, device: Device, activation: Activation) -> tuple[Device, Activation]:
        self.ta1, self.activation_model = DEFAULT_TA1, None
        proposal = None if self.timing is None else self.timing.proposal(activation)
        if proposal is not None and isinstance(device, NegotiatesRate):
            request = pps_request(proposal)
            response = device.pps(request)
            self.activation_model = ModeledTime(self.timing.pps_us(request, response), 0.0)  # type: ignore[union-attr]
            if response == request:
                self.ta1 = proposal
        return device, activation

    def _model_for(self, activation: Activation) -> ContactModel | None:
        self.model = None if self.timing is None else self.timing.model(activation, self.ta1)
        return self.model
