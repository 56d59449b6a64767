"""OLIVES (Prime and TREX-DME trials) as a cohort: the label tables of the seed paper's official
code (patient split 1, `final_csvs_1`) joined to B-scans under an image root.

Three table formats are read, always by column name, never by position:
  - the official biomarker tables (`Path (Trial/Arm/Folder/Visit/Eye/Image Name)`, `Scan (n/49)`,
    20 biomarker columns, `Eye_ID, BCVA, CST, Patient_ID`);
  - the Zenodo release table (the same idea with 16 biomarker columns, in its own order; a folder
    holding it and no split files is split by octbench, see octbench/sources/zenodo.py);
  - the clinical pretraining pool (`File_Path, BCVA, CST, Eye_ID, Patient_ID`).

Layout expected under the tables folder (as in the official repository):
  datasets_combined/prime_trex_compressed.csv          pretraining pool, clinical labels only
  biomarker_csv_files/complete_biomarker_training.csv  biomarker-labelled training B-scans
  biomarker_csv_files/complete_biomarker_test.csv      test B-scans
  test_biomarker_sets/test_{IRHRF,PAVF,FAVF,fluirf,DRT_ME}.csv  balanced (500/500) test subsets
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

import numpy as np
import pandas as pd

from octbench import BIOMARKERS
from octbench.errors import OctbenchError
from octbench.sources.columns import (
    Problems,
    bad_rows,
    binary_labels,
    clinical_values,
    csv_line,
    find_column,
    integer_ids,
    limit_by_patient,
    read_csv,
)
from octbench.splits import patient_level_split

POOL_TABLE = Path("datasets_combined/prime_trex_compressed.csv")
TRAIN_TABLE = Path("biomarker_csv_files/complete_biomarker_training.csv")
TEST_TABLE = Path("biomarker_csv_files/complete_biomarker_test.csv")
BALANCED_TESTS = Path("test_biomarker_sets")
# The seed paper scores each biomarker on its own balanced test subset; VD has none, so all of
# the test set counts for it.
BALANCED_TEST_FILES = {"IRHRF": "test_IRHRF.csv", "PAVF": "test_PAVF.csv", "FAVF": "test_FAVF.csv",
                       "IRF": "test_fluirf.csv", "DRT_ME": "test_DRT_ME.csv"}

# Known spellings of each column across OLIVES releases; matched after normalising case, spaces
# and punctuation (so `CST ` with a trailing space, as in test_fluirf.csv, is CST).
SPELLINGS = {
    "path": ("Path (Trial/Arm/Folder/Visit/Eye/Image Name)", "File_Path", "Path", "Image_Path"),
    "slice": ("Scan (n/49)", "Scan"),
    "BCVA": ("BCVA",),
    "CST": ("CST",),
    "eye": ("Eye_ID", "Eye"),
    "patient": ("Patient_ID", "Patient"),
    "IRHRF": ("IR HRF", "IRHRF", "Intraretinal hyperreflective foci"),
    "PAVF": ("Partially attached vitreous face", "PAVF"),
    "FAVF": ("Fully attached vitreous face", "FAVF"),
    "IRF": ("Fluid (IRF)", "IRF", "Intraretinal fluid"),
    "DRT_ME": ("DRT/ME", "DRT_ME", "Diffuse retinal thickening or macular edema"),
    "VD": ("Vitreous debris", "VD"),
}
# Trial/[Arm/]Folder/Visit/Eye/Image: the visit folder is W<weeks> (Prime) or V<n> (TREX).
PATH_PATTERN = re.compile(r"/(?P<visit>[A-Za-z]*)(?P<visit_n>\d+)/(?P<laterality>OD|OS)/[^/]*?(?P<number>\d+)\.\w+$")
VALIDATION_SEED = 0


def relative_path(raw: str) -> str:
    return str(raw).strip().replace("\\", "/").lstrip("/")


def path_facts(frame: pd.DataFrame, column: str, file: Path) -> pd.DataFrame:
    """Visit number, laterality and the image's own slice number, read from each OLIVES path."""
    parts = ("/" + frame[column].map(relative_path)).str.extract(PATH_PATTERN)
    bad = parts["visit_n"].isna()
    if bad.any():
        position = int(np.flatnonzero(bad.to_numpy())[0])
        raise OctbenchError(f"{file}: line {csv_line(frame, position)}: path {frame[column].iloc[position]!r} does "
                            "not look like Trial/[Arm/]Folder/Visit/Eye/Image.tif (e.g. "
                            "/Prime_FULL/02-010/W0/OD/0.tif); is this an OLIVES table?")
    # Prime counts weeks (W52), TREX visits (V1): the number orders visits within an eye.
    return pd.DataFrame({"visit": parts["visit_n"].astype(np.int64), "laterality": parts["laterality"],
                         "file_slice": parts["number"].astype(np.int64)}, index=frame.index)


