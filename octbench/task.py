"""What a cohort's expert labels are, and so what the evaluator scores.

    binary      several 0/1 label columns (OLIVES' six biomarkers, a user's own): one AUROC per
                label and their mean
    multiclass  one class column (OCT2017's CNV / DME / DRUSEN / NORMAL, a DRSS grade): scored the
                MedMNIST way, one-vs-rest AUROC per class, their macro mean, and the accuracy of a
                multi-class probe

Probes, metrics and predictions see both as an (n, k) 0/1 matrix with one column per label or class
(one-hot for a multi-class task), so per-label AUROCs, intervals and leaderboards are computed the
same way; only the probes' fitting and the accuracy differ.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from octbench import BIOMARKERS


@dataclass(frozen=True)
class Task:
    labels: tuple[str, ...]  # binary: the label columns; multiclass: the classes, sorted
    kind: str = "binary"
    column: str | None = None  # multiclass: the table column holding each B-scan's class

    @property
    def multiclass(self) -> bool:
        return self.kind == "multiclass"

    def label_columns(self) -> list[str]:
        """The table columns the labels are read from."""
        return [self.column] if self.multiclass else list(self.labels)

    def matrix(self, rows: pd.DataFrame) -> np.ndarray:
        """(n, k) 0/1 labels of `rows`: the label columns, or the class column one-hot."""
        if self.multiclass:
            classes = rows[self.column].astype(str).to_numpy()
            return (classes[:, None] == np.array(self.labels)[None, :]).astype(np.int64)
        return rows[list(self.labels)].to_numpy(dtype=np.int64)

    def record(self) -> dict:
        """As metrics.json keeps it."""
        return {"kind": self.kind, "labels": list(self.labels), **({"column": self.column} if self.column else {})}


BIOMARKER_TASK = Task(BIOMARKERS)


def multiclass_task(table: pd.DataFrame, column: str) -> Task:
    """The classes of `column` among its labelled rows, sorted."""
    classes = sorted(str(c) for c in table[column].dropna().unique())
    return Task(tuple(classes), "multiclass", column)
