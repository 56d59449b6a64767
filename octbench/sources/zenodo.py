"""The Zenodo release of OLIVES as a cohort: its biomarker table and, when present, its clinical
table, with no split files. octbench makes the split itself, by patient and stratified by the
biomarkers, so that each part holds about the same share of every biomarker.

    Biomarker_Clinical_Data_Images.csv   9,408 labelled B-scans: path, scan, 16 biomarkers, eye,
                                         BCVA, CST, patient (read by column name)
    Clinical_Data_Images.csv             optional: BCVA, CST, eye and patient of ~78,000 B-scans,
                                         the pretraining pool (the release's .xlsx saved as CSV)

Either may sit in the tables folder itself or under `ml_centric_labels/` or `full_labels/`, as in
the release. Without the clinical table the pool is the labelled training B-scans' clinical
values. The patient -> split assignment is recorded in each run's config.json (`splits`), and the
leakage report covers it as for the official splits.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from octbench import BIOMARKERS
from octbench.errors import OctbenchError
from octbench.sources.columns import limit_by_patient

BIOMARKER_TABLE = "Biomarker_Clinical_Data_Images.csv"
CLINICAL_TABLE = "Clinical_Data_Images.csv"
SUBFOLDERS = (".", "ml_centric_labels", "full_labels")
FOLDS = 20  # the split is made of 5% folds of patients


def find_table(tables: Path, name: str) -> Path | None:
    for folder in SUBFOLDERS:
        if (tables / folder / name).is_file():
            return tables / folder / name
    return None


def is_zenodo_layout(tables: Path) -> bool:
    return find_table(tables, BIOMARKER_TABLE) is not None


def stratified_patient_split(labelled: pd.DataFrame, split: dict, seed: int) -> dict:
    """patient -> train / val / test. Patients fall into FOLDS folds by scikit-learn's
    StratifiedGroupKFold, stratified by each B-scan's combination of the six biomarkers; whole
    folds then go to test, then validation, until each part reaches its share of B-scans."""
    codes = (labelled[list(BIOMARKERS)].to_numpy(dtype=int) << np.arange(len(BIOMARKERS))).sum(axis=1)
    patients = labelled["patient"].to_numpy()
    n_folds = min(FOLDS, len(np.unique(patients)))
    folds = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    assignment, filled = {}, {"test": 0, "val": 0}
    with warnings.catch_warnings():  # rare biomarker combinations cannot reach every fold: expected
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        made = [fold for _, fold in folds.split(np.zeros(len(codes)), codes, patients)]
    # Folds in an order of the seed's, so that another seed gives another split.
    for fold in (made[i] for i in np.random.default_rng(seed).permutation(len(made))):
        part = next((p for p in ("test", "val") if filled[p] < split[p] * len(codes)), "train")
        if part != "train":
            filled[part] += len(fold)
        assignment.update({patient: part for patient in np.unique(patients[fold])})
    return assignment


def zenodo_cohort_table(tables: Path, image_root, limit: int | None, split: dict, seed: int) -> pd.DataFrame:
    """The cohort table (see octbench/cohort.py) of the Zenodo release, plus `path`."""
    from octbench.sources.olives import read_table

    labelled = limit_by_patient(read_table(find_table(tables, BIOMARKER_TABLE), image_root), limit, seed)
    split_of = stratified_patient_split(labelled, split, seed)
    missing = {"train", "val", "test"} - set(split_of.values())
    if missing:
        raise OctbenchError(f"{find_table(tables, BIOMARKER_TABLE)}: {len(split_of)} patients are too few for a "
                            f"train / val / test split (no {', '.join(sorted(missing))} patients); use more rows "
                            "(a larger --limit) or other [cohort] split fractions")
    labelled["split"] = labelled["patient"].map(split_of)
    labelled = labelled.assign(labelled=True)
    clinical_file = find_table(tables, CLINICAL_TABLE)
    if clinical_file is None:
        labelled["in_pool"] = labelled["split"] == "train"
        return labelled
    pool = limit_by_patient(read_table(clinical_file, image_root, biomarkers=False), limit, seed)
    # The pool: clinical B-scans of training patients only, so nothing of a validation or test
    # patient is seen in pretraining; patients without biomarker labels have no split and stay out.
    pool = pool[pool["patient"].map(split_of).eq("train")]
    labelled["in_pool"] = labelled["sample_id"].isin(pool["sample_id"]) | (labelled["split"] == "train")
    pool_only = pool[~pool["sample_id"].isin(labelled["sample_id"])].assign(labelled=False, in_pool=True,
                                                                           split="train")
    return pd.concat([labelled, pool_only], ignore_index=True)
