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
from sklearn.metrics import roc_auc_score

from octbench import BIOMARKERS
from octbench.backbone import create_backbone
from octbench.benchmark import Benchmark, check_benchmark
from octbench.checks import check_run_data
from octbench.clinical import clinical_class_matrix, parse_clinical_spec
from octbench.cohort import Cohort
from octbench.errors import NotRankZero, OctbenchError
from octbench.evaluate import PROBES, extract_features, linear_probe
from octbench.finetune import finetune_scores
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
from octbench.simulate.cohort import default_cache_dir, simulated_cohort
from octbench.splits import leakage_problems, leakage_report
from octbench.stats import patient_bootstrap_weights, percentile_interval, weighted_auroc
from octbench.training import CHECKPOINT_DIR, Compute, InMemoryBatches, pretrain


@dataclass
class RunRequest:
    benchmark: Benchmark
    method: str
    clinical: str | None = None
    bins: int | None = None
    seed: int = 0
    out: Path = Path("results")
    force: bool = False
    methods_dirs: list[str] = field(default_factory=list)
    cache_dir: Path | None = None
    progress: bool = True
    label_fraction: float = 1.0  # share of training patients whose biomarker labels are used
    strict: bool = False  # refuse a cohort whose splits share patients or identical images
    compute: Compute = field(default_factory=Compute)  # devices, nodes, torch.compile


def load_cohort(benchmark: Benchmark, cache_dir: Path | None) -> Cohort:
    """The benchmark's cohort, from its source: simulated, or read from files (olives, table, folder)."""
    if benchmark.cohort.source == "simulated":
        return simulated_cohort(benchmark.cohort, cache_dir)
    from octbench.sources import source_cohort

    cohort = source_cohort(benchmark.cohort, cache_dir or default_cache_dir())
    # Probes, metrics and leaderboards score the six canonical biomarkers; a cohort with other
    # labels (an image folder's classes) can be read and cached but not yet evaluated.
    missing = [b for b in BIOMARKERS if b not in cohort.table.columns]
    if missing:
        raise OctbenchError(f"{benchmark.path}: the cohort lacks biomarker columns {', '.join(missing)}; octbench "
                            f"evaluates the six canonical biomarkers ({', '.join(BIOMARKERS)}): map them with "
                            "[cohort] columns / labels")
    test = cohort.part("test")
    counted = cohort.counted_test_rows(test)
    for j, biomarker in enumerate(BIOMARKERS):  # checked now, before any training, not after
        if test.loc[counted[:, j], biomarker].nunique() < 2:
            raise OctbenchError(f"biomarker {biomarker} has a single class among the {int(counted[:, j].sum())} "
                                "test B-scans that count for it: its AUROC is undefined; use a larger --limit "
                                "or check its balanced test set")
    return cohort


def check_leakage(cohort: Cohort, strict: bool) -> dict:
    """The leakage report; printed when it finds anything, and fatal under --strict."""
    report = leakage_report(cohort.table)
    problems = leakage_problems(report)
    if problems and strict:
        raise OctbenchError("--strict: the cohort's splits leak: " + "; ".join(problems))
    for problem in problems:
        print(f"octbench: warning: {problem}", file=sys.stderr)
    return report


def method_options(method_cls: type[Method], request: RunRequest, clinical_columns: list[str]) -> MethodOptions:
    if not method_cls.takes_clinical:
        if request.clinical or request.bins:
            raise OctbenchError(f"method {method_cls.name!r} does not use clinical labels; "
                                "--clinical and --bins apply to clinical-supcon")
        return MethodOptions()
    spec = request.clinical or method_cls.default_clinical
    return MethodOptions(clinical=parse_clinical_spec(spec, clinical_columns), bins=request.bins)


def planned_run(request: RunRequest, method_cls: type[Method], cohort: Cohort) -> tuple[MethodOptions, str, Path]:
    """The method's options, the run id and the folder the run's record has (or will have)."""
    options = method_options(method_cls, request, cohort.clinical_columns())
    identity = run_id(request, method_cls, options)
    return options, identity, Path(request.out) / "runs" / identity


