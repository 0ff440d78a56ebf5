"""The throughput benchmark: small runs whose counts add up and whose money is conserved (speed is never asserted),
and the cryptography floor held to the operations a real tap makes."""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib.util
import json
import os
import tempfile

import pytest

import sim.psam as sim_psam
from protocols.crypto import ciphers
from sim.bench import loop, profiler
from sim.bench.floor import floor_keys, floor_m1_debit, floor_purchase, m1_floor_keys
from sim.bench.loop import RIGS, WorkerResult, drive, run_worker
from sim.bench.processes import run_bench
from sim.bench.profiler import CATEGORIES, PACKAGES, Sampler, category_of, share_out
from sim.bench.purchase import PurchaseRig
from sim.bench.spec import FLOWS, BenchError, BenchSpec
from sim.bench.stats import percentile
from sim.card import cpu_card
from sim.cli import run
from terminal.journal import SqliteJournal
from terminal.records import DebitState
from terminal.validator import Validator

from .bench_support import count_operations, tap_and_floor

SMALL = BenchSpec(taps=120, cards=12, journal="memory", profile_taps=60, floor_iterations=10)
KEYS = ("tx_per_s", "us_per_tx_mean", "us_per_tx_p50", "us_per_tx_p90", "us_per_tx_p99", "crypto_floor_us_per_tx",
        "floor_ratio", "taps", "accepted", "acknowledged", "declined", "breakdown_us", "money_conserved")


def test_memory_run_counts_add_up_and_money_is_conserved():
    report = run_bench(SMALL)
    assert set(KEYS) <= set(report)
    assert report["taps"] == report["accepted"] == report["acknowledged"] == 120
    assert report["declined"] == {}
    assert report["money_conserved"] is True and report["fen_journaled"] == report["fen_taken_from_cards"] > 0
    assert 0 < report["us_per_tx_p50"] <= report["us_per_tx_p90"] <= report["us_per_tx_p99"]
    assert report["crypto_floor_us_per_tx"] > 0
    assert report["floor_ratio"] == pytest.approx(report["us_per_tx_mean"] / report["crypto_floor_us_per_tx"],
                                                  rel=0.01)
    assert report["tx_per_s"] == pytest.approx(1e6 / report["us_per_tx_wall"], rel=0.01)
    assert 0 < report["us_per_tx_mean"] < report["us_per_tx_wall"]  # the loop's own work is left out of the cost
    parts = report["breakdown_us"]
    assert set(parts) <= set(CATEGORIES) | {"other"}
    assert sum(parts.values()) == pytest.approx(report["us_per_tx_wall"], abs=0.05 * len(parts))
    assert report["workers"] == 1 and report["journal"] == "memory" and report["group_commit"] is None
    assert report["flow"] == "purchase"


def test_sqlite_group_commit_counts_only_acknowledged_and_flushes_at_the_end(tmp_path):
    spec = dataclasses.replace(SMALL, journal="sqlite", group_commit=50, taps=130, directory=str(tmp_path),
                               profile_taps=0)
    result = run_worker(spec)
    assert result.taps == result.accepted == result.acknowledged == 130  # 130 is not a multiple of 50: flushed
    assert len(result.latencies_ns) == 130 and result.samples == {} and result.flush_ns > 0
    assert result.cost_us == pytest.approx((sum(result.latencies_ns) + result.flush_ns) / 130 / 1000)
    assert result.money["fen_journaled"] == result.money["fen_taken_from_cards"] > 0
    with SqliteJournal(tmp_path / "bench-journal-0.db", readonly=True) as journal:
        rows = list(journal.entries())
    assert len(rows) == 12 + 130  # the warm-up tap of each card, then the timed taps
    assert {e.record.state for e in rows} == {DebitState.COMPLETE}
    assert sum(e.record.amount for e in rows) == result.money["fen_journaled"]


def test_durable_sqlite_journal(tmp_path):
    report = run_bench(dataclasses.replace(SMALL, journal="sqlite", group_commit=0, taps=15, cards=5,
                                           directory=str(tmp_path), profile_taps=0))
    assert report["acknowledged"] == 15 and report["group_commit"] is None and report["money_conserved"]
    assert report["breakdown_us"] == {} and report["breakdown_method"] is None


