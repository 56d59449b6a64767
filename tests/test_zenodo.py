"""The Zenodo release of OLIVES (no split files): a patient-level split stratified by the biomarkers."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from octbench import BIOMARKERS
from octbench.sources.olives import olives_cohort_table
from octbench.splits import leakage_problems, leakage_report

OLIVES = Path(__file__).resolve().parents[2] / "shared" / "olives" / "final_csvs_1"
# The release's header, column for column: 16 biomarkers between the scan number and the eye.
ZENODO_HEADER = [
    "Path (Trial/Arm/Folder/Visit/Eye/Image Name)", "Scan (n/49)", "Atrophy / thinning of retinal layers",
    "Disruption of EZ", "DRIL", "IR hemorrhages", "IR HRF", "Partially attached vitreous face",
    "Fully attached vitreous face", "Preretinal tissue/hemorrhage", "Vitreous debris", "VMT", "DRT/ME",
    "Fluid (IRF)", "Fluid (SRF)", "Disruption of RPE", "PED (serous)", "SHRM", "Eye_ID", "BCVA", "CST", "Patient_ID",
]
SPLIT = {"train": 0.5, "val": 0.15, "test": 0.35}


def zenodo_table(n_patients: int = 40, scans: int = 12, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for patient in range(1, n_patients + 1):
        severe = rng.random() < 0.4  # patients differ: biomarkers cluster by patient, as in OLIVES
        for visit in (1, 2):
            for scan in range(1, scans + 1):
                path = f"/TREX DME/GILA/{patient:04d}GOD/V{visit}/OD/TREXA_{scan - 1:06d}.tif"
                markers = (rng.random(16) < (0.6 if severe else 0.2)).astype(int)
                rows.append([path, scan, *markers, patient, int(rng.integers(50, 90)), int(rng.integers(250, 500)),
                             float(patient)])
    return pd.DataFrame(rows, columns=ZENODO_HEADER)


def test_a_zenodo_table_becomes_a_stratified_patient_level_cohort(tmp_path):
    labels = tmp_path / "OLIVES_Dataset_Labels" / "ml_centric_labels"
    labels.mkdir(parents=True)
    zenodo_table().to_csv(labels / "Biomarker_Clinical_Data_Images.csv", index=False)
    table = olives_cohort_table(tmp_path / "OLIVES_Dataset_Labels", split=SPLIT, seed=0)
    assert set(table["split"]) == {"train", "val", "test"}
    report = leakage_report(table)
    assert report["patients_in_several_splits"] == [] and leakage_problems(report) == []
    shares = table["split"].value_counts(normalize=True)
    assert abs(shares["test"] - 0.35) < 0.1 and abs(shares["val"] - 0.15) < 0.1
    assert table["labelled"].all() and table.loc[table["in_pool"], "split"].eq("train").all()
    assert list(table.filter(items=BIOMARKERS).columns) == list(BIOMARKERS)
    # Made again with the same seed, the split is the same; another seed, another split.
    again = olives_cohort_table(tmp_path / "OLIVES_Dataset_Labels", split=SPLIT, seed=0)
    assert again["split"].equals(table["split"])
    other = olives_cohort_table(tmp_path / "OLIVES_Dataset_Labels", split=SPLIT, seed=1)
    assert not other["split"].equals(table["split"])


def test_the_clinical_table_gives_the_pool_of_training_patients_only(tmp_path):
    zenodo_table().to_csv(tmp_path / "Biomarker_Clinical_Data_Images.csv", index=False)
    extra = [[f"/TREX DME/GILA/{p:04d}GOD/V3/OD/TREXA_{s:06d}.tif", 70, 300, p, p] for p in range(1, 41)
             for s in range(5)]
    pd.DataFrame(extra, columns=["File_Path", "BCVA", "CST", "Eye_ID", "Patient_ID"]).to_csv(
        tmp_path / "Clinical_Data_Images.csv", index=False)
    table = olives_cohort_table(tmp_path, split=SPLIT, seed=0)
    pool_only = table[~table["labelled"]]
    assert len(pool_only) > 0 and pool_only["split"].eq("train").all()
    train_patients = set(table.loc[table["labelled"] & (table["split"] == "train"), "patient"])
    assert set(pool_only["patient"]) <= train_patients
    assert not (table["in_pool"] & (table["split"] != "train")).any()


@pytest.mark.skipif(not OLIVES.exists(), reason="the OLIVES label tables (../shared/olives) are not here")
def test_the_real_biomarker_table_splits_by_patient_with_similar_prevalences(tmp_path):
    real = pd.read_csv(OLIVES / "biomarker_csv_files" / "complete_biomarker_set.csv")
    six = ["IR HRF", "Partially attached vitreous face", "Fully attached vitreous face", "Fluid (IRF)", "DRT/ME",
           "Vitreous debris"]
    real = real.dropna(subset=six)  # 12 rows leave a biomarker empty; the reader refuses them by line
    real.to_csv(tmp_path / "Biomarker_Clinical_Data_Images.csv", index=False)
    table = olives_cohort_table(tmp_path, split=SPLIT, seed=0)
    assert leakage_report(table)["patients_in_several_splits"] == []
    prevalence = table.groupby("split")[list(BIOMARKERS)].mean()
    spread = (prevalence.max() - prevalence.min()).max()
    # 71 patients whose biomarkers cluster strongly by patient: folds of whole patients cannot match
    # prevalences exactly, but stratifying keeps them within this of each other.
    assert spread < 0.25, prevalence
