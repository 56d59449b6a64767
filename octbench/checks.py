"""What the data allows: checks of a benchmark's settings against its loaded cohort.

The benchmark file's own keys are checked when it is read (octbench/benchmark.py); these checks
need the cohort, and run once it is loaded and the run's training rows are chosen, before any
training, so a setting the data cannot meet fails in seconds instead of after pretraining.
"""

from __future__ import annotations

import pandas as pd

from octbench.benchmark import Benchmark
from octbench.cohort import Cohort
from octbench.errors import OctbenchError

# What each split's two classes are needed for. The test split's (AUROC, on the rows that count
# for each label) is checked where the cohort is loaded (octbench/sources/__init__.py).
NEEDS_BOTH_CLASSES = {"train": "its probe is fitted on them", "val": "the probe is chosen by validation AUROC"}


def check_splits(cohort: Cohort, train_rows: pd.DataFrame, where: str) -> None:
    """Train (the labelled rows this run probes on), val and test have patients, and train and val
    hold both values of every label (for a multi-class task: B-scans of every class and of others)."""
    rows = {"train": train_rows, "val": cohort.part("val"), "test": cohort.part("test")}
    for split, part in rows.items():
        if part.empty:
            raise OctbenchError(f"{where}: the {split} split has no expert-labelled B-scans; give it patients "
                                "([cohort] split, patients or the *_scans counts, or a larger --limit)")
    for split, why in NEEDS_BOTH_CLASSES.items():
        part = rows[split]
        labels = cohort.labels_of(part)
        what = "class" if cohort.task.multiclass else "biomarker"
        for j, name in enumerate(cohort.task.labels):
            values = sorted(set(labels[:, j].tolist()))
            if len(values) < 2:
                only = ", ".join(f"{v:g}" for v in values) or "none"
                state = (f"holds {'no' if values == [0] else 'every one'} of the" if cohort.task.multiclass
                         else f"has a single class ({only}) among the")
                raise OctbenchError(
                    f"{where}: {what} {name} {state} {len(part)} {split} "
                    f"B-scans of {part['patient'].nunique()} patients, and {why}; give the {split} split more "
                    "patients ([cohort] split, or a larger --limit) or balance the cohort's labels")


def pretraining_rows(cohort: Cohort, trains_on: str, train_rows: pd.DataFrame) -> tuple[int, str]:
    """How many B-scans a method pretrains on, and what they are."""
    if trains_on == "biomarkers":
        return len(train_rows), "biomarker-labelled training B-scans"
    return len(cohort.part("pool")), "B-scans of the pretraining pool"


def check_batches(benchmark: Benchmark, method_cls, cohort: Cohort, train_rows: pd.DataFrame) -> None:
    """The pretraining data is not empty and holds at least one global batch; so do the training
    rows the finetune protocol trains on with the same schedule. A batch is never cut down to fit:
    the run id and the learning-rate rule say batch_size."""
    where = f"{benchmark.path or benchmark.name} [pretrain]"
    batch = benchmark.pretrain.batch_size
    trainings = []
    if method_cls.n_views > 0:
        trainings.append((method_cls.name, *pretraining_rows(cohort, method_cls.trains_on, train_rows)))
    if benchmark.evaluate.protocol == "finetune":
        trainings.append(("the finetune protocol", len(train_rows), "biomarker-labelled training B-scans"))
    for who, size, what in trainings:
        if size == 0:
            raise OctbenchError(f"{where}: {who} trains on the {what}, and this cohort has none")
        if batch > size:
            raise OctbenchError(f"{where}: batch_size {batch} is larger than the {size} {what} {who} trains on; "
                                f"set batch_size to at most {size}, or use a larger cohort (a larger --limit, "
                                "if one is set)")


def check_run_data(benchmark: Benchmark, method_cls, cohort: Cohort, train_rows: pd.DataFrame) -> None:
    """Everything a run's data must allow, before anything trains."""
    check_splits(cohort, train_rows, benchmark.path or benchmark.name)
    check_batches(benchmark, method_cls, cohort, train_rows)
