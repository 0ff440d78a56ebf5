"""The trace file format: the writer as a tracer, the strict reader naming lines, cut last lines, settings in TOML."""

from __future__ import annotations

import dataclasses

import datetime as dt
import json
import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.errors import YktError
from sim.cli import run
from terminal.clock import ManualClock
from terminal.config import Place, ValidatorConfig, parse_config
from terminal.errors import ConfigError
from terminal.link import Activation, ModeledTime
from terminal.trace import Exchange
from terminal.tracefile import (
    TraceActivation,
    TraceError,
    TraceWriter,
    ValidatorSettings,
    config_toml,
    parse_trace,
    read_trace,
)

ROOT = Path(__file__).resolve().parents[2]
DEMO_CARD = ROOT / "sim" / "fixtures" / "demo-card.json"
LINKS = [("reader", "card"), ("psam", "sam")]
CARD = Activation("T=CL", uid=bytes.fromhex("737C3EF7"), atqa=bytes.fromhex("0004"), sak=0x20,
                  ats=bytes.fromhex("0575777002"))
PSAM = Activation("T=0", atr=bytes.fromhex("3B6C0000594B542D5053414D2D53494D"))
HEADER = ('{"format": "yikatong-trace", "version": 1, "created": "2026-03-02T00:30:00+00:00", "tool": "test", '
          '"links": [{"name": "reader", "role": "card"}, {"name": "psam", "role": "sam"}]}')
SELECT = ('{"event": "exchange", "link": "reader", "t_ns": 5, "duration_ns": 7, '
          '"command": "00A4040008A000000632010105", "response": "9000"}')


def fixed_timer(origin: int = 1_000):
    return lambda: origin


def write(path: Path, events, *, clock=None, validator=None) -> TraceWriter:
    with TraceWriter(path, links=LINKS, tool="test", clock=clock, validator=validator, timer=fixed_timer()) as writer:
        for event in events:
            if isinstance(event, Exchange):
                writer.exchange(event)
            else:
                link, activation, at = event
                writer.activation(link, activation, at)
    return writer


# --- round trip ----------------------------------------------------------------------------------------------------

apdus = st.binary(min_size=4, max_size=300)
responses = st.binary(min_size=2, max_size=300)
times = st.integers(0, 2**40)
models = st.none() | st.builds(ModeledTime, st.floats(0, 1e9, allow_nan=False), st.floats(0, 1e9, allow_nan=False))
exchanges = st.one_of(
    st.builds(Exchange, st.sampled_from(["reader", "psam"]), apdus, responses, times.map(lambda t: t + 1_000), times,
              models),
    st.builds(Exchange, st.sampled_from(["reader", "psam"]), apdus, st.none(), times.map(lambda t: t + 1_000), times,
              models, st.text(min_size=1, max_size=40)),
)
activations = st.tuples(st.sampled_from(["reader", "psam"]),
                        st.builds(Activation, st.sampled_from(["T=CL", "T=0", "T=1", "MIFARE"]),
                                  st.binary(max_size=10), st.binary(max_size=2), st.none() | st.integers(0, 255),
                                  st.none() | st.binary(max_size=20), st.none() | st.binary(max_size=33)),
                        times.map(lambda t: t + 1_000))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(exchanges, activations), max_size=12))
def test_written_events_read_back_the_same(events):
    clock = ManualClock(dt.datetime(2026, 3, 2, 7, 30))
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "t.jsonl"
        writer = write(path, events, clock=clock, validator=ValidatorSettings("format = 1\n", "x = \"é\"\n"))
        trace = read_trace(path)
    assert trace.header == writer.header and not trace.truncated
    assert trace.header.validator == ValidatorSettings("format = 1\n", "x = \"é\"\n")
    expected = []
    for event in events:
        if isinstance(event, Exchange):  # times count from the writer's creation (timer origin 1000)
            expected.append(Exchange(event.link, event.command, event.response, event.start_ns - 1_000,
                                     event.duration_ns, event.model, event.error))
        else:
            link, activation, at = event
            expected.append(TraceActivation(link, activation, at - 1_000, dt.datetime(2026, 3, 2, 7, 30)))
    assert trace.events == expected


