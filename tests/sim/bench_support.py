"""Shared by the benchmark tests: counting the cipher operations a piece of code makes, to hold a cryptography floor to
the operations of a real transaction."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest

import sim.psam as sim_psam
from protocols.crypto.ciphers import BlockKey
from sim.bench import floor
from sim.bench.loop import Rig, WorkerResult, drive
from sim.card import cpu_card
from sim.loadhost import service


def count_operations(monkeypatch: pytest.MonkeyPatch) -> Counter:
    """From now on, every key object made, cipher context made, block operation and MAC comparison (in the floors,
    the simulated card and PSAM, and the load host), counted by kind in the returned counter."""
    counts: Counter = Counter()

    def counting(name, original, label=None):
        def wrapper(self, *args, **kwargs):
            counts[label(self, *args, **kwargs) if label else name] += 1
            return original(self, *args, **kwargs)
        monkeypatch.setattr(BlockKey, name, wrapper)

    counting("__init__", BlockKey.__init__, lambda self, *a, **k: f"new {type(self).__name__}")
    counting("_context", BlockKey._context,
             lambda self, mode, *, decrypt=False: f"context {type(mode).__name__}{' decrypt' if decrypt else ''}")
    counting("encrypt", BlockKey.encrypt)
    counting("decrypt", BlockKey.decrypt)
    counting("cbc_last", BlockKey.cbc_last)
    original_equal = floor.macs_equal

    def equal(*args):
        counts["macs_equal"] += 1
        return original_equal(*args)
    for module in (floor, cpu_card, sim_psam, service):
        monkeypatch.setattr(module, "macs_equal", equal)
    return counts


def tap_and_floor(monkeypatch: pytest.MonkeyPatch, rig: Rig,
                  floor_transaction: Callable[[], object]) -> tuple[dict, dict]:
    """The cipher operations of the next tap of ``rig`` (whose cards have tapped once: their long-lived key contexts
    are made), and those of ``floor_transaction()``."""
    counts = count_operations(monkeypatch)
    tapped = WorkerResult(0)
    drive(rig, tapped, taps=1)
    assert tapped.accepted == 1
    in_tap = dict(counts)
    counts.clear()
    floor_transaction()
    return in_tap, dict(counts)