def test_a_temporary_journal_directory_is_removed(monkeypatch, tmp_path):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    run_bench(dataclasses.replace(SMALL, journal="sqlite", taps=10, cards=5, profile_taps=0))
    assert os.listdir(tmp_path) == []


def test_few_cards_still_pass_the_repeat_tap_window():
    # three cards tapped 40 times each: the clock moves on far enough between a card's taps
    report = run_bench(dataclasses.replace(SMALL, taps=120, cards=3, profile_taps=0))
    assert report["accepted"] == 120 and report["declined"] == {}


def test_seconds_run():
    report = run_bench(dataclasses.replace(SMALL, taps=None, seconds=0.2, profile_taps=0))
    assert report["acknowledged"] == report["taps"] > 0 and report["money_conserved"]


def test_two_workers_report_scaling():
    report = run_bench(dataclasses.replace(SMALL, taps=60, cards=6, profile_taps=30), workers=2)
    assert report["workers"] == 2 and len(report["per_worker_tx_per_s"]) == 2
    assert report["taps"] == report["acknowledged"] == 120  # 60 taps in each worker
    assert report["scaling"] > 0 and report["single_worker_tx_per_s"] > 0
    assert 0 < report["parallel_us_per_tx_p50"] <= report["parallel_us_per_tx_p99"]
    assert report["crypto_floor_us_per_tx"] > 0 and report["money_conserved"]


def test_a_failing_worker_is_reported_and_the_others_released(monkeypatch):
    class BrokenRig(PurchaseRig):
        def __init__(self, spec, index=0):
            if index == 1:
                raise BenchError("broken rig")
            super().__init__(spec, index)
    monkeypatch.setitem(RIGS, "purchase", BrokenRig)  # the worker processes are forked: they inherit the patch
    with pytest.raises(BenchError, match="worker 1: BenchError: broken rig"):
        run_bench(dataclasses.replace(SMALL, taps=5, cards=2, profile_taps=0), workers=2)


def test_a_journal_directory_that_exists_is_refused(tmp_path):
    (tmp_path / "parallel").mkdir()
    with pytest.raises(BenchError, match="parallel"):
        run_bench(dataclasses.replace(SMALL, journal="sqlite", taps=5, cards=2, profile_taps=0,
                                      directory=str(tmp_path)), workers=2)


@pytest.mark.parametrize("changes, message", [
    ({"taps": None}, "one of the two"),
    ({"seconds": 1.0}, "one of the two"),
    ({"taps": 0}, "positive"),
    ({"journal": "paper"}, "journal must be"),
    ({"group_commit": -1}, "batch size"),
    ({"cards": 0}, "at least one card"),
    ({"taps": 60_001, "cards": 1, "profile_taps": 0}, "use more cards"),
    ({"flow": "metro"}, "flow must be one of purchase, load"),
    ({"card_kind": "ultralight"}, "card kind must be one of cpu, m1"),
    ({"card_kind": "m1", "flow": "load"}, "m1 cards are measured in the purchase flow only"),
])
def test_bad_specs_are_refused(changes, message):
    with pytest.raises(BenchError, match=message):
        run_bench(dataclasses.replace(SMALL, **changes))


def test_percentile_is_nearest_rank():
    values = list(range(1, 101))
    assert [percentile(values, q) for q in (0.5, 0.9, 0.99, 1.0)] == [50.0, 90.0, 99.0, 100.0]
    assert percentile([7], 0.99) == 7.0 and percentile([], 0.5) == 0.0
    assert percentile([1, 2, 3], 0.5) == 2.0


def test_categories_follow_the_modules():
    assert category_of(ciphers.__name__) == category_of("cryptography.hazmat.primitives.ciphers") == "cryptography"
    assert category_of(loop.__name__) == category_of(percentile.__module__) == "bench loop"
    assert category_of(cpu_card.__name__) == category_of(sim_psam.__name__) == "simulated reader, card and PSAM"
    assert category_of(Validator.poll.__module__) == "state machine"
    assert category_of(SqliteJournal.flush.__module__) == category_of("terminal.loads.journal") == "journal"
    assert category_of("sim.loadhost.ledger") == "load host and ledger"
    assert category_of("protocols.card_commands") == "codecs"
    assert category_of(dataclasses.__name__) == "pass"  # the standard library is charged to its caller
    assert category_of("terminal.clock") == category_of("terminal.sqlitedb") == category_of("") == "pass"


