"""Composite taps for an instruction count: what bench/results/throughput.md measures each step by.

    valgrind --tool=callgrind --callgrind-out-file=/dev/null .venv/bin/python bench/tap_instructions.py N

Builds the bench's purchase rig (memory journal, 200 cards), taps 400 times to warm up, then ``N`` more; the
instructions of a tap are the difference between the counts callgrind reports for ``N`` = 1000 and ``N`` = 0,
divided by 1000. Instructions do not move with the load of a shared machine, as wall-clock time does.
``--keep-exchanges`` taps with a validator that keeps each tap's exchanges in its outcome, as ``ykt tap`` does.
"""

from __future__ import annotations

import argparse

from sim.bench.loop import WorkerResult, drive
from sim.bench.purchase import PurchaseRig
from sim.bench.spec import BenchSpec
from terminal.validator import Validator

WARM_UP = 400


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("taps", type=int, help="taps after the warm-up (1000, and 0 for the baseline)")
    parser.add_argument("--keep-exchanges", action="store_true", help="the validator keeps each tap's exchanges")
    args = parser.parse_args()
    spec = BenchSpec(taps=WARM_UP + args.taps, journal="memory", cards=200, profile_taps=0)
    rig = PurchaseRig(spec)
    if args.keep_exchanges:
        bench = rig.validator
        rig.validator = Validator(rig.reader, bench.psam.channel.link, bench.fares, bench.journal, clock=rig.clock,
                                  config=bench.config)
        rig.validator.start()
        rig.serve = rig.validator.poll
    result = WorkerResult(0)
    drive(rig, result, taps=WARM_UP)
    if args.taps:
        drive(rig, result, taps=args.taps)
    if result.accepted != result.taps:
        raise SystemExit(f"{result.taps - result.accepted} taps declined: {dict(result.declined)}")


if __name__ == "__main__":
    main()
