import numpy as np

from octbench.benchmark import load_benchmark
from octbench.simulate.cohort import select_scans
from octbench.simulate.labels import simulate_labels
from octbench.splits import leakage_report, patient_level_split


def test_patient_level_split_gives_each_patient_one_split_in_proportion():
    patients = np.repeat(np.arange(100), 5)
    assignment = patient_level_split(patients, {"train": 0.5, "val": 0.2, "test": 0.3}, seed=0)
    assert len(assignment) == 100
    assert sorted(np.unique(list(assignment.values()), return_counts=True)[1]) == [20, 30, 50]
    assert assignment != patient_level_split(patients, {"train": 0.5, "val": 0.2, "test": 0.3}, seed=1)


def test_default_cohort_has_no_patient_in_two_splits_and_pool_from_training_patients():
    spec = load_benchmark("default").cohort
    table = select_scans(simulate_labels(spec.patients, spec.seed), spec)
    assert leakage_report(table) == {"patients_in_several_splits": []}
    assert set(table.loc[table["in_pool"], "split"]) == {"train"}
    labelled = table[table["labelled"]]
    assert set(labelled["split"]) == {"train", "val", "test"}
    # Biomarker-training B-scans are part of the pool, as in OLIVES; no val or test B-scan is.
    assert labelled.loc[labelled["split"] == "train", "in_pool"].all()
    assert not table.loc[table["split"] != "train", "in_pool"].any()
    assert labelled.groupby("split").size().to_dict() == {"train": spec.train_scans, "val": spec.val_scans,
                                                          "test": spec.test_scans}


def test_leakage_report_names_crossing_patients():
    import pandas as pd
    table = pd.DataFrame({"patient": [1, 1, 2, 3, 3], "split": ["train", "test", "train", "val", "val"]})
    assert leakage_report(table) == {"patients_in_several_splits": [1],
                                     "splits_of_crossing_patients": {"1": ["test", "train"]}}
