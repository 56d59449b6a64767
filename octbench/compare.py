"""`octbench compare`: every (method, seed, label fraction) cell of a benchmark, missing ones run.

Finished cells are reused, so an interrupted compare picks up where it stopped. With --jobs J the
cells run in J processes of their own, each limited to its share of the CPU threads, and each given
the cell's resolved run request (not command-line flags rebuilt from it).
"""

from __future__ import annotations

import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from octbench.benchmark import Benchmark, MethodEntry
from octbench.identity import checked_settings, init_source
from octbench.init import starting_point
from octbench.locks import RunBusy
from octbench.record import DamagedRecord
from octbench.registry import get_method
from octbench.run import RunRequest, execute
from octbench.training import ONE_PROCESS, Compute


def cells(entries, seeds, fractions) -> list[tuple]:
    """Seed-major order: a compare stopped early has whole seeds of every method, not all seeds of some.
    Each cell once, however often an entry or fraction was named: two processes never make one run."""
    entries, fractions = list(dict.fromkeys(entries)), sorted({float(f) for f in fractions}, reverse=True)
    return [(e, s, f) for s in dict.fromkeys(seeds) for f in fractions for e in entries]


def cell_request(benchmark: Benchmark, cell: tuple, out: Path, methods_dirs=(), cache_dir: Path | None = None,
                 compute: Compute = ONE_PROCESS) -> RunRequest:
    """The run of one cell, with the benchmark as resolved here (overrides included): a process of
    its own (--jobs, --submit) gets this request itself, not command-line flags rebuilt from it."""
    entry, seed, fraction = cell
    entry = entry if isinstance(entry, MethodEntry) else MethodEntry(method=entry)
    return RunRequest(benchmark=benchmark, method=entry.handle, entry=entry, seed=seed, out=Path(out),
                      methods_dirs=list(methods_dirs), cache_dir=cache_dir, label_fraction=fraction,
                      compute=compute, progress=False)


def run_cell(request: RunRequest) -> tuple[Path, dict, bool]:
    """One cell in a process of its own: quiet libraries and the command's signal handling."""
    from octbench.cli import quiet_libraries
    from octbench.signals import stop_on_signals

    quiet_libraries()
    with stop_on_signals():
        return execute(request)


def limit_threads(threads: int) -> None:
    os.environ.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    import torch

    torch.set_num_threads(threads)


def report_line(i: int, total: int, folder: Path, metrics: dict, reused: bool) -> str:
    state = "reused" if reused else f"{metrics['timing']['total_s']:.0f} s"
    return f"[{i}/{total}] {folder.name}: mean AUROC {metrics['mean_auroc']:.3f} ({state})"


def run_cells(benchmark: Benchmark, entries, seeds, fractions, out: Path, jobs: int = 1,
              methods_dirs=(), cache_dir: Path | None = None, compute: Compute = ONE_PROCESS) -> list[str]:
    """Run every missing cell; returns what went wrong with the cells that could not be made (a
    damaged record, a cell another process is making, a failed process), after making all the others."""
    entries = [e if isinstance(e, MethodEntry) else MethodEntry(method=e) for e in entries]
    for entry in entries:  # an unknown name, option or init fails now, not an hour in
        checked_settings(get_method(entry.method, list(methods_dirs)), entry)
        starting_point(init_source(benchmark, entry), benchmark.backbone)
    todo = cells(entries, seeds, fractions)
    requests = [cell_request(benchmark, cell, out, methods_dirs, cache_dir, compute) for cell in todo]
    start = time.perf_counter()
    failed = []

    def failure(i: int, cell: tuple, error: BaseException) -> None:
        entry, seed, fraction = cell
        failed.append(f"{entry.display()} seed {seed} fraction {fraction}: {error}")
        print(f"[{i}/{len(todo)}] {entry.display()} seed {seed} fraction {fraction}: not made: {error}", flush=True)

    if jobs <= 1:
        for i, (cell, request) in enumerate(zip(todo, requests), start=1):
            try:
                print(report_line(i, len(todo), *execute(request)), flush=True)
            except (DamagedRecord, RunBusy) as error:  # this cell only: the others can still be made
                failure(i, cell, error)
    else:
        # The cohort is generated once, before the processes that would otherwise race to build it.
        from octbench.sources import load_cohort
        load_cohort(benchmark, cache_dir)
        threads = max(1, (os.cpu_count() or 1) // jobs)
        # spawn: a fresh interpreter per process (fork would copy this one's threads and locks).
        with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=limit_threads, initargs=(threads,)) as pool:
            futures = [pool.submit(run_cell, request) for request in requests]
            for i, (cell, future) in enumerate(zip(todo, futures), start=1):
                try:
                    print(report_line(i, len(todo), *future.result()), flush=True)
                except Exception as error:  # its message names the cell's problem; the others go on
                    failure(i, cell, error)
    print(f"compare: {len(todo)} cells in {elapsed(start)}", flush=True)
    return failed


def elapsed(start: float) -> str:
    minutes, seconds = divmod(round(time.perf_counter() - start), 60)
    return f"{minutes // 60} h {minutes % 60:02d} min {seconds:02d} s"