def test_lines_as_documented(tmp_path):
    path = tmp_path / "t.jsonl"
    write(path, [("reader", CARD, 1_500),
                 Exchange("reader", bytes.fromhex("00B097003C"), None, 2_000, 30, ModeledTime(1.5, 2.0),
                          "CardRemoved: gone")])
    lines = path.read_text(encoding="utf-8").split("\n")
    assert lines[-1] == "" and len(lines) == 4
    assert json.loads(lines[1]) == {"event": "activation", "link": "reader", "t_ns": 500, "activation": {
        "protocol": "T=CL", "uid": "737C3EF7", "atqa": "0004", "sak": 32, "ats": "0575777002", "atr": None}}
    assert json.loads(lines[2]) == {"event": "exchange", "link": "reader", "t_ns": 1_000, "duration_ns": 30,
                                    "command": "00B097003C", "response": None,
                                    "model": {"line_us": 1.5, "device_us": 2.0}, "error": "CardRemoved: gone"}
    header = json.loads(lines[0])
    assert list(header) == ["format", "version", "created", "tool", "links"]
    assert header["links"] == [{"name": "reader", "role": "card"}, {"name": "psam", "role": "sam"}]
    assert dt.datetime.fromisoformat(header["created"]).tzinfo is not None


def test_each_event_is_on_disk_before_the_next(tmp_path):
    path = tmp_path / "t.jsonl"
    writer = TraceWriter(path, links=LINKS, tool="test", timer=fixed_timer())
    writer.exchange(Exchange("psam", bytes.fromhex("00B0960006"), bytes.fromhex("9000"), 1_000, 1))
    assert read_trace(path).exchanges()[0].command == bytes.fromhex("00B0960006")  # not closed yet
    writer.close()
    writer.close()
    with pytest.raises(TraceError, match="closed"):
        writer.exchange(Exchange("psam", bytes(4), bytes(2), 1_000, 1))


def test_empty_polls_are_not_written(tmp_path):
    path = tmp_path / "t.jsonl"
    write(path, [("reader", None, 1_200), ("reader", CARD, 1_300)])
    assert [e.at_ns for e in read_trace(path).events] == [300]


@pytest.mark.parametrize("links, message", [
    ([], "a trace names at least one link"),
    ([("a", "card"), ("a", "sam")], "link name 'a' is given twice: each link needs its own name"),
    ([("a", "reader")], "link 'a': role 'reader' is not one of card, sam"),
    ([("", "card")], "link name '': a non-empty text"),
])
def test_writer_refuses_bad_links(tmp_path, links, message):
    with pytest.raises(TraceError) as raised:
        TraceWriter(tmp_path / "t.jsonl", links=links, tool="test")
    assert str(raised.value) == message
    assert not (tmp_path / "t.jsonl").exists()


def test_writer_refuses_an_undeclared_link_and_an_existing_file(tmp_path):
    path = tmp_path / "t.jsonl"
    with TraceWriter(path, links=LINKS, tool="test") as writer:
        with pytest.raises(TraceError) as raised:
            writer.activation("pcsc:2", CARD, 0)
    assert str(raised.value) == f"{path}: link 'pcsc:2' was not declared when the trace was created " \
                                f"(declared: reader, psam)"
    with pytest.raises(TraceError) as raised:
        TraceWriter(path, links=LINKS, tool="test")
    assert str(raised.value) == f"{path}: exists; a trace is never overwritten (remove it or choose another name)"
    TraceWriter(path, links=LINKS, tool="again", overwrite=True).close()
    assert read_trace(path).header.tool == "again"


# --- reading: errors name the line ---------------------------------------------------------------------------------