def path_inside_root(frame: pd.DataFrame, column: str, relative: pd.Series, file: Path,
                     image_root: str | Path | None) -> pd.Series:
    """Each relative path with its `.` and `..` folded (`a/../b` is `b`), refusing those that lead
    out of the folder they are joined to. The check is on the text, not the disk: an image root
    whose folders link elsewhere is the user's choice, a `../` in a table row is not."""
    folded = relative.map(posixpath.normpath)
    leaves = (folded == "..") | folded.str.startswith("../")
    if leaves.any():
        root = f"the image root {image_root}" if image_root else f"the current folder {Path.cwd()}"
        raise bad_rows(frame, column, leaves, file, f"it leads outside {root}; every image path must stay under "
                                                    "it, so remove the '..' or fix the image root")
    return folded


def joined(relative: pd.Series, image_root: str | Path | None) -> pd.Series:
    if not image_root:
        return relative
    root = Path(image_root)
    return relative.map(lambda r: str(root / r))


def read_table(file: Path, image_root: str | Path | None = None, biomarkers: bool = True) -> pd.DataFrame:
    """One OLIVES table (any of the three formats) as cohort columns: sample_id (the relative
    image path), path, patient, eye, laterality, visit, slice, BCVA, CST and, when `biomarkers`,
    the six canonical biomarkers."""
    file = Path(file)
    frame = read_csv(file)
    problems = Problems()
    keys = ("path", "BCVA", "CST", "eye", "patient", *(("slice", *BIOMARKERS) if biomarkers else ()))
    found = {key: problems.check(find_column, frame, SPELLINGS[key], key, file) for key in keys}
    problems.raise_all()  # the values below need their columns
    relative = frame[found["path"]].map(relative_path)
    facts = problems.check(path_facts, frame, found["path"], file)
    checked = {key: problems.check(clinical_values, frame, found[key], file, key) for key in ("BCVA", "CST")}
    checked |= {key: problems.check(integer_ids, frame, found[key], file)
                for key in ("patient", "eye", *(("slice",) if biomarkers else ()))}
    checked |= {key: problems.check(binary_labels, frame, found[key], file) for key in keys if key in BIOMARKERS}
    folded = problems.check(path_inside_root, frame, found["path"], relative, file, image_root)
    duplicated = (relative if folded is None else folded).duplicated()
    if duplicated.any():
        problems.add(bad_rows(frame, found["path"], duplicated, file,
                              "it repeats an earlier row's image; each B-scan must appear once per table"))
    problems.raise_all()
    table = pd.DataFrame({
        "sample_id": relative,
        "path": joined(relative, image_root),
        "patient": checked["patient"],
        "eye": checked["eye"],
        "laterality": facts["laterality"],
        "visit": facts["visit"],
        # `Scan (n/49)` counts from 1; slices count from 0 as the image numbers do (0.tif is scan 1).
        "slice": checked["slice"] - 1 if biomarkers else facts["file_slice"],
        "BCVA": checked["BCVA"],
        "CST": checked["CST"],
    })
    for key in BIOMARKERS if biomarkers else ():
        table[key] = checked[key]
    return table


