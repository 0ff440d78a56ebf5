"""Device strings: one syntax for every command that takes a card reader or a SAM slot.

========================  =====================================================================================
``pcsc:<index>``          the PC/SC reader at that index in pcscd's list (``pcsc:0``; a dual-slot reader's SAM slot
                          is the next reader, ``pcsc:1``)
``pcsc:<name pattern>``   the one PC/SC reader whose name holds the text, or matches a ``*``/``?`` pattern
                          (``pcsc:ACR122``, ``pcsc:*PCD 00 01``), case-insensitive
``pn532:<path>[@baud]``   a PN532 on a serial line (``pn532:/dev/ttyUSB0``, ``pn532:/tmp/pn532@460800``); cards only
``sim:<fixture.json>``    card: a simulated card in the state a fixture file holds (written back before each answer
                          that changed it when opened with ``save=True``)
``sim:random``            card: a fresh simulated card from the demo key set, random serial, 50.00 yuan
``sim:psam``              SAM: a simulated T=0 PSAM holding the demo key set (terminal 200041599997; its TSN
                          starts past the journal's highest for it, or at the Unix time, see :func:`sim_psam`)
``sim:<keyset.json>``     SAM: a simulated T=0 PSAM holding that key set
========================  =====================================================================================

A simulated card stays in the field: every poll of a ``sim:`` card reader is a new tap of the same card.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from terminal.errors import ConfigError
from terminal.link import Link

if TYPE_CHECKING:
    from sim.card import SimCard
    from sim.card.m1_card import M1Card
    from sim.psam import SimPsam

Role = Literal["card", "sam"]

KINDS = ("pcsc", "pn532", "sim")
DEFAULT_BAUD = 115200
SYNTAX = ("expected pcsc:<index or name pattern>, pn532:<serial path>[@baud], "
          "or sim:<fixture file | random> (card) / sim:psam | sim:<keyset.json> (SAM)")
RANDOM_BALANCE = 5000
SIM_TERMINAL = bytes.fromhex("200041599997")
"""The terminal number of a ``sim:`` PSAM: the spec's example, as the demo PSAM's."""


class DeviceError(ConfigError):
    """A device string that names no device this build can open; the message shows the syntax."""


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    """A parsed device string: ``kind`` (``pcsc``, ``pn532``, ``sim``), its ``target`` and, for ``pn532``, ``baud``."""

    kind: str
    target: str
    baud: int | None = None

    def __str__(self) -> str:
        return f"{self.kind}:{self.target}" + (f"@{self.baud}" if self.baud is not None else "")


def _bad(text: str, why: str = "") -> DeviceError:
    return DeviceError(f"bad device {text!r}: {why + '; ' if why else ''}{SYNTAX}")


def parse_device(text: str) -> DeviceSpec:
    """Split a device string into its kind and target; :class:`DeviceError` shows the syntax when it is not one."""
    kind, colon, target = text.partition(":")
    kind = kind.strip().lower()
    if not colon or kind not in KINDS:
        raise _bad(text)
    if not target:
        raise _bad(text, f"{kind}: needs a target")
    if kind != "pn532":
        return DeviceSpec(kind, target)
    path, at, baud_text = target.rpartition("@")
    if not at:
        return DeviceSpec(kind, target, DEFAULT_BAUD)
    if not path or not baud_text.isdigit() or not 0 < int(baud_text) <= 10_000_000:
        raise _bad(text, f"pn532: {baud_text!r} is not a baud rate")
    return DeviceSpec(kind, path, int(baud_text))


def open_link(spec: str | DeviceSpec, *, role: Role, save: bool = False, tsn_after: int | None = None) -> Link:
    """Open the device a string names, as the card reader (``role="card"``) or the SAM slot (``role="sam"``).

    A PC/SC card reader is opened with ``new_cards_only``: a card resting on it is one tap, not a tap per poll.
    ``save``: the card of a ``sim:<fixture>`` card reader is written back to its fixture before each answer that
    changed it (:class:`sim.durable.DurableCard`); any other device refuses it. ``tsn_after``: the highest
    transaction serial the journal holds for a simulated PSAM's terminal (:data:`SIM_TERMINAL`); a ``sim:`` PSAM
    starts past it.
    """
    if role not in ("card", "sam"):
        raise DeviceError(f"role must be 'card' or 'sam', got {role!r}")
    parsed = parse_device(spec) if isinstance(spec, str) else spec
    if save and (role != "card" or parsed.kind != "sim" or parsed.target == "random"):
        raise _bad(str(parsed), "saving needs a sim:<fixture file> card reader")
    if parsed.kind == "pcsc":
        from terminal.drivers.pcsc import PcscLink

        return PcscLink(parsed.target, new_cards_only=role == "card")
    if parsed.kind == "pn532":
        if role == "sam":
            raise _bad(str(parsed), "a PN532 reads contactless cards, it holds no SAM")
        return _open_pn532(parsed)
    return _open_sim(parsed, role, save, tsn_after)


def _open_pn532(spec: DeviceSpec) -> Link:
    try:
        from terminal.drivers.pn532 import Pn532Link
    except ImportError as exc:
        if exc.name not in ("terminal.drivers.pn532", None):
            raise
        raise DeviceError(f"{spec}: this build has no PN532 driver (terminal.drivers.pn532)") from None
    link: Link = Pn532Link(spec.target, baud=DEFAULT_BAUD if spec.baud is None else spec.baud)
    return link


def _open_sim(spec: DeviceSpec, role: Role, save: bool, tsn_after: int | None) -> Link:
    from sim.durable import DurableCard
    from sim.reader import SimReader, SimSamSlot

    if role == "card":
        card = sim_card(spec.target)
        return SimReader(DurableCard(card, spec.target) if save else card, name=f"sim:{spec.target}")
    return SimSamSlot(sim_psam(spec.target, after=tsn_after), name=f"sim:{spec.target}")


def sim_card(target: str) -> SimCard | M1Card:
    """The simulated card of ``sim:<target>``: a fixture file's card (T-Union CPU or M1), or a fresh CPU card for
    ``random``."""
    from sim.issuing import LOCAL_ISSUER, issue_card, load_demo_keyset

    if target == "random":
        number = random.SystemRandom().randrange(10**12)
        serial = "0310" + LOCAL_ISSUER[2:4].hex() + f"{number:012d}"
        return issue_card(load_demo_keyset(), serial=serial, balance=RANDOM_BALANCE)
    from sim.fixture import load_fixture

    return load_fixture(_existing(target, "card fixture"))


def sim_psam(target: str, *, tsn: int | None = None, after: int | None = None) -> SimPsam:
    """The simulated T=0 PSAM of ``sim:<target>``: the demo key set's for ``psam``, else a key set file's.

    A simulated PSAM keeps no state between runs, yet its TSN (the terminal transaction serial a journal must never see
    twice) must not repeat: it starts at ``tsn`` when given, else past ``after`` (the highest TSN the journal holds for
    :data:`SIM_TERMINAL`) and no lower than the Unix time in seconds (so that a fresh journal beside older ones gets
    serials of its own too).
    """
    from sim.issuing import load_demo_keyset
    from sim.psam import SimPsam
    from terminal.keyset import load_keyset

    keyset = load_demo_keyset() if target == "psam" else load_keyset(_existing(target, "key set"))
    if tsn is None:
        tsn = max(int(time.time()), -1 if after is None else after + 1) & 0xFFFFFFFF
    return SimPsam(keyset, SIM_TERMINAL, tsn=tsn, t0=True)


def _existing(target: str, what: str) -> Path:
    path = Path(target)
    if not path.is_file():
        raise DeviceError(f"sim:{target}: no {what} file {target!r} (sim: takes a file, or "
                          f"'random' for a card, 'psam' for a SAM)")
    return path