@pytest.mark.parametrize("line, message", [
    ("{not json}", "line 3: not JSON: Expecting property name enclosed in double quotes at column 2"),
    ("[1, 2]", "line 3: expected an object"),
    ('{"event": "tap"}', 'line 3: event: "tap" is neither "activation" nor "exchange"'),
    (SELECT.replace('"reader"', '"pcsc:2"'), "line 3: link: 'pcsc:2' is not one of the header's links (reader, psam)"),
    (SELECT.replace('"t_ns": 5', '"t_ns": -5'), "line 3: t_ns: expected a whole number ≥ 0, got -5"),
    (SELECT.replace('"t_ns": 5', '"t_ns": 5.5'), "line 3: t_ns: expected a whole number ≥ 0, got 5.5"),
    (SELECT.replace('"duration_ns": 7', '"duration_ns": true'), "line 3: duration_ns: expected a whole number ≥ 0, "
                                                                "got true"),
    (SELECT.replace('"9000"', '"90G0"'), "line 3: response: 'G' is not a hex digit"),
    (SELECT.replace('"9000"', '"90"'), "line 3: response: a response has at least its status word (2 bytes)"),
    (SELECT.replace('"00A4040008A000000632010105"', '"00A4"'), "line 3: command: expected at least 4 bytes, got 2"),
    (SELECT.replace('"9000"', 'null'), 'line 3: error: a failed exchange (response null) says why in "error"; an '
                                      'answered one has no error'),
    (SELECT.replace('}', ', "error": "late"}'), 'line 3: error: a failed exchange (response null) says why in '
                                                '"error"; an answered one has no error'),
    (SELECT.replace('}', ', "model": {"line_us": -1, "device_us": 0}}'), "line 3: model.line_us: expected a number "
                                                                         "of µs ≥ 0, got -1"),
    (SELECT.replace('}', ', "colour": "red"}'), "line 3: colour: unknown field (known: event, link, t_ns, "
                                                "duration_ns, command, response, model, error)"),
    (SELECT.replace('"command"', '"link": "psam", "command"'), "line 3: link: appears twice in one object"),
    ('{"event": "activation", "link": "reader", "t_ns": 1}', "line 3: activation: missing"),
    ('{"event": "activation", "link": "reader", "t_ns": 1, "activation": {"protocol": "T=2"}}',
     'line 3: activation.protocol: "T=2" is not one of T=CL, T=0, T=1, MIFARE'),
    ('{"event": "activation", "link": "reader", "t_ns": 1, "activation": {"protocol": "T=CL", "sak": 256}}',
     "line 3: activation.sak: a number 0..255 or null, got 256"),
    ('{"event": "activation", "link": "reader", "t_ns": 1, "activation": {"protocol": "T=CL"}, '
     '"clock": "2026-03-02T08:00:00+08:00"}',
     "line 3: clock: '2026-03-02T08:00:00+08:00': the validator's clock is local time, without a UTC offset"),
    ('{"event": "activation", "link": "reader", "t_ns": 1, "activation": {"protocol": "T=CL"}, "clock": "soon"}',
     "line 3: clock: 'soon' is not an ISO 8601 date-time"),
    ("", "line 3: not JSON: Expecting value at column 1"),
])
def test_a_bad_event_line_is_named(line, message):
    text = "\n".join((HEADER, SELECT, line, SELECT)) + "\n"
    with pytest.raises(TraceError) as raised:
        parse_trace(text, "t.jsonl")
    assert str(raised.value) == f"t.jsonl: {message}"


@pytest.mark.parametrize("change, message", [
    (lambda h: h.replace('"yikatong-trace"', '"yikatong-card"'), 'format: "yikatong-card" is not \'yikatong-trace\''),
    (lambda h: h.replace('"version": 1', '"version": 2'), "version: 2 is not supported (this software reads "
                                                          "version 1)"),
    (lambda h: h.replace('"version": 1', '"version": "1"'), 'version: "1" is not supported (this software reads '
                                                            'version 1)'),
    (lambda h: h.replace('+00:00', ''), "created: '2026-03-02T00:30:00' has no time zone (UTC offset)"),
    (lambda h: h.replace('"tool": "test", ', ''), "tool: missing"),
    (lambda h: h.replace('"role": "sam"', '"role": "pinpad"'), "links: link 'psam': role 'pinpad' is not one of "
                                                               "card, sam"),
    (lambda h: h.replace('"psam"', '"reader"'), "links: link name 'reader' is given twice: each link needs its own "
                                                "name"),
    (lambda h: h.replace('}]}', '}], "validator": {"config": "format = 1"}}'), "validator.fares: missing"),
    (lambda h: h[:-1] + ', "seed": 1}', "seed: unknown field (known: format, version, created, tool, links, "
                                        "validator)"),
])
def test_a_bad_header_is_named(change, message):
    with pytest.raises(TraceError) as raised:
        parse_trace(change(HEADER) + "\n" + SELECT + "\n", "t.jsonl")
    assert str(raised.value) == f"t.jsonl: line 1: {message}"


def test_empty_cut_and_undecodable_files(tmp_path):
    with pytest.raises(TraceError, match=r"^t: empty: a trace starts with its header line$"):
        parse_trace("", "t")
    with pytest.raises(TraceError, match=r"^t: line 1: cut short \(no newline at the end\): "):
        parse_trace(HEADER[:40], "t")
    (tmp_path / "bad.jsonl").write_bytes(HEADER.encode() + b"\n\xff\xfe\n")
    with pytest.raises(TraceError, match=r"bad.jsonl: line 2: not UTF-8 text$"):
        read_trace(tmp_path / "bad.jsonl")
    with pytest.raises(TraceError, match="cannot read"):
        read_trace(tmp_path / "missing.jsonl")
    assert issubclass(TraceError, YktError)


@pytest.mark.parametrize("cut", range(1, len(SELECT) - 1))
def test_a_last_line_cut_short_is_dropped(cut):
    """What a crash leaves: every complete line is read, the cut one dropped and the trace marked truncated."""
    trace = parse_trace(HEADER + "\n" + SELECT + "\n" + SELECT[:cut], "t")
    assert trace.truncated and len(trace.events) == 1


