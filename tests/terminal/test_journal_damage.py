"""A damaged journal is reported, never fatal by surprise: one changed character in a stored date, hex field or state,
a value of the wrong type, text that is not UTF-8, a damaged page. Under ``stop`` start-up and every journal command
end in a typed error naming the row and the field (and write nothing); under ``quarantine`` the row is set aside,
reported, and the rest goes on."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import random
import sqlite3
from pathlib import Path

import pytest

from sim.cli import run
from terminal.config import ValidatorConfig
from terminal.journal import DamagedRow, EventKind, JournalStorageError, SqliteJournal
from terminal.records import DebitState
from terminal.settlement import export, verify

from .test_journal import MAC2, TAC, spec_record
from .test_keyset import DEMO
from .validator_support import Rig

WHEN = dt.datetime(2026, 5, 1, 9, 0, 0)
NOTE = f"note: {DEMO} is a test-only key set; its verdicts prove nothing about real cards\n"


def _journal(path: Path, rows: int = 4) -> None:
    """``rows`` debits, each a second apart: complete ones, then a pending one (a torn debit) last."""
    with SqliteJournal(path) as journal:
        for n in range(rows):
            row = journal.record_intent(spec_record(offline_atc=n, tsn=n, when=WHEN + dt.timedelta(seconds=n)))
            if n < rows - 1:
                journal.complete(row, TAC, MAC2, True)


def _patch(path: Path, old: bytes, new: bytes) -> None:
    """Change stored bytes in place (past the schema page), the way a flipped bit on flash does; SQLite's own check
    still passes."""
    raw = path.read_bytes()
    at = raw.index(old, 4096)
    assert len(old) == len(new)
    path.write_bytes(raw[:at] + new + raw[at + len(old):])
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        conn.close()


def _sql(path: Path, statement: str) -> None:
    conn = sqlite3.connect(path)
    conn.execute(statement)
    conn.commit()
    conn.close()


DAMAGES = {
    # row 2's date: one character changed
    "date": (lambda p: _patch(p, b"2026-05-01T09:00:01", b"2026-05-01TX9:00:01"), 2, "txn_time",
             "not an ISO 8601 date-time: '2026-05-01TX9:00:01'"),
    # the pending row's date: what start-up reads
    "open date": (lambda p: _patch(p, b"2026-05-01T09:00:03", b"2026-05-01T09:0X:03"), 4, "txn_time",
                  "not an ISO 8601 date-time: '2026-05-01T09:0X:03'"),
    "hex": (lambda p: _patch(p, b"F252E12F", b"F252E1G2"), 3, "tac", "not hex: 'F252E1G2'"),
    "state": (lambda p: _patch(p, b"complete", b"complexe"), 3, "state", "unknown state text 'complexe'"),
    "utf-8": (lambda p: _patch(p, b"complete", b"compl\xff\xfee"), 3, "state",
              "unknown state text that is not UTF-8"),
    "type": (lambda p: _sql(p, "UPDATE debit SET trans_type = 'x9' WHERE id = 2"), 2, "trans_type",
             "integer expected, found text 'x9'"),
    "blob": (lambda p: _sql(p, "UPDATE debit SET mac1 = x'2B1D974F' WHERE id = 1"), 1, "mac1",
             "4 bytes of hex expected, found a blob of 4 bytes"),
    "null": (lambda p: _sql(p, "UPDATE debit SET tac = NULL WHERE id = 1"), 1, "tac",
             "a complete row has TAC and MAC2 (evidence debit)"),
}


@pytest.fixture(params=sorted(DAMAGES))
def damaged(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, int, str, str]:
    damage, row, field, reason = DAMAGES[request.param]
    path = tmp_path / "journal.db"
    _journal(path)
    damage(path)
    return path, row, field, reason


def test_every_journal_command_names_the_row_and_field(damaged, capsys: pytest.CaptureFixture[str],
                                                        tmp_path: Path) -> None:
    path, row, field, reason = damaged
    line = f"ykt: journal row {row}: {field}: {reason}\n"
    out = tmp_path / "settle.csv"
    for argv in (["journal", "export", str(path)], ["journal", "export", "--out", str(out), str(path)],
                 ["journal", "verify", str(path), "--keys", str(DEMO)]):
        assert run(argv) == 2
        captured = capsys.readouterr()
        assert captured.out == "" and captured.err.endswith(line)  # nothing written: no partial report
        assert captured.err.replace(NOTE, "") == line
    assert not out.exists()


def test_quarantine_sets_the_row_aside_and_reports_it(damaged, capsys: pytest.CaptureFixture[str]) -> None:
    path, row, field, reason = damaged
    assert run(["journal", "export", "--damaged", "quarantine", str(path)]) == 1
    captured = capsys.readouterr()
    assert [line.split(",")[0] for line in captured.out.splitlines()[1:]] == [str(n) for n in range(1, 5) if n != row]
    assert captured.err == f"ykt: set aside: journal row {row}: {field}: {reason}\n{path}: exported 3 rows\n"
    assert run(["journal", "verify", "--damaged", "quarantine", str(path), "--keys", str(DEMO)]) == 1
    assert f"DAMAGED journal row {row}: {field}: {reason}\n" in capsys.readouterr().out
    assert run(["journal", "verify", "--damaged", "quarantine", "--json", str(path), "--keys", str(DEMO)]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["set_aside"] == [{"table": "debit", "row_id": row, "field": field, "reason": reason}]
    assert doc["ok"] is False


def test_start_up_stops_on_a_damaged_open_row_or_sets_it_aside(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    _journal(path)
    DAMAGES["open date"][0](path)
    rig = Rig(journal=SqliteJournal(path), start=False)
    with pytest.raises(DamagedRow, match=r"^journal row 4: txn_time: not an ISO 8601 date-time") as err:
        rig.validator.start()
    assert (err.value.row_id, err.value.field) == (4, "txn_time")
    assert rig.validator.out_of_service == f"journal: {err.value}"
    quarantine = ValidatorConfig(damaged_rows="quarantine")
    for _ in range(2):  # a second start reports the same row once
        rig = Rig(journal=SqliteJournal(path), config=quarantine)
        assert rig.validator.out_of_service is None
        rig.journal.close()
    with SqliteJournal(path, readonly=True) as journal:
        [event] = journal.events()
    assert (event.kind, event.row_ref) == (EventKind.DAMAGED_ROW.value, 4)
    assert event.detail.startswith("set aside: journal row 4: txn_time: not an ISO 8601 date-time")
    assert run(["journal", "events", str(path)]) == 0


def test_text_that_is_not_utf8_in_the_schema_is_a_typed_error(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "journal.db"
    _journal(path)
    raw = path.read_bytes()
    at = raw.index(b"debit_open ON debit")
    path.write_bytes(raw[:at] + b"debit_open ON d\xffbit" + raw[at + 19:])
    for argv in (["journal", "export", str(path)], ["journal", "verify", str(path), "--keys", str(DEMO)],
                 ["journal", "events", str(path)]):
        assert run(argv) == 2
        captured = capsys.readouterr()
        assert captured.out == ""
        assert captured.err.replace(NOTE, "").startswith(f"ykt: {path}: cannot open the journal: corrupt database: "
                                                         "text that is not UTF-8 in the schema")
    with pytest.raises(JournalStorageError):
        SqliteJournal(path)


def _damage_a_page(path: Path) -> None:
    """Overwrite the cells of one leaf page of the debit table, in the middle of the file."""
    raw = bytearray(path.read_bytes())
    leaves = [n for n in range(2, len(raw) // 4096 + 1) if raw[(n - 1) * 4096] == 0x0D]
    start = (leaves[len(leaves) // 2] - 1) * 4096
    raw[start + 8:start + 400] = random.Random(1).randbytes(392)
    path.write_bytes(bytes(raw))


def test_a_damaged_page_writes_nothing_or_sets_its_rows_aside(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "journal.db"
    with SqliteJournal(path) as journal:
        for n in range(2000):
            journal.complete(journal.record_intent(spec_record(offline_atc=n, tsn=n)), TAC, MAC2, True)
    _damage_a_page(path)
    assert run(["journal", "export", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"ykt: {path}: read stopped after row ")
    assert "database disk image is malformed" in captured.err
    assert run(["journal", "export", "--damaged", "quarantine", str(path)]) == 1
    captured = capsys.readouterr()
    exported = [int(line.split(",")[0]) for line in captured.out.splitlines()[1:]]
    set_aside = [int(line.split()[5].rstrip(":")) for line in captured.err.splitlines()[:-1]]
    assert set_aside and all("row: unreadable" in line for line in captured.err.splitlines()[:-1])
    assert sorted(exported + set_aside) == list(range(1, 2001))  # every row is exported or named, none is lost
    with SqliteJournal(path, readonly=True, damaged="quarantine") as journal:
        assert verify(journal, _demo_keys()).quarantined


def _demo_keys():
    from terminal.keyset import load_keyset

    return load_keyset(DEMO)


def test_a_damaged_event_is_named_too(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    _journal(path)
    with SqliteJournal(path) as journal:
        journal.record_event(EventKind.DUPLICATE_CARD, "ATC 3 already journaled", card_serial=spec_record().card_serial,
                             row_ref=1)
    _sql(path, "UPDATE event SET at = 'yesterday'")
    with SqliteJournal(path, readonly=True) as journal, pytest.raises(DamagedRow, match=r"^journal event 1: at: "):
        list(journal.events())
    with SqliteJournal(path, readonly=True, damaged="quarantine") as journal:
        assert list(journal.events()) == [] and list(journal.quarantined_events) == [1]


def test_export_of_a_stop_journal_leaves_out_untouched(tmp_path: Path) -> None:
    import io

    path = tmp_path / "journal.db"
    _journal(path)
    DAMAGES["date"][0](path)
    out = io.StringIO()
    with pytest.raises(DamagedRow):
        export(path, out)
    assert out.getvalue() == ""


def test_a_version_1_journal_is_read_as_it_is_and_upgraded_when_written(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    _journal(path)
    conn = sqlite3.connect(path)
    conn.executescript("DROP TABLE event; ALTER TABLE debit DROP COLUMN evidence; ALTER TABLE debit DROP COLUMN "
                       "technology; ALTER TABLE debit DROP COLUMN card_uid; PRAGMA user_version = 1;")
    conn.close()
    with SqliteJournal(path, readonly=True) as old:
        assert old.version == 1 and [e.record.state for e in old.entries()] == [DebitState.COMPLETE] * 3 + [
            DebitState.PENDING]
        assert list(old.events()) == []
    with SqliteJournal(path) as upgraded:
        assert upgraded.version == 3
        upgraded.record_event(EventKind.DAMAGED_ROW, "test")
    with SqliteJournal(path, readonly=True) as journal:
        assert journal.version == 3 and len(list(journal.events())) == 1
        assert [e.record.evidence.value for e in journal.entries()] == [""] * 4
        assert {(e.record.technology.value, e.record.card_uid) for e in journal.entries()} == {("cpu", None)}


def test_a_version_2_journal_is_read_as_cpu_rows_and_upgraded_when_written(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    _journal(path)
    conn = sqlite3.connect(path)
    conn.executescript("ALTER TABLE debit DROP COLUMN technology; ALTER TABLE debit DROP COLUMN card_uid; "
                       "PRAGMA user_version = 2;")
    conn.close()
    with SqliteJournal(path, readonly=True) as old:
        assert old.version == 2
        assert {(e.record.technology.value, e.record.card_uid) for e in old.entries()} == {("cpu", None)}
    with SqliteJournal(path) as upgraded:
        assert upgraded.version == 3
    conn = sqlite3.connect(path)
    assert [row[1] for row in conn.execute("PRAGMA table_info(debit)")][-2:] == ["technology", "card_uid"]
    assert conn.execute("SELECT DISTINCT technology, card_uid FROM debit").fetchall() == [("cpu", None)]
    conn.close()


def test_a_damaged_row_in_a_tap_lookup_is_set_aside_under_quarantine(tmp_path: Path) -> None:
    """The validator looks a card's open rows up on every tap: a damaged one is reported as an event, once."""
    from sim.reader import Tear

    from .validator_support import card

    path = tmp_path / "journal.db"
    journal = SqliteJournal(path)
    rig, c = Rig(journal=journal, config=ValidatorConfig(damaged_rows="quarantine")), card()
    rig.reader.plan_tear(Tear.after("8054"))
    rig.tap(c)
    journal._conn.execute("UPDATE debit SET mac1 = 'XYZ' WHERE id = 1")
    back = rig.tap(c, advance=5)
    # the row could not be read, so the card could not settle it: this tap is charged, and the row is reported
    assert back is not None and back.accepted and not back.recovered
    assert [(e.kind, e.row_ref) for e in rig.journal.events()] == [(EventKind.DAMAGED_ROW.value, 1)]
    stop = Rig(journal=SqliteJournal(path), clock=rig.clock, start=False)
    with pytest.raises(DamagedRow, match="journal row 1: mac1"):
        stop.validator.start()


