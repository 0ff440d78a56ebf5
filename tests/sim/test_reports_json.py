"""Every reporting command speaks JSON (``--json``), and every help text fits an 80-column terminal."""

from __future__ import annotations

import contextlib
import io
import json
import sqlite3
from pathlib import Path

import click
import pytest

from sim.cli import load_commands, run
from sim.fixture import save_fixture
from sim.issuing import issue_card, load_demo_keyset

ROOT = Path(__file__).resolve().parents[2]
DEMO_KEYS = ROOT / "sim" / "keys" / "demo-keyset.json"


def out_json(capsys, argv: list[str], code: int = 0) -> dict:
    assert run(argv) == code
    return json.loads(capsys.readouterr().out)


def test_card_new_json(tmp_path, capsys):
    out = tmp_path / "card.json"
    doc = out_json(capsys, ["card", "new", "--serial", "03103640000000000042", "--balance", "1234", "--type",
                            "student", "--out", str(out), "--json"])
    assert doc == {"fixture": str(out), "card_number": "3103640000000000042", "serial": "03103640000000000042",
                   "issuer_id": "02403640FFFFFFFF", "kind": "cpu", "card_type": "student", "balance": 1234}


def test_card_new_m1_json(tmp_path, capsys):
    out = tmp_path / "m1.json"
    doc = out_json(capsys, ["card", "new", "--kind", "m1", "--balance", "800", "--uid", "A1B2C3D4", "--out", str(out),
                            "--json"])
    assert doc["fixture"] == str(out) and doc["kind"] == "m1" and doc["uid"] == "A1B2C3D4"
    assert doc["balance"] == 800 and doc["card_type"] == "normal" and len(doc["card_number"]) == 16


def test_card_import_mfd_json(tmp_path, capsys):
    fixture, dump, back = tmp_path / "m1.json", tmp_path / "m1.mfd", tmp_path / "back.json"
    assert run(["card", "new", "--kind", "m1", "--uid", "01020304", "--out", str(fixture)]) == 0
    assert run(["card", "export", str(fixture), "--mfd", str(dump)]) == 0
    capsys.readouterr()
    doc = out_json(capsys, ["card", "import", "--mfd", str(dump), "--out", str(back), "--json"])
    assert doc == {"fixture": str(back), "kind": "mfd", "source": str(dump), "card": "MIFARE Classic 1K",
                   "uid": "01020304", "notes": []}


def test_journal_verify_json(tmp_path, capsys):
    card, db = tmp_path / "card.json", tmp_path / "v.db"
    save_fixture(issue_card(load_demo_keyset(), serial="03103640000000000042", balance=5000), card)
    assert run(["validate", "--reader", f"sim:{card}", "--sam", "sim:psam", "--taps", "1", "--journal", str(db)]) == 0
    capsys.readouterr()
    doc = out_json(capsys, ["journal", "verify", str(db), "--keys", str(DEMO_KEYS), "--json"])
    assert doc == {"db": str(db), "ok": True, "verified": 1, "mismatches": [], "unverifiable": [], "from_log": [],
                   "open": [], "void": 0, "set_aside": [], "test_only_keys": True}
    with sqlite3.connect(db) as connection:
        connection.execute("UPDATE debit SET amount = 100 WHERE id = 1")
    doc = out_json(capsys, ["journal", "verify", str(db), "--keys", str(DEMO_KEYS), "--json"], code=1)
    assert not doc["ok"] and doc["verified"] == 0
    [mismatch] = doc["mismatches"]
    assert (mismatch["row_id"], mismatch["card_serial"], mismatch["atc"]) == (1, "03103640000000000042", 0)
    assert len(mismatch["expected"]) == 8 and mismatch["expected"] != mismatch["journaled"]


def test_blacklist_json(tmp_path, capsys):
    listing, added, blacklist = tmp_path / "list.txt", tmp_path / "add.txt", tmp_path / "list.bin"
    listing.write_text("03103640000000000042\n03103640000000000042\n3103640000000000043\n")
    added.write_text("03103640000000000044\n")
    assert out_json(capsys, ["blacklist", "build", str(listing), "--out", str(blacklist), "--json"]) == {
        "path": str(blacklist), "count": 2, "entries": 3, "duplicates": 1, "generation": 1}
    assert out_json(capsys, ["blacklist", "update", str(blacklist), "--add", str(added), "--json"]) == {
        "path": str(blacklist), "count": 3, "generation": 2, "added": 1, "already_present": 0, "removed": 0,
        "absent": 0}
    info = out_json(capsys, ["blacklist", "info", str(blacklist), "--check-order", "--json"])
    assert info == {"file": str(blacklist), "version": 2, "record_size": 10, "count": 3, "generation": 2,
                    "buckets": 1, "largest_bucket": 3, "checksums_verified": True, "order_checked": True,
                    "size": blacklist.stat().st_size}
    check = out_json(capsys, ["blacklist", "check", str(blacklist), "3103640000000000043", "03103640000000000045",
                              "--json"], code=1)
    assert check == {"file": str(blacklist), "any_listed": True, "serials": [
        {"serial": "03103640000000000043", "listed": True}, {"serial": "03103640000000000045", "listed": False}]}


def test_trace_export_json(tmp_path, capsys):
    trace, pcap = tmp_path / "t.jsonl", tmp_path / "t.pcapng"
    assert run(["tap", "--card", str(ROOT / "sim" / "fixtures" / "demo-card.json"), "--trace", str(trace),
                "--json"]) == 0
    capsys.readouterr()
    doc = out_json(capsys, ["trace", "export", str(trace), "--pcap", str(pcap), "--json"])
    assert doc["pcap"] == str(pcap) and doc["format"] == "pcapng" and doc["link_type"] == 264
    assert doc["packets"] > 10 and pcap.stat().st_size > 0


def _commands(group: click.Command, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [path]
    if isinstance(group, click.Group):
        for name, command in sorted(group.commands.items()):
            found += _commands(command, (*path, name))
    return found


@pytest.mark.parametrize("path", _commands(load_commands()), ids=lambda p: " ".join(p) or "ykt")
def test_help_fits_an_80_column_terminal(path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    shown = io.StringIO()
    with contextlib.redirect_stdout(shown):
        assert run([*path, "--help"]) == 0
    lines = shown.getvalue().splitlines()
    assert lines and all(len(line) <= 80 for line in lines), [line for line in lines if len(line) > 80]
