"""Every known-answer vector of the purse cryptography (protocols.crypto.vectors), run through the public API."""

from __future__ import annotations

import warnings

import pytest

from protocols.crypto.vectors import VECTORS, Vector
from protocols.hexutil import to_hex


def test_vectors_cover_the_spec():
    names = [v.name for v in VECTORS]
    assert len(names) == len(set(names)) == 19


@pytest.mark.parametrize("vector", VECTORS, ids=[v.name for v in VECTORS])
def test_vector(vector: Vector):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no deprecation warning from cryptography on any path
        got = vector.compute()
    assert to_hex(got) == to_hex(vector.expected), f"{vector.name} ({vector.source})"
