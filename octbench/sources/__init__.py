"""Readers that turn a data source (OLIVES tables, a generic CSV, a folder of images) into the
cohort table of `octbench/cohort.py`, plus an image `path` column; `octbench/images.py` decodes
the images once."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from octbench import BIOMARKERS
from octbench.benchmark import Benchmark, CohortSpec, ImageSpec
from octbench.cohort import Cohort
from octbench.errors import OctbenchError


def cohort_table(spec: CohortSpec) -> pd.DataFrame:
    """The cohort table of a file-based source (olives, table, folder), with its `path` column."""
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
        return table_cohort_table(spec)
    if spec.source == "folder":
        from octbench.sources.folder import folder_cohort_table

        return folder_cohort_table(spec)
    raise OctbenchError(f"cohort source {spec.source!r} is not read from files")


def source_cohort(spec: CohortSpec, cache_dir: Path, images: ImageSpec | None = None):
    """Table plus decoded images (cached under cache_dir/images), made by the [images] rules."""
    from octbench.images import cohort_with_images
    from octbench.pixels import PixelRule

    rule = PixelRule.of(spec.image_size, images or ImageSpec())
    return cohort_with_images(cohort_table(spec), rule, Path(cache_dir) / "images")


def load_cohort(benchmark: Benchmark, cache_dir: Path | None) -> Cohort:
    """The benchmark's cohort, from its source: simulated, or read from files (olives, table, folder)."""
    if benchmark.cohort.source == "simulated":
        from octbench.simulate.cohort import simulated_cohort

        return simulated_cohort(benchmark.cohort, cache_dir)
    from octbench.simulate.cohort import default_cache_dir

    cohort = source_cohort(benchmark.cohort, cache_dir or default_cache_dir(), benchmark.images)
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
