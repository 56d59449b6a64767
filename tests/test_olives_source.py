"""The OLIVES reader on the real label tables (skipped when ../shared/olives is absent) and on small
fixtures of each format: every trap of shared/olives/README.md is one test."""

import numpy as np
import pandas as pd
import pytest
from conftest import CANONICAL_HEADER, OFFICIAL_BIOMARKERS, PATH_HEADER, biomarker_rows

from octbench import BIOMARKERS
from octbench.errors import OctbenchError
from octbench.sources.olives import olives_cohort_table, read_table
from octbench.splits import leakage_report


@pytest.fixture(scope="module")
def real_cohort():
    from conftest import OLIVES_TABLES

    if not OLIVES_TABLES.exists():
        pytest.skip(f"the real OLIVES label tables are not at {OLIVES_TABLES}")
    return olives_cohort_table(OLIVES_TABLES, "/data/olives")


def test_real_tables_give_the_published_row_counts(real_cohort, olives_tables):
    table = real_cohort
    assert int(table["in_pool"].sum()) == 62_126
    assert int((table["labelled"] & table["split"].isin(["train", "val"])).sum()) == 7_448
    assert int((table["split"] == "test").sum()) == 1_960
    for biomarker, expected in {"IRHRF": 1000, "PAVF": 1000, "FAVF": 1000, "IRF": 1000, "DRT_ME": 986}.items():
        assert int(table[f"test_{biomarker}"].sum()) == expected  # the five balanced test tables
    assert int(table["test_VD"].sum()) == 1_960  # VD has no balanced set: every test row counts
    assert not table.loc[table["split"] != "test", [f"test_{b}" for b in BIOMARKERS]].any().any()


def test_real_prevalences_equal_pandas_own_count_on_the_raw_csv(real_cohort, olives_tables):
    for part, name in (("train", "complete_biomarker_training.csv"), ("test", "complete_biomarker_test.csv")):
        raw = pd.read_csv(olives_tables / "biomarker_csv_files" / name)
        rows = real_cohort[real_cohort["labelled"] & ((real_cohort["split"] == "test") == (part == "test"))]
        for biomarker, header in CANONICAL_HEADER.items():
            assert rows[biomarker].sum() == raw[header].sum(), (part, biomarker)
            assert rows[biomarker].mean() == pytest.approx(raw[header].mean())


def test_real_pool_holds_7350_of_the_7448_training_images_and_no_test_image(real_cohort, olives_tables):
    labelled = real_cohort[real_cohort["labelled"]]
    assert int(labelled.loc[labelled["split"] != "test", "in_pool"].sum()) == 7_350
    assert not labelled.loc[labelled["split"] == "test", "in_pool"].any()


def test_real_split_1_crosses_exactly_four_trex_patients(real_cohort, olives_tables):
    report = leakage_report(real_cohort.drop(columns="path"))  # no image files here: patients only
    assert report["patients_in_several_splits"] == [201, 204, 213, 226]
    assert set(map(tuple, report["splits_of_crossing_patients"].values())) == {("test", "train")}
    assert "duplicate_images_across_splits" not in report


def test_real_validation_is_carved_by_patient_from_training(real_cohort, olives_tables):
    by_patient = real_cohort.groupby("patient")["split"].unique()
    val = [p for p, s in by_patient.items() if "val" in s]
    assert val and all(list(by_patient[p]) == ["val"] for p in val)
    labelled = real_cohort[real_cohort["labelled"]]
    share = labelled["split"].eq("val").sum() / labelled["split"].isin(["train", "val"]).sum()
    assert 0.05 < share < 0.3


def test_real_patient_ids_written_as_floats_are_integers(real_cohort, olives_tables):
    raw = pd.read_csv(olives_tables / "biomarker_csv_files" / "complete_biomarker_training.csv")
    assert raw["Patient_ID"].dtype == float  # 232.0 in the file
    assert real_cohort["patient"].dtype == np.int64 and 232 in set(real_cohort["patient"])


def test_real_cst_header_with_trailing_space_is_read(olives_tables):
    file = olives_tables / "test_biomarker_sets" / "test_fluirf.csv"
    assert "CST " in pd.read_csv(file, nrows=1).columns
    table = read_table(file)
    assert len(table) == 1000 and table["CST"].between(100, 800).all()


