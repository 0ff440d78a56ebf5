"""Every loader ends in the project's typed errors on any input: key sets, validator settings, fares, card fixtures
(T-Union CPU and MIFARE Classic, and .mfd dumps), card captures, scripted cards, traces, blacklists (the list file and
its text source), the debit journal, the load journal, the load host's ledger and its terminals file.

Each loader is fed random bytes, valid documents with bytes flipped, inserted, deleted or cut, and valid documents
changed in their structure (a JSON value replaced by one of any type, a TOML value by any literal, lines dropped or
repeated). Whatever happens, the only exceptions allowed out are :class:`protocols.errors.YktError` subclasses.

Examples per strategy: ``YKT_FUZZ_EXAMPLES`` (default 60, enough for CI; a fault campaign runs far more).
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocols.errors import YktError

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = int(os.environ.get("YKT_FUZZ_EXAMPLES", "60"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                              HealthCheck.data_too_large])


@functools.cache
def scratch() -> Path:
    """A directory for the files the loaders read (one per test session, removed when it ends)."""
    path = Path(tempfile.mkdtemp(prefix="ykt-loaders-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


# -- the loaders ---------------------------------------------------------------------------------------------------

def _keyset(path: Path) -> None:
    from terminal.keyset import load_keyset

    load_keyset(path)


def _config(path: Path) -> None:
    from terminal.config import load_config

    load_config(path)


def _fares(path: Path) -> None:
    from terminal.fares import load_fares

    load_fares(path)


def _fixture(path: Path) -> None:
    from sim.fixture import load_fixture

    card = load_fixture(path)
    card.power_on()
    card.execute(bytes.fromhex("00A4040008A000000632010105"))


def _mfd(path: Path) -> None:
    from sim.card.m1_dump import import_mfd

    import_mfd(path.read_bytes())


def _capture(path: Path) -> None:
    from sim.card_import import load_capture

    load_capture(path)


def _script(path: Path) -> None:
    from sim.scripted import ScriptedCard

    ScriptedCard.load(path)


def _trace(path: Path) -> None:
    from terminal.tracefile import read_trace

    read_trace(path)


def _blacklist(path: Path) -> None:
    from terminal.blacklist import Blacklist

    with Blacklist.open(path) as blacklist:
        _ = bytes(10) in blacklist
        blacklist.verify(check_order=True)
        list(blacklist)


def _blacklist_source(path: Path) -> None:
    from terminal.blacklist import build_blacklist

    build_blacklist(path, path.with_suffix(".ykbl"), fmt="text")


def _blacklist_csv(path: Path) -> None:
    from terminal.blacklist import build_blacklist

    build_blacklist(path, path.with_suffix(".ykbl"), fmt="csv")


def _journal(path: Path) -> None:
    from terminal.journal import SqliteJournal

    for damaged in ("stop", "quarantine"):
        with SqliteJournal(path, readonly=True, damaged=damaged) as journal:
            list(journal.entries())
            list(journal.events())
            list(journal.open_rows())
            journal.highest_tsn(bytes(6))


def _journal_start(path: Path) -> None:
    """A validator starting on the journal (read-write: it may upgrade or write events)."""
    from sim.psam import demo_psam
    from sim.reader import SimReader, SimSamSlot
    from terminal.clock import ManualClock
    from terminal.config import ValidatorConfig
    from terminal.fares import load_fares
    from terminal.journal import SqliteJournal
    from terminal.validator import Validator

    for damaged in ("stop", "quarantine"):
        clock = ManualClock(seed_time())
        with SqliteJournal(path, clock=clock) as journal:
            Validator(SimReader(timing=None), SimSamSlot(demo_psam(), timing=None),
                      load_fares(ROOT / "sim" / "fares" / "demo-flat.toml"), journal, clock=clock,
                      config=ValidatorConfig(damaged_rows=damaged)).start()


def _load_journal(path: Path) -> None:
    from terminal.loads.journal import LoadJournal

    with LoadJournal(path, readonly=True) as journal:
        list(journal.entries())


def _ledger(path: Path) -> None:
    from sim.loadhost import LoadLedger

    with LoadLedger(path, readonly=True) as ledger:
        ledger.loads()


def _terminals(path: Path) -> None:
    from sim.loadhost.terminals import load_terminals

    load_terminals(path)


def seed_time() -> Any:
    import datetime as dt

    return dt.datetime(2026, 3, 2, 8, 0, 0)


# -- valid documents to start from ---------------------------------------------------------------------------------

@functools.cache
def seeds(kind: str) -> tuple[bytes, ...]:
    """Valid files of each kind, as bytes."""
    if kind == "keyset":
        return ((ROOT / "sim" / "keys" / "demo-keyset.json").read_bytes(),)
    if kind == "config":
        from terminal.config import ValidatorConfig
        from terminal.tracefile import config_toml

        return (config_toml(ValidatorConfig()).encode(),)
    if kind == "fares":
        transfer = b"\n[transfer]\nwindow_minutes = 60\npercent = 50\ncard_types = [2, \"elderly\"]\n"
        flat = (ROOT / "sim" / "fares" / "demo-flat.toml").read_bytes()
        return flat, flat + transfer, (ROOT / "sim" / "fares" / "demo-sections.toml").read_bytes()
    if kind == "fixture":
        return (*(p.read_bytes() for p in sorted((ROOT / "sim" / "fixtures").glob("*.json"))), _m1_seed("fixture"))
    if kind == "mfd":
        return (_m1_seed("mfd"),)
    if kind == "capture":
        return (_recorded("trace"),)
    if kind in ("trace", "script"):
        return (_recorded(kind),)
    if kind in ("blacklist", "blacklist_source", "blacklist_csv"):
        return (_blacklist_seed(kind),)
    if kind in ("journal", "journal_start"):
        return (_journal_seed(),)
    if kind in ("load_journal", "ledger"):
        return (_load_seed(kind),)
    if kind == "terminals":
        from sim.loadhost.terminals import DEMO_TERMINALS

        return (DEMO_TERMINALS.read_bytes(),)
    raise AssertionError(kind)


def _recorded(kind: str) -> bytes:
    from sim.cli import run
    from sim.scripted import ScriptedCard
    from terminal.tracefile import read_trace

    trace = scratch() / "seed-trace.jsonl"
    if not trace.exists():
        assert run(["tap", "--card", str(ROOT / "sim" / "fixtures" / "demo-card.json"), "--at", "2026-03-02 08:00:00",
                    "--trace", str(trace), "--json"]) == 0
    if kind == "trace":
        return trace.read_bytes()
    recorded = read_trace(trace)
    [card_link] = recorded.links("card")
    card = ScriptedCard.from_exchanges((e.command, e.response) for e in recorded.exchanges(card_link.name))
    return (json.dumps(card.to_json(), indent=2) + "\n").encode()


def _m1_seed(kind: str) -> bytes:
    from sim.card.m1_dump import export_mfd
    from sim.card.m1_issuing import issue_m1_card
    from sim.fixture import dumps
    from sim.issuing import load_demo_keyset

    card = issue_m1_card(load_demo_keyset(), issuer_serial=bytes.fromhex("00000042"), balance=10000)
    return export_mfd(card.image) if kind == "mfd" else dumps(card.image).encode()


def _blacklist_seed(kind: str) -> bytes:
    from terminal.blacklist import build_blacklist

    serials = "\n".join(f"0310290000000000{n:04d}" for n in range(40)) + "\n"
    if kind == "blacklist_source":
        return serials.encode()
    if kind == "blacklist_csv":
        return ("serial,reason\n" + "".join(f"0310290000000000{n:04d},lost\n" for n in range(40))).encode()
    source, out = scratch() / "seed-serials.txt", scratch() / "seed.ykbl"
    source.write_text(serials)
    build_blacklist(source, out, fmt="text")
    return out.read_bytes()


def _journal_seed() -> bytes:
    from sim.tears import run_tear_loop

    path = scratch() / "seed-journal.db"
    if not path.exists():
        run_tear_loop(40, 3, cards=5, journal_path=path)
    return path.read_bytes()


def _load_seed(kind: str) -> bytes:
    from sim.demo import run_demo

    journal = scratch() / "seed-demo" / "journal.db"
    if not journal.exists():
        journal.parent.mkdir()
        run_demo(20, 4, journal, load_share=0.5)
    return journal.with_name("journal-loads.db" if kind == "load_journal" else "journal-loadhost.db").read_bytes()


LOADERS: dict[str, Callable[[Path], None]] = {
    "keyset": _keyset, "config": _config, "fares": _fares, "fixture": _fixture, "mfd": _mfd, "capture": _capture,
    "script": _script, "trace": _trace,
    "blacklist": _blacklist, "blacklist_source": _blacklist_source, "blacklist_csv": _blacklist_csv,
    "journal": _journal, "journal_start": _journal_start, "load_journal": _load_journal, "ledger": _ledger,
    "terminals": _terminals,
}
JSON_KINDS = ("keyset", "fixture", "script")
JSON_LINES_KINDS = ("trace", "capture")
TOML_KINDS = ("config", "fares", "terminals")


def load(kind: str, data: bytes) -> None:
    """Write ``data`` where the loader reads and run it: a YktError is a fine answer, anything else fails."""
    path = scratch() / f"input-{kind}"
    for stale in path.parent.glob(f"{path.name}*"):
        stale.unlink()
    path.write_bytes(data)
    try:
        LOADERS[kind](path)
    except YktError:
        pass


# -- mutations -----------------------------------------------------------------------------------------------------

@st.composite
def byte_edits(draw: st.DrawFn, seed: bytes) -> bytes:
    """``seed`` with a few bytes flipped, set, inserted or deleted, or cut short."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 6))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        op = draw(st.sampled_from(("flip", "set", "insert", "delete", "cut")))
        if op == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "set":
            data[at] = draw(st.integers(0, 255))
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del data[at:at + draw(st.integers(1, 16))]
        else:
            del data[at:]
    return bytes(data)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(1 << 70), 1 << 70) | st.floats() | st.text(max_size=24)
    | st.sampled_from(["", "00", "0310290000000000000001", "3DES", "SM4", "T=CL", "9000", "zz", "01", "-1"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6)


def _places(doc: Any, out: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """Every (container, key) of a JSON document."""
    if isinstance(doc, dict):
        for key, value in doc.items():
            out.append((doc, key))
            _places(value, out)
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            out.append((doc, index))
            _places(value, out)
    return out


def _json_edit(draw: st.DrawFn, doc: Any) -> Any:
    for _ in range(draw(st.integers(1, 3))):
        places = _places(doc, [])
        if not places:
            return draw(JSON_VALUES)
        container, key = draw(st.sampled_from(places))
        op = draw(st.sampled_from(("replace", "replace", "delete", "add")))
        if op == "replace":
            container[key] = draw(JSON_VALUES)
        elif op == "delete":
            del container[key]
        elif isinstance(container, dict):
            container[draw(st.text(max_size=8))] = draw(JSON_VALUES)
        else:
            container.insert(key, draw(JSON_VALUES))
    return doc


@st.composite
def json_edits(draw: st.DrawFn, seed: bytes) -> bytes:
    """``seed`` (a JSON document) with values replaced by values of any type, members deleted or added."""
    return json.dumps(_json_edit(draw, json.loads(seed))).encode()


@st.composite
def json_lines_edits(draw: st.DrawFn, seed: bytes) -> bytes:
    """``seed`` (JSON lines) with one line's structure changed, or lines dropped or repeated."""
    lines = seed.decode().splitlines()
    at = draw(st.integers(0, len(lines) - 1))
    op = draw(st.sampled_from(("edit", "edit", "drop", "repeat", "swap")))
    if op == "edit":
        lines[at] = json.dumps(_json_edit(draw, json.loads(lines[at])))
    elif op == "drop":
        del lines[at]
    elif op == "repeat":
        lines.insert(at, lines[at])
    else:
        other = draw(st.integers(0, len(lines) - 1))
        lines[at], lines[other] = lines[other], lines[at]
    return ("\n".join(lines) + "\n").encode()


TOML_VALUES = st.one_of(
    st.sampled_from(["0", "-1", "1", "255", "256", "65535", "0x7FFFFFFF", "4294967296", "99999999999999999999",
                     "1.5", "-0.0", "inf", "nan", "true", "false", '""', '"x"', '"2900"', '"0001"', '"bcd"',
                     '"composite"', '"simple"', '"stop"', '"quarantine"', "[]", "[1, 2]", '["a", 1]', "{}",
                     "{ percent = 50 }", "{ free = true }", "{ refuse = true }", "{ fixed = -1 }",
                     "1979-05-27T07:32:00Z", "1979-05-27", "07:32:00", '"\\u0000"', "[[1], [2]]"]),
    st.integers(-(1 << 64), 1 << 64).map(str),
    st.text(max_size=12).map(json.dumps))


@st.composite
def toml_edits(draw: st.DrawFn, seed: bytes) -> bytes:
    """``seed`` (TOML) with values replaced by literals of any type, lines dropped, repeated or added."""
    lines = seed.decode().splitlines()
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(("value", "value", "value", "drop", "repeat", "add", "table")))
        line = lines[at]
        if op == "value" and "=" in line:
            key = line.split("=", 1)[0]
            lines[at] = f"{key}= {draw(TOML_VALUES)}"
        elif op == "drop":
            del lines[at]
        elif op == "repeat":
            lines.insert(at, line)
        elif op == "add":
            name = draw(st.sampled_from(["base", "percent", "format", "line", "station", "x", "window_minutes"]))
            lines.insert(at, f"{name} = {draw(TOML_VALUES)}")
        else:
            name = draw(st.from_regex(re.compile(r"[a-z_.0-9]{1,12}"), fullmatch=True))
            lines.insert(at, f"[{name}]")
        if not lines:
            break
    return ("\n".join(lines) + "\n").encode()


def structural(kind: str) -> st.SearchStrategy[bytes]:
    edit = json_edits if kind in JSON_KINDS else json_lines_edits if kind in JSON_LINES_KINDS else toml_edits
    return st.sampled_from(seeds(kind)).flatmap(edit)


# -- the properties ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", sorted(LOADERS))
def test_the_seeds_load(kind: str) -> None:
    """The valid documents the mutations start from load (so the mutations test what they claim to)."""
    for seed in seeds(kind):
        path = scratch() / f"seed-input-{kind}"
        for stale in path.parent.glob(f"{path.name}*"):
            stale.unlink()
        path.write_bytes(seed)
        LOADERS[kind](path)


@pytest.mark.parametrize("kind", sorted(LOADERS))
@FUZZ
@given(data=st.data())
def test_random_bytes_end_in_typed_errors(kind: str, data: st.DataObject) -> None:
    load(kind, data.draw(st.binary(max_size=600)))


@pytest.mark.parametrize("kind", sorted(LOADERS))
@FUZZ
@given(data=st.data())
def test_damaged_documents_end_in_typed_errors(kind: str, data: st.DataObject) -> None:
    load(kind, data.draw(st.sampled_from(seeds(kind)).flatmap(byte_edits)))


@pytest.mark.parametrize("kind", sorted(JSON_KINDS + JSON_LINES_KINDS + TOML_KINDS))
@FUZZ
@given(data=st.data())
def test_changed_documents_end_in_typed_errors(kind: str, data: st.DataObject) -> None:
    load(kind, data.draw(structural(kind)))


@pytest.mark.parametrize("value", [["3DES"], {"a": 1}, 3, None, 1.5])
def test_a_key_set_field_of_the_wrong_json_type_is_a_config_error(tmp_path: Path, value: object) -> None:
    from terminal.errors import ConfigError
    from terminal.keyset import load_keyset

    for field in ("algorithm", "format", "diversification_levels", "version", "master_keys"):
        doc = json.loads(seeds("keyset")[0])
        doc[field] = value
        path = tmp_path / "keys.json"
        path.write_text(json.dumps(doc))
        with pytest.raises(ConfigError, match=f"^{re.escape(str(path))}: {field}[.:]"):
            load_keyset(path)