def test_row_decoding_never_raises_anything_but_damaged_row() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from terminal.journal.rows import COLUMNS, decode_entry

    good = [1, "03104991585000011383", "02403640FFFFFFFF", 1, 54, 200, 5000, 9, "200041599997", 87,
            "2018-03-13T16:43:29", 1, 0, "2B1D974F", "flat", "complete", "F252E12F", "CAEC0601", 1, "", "debit",
            "2018-03-13T16:43:30", "cpu", None]
    decode_entry(good)
    values = st.one_of(st.none(), st.integers(-(1 << 64), 1 << 64), st.floats(), st.text(max_size=30),
                       st.binary(max_size=30), st.sampled_from(good))

    @settings(max_examples=300, deadline=None)
    @given(changes=st.dictionaries(st.integers(0, len(COLUMNS) - 1), values, max_size=4),
           size=st.sampled_from([len(COLUMNS), len(COLUMNS), 0, 5, len(COLUMNS) + 1]))
    def check(changes: dict[int, object], size: int) -> None:
        row = (good + [None])[:size] if size <= len(good) + 1 else good
        row = list(row)
        for index, value in changes.items():
            if index < len(row):
                row[index] = value
        try:
            decode_entry(row)
        except DamagedRow:
            pass

    check()


def test_dataclass_replace_keeps_evidence() -> None:
    assert dataclasses.replace(spec_record()).evidence.value == ""