@pytest.mark.parametrize("name", sorted(PACKAGES))
def test_every_package_a_category_names_exists(name):
    assert importlib.util.find_spec(name) is not None, f"{name} moved: its category in sim.bench.profiler is stale"
    assert PACKAGES[name] in (*CATEGORIES, profiler.PASS_THROUGH)


def test_every_flow_has_a_rig():
    assert list(RIGS) == list(FLOWS)


def test_sampler_charges_the_innermost_project_frame():
    sampler = Sampler(interval=0.0005)
    with sampler.running():
        report = run_worker(dataclasses.replace(SMALL, profile_taps=0, taps=300), measure_extras=False)
    assert report.acknowledged == 300
    assert sum(sampler.samples.values()) > 0
    assert set(sampler.samples) <= set(CATEGORIES) | {"other"}
    parts = share_out(sampler.samples, 100.0)
    assert parts and sum(parts.values()) == pytest.approx(100.0)


def test_share_out_keeps_the_category_order_and_the_total():
    parts = share_out({"journal": 1, "codecs": 1, "cryptography": 2}, 8.0)
    assert list(parts.items()) == [("cryptography", 4.0), ("codecs", 2.0), ("journal", 2.0)]
    assert share_out({}, 5.0) == {}


# --- the floor makes exactly the cipher operations of a real tap -----------------------------------------------------

def test_floor_makes_the_cipher_operations_of_one_purchase(monkeypatch):
    counts = count_operations(monkeypatch)
    rig = PurchaseRig(dataclasses.replace(SMALL, cards=2))
    drive(rig, WorkerResult(0), taps=2)  # each card's first tap makes its long-lived key contexts
    keys = floor_keys(rig.cards[0], rig.psam)
    in_tap, in_floor = tap_and_floor(
        counts, rig, lambda: floor_purchase(keys, b"\x01\x02\x03\x04", 5, 6, 200, bytes.fromhex("20260302060000")))
    assert in_floor == in_tap
    # card: its session key (ECB on its DPK), MAC1 checked, MAC2, TAC; PSAM: DPK from the issuer key, its session
    # key, MAC1, MAC2 checked. New contexts: the PSAM's DPK (ECB) and the two session keys' CBC-MACs.
    assert in_tap == {"context 3DES ECB": 1, "context 3DES CBC": 2, "update 3DES ECB": 3, "update 3DES CBC": 5,
                      "compare": 2}


def test_floor_keys_are_the_keys_of_the_card_and_the_psam():
    rig = PurchaseRig(dataclasses.replace(SMALL, cards=2))
    card = rig.cards[1]
    keys = floor_keys(card, rig.psam)
    tapped = WorkerResult(0)
    drive(rig, tapped, taps=2)
    log = card.image.transaction_log[0]  # ATC, overdraft limit, amount, type, terminal, date-time
    atc, amount, when = int.from_bytes(log[:2], "big"), int.from_bytes(log[5:9], "big"), log[16:23]
    tsn = rig.psam.tsn - 1  # the card tapped last
    proof = card.image.proofs[0x09]
    random = bytes(4)  # any: the floor's TAC does not depend on it, its MACs do (checked inside)
    assert floor_purchase(keys, random, atc, tsn, amount, when) == proof.tac


def test_floor_refuses_keys_that_disagree():
    rig = PurchaseRig(dataclasses.replace(SMALL, cards=2))
    keys = floor_keys(rig.cards[0], rig.psam)
    wrong = dataclasses.replace(keys, card_dpk=floor_keys(rig.cards[1], rig.psam).card_dpk)
    with pytest.raises(BenchError, match="MAC1"):
        floor_purchase(wrong, b"\x01\x02\x03\x04", 1, 2, 200, bytes.fromhex("20260302060000"))


def test_an_m1_run_counts_m1_debits_and_conserves_money():
    report = run_bench(dataclasses.replace(SMALL, card_kind="m1"))
    assert report["cards"] == "m1" and report["flow"] == "purchase"
    assert report["taps"] == report["accepted"] == report["acknowledged"] == 120 and report["declined"] == {}
    assert report["money_conserved"] is True and report["fen_journaled"] == report["fen_taken_from_cards"] > 0
    assert report["crypto_floor_us_per_tx"] > 0


