"""The load benchmark: small runs whose counts add up and whose money is conserved across the load journal, the host's
ledger and the cards (speed is never asserted), and the load floor held to the operations a real load makes."""

from __future__ import annotations

import dataclasses
import json

import pytest

from protocols.crypto import serial_factor
from sim.bench.floor import floor_load, load_floor_keys
from sim.bench.load import LOAD_AMOUNT, LoadRig
from sim.bench.loop import WorkerResult, drive, run_worker
from sim.bench.processes import run_bench
from sim.bench.profiler import CATEGORIES
from sim.bench.spec import BenchError, BenchSpec
from sim.cli import run
from sim.loadhost import LedgerState, LoadLedger
from terminal.loads import LoadJournal, LoadState

from .bench_support import count_operations, tap_and_floor

SMALL = BenchSpec(flow="load", taps=40, cards=8, profile_taps=20, floor_iterations=10)
WHEN = bytes.fromhex("20260302060000")
MONEY = ("fen_journaled", "fen_in_ledger", "fen_added_to_cards")


def test_load_run_counts_add_up_and_money_is_conserved():
    report = run_bench(SMALL)
    assert report["flow"] == "load"
    assert report["taps"] == report["accepted"] == report["acknowledged"] == 40
    assert report["declined"] == {}
    loads = 8 + 40 + 20  # the warm-up load of each card, the timed loads, the sampled pass
    assert [report[key] for key in MONEY] == [loads * LOAD_AMOUNT] * 3 and report["money_conserved"] is True
    assert 0 < report["us_per_tx_p50"] <= report["us_per_tx_p90"] <= report["us_per_tx_p99"]
    assert report["crypto_floor_us_per_tx"] > 0
    assert report["floor_ratio"] == pytest.approx(report["us_per_tx_mean"] / report["crypto_floor_us_per_tx"],
                                                  rel=0.01)
    assert report["tx_per_s"] == pytest.approx(1e6 / report["us_per_tx_wall"], rel=0.01)
    parts = report["breakdown_us"]
    assert set(parts) <= set(CATEGORIES) | {"other"} and "load host and ledger" in parts and "journal" in parts
    assert sum(parts.values()) == pytest.approx(report["us_per_tx_wall"], abs=0.05 * len(parts))
    assert (report["journal"], report["group_commit"], report["workers"]) == ("sqlite", None, 1)


def test_the_journal_the_ledger_and_the_cards_agree(tmp_path):
    spec = dataclasses.replace(SMALL, taps=30, cards=6, profile_taps=0, directory=str(tmp_path))
    result = run_worker(spec)
    assert result.taps == result.accepted == result.acknowledged == 30 and len(result.latencies_ns) == 30
    assert result.samples == {} and result.flush_ns >= 0
    with LoadJournal(tmp_path / "bench-load-journal-0.db", readonly=True) as journal:
        rows = list(journal.entries())
    assert len(rows) == 6 + 30 and {entry.record.state for entry in rows} == {LoadState.CONFIRMED}
    with LoadLedger(tmp_path / "bench-ledger-0.db", readonly=True) as ledger:
        loads = ledger.loads()
    assert [load.load_id for load in loads] == [entry.record.load_id for entry in rows]
    assert {load.state for load in loads} == {LedgerState.CONFIRMED}
    assert [load.tac for load in loads] == [entry.record.tac for entry in rows]
    assert result.money == dict.fromkeys(MONEY, 36 * LOAD_AMOUNT)
    # every card took its loads one after another: its online counter counts them, in the ledger as on the card
    counters = sorted((load.serial, load.online_counter) for load in loads)
    assert counters == sorted((load.serial, n) for load in loads if load.online_counter == 0
                              for n in range(sum(other.serial == load.serial for other in loads)))


def test_two_load_workers_report_scaling():
    report = run_bench(dataclasses.replace(SMALL, taps=20, cards=4, profile_taps=10), workers=2)
    assert report["workers"] == 2 and len(report["per_worker_tx_per_s"]) == 2
    assert report["taps"] == report["acknowledged"] == 40 and report["scaling"] > 0
    assert report["money_conserved"] and report["crypto_floor_us_per_tx"] > 0


@pytest.mark.parametrize("changes, message", [
    ({"journal": "memory"}, "the load flow journals in SQLite"),
    ({"taps": 1000, "cards": 1, "profile_taps": 0}, "1 cards take at most 1000 loads of 100 fen"),
])
def test_bad_load_specs_are_refused(changes, message):
    with pytest.raises(BenchError, match=message):
        run_bench(dataclasses.replace(SMALL, **changes))