def run_id(request: RunRequest, method_cls: type[Method], options: MethodOptions) -> str:
    """Encodes the run, OpenMMLab style: method[-labels], backbone, schedule, benchmark, seed, labels."""
    b = request.benchmark
    name = method_cls.name
    # A preset on its own labels is named by the preset alone: its name already says them.
    named_by_preset = (method_cls.preset and request.clinical in (None, method_cls.default_clinical)
                       and not options.bins)
    if options.clinical and not named_by_preset:
        name += "-" + "-".join(f"{c.lower()}{w:g}" for c, w in options.clinical)
        name += f"-bins{options.bins}" if options.bins else ""
    schedule = f"_{b.pretrain.batch_size}xb-{b.pretrain.steps}s" if method_cls.n_views else ""
    protocol = "" if b.evaluate.protocol == "linear" else f"_{b.evaluate.protocol}"  # the default stays implicit
    return f"{name}_{b.backbone}{schedule}_{b.name}_seed{request.seed}_lf{float(request.label_fraction)}{protocol}"


def labelled_train_rows(cohort: Cohort, fraction: float, seed: int) -> pd.DataFrame:
    """The biomarker-labelled training B-scans of a fraction of the training patients.

    Patients are taken in one fixed random order, so every smaller set is nested in every larger
    one and label-efficiency curves compare like with like. The prefix grows, if needed, until
    every biomarker has both classes (its probe needs them)."""
    rows = cohort.part("train")
    if not 0 < fraction <= 1:
        raise OctbenchError(f"label fraction {fraction} must be in (0, 1]")
    if fraction == 1:
        return rows
    order = np.random.default_rng(seed).permutation(np.sort(rows["patient"].unique()))
    for count in range(max(1, math.ceil(fraction * len(order))), len(order) + 1):
        subset = rows[rows["patient"].isin(order[:count])]
        if all(subset[b].nunique() == 2 for b in BIOMARKERS):
            return subset
    return rows


def pretraining_data(cohort: Cohort, method_cls: type[Method], options: MethodOptions,
                     train_rows: pd.DataFrame) -> InMemoryBatches:
    if method_cls.trains_on == "biomarkers":
        rows = train_rows
        return InMemoryBatches(cohort.images_of(rows), clinical_class_matrix(rows, options.clinical, options.bins),
                               cohort.biomarkers_of(rows))
    rows = cohort.part("pool")
    return InMemoryBatches(cohort.images_of(rows), clinical_class_matrix(rows, options.clinical, options.bins))