def test_a_complete_last_line_without_its_newline_is_kept():
    trace = parse_trace(HEADER + "\n" + SELECT, "t")
    assert not trace.truncated and len(trace.events) == 1


def test_only_the_last_line_may_be_cut():
    with pytest.raises(TraceError, match=r"^t: line 2: not JSON: "):
        parse_trace(HEADER + "\n" + SELECT[:30] + "\n" + SELECT + "\n", "t")


# --- settings and keys ---------------------------------------------------------------------------------------------

configs = st.builds(
    ValidatorConfig,
    place=st.builds(Place, st.binary(min_size=2, max_size=2), st.binary(min_size=8, max_size=8),
                    st.binary(min_size=2, max_size=2), st.integers(0, 0xFFFF), st.integers(0, 0xFF),
                    st.binary(min_size=8, max_size=8), st.integers(0, 0xFF)),
    purchase=st.sampled_from(["composite", "simple"]),
    application_types=st.frozensets(st.integers(0, 0xFF), min_size=1, max_size=4),
    min_application_version=st.integers(0, 0xFF),
    accepted_issuers=st.frozensets(st.binary(min_size=8, max_size=8), max_size=3),
    recovery_window_s=st.integers(0, 24 * 3600), repeat_tap_s=st.integers(0, 24 * 3600),
    card_timeout_s=st.floats(0.01, 60), sam_timeout_s=st.floats(0.01, 60),
    maintenance_key_version=st.integers(0, 0xFF), psam_two_level=st.booleans(),
    repeat_tap_scope=st.sampled_from(["validator", "line"]), damaged_rows=st.sampled_from(["stop", "quarantine"]),
    retap_same_ride_s=st.integers(0, 24 * 3600),
).map(lambda c: dataclasses.replace(c, retap_same_ride_s=max(c.retap_same_ride_s, c.recovery_window_s)))


@pytest.mark.parametrize("key,value,message", [
    ("damaged_rows", '"ignore"', 'damaged_rows: must be "stop" or "quarantine", got \'ignore\''),
    ("repeat_tap_scope", '"bus"', 'repeat_tap_scope: must be "validator" or "line", got \'bus\''),
    ("damaged_rows", "1", "damaged_rows: must be a string, got 1"),
    ("retap_same_ride_s", "29", "retap_same_ride_s: must be at least recovery_window_s (30), got 29"),
])
def test_settings_refuse_unknown_policies(key, value, message):
    with pytest.raises(ConfigError, match=f"^v.toml: {re.escape(message)}$"):
        parse_config(f"format = 1\n{key} = {value}\n", "v.toml")


@given(configs)
def test_settings_go_into_the_trace_as_a_settings_file(config):
    assert parse_config(config_toml(config)) == config


def test_settings_file_text():
    assert config_toml(ValidatorConfig()) == (
        'format = 1\npurchase = "composite"\napplication_types = [2]\nmin_application_version = 1\n'
        'accepted_issuers = []\nrecovery_window_s = 30\nrepeat_tap_s = 60\nrepeat_tap_scope = "validator"\n'
        'card_timeout_s = 0.5\nsam_timeout_s = 2.0\n'
        'maintenance_key_version = 1\npsam_two_level = true\ndamaged_rows = "stop"\nretap_same_ride_s = 3600\n\n'
        '[place]\ncity_code = "2900"\n'
        'institution_id = "02002900FFFFFFFF"\noperator_code = "0001"\nline = 1\nstation = 1\n'
        'vehicle = "0000000000000001"\nindustry_code = 2\n')


def test_no_key_appears_in_a_trace(tmp_path):
    """A tap's trace holds the card's randoms, MACs and TAC, never a master key or one of the card's own keys."""
    path = tmp_path / "t.jsonl"
    assert run(["tap", "--card", str(DEMO_CARD), "--at", "2026-03-02 08:00:00", "--trace", str(path), "--json"]) == 0
    text = path.read_text(encoding="utf-8").upper()
    keys = re.findall(r'"([0-9A-F]{32})"', (ROOT / "sim" / "keys" / "demo-keyset.json").read_text()
                      + DEMO_CARD.read_text())
    assert len(keys) == 12  # the key set's eight masters, the card's four keys
    for key in keys:
        for half in (key[:16], key[16:]):
            assert half not in text
    assert '"COMMAND": "805401000F' in text  # the debit is there, as bytes


def test_a_longer_recovery_window_lengthens_the_same_ride_too():
    assert parse_config("format = 1\nrecovery_window_s = 7200\n").retap_same_ride_s == 7200
    assert parse_config("format = 1\nretap_same_ride_s = 600\n").retap_same_ride_s == 600