def test_the_m1_floor_makes_the_cipher_operations_of_one_m1_debit(monkeypatch):
    counts = count_operations(monkeypatch)
    rig = PurchaseRig(dataclasses.replace(SMALL, cards=2, card_kind="m1"))
    drive(rig, WorkerResult(0), taps=2)
    keys = m1_floor_keys(rig.cards[0], rig.psam)  # type: ignore[arg-type]
    in_tap, in_floor = tap_and_floor(counts, rig, lambda: floor_m1_debit(
        keys, 7, 2, 100_000, 200, dt.datetime(2026, 3, 2, 6, 0), rig.psam.terminal_number))
    assert in_floor == in_tap
    # the PSAM: six sector keys (a new key, one ECB call each), the auth code's and the MAC's card keys (the same),
    # two retail MACs (a single-DES key of the left half and two CBC passes each); the M1 card has no cryptography of
    # its own here (Crypto1 is the reader chip's)
    assert in_tap == {"update 3DES ECB": 8, "context 3DES CBC": 4, "update 3DES CBC": 4}


def test_the_m1_floor_computes_the_psams_mac():
    from protocols.m1.crypto import PURCHASE_MAC_DATA, purchase_mac
    from protocols.mifare import auth_uid
    from sim.issuing import load_demo_keyset
    from terminal.keyset import KeyUsage

    rig = PurchaseRig(dataclasses.replace(SMALL, cards=1, card_kind="m1"))
    card, when = rig.cards[0], dt.datetime(2026, 3, 2, 6, 0)
    keys = m1_floor_keys(card, rig.psam)  # type: ignore[arg-type]
    data = PURCHASE_MAC_DATA.pack(keys.card_number, auth_uid(card.image.uid), 2, 100_000, 200, 6,
                                  rig.psam.terminal_number, 7, when)
    expected = purchase_mac(load_demo_keyset().m1_card_key(KeyUsage.M1_TAC, 1, keys.card_number), data)
    assert floor_m1_debit(keys, 7, 2, 100_000, 200, when, rig.psam.terminal_number) == expected


# --- the command ------------------------------------------------------------------------------------------------------

def test_cli_json(capsys):
    code = run(["bench", "--taps", "40", "--population", "8", "--journal", "memory", "--profile-taps", "20", "--json"])
    out, err = capsys.readouterr()
    assert code == 0 and err == ""
    report = json.loads(out)
    assert set(KEYS) <= set(report)
    assert report["acknowledged"] == 40 and report["money_conserved"] is True
    assert report["command"].startswith("ykt bench")


def test_cli_text(capsys, tmp_path):
    assert run(["bench", "--taps", "30", "--population", "6", "--dir", str(tmp_path), "--group-commit", "8",
                "--profile-taps", "30"]) == 0
    out = capsys.readouterr().out
    assert "30 composite purchases acknowledged (sqlite, group commit 8), 1 worker(s)" in out
    assert "crypto floor" in out and "the floor" in out and "where the time goes" in out
    assert ": equal" in out
    assert (tmp_path / "bench-journal-0.db").exists()


def test_cli_m1(capsys):
    assert run(["bench", "--cards", "m1", "--taps", "30", "--population", "6", "--journal", "memory",
                "--profile-taps", "0"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Offline M1 debit throughput: 30 M1 debits acknowledged (memory), 1 worker(s)")
    assert "a debit costs" in out and ": equal" in out
    assert run(["bench", "--flow", "load", "--cards", "m1", "--taps", "5"]) == 2
    assert "--cards is for purchases" in capsys.readouterr().err


def test_cli_refuses_both_taps_and_seconds(capsys):
    assert run(["bench", "--taps", "5", "--seconds", "1"]) == 2
    assert "not both" in capsys.readouterr().err


def test_cli_refuses_an_existing_journal(capsys, tmp_path):
    (tmp_path / "bench-journal-0.db").write_bytes(b"precious")
    assert run(["bench", "--taps", "5", "--population", "2", "--dir", str(tmp_path)]) == 2
    assert "exists" in capsys.readouterr().err
    assert (tmp_path / "bench-journal-0.db").read_bytes() == b"precious"
