"""The generic sources: a user's CSV (source = "table") and a folder of class sub-folders (source =
"folder", OCT2017 / Kermany layout). Both give the same cohort table as the OLIVES reader."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from octbench.benchmark import CohortSpec
from octbench.errors import OctbenchError
from octbench.images import cohort_with_images, decode_bscan
from octbench.sources import cohort_table, task_of
from octbench.sources.folder import folder_cohort_table
from octbench.task import Task

COHORT_COLUMNS = {"sample_id", "path", "patient", "eye", "split", "in_pool", "labelled"}


def write_image(path, value=0):
    """A small 8-bit scan: a gradient plus `value`, so images differ and none is blank."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((np.arange(120, dtype=np.uint8).reshape(12, 10) + value).astype(np.uint8)).save(path)


def user_csv(tmp_path, rows=12):
    for i in range(rows):
        write_image(tmp_path / "scans" / f"s{i}.png", i)
    frame = pd.DataFrame({
        "file": [f"s{i}.png" for i in range(rows)], "subject": [i // 2 for i in range(rows)],
        "va_letters": [60 + i for i in range(rows)], "cst_um": [250 + i for i in range(rows)],
        "age": [50 + i // 2 for i in range(rows)], "fluid": [i % 2 for i in range(rows)],
        "dme": [float(i % 3 == 0) if i < rows - 2 else np.nan for i in range(rows)],
    })
    frame.to_csv(tmp_path / "scans.csv", index=False)
    return CohortSpec(source="table", table=str(tmp_path / "scans.csv"), image_root=str(tmp_path / "scans"),
                      columns={"path": "file", "patient": "subject", "BCVA": "va_letters", "CST": "cst_um",
                               "IRF": "fluid", "DRT_ME": "dme"},
                      labels=("IRF", "DRT_ME"), clinical=("age",), image_size=8)


def test_table_source_maps_the_user_columns_onto_the_cohort_table(tmp_path):
    table = cohort_table(user_csv(tmp_path))
    assert COHORT_COLUMNS | {"BCVA", "CST", "age", "IRF", "DRT_ME"} <= set(table.columns)
    assert table["path"].iloc[0] == str(tmp_path / "scans" / "s0.png")
    assert table["eye"].equals(table["patient"])  # no eye column: one eye per patient
    assert table.groupby("patient")["split"].nunique().max() == 1  # split by patient
    assert (~table["labelled"]).sum() == 2  # rows with a missing label are unlabelled
    assert table["in_pool"].equals(table["split"] == "train")
    cohort = cohort_with_images(table, 8, tmp_path / "cache")
    assert cohort.images.shape == (12, 8, 8)
    assert set(cohort.clinical_columns()) == {"patient", "eye", "BCVA", "CST", "age"}
    row = cohort.table.iloc[5]
    assert row["path"].endswith("s5.png")
    assert np.array_equal(cohort.images[row["image"]], decode_bscan(Path(row["path"]).read_bytes(), 8))


def test_table_source_uses_a_split_column_and_names_a_missing_column(tmp_path):
    spec = user_csv(tmp_path)
    frame = pd.read_csv(spec.table)
    frame.assign(split=["train"] * 6 + ["val"] * 2 + ["TEST"] * 4).to_csv(spec.table, index=False)
    assert cohort_table(spec)["split"].tolist() == ["train"] * 6 + ["val"] * 2 + ["test"] * 4
    frame.rename(columns={"cst_um": "cst_mm"}).to_csv(spec.table, index=False)
    with pytest.raises(OctbenchError, match="scans.csv: no column for CST.*did you mean 'cst_mm'"):
        cohort_table(spec)


def kermany_folder(root, patients=6):
    for split in ("train", "test"):
        for label in ("CNV", "DME", "DRUSEN", "NORMAL"):
            for patient in range(patients):
                number = 1000000 + patient + (100 if split == "test" else 0)
                write_image(root / split / label / f"{label}-{number}-{patient}.jpeg")


def test_folder_source_reads_kermany_layout_as_one_multiclass_task(tmp_path):
    kermany_folder(tmp_path / "OCT2017")
    spec = CohortSpec(source="folder", image_root=str(tmp_path / "OCT2017"), validation_fraction=0.34)
    table = folder_cohort_table(spec)
    assert COHORT_COLUMNS | {"class"} <= set(table.columns)
    task = task_of(spec, table)
    assert task == Task(("CNV", "DME", "DRUSEN", "NORMAL"), "multiclass", "class")
    assert len(table) == 48 and (task.matrix(table).sum(axis=1) == 1).all()
    row = table[table["sample_id"] == "train/CNV/CNV-1000002-2.jpeg"].iloc[0]
    assert row["patient"] == 1000002 and row["class"] == "CNV"
    assert task.matrix(table[table["sample_id"] == "train/CNV/CNV-1000002-2.jpeg"]).tolist() == [[1, 0, 0, 0]]
    assert set(table["split"]) == {"train", "val", "test"}
    assert table.groupby("patient")["split"].nunique().max() == 1
    assert table.loc[table["split"] == "test", "patient"].min() >= 1000100


def test_folder_without_split_folders_is_split_by_patient(tmp_path):
    for label in ("CNV", "NORMAL"):
        for patient in range(10):
            write_image(tmp_path / "oct" / label / f"{label}-{patient + 7}-0.png")
    table = folder_cohort_table(CohortSpec(source="folder", image_root=str(tmp_path / "oct")))
    assert set(table["split"]) == {"train", "val", "test"}
    assert table.groupby("patient")["split"].nunique().max() == 1


def test_folder_file_without_a_patient_number_is_named(tmp_path):
    write_image(tmp_path / "oct" / "CNV" / "scan.png")
    write_image(tmp_path / "oct" / "NORMAL" / "NORMAL-3-1.png")
    with pytest.raises(OctbenchError, match="scan.png: no patient number"):
        folder_cohort_table(CohortSpec(source="folder", image_root=str(tmp_path / "oct")))
