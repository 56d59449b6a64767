"""Patient-level splits and the leakage report.

Every B-scan of a patient lands in one split: B-scans of one patient are near copies of each other
(same eye, same visit), so a scan-level split would let a probe recognise patients instead of
biomarkers.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def patient_level_split(patients: np.ndarray, fractions: dict[str, float], seed: int) -> dict:
    """Map each distinct patient to a split name, shuffled by `seed`, in the given fractions."""
    unique = np.unique(patients)
    order = np.random.default_rng(seed).permutation(unique)
    names = list(fractions)
    shares = np.array([fractions[n] for n in names], dtype=float)
    bounds = np.round(np.cumsum(shares / shares.sum()) * len(order)).astype(int)
    assignment = {}
    start = 0
    for name, stop in zip(names, bounds):
        assignment.update({p.item(): name for p in order[start:stop]})
        start = stop
    return assignment


def leakage_report(table: pd.DataFrame) -> dict:
    """Patients whose B-scans fall in more than one split (should be none)."""
    splits_per_patient = table.groupby("patient")["split"].nunique()
    crossing = sorted(int(p) for p in splits_per_patient[splits_per_patient > 1].index)
    return {"patients_in_several_splits": crossing}
