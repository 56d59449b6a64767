"""A user's own cohort as one CSV: an image path column, a patient column, clinical values and
label columns, named in the benchmark's [cohort] section:

    [cohort]
    source = "table"
    table = "scans.csv"
    image_root = "images"                         # relative paths are joined to it
    columns = { path = "file", patient = "subject", CST = "cst_um" }   # where headers differ
    labels = ["IRF", "DRT_ME"]                    # default: the six canonical biomarkers
    clinical = ["age"]                            # further clinical values for --clinical

A `split` column (train / val / test) is used when present; otherwise patients are split by
[cohort] split. Rows with every label present are labelled; training rows form the pool.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from octbench import BIOMARKERS
from octbench.benchmark import CohortSpec
from octbench.errors import OctbenchError
from octbench.sources.columns import (
    binary_labels,
    clinical_values,
    csv_line,
    find_column,
    integer_ids,
    limit_by_patient,
    read_csv,
    shown,
)
from octbench.sources.olives import joined, relative_path
from octbench.splits import patient_level_split

OPTIONAL = ("eye", "visit", "slice", "BCVA", "CST", "split")
SPLITS = ("train", "val", "test")


def optional_column(frame: pd.DataFrame, name: str, spec: CohortSpec, file: Path) -> str | None:
    if name in spec.columns:  # named by the user: it must exist
        return find_column(frame, (spec.columns[name],), name, file)
    try:
        return find_column(frame, (name,), name, file)
    except OctbenchError:
        return None


def split_column(frame: pd.DataFrame, column: str, file: Path) -> pd.Series:
    values = frame[column].astype(str).str.strip().str.lower()
    bad = ~values.isin(SPLITS)
    if bad.any():
        position = int(np.flatnonzero(bad.to_numpy())[0])
        raise OctbenchError(f"{file}: line {csv_line(frame, position)} has {column!r} = "
                            f"{shown(frame[column].iloc[position])}; use one of {', '.join(SPLITS)}")
    return values


def table_cohort_table(spec: CohortSpec) -> pd.DataFrame:
    file = Path(spec.table)
    frame = limit_by_patient_raw(read_csv(file), spec, file)
    required = {name: find_column(frame, (spec.columns.get(name, name),), name, file) for name in ("path", "patient")}
    relative = frame[required["path"]].map(relative_path)
    table = pd.DataFrame({"sample_id": relative, "path": joined(relative, spec.image_root),
                          "patient": integer_ids(frame, required["patient"], file)})
    for name in OPTIONAL:
        column = optional_column(frame, name, spec, file)
        if column is None:
            continue
        if name in ("BCVA", "CST"):
            table[name] = clinical_values(frame, column, file)
        elif name == "split":
            table[name] = split_column(frame, column, file)
        else:
            table[name] = integer_ids(frame, column, file)
    table["eye"] = table["eye"] if "eye" in table else table["patient"]  # one eye per patient unless told
    for name in spec.clinical:
        table[name] = frame[find_column(frame, (spec.columns.get(name, name),), name, file)]
    labels = list(spec.labels or BIOMARKERS)
    for name in labels:
        column = find_column(frame, (spec.columns.get(name, name),), f"label {name}", file)
        present = frame[column].notna()
        table[name] = np.nan
        table.loc[present, name] = binary_labels(frame[present], column, file).astype(float)
    if "split" not in table:
        split_of = patient_level_split(table["patient"].to_numpy(), dict(spec.split), spec.seed)
        table["split"] = table["patient"].map(split_of)
    table["labelled"] = table[labels].notna().all(axis=1)
    table["in_pool"] = table["split"] == "train"  # the pool: every training image, labelled or not
    return table


def limit_by_patient_raw(frame: pd.DataFrame, spec: CohortSpec, file: Path) -> pd.DataFrame:
    """--limit before anything else, on the raw rows (by the patient column)."""
    if not spec.limit:
        return frame
    column = find_column(frame, (spec.columns.get("patient", "patient"),), "patient", file)
    limited = limit_by_patient(frame.assign(patient=frame[column]), spec.limit, spec.seed)
    return limited.drop(columns="patient") if column != "patient" else limited
