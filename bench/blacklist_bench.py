"""Blacklist benchmark: build a list of N random serials, then measure the file, the build, opening and lookups.

    .venv/bin/python bench/blacklist_bench.py [--count N] [--lookups N] [--dir DIR] [--keep]

The build and one open run in child processes (this script, with a hidden option) so that their memory figures are
their own; a child that does nothing after its imports gives the baseline. Listed serials are even numbers and
misses odd ones, so every miss is a true miss and both spread over the whole file. Timings are one run on whatever
machine this is; the page cache is warm (the file was just written), which is also the normal state of a validator
that reopens an updated list.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from terminal.blacklist import Blacklist, apply_delta, build_blacklist


def _status_kb() -> dict[str, int]:
    fields = {}
    with open("/proc/self/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                fields[key] = int(value.split()[0])
    return fields


def _child(*args: str) -> tuple[float, list[int]]:
    """Wall seconds and the numbers printed by this script run with ``args`` (the last is its peak RSS in kB).

    The child reads its own VmHWM: a parent's ``ru_maxrss`` for a child also counts the parent's pages at fork.
    """
    start = time.perf_counter()
    done = subprocess.run([sys.executable, __file__, *args], stdout=subprocess.PIPE, text=True, check=True)
    return time.perf_counter() - start, [int(n) for n in done.stdout.split()]


def _serial(value: int) -> str:
    return f"{value:020d}"


def _generate(path: Path, count: int, rng: random.Random, samples: int) -> list[int]:
    """Write ``count`` random even serials (19 digits after the leading 0); return about ``samples`` of them."""
    every = max(1, count // samples)
    kept: list[int] = []
    with open(path, "w") as out:
        for start in range(0, count, 100_000):
            values = [2 * rng.randrange(5 * 10**18) for _ in range(min(100_000, count - start))]
            out.write("".join(f"{v:020d}\n" for v in values))
            kept.extend(values[(-start) % every::every])
    return kept[:samples]


def _timed(blacklist: Blacklist, keys: list[bytes]) -> tuple[list[int], int]:
    """Per-lookup nanoseconds and the number of keys found."""
    clock = time.perf_counter_ns
    times = []
    found = 0
    for key in keys:
        start = clock()
        hit = key in blacklist
        times.append(clock() - start)
        found += hit
    return times, found


def _timer_overhead() -> int:
    start = time.perf_counter_ns()
    return time.perf_counter_ns() - start


def _pct(values: list[int], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _child_main(args: argparse.Namespace) -> None:
    if args.child_build:
        report = build_blacklist(*args.child_build)
        print(report.entries, report.count, end=" ")
    elif args.child_open:
        before = _status_kb()
        blacklist = Blacklist.open(args.child_open)
        after = _status_kb()
        index = sys.getsizeof(blacklist._index) + sum(map(sys.getsizeof, blacklist._index))
        print(*(after[k] - before[k] for k in ("VmRSS", "RssAnon", "RssFile")), index, end=" ")
    print(_status_kb()["VmHWM"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000_000)
    parser.add_argument("--lookups", type=int, default=100_000)
    parser.add_argument("--dir", type=Path, default=None, help="where to put the files (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    parser.add_argument("--seed", type=int, default=978)
    parser.add_argument("--child-bare", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child-build", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--child-open", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_bare or args.child_build or args.child_open:
        _child_main(args)
        return
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="blacklist-bench-", dir=args.dir))
    src, out = work / "serials.txt", work / "blacklist.bin"
    report: list[tuple[str, str]] = []

    def row(name: str, value: str) -> None:
        report.append((name, value))
        print(f"{name}: {value}", file=sys.stderr)

    t = time.perf_counter()
    hit_values = _generate(src, args.count, rng, args.lookups)
    row("input", f"{args.count:,} serials, {src.stat().st_size / 1e6:.1f} MB text, generated in "
                 f"{time.perf_counter() - t:.1f} s")

    _, (bare_kb,) = _child("--child-bare")
    build_s, (entries, count, build_kb) = _child("--child-build", str(src), str(out))
    row("build", f"{build_s:.1f} s wall ({entries:,} read, {count:,} unique), child process incl. interpreter start")
    row("build peak RSS", f"{build_kb / 1024:.0f} MB (the bare child: {bare_kb / 1024:.0f} MB)")
    row("file size", f"{out.stat().st_size:,} bytes")

    opens = []
    for _ in range(5):
        t = time.perf_counter()
        Blacklist.open(out).close()
        opens.append(time.perf_counter() - t)
    row("open (header, size, CRC, index)", f"median {statistics.median(opens) * 1e3:.1f} ms of 5")
    t = time.perf_counter()
    Blacklist.open(out, check_order=True).close()
    row("open with check_order=True", f"{(time.perf_counter() - t) * 1e3:.0f} ms")

    _, (rss, anon, file_backed, index, _) = _child("--child-open", str(out))
    row("RSS increase after open (fresh child)",
        f"{rss / 1024:.1f} MB (anon {anon / 1024:.1f} MB, file-backed {file_backed / 1024:.1f} MB); "
        f"the index holds {index / 2**20:.1f} MB")

    before = _status_kb()
    blacklist = Blacklist.open(out)

    hits = [bytes.fromhex(_serial(v)) for v in hit_values]
    misses = [bytes.fromhex(_serial(2 * rng.randrange(5 * 10**18) + 1)) for _ in range(len(hits))]
    overhead = statistics.median(_timer_overhead() for _ in hits)
    for name, keys, expected in (("hits", hits, len(hits)), ("misses", misses, 0)):
        times, found = _timed(blacklist, keys)
        if found != expected:
            sys.exit(f"{name}: {found} found, expected {expected}")
        t = time.perf_counter()
        sum(map(blacklist.__contains__, keys))
        mean = (time.perf_counter() - t) / len(keys)
        row(f"lookup, {len(keys):,} {name}",
            f"median {statistics.median(times) / 1e3:.2f} us, p99 {_pct(times, 0.99) / 1e3:.2f} us "
            f"(timer overhead {overhead / 1e3:.2f} us included); untimed loop mean {mean * 1e6:.2f} us")
    digits = [_serial(v)[1:] for v in hit_values]
    t = time.perf_counter()
    assert all(map(blacklist.contains_digits, digits))
    row("contains_digits (19-digit text), hits", f"mean {(time.perf_counter() - t) / len(digits) * 1e6:.2f} us")
    final = _status_kb()
    row("file-backed RSS after the lookups", f"+{(final['RssFile'] - before['RssFile']) / 1024:.1f} MB "
                                             f"(mapped pages the lookups touched; shared, clean, reclaimable)")

    delta = max(1, min(10_000, len(hits) // 2))
    add_lines = [_serial(2 * rng.randrange(5 * 10**18) + 1) for _ in range(delta)]
    remove_lines = [_serial(v) for v in hit_values[:delta]]
    t = time.perf_counter()
    result = apply_delta(out, add=add_lines, remove=remove_lines)
    row(f"apply_delta, {delta:,} added + {delta:,} removed",
        f"{time.perf_counter() - t:.2f} s ({result.count:,} serials, generation {result.generation})")
    still = sum(map(blacklist.__contains__, hits[:delta]))
    row("old mapping after the replace", f"still answers from the old file: {still:,}/{delta:,} removed serials found")
    blacklist.close()

    print("\n| measure | value |\n|---|---|")
    for name, value in report:
        print(f"| {name} | {value} |")
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.machine())
    print(f"\nPython {platform.python_version()}, {cpu}, {os.cpu_count()} CPUs; files in {work}")
    if not args.keep:
        for path in work.iterdir():
            path.unlink()
        work.rmdir()


if __name__ == "__main__":
    main()