def validation_patients(train: pd.DataFrame, test: pd.DataFrame, fraction: float, seed: int) -> set:
    """Training patients set aside for validation. The seed paper has no validation split (it
    reports the test AUROC of its final epoch); octbench selects probe hyperparameters on
    validation, so it carves one out of the training patients, by patient. Patients with an eye
    in the test set (split 1 separates eyes, not patients) stay in training, so the leakage report
    names them as crossing train/test and nothing else."""
    if not 0 < fraction < 1:
        raise OctbenchError(f"[cohort] validation_fraction = {fraction} must be between 0 and 1")
    candidates = np.array(sorted(set(train["patient"]) - set(test["patient"])))
    assignment = patient_level_split(candidates, {"train": 1.0 - fraction, "val": fraction}, seed)
    return {p for p, split in assignment.items() if split == "val"}


def balanced_test_masks(test: pd.DataFrame, tables: Path, limited: bool) -> pd.DataFrame:
    """`test_<B>`: whether a test B-scan belongs to biomarker B's balanced test subset."""
    masks = pd.DataFrame(index=test.index)
    for biomarker in BIOMARKERS:
        name = BALANCED_TEST_FILES.get(biomarker)
        if name is None:
            masks[f"test_{biomarker}"] = True
            continue
        file = tables / BALANCED_TESTS / name
        members = read_table(file)["sample_id"]
        outside = ~members.isin(test["sample_id"])
        if outside.any() and not limited:  # a cut-down test set holds only part of each subset
            raise OctbenchError(f"{file}: {int(outside.sum())} B-scans (first {members[outside].iloc[0]!r}) are "
                                f"not in {TEST_TABLE}; the balanced test sets must come from the same split")
        masks[f"test_{biomarker}"] = test["sample_id"].isin(members)
    return masks


def olives_cohort_table(tables: str | Path, image_root: str | Path | None = None, limit: int | None = None,
                        validation_fraction: float = 0.15, seed: int = VALIDATION_SEED,
                        split: dict | None = None) -> pd.DataFrame:
    """The cohort table of the seed paper's protocol (see octbench/cohort.py), plus `path` and the
    `test_<B>` masks. `limit` keeps at most that many rows of each table, taken across patients.
    A folder in the Zenodo release's layout (no split files) is split by octbench, by patient and
    stratified by the biomarkers, in the fractions `split` (octbench/sources/zenodo.py)."""
    tables = Path(tables)
    if not tables.is_dir():
        raise OctbenchError(f"OLIVES tables folder {tables} does not exist; pass --tables FOLDER (the "
                            "official code's final_csvs_1, or the Zenodo release's label folder) or set "
                            "[cohort] tables")
    from octbench.sources import zenodo

    if not (tables / TRAIN_TABLE).is_file() and zenodo.is_zenodo_layout(tables):
        return zenodo.zenodo_cohort_table(tables, image_root, limit,
                                          split or {"train": 0.5, "val": 0.15, "test": 0.35}, seed)
    problems = Problems()  # every table is checked before any problem is reported
    pool = problems.check(read_table, tables / POOL_TABLE, image_root, False)
    train = problems.check(read_table, tables / TRAIN_TABLE, image_root)
    test = problems.check(read_table, tables / TEST_TABLE, image_root)
    problems.raise_all()
    pool, train, test = (limit_by_patient(t, limit, seed) for t in (pool, train, test))

    val = validation_patients(train, test, validation_fraction, seed)
    train["split"] = np.where(train["patient"].isin(val), "val", "train")
    test["split"] = "test"
    if (tables / BALANCED_TESTS).is_dir():  # absent: every test B-scan counts for every biomarker
        test = test.join(balanced_test_masks(test, tables, limited=limit is not None))
    labelled = pd.concat([train, test], ignore_index=True).assign(labelled=True)
    labelled["in_pool"] = labelled["sample_id"].isin(pool["sample_id"])
    # A labelled B-scan that is also in the pool is one row flagged both, as in the simulated
    # cohort: the pool is every image of the training eyes.
    pool_only = pool[~pool["sample_id"].isin(labelled["sample_id"])].assign(labelled=False, in_pool=True)
    # Validation patients keep their pool B-scans: the pool stays the paper's, and pretraining
    # sees clinical labels only, never the biomarkers the probe is selected on.
    pool_only["split"] = np.where(pool_only["patient"].isin(val), "val", "train")
    table = pd.concat([labelled, pool_only], ignore_index=True)
    for column in (c for c in table.columns if c.startswith("test_")):
        table[column] = table[column].fillna(False).astype(bool)
    return table