def test_existing_files_are_refused(tmp_path):
    (tmp_path / "bench-ledger-0.db").write_bytes(b"precious")
    with pytest.raises(BenchError, match=r"bench-ledger-0\.db exists"):
        run_bench(dataclasses.replace(SMALL, directory=str(tmp_path)))
    assert (tmp_path / "bench-ledger-0.db").read_bytes() == b"precious"


# --- the floor makes exactly the cipher operations of a real load ---------------------------------------------------

def test_load_floor_makes_the_cipher_operations_of_one_load(monkeypatch, tmp_path):
    counts = count_operations(monkeypatch)
    rig = LoadRig(dataclasses.replace(SMALL, cards=2, directory=str(tmp_path)))
    drive(rig, WorkerResult(0), taps=2)  # each card's first load makes its long-lived key contexts
    keys = load_floor_keys(rig.cards[0], rig.keyset, rig.terminal.terminal_id)
    in_load, in_floor = tap_and_floor(counts, rig,
                                      lambda: floor_load(keys, b"\x01\x02\x03\x04", 5, 0, LOAD_AMOUNT, WHEN))
    assert in_floor == in_load
    # card: its session key (ECB on its DLK), MAC1, MAC2 checked, the TAC; host: the DLK from the issuer-level key, the
    # session key, MAC1 checked, MAC2, the DTK from the issuer-level TAC key, its TAC key, the TAC checked. New
    # contexts: the host's DLK (ECB), the two session keys' and the host's TAC key's CBC-MACs.
    assert in_load == {"context 3DES ECB": 1, "context 3DES CBC": 3, "update 3DES ECB": 4, "update 3DES CBC": 6,
                       "compare": 3}


def test_load_floor_keys_are_the_keys_of_the_card_and_the_host(tmp_path):
    rig = LoadRig(dataclasses.replace(SMALL, cards=2, directory=str(tmp_path)))
    card = rig.cards[1]
    keys = load_floor_keys(card, rig.keyset, rig.terminal.terminal_id)
    assert keys.factor == serial_factor(card.serial)
    drive(rig, WorkerResult(0), taps=2)
    (row, *_), = [[e.record for e in rig.journal.entries() if e.record.card_serial == card.serial]]
    when = bytes.fromhex(row.when.strftime("%Y%m%d%H%M%S"))
    # the floor's card and host agree on MAC1, MAC2 and the TAC (checked inside), and its TAC is the card's
    assert floor_load(keys, bytes(4), row.online_atc, row.balance_before, row.amount, when) == row.tac


def test_load_floor_refuses_keys_that_disagree(tmp_path):
    rig = LoadRig(dataclasses.replace(SMALL, cards=2, directory=str(tmp_path)))
    keys = load_floor_keys(rig.cards[0], rig.keyset, rig.terminal.terminal_id)
    other = load_floor_keys(rig.cards[1], rig.keyset, rig.terminal.terminal_id)
    with pytest.raises(BenchError, match="MAC1"):
        floor_load(dataclasses.replace(keys, card_dlk=other.card_dlk), b"\x01\x02\x03\x04", 1, 0, 100, WHEN)
    with pytest.raises(BenchError, match="TAC"):
        floor_load(dataclasses.replace(keys, card_tac=other.card_tac), b"\x01\x02\x03\x04", 1, 0, 100, WHEN)


# --- the command ------------------------------------------------------------------------------------------------------

def test_cli_json(capsys):
    assert run(["bench", "--flow", "load", "--taps", "12", "--population", "4", "--profile-taps", "8", "--json"]) == 0
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert err == "" and report["flow"] == "load" and report["acknowledged"] == 12
    assert report["money_conserved"] is True and report["fen_in_ledger"] == (4 + 12 + 8) * LOAD_AMOUNT


def test_cli_text(capsys, tmp_path):
    assert run(["bench", "--flow", "load", "--taps", "10", "--population", "5", "--profile-taps", "10",
                "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Load throughput: 10 loads confirmed by the host (sqlite, durable per call), 1 worker(s)\n")
    assert "  per load  " in out and "a load costs" in out and "load host and ledger" in out
    assert (f"  money{'25.00':>24} CNY confirmed in the load journal, 25.00 CNY in the host's ledger, 25.00 CNY "
            "added to cards: equal\n") in out
    assert (tmp_path / "bench-load-journal-0.db").exists() and (tmp_path / "bench-ledger-0.db").exists()


@pytest.mark.parametrize("option", [["--journal", "memory"], ["--group-commit", "5"]])
def test_cli_refuses_purchase_options(capsys, option):
    assert run(["bench", "--flow", "load", "--taps", "5", *option]) == 2
    assert "is for purchases: loads are journaled in SQLite, every change committed" in capsys.readouterr().err
