"""Codec benchmark: operations per second of the purchase command set, on each engine of its layouts.

    .venv/bin/python bench/codec_bench.py [--seconds S] [--json] [--out bench/results/codecs.md]

Every fixed layout a composite purchase parses or builds is timed with the interpreted construct schema, the compiled
one and the struct fast engine the validator uses; the whole command set of one tap is then timed as the validator
runs it (command classes and fast layouts). Each figure is the median of 5 runs of about ``S``/5 seconds; the machine
is shared, so compare ratios rather than absolute numbers.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from protocols import card_commands as cc
from protocols import card_files as cf
from protocols import psam_commands as pc
from protocols.fci import T_UNION_EP_AID, Fci
from protocols.hexutil import parse_hex

FCI = parse_hex("6F318408A000000632010105A5259F0801029F0C1E02002900FFFFFFFF0201031047700400674428022020011520401231"
                "0114")
WHEN = dt.datetime(2018, 3, 13, 16, 43, 29)
TERMINAL = bytes.fromhex("200041599997")

# (layout, sample bytes) for every fixed layout on the purchase path
LAYOUTS = [
    (cf.PUBLIC_APP_INFO, Fci.parse(FCI).file15),
    (cf.MANAGEMENT_INFO, parse_hex("00000156 2400 2482 0001 01 00000000" + "00" * 45)),
    (cc.INITIALIZE_DATA, parse_hex("01 000000C8 200041599997")),
    (cc.PURCHASE_INIT_RESPONSE, parse_hex("00002710 0036 000000 01 00 11223344")),
    (pc.SAM_PURCHASE_DATA_2, parse_hex("11223344 0036 000000C8 09 20180313164329 01 00 4991585000011383 "
                                       "02403640FFFFFFFF")),
    (pc.SAM_PURCHASE_RESPONSE, parse_hex("00000057 2B1D974F")),
    (cf.TRANSIT_RECORD, parse_hex("06 0000200041599997 02 0001 0001 0001 00 000000C8 00002648 20180313164329 2900 "
                                  "02002900FFFFFFFF 000000000000")),
    (cc.DEBIT_DATA, parse_hex("00000057 20180313164329 2B1D974F")),
    (cc.DEBIT_RESPONSE, parse_hex("F252E12F CAEC0601")),
]


def rate(fn: Callable[[], object], seconds: float) -> float:
    """Operations per second: median of 5 timed runs, the run length fitted to ``seconds`` in all."""
    n = 1
    while True:
        start = time.perf_counter()
        for _ in range(n):
            fn()
        took = time.perf_counter() - start
        if took > 0.02:
            break
        n *= 4
    per_run = max(1, int(n * (seconds / 5) / took))
    runs = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(per_run):
            fn()
        runs.append(per_run / (time.perf_counter() - start))
    return statistics.median(runs)


def one_tap() -> None:
    """The codec work of one composite purchase as the validator does it (no I/O, no cryptography)."""
    cc.SelectByName(T_UNION_EP_AID).to_bytes()
    info = cf.PUBLIC_APP_INFO.parse(Fci.parse(FCI).file15)
    cf.MANAGEMENT_INFO.parse(LAYOUTS[1][1])
    cc.InitializeForCappPurchase(1, 200, TERMINAL).to_bytes()
    init = cc.PURCHASE_INIT_RESPONSE.parse(LAYOUTS[3][1])
    pc.InitSamForPurchase(init.random, init.offline_atc, 200, 9, WHEN, init.key_version, init.algorithm_id,
                          info.diversification_factor, info.issuer_id).to_bytes()
    sam = pc.SAM_PURCHASE_RESPONSE.parse(LAYOUTS[5][1])
    record = cf.TRANSIT_RECORD.parse(LAYOUTS[6][1])
    cc.UpdateCappDataCache(cf.SFI_TRANSIT_LOG, 0, cf.TRANSIT_RECORD.build(record)).to_bytes()
    cc.DebitForPurchase(sam.tsn, WHEN, sam.mac1).to_bytes()
    debit = cc.DEBIT_RESPONSE.parse(LAYOUTS[8][1])
    pc.CreditSamForPurchase(debit.mac2).to_bytes()


def measure(seconds: float) -> dict:
    per_layout = max(0.05, seconds / (len(LAYOUTS) * 6 + 1))
    rows = []
    for layout, raw in LAYOUTS:
        value = layout.parse(raw)
        row = {"layout": layout.name, "bytes": layout.size}
        for engine in ("interpreted", "compiled", "fast"):
            row[f"parse_{engine}"] = rate(functools.partial(layout.parse_with, engine, raw), per_layout)
            row[f"build_{engine}"] = rate(functools.partial(layout.build_with, engine, value), per_layout)
        rows.append(row)
    tap = rate(one_tap, per_layout * 2)
    return {"layouts": rows, "tap_codec_ops_per_s": tap, "tap_codec_us": 1e6 / tap}


def markdown(result: dict, command: str) -> str:
    lines = [
        "# Codec benchmark: the purchase command set",
        "",
        f"Command: `{command}`  ",
        f"Run: {dt.datetime.now().isoformat(timespec='seconds')}, Python {platform.python_version()}, "
        f"{platform.machine()}, shared 2-core machine (one run, medians of 5; compare ratios).",
        "",
        "Operations per second (thousands). `fast` is the struct engine the validator uses.",
        "",
        "| layout | bytes | parse interp. | parse compiled | parse fast "
        "| build interp. | build compiled | build fast |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["layouts"]:
        cells = [f"{r[k] / 1000:,.0f}" for k in ("parse_interpreted", "parse_compiled", "parse_fast",
                                                  "build_interpreted", "build_compiled", "build_fast")]
        lines.append(f"| {r['layout']} | {r['bytes']} | " + " | ".join(cells) + " |")
    parse_gain = statistics.median(r["parse_fast"] / r["parse_interpreted"] for r in result["layouts"])
    compiled_gain = statistics.median(r["parse_compiled"] / r["parse_interpreted"] for r in result["layouts"])
    lines += [
        "",
        f"Median parse speed-up over interpreted: compiled {compiled_gain:.1f}x, fast {parse_gain:.1f}x.",
        "",
        f"Codec work of one composite purchase as the validator runs it (SELECT, FCI, 0x15, 0x17, 8050, 8070, "
        f"0x1E record, 80DC, 8054, 8072, no I/O or cryptography): **{result['tap_codec_us']:.1f} µs** "
        f"({result['tap_codec_ops_per_s']:,.0f} taps/s).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="total measuring time (default 20)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON instead of markdown")
    parser.add_argument("--out", type=Path, help="also write the markdown report to this file")
    args = parser.parse_args(argv)
    result = measure(args.seconds)
    if args.json:
        print(json.dumps(result))
    report = markdown(result, "python bench/codec_bench.py " + " ".join(argv if argv is not None else sys.argv[1:]))
    if not args.json:
        print(report)
    if args.out:
        args.out.write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
