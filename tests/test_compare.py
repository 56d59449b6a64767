"""Leaderboard statistics, nested label fractions, and a compare that resumes."""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from octbench import BIOMARKERS
from octbench.benchmark import load_benchmark
from octbench.cli import main
from octbench.run import labelled_train_rows
from octbench.sources import load_cohort
from octbench.stats import holm_adjust, paired_bootstrap_p, patient_bootstrap_weights, seed_averaged_mean_auroc

TINY = str(Path(__file__).parent / "data" / "tiny.toml")
REPORT_FILES = {"leaderboard.md", "leaderboard.csv", "leaderboard.tex", "auroc_heatmap.png", "roc_curves.png",
                "loss_curves.png", "label_efficiency.png", "embedding_tsne.png", "budget_curves.png"}


def clustered_scores(n_patients=60, per_patient=10, signal=1.0, seed=0):
    rng = np.random.default_rng(seed)
    patients = np.repeat(np.arange(n_patients), per_patient)
    y = rng.integers(0, 2, size=(len(patients), 2))
    patient_effect = rng.normal(size=n_patients)[patients][:, None]
    return y, patients, lambda s, r: signal * y + patient_effect + np.random.default_rng(r).normal(size=y.shape) * s


def test_paired_bootstrap_p_is_large_for_equals_and_small_for_a_clearly_better_method():
    y, patients, scores = clustered_scores()
    weights = patient_bootstrap_weights(patients, 500, seed=0)
    a = seed_averaged_mean_auroc(y, [scores(1.0, 1)], weights)
    same = seed_averaged_mean_auroc(y, [scores(1.0, 1)], weights)
    assert paired_bootstrap_p(a, same) == 1.0
    twin = seed_averaged_mean_auroc(y, [scores(1.0, 2)], weights)  # same quality, other noise
    assert paired_bootstrap_p(a, twin) > 0.2
    better = seed_averaged_mean_auroc(y, [scores(0.3, 3)], weights)
    assert paired_bootstrap_p(better, a) < 0.01


def test_holm_adjustment():
    np.testing.assert_allclose(holm_adjust([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])


def test_label_fractions_are_nested_patient_sets_with_both_classes(tmp_path):
    benchmark = load_benchmark(TINY)
    cohort = load_cohort(benchmark, tmp_path)
    sets = [labelled_train_rows(cohort, f, seed=0) for f in (0.25, 0.5, 1.0)]
    patients = [set(rows["patient"]) for rows in sets]
    assert patients[0] < patients[1] < patients[2]
    for rows in sets:
        assert all(rows[b].nunique() == 2 for b in BIOMARKERS)
        # whole patients: every labelled training scan of a chosen patient is kept
        full = cohort.part("train")
        assert len(rows) == full["patient"].isin(rows["patient"]).sum()


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    cache = tmp_path_factory.mktemp("cache")
    argv = ["compare", "--benchmark", TINY, "--methods", "random-init", "raw-pixels", "simclr", "--seeds", "2",
            "--fractions", "0.5", "1", "--out", str(out), "--cache-dir", str(cache)]
    assert main(argv) == 0
    return out, argv


def test_compare_writes_every_report_file(compared):
    out, _ = compared
    assert REPORT_FILES <= {p.name for p in (out / "tiny").iterdir()}
    assert len(list((out / "runs").iterdir())) == 3 * 2 * 2


def test_leaderboard_aurocs_equal_sklearn_from_the_predictions(compared):
    out, _ = compared
    board = pd.read_csv(out / "tiny" / "leaderboard.csv")
    for folder in (out / "runs").iterdir():
        metrics = json.loads((folder / "metrics.json").read_text())
        assert metrics["run_id"] == folder.name
    for row in board.itertuples(index=False):
        runs = [f for f in (out / "runs").iterdir()
                if (m := json.loads((f / "metrics.json").read_text()))["label"] == row.method
                and m["label_fraction"] == row.label_fraction]
        assert len(runs) == row.seeds == 2
        for biomarker in BIOMARKERS:
            aurocs = []
            for folder in runs:
                p = pd.read_csv(folder / "predictions.csv")
                p = p[p["biomarker"] == biomarker]
                aurocs.append(roc_auc_score(p["y_true"], p["y_score"]))
            assert getattr(row, biomarker) == pytest.approx(np.mean(aurocs), abs=1e-6)


def test_an_interrupted_compare_reruns_only_the_missing_cell(compared, capsys):
    out, argv = compared
    runs = sorted((out / "runs").iterdir())
    victim = next(f for f in runs if f.name.startswith("simclr") and "seed1" in f.name and "_lf1.0-" in f.name)
    (victim / "metrics.json").unlink()  # as if killed before its record was complete
    before = {f.name: (f / "metrics.json").stat().st_mtime_ns for f in runs if f != victim}
    capsys.readouterr()
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert printed.count("(reused)") == len(before)
    assert (victim / "metrics.json").exists()
    assert before == {f.name: (f / "metrics.json").stat().st_mtime_ns for f in runs if f != victim}


def test_a_run_without_metrics_is_reported_and_left_out_of_every_table(compared, capsys):
    out, _ = compared
    broken = out / "runs" / "simclr_interrupted_copy"
    shutil.copytree(sorted((out / "runs").iterdir())[-1], broken)
    (broken / "metrics.json").unlink()
    before = (out / "tiny" / "leaderboard.csv").read_text()
    capsys.readouterr()
    try:
        assert main(["report", "--benchmark", TINY, "--out", str(out), "--no-embedding"]) == 0
        assert f"left out: {broken} has no metrics.json" in capsys.readouterr().out
        assert (out / "tiny" / "leaderboard.csv").read_text() == before
    finally:
        shutil.rmtree(broken)
