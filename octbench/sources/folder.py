"""A folder of images with one sub-folder per class, as in OCT2017 (Kermany et al. 2018):
CNV/, DME/, DRUSEN/, NORMAL/, optionally under train/ and test/ (and val/).

The class folders are one multi-class task (octbench/task.py): each B-scan's class is its folder's
name, in the table's `class` column, scored one-vs-rest per class plus multi-class accuracy. The
patient is the first run of digits in a file name (Kermany: `CNV-1016042-1.jpeg` is patient
1016042), so splits stay patient-level; without train/ and test/ folders, patients are split by
[cohort] split. The folder carries no clinical values: eye is the patient, and BCVA / CST are
absent. A multi-page TIFF is a volume: each page becomes a B-scan of the file's class.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from octbench.benchmark import CohortSpec
from octbench.errors import OctbenchError
from octbench.sources.columns import limit_by_patient
from octbench.splits import patient_level_split

# Image files, and vendor volumes read through eyepy (octbench/vendor.py; not HEYEX XML, whose
# export folder holds its B-scans as image files beside the XML).
IMAGE_SUFFIXES = {".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp", ".vol", ".e2e", ".fda", ".mat"}
SPLIT_FOLDERS = ("train", "val", "test")
PATIENT_PATTERN = re.compile(r"(\d+)")


def class_folders(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def patient_of(file: Path) -> int:
    match = PATIENT_PATTERN.search(file.stem)
    if match is None:
        raise OctbenchError(f"{file}: no patient number in its name; name images <CLASS>-<patient>-<n>.<ext> "
                            "as OCT2017 does (e.g. CNV-1016042-1.jpeg)")
    return int(match.group(1))


def scan_folder(root: Path, split: str | None) -> list[dict]:
    rows = []
    for folder in class_folders(root):
        for file in sorted(folder.iterdir()):
            if file.suffix.lower() in IMAGE_SUFFIXES:
                rows.append({"sample_id": str(file.relative_to(root.parent if split else root)),
                             "path": str(file), "patient": patient_of(file), "class": folder.name, "split": split})
    return rows


def folder_cohort_table(spec: CohortSpec) -> pd.DataFrame:
    root = Path(spec.image_root)
    if not root.is_dir():
        raise OctbenchError(f"image folder {root} does not exist; set [cohort] image_root or --image-root")
    splits = [root / name for name in SPLIT_FOLDERS if (root / name).is_dir()]
    rows = [row for folder in splits for row in scan_folder(folder, folder.name)] if splits else scan_folder(root, None)
    if not rows:
        raise OctbenchError(f"{root}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in class sub-folders "
                            "(e.g. CNV/, DME/, DRUSEN/, NORMAL/)")
    table = limit_by_patient(pd.DataFrame(rows), spec.limit or None, spec.seed).reset_index(drop=True)
    classes = sorted(table["class"].unique())
    if len(classes) < 2:
        raise OctbenchError(f"{root}: one class folder ({classes[0]}) only; a classification task needs two or more")
    if not splits:
        split_of = patient_level_split(table["patient"].to_numpy(), dict(spec.split), spec.seed)
        table["split"] = table["patient"].map(split_of)
    elif "val" not in set(table["split"]):  # as for OLIVES: validation patients come from training
        train_patients = np.unique(table.loc[table["split"] == "train", "patient"])
        carve = patient_level_split(train_patients, {"train": 1 - spec.validation_fraction,
                                                     "val": spec.validation_fraction}, spec.seed)
        val = [p for p, s in carve.items() if s == "val"]
        table.loc[(table["split"] == "train") & table["patient"].isin(val), "split"] = "val"
    table["eye"] = table["patient"]
    table["labelled"] = True
    table["in_pool"] = table["split"] == "train"
    return table
