"""The report of a run: rates, latency percentiles, the floor ratio, where the time goes and the money, as one dict."""

from __future__ import annotations

import array
from collections import Counter
from typing import Any

from .loop import WorkerResult
from .profiler import SAMPLE_INTERVAL_S, share_out
from .spec import BenchSpec, flow_of


def percentile(sorted_values: list[int] | array.array, q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..1) of already sorted values."""
    if not len(sorted_values):
        return 0.0
    rank = max(1, -(-int(q * 1_000_000) * len(sorted_values) // 1_000_000))
    return float(sorted_values[min(rank, len(sorted_values)) - 1])


def summarise(results: list[WorkerResult], *, baseline: WorkerResult | None, spec: BenchSpec,
              workers: int) -> dict[str, Any]:
    """The report as one JSON-ready dict.

    Per-transaction figures (mean and percentiles, the floor and the ratio, where the time goes) come from
    ``baseline``, the worker that ran alone (the only one when ``workers`` is 1); the rate, the counts and the money
    come from ``results``, and with several workers so do their percentiles under contention and the scaling.
    """
    main = baseline if baseline is not None else results[0]
    acknowledged = sum(r.acknowledged for r in results)
    if workers == 1:
        wall = results[0].elapsed_s
    else:
        wall = max(r.started + r.elapsed_s for r in results) - min(r.started for r in results)
    tx_per_s = acknowledged / wall if wall else 0.0
    wall_us = 1e6 / main.tx_per_s if main.tx_per_s else 0.0
    cost_us = main.cost_us
    own = sorted(main.latencies_ns)
    declined: Counter = Counter()
    for r in results:
        declined.update(r.declined)
    sampled = sum(main.samples.values())
    purchase = spec.flow == "purchase"
    report: dict[str, Any] = {
        "flow": spec.flow,
        "cards": spec.card_kind,
        "tx_per_s": round(tx_per_s, 1),
        "us_per_tx_mean": round(cost_us, 2),
        "us_per_tx_p50": round(percentile(own, 0.50) / 1000, 2),
        "us_per_tx_p90": round(percentile(own, 0.90) / 1000, 2),
        "us_per_tx_p99": round(percentile(own, 0.99) / 1000, 2),
        "us_per_tx_wall": round(wall_us, 2),
        "crypto_floor_us_per_tx": None if main.floor_us is None else round(main.floor_us, 2),
        "floor_ratio": round(cost_us / main.floor_us, 2) if main.floor_us else None,
        "taps": sum(r.taps for r in results),
        "accepted": sum(r.accepted for r in results),
        "acknowledged": acknowledged,
        "declined": dict(declined),
        "wall_s": round(wall, 3),
        "workers": workers,
        "journal": spec.journal if purchase else "sqlite",
        "group_commit": (spec.group_commit or None) if purchase and spec.journal == "sqlite" else None,
        "cards_per_worker": spec.cards,
        "breakdown_us": {c: round(us, 2) for c, us in share_out(main.samples, wall_us).items()},
        "breakdown_method": (f"SIGALRM sampling every {SAMPLE_INTERVAL_S * 1e3:g} ms of wall time over a separate "
                             f"pass of {main.profiled_taps} taps ({sampled} samples, {main.sampler_lost} in the "
                             "sampler itself, left out), each charged to the innermost frame of a category; shares "
                             "applied to the wall time per transaction") if sampled else None,
    }
    money = [key for key, _ in flow_of(spec.flow, spec.card_kind).money]
    for key in money:
        report[key] = sum(r.money[key] for r in results)
    report["money_conserved"] = len({report[key] for key in money}) == 1
    if workers > 1:
        together = sorted(v for r in results for v in r.latencies_ns)
        report["parallel_us_per_tx_p50"] = round(percentile(together, 0.50) / 1000, 2)
        report["parallel_us_per_tx_p99"] = round(percentile(together, 0.99) / 1000, 2)
        report["per_worker_tx_per_s"] = [round(r.tx_per_s, 1) for r in results]
        report["single_worker_tx_per_s"] = round(main.tx_per_s, 1)
        report["scaling"] = round(tx_per_s / main.tx_per_s, 2) if main.tx_per_s else None
    return report
