"""Every loader of the project, the valid documents their hostile input starts from, and a place to run them.

Key sets, validator settings, fares, card fixtures (T-Union and MIFARE Classic, and .mfd dumps), card captures,
scripted cards, traces, blacklists (the list file and its text and CSV sources), the debit journal (read, and a
validator starting on it), the load journal, the load host's ledger and its terminals file. Each loader takes a path;
:class:`Loaders` writes the input there and runs it: whatever the input, only the project's typed errors may come out
(``tests/test_loaders.py`` and the fault campaign's fuzzing check that).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
from collections.abc import Callable
from pathlib import Path

from hypothesis import strategies as st

from .inputs import hostile

SIM = Path(__file__).resolve().parents[1]
SEED_TIME = dt.datetime(2026, 3, 2, 8, 0, 0)


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
        clock = ManualClock(SEED_TIME)
        with SqliteJournal(path, clock=clock) as journal:
            Validator(SimReader(timing=None), SimSamSlot(demo_psam(), timing=None),
                      load_fares(SIM / "fares" / "demo-flat.toml"), journal, clock=clock,
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


STRUCTURE = {"keyset": "json", "fixture": "json", "script": "json", "trace": "json-lines", "capture": "json-lines",
             "config": "toml", "fares": "toml", "terminals": "toml"}
"""The loaders whose documents are also changed in their structure, and how (:func:`.inputs.hostile`)."""


class Loaders:
    """The loaders, run on files in ``directory``, and the valid documents their inputs start from (made once)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._seeds: dict[str, tuple[bytes, ...]] = {}

    def load(self, kind: str, data: bytes) -> None:
        """Write ``data`` where the loader of ``kind`` reads and run it; its exceptions go to the caller."""
        path = self.directory / f"input-{kind}"
        for stale in path.parent.glob(f"{path.name}*"):
            stale.unlink()
        path.write_bytes(data)
        LOADERS[kind](path)

    def inputs(self, kind: str) -> st.SearchStrategy[bytes]:
        """Hostile input for the loader of ``kind``: random bytes, its seeds damaged, or changed in structure."""
        return hostile(self.seeds(kind), STRUCTURE.get(kind, ""))

    def seeds(self, kind: str) -> tuple[bytes, ...]:
        """Valid files of ``kind``, as bytes."""
        if kind not in self._seeds:
            self._seeds[kind] = self._make(kind)
        return self._seeds[kind]

    def _make(self, kind: str) -> tuple[bytes, ...]:
        if kind == "keyset":
            return ((SIM / "keys" / "demo-keyset.json").read_bytes(),)
        if kind == "config":
            from terminal.config import ValidatorConfig
            from terminal.tracefile import config_toml

            return (config_toml(ValidatorConfig()).encode(),)
        if kind == "fares":
            transfer = b"\n[transfer]\nwindow_minutes = 60\npercent = 50\ncard_types = [2, \"elderly\"]\n"
            flat = (SIM / "fares" / "demo-flat.toml").read_bytes()
            return flat, flat + transfer, (SIM / "fares" / "demo-sections.toml").read_bytes()
        if kind == "fixture":
            return (*(p.read_bytes() for p in sorted((SIM / "fixtures").glob("*.json"))), _m1_seed("fixture"))
        if kind == "mfd":
            return (_m1_seed("mfd"),)
        if kind == "capture":
            return (self._recorded("trace"),)
        if kind in ("trace", "script"):
            return (self._recorded(kind),)
        if kind in ("blacklist", "blacklist_source", "blacklist_csv"):
            return (self._blacklist_seed(kind),)
        if kind in ("journal", "journal_start"):
            return (self._journal_seed(),)
        if kind in ("load_journal", "ledger"):
            return (self._load_seed(kind),)
        if kind == "terminals":
            from sim.loadhost.terminals import DEMO_TERMINALS

            return (DEMO_TERMINALS.read_bytes(),)
        raise KeyError(kind)

    def _recorded(self, kind: str) -> bytes:
        from sim.cli import run
        from sim.scripted import ScriptedCard
        from terminal.tracefile import read_trace

        trace = self.directory / "seed-trace.jsonl"
        if not trace.exists():
            with contextlib.redirect_stdout(io.StringIO()):  # the tap's report is not wanted, only its trace
                done = run(["tap", "--card", str(SIM / "fixtures" / "demo-card.json"), "--at", "2026-03-02 08:00:00",
                            "--trace", str(trace), "--json"])
            if done != 0:
                raise RuntimeError("ykt tap could not record the seed trace")
        if kind == "trace":
            return trace.read_bytes()
        recorded = read_trace(trace)
        [card_link] = recorded.links("card")
        card = ScriptedCard.from_exchanges((e.command, e.response) for e in recorded.exchanges(card_link.name))
        return (json.dumps(card.to_json(), indent=2) + "\n").encode()

    def _blacklist_seed(self, kind: str) -> bytes:
        from terminal.blacklist import build_blacklist

        serials = "\n".join(f"0310290000000000{n:04d}" for n in range(40)) + "\n"
        if kind == "blacklist_source":
            return serials.encode()
        if kind == "blacklist_csv":
            return ("serial,reason\n" + "".join(f"0310290000000000{n:04d},lost\n" for n in range(40))).encode()
        source, out = self.directory / "seed-serials.txt", self.directory / "seed.ykbl"
        source.write_text(serials)
        build_blacklist(source, out, fmt="text")
        return out.read_bytes()

    def _journal_seed(self) -> bytes:
        from sim.tears import run_tear_loop

        path = self.directory / "seed-journal.db"
        if not path.exists():
            run_tear_loop(40, 3, cards=5, journal_path=path)
        return path.read_bytes()

    def _load_seed(self, kind: str) -> bytes:
        from sim.demo import run_demo

        journal = self.directory / "seed-demo" / "journal.db"
        if not journal.exists():
            journal.parent.mkdir()
            run_demo(20, 4, journal, load_share=0.5)
        return journal.with_name("journal-loads.db" if kind == "load_journal" else "journal-loadhost.db").read_bytes()


def _m1_seed(kind: str) -> bytes:
    from sim.card.m1_dump import export_mfd
    from sim.card.m1_issuing import issue_m1_card
    from sim.fixture import dumps
    from sim.issuing import load_demo_keyset

    card = issue_m1_card(load_demo_keyset(), issuer_serial=bytes.fromhex("00000042"), balance=10000)
    return export_mfd(card.image) if kind == "mfd" else dumps(card.image).encode()


LOADERS: dict[str, Callable[[Path], None]] = {
    "keyset": _keyset, "config": _config, "fares": _fares, "fixture": _fixture, "mfd": _mfd, "capture": _capture,
    "script": _script, "trace": _trace,
    "blacklist": _blacklist, "blacklist_source": _blacklist_source, "blacklist_csv": _blacklist_csv,
    "journal": _journal, "journal_start": _journal_start, "load_journal": _load_journal, "ledger": _ledger,
    "terminals": _terminals,
}
