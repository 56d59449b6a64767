"""Leaderboards of runs whose predictions.csv holds only some (scan, biomarker) pairs, as OLIVES
runs do: each biomarker is scored on its balanced test set."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from octbench import BIOMARKERS
from octbench.leaderboard import RunResult, aligned_scores, leaderboard
from octbench.stats import patient_bootstrap_weights, seed_averaged_mean_auroc, weighted_auroc


def masked_run(method: str, seed: int, n: int = 60) -> RunResult:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        for j, biomarker in enumerate(BIOMARKERS):
            if biomarker != "VD" and (i + j) % 3 == 0:
                continue  # this scan is not in the biomarker's balanced test set
            y = int((i * 7 + j) % 5 < 2)
            rows.append({"sample_id": f"s{i:03d}", "patient": i // 4, "biomarker": biomarker, "y_true": y,
                         "y_score": y + rng.normal(0, 1.0)})
    metrics = {"run_id": f"{method}_resnet18_bench_seed{seed}_lf1.0", "method": method, "seed": seed,
               "label_fraction": 1.0, "protocol": "linear"}
    return RunResult(Path(f"/runs/{method}-{seed}"), metrics, pd.DataFrame(rows))


def test_score_table_has_nan_for_absent_pairs_and_auroc_uses_the_scored_rows():
    runs = [masked_run("simclr", 0), masked_run("simclr", 1), masked_run("byol", 2)]
    table = runs[0].score_table()
    assert len(table) == 60 and table["y_true"]["IRF"].isna().sum() == 20 and table["y_true"]["VD"].notna().all()
    y_true, scores = aligned_scores(runs[:2], table.index)
    assert np.isnan(y_true).any()
    board = leaderboard(runs, n_resamples=50).set_index("method")
    for biomarker in BIOMARKERS:
        per_seed = [run.predictions[run.predictions["biomarker"] == biomarker] for run in runs[:2]]
        expected = np.mean([roc_auc_score(rows["y_true"], rows["y_score"]) for rows in per_seed])
        assert board.loc["simclr", biomarker] == pytest.approx(expected)
    assert board[["mean_auroc", "ci_low", "ci_high"]].notna().all().all()


def test_seed_averaged_mean_auroc_gives_absent_pairs_no_weight():
    run = masked_run("simclr", 0)
    table = run.score_table()
    y_true, score = table["y_true"][list(BIOMARKERS)].to_numpy(), table["y_score"][list(BIOMARKERS)].to_numpy()
    weights = patient_bootstrap_weights(table.index.get_level_values("patient").to_numpy(), 30, 0)
    samples = seed_averaged_mean_auroc(y_true, [score], weights)
    scored = ~np.isnan(y_true)
    by_hand = np.mean([weighted_auroc(y_true[scored[:, j], j], score[scored[:, j], j], weights[:, scored[:, j]])
                       for j in range(len(BIOMARKERS))], axis=0)
    assert np.allclose(samples, by_hand, equal_nan=True) and not np.isnan(samples).all()
