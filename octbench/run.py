"""One run: cohort -> method -> pretraining -> frozen features -> probes -> metrics -> run record."""

from __future__ import annotations

import dataclasses
import math
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytorch_lightning as pl

from octbench.backbone import create_backbone
from octbench.benchmark import Benchmark, MethodEntry, check_benchmark
from octbench.budget import BudgetSnapshots, budget_curve
from octbench.checks import check_run_data
from octbench.clinical import clinical_class_matrix
from octbench.cohort import Cohort
from octbench.collapse import training_health
from octbench.errors import NotRankZero, OctbenchError
from octbench.evaluate import evaluate, extract_features
from octbench.identity import RunIdentity, init_source, method_options, resolve_entry, run_identity
from octbench.init import StartingPoint, starting_point
from octbench.locks import exclusive, launched_as_rank_zero
from octbench.method import Method, MethodOptions
from octbench.record import (
    BACKBONE_FILE,
    DamagedRecord,
    damage_advice,
    git_commit,
    load_metrics,
    load_state_dict,
    package_versions,
    partial_dir,
    publish,
    write_run_record,
)
from octbench.registry import get_method
from octbench.sources import load_cohort
from octbench.splits import leakage_problems, leakage_report
from octbench.trackers import log_run
from octbench.training import CHECKPOINT_DIR, Compute, InMemoryBatches, pretrain


@dataclass
class RunRequest:
    benchmark: Benchmark
    method: str  # a method name, or the alias of one of the benchmark's entries
    clinical: str | None = None  # --clinical and --bins: replace the entry's
    bins: int | None = None
    entry: MethodEntry | None = None  # the benchmark entry to run (compare); else found from `method`
    seed: int = 0
    out: Path = Path("results")
    force: bool = False
    methods_dirs: list[str] = field(default_factory=list)
    cache_dir: Path | None = None
    progress: bool = True
    label_fraction: float = 1.0  # share of training patients whose biomarker labels are used
    strict: bool = False  # refuse a cohort whose splits share patients or identical images
    compute: Compute = field(default_factory=Compute)  # devices, nodes, torch.compile

    def resolved_entry(self) -> MethodEntry:
        return self.entry or resolve_entry(self.benchmark, self.method, self.clinical, self.bins)

    def starting_point(self) -> StartingPoint | None:
        """The backbone's pretrained weights (--init, [pretrain] init or the entry's), read and
        checked to fit the backbone; None for a random start. Read once per process."""
        return starting_point(init_source(self.benchmark, self.resolved_entry()), self.benchmark.backbone)


def check_leakage(cohort: Cohort, strict: bool) -> dict:
    """The leakage report; printed when it finds anything, and fatal under --strict."""
    report = leakage_report(cohort.table)
    problems = leakage_problems(report)
    if problems and strict:
        raise OctbenchError("--strict: the cohort's splits leak: " + "; ".join(problems))
    for problem in problems:
        print(f"octbench: warning: {problem}", file=sys.stderr)
    return report


def planned_run(request: RunRequest, method_cls: type[Method], cohort: Cohort
                ) -> tuple[MethodOptions, RunIdentity, Path]:
    """The method's options, the run's identity and the folder its record has (or will have)."""
    entry = request.resolved_entry()
    options = method_options(method_cls, entry, cohort.clinical_columns(), cohort.task)
    identity = run_identity(request.benchmark, entry, method_cls, options, cohort, request.seed,
                            request.label_fraction, request.starting_point())
    return options, identity, Path(request.out) / "runs" / identity.name


def labelled_train_rows(cohort: Cohort, fraction: float, seed: int) -> pd.DataFrame:
    """The biomarker-labelled training B-scans of a fraction of the training patients.

    Patients are taken in one fixed random order, so every smaller set is nested in every larger
    one and label-efficiency curves compare like with like. The prefix grows, if needed, until
    every label (every class) has both values (its probe needs them)."""
    rows = cohort.part("train")
    if not 0 < fraction <= 1:
        raise OctbenchError(f"label fraction {fraction} must be in (0, 1]")
    if fraction == 1:
        return rows
    order = np.random.default_rng(seed).permutation(np.sort(rows["patient"].unique()))
    for count in range(max(1, math.ceil(fraction * len(order))), len(order) + 1):
        subset = rows[rows["patient"].isin(order[:count])]
        labels = cohort.labels_of(subset)
        if ((labels.min(axis=0) == 0) & (labels.max(axis=0) == 1)).all():
            return subset
    return rows