def evaluate(method: Method, cohort: Cohort, benchmark: Benchmark, seed: int,
             train_rows: pd.DataFrame, work: Path) -> tuple[dict, pd.DataFrame, dict]:
    """Probe the frozen encoder (or fine-tune it); metrics (without run identity), predictions and timings."""
    timing = {}
    start = time.perf_counter()
    rows = {"train": train_rows, "val": cohort.part("val"), "test": cohort.part("test")}
    labels = {split: cohort.biomarkers_of(r) for split, r in rows.items()}
    protocol = benchmark.evaluate.protocol
    if protocol == "finetune":  # trains the backbone itself: there are no frozen features
        images = {split: cohort.images_of(r) for split, r in rows.items()}
        scores, chosen = finetune_scores(method, images, labels, benchmark.pretrain, seed, work)
        timing["finetune_s"] = time.perf_counter() - start
    else:
        features = {split: extract_features(method, cohort.images_of(r)) for split, r in rows.items()}
        timing["features_s"] = time.perf_counter() - start
        start = time.perf_counter()
        if protocol == "linear":
            scores, chosen = linear_probe(features, labels, benchmark.evaluate.probe_c, seed)
        else:
            scores, chosen = PROBES[protocol](features, labels, seed=seed)
        timing["probe_s"] = time.perf_counter() - start
    start = time.perf_counter()
    test = rows["test"]
    y_true = labels["test"]
    # Each biomarker is scored on the test rows that count for it (OLIVES: its balanced test
    # set); a cohort without test_<B> columns counts every test row, as before.
    counted = cohort.counted_test_rows(test)
    auroc = {b: float(roc_auc_score(y_true[counted[:, j], j], scores[counted[:, j], j]))
             for j, b in enumerate(BIOMARKERS)}
    weights = patient_bootstrap_weights(test["patient"].to_numpy(), benchmark.evaluate.bootstrap, seed)
    samples = np.stack([weighted_auroc(y_true[:, j], scores[:, j], weights * counted[:, j])
                        for j in range(len(BIOMARKERS))], axis=1)
    timing["bootstrap_s"] = time.perf_counter() - start
    metrics = {
        "protocol": benchmark.evaluate.protocol,
        "auroc": auroc,
        "mean_auroc": float(np.mean(list(auroc.values()))),
        "auroc_ci": {b: list(percentile_interval(samples[:, j])) for j, b in enumerate(BIOMARKERS)},
        "mean_auroc_ci": list(percentile_interval(samples.mean(axis=1))),
        "probe": chosen,
        "n_train_scans": len(train_rows),
        "n_train_patients": int(train_rows["patient"].nunique()),
        "n_test_scans": len(test),
        "n_test_patients": int(test["patient"].nunique()),
    }
    if not counted.all():
        metrics["n_test_scans_per_biomarker"] = {b: int(counted[:, j].sum()) for j, b in enumerate(BIOMARKERS)}
    keep = counted.ravel()  # row-major: scan by scan, biomarkers within a scan
    predictions = pd.DataFrame({
        "sample_id": np.repeat(test["sample_id"].to_numpy(), len(BIOMARKERS))[keep],
        "patient": np.repeat(test["patient"].to_numpy(), len(BIOMARKERS))[keep],
        "biomarker": np.tile(BIOMARKERS, len(test))[keep],
        "y_true": y_true.ravel()[keep],
        "y_score": scores.ravel()[keep],
    })
    return metrics, predictions, timing


def execute(request: RunRequest) -> tuple[Path, dict, bool]:
    """Run (or reuse) one cell; returns its folder, its metrics and whether it was reused."""
    started = time.perf_counter()
    git_commit()  # read before training: a checkout changed during a long compare is not what ran
    benchmark = request.benchmark
    check_benchmark(benchmark)  # as resolved: command-line overrides included
    method_cls = get_method(request.method, request.methods_dirs)
    cohort = load_cohort(benchmark, request.cache_dir)  # cached after the first run: cheap
    timing = {"cohort_s": time.perf_counter() - started}
    options, identity, final = planned_run(request, method_cls, cohort)
    if (existing := reusable_record(final, request.force)) is not None:
        return final, existing, True
    train_rows = labelled_train_rows(cohort, request.label_fraction, benchmark.cohort.seed)
    check_run_data(benchmark, method_cls, cohort, train_rows)  # before anything is written
    leakage = check_leakage(cohort, request.strict)  # only for a run that will be made
    plan = PlannedRun(method_cls, options, identity, final, train_rows, leakage)
    if not launched_as_rank_zero():  # a process of a distributed launch: rank 0 holds the run's lock
        return make_run(request, plan, cohort, timing, started)
    with exclusive(final.with_name(f".{final.name}.lock"), f"run {identity}", wait=False):
        if (existing := reusable_record(final, request.force)) is not None:  # finished while we waited
            return final, existing, True
        return make_run(request, plan, cohort, timing, started)


