"""Shared fixtures: where the real OLIVES tables are, and small OLIVES-layout tables with images."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

OLIVES_TABLES = Path(__file__).resolve().parents[2] / "shared" / "olives" / "final_csvs_1"
PATH_HEADER = "Path (Trial/Arm/Folder/Visit/Eye/Image Name)"
# The 20 biomarker headers of the official tables, in their order.
OFFICIAL_BIOMARKERS = [
    "Atrophy / thinning of retinal layers", "Disruption of EZ", "DRIL", "IR hemorrhages", "IR HRF",
    "Partially attached vitreous face", "Fully attached vitreous face", "Preretinal tissue/hemorrhage",
    "Vitreous debris", "VMT", "DRT/ME", "Fluid (IRF)", "Fluid (SRF)", "Disruption of RPE", "Drusen (sub-RPE)",
    "Drusen (RPD)", "GA/MA areas", "PED (serous)", "PED (fibrovascular)", "SHRM"]
CANONICAL_HEADER = {"IRHRF": "IR HRF", "PAVF": "Partially attached vitreous face",
                    "FAVF": "Fully attached vitreous face", "IRF": "Fluid (IRF)", "DRT_ME": "DRT/ME",
                    "VD": "Vitreous debris"}


@pytest.fixture
def olives_tables():
    if not OLIVES_TABLES.exists():
        pytest.skip(f"the real OLIVES label tables are not at {OLIVES_TABLES} (../shared/olives relative to the repo)")
    return OLIVES_TABLES


def biomarker_rows(patients: list[int], slices: int, seed: int, trial: str = "Prime_FULL") -> pd.DataFrame:
    """Official-format biomarker rows: one eye and one visit per patient, `slices` B-scans each."""
    rng = np.random.default_rng(seed)
    rows = []
    for patient in patients:
        for n in range(slices):
            row = {PATH_HEADER: f"/{trial}/01-{patient:03d}/W0/OD/{n}.png", "Scan (n/49)": n + 1}
            row.update({name: int(rng.random() < 0.5) for name in OFFICIAL_BIOMARKERS})
            row.update({"Eye_ID": patient, "BCVA": 70 + patient, "CST": 300 + n, "Patient_ID": float(patient)})
            rows.append(row)
    return pd.DataFrame(rows)


def write_olives_tables(root: Path, images: bool = True, size: int = 16) -> dict[str, pd.DataFrame]:
    """A small official layout under root/tables (patients 1-8 train, 9-10 test; the pool is every
    training image plus one more slice each) and, when `images`, an 8-bit PNG per row under root/img."""
    train = biomarker_rows(list(range(1, 9)), 4, seed=1)
    test = biomarker_rows([9, 10], 4, seed=2)
    extra = biomarker_rows(list(range(1, 9)), 5, seed=3).groupby("Patient_ID").tail(1)
    pool = pd.concat([train, extra])[[PATH_HEADER, "BCVA", "CST", "Eye_ID", "Patient_ID"]]
    pool = pool.rename(columns={PATH_HEADER: "File_Path"}).astype({"Patient_ID": int})
    tables = root / "tables"
    for folder in ("biomarker_csv_files", "datasets_combined", "test_biomarker_sets"):
        (tables / folder).mkdir(parents=True, exist_ok=True)
    train.to_csv(tables / "biomarker_csv_files" / "complete_biomarker_training.csv", index=False)
    test.to_csv(tables / "biomarker_csv_files" / "complete_biomarker_test.csv", index=False)
    pool.to_csv(tables / "datasets_combined" / "prime_trex_compressed.csv", index=False)
    for name in ("IRHRF", "PAVF", "FAVF", "fluirf", "DRT_ME"):
        test.iloc[::2].to_csv(tables / "test_biomarker_sets" / f"test_{name}.csv", index=False)
    if images:
        rng = np.random.default_rng(0)
        for relative in pd.concat([pool["File_Path"], test[PATH_HEADER]]):
            path = root / "img" / relative.lstrip("/")
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (size, size), dtype=np.uint8)).save(path)
    return {"train": train, "test": test, "pool": pool}


def file_benchmark(path: Path, description: str, methods: list[str], cohort: str, evaluate: str = "") -> Path:
    """A benchmark file for a cohort read from files: the [cohort] lines given, two pretraining
    steps of batch 16 and the fewest bootstrap resamples, so a run takes seconds."""
    path.write_text(f"""
description = "{description}"
backbone = "resnet18"
methods = {json.dumps(methods)}
seeds = 1

[cohort]
{cohort}

[pretrain]
steps = 2
batch_size = 16

[evaluate]
probe_c = [0.1, 1.0]
bootstrap = 100
{evaluate}
""")
    return path
