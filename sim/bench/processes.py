"""The whole run: one worker in this process, or several worker processes started together behind a barrier."""

from __future__ import annotations

import dataclasses
import queue as queue_module
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import loop
from .spec import BenchError, BenchSpec
from .stats import summarise


def run_bench(spec: BenchSpec, workers: int = 1, *,
              progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Run the benchmark and return its report (:func:`sim.bench.stats.summarise`).

    One worker runs in this process. ``workers`` > 1 first runs one worker alone in a child process (the floor,
    the profile and the single-worker rate), then ``workers`` child processes at once, each with its own population,
    terminal and files, and reports their aggregate rate and its ratio to the single worker's.
    """
    loop.check(spec)
    if workers < 1:
        raise BenchError("at least one worker")
    own_directory = (spec.journal == "sqlite" or spec.flow != "purchase") and spec.directory is None
    directory = tempfile.mkdtemp(prefix="ykt-bench-") if own_directory else spec.directory
    try:
        if workers == 1:
            run_spec = dataclasses.replace(spec, directory=directory)
            result = loop.run_worker(run_spec, 0, progress=progress)
            return summarise([result], baseline=result, spec=spec, workers=1)
        base_dir = _subdirectory(directory, "single")
        baseline = _run_processes(dataclasses.replace(spec, directory=base_dir), [0], extras=True, progress=progress)[0]
        many_dir = _subdirectory(directory, "parallel")
        results = _run_processes(dataclasses.replace(spec, directory=many_dir), list(range(workers)), extras=False,
                                 progress=progress)
        return summarise(results, baseline=baseline, spec=spec, workers=workers)
    finally:
        if own_directory and directory is not None:
            shutil.rmtree(directory, ignore_errors=True)


def _child(spec: BenchSpec, index: int, barrier: Any, counter: Any, queue: Any, extras: bool) -> None:
    try:
        def progress(n: int) -> None:
            with counter.get_lock():
                counter.value += n
        result = loop.run_worker(spec, index, progress=progress, ready=barrier.wait if barrier else None,
                                 measure_extras=extras)
        queue.put((index, result, None))
    except BaseException as exc:
        queue.put((index, None, f"{type(exc).__name__}: {exc}"))


def _run_processes(spec: BenchSpec, indexes: list[int], *, extras: bool,
                   progress: Callable[[int], None] | None) -> list[loop.WorkerResult]:
    """Run one worker process per index, started together behind a barrier; results in index order."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(len(indexes))
    queue = context.Queue()
    counter = context.Value("q", 0)
    processes = [context.Process(target=_child, args=(spec, i, barrier, counter, queue, extras), daemon=True)
                 for i in indexes]
    for p in processes:
        p.start()
    results: dict[int, loop.WorkerResult] = {}
    errors: list[str] = []
    shown = 0
    try:
        while len(results) + len(errors) < len(processes):
            try:
                index, result, error = queue.get(timeout=0.2)
            except queue_module.Empty:  # report progress and check the children are alive
                if not any(p.is_alive() for p in processes) and queue.empty():
                    errors.append("a worker process died")
                    break
            else:
                if error is not None:
                    errors.append(f"worker {index}: {error}")
                    barrier.abort()
                else:
                    results[index] = result
            if progress is not None:
                value = counter.value
                if value > shown:
                    progress(value - shown)
                    shown = value
    finally:
        for p in processes:
            p.join(timeout=5)
            if p.is_alive():
                p.terminate()
    if errors:
        raise BenchError("; ".join(errors))
    return [results[i] for i in indexes]


def _subdirectory(directory: str | None, name: str) -> str | None:
    if directory is None:
        return None
    path = Path(directory) / name
    try:
        path.mkdir(parents=True)
    except OSError as exc:
        raise BenchError(f"cannot make {path} for the journals: {exc.strerror or exc}") from None
    return str(path)
