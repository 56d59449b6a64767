"""Tasks come from the cohort: an OCT2017-style folder (one class per sub-folder) and a table's class
column are scored the MedMNIST way, one-vs-rest AUROC per class, their macro mean and the accuracy
of a multi-class probe, through run, compare and report."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
from conftest import file_benchmark
from PIL import Image
from sklearn.metrics import roc_auc_score

from octbench.cli import main
from octbench.evaluate import knn_probe, linear_probe, sgd_linear_probe
from octbench.task import Task

CLASSES = ("CNV", "DME", "DRUSEN", "NORMAL")
SIZE = 32


def scan(rng, cls: int) -> np.ndarray:
    """Noise with a bright band whose depth tells the class: learnable from pixels, not trivially."""
    image = rng.integers(0, 90, (SIZE, SIZE)).astype(np.uint8)
    row = 4 + 7 * cls + rng.integers(-1, 2)
    image[row:row + 3] = rng.integers(150, 255, (3, SIZE))
    return image


def oct2017_folder(root: Path, patients_per_class: int = 10, scans: int = 3, volumes: bool = False) -> int:
    """train/ and test/ with class sub-folders and CLASS-<patient>-<n> files (or one multi-page TIFF
    per patient and class); returns the number of B-scans written."""
    rng = np.random.default_rng(0)
    written = 0
    for split, offset in (("train", 0), ("test", 5000)):
        for c, cls in enumerate(CLASSES):
            folder = root / split / cls
            folder.mkdir(parents=True)
            for p in range(patients_per_class):
                patient = 1000 + offset + 100 * c + p
                pages = [scan(rng, c) for _ in range(scans)]
                if volumes:
                    tifffile.imwrite(folder / f"{cls}-{patient}.tif", np.stack(pages), photometric="minisblack")
                else:
                    for n, page in enumerate(pages):
                        Image.fromarray(page).save(folder / f"{cls}-{patient}-{n}.png")
                written += scans
    return written


def benchmark_file(path: Path, cohort: str, evaluate: str = "") -> Path:
    return file_benchmark(path, "multi-class test cohort", ["random-init", "raw-pixels"],
                          f"image_size = {SIZE}\nvalidation_fraction = 0.3\n{cohort}", evaluate)


def run(argv: list[str]) -> None:
    assert main([*argv, "--no-progress"] if argv[0] == "run" else argv) == 0


def only_record(out: Path) -> dict:
    (folder,) = [f for f in (out / "runs").iterdir() if not f.name.startswith(".")]
    return json.loads((folder / "metrics.json").read_text()) | {"folder": str(folder)}


@pytest.fixture(scope="module")
def folder_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("OCT2017")
    oct2017_folder(root)
    bench = benchmark_file(root.parent / "oct2017.toml", f'source = "folder"\nimage_root = "{root}"')
    out, cache = tmp_path_factory.mktemp("results"), tmp_path_factory.mktemp("cache")
    run(["compare", "--benchmark", str(bench), "--out", str(out), "--cache-dir", str(cache)])
    return out, bench


def test_an_oct2017_folder_is_scored_per_class_with_macro_auroc_and_accuracy(folder_runs):
    out, _ = folder_runs
    folder = next(f for f in (out / "runs").iterdir() if f.name.startswith("raw-pixels"))
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["task"] == {"kind": "multiclass", "labels": list(CLASSES), "column": "class"}
    assert list(metrics["auroc"]) == list(CLASSES) and set(metrics["auroc_ci"]) == set(CLASSES)
    assert metrics["mean_auroc"] == pytest.approx(np.mean(list(metrics["auroc"].values())))
    assert metrics["probe"]["head"] == "multi-class" and metrics["probe"]["C"] in (0.1, 1.0)
    assert isinstance(metrics["accuracy"], float) and "threshold" not in metrics
    predictions = pd.read_csv(folder / "predictions.csv")
    assert len(predictions) == 4 * metrics["n_test_scans"] == 4 * 40 * 3
    for cls in CLASSES:  # the record's AUROCs are the predictions' one-vs-rest AUROCs
        rows = predictions[predictions["biomarker"] == cls]
        assert metrics["auroc"][cls] == pytest.approx(roc_auc_score(rows["y_true"], rows["y_score"]))
    wide = predictions.pivot(index="sample_id", columns="biomarker", values="y_score")[list(CLASSES)]
    truth = predictions.pivot(index="sample_id", columns="biomarker", values="y_true")[list(CLASSES)]
    assert np.allclose(wide.sum(axis=1), 1.0)  # class probabilities
    assert metrics["accuracy"] == pytest.approx((wide.to_numpy().argmax(1) == truth.to_numpy().argmax(1)).mean())
    # The band's depth is in the pixels: a probe on them tells the four classes apart.
    assert metrics["mean_auroc"] > 0.9 and metrics["accuracy"] > 0.6


def test_the_leaderboard_of_a_multiclass_cohort_takes_its_columns_from_the_records(folder_runs):
    out, bench = folder_runs
    board = pd.read_csv(out / bench.stem / "leaderboard.csv")
    assert set(CLASSES) <= set(board.columns) and "accuracy" in board.columns
    assert not {"IRF", "DRT_ME"} & set(board.columns)
    raw = board[board["method"] == "raw-pixels"].iloc[0]
    metrics = json.loads(next((out / "runs").glob("raw-pixels*/metrics.json")).read_text())
    assert raw["accuracy"] == pytest.approx(metrics["accuracy"])
    assert raw["mean_auroc"] == pytest.approx(metrics["mean_auroc"])
    markdown = (out / bench.stem / "leaderboard.md").read_text()
    assert "NORMAL" in markdown and "accuracy" in markdown and "one-vs-rest AUROC per class" in markdown
    figures = {p.name for p in (out / bench.stem).iterdir()}
    assert {"roc_curves.png", "auroc_heatmap.png", "embedding_tsne.png"} <= figures


def test_an_oct2017_folder_of_multi_page_tiffs_gives_one_b_scan_per_page(tmp_path):
    root = tmp_path / "OCT2017"
    written = oct2017_folder(root, patients_per_class=8, scans=4, volumes=True)
    bench = benchmark_file(tmp_path / "tiffs.toml", f'source = "folder"\nimage_root = "{root}"')
    run(["run", "--benchmark", str(bench), "--method", "raw-pixels", "--out", str(tmp_path / "out"),
         "--cache-dir", str(tmp_path / "cache")])
    metrics = only_record(tmp_path / "out")
    assert metrics["n_test_scans"] == written // 2 == 4 * 8 * 4
    predictions = pd.read_csv(Path(metrics["folder"]) / "predictions.csv")
    assert predictions["sample_id"].nunique() == metrics["n_test_scans"]
    assert list(metrics["auroc"]) == list(CLASSES) and isinstance(metrics["accuracy"], float)


def diagnosis_table(tmp_path: Path) -> Path:
    rng = np.random.default_rng(1)
    rows = []
    for patient in range(36):
        grade = (20, 35, 47)[patient % 3]  # a DRSS-like grade, read by pandas as numbers
        for n in range(3):
            path = tmp_path / "scans" / f"p{patient}-{n}.png"
            path.parent.mkdir(exist_ok=True)
            Image.fromarray(scan(rng, patient % 3)).save(path)
            rows.append({"file": path.name, "subject": patient, "drss": float(grade)})
    pd.DataFrame(rows).to_csv(tmp_path / "scans.csv", index=False)
    return tmp_path / "scans.csv"


def test_a_table_class_column_runs_as_a_multiclass_task(tmp_path):
    table = diagnosis_table(tmp_path)
    cohort = (f'source = "table"\ntable = "{table}"\nimage_root = "{tmp_path / "scans"}"\n'
              'columns = { path = "file", patient = "subject" }\nlabels = ["drss"]\n'
              'split = { train = 0.5, val = 0.25, test = 0.25 }')
    bench = benchmark_file(tmp_path / "drss.toml", cohort, 'task = "multiclass"')
    run(["run", "--benchmark", str(bench), "--method", "raw-pixels", "--out", str(tmp_path / "out"),
         "--cache-dir", str(tmp_path / "cache")])
    metrics = only_record(tmp_path / "out")
    assert metrics["task"] == {"kind": "multiclass", "labels": ["20", "35", "47"], "column": "drss"}
    assert list(metrics["auroc"]) == ["20", "35", "47"] and isinstance(metrics["accuracy"], float)


def test_a_multiclass_table_with_several_label_columns_is_refused_before_training(tmp_path, capsys):
    table = diagnosis_table(tmp_path)
    cohort = (f'source = "table"\ntable = "{table}"\nimage_root = "{tmp_path / "scans"}"\n'
              'columns = { path = "file", patient = "subject" }\nlabels = ["drss", "subject"]')
    bench = benchmark_file(tmp_path / "two.toml", cohort, 'task = "multiclass"')
    assert main(["run", "--benchmark", str(bench), "--method", "raw-pixels", "--out", str(tmp_path / "out"),
                 "--cache-dir", str(tmp_path / "cache")]) == 2
    error = capsys.readouterr().err
    assert "labels = ['drss', 'subject']: a multi-class task" in error and "name exactly one" in error
    assert not (tmp_path / "out" / "runs").exists() or not any((tmp_path / "out" / "runs").iterdir())


@pytest.mark.parametrize("probe", [linear_probe, knn_probe, sgd_linear_probe])
def test_every_frozen_feature_probe_fits_one_multiclass_model_chosen_on_validation(probe):
    rng = np.random.default_rng(0)
    task = Task(("a", "b", "c"), "multiclass", "class")
    classes = {split: rng.integers(0, 3, n) for split, n in (("train", 300), ("val", 150), ("test", 150))}
    centres = rng.normal(size=(3, 8)) * 3
    features = {split: centres[c] + rng.normal(size=(len(c), 8)) for split, c in classes.items()}
    labels = {split: np.eye(3, dtype=np.int64)[c] for split, c in classes.items() if split != "test"}
    result = probe(features, labels, seed=0, task=task)
    assert result.test_scores.shape == (150, 3) and result.val_scores.shape == (150, 3)
    assert np.allclose(result.test_scores.sum(axis=1), 1.0)  # class probabilities
    assert result.chosen["head"] == "multi-class" and result.chosen["val_mean_auroc"] > 0.9
    assert (result.test_scores.argmax(1) == classes["test"]).mean() > 0.85


def test_a_table_with_its_own_binary_labels_is_scored_on_them(tmp_path):
    rng = np.random.default_rng(4)
    rows = []
    for patient in range(36):
        for n in range(3):
            cls = (patient + n) % 3
            path = tmp_path / "scans" / f"p{patient}-{n}.png"
            path.parent.mkdir(exist_ok=True)
            Image.fromarray(scan(rng, cls)).save(path)
            rows.append({"file": path.name, "subject": patient, "drusen": int(cls == 0), "fluid": int(cls == 2)})
    pd.DataFrame(rows).to_csv(tmp_path / "scans.csv", index=False)
    cohort = (f'source = "table"\ntable = "{tmp_path / "scans.csv"}"\nimage_root = "{tmp_path / "scans"}"\n'
              'columns = { path = "file", patient = "subject" }\nlabels = ["drusen", "fluid"]\n'
              'split = { train = 0.5, val = 0.25, test = 0.25 }')
    bench = benchmark_file(tmp_path / "own.toml", cohort)
    run(["run", "--benchmark", str(bench), "--method", "raw-pixels", "--out", str(tmp_path / "out"),
         "--cache-dir", str(tmp_path / "cache")])
    metrics = only_record(tmp_path / "out")
    assert "task" in metrics and metrics["task"]["kind"] == "binary"
    assert list(metrics["auroc"]) == ["drusen", "fluid"] and set(metrics["accuracy"]) == {"drusen", "fluid"}
    assert set(metrics["threshold"]) == {"drusen", "fluid"} and metrics["mean_auroc"] > 0.9