def pretraining_data(cohort: Cohort, method_cls: type[Method], options: MethodOptions,
                     train_rows: pd.DataFrame) -> InMemoryBatches:
    if method_cls.trains_on == "biomarkers":
        rows = train_rows
        return InMemoryBatches(cohort.images_of(rows), clinical_class_matrix(rows, options.clinical, options.bins),
                               cohort.labels_of(rows))
    rows = cohort.part("pool")
    return InMemoryBatches(cohort.images_of(rows), clinical_class_matrix(rows, options.clinical, options.bins))


def execute(request: RunRequest) -> tuple[Path, dict, bool]:
    """Run (or reuse) one cell; returns its folder, its metrics and whether it was reused."""
    started = time.perf_counter()
    git_commit()  # read before training: a checkout changed during a long compare is not what ran
    benchmark = request.benchmark
    check_benchmark(benchmark)  # as resolved: command-line overrides included
    method_cls = get_method(request.resolved_entry().method, request.methods_dirs)
    start = request.starting_point()  # a missing or ill-fitting init fails now, before the cohort loads
    cohort = load_cohort(benchmark, request.cache_dir)  # cached after the first run: cheap
    timing = {"cohort_s": time.perf_counter() - started}
    options, identity, final = planned_run(request, method_cls, cohort)
    if (existing := reusable_record(final, request.force)) is not None:
        return final, existing, True
    train_rows = labelled_train_rows(cohort, request.label_fraction, benchmark.cohort.seed)
    check_run_data(benchmark, method_cls, cohort, train_rows)  # before anything is written
    leakage = check_leakage(cohort, request.strict)  # only for a run that will be made
    plan = PlannedRun(method_cls, options, identity, final, train_rows, leakage, start)
    if not launched_as_rank_zero():  # a process of a distributed launch: rank 0 holds the run's lock
        return make_run(request, plan, cohort, timing, started)
    with exclusive(final.with_name(f".{final.name}.lock"), f"run {identity.name}", wait=False):
        if (existing := reusable_record(final, request.force)) is not None:  # finished while we waited
            return final, existing, True
        return make_run(request, plan, cohort, timing, started)


def recorded(request: RunRequest) -> tuple[Path, dict | None]:
    """The cell's folder and the metrics of its complete record, or None if it has none; trains nothing."""
    method_cls = get_method(request.resolved_entry().method, request.methods_dirs)
    _, _, final = planned_run(request, method_cls, load_cohort(request.benchmark, request.cache_dir))
    return final, reusable_record(final, force=False)


@dataclass(frozen=True)
class PlannedRun:
    """What execute has settled about a run before making it."""
    method_cls: type[Method]
    options: MethodOptions
    identity: RunIdentity
    final: Path
    train_rows: pd.DataFrame
    leakage: dict
    start: StartingPoint | None = None  # the backbone's pretrained weights; None: random


def reusable_record(final: Path, force: bool) -> dict | None:
    """The metrics of a complete record of this run, unless --force; a damaged record is refused
    (named, never deleted) and --force replaces it."""
    try:
        metrics = load_metrics(final)
    except DamagedRecord as error:
        if not force:
            raise DamagedRecord(f"{damage_advice(error)}; nothing was changed") from None
        print(f"octbench: replacing a damaged run record: {error}", file=sys.stderr)
        return None
    return None if force else metrics


def make_run(request: RunRequest, plan: PlannedRun, cohort: Cohort, timing: dict,
             started: float) -> tuple[Path, dict, bool]:
    pl.seed_everything(request.seed, verbose=False)  # the untrained backbone and heads depend on it
    # The init is loaded before the method is built: its momentum copies (MoCo, BYOL, DINO) start from it.
    backbone, feature_dim = create_backbone(request.benchmark.backbone, plan.start)
    method = plan.method_cls(backbone, feature_dim, plan.options)
    work = partial_dir(plan.final)
    if request.force:
        shutil.rmtree(work, ignore_errors=True)  # --force: no resuming from an earlier attempt
    work.mkdir(parents=True, exist_ok=True)  # an existing one holds the checkpoint of a killed attempt
    try:
        return train_and_record(request, method, plan.options, cohort, plan.train_rows, work, plan.final,
                                plan.identity, plan.leakage, timing, started)
    except BaseException:  # a bad input, a signal, a crash: keep only what a rerun resumes from
        if not (work / CHECKPOINT_DIR).exists():
            shutil.rmtree(work, ignore_errors=True)
        raise


