"""`octbench compare --submit slurm|local`: each missing cell as a job of its own, through submitit.

A job runs the cell's resolved run request, exactly what `compare --jobs` runs locally, so a cell
gives the same run record wherever it ran. With --devices N a job asks for N GPUs and N tasks per
node, and Lightning picks up SLURM's ranks. Job logs go to <out>/submitit/.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from octbench.benchmark import Benchmark, MethodEntry
from octbench.compare import cell_request, cells, elapsed, report_line, run_cell
from octbench.errors import OctbenchError
from octbench.record import DamagedRecord, damage_advice, load_metrics
from octbench.registry import get_method
from octbench.run import planned_run
from octbench.sources import load_cohort
from octbench.training import Compute


@dataclass(frozen=True)
class SlurmOptions:
    partition: str | None = None
    minutes: int = 240
    cpus: int = 8  # per process: the views are made on the GPU, so a few cores keep it fed


def missing_cells(benchmark: Benchmark, entries, seeds, fractions, out: Path, methods_dirs=(),
                  cache_dir: Path | None = None, compute: Compute | None = None) -> list:
    """The run requests of the cells without a complete run record: a resubmitted sweep sends only
    what is left."""
    cohort = load_cohort(benchmark, cache_dir)
    todo = []
    for cell in cells(entries, seeds, fractions):
        request = cell_request(benchmark, cell, out, methods_dirs, cache_dir, compute or Compute())
        _, _, folder = planned_run(request, get_method(request.entry.method, list(methods_dirs)), cohort)
        try:
            if load_metrics(folder) is None:
                todo.append(request)
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


def submit_cells(benchmark: Benchmark, entries, seeds, fractions, out: Path, kind: str, slurm: SlurmOptions,
                 compute: Compute, methods_dirs=(), cache_dir: Path | None = None) -> None:
    """Submit the missing cells, wait for them, and fail naming every cell whose job failed."""
    entries = [e if isinstance(e, MethodEntry) else MethodEntry(method=e) for e in entries]
    todo = missing_cells(benchmark, entries, seeds, fractions, out, methods_dirs, cache_dir, compute)
    print(f"compare: {len(todo)} missing cells to submit ({kind})", flush=True)
    if not todo:
        return
    start = time.perf_counter()
    executor = executor_for(kind, Path(out) / "submitit", slurm, compute)
    with executor.batch():
        jobs = [executor.submit(run_cell, request) for request in todo]
    failed = []
    for i, (request, job) in enumerate(zip(todo, jobs), start=1):
        try:
            print(report_line(i, len(todo), *job.result()), flush=True)
        except Exception as error:  # submitit re-raises the job's failure here, with its log
            failed.append(f"{request.entry.display()} seed {request.seed} fraction {request.label_fraction} "
                          f"(job {job.job_id}, logs in {job.paths.folder}): {str(error).strip().splitlines()[-1]}")
    if failed:
        raise OctbenchError(f"{len(failed)} of {len(todo)} cells failed; rerun the same compare to retry them:\n"
                            + "\n".join(failed))
    print(f"compare: {len(todo)} cells in {elapsed(start)}", flush=True)
