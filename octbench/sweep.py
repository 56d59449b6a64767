"""`octbench compare --submit slurm|local`: each missing cell as a job of its own, through submitit.

A job runs the cell's `octbench run` command, exactly what `compare --jobs` runs locally, so a cell
gives the same run record wherever it ran. With --devices N a job asks for N GPUs and N tasks per
node, and Lightning picks up SLURM's ranks. Job logs go to <out>/submitit/.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from octbench.benchmark import Benchmark
from octbench.compare import cells, elapsed, run_argv
from octbench.errors import OctbenchError
from octbench.record import DamagedRecord, damage_advice, load_metrics
from octbench.registry import get_method
from octbench.run import RunRequest, load_cohort, planned_run
from octbench.training import Compute


@dataclass(frozen=True)
class SlurmOptions:
    partition: str | None = None
    minutes: int = 240
    cpus: int = 8  # per process: the views are made on the GPU, so a few cores keep it fed


def missing_cells(benchmark: Benchmark, methods, seeds, fractions, out: Path, methods_dirs=(),
                  cache_dir: Path | None = None) -> list[tuple[str, int, float]]:
    """The cells without a complete run record: a resubmitted sweep sends only what is left."""
    cohort = load_cohort(benchmark, cache_dir)
    todo = []
    for method, seed, fraction in cells(methods, seeds, fractions):
        request = RunRequest(benchmark=benchmark, method=method, seed=seed, out=out, label_fraction=fraction)
        _, _, folder = planned_run(request, get_method(method, list(methods_dirs)), cohort)
        try:
            if load_metrics(folder) is None:
                todo.append((method, seed, fraction))
        except DamagedRecord as error:  # not resubmitted: replacing it is the user's call (--force)
            print(f"compare: not submitted: {damage_advice(error)}", flush=True)
    return todo


def load_submitit():
    try:
        import submitit
    except ImportError:
        raise OctbenchError("--submit needs submitit: pip install 'octbench[cluster]'") from None
    return submitit


def executor_for(kind: str, folder: Path, slurm: SlurmOptions, compute: Compute):
    submitit = load_submitit()
    if kind == "local":
        executor = submitit.LocalExecutor(folder=str(folder))
        executor.update_parameters(timeout_min=slurm.minutes)
        return executor
    executor = submitit.AutoExecutor(folder=str(folder), cluster="slurm")
    executor.update_parameters(timeout_min=slurm.minutes, nodes=compute.num_nodes,
                               tasks_per_node=compute.devices, gpus_per_node=compute.devices,
                               cpus_per_task=slurm.cpus, name="octbench",
                               **({"slurm_partition": slurm.partition} if slurm.partition else {}))
    return executor


def submit_cells(benchmark: Benchmark, methods, seeds, fractions, out: Path, kind: str, slurm: SlurmOptions,
                 compute: Compute, methods_dirs=(), cache_dir: Path | None = None) -> None:
    """Submit the missing cells, wait for them, and fail naming every cell whose job failed."""
    submitit = load_submitit()
    todo = missing_cells(benchmark, methods, seeds, fractions, out, methods_dirs, cache_dir)
    print(f"compare: {len(todo)} missing cells to submit ({kind})", flush=True)
    if not todo:
        return
    start = time.perf_counter()
    executor = executor_for(kind, Path(out) / "submitit", slurm, compute)
    commands = [submitit.helpers.CommandFunction(run_argv(benchmark, cell, out, methods_dirs, cache_dir, compute))
                for cell in todo]
    with executor.batch():
        jobs = [executor.submit(command) for command in commands]
    failed = []
    for cell, job in zip(todo, jobs):
        try:
            print(job.result().strip().splitlines()[-1], flush=True)
        except Exception as error:  # submitit re-raises the job's failure here, with its log
            failed.append(f"{cell[0]} seed {cell[1]} fraction {cell[2]} (job {job.job_id}, logs in "
                          f"{job.paths.folder}): {str(error).strip().splitlines()[-1]}")
    if failed:
        raise OctbenchError(f"{len(failed)} of {len(todo)} cells failed; rerun the same compare to retry them:\n"
                            + "\n".join(failed))
    print(f"compare: {len(todo)} cells in {elapsed(start)}", flush=True)
