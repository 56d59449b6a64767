"""Readers that turn a data source (OLIVES tables, a generic CSV, a folder of images) into the
cohort table of `octbench/cohort.py`, plus an image `path` column; `octbench/images.py` decodes
the images once."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from octbench.benchmark import CohortSpec
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
                                   spec.seed)
    if spec.source == "table":
        from octbench.sources.table import table_cohort_table

        if not spec.table:
            raise OctbenchError("a 'table' cohort needs its CSV: set [cohort] table = \"scans.csv\"")
        return table_cohort_table(spec)
    if spec.source == "folder":
        from octbench.sources.folder import folder_cohort_table

        return folder_cohort_table(spec)
    raise OctbenchError(f"cohort source {spec.source!r} is not read from files")


def source_cohort(spec: CohortSpec, cache_dir: Path):
    """Table plus decoded images (cached under cache_dir/images)."""
    from octbench.images import cohort_with_images

    return cohort_with_images(cohort_table(spec), spec.image_size, Path(cache_dir) / "images")
