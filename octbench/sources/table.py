"""A user's own cohort as one CSV: an image path column, a patient column, clinical values and
label columns, named in the benchmark's [cohort] section:

    [cohort]
    source = "table"
    table = "scans.csv"
    image_root = "images"                         # relative paths are joined to it
    columns = { path = "file", patient = "subject", CST = "cst_um" }   # where headers differ
    labels = ["IRF", "DRT_ME"]                    # default: the six canonical biomarkers
    clinical = ["age"]                            # further clinical values for --clinical

Label columns are 0/1 (each scored by its AUROC), or, with `[evaluate] task = "multiclass"`, `labels` names
one column of class names (`labels = ["diagnosis"]`: CNV, DME, ...), scored one-vs-rest per class
plus multi-class accuracy (octbench/task.py). A `split` column (train / val / test) is used when
present; otherwise patients are split by [cohort] split. Rows with every label present are
labelled; training rows form the pool.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from octbench import BIOMARKERS
from octbench.benchmark import CohortSpec
from octbench.errors import OctbenchError
from octbench.sources.columns import (
    Problems,
    bad_rows,
    binary_labels,
    clinical_values,
    find_column,
    integer_ids,
    limit_by_patient,
    read_csv,
)
from octbench.sources.olives import joined, path_inside_root, relative_path
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
        raise bad_rows(frame, column, bad, file, f"use one of {', '.join(SPLITS)}")
    return values


def class_name(value) -> str | None:
    if pd.isna(value):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def table_cohort_table(spec: CohortSpec, multiclass: bool = False) -> pd.DataFrame:
    file = Path(spec.table)
    frame = limit_by_patient_raw(read_csv(file), spec, file)
    labels = list(spec.labels or BIOMARKERS)
    if multiclass and len(labels) != 1:
        raise OctbenchError(f"[cohort] labels = {labels}: a multi-class task ([evaluate] task = \"multiclass\") "
                            "reads its classes from one column; name exactly one (labels = [\"diagnosis\"]), or "
                            "set [evaluate] task = \"binary\" for 0/1 label columns")
    problems = Problems()  # every missing column and bad value is reported at once

    def column(name: str, what: str | None = None) -> str | None:
        return problems.check(find_column, frame, (spec.columns.get(name, name),), what or name, file)

    required = {name: column(name) for name in ("path", "patient")}
    optional = {name: problems.check(optional_column, frame, name, spec, file) for name in OPTIONAL}
    clinical = {name: column(name) for name in spec.clinical}
    label_columns = {name: column(name, f"label {name}") for name in labels}
    problems.raise_all()  # the values below need their columns
    relative = frame[required["path"]].map(relative_path)
    folded = problems.check(path_inside_root, frame, required["path"], relative, file, spec.image_root)
    # As in the OLIVES tables: one row per B-scan, which is a file, or a page of a volume file named
    # in the slice column.
    scan = folded if optional["slice"] is None or folded is None else folded.astype(str) + "#" + \
        frame[optional["slice"]].astype(str)
    if scan is not None and scan.duplicated().any():
        problems.add(bad_rows(frame, required["path"], scan.duplicated(), file,
                              "it repeats an earlier row's image; each B-scan must appear once in the table"))
    table = pd.DataFrame({"sample_id": relative, "path": joined(relative, spec.image_root),
                          "patient": problems.check(integer_ids, frame, required["patient"], file)})
    for name, header in optional.items():
        if header is None:
            continue
        if name in ("BCVA", "CST"):
            table[name] = problems.check(clinical_values, frame, header, file, name)
        elif name == "split":
            table[name] = problems.check(split_column, frame, header, file)
        else:
            table[name] = problems.check(integer_ids, frame, header, file)
    for name, header in label_columns.items():
        present = frame[header].notna()
        if multiclass:  # class names, kept as text (a grade read as 35.0 stays "35"); task_of lists them
            table[name] = frame[header].where(present).map(class_name)
            continue
        values = problems.check(binary_labels, frame[present], header, file)
        table[name] = np.nan
        if values is not None:
            table.loc[present, name] = values.astype(float)
    problems.raise_all()
    table["eye"] = table["eye"] if "eye" in table else table["patient"]  # one eye per patient unless told
    for name, header in clinical.items():
        table[name] = frame[header]
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
