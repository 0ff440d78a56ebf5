"""Tap completion over a noisy serial line: the validator and the PN532 driver against the emulated PN532 on a pty,
through a relay that corrupts or drops a given fraction of the bytes each way (``sim.noise_taps``).

    .venv/bin/python bench/serial_noise.py [--taps N] [--rates 0,0.001,0.01] [--seed S] [--drop-share F] [--json]

Prints one row per noise rate: taps, completed, completion rate, what ended the others, the money check (what the
card lost against what the journal holds as complete), the bytes damaged and the driver's resends, NACKs and
recoveries. Run it under the peers lock on a shared machine (it opens ptys): ``flock /tmp/ykt-peers.lock ...``.
The run is seeded: the noise draws repeat for the same bytes, though timing on a loaded machine may change which
bytes are sent (a frame sent again after a timeout).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time

from tqdm import tqdm

from sim.noise_taps import NoiseRun, run_noisy_taps


def _row(run: NoiseRun, seconds: float) -> str:
    failures = ", ".join(f"{count} {what}" for what, count in sorted(run.failures.items())) or "-"
    return (f"| {run.rate:.1%} | {run.taps} | {run.completed} | {run.completion:.2%} | {failures} | "
            f"{run.fen_taken} / {run.fen_journaled} | {run.bytes_damaged} of {run.bytes_sent} | "
            f"{run.resent} / {run.nacks} / {run.reopened} | {seconds:.0f} s |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--taps", type=int, default=1000)
    parser.add_argument("--rates", default="0,0.001,0.01", help="noise rates, comma-separated (0.01 is 1%%)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--drop-share", type=float, default=0.5, help="share of the damaged bytes that are lost")
    parser.add_argument("--json", action="store_true", help="one JSON object per rate instead of the table")
    args = parser.parse_args()
    rates = [float(rate) for rate in args.rates.split(",")]
    if not args.json:
        print(f"{args.taps} taps per rate, seed {args.seed}, {args.drop_share:.0%} of damaged bytes lost; "
              f"Python {platform.python_version()} on {platform.machine()}")
        print("| noise | taps | completed | rate | failures | fen taken / journaled | bytes damaged "
              "| resent / NACKs / recoveries | time |")
        print("|---|---|---|---|---|---|---|---|---|")
    for rate in rates:
        with tqdm(total=args.taps, desc=f"noise {rate:.1%}", unit="tap", file=sys.stderr, leave=False) as bar:
            start = time.monotonic()
            run = run_noisy_taps(args.taps, rate, seed=args.seed, drop_share=args.drop_share,
                                 progress=lambda _: bar.update())
            seconds = time.monotonic() - start
        if args.json:
            print(json.dumps({**run.as_dict(), "seconds": round(seconds, 1)}), flush=True)
        else:
            print(_row(run, seconds), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
