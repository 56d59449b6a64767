"""`octbench compare`: every (method, seed, label fraction) cell of a benchmark, missing ones run.

Finished cells are reused, so an interrupted compare picks up where it stopped. With --jobs J the
cells run as J separate `octbench run` processes, each limited to its share of the CPU threads.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from octbench.benchmark import Benchmark
from octbench.locks import RunBusy
from octbench.record import DamagedRecord
from octbench.registry import get_method
from octbench.run import RunRequest, execute
from octbench.training import ONE_PROCESS, Compute


def cells(methods, seeds, fractions) -> list[tuple[str, int, float]]:
    """Seed-major order: a compare stopped early has whole seeds of every method, not all seeds of some.
    Each cell once, however often a method or fraction was named: two processes never make one run."""
    methods, fractions = list(dict.fromkeys(methods)), sorted({float(f) for f in fractions}, reverse=True)
    return [(m, s, f) for s in dict.fromkeys(seeds) for f in fractions for m in methods]


def run_argv(benchmark: Benchmark, cell: tuple[str, int, float], out: Path, methods_dirs=(),
             cache_dir: Path | None = None, compute: Compute = ONE_PROCESS) -> list[str]:
    """The `octbench run` command of one cell, for a process of its own (--jobs, --submit)."""
    method, seed, fraction = cell
    argv = [sys.executable, "-m", "octbench.cli", "run", "--method", method, "--seed", str(seed),
            "--label-fraction", str(fraction), "--benchmark", benchmark.path or benchmark.name,
            "--steps", str(benchmark.pretrain.steps), "--protocol", benchmark.evaluate.protocol,
            "--out", str(out), "--no-progress", "--devices", str(compute.devices),
            "--num-nodes", str(compute.num_nodes)]
    for option, value in (("--tables", benchmark.cohort.tables), ("--image-root", benchmark.cohort.image_root),
                          ("--limit", benchmark.cohort.limit)):
        argv += [option, str(value)] if value else []
    argv += [a for d in methods_dirs for a in ("--methods-dir", str(d))]
    argv += ["--cache-dir", str(cache_dir)] if cache_dir else []
    argv += ["--compile"] if compute.compile else []
    return argv


def run_cells(benchmark: Benchmark, methods, seeds, fractions, out: Path, jobs: int = 1,
              methods_dirs=(), cache_dir: Path | None = None, compute: Compute = ONE_PROCESS) -> list[str]:
    """Run every missing cell; returns what went wrong with the cells that could not be made (a
    damaged record, a cell another process is making, a failed job), after making all the others."""
    for method in methods:
        get_method(method, list(methods_dirs))  # an unknown name fails now, not an hour in
    todo = cells(methods, seeds, fractions)
    start = time.perf_counter()
    failed = []
    if jobs <= 1:
        for i, (method, seed, fraction) in enumerate(todo, start=1):
            request = RunRequest(benchmark=benchmark, method=method, seed=seed, out=Path(out),
                                 methods_dirs=list(methods_dirs), cache_dir=cache_dir, label_fraction=fraction,
                                 compute=compute)
            try:
                folder, metrics, reused = execute(request)
            except (DamagedRecord, RunBusy) as error:  # this cell only: the others can still be made
                failed.append(f"{method} seed {seed} fraction {fraction}: {error}")
                print(f"[{i}/{len(todo)}] {method} seed {seed} fraction {fraction}: not made: {error}", flush=True)
                continue
            state = "reused" if reused else f"{metrics['timing']['total_s']:.0f} s"
            print(f"[{i}/{len(todo)}] {folder.name}: mean AUROC {metrics['mean_auroc']:.3f} ({state})", flush=True)
        print(f"compare: {len(todo)} cells in {elapsed(start)}", flush=True)
        return failed
    threads = max(1, (os.cpu_count() or 1) // jobs)
    environment = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    # The cohort is generated once, before the processes that would otherwise race to build it.
    from octbench.run import load_cohort
    load_cohort(benchmark, cache_dir)

    def run_one(cell):
        argv = run_argv(benchmark, cell, out, methods_dirs, cache_dir, compute)
        return cell, subprocess.run(argv, env=environment, capture_output=True, text=True)

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for (method, seed, fraction), done in pool.map(run_one, todo):
            if done.returncode != 0:
                failed.append(f"{method} seed {seed} fraction {fraction} (exit {done.returncode}): "
                              f"{done.stderr.strip()[-2000:]}")
                print(f"{method} seed {seed} fraction {fraction}: failed (exit {done.returncode})", flush=True)
                continue
            print(done.stdout.strip().splitlines()[-1], flush=True)
    print(f"compare: {len(todo)} cells in {elapsed(start)}", flush=True)
    return failed


def elapsed(start: float) -> str:
    minutes, seconds = divmod(round(time.perf_counter() - start), 60)
    return f"{minutes // 60} h {minutes % 60:02d} min {seconds:02d} s"