@dataclass(frozen=True)
class PlannedRun:
    """What execute has settled about a run before making it."""
    method_cls: type[Method]
    options: MethodOptions
    identity: str
    final: Path
    train_rows: pd.DataFrame
    leakage: dict


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
    backbone, feature_dim = create_backbone(request.benchmark.backbone)
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
                     train_rows: pd.DataFrame, work: Path, final: Path, identity: str, leakage: dict,
                     timing: dict, started: float) -> tuple[Path, dict, bool]:
    benchmark, method_cls = request.benchmark, type(method)
    start = time.perf_counter()
    processes = 0  # none trained: reused pretraining, or a method without any
    donor, weights = pretrained_sibling(final, method_cls)
    if donor is not None:  # the same pretraining, recorded at another label fraction
        method.backbone.load_state_dict(weights)
        shutil.copy(donor / "pretrain_log.csv", work / "pretrain_log.csv")
    elif method_cls.n_views > 0:
        data = pretraining_data(cohort, method_cls, options, train_rows)
        processes = pretrain(method, data, benchmark.pretrain, request.seed, work, request.progress, request.compute)
        if processes is None:
            raise NotRankZero()  # the other DDP processes end here: rank 0 evaluates and writes the record
    timing["pretrain_s"] = time.perf_counter() - start
    metrics, predictions, eval_timing = evaluate(method, cohort, benchmark, request.seed, train_rows, work)
    timing.update(eval_timing)
    timing["total_s"] = time.perf_counter() - started
    metrics = {"run_id": identity, "method": method_cls.name, "benchmark": benchmark.name, "seed": request.seed,
               "label_fraction": request.label_fraction, **metrics,
               "timing": {k: round(v, 2) for k, v in timing.items()}}
    config = {
        "run_id": identity, "method": method_cls.name, "method_paper": method_cls.paper,
        "clinical": [list(pair) for pair in options.clinical], "bins": options.bins, "seed": request.seed,
        "label_fraction": request.label_fraction, "pretraining_reused_from": donor and donor.name,
        "benchmark": benchmark.to_dict(), "splits": cohort.split_patients(),
        "leakage": leakage, "versions": package_versions(), "git_commit": git_commit(),
        "compute": {**dataclasses.asdict(request.compute), "processes": processes},
    }
    write_run_record(work, config, metrics, predictions, method.backbone)
    publish(work, final)
    return final, metrics, False


def pretrained_sibling(final: Path, method_cls: type[Method]) -> tuple[Path | None, dict | None]:
    """A complete run that differs from this one only in label fraction and whose pretraining
    did not see biomarker labels, with its backbone's weights: exactly what this run would train.
    A sibling whose backbone cannot be loaded is named and passed over."""
    if method_cls.n_views == 0 or method_cls.trains_on != "pool" or method_cls.encode is not Method.encode:
        return None, None
    stem = final.name.rsplit("_lf", 1)[0]  # the same pretraining at any fraction or protocol
    for sibling in sorted(final.parent.glob(f"{stem}_lf*")):
        if sibling == final or not (sibling / "metrics.json").exists() or not (sibling / "pretrain_log.csv").exists():
            continue
        try:
            return sibling, load_state_dict(sibling / BACKBONE_FILE)
        except DamagedRecord as error:
            print(f"octbench: warning: not reusing the pretraining of {sibling.name}: {error}; pretraining "
                  "anew", file=sys.stderr)
    return None, None


def with_overrides(benchmark: Benchmark, steps: int | None = None, protocol: str | None = None,
                   **cohort: object) -> Benchmark:
    """`cohort` overrides [cohort] keys whose value is not None (--limit, --tables, --image-root)."""
    cohort = {key: value for key, value in cohort.items() if value is not None}
    if cohort:
        benchmark = dataclasses.replace(benchmark, cohort=dataclasses.replace(benchmark.cohort, **cohort))
    if cohort.get("limit"):  # a cut-down cohort is another benchmark: its runs and tables stay apart
        benchmark = dataclasses.replace(benchmark, name=f"{benchmark.name}-limit{cohort['limit']}")
    if steps is not None:
        benchmark = dataclasses.replace(benchmark, pretrain=dataclasses.replace(benchmark.pretrain, steps=steps))
    if protocol is not None:
        benchmark = dataclasses.replace(benchmark, evaluate=dataclasses.replace(benchmark.evaluate, protocol=protocol))
    return benchmark
