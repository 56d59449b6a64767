"""Real cohorts through the command: synth + the olives benchmark end to end, --strict, prepare, and
bad input that exits 2 naming the culprit without creating a run folder."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import OLIVES_TABLES, PATH_HEADER, write_olives_tables
from PIL import Image
from sklearn.metrics import roc_auc_score

from octbench.cli import main

OLIVES_TINY = str(Path(__file__).parent / "data" / "olives_tiny.toml")


@pytest.fixture(scope="module")
def synth_run(tmp_path_factory):
    if not OLIVES_TABLES.exists():
        pytest.skip(f"the real OLIVES label tables are not at {OLIVES_TABLES} (../shared/olives)")
    root = tmp_path_factory.mktemp("olives")
    assert main(["synth", "--labels", str(OLIVES_TABLES), "--out", str(root / "img"), "--limit", "200",
                 "--size", "48"]) == 0
    cohort_args = ["--benchmark", OLIVES_TINY, "--tables", str(OLIVES_TABLES), "--olives-root", str(root / "img"),
                   "--limit", "200", "--cache-dir", str(root / "cache")]
    argv = ["run", "--method", "clinical-supcon", "--steps", "2", "--out", str(root / "results"), "--no-progress",
            *cohort_args]
    assert main(argv) == 0
    (run_dir,) = (root / "results" / "runs").iterdir()
    return root, run_dir, cohort_args


def test_synth_writes_8bit_images_at_the_tables_relative_paths(synth_run):
    root, _, _ = synth_run
    files = sorted(p for p in (root / "img").rglob("*") if p.is_file())
    assert len(files) == 599  # 200 pool + 200 training + 200 test rows, one training row also in the pool
    assert {p.suffix for p in files} == {".tif", ".png", ".jpg"}  # as the real pool's paths
    with Image.open(files[0]) as image:
        assert image.mode == "L" and image.size == (48, 48)


def test_olives_benchmark_with_limit_writes_a_run_record_scored_on_balanced_sets(synth_run):
    _, run_dir, _ = synth_run
    assert "olives_tiny-limit200" in run_dir.name
    metrics = json.loads((run_dir / "metrics.json").read_text())
    per_biomarker = metrics["n_test_scans_per_biomarker"]
    assert per_biomarker["VD"] == metrics["n_test_scans"] == 200
    assert all(0 < per_biomarker[b] < 200 for b in ("IRHRF", "PAVF", "FAVF", "IRF", "DRT_ME"))
    predictions = pd.read_csv(run_dir / "predictions.csv")
    assert predictions.groupby("biomarker").size().to_dict() == per_biomarker
    for biomarker, group in predictions.groupby("biomarker"):
        assert roc_auc_score(group["y_true"], group["y_score"]) == pytest.approx(metrics["auroc"][biomarker])
    config = json.loads((run_dir / "config.json").read_text())
    assert config["leakage"]["patients_in_several_splits"] == [201, 204, 213, 226]
    assert config["leakage"]["duplicate_images_across_splits"] == []
    assert "path" not in config["benchmark"]["cohort"] and config["benchmark"]["cohort"]["limit"] == 200


def test_strict_refuses_the_crossing_patients_and_writes_nothing(synth_run, tmp_path, capsys):
    _, _, cohort_args = synth_run
    argv = ["run", "--method", "simclr", "--steps", "2", "--strict", "--out", str(tmp_path / "results"), *cohort_args]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert "--strict" in error and all(str(p) in error for p in (201, 204, 213, 226))
    assert not (tmp_path / "results").exists()


def test_prepare_builds_the_image_cache(tmp_path, capsys):
    write_olives_tables(tmp_path)
    argv = ["prepare", "--benchmark", OLIVES_TINY, "--tables", str(tmp_path / "tables"),
            "--olives-root", str(tmp_path / "img"), "--cache-dir", str(tmp_path / "cache")]
    assert main(argv) == 0
    assert "pool 40, train" in capsys.readouterr().out
    assert len(list((tmp_path / "cache" / "images").glob("images-*.npy"))) == 1


def break_csv(tmp_path, name, change):
    file = tmp_path / "tables" / name
    change(pd.read_csv(file)).to_csv(file, index=False)


def break_image(tmp_path, relative, write):
    write(tmp_path / "img" / relative)


FIRST_TRAIN_IMAGE = "Prime_FULL/01-001/W0/OD/0.png"


@pytest.mark.parametrize("damage, culprit", [
    (lambda t: break_csv(t, "biomarker_csv_files/complete_biomarker_training.csv",
                         lambda f: f.rename(columns={"Patient_ID": "Patient_Nr"})),
     "complete_biomarker_training.csv: no column for patient (looked for 'Patient_ID', 'Patient') "
     "(did you mean 'Patient_Nr'?)"),
    (lambda t: break_csv(t, "test_biomarker_sets/test_IRHRF.csv", lambda f: f.iloc[:1]),
     "IRHRF has a single class among the 1 test B-scans that count for it"),
    (lambda t: break_csv(t, "datasets_combined/prime_trex_compressed.csv",
                         lambda f: f.assign(BCVA=f["BCVA"].where(f.index != 3))),
     "prime_trex_compressed.csv: line 5 has 'BCVA' = empty"),
    (lambda t: break_csv(t, "biomarker_csv_files/complete_biomarker_test.csv",
                         lambda f: f.assign(CST=f["CST"].where(f.index != 0, -1))),
     "complete_biomarker_test.csv: line 2 has 'CST' = -1"),
    (lambda t: break_image(t, FIRST_TRAIN_IMAGE, lambda p: p.unlink()), f"{FIRST_TRAIN_IMAGE}: no such file"),
    (lambda t: break_image(t, FIRST_TRAIN_IMAGE, lambda p: p.write_bytes(p.read_bytes()[:60])),
     f"{FIRST_TRAIN_IMAGE}: cannot be decoded"),
    (lambda t: break_image(t, FIRST_TRAIN_IMAGE,
                           lambda p: Image.fromarray(np.full((8, 8), 999, dtype=np.uint16)).save(p)),
     f"{FIRST_TRAIN_IMAGE}: constant image under the percentile rule"),
    (lambda t: break_image(t, FIRST_TRAIN_IMAGE, lambda p: p.write_bytes(b"")),
     f"{FIRST_TRAIN_IMAGE}: cannot be decoded"),
    (lambda t: break_image(t, FIRST_TRAIN_IMAGE, lambda p: Image.fromarray(np.full((16, 16), 7, np.uint8)).save(p)),
     f"{FIRST_TRAIN_IMAGE}: constant image (every pixel is 7)"),
    (lambda t: break_csv(t, "biomarker_csv_files/complete_biomarker_training.csv",
                         lambda f: f.rename(columns={"IR HRF": "IR HFR"})),
     "'IRHRF', 'Intraretinal hyperreflective foci') (did you mean 'IR HFR'?)"),
    (lambda t: break_csv(t, "biomarker_csv_files/complete_biomarker_training.csv",
                         lambda f: pd.concat([f, f.iloc[[2]]])),
     "complete_biomarker_training.csv: line 34 has 'Path (Trial/Arm/Folder/Visit/Eye/Image Name)' = "
     "'/Prime_FULL/01-001/W0/OD/2.png'; it repeats an earlier row's image"),
    (lambda t: break_csv(t, "datasets_combined/prime_trex_compressed.csv",
                         lambda f: f.assign(BCVA=f["BCVA"].where(f.index % 10 != 1, 150))),
     "prime_trex_compressed.csv: line 3 has 'BCVA' = 150 (and 3 more rows: lines 13, 23, 33); it must be an ETDRS "
     "letter score from 0 to 100"),
    (lambda t: break_csv(t, "biomarker_csv_files/complete_biomarker_test.csv",
                         lambda f: f.assign(CST=f["CST"] / 1000)),
     "complete_biomarker_test.csv: line 2 has 'CST' = 0.3 (and 7 more rows: lines 3, 4, 5, 6, 7, ...); it must be "
     "a thickness in micrometres"),
])
def test_bad_input_exits_2_naming_the_culprit_and_creates_no_run_folder(tmp_path, capsys, damage, culprit):
    write_olives_tables(tmp_path)
    damage(tmp_path)
    argv = ["run", "--method", "simclr", "--benchmark", OLIVES_TINY, "--tables", str(tmp_path / "tables"),
            "--olives-root", str(tmp_path / "img"), "--out", str(tmp_path / "results"),
            "--cache-dir", str(tmp_path / "cache"), "--no-progress"]
    assert main(argv) == 2
    assert culprit in capsys.readouterr().err
    assert not (tmp_path / "results").exists()


def test_fixture_tables_hold_what_the_bad_input_tests_assume(tmp_path):
    tables = write_olives_tables(tmp_path, images=False)
    assert tables["train"][PATH_HEADER].iloc[0] == "/" + FIRST_TRAIN_IMAGE
    assert len(tables["pool"]) == 40 and tables["train"]["Patient_ID"].dtype == float


def test_every_table_problem_is_reported_at_once(tmp_path, capsys):
    write_olives_tables(tmp_path)
    break_csv(tmp_path, "datasets_combined/prime_trex_compressed.csv", lambda f: f.drop(columns="CST"))
    break_csv(tmp_path, "biomarker_csv_files/complete_biomarker_training.csv",
              lambda f: f.assign(BCVA=f["BCVA"].where(f.index != 0)))
    break_csv(tmp_path, "biomarker_csv_files/complete_biomarker_test.csv",
              lambda f: f.assign(**{"Fluid (IRF)": f["Fluid (IRF)"].where(f.index != 1, 2)}))
    argv = ["run", "--method", "simclr", "--benchmark", OLIVES_TINY, "--tables", str(tmp_path / "tables"),
            "--olives-root", str(tmp_path / "img"), "--out", str(tmp_path / "results"),
            "--cache-dir", str(tmp_path / "cache"), "--no-progress"]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert "3 problems in the cohort's tables" in error
    assert "prime_trex_compressed.csv: no column for CST" in error
    assert "complete_biomarker_training.csv: line 2 has 'BCVA' = empty" in error
    assert "complete_biomarker_test.csv: line 3 has 'Fluid (IRF)' = 2; biomarker labels must be 0 or 1" in error
    assert not (tmp_path / "results").exists()


def test_an_image_root_that_does_not_exist_is_named(tmp_path, capsys):
    write_olives_tables(tmp_path, images=False)
    argv = ["run", "--method", "simclr", "--benchmark", OLIVES_TINY, "--tables", str(tmp_path / "tables"),
            "--olives-root", str(tmp_path / "nowhere"), "--out", str(tmp_path / "results"),
            "--cache-dir", str(tmp_path / "cache"), "--no-progress"]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert f"image root {tmp_path / 'nowhere'} does not exist" in error
    assert error.count("\n") < 5  # one clear line, not a list of every missing file
    assert not (tmp_path / "results").exists()