def test_real_paths_are_joined_to_the_image_root_and_give_visit_eye_slice(real_cohort, olives_tables):
    row = real_cohort[real_cohort["sample_id"] == "TREX DME/GILA/0232GOD/V1/OD/TREXA_000001.tif"].iloc[0]
    assert row["path"] == "/data/olives/TREX DME/GILA/0232GOD/V1/OD/TREXA_000001.tif"
    assert (row["patient"], row["visit"], row["laterality"], row["slice"]) == (232, 1, "OD", 1)


def test_columns_are_found_by_name_in_the_20_column_official_table(tmp_path):
    rows = biomarker_rows([3], 3, seed=0)
    shuffled = rows[list(reversed(rows.columns))]  # every column moved: positions mean nothing
    shuffled.to_csv(tmp_path / "official.csv", index=False)
    table = read_table(tmp_path / "official.csv")
    for biomarker, header in CANONICAL_HEADER.items():
        assert table[biomarker].tolist() == rows[header].tolist()
    assert table["slice"].tolist() == [0, 1, 2] and table["patient"].tolist() == [3, 3, 3]


def test_zenodo_release_table_with_16_biomarker_columns(tmp_path):
    """The Zenodo release: 16 biomarker columns, clinical columns first, other spellings of case."""
    rows = biomarker_rows([7, 8], 2, seed=4)
    dropped = ["Drusen (sub-RPE)", "Drusen (RPD)", "GA/MA areas", "PED (fibrovascular)"]
    kept = [c for c in OFFICIAL_BIOMARKERS if c not in dropped]
    assert len(kept) == 16
    zenodo = rows[["Patient_ID", "Eye_ID", "BCVA", "CST", PATH_HEADER, "Scan (n/49)", *kept]]
    zenodo = zenodo.rename(columns={"Fluid (IRF)": "fluid (irf)", "BCVA": " bcva"})
    zenodo.to_csv(tmp_path / "zenodo.csv", index=False)
    table = read_table(tmp_path / "zenodo.csv")
    for biomarker, header in CANONICAL_HEADER.items():
        assert table[biomarker].tolist() == rows[header].tolist()
    assert table["BCVA"].tolist() == rows["BCVA"].tolist()


def test_clinical_pool_format(tmp_path):
    pool = pd.DataFrame({"File_Path": ["/TREX DME/GILA/0232GOD/V3/OS/TREXA_000007.tif"], "BCVA": [57],
                         "CST": [607], "Eye_ID": [11], "Patient_ID": [232]})
    pool.to_csv(tmp_path / "pool.csv", index=False)
    row = read_table(tmp_path / "pool.csv", "/root", biomarkers=False).iloc[0]
    assert (row["patient"], row["eye"], row["visit"], row["laterality"], row["slice"]) == (232, 11, 3, "OS", 7)
    assert row["path"] == "/root/TREX DME/GILA/0232GOD/V3/OS/TREXA_000007.tif"


@pytest.mark.parametrize("change, message", [
    (lambda t: t.rename(columns={"Patient_ID": "Patient_IDs"}), "did you mean 'Patient_IDs'"),
    (lambda t: t.drop(columns="Fluid (IRF)"), "no column for IRF"),
    (lambda t: t.assign(BCVA=[70, np.nan, 71]), "line 3 has 'BCVA'"),
    (lambda t: t.assign(CST=[300, 301, -5]), "line 4 has 'CST' = -5"),
    (lambda t: t.assign(Patient_ID=[3.0, 3.5, 3.0]), "ids must be whole numbers"),
    (lambda t: pd.concat([t, t.iloc[[1]]]), "line 5 has 'Path (Trial/Arm/Folder/Visit/Eye/Image Name)' = "
                                            "'/Prime_FULL/01-003/W0/OD/1.png'; it repeats"),
])
def test_bad_tables_name_the_file_row_and_column(tmp_path, change, message):
    change(biomarker_rows([3], 3, seed=0)).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(OctbenchError, match="bad.csv") as error:
        read_table(tmp_path / "bad.csv")
    assert message in str(error.value)


def test_limit_takes_rows_across_patients_and_is_deterministic(olives_tables):
    first = olives_cohort_table(olives_tables, limit=200)
    again = olives_cohort_table(olives_tables, limit=200)
    assert first["sample_id"].tolist() == again["sample_id"].tolist()
    assert int(first["in_pool"].sum()) == 200 and int((first["split"] == "test").sum()) == 200
    assert first.loc[first["split"] == "test", "patient"].nunique() == 20  # every test patient kept
