"""`octbench report`: rebuild a benchmark's leaderboards and figures from its run records.

Everything goes to `<out>/<benchmark>/`. The files are written into a hidden folder first and each
is then renamed into place, so a reader never sees half a file, and nothing else in that folder is
touched: a report replaces only the files it writes (and removes only files an earlier report wrote,
listed in the folder's manifest), never the folder itself.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.manifold import TSNE

from octbench import BIOMARKERS, figures
from octbench.backbone import create_backbone
from octbench.benchmark import Benchmark, check_benchmark_name
from octbench.errors import OctbenchError
from octbench.evaluate import extract_features
from octbench.leaderboard import BASELINES, RunResult, find_runs, group_cells, latex, leaderboard, markdown
from octbench.locks import exclusive
from octbench.method import Method, MethodOptions
from octbench.record import BACKBONE_FILE, DamagedRecord, damage_advice, load_state_dict

REPORT_MANIFEST = ".octbench-report.json"  # the files the last report wrote, and only those
EMBEDDING_POINTS = 1500  # t-SNE of every test B-scan would take minutes on a CPU


def build_report(out: Path, benchmark: Benchmark, n_resamples: int | None = None, embedding: bool = True,
                 log=print) -> Path:
    final = report_folder(out, benchmark)
    runs, incomplete, damaged = find_runs(out, benchmark.name)
    for folder in incomplete:
        log(f"left out: {folder} has no metrics.json (an interrupted run; rerun it to complete it)")
    for error in damaged:
        log(f"left out: {damage_advice(error)}")
    table = leaderboard(runs, n_resamples or benchmark.evaluate.bootstrap, seed=0)
    with exclusive(final.with_name(f".{final.name}.report.lock"), f"the report of {benchmark.name}", wait=True):
        work = final.with_name(f".{final.name}.report-{os.getpid()}")
        shutil.rmtree(work, ignore_errors=True)  # this process's own, from an earlier failed attempt
        work.mkdir(parents=True)
        try:
            write_report(work, runs, table, benchmark, embedding, log)
            publish_files(work, final)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return final


def report_folder(out: Path, benchmark: Benchmark) -> Path:
    """<out>/<benchmark name>, which must be a folder of its own: never the runs folder, the
    results folder itself or anything outside it."""
    check_benchmark_name(benchmark.name, benchmark.path or benchmark.name)
    out = Path(out)
    final = out / benchmark.name
    if final.resolve().parent != out.resolve():
        raise OctbenchError(f"benchmark name {benchmark.name!r} would put its report outside {out}; rename it")
    if final.exists() and not final.is_dir():
        raise OctbenchError(f"{final} is a file, not a report folder; move it away or choose another --out")
    return final


def publish_files(work: Path, final: Path) -> None:
    """Rename each file of `work` into `final`; files an earlier report wrote and this one did not
    (a figure no longer drawn) are removed, and nothing else."""
    final.mkdir(parents=True, exist_ok=True)
    manifest = final / REPORT_MANIFEST
    earlier = set()
    if manifest.exists():
        try:
            earlier = set(json.loads(manifest.read_text()))
        except (OSError, ValueError, TypeError):
            earlier = set()  # an unreadable manifest: keep every file rather than guess
    written = sorted(p.name for p in work.iterdir())
    for name in written:
        os.replace(work / name, final / name)
    for name in earlier - set(written):
        if "/" not in name and name not in (".", ".."):
            (final / name).unlink(missing_ok=True)
    partial = manifest.with_name(f"{manifest.name}.partial-{os.getpid()}")
    partial.write_text(json.dumps(written))
    os.replace(partial, manifest)


def write_report(work: Path, runs: list[RunResult], table: pd.DataFrame, benchmark: Benchmark, embedding: bool,
                 log) -> None:
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
        embedding_figure(first_seed[candidates[0]], benchmark, work / "embedding_tsne.png", log)


def scores_of(run: RunResult) -> tuple[np.ndarray, np.ndarray]:
    table = run.score_table()
    return table["y_true"][list(BIOMARKERS)].to_numpy(), table["y_score"][list(BIOMARKERS)].to_numpy()


def embedding_figure(run: RunResult, benchmark: Benchmark, path: Path, log=print) -> None:
    """t-SNE of the frozen test features of one run, coloured by biomarkers and clinical values."""
    from octbench.run import load_cohort  # the cohort is needed only for this figure

    cohort = load_cohort(benchmark, None)
    test = cohort.part("test")
    test = test.sample(min(EMBEDDING_POINTS, len(test)), random_state=0)
    try:
        weights = load_state_dict(run.folder / BACKBONE_FILE)
    except DamagedRecord as error:
        log(f"left out of the embedding figure: {error}")
        return
    backbone, dim = create_backbone(benchmark.backbone)
    backbone.load_state_dict(weights)
    features = extract_features(Method(backbone, dim, MethodOptions()), cohort.images_of(test))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        points = TSNE(n_components=2, init="pca", random_state=0, perplexity=30).fit_transform(features)
    colours = test[["IRF", "DRT_ME", "PAVF", "IRHRF", "CST", "BCVA"]].reset_index(drop=True)
    figures.embedding_map(points, colours, run.label, path)
