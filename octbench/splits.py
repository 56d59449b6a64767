"""Patient-level splits and the leakage report.

Every B-scan of a patient lands in one split: B-scans of one patient are near copies of each other
(same eye, same visit), so a scan-level split would let a probe recognise patients instead of
biomarkers.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

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


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def content_hashes(table: pd.DataFrame) -> pd.Series | None:
    """sha256 of each row's image file: the `content_hash` column the image cache records, else
    hashed now from `path`; None when the cohort has no image files (the simulated one)."""
    if "content_hash" in table.columns:
        return table["content_hash"]
    if "path" not in table.columns or not all(Path(p).is_file() for p in table["path"]):
        return None
    return table["path"].map(file_sha256)


def leakage_report(table: pd.DataFrame) -> dict:
    """What could leak between splits: patients whose B-scans fall in more than one split, and
    (when image files exist) byte-identical images in different splits, found by content hash
    because OLIVES holds identical B-scans under different visits. Empty lists mean clean."""
    splits_per_patient = table.groupby("patient")["split"].unique()
    crossing = {int(p): sorted(s) for p, s in splits_per_patient.items() if len(s) > 1}
    report = {"patients_in_several_splits": sorted(crossing)}
    if crossing:
        report["splits_of_crossing_patients"] = {str(p): s for p, s in sorted(crossing.items())}
    if "in_pool" in table.columns and (test_in_pool := int((table["in_pool"] & (table["split"] == "test")).sum())):
        report["test_images_in_pool"] = test_in_pool
    hashes = content_hashes(table)
    if hashes is not None:
        groups = table.assign(content_hash=hashes).groupby("content_hash")
        duplicates = [(digest, rows) for digest, rows in groups if len(rows) > 1]
        across = [{"sha256": digest, "splits": sorted(rows["split"].unique()), "sample_ids": rows["sample_id"].tolist()}
                  for digest, rows in duplicates if rows["split"].nunique() > 1]
        report["duplicate_images_across_splits"] = across
        report["duplicate_groups_within_one_split"] = len(duplicates) - len(across)
    return report


def leakage_problems(report: dict) -> list[str]:
    """One line per kind of leakage found, for the terminal; empty when the cohort is clean."""
    problems = []
    if crossing := report.get("splits_of_crossing_patients"):
        listed = ", ".join(f"{p} ({'/'.join(s)})" for p, s in crossing.items())
        problems.append(f"{len(crossing)} patients have B-scans in more than one split: {listed}")
    if count := report.get("test_images_in_pool"):
        problems.append(f"{count} test B-scans are also in the pretraining pool")
    if across := report.get("duplicate_images_across_splits"):
        first = ", ".join(repr(s) for s in across[0]["sample_ids"])
        problems.append(f"{len(across)} groups of byte-identical images span more than one split (first: {first})")
    return problems
