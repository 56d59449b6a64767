"""The cohort: one table row per B-scan plus the decoded images, whatever the source.

Table columns: sample_id, patient, eye, visit, slice, BCVA, CST, the task's label columns (the six
biomarkers by default; a class column for a multi-class task, octbench/task.py) on labelled rows,
split (train / val / test, by patient), in_pool (clinically labelled pretraining pool), labelled
(carries expert biomarker labels) and image (row index into `images`). Cohorts read from files add
path (the image file), frame (its page, for a volume file), content_hash (the B-scan's sha256)
and, where a test set scores each biomarker on its own subset (OLIVES' balanced test sets),
boolean test_<BIOMARKER> columns.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from octbench.task import BIOMARKER_TASK, Task

PARTS = ("pool", "train", "val", "test")
# Bookkeeping columns; every other non-biomarker column is a clinical value --clinical may name.
STRUCTURAL_COLUMNS = ("sample_id", "image", "split", "in_pool", "labelled", "path", "frame", "content_hash")
TEST_MASK_PREFIX = "test_"  # test_<BIOMARKER>: the test rows that count for that biomarker


@dataclass
class Cohort:
    table: pd.DataFrame
    images: np.ndarray  # (n_images, height, width) uint8, often memory-mapped
    # What the table alone does not say about the images: the simulated cohort's cache key (its
    # parameters and the simulator's source). File cohorts carry each image's sha256 in the table.
    source_key: str = ""
    task: Task = BIOMARKER_TASK  # what the expert labels are and how they are scored
    _fingerprint: str | None = field(default=None, init=False, repr=False)

    def fingerprint(self) -> str:
        """A hash of what the cohort holds: every row's ids, split, clinical values and labels, each
        image's content hash (file sources) or the simulator's key. Not where the files are."""
        if self._fingerprint is None:
            columns = [c for c in self.table.columns if c not in ("path", "image")]
            digest = hashlib.sha256(self.source_key.encode())
            digest.update(self.table[columns].to_csv(index=False).encode())
            self._fingerprint = digest.hexdigest()[:16]
        return self._fingerprint

    def part(self, name: str) -> pd.DataFrame:
        """Rows of one part: the pretraining pool, or the biomarker-labelled train / val / test."""
        if name == "pool":
            return self.table[self.table["in_pool"]]
        if name not in PARTS:
            raise ValueError(f"unknown cohort part {name!r}; expected one of {PARTS}")
        return self.table[(self.table["split"] == name) & self.table["labelled"]]

    def clinical_columns(self) -> list[str]:
        """Columns that can serve as contrastive classes: BCVA, CST, eye, patient, and any other
        value the cohort carries per B-scan (visit, slice, a user's age or DRSS column)."""
        labels = set(self.task.label_columns())
        return [c for c in self.table.columns if c not in STRUCTURAL_COLUMNS and c not in labels
                and not str(c).startswith(TEST_MASK_PREFIX)]

    def images_of(self, rows: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.images[rows["image"].to_numpy()])

    def labels_of(self, rows: pd.DataFrame) -> np.ndarray:
        """(n, k) 0/1 expert labels, one column per label of the task (per class: one-hot)."""
        return self.task.matrix(rows)

    def counted_test_rows(self, rows: pd.DataFrame) -> np.ndarray:
        """(n_rows, n_labels) bool: whether each test row counts for each label; all True for a
        label without a test_<LABEL> column."""
        return np.stack([rows[f"{TEST_MASK_PREFIX}{b}"].to_numpy(dtype=bool) if f"{TEST_MASK_PREFIX}{b}" in rows
                         else np.ones(len(rows), dtype=bool) for b in self.task.labels], axis=1)

    def split_patients(self) -> dict[str, list]:
        """Patients of each split, for the run record."""
        labelled = self.table
        return {split: sorted(int(p) for p in labelled.loc[labelled["split"] == split, "patient"].unique())
                for split in ("train", "val", "test")}