def train_and_record(request: RunRequest, method: Method, options: MethodOptions, cohort: Cohort,
                     train_rows: pd.DataFrame, work: Path, final: Path, identity: RunIdentity, leakage: dict,
                     timing: dict, started: float) -> tuple[Path, dict, bool]:
    benchmark, method_cls = request.benchmark, type(method)
    start = time.perf_counter()
    processes = 0  # none trained: reused pretraining, or a method without any
    donor, weights = pretrained_sibling(final, method_cls, identity.pretrain_digest)
    if donor is not None:  # the same pretraining, recorded at another label fraction
        method.backbone.load_state_dict(weights)
        shutil.copy(donor / "pretrain_log.csv", work / "pretrain_log.csv")
    elif method_cls.n_views > 0:
        data = pretraining_data(cohort, method_cls, options, train_rows)
        processes = pretrain(method, data, benchmark.pretrain, request.seed, work, request.progress, request.compute,
                             callbacks=[BudgetSnapshots(work, benchmark.pretrain.steps)])
        if processes is None:
            raise NotRankZero()  # the other DDP processes end here: rank 0 evaluates and writes the record
    timing["pretrain_s"] = time.perf_counter() - start
    metrics, predictions, eval_timing = evaluate(method, cohort, benchmark, request.seed, train_rows, work)
    if processes:  # pretrained here: probe it at 1/4 and 1/2 of its schedule too (octbench/budget.py)
        start = time.perf_counter()
        linear_metrics = metrics if benchmark.evaluate.protocol == "linear" else None
        metrics["budget"] = budget_curve(method, cohort, benchmark, request.seed, train_rows, work, linear_metrics)
        timing["budget_s"] = time.perf_counter() - start
    if method_cls.n_views > 0:  # did pretraining learn anything? (octbench/collapse.py)
        log = pd.read_csv(work / "pretrain_log.csv") if (work / "pretrain_log.csv").exists() else None
        val_features = extract_features(method, cohort.images_of(cohort.part("val")))
        metrics["health"] = training_health(val_features, log, method.trivial_loss(benchmark.pretrain.batch_size))
    timing.update(eval_timing)
    timing["total_s"] = time.perf_counter() - started
    entry = request.resolved_entry()
    metrics = {"run_id": identity.name, "method": method_cls.name, "label": identity.label,
               "benchmark": benchmark.name, "seed": request.seed, "label_fraction": request.label_fraction,
               **identity.metrics_fields(), **metrics,
               "trivial_loss": method.trivial_loss(benchmark.pretrain.batch_size) if method_cls.n_views else None,
               "timing": {k: round(v, 2) for k, v in timing.items()}}
    config = {
        "run_id": identity.name, "octbench_version": package_versions()["octbench"], "method": method_cls.name,
        "method_paper": method_cls.paper, "key": identity.key, "init": identity.init,
        "entry": dataclasses.asdict(entry),
        "clinical": [list(pair) for pair in options.clinical], "bins": options.bins, "seed": request.seed,
        "label_fraction": request.label_fraction, "pretraining_reused_from": donor and donor.name,
        "benchmark": benchmark.to_dict(), "splits": cohort.split_patients(),
        "leakage": leakage, "versions": package_versions(), "git_commit": git_commit(),
        "compute": {**dataclasses.asdict(request.compute), "processes": processes},
    }
    write_run_record(work, config, metrics, predictions, method.probed_backbone())  # what was probed
    publish(work, final)
    log_run(request, metrics, config, final)  # to the experiment tracker, if one is chosen (octbench/trackers.py)
    return final, metrics, False


def pretrained_sibling(final: Path, method_cls: type[Method], pretrain_digest: str
                       ) -> tuple[Path | None, dict | None]:
    """A complete run with the same pretraining key (it differs from this one only in label fraction
    or probe, and its pretraining did not see biomarker labels), with its backbone's weights:
    exactly what this run would train. One whose backbone cannot be loaded is named and passed over."""
    if method_cls.n_views == 0 or method_cls.trains_on != "pool" or method_cls.encode is not Method.encode:
        return None, None
    for sibling in sorted(final.parent.iterdir()):
        if sibling == final or sibling.name.startswith(".") or not (sibling / "pretrain_log.csv").exists():
            continue
        try:
            metrics = load_metrics(sibling)
        except DamagedRecord:
            continue  # named by report and compare; not a donor
        if metrics is None or metrics.get("pretrain_key") != pretrain_digest:
            continue
        try:
            return sibling, load_state_dict(sibling / BACKBONE_FILE)
        except DamagedRecord as error:
            print(f"octbench: warning: not reusing the pretraining of {sibling.name}: {error}; pretraining "
                  "anew", file=sys.stderr)
    return None, None
