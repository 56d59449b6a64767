"""`octbench report`: rebuild a benchmark's leaderboards and figures from its run records.

Everything goes to `<out>/<benchmark>/`, written into a hidden folder first and renamed into place,
so a reader never sees half a report.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.manifold import TSNE

from octbench import BIOMARKERS, figures
from octbench.backbone import create_backbone
from octbench.benchmark import Benchmark
from octbench.evaluate import extract_features
from octbench.leaderboard import BASELINES, RunResult, find_runs, group_cells, latex, leaderboard, markdown
from octbench.method import Method, MethodOptions
from octbench.record import BACKBONE_FILE, partial_dir, publish

EMBEDDING_POINTS = 1500  # t-SNE of every test B-scan would take minutes on a CPU


def build_report(out: Path, benchmark: Benchmark, n_resamples: int | None = None, embedding: bool = True,
                 log=print) -> Path:
    runs, incomplete = find_runs(out, benchmark.name)
    for folder in incomplete:
        log(f"left out: {folder} has no metrics.json (an interrupted run; rerun it to complete it)")
    table = leaderboard(runs, n_resamples or benchmark.evaluate.bootstrap, seed=0)
    final = Path(out) / benchmark.name
    work = partial_dir(final)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    (work / "leaderboard.md").write_text(markdown(table, benchmark.name, sorted({run.commit for run in runs})))
    table.to_csv(work / "leaderboard.csv", index=False, float_format="%.6f")
    (work / "leaderboard.tex").write_text(latex(table))

    cells = group_cells(runs)
    full = max(fraction for _, fraction in cells)
    order = table.loc[table["label_fraction"] == full, "method"].tolist()  # best first
    first_seed = {label: cells[label, full][0] for label in order}
    figures.auroc_heatmap(table, work / "auroc_heatmap.png")
    figures.roc_curves({label: scores_of(run) for label, run in first_seed.items()}, work / "roc_curves.png")
    logs = {label: pd.read_csv(run.folder / "pretrain_log.csv") for label, run in first_seed.items()
            if (run.folder / "pretrain_log.csv").exists()}
    if logs:
        figures.loss_curves(logs, work / "loss_curves.png")
    figures.label_efficiency(table, work / "label_efficiency.png")
    candidates = [label for label in order if label not in BASELINES and
                  (first_seed[label].folder / BACKBONE_FILE).exists()]
    if embedding and candidates:
        embedding_figure(first_seed[candidates[0]], benchmark, work / "embedding_tsne.png")
    publish(work, final)
    return final


def scores_of(run: RunResult) -> tuple[np.ndarray, np.ndarray]:
    table = run.score_table()
    return table["y_true"][list(BIOMARKERS)].to_numpy(), table["y_score"][list(BIOMARKERS)].to_numpy()


def embedding_figure(run: RunResult, benchmark: Benchmark, path: Path) -> None:
    """t-SNE of the frozen test features of one run, coloured by biomarkers and clinical values."""
    from octbench.run import load_cohort  # the cohort is needed only for this figure

    cohort = load_cohort(benchmark, None)
    test = cohort.part("test")
    test = test.sample(min(EMBEDDING_POINTS, len(test)), random_state=0)
    backbone, dim = create_backbone(benchmark.backbone)
    backbone.load_state_dict(torch.load(run.folder / BACKBONE_FILE, map_location="cpu"))
    features = extract_features(Method(backbone, dim, MethodOptions()), cohort.images_of(test))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        points = TSNE(n_components=2, init="pca", random_state=0, perplexity=30).fit_transform(features)
    colours = test[["IRF", "DRT_ME", "PAVF", "IRHRF", "CST", "BCVA"]].reset_index(drop=True)
    figures.embedding_map(points, colours, run.label, path)
