"""Readers that turn a data source (OLIVES tables, a generic CSV, a folder of images) into the
cohort table of `octbench/cohort.py`, plus an image `path` column; `octbench/images.py` decodes
the images once."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd

from octbench import BIOMARKERS
from octbench.benchmark import Benchmark, CohortSpec, ImageSpec
from octbench.cohort import Cohort
from octbench.errors import OctbenchError
from octbench.task import BIOMARKER_TASK, Task, multiclass_task

FOLDER_CLASS_COLUMN = "class"  # the folder source's column of class-folder names


def cohort_table(spec: CohortSpec, task_kind: str = "binary") -> pd.DataFrame:
    """The cohort table of a file-based source (olives, table, folder), with its `path` column;
    task_kind: how a table's labels are scored ([evaluate] task)."""
    if spec.image_root and not Path(spec.image_root).is_dir():  # one line, not every image listed missing
        raise OctbenchError(f"image root {spec.image_root} does not exist; pass the folder the tables' paths are "
                            "relative to with --olives-root / --image-root, or set [cohort] image_root")
    if spec.source == "olives":
        from octbench.sources.olives import olives_cohort_table

        if not spec.tables:
            raise OctbenchError("the OLIVES cohort needs its label tables: pass --tables FOLDER (the official "
                                "code's final_csvs_1) or set [cohort] tables")
        return olives_cohort_table(spec.tables, spec.image_root, spec.limit or None, spec.validation_fraction,
                                   spec.seed, dict(spec.split))
    if spec.source == "table":
        from octbench.sources.table import table_cohort_table

        if not spec.table:
            raise OctbenchError("a 'table' cohort needs its CSV: set [cohort] table = \"scans.csv\"")
        return table_cohort_table(spec, multiclass=task_kind == "multiclass")
    if spec.source == "folder":
        from octbench.sources.folder import folder_cohort_table

        return folder_cohort_table(spec)
    raise OctbenchError(f"cohort source {spec.source!r} is not read from files")


def task_of(spec: CohortSpec, table: pd.DataFrame, task_kind: str = "binary") -> Task:
    """What the source's expert labels are: a folder's classes, a table's class column or label
    columns, else OLIVES' six biomarkers."""
    if spec.source == "folder":
        return multiclass_task(table, FOLDER_CLASS_COLUMN)
    if spec.source == "table" and task_kind == "multiclass":
        return multiclass_task(table, spec.labels[0])
    if spec.source == "table" and spec.labels:
        return Task(tuple(spec.labels))
    return BIOMARKER_TASK


def source_cohort(spec: CohortSpec, cache_dir: Path, images: ImageSpec | None = None, task_kind: str = "binary"):
    """Table plus decoded images (cached under cache_dir/images), made by the [images] rules."""
    from octbench.images import cohort_with_images
    from octbench.pixels import PixelRule

    rule = PixelRule.of(spec.image_size, images or ImageSpec())
    cohort = cohort_with_images(cohort_table(spec, task_kind), rule, Path(cache_dir) / "images")
    return dataclasses.replace(cohort, task=task_of(spec, cohort.table, task_kind))


def check_labels_scorable(cohort: Cohort, where: str) -> None:
    """Every label (every class) has both values among the test B-scans that count for it: its
    AUROC is defined. Checked when the cohort loads, before any training."""
    test = cohort.part("test")
    labels, counted = cohort.labels_of(test), cohort.counted_test_rows(test)
    what = "class" if cohort.task.multiclass else "label"
    for j, name in enumerate(cohort.task.labels):
        values = set(labels[counted[:, j], j].tolist())
        if len(values) < 2:
            state = "all positive" if values == {1} else "none positive"
            raise OctbenchError(f"{where}: {what} {name} has a single class among the {int(counted[:, j].sum())} "
                                f"test B-scans that count for it ({state}): its AUROC is undefined; use a larger "
                                "--limit, give the test split more patients or check its balanced test set")


def load_cohort(benchmark: Benchmark, cache_dir: Path | None) -> Cohort:
    """The benchmark's cohort, from its source: simulated, or read from files (olives, table, folder)."""
    if benchmark.cohort.source == "simulated":
        from octbench.simulate.cohort import simulated_cohort

        return simulated_cohort(benchmark.cohort, cache_dir)
    from octbench.simulate.cohort import default_cache_dir

    cohort = source_cohort(benchmark.cohort, cache_dir or default_cache_dir(), benchmark.images,
                           benchmark.evaluate.task)
    missing = [c for c in cohort.task.label_columns() if c not in cohort.table.columns]
    if missing:
        raise OctbenchError(f"{benchmark.path}: the cohort lacks label columns {', '.join(missing)}; name the "
                            f"columns to score in [cohort] labels (default: the six biomarkers {', '.join(BIOMARKERS)})"
                            " and map differing headers with [cohort] columns")
    check_labels_scorable(cohort, str(benchmark.path))
    return cohort
