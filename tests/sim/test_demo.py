"""The main job: a simulated validator session whose money adds up."""

from __future__ import annotations

import json

from sim.cli import run
from sim.demo import run_demo
from terminal.journal import SqliteJournal
from terminal.records import DebitState


def test_session_with_many_tears_conserves_money(tmp_path):
    report = run_demo(400, 5, tmp_path / "j.db", tear_share=0.25, odd_share=0.2)
    assert report.retried > 50 and report.recovered > 5
    assert report.recovered_late > 2  # riders back only after the recovery window still settle, and pay once
    assert report.fen_charged == report.fen_taken_from_cards > 0
    assert report.tacs_verified == report.accepted and report.tac_mismatches == 0 and report.unconfirmed == 0
    assert report.declined  # odd cards were refused
    with SqliteJournal(tmp_path / "j.db", readonly=True) as journal:
        assert list(journal.entries([DebitState.PENDING])) == []


def test_same_seed_same_session(tmp_path):
    one = run_demo(120, 9, tmp_path / "a.db").as_dict()
    two = run_demo(120, 9, tmp_path / "b.db").as_dict()
    for volatile in ("journal", "taps_per_s"):
        one.pop(volatile), two.pop(volatile)
    assert one == two


def test_cli_json(capsys, tmp_path):
    code = run(["demo", "--taps", "60", "--seed", "2", "--journal", str(tmp_path / "d.db"), "--json"])
    out, err = capsys.readouterr()
    summary = json.loads(out)
    assert code == 0 and err == ""
    assert summary["accepted"] + summary["declined"] == 60
    assert summary["fen_loaded"] - summary["fen_charged"] == summary["fen_cards_change"]
    assert summary["conserved"] is True and summary["journal"] == str(tmp_path / "d.db")


def test_cli_text(capsys, tmp_path):
    assert run(["demo", "--taps", "30", "--journal", str(tmp_path / "d.db")]) == 0
    out = capsys.readouterr().out
    assert "Simulated validator session: 30 taps, seed 1" in out
    assert "equal" in out and "NOT EQUAL" not in out


def test_cli_refuses_to_overwrite_a_journal(capsys, tmp_path):
    (tmp_path / "d.db").write_bytes(b"precious")
    assert run(["demo", "--journal", str(tmp_path / "d.db")]) == 2
    assert "exists; the demo writes a new journal" in capsys.readouterr().err
    assert (tmp_path / "d.db").read_bytes() == b"precious"


def test_riders_who_top_up_and_tear_conserve_money(tmp_path):
    report = run_demo(300, 3, tmp_path / "j.db", tear_share=0.3, load_share=0.3)
    top_ups = report.top_ups
    assert top_ups.loads > 50 and top_ups.recovered > 0 and top_ups.retried > 20
    assert top_ups.fen_loaded > 0 and top_ups.waiting == 0
    assert top_ups.fen_loaded - report.fen_charged == -report.fen_taken_from_cards
    assert report.conserved and report.tac_mismatches == 0
    from sim.loadhost import LoadLedger
    from terminal.loads import LoadJournal, LoadState

    with LoadLedger(tmp_path / "j-loadhost.db", readonly=True) as ledger:
        assert ledger.confirmed_fen() == top_ups.fen_loaded
    with LoadJournal(tmp_path / "j-loads.db", readonly=True) as journal:
        confirmed = [e.record for e in journal.entries([LoadState.CONFIRMED])]
    assert sum(r.amount for r in confirmed) == top_ups.fen_loaded and len(confirmed) == top_ups.loads


def test_cli_text_shows_the_money_check_with_loads(capsys, tmp_path):
    assert run(["demo", "--taps", "80", "--load-share", "0.5", "--journal", str(tmp_path / "d.db")]) == 0
    out = capsys.readouterr().out
    assert "  topped up  " in out and "(load host ledger)" in out
    assert "equal to loaded - journaled" in out and "NOT EQUAL" not in out
    assert (tmp_path / "d-loadhost.db").exists() and (tmp_path / "d-loads.db").exists()
    assert run(["demo", "--taps", "10", "--journal", str(tmp_path / "e.db")]) == 0
    (tmp_path / "f-loads.db").write_bytes(b"precious")
    assert run(["demo", "--taps", "10", "--journal", str(tmp_path / "f.db")]) == 2
    assert "f-loads.db exists" in capsys.readouterr().err


def test_m1_and_mixed_sessions_with_many_tears_conserve_money(tmp_path):
    for kind in ("m1", "mixed"):
        report = run_demo(400, 5, tmp_path / f"{kind}.db", cards=kind, tear_share=0.25, odd_share=0.2)
        assert report.retried > 50 and report.recovered > 3, kind
        m1 = report.by_kind["m1"]
        assert m1["fen_charged"] == m1["fen_taken_from_cards"] > 0  # read back from the M1 cards themselves
        assert report.fen_charged == report.fen_taken_from_cards and report.conserved
        assert report.tac_mismatches == 0 and report.unconfirmed == 0
        with SqliteJournal(tmp_path / f"{kind}.db", readonly=True) as journal:
            assert list(journal.entries([DebitState.PENDING])) == []
            rows = list(journal.entries([DebitState.COMPLETE]))
        assert report.tacs_verified == len(rows)  # every M1 MAC and CPU TAC, checked as the back office does
        assert {r.record.technology.value for r in rows} == ({"m1"} if kind == "m1" else {"cpu", "m1"})
        assert set(report.by_kind) == ({"m1"} if kind == "m1" else {"cpu", "m1"})


def test_cli_json_counts_per_card_kind(capsys, tmp_path):
    code = run(["demo", "--taps", "80", "--cards", "mixed", "--journal", str(tmp_path / "d.db"), "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0 and summary["cards"] == "mixed" and summary["conserved"] is True
    kinds = summary["by_kind"]
    assert set(kinds) == {"cpu", "m1"} and kinds["cpu"]["cards"] == kinds["m1"]["cards"] == 20
    assert sum(k.get("accepted", 0) + k.get("declined", 0) for k in kinds.values()) == 80
    assert kinds["m1"]["fen_charged"] == kinds["m1"]["fen_taken_from_cards"]


def test_cli_with_a_cut_over_in_the_past_asks_m1_riders_to_exchange_their_cards(capsys, tmp_path):
    from pathlib import Path

    settings = Path(__file__).resolve().parents[2] / "sim" / "settings" / "m1-cutover.toml"
    code = run(["demo", "--taps", "100", "--cards", "mixed", "--config", str(settings), "--journal",
                str(tmp_path / "d.db"), "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0 and summary["conserved"] is True
    assert summary["declined_by_reason"]["please exchange your card"] > 10
    assert summary["by_kind"]["m1"].get("fen_charged", 0) == 0  # only elderly M1 cards ride, and they ride free
    assert run(["journal", "events", str(tmp_path / "d.db"), "--summary"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("exchange_card") and "m1 normal card accepted until 2026-03-01" in out


def test_cli_text_per_card_kind(capsys, tmp_path):
    assert run(["demo", "--taps", "40", "--cards", "m1", "--journal", str(tmp_path / "d.db")]) == 0
    out = capsys.readouterr().out
    assert "  m1 cards                20   " in out and "equal to loaded - journaled" in out
