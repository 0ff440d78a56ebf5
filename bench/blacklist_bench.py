"""Blacklist benchmark: build a list of N random serials, then measure the build, opening, the memory and lookups.

    .venv/bin/python bench/blacklist_bench.py [--count N] [--lookups N] [--runs N] [--dir DIR] [--keep]

The build runs in a child process (this script, with a hidden option) so that its memory figures are its own; a child
that does nothing after its imports gives the baseline. Opens are timed in this process, the median of
:data:`OPENS`. Lookups and memory are measured in ``--runs`` fresh child processes, each of which opens the list and
looks up the same keys twice: the first pass touches most buckets for the first time (so it pays each bucket's CRC
check, as a validator does for its first taps after it opens a new list), the second pass touches them again. Each
figure is the median over the children of each child's median. Memory is the child's own RSS growth from just before
the open, split into anonymous memory (the process's own) and file-backed pages (the mapped list pages that lookups
touched: clean, shared with the page cache, dropped by the kernel under memory pressure).

Listed serials are even numbers and misses odd ones, so every miss is a true miss and both spread over the whole
file. The page cache is warm (the file was just written), which is also the normal state of a validator that reopens
an updated list.
"""

from __future__ import annotations

import argparse
import array
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from terminal.blacklist import SERIAL_SIZE, Blacklist, apply_delta, build_blacklist

OPENS = 9


