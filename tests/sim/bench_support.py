"""Shared by the benchmark tests: counting the cipher operations a piece of code makes, to hold a cryptography floor to
the operations of a real transaction."""

from __future__ import annotations

import hmac
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher

from sim.bench.loop import Rig, WorkerResult, drive


class _CountingContext:
    """A cipher context that counts its ``update`` calls."""

    def __init__(self, context: Any, label: str, counts: Counter) -> None:
        self._context, self._label, self._counts = context, label, counts

    def update(self, data: bytes) -> bytes:
        self._counts[f"update {self._label}"] += 1
        return self._context.update(data)


def count_operations(monkeypatch: pytest.MonkeyPatch) -> Counter:
    """From now on, every cipher context made (by algorithm and mode), every ``update`` through a context made from
    now on, and every constant-time compare of a MAC or TAC, anywhere (the floors, the simulated card and PSAM, the
    load host), counted by kind in the returned counter. Install it before the code under test makes its long-lived
    contexts."""
    counts: Counter = Counter()

    def counting(name: str) -> None:
        original = getattr(Cipher, name)

        def make(self: Cipher) -> _CountingContext:
            label = f"{self.algorithm.name} {self.mode.name}{' decrypt' if name == 'decryptor' else ''}"
            counts[f"context {label}"] += 1
            return _CountingContext(original(self), label, counts)
        monkeypatch.setattr(Cipher, name, make)

    counting("encryptor")
    counting("decryptor")
    compare = hmac.compare_digest

    def counted_compare(a: bytes, b: bytes) -> bool:
        if len(a) == 4:  # a MAC or TAC; the load host's check of a terminal's token is no transaction cryptography
            counts["compare"] += 1
        return compare(a, b)
    monkeypatch.setattr(hmac, "compare_digest", counted_compare)
    return counts


def tap_and_floor(counts: Counter, rig: Rig, floor_transaction: Callable[[], object]) -> tuple[dict, dict]:
    """The cipher operations (``counts`` of :func:`count_operations`, installed before ``rig`` was built) of the next
    tap of ``rig`` (whose cards have tapped once: their long-lived key contexts are made), and those of
    ``floor_transaction()``."""
    counts.clear()
    tapped = WorkerResult(0)
    drive(rig, tapped, taps=1)
    assert tapped.accepted == 1
    in_tap = dict(counts)
    counts.clear()
    floor_transaction()
    return in_tap, dict(counts)
