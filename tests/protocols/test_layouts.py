"""One generic test for every fixed-width Layout declared in ``protocols``.

It finds each Layout at module level, checks its spec examples, and holds its three engines (fast struct, compiled and
interpreted construct) to the same behaviour on good, truncated, over-long and random input.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocols.errors import ProtocolError
from protocols.hexutil import parse_hex
from protocols.layout import Layout
from sim.faults.parsers import all_layouts

ENGINES = ("fast", "compiled", "interpreted")


LAYOUTS = all_layouts()
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


@pytest.mark.parametrize("name,layout", LAYOUTS, ids=IDS)
@settings(max_examples=80, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_partial_parse_of_any_length_says_what_it_has(name: str, layout: Layout, data):
    """parse_partial never raises; on the whole message it agrees with parse; on a prefix it decodes the fields
    wholly inside it as parse does and names every other one; extra bytes come back as they are."""
    import dataclasses

    size = data.draw(st.integers(0, layout.size + 8), label="size")
    raw = data.draw(st.binary(min_size=size, max_size=size), label="bytes")
    partial = layout.parse_partial(raw)
    names = [f.name for f in dataclasses.fields(layout.model)]
    accounted = set(partial.values) | set(partial.missing) | ({partial.cut[0]} if partial.cut else set())
    accounted |= {label for label in partial.invalid if label in names}
    assert set(names) <= accounted
    assert partial.extra == raw[layout.size:]
    if size >= layout.size:
        whole = raw[:layout.size]
        try:
            model = layout.parse(whole)
        except ProtocolError:
            assert partial.invalid, f"{name}: parse refused {whole.hex()} but every field decoded"
        else:
            assert partial.values == {n: getattr(model, n) for n in names} and not partial.invalid
            assert partial.complete == (size == layout.size)
    else:
        assert not partial.complete
        for field_name, value in partial.values.items():
            padded = raw + bytes(layout.size - size)  # the fields wholly inside the prefix decode the same
            full = layout.parse_partial(padded)
            assert full.values.get(field_name, full.invalid.get(field_name)) == value


def test_partial_parse_names_missing_cut_and_extra_bytes():
    from protocols.card_files import MANAGEMENT_INFO, TRANSACTION_LOG_RECORD

    short = MANAGEMENT_INFO.parse_partial(parse_hex("0000015610001000000101"))  # 11 bytes, as nfsee reads 0x17
    assert short.values == {"country_code": bytes.fromhex("00000156"), "province_code": b"\x10\x00",
                            "city_code": b"\x10\x00", "interop_class": 1, "card_type": 1}
    assert (short.cut, short.missing, short.extra) == (None, ("settlement_number", "rfu"), b"")
    cut = MANAGEMENT_INFO.parse_partial(parse_hex("00000156100010000001010000"))
    assert cut.cut == ("settlement_number", b"\0\0") and cut.missing == ("rfu",)
    record = parse_hex("042D000000000001F409300089000340202412291417409000")  # 0x18 record 1 and its 9000
    longer = TRANSACTION_LOG_RECORD.parse_partial(record)
    assert longer.extra == b"\x90\x00" and longer.values["amount"] == 500 and not longer.missing
    bad = TRANSACTION_LOG_RECORD.parse_partial(record[:16] + b"\xff" * 7)
    assert bad.invalid == {"date": (b"\xff" * 4, "date: FFFFFFFF is not packed BCD"),
                           "time": (b"\xff" * 3, "time: FFFFFF is not packed BCD")}
