"""Scenario: hostile input to every parser and loader, each input within a time limit.

The targets are :mod:`.parsers`' (codecs, decoders, simulated devices, load host messages, terminals fed garbled
answers) and :mod:`.loaders`' (every file the project reads). Hypothesis draws each target's inputs (random bytes,
valid messages and documents damaged in their bytes or changed in their structure: :mod:`.inputs`), seeded from the
campaign's seed; the campaign's inputs are shared out by the targets' weights (1,000,000 in the full run).

For each input the target runs under a timer (:data:`LIMIT_S`): an input still running then is a hang. What it
raises is sorted: a project error (:class:`protocols.errors.YktError`) is the expected answer to hostile input, and
its message is scanned for keys (a key the input itself carried and the message echoes is counted apart: it is
no leak of the key set); anything else (an exception from a library, a bug, an error a terminal's API does
not document) is an untyped exception. Neither hangs nor untyped exceptions may happen; the first few of each are
noted with the input that caused them.
"""

from __future__ import annotations

import functools
import signal
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, TypeVar

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as seeded

from protocols.errors import YktError

from .campaign import Campaign, Figures
from .keyring import KeyRing
from .loaders import LOADERS, Loaders
from .parsers import Target, Terminals, recorded, targets

T = TypeVar("T")

LIMIT_S = 5.0
"""Per-input time limit, seconds (generous: a loaded machine, and loaders that write and read SQLite files)."""
FULL_INPUTS = 1_000_000
QUICK_PER_TARGET = 40
LOADER_WEIGHT = 0.4  # a loader reads a file, often a SQLite one: slower than a codec, so fewer inputs


class _Hang(BaseException):
    """Raised in the target by the timer: not an Exception, so that no ``except Exception`` in it can swallow it."""


def _alarm(signum: int, frame: FrameType | None) -> None:
    raise _Hang()


@dataclass
class Tally:
    """One target's count: inputs run, ended in a project error, untyped exceptions, hangs, the slowest input, key
    strings found in the messages (and apart, keys the input itself carried that a message echoed: a damaged M1
    trailer block holds its sector's keys), and notes on what went wrong."""

    inputs: int = 0
    typed: int = 0
    untyped: int = 0
    hangs: int = 0
    slowest_s: float = 0.0
    keys_in_messages: int = 0
    echoed_keys: int = 0
    notes: list[str] = field(default_factory=list)


def run_target(target: Target[T], count: int, seed: int, ring: KeyRing,
               advance: Callable[[int], None] | None = None) -> Tally:
    """``count`` hostile inputs to ``target``, each under the time limit; drawn by hypothesis from ``seed``."""
    tally = Tally()

    @seeded(zlib.crc32(f"{seed}:{target.name}".encode()))
    @settings(max_examples=count, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck), report_multiple_bugs=False)
    @given(target.inputs)
    def one(value: T) -> None:
        tally.inputs += 1
        started = time.monotonic()
        signal.setitimer(signal.ITIMER_REAL, LIMIT_S)
        try:
            target.run(value)
        except YktError as exc:
            tally.typed += 1
            found = ring.found_in_text(str(exc))
            if found:  # a key the input itself carried, echoed back, is no leak of the key set
                carried = ring.found_in_bytes(_bytes_of(value))
                leaked = sum(count for key, count in found.items() if key not in carried)
                tally.keys_in_messages += leaked
                tally.echoed_keys += sum(found.values()) - leaked
                if leaked:
                    _note(tally, f"a key in the message of {type(exc).__name__}", value)
        except _Hang:
            tally.hangs += 1
            _note(tally, f"no answer in {LIMIT_S:g} s", value)
        except Exception as exc:  # what this scenario is here to find: counted and noted
            tally.untyped += 1
            _note(tally, f"{type(exc).__name__}: {exc}", value)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            tally.slowest_s = max(tally.slowest_s, time.monotonic() - started)
        if advance is not None and tally.inputs % 100 == 0:
            advance(100)

    previous = signal.signal(signal.SIGALRM, _alarm)
    try:
        one()
    finally:
        signal.signal(signal.SIGALRM, previous)
    return tally


def _bytes_of(value: object) -> bytes:
    """Every byte string in an input (bytes, or tuples, lists and dicts of them), joined by a zero byte."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    if isinstance(value, dict):
        return _bytes_of(list(value.values()))
    if isinstance(value, (list, tuple)):
        return b"\0".join(_bytes_of(item) for item in value)
    return b""


def _note(tally: Tally, what: str, value: object) -> None:
    if len(tally.notes) < 3:
        shown = repr(value)
        tally.notes.append(f"{what} on {shown[:160]}{'...' if len(shown) > 160 else ''}")


def hostile_input(campaign: Campaign) -> Figures:
    figures = Figures("fuzz", "Hostile input to every parser and loader, each input within a time limit")
    directory = campaign.cards / "fuzz"  # its inputs hold keys (key sets, fixtures): left out of the key scan
    directory.mkdir(parents=True, exist_ok=True)
    loaders = Loaders(directory)
    outputs = campaign.path("fuzz")
    outputs.mkdir(parents=True, exist_ok=True)
    terminals = Terminals(outputs)
    try:
        corpus = recorded(outputs)
        for image in (*corpus.card_images, *corpus.m1_images,
                      *(card.card.image for card in (*terminals.cards, *terminals.m1_cards))):
            campaign.keys.add_card(image)
        every = targets(corpus, terminals)
        every += [Target(f"loader.{kind}", loaders.inputs(kind), functools.partial(loaders.load, kind),
                         LOADER_WEIGHT) for kind in LOADERS]
        counts = _shares(every, campaign)
        tallies: dict[str, Tally] = {}
        with campaign.progress("fuzz", sum(counts.values()), "input") as advance:
            for target in every:
                tallies[target.name] = run_target(target, counts[target.name], campaign.seed, campaign.keys, advance)
    finally:
        terminals.close()
    _figures(figures, tallies)
    return figures


def _shares(every: list[Target[Any]], campaign: Campaign) -> dict[str, int]:
    """Each target's inputs: :data:`QUICK_PER_TARGET` each in a quick run, else the campaign's inputs in all
    (:data:`FULL_INPUTS` unless it says otherwise) shared out by the targets' weights, one more each so that the
    whole is at least what was asked."""
    if campaign.quick and campaign.inputs is None:
        return {t.name: QUICK_PER_TARGET for t in every}
    total = FULL_INPUTS if campaign.inputs is None else campaign.inputs
    weights = sum(t.weight for t in every)
    return {t.name: round(total * t.weight / weights) + 1 for t in every}


def _figures(figures: Figures, tallies: dict[str, Tally]) -> None:
    figures.count("targets", len(tallies))
    figures.count("inputs", sum(t.inputs for t in tallies.values()))
    figures.count("ended_in_project_errors", sum(t.typed for t in tallies.values()))
    figures.count("time_limit_per_input_s", LIMIT_S)
    figures.count("slowest_input_s", round(max((t.slowest_s for t in tallies.values()), default=0.0), 3))
    figures.count("inputs_per_target", {name: t.inputs for name, t in tallies.items()})
    figures.must_be_zero("untyped_exceptions", sum(t.untyped for t in tallies.values()))
    figures.must_be_zero("hangs", sum(t.hangs for t in tallies.values()))
    figures.count("keys_echoed_from_the_input", sum(t.echoed_keys for t in tallies.values()))
    figures.must_be_zero("key_strings_in_error_messages", sum(t.keys_in_messages for t in tallies.values()))
    for name, tally in tallies.items():
        for note in tally.notes:
            figures.note(f"{name}: {note}")