def _status_kb() -> dict[str, int]:
    fields = {}
    with open("/proc/self/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                fields[key] = int(value.split()[0])
    return fields


def _child(*args: str) -> tuple[float, list[float]]:
    """Wall seconds and the numbers printed by this script run with ``args``.

    A child reads its own memory figures: a parent's ``ru_maxrss`` for a child also counts the parent's pages at fork.
    """
    start = time.perf_counter()
    done = subprocess.run([sys.executable, __file__, *args], stdout=subprocess.PIPE, text=True, check=True)
    return time.perf_counter() - start, [float(n) for n in done.stdout.split()]


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


def _timed(blacklist: Blacklist, keys: list[bytes], times: array.array[int]) -> int:
    """Each lookup's nanoseconds into ``times`` (made beforehand, so that measuring adds no memory while it runs);
    returns the number of keys found."""
    clock = time.perf_counter_ns
    found = 0
    for i, key in enumerate(keys):
        start = clock()
        hit = key in blacklist
        times[i] = clock() - start
        found += hit
    return found


def _timer_overhead() -> int:
    start = time.perf_counter_ns()
    return time.perf_counter_ns() - start


def _pct(values: array.array[int], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _lookups_child(path: str, keys_path: str, hits: int) -> None:
    """Open the list, look the keys up twice; print the figures :func:`main` reads (see ``LOOKUP_FIGURES``)."""
    data = Path(keys_path).read_bytes()
    keys = [data[i:i + SERIAL_SIZE] for i in range(0, len(data), SERIAL_SIZE)]
    passes = [array.array("q", bytes(8 * len(keys))) for _ in ("first touch", "again")]
    before = _status_kb()
    blacklist = Blacklist.open(path)
    opened = _status_kb()
    counts = [_timed(blacklist, keys, times) for times in passes]
    after = _status_kb()
    figures: list[float] = []
    for times, found in zip(passes, counts, strict=True):
        if found != hits:
            sys.exit(f"{found} keys found, expected {hits}")
        figures += [statistics.median(times[:hits]), statistics.median(times[hits:]), _pct(times, 0.99)]
    for state in (opened, after):
        figures += [(state[k] - before[k]) / 1024 for k in ("VmRSS", "RssAnon", "RssFile")]
    print(*figures)


LOOKUP_FIGURES = ("first hits", "first misses", "first p99", "again hits", "again misses", "again p99",
                  "open rss", "open anon", "open file", "after rss", "after anon", "after file")


def _child_main(args: argparse.Namespace) -> None:
    if args.child_build:
        report = build_blacklist(*args.child_build)
        print(report.entries, report.count, _status_kb()["VmHWM"])
    elif args.child_lookups:
        path, keys_path, hits = args.child_lookups
        _lookups_child(path, keys_path, int(hits))
    else:
        print(_status_kb()["VmHWM"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000_000)
    parser.add_argument("--lookups", type=int, default=100_000, help="hits, and as many misses")
    parser.add_argument("--runs", type=int, default=5, help="child processes that measure lookups and memory")
    parser.add_argument("--dir", type=Path, default=None, help="where to put the files (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    parser.add_argument("--seed", type=int, default=978)
    parser.add_argument("--child-bare", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child-build", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--child-lookups", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_bare or args.child_build or args.child_lookups:
        _child_main(args)
        return
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="blacklist-bench-", dir=args.dir))
    src, out, keys_path = work / "serials.txt", work / "blacklist.bin", work / "keys.bin"
    report: list[tuple[str, str]] = []
    load_before = os.getloadavg()

    def row(name: str, value: str) -> None:
        report.append((name, value))
        print(f"{name}: {value}", file=sys.stderr)

    t = time.perf_counter()
    hit_values = _generate(src, args.count, rng, args.lookups)
    row("input", f"{args.count:,} serials, {src.stat().st_size / 1e6:.1f} MB text, generated in "
                 f"{time.perf_counter() - t:.1f} s")

    _, (bare_kb,) = _child("--child-bare")
    build_s, (entries, count, build_kb) = _child("--child-build", str(src), str(out))
    row("build", f"{build_s:.1f} s wall ({entries:,.0f} read, {count:,.0f} unique), child process incl. "
                 "interpreter start")
    row("build peak RSS", f"{build_kb / 1024:.0f} MB (the bare child: {bare_kb / 1024:.0f} MB)")
    row("file size", f"{out.stat().st_size:,} bytes")

    opens = []
    for _ in range(OPENS):
        t = time.perf_counter()
        Blacklist.open(out).close()
        opens.append(time.perf_counter() - t)
    row("open (header, size, bucket table and its CRC)",
        f"median {statistics.median(opens) * 1e3:.2f} ms of {OPENS} (min {min(opens) * 1e3:.2f}, "
        f"max {max(opens) * 1e3:.2f})")
    with Blacklist.open(out) as listed:
        t = time.perf_counter()
        largest = listed.verify()
        row("verify(): every bucket's CRC", f"{(time.perf_counter() - t) * 1e3:.0f} ms "
                                            f"({listed.buckets:,} buckets, the largest {largest} records)")
    with Blacklist.open(out) as listed:
        t = time.perf_counter()
        listed.verify(check_order=True)
        row("verify(check_order=True)", f"{(time.perf_counter() - t) * 1e3:.0f} ms")

    hits = [bytes.fromhex(_serial(v)) for v in hit_values]
    misses = [bytes.fromhex(_serial(2 * rng.randrange(5 * 10**18) + 1)) for _ in range(len(hits))]
    keys_path.write_bytes(b"".join(hits + misses))
    runs = [_child("--child-lookups", str(out), str(keys_path), str(len(hits)))[1] for _ in range(args.runs)]
    fig = {name: statistics.median(run[i] for run in runs) for i, name in enumerate(LOOKUP_FIGURES)}
    spread = {name: (min(run[i] for run in runs), max(run[i] for run in runs))
              for i, name in enumerate(LOOKUP_FIGURES)}
    overhead = statistics.median(_timer_overhead() for _ in hits)

    def us(name: str) -> str:
        low, high = spread[name]
        return f"{fig[name] / 1e3:.2f} µs ({low / 1e3:.2f} to {high / 1e3:.2f})"

    for kind in ("hits", "misses"):
        row(f"lookup, {len(hits):,} {kind}, first touch after open",
            f"median {us('first ' + kind)}, p99 of hits and misses {fig['first p99'] / 1e3:.2f} µs")
        row(f"lookup, {len(hits):,} {kind}, again", f"median {us('again ' + kind)}, "
                                                    f"p99 of hits and misses {fig['again p99'] / 1e3:.2f} µs")
    row("timer overhead (in every lookup figure)", f"{overhead / 1e3:.2f} µs")
    row("RSS growth once open",
        f"{fig['open rss']:.1f} MB (anonymous {fig['open anon']:.1f} MB, file-backed {fig['open file']:.1f} MB)")
    row(f"RSS growth after the {4 * len(hits):,} lookups",
        f"{fig['after rss']:.1f} MB (anonymous {fig['after anon']:.1f} MB, file-backed {fig['after file']:.1f} MB: "
        "mapped list pages the lookups touched)")

    with Blacklist.open(out) as listed:
        digits = [_serial(v)[1:] for v in hit_values]
        t = time.perf_counter()
        if not all(map(listed.contains_digits, digits)):
            sys.exit("contains_digits missed a listed serial")
        row("contains_digits (19-digit text), hits, in this process",
            f"mean {(time.perf_counter() - t) / len(digits) * 1e6:.2f} µs")

        delta = max(1, min(10_000, len(hits) // 2))
        add_lines = [_serial(2 * rng.randrange(5 * 10**18) + 1) for _ in range(delta)]
        remove_lines = [_serial(v) for v in hit_values[:delta]]
        t = time.perf_counter()
        result = apply_delta(out, add=add_lines, remove=remove_lines)
        row(f"apply_delta, {delta:,} added + {delta:,} removed",
            f"{time.perf_counter() - t:.2f} s ({result.count:,} serials, generation {result.generation})")
        still = sum(map(listed.__contains__, hits[:delta]))
        row("old mapping after the replace", f"still answers from the old file: {still:,}/{delta:,} removed serials "
                                             "found")

    print("\n| measure | value |\n|---|---|")
    for name, value in report:
        print(f"| {name} | {value} |")
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.machine())
    print(f"\nPython {platform.python_version()}, {cpu}, {os.cpu_count()} CPUs; load average "
          f"{load_before[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end; {args.runs} lookup runs; "
          f"files in {work}")
    if not args.keep:
        for path in work.iterdir():
            path.unlink()
        work.rmdir()


if __name__ == "__main__":
    main()
