"""One generic test for every fixed-width Layout declared in ``protocols``.

It finds each Layout at module level, checks its spec examples, and holds its three engines (fast struct, compiled and
interpreted construct) to the same behaviour on good, truncated, over-long and random input.
"""

from __future__ import annotations

import importlib
import pkgutil

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import protocols
from protocols.errors import ProtocolError
from protocols.hexutil import parse_hex
from protocols.layout import Layout

ENGINES = ("fast", "compiled", "interpreted")


def _all_layouts() -> list[tuple[str, Layout]]:
    found: dict[int, tuple[str, Layout]] = {}
    for info in pkgutil.walk_packages(protocols.__path__, "protocols."):
        module = importlib.import_module(info.name)
        for attr, value in vars(module).items():
            if isinstance(value, Layout) and id(value) not in found:
                found[id(value)] = (f"{info.name}.{attr}", value)
    return sorted(found.values(), key=lambda item: item[0])


LAYOUTS = _all_layouts()
IDS = [name for name, _ in LAYOUTS]


def _outcome(layout: Layout, engine: str, data: bytes):
    """What an engine does with ``data``: ("ok", value) or ("error", None); anything else propagates and fails."""
    try:
        return "ok", layout.parse_with(engine, data)
    except ProtocolError:
        return "error", None


def test_layouts_are_found():
    assert len(LAYOUTS) >= 1


def test_example_count():
    """Spec examples exist for the layouts that carry them; the parametrised test below checks each."""
    assert sum(len(layout.examples) for _, layout in LAYOUTS) >= 1


@pytest.mark.parametrize("name,layout", LAYOUTS, ids=IDS)
def test_examples(name: str, layout: Layout):
    for text, expected in layout.examples:
        raw = parse_hex(text)
        for engine in ENGINES:
            assert layout.parse_with(engine, raw) == expected, f"{name} {engine} parse of {text}"
            assert layout.build_with(engine, expected) == raw, f"{name} {engine} build of {text}"


@pytest.mark.parametrize("name,layout", LAYOUTS, ids=IDS)
@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_engines_agree_and_round_trip(name: str, layout: Layout, data):
    raw = data.draw(st.binary(min_size=layout.size, max_size=layout.size), label="bytes")
    results = {engine: _outcome(layout, engine, raw) for engine in ENGINES}
    assert len({kind for kind, _ in results.values()}) == 1, f"{name}: engines disagree on {raw.hex()}: {results}"
    kind, value = results["interpreted"]
    assert all(v == value for _, v in results.values())
    if kind == "ok":
        for engine in ENGINES:
            assert layout.build_with(engine, value) == raw, f"{name} {engine}: build(parse(b)) != b"
            assert layout.parse_with(engine, layout.build_with(engine, value)) == value


@pytest.mark.parametrize("name,layout", LAYOUTS, ids=IDS)
@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_wrong_length_is_a_protocol_error(name: str, layout: Layout, data):
    size = data.draw(st.integers(0, layout.size + 8).filter(lambda n: n != layout.size), label="size")
    raw = data.draw(st.binary(min_size=size, max_size=size), label="bytes")
    for engine in ENGINES:
        with pytest.raises(ProtocolError):
            layout.parse_with(engine, raw)
