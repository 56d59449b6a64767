"""`octbench report`: rebuild a benchmark's leaderboards and figures from its run records.

Everything goes to `<out>/<benchmark>/`. The files are written into a hidden folder first and each
is then renamed into place, so a reader never sees half a file, and nothing else in that folder is
touched: a report replaces only the files it writes (and removes only files an earlier report wrote,
listed in the folder's manifest), never the folder itself.

Among those files is the archive (`octbench.archive`): every run's scores and record, compact
enough to commit, from which a report is rebuilt when `<out>/runs/` holds no runs of the benchmark
(a fresh clone). Figures that need a backbone (the embedding map) are then not redrawn.
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

from octbench import BIOMARKERS, archive, figures
from octbench.backbone import create_backbone
from octbench.benchmark import Benchmark, check_benchmark_name
from octbench.clinical import INSTANCE_TERM
from octbench.errors import OctbenchError
from octbench.evaluate import extract_features
from octbench.leaderboard import BASELINES, RunResult, find_runs, group_cells, latex, leaderboard, markdown
from octbench.locks import exclusive
from octbench.method import Method, MethodOptions
from octbench.record import BACKBONE_FILE, DamagedRecord, damage_advice, load_state_dict

REPORT_MANIFEST = ".octbench-report.json"  # the files the last report wrote, and only those
EMBEDDING_FILE = "embedding_tsne.png"
# Three t-SNEs of all 3000 test B-scans would take minutes on a CPU; of 1000, features included,
# about 30 s on two idle cores.
EMBEDDING_POINTS = 1000
EMBEDDING_BIOMARKERS = ("IRF", "DRT_ME")  # the more balanced of the two colours the map
CLINICAL_SUPCON = "clinical-supcon"


def build_report(out: Path, benchmark: Benchmark, n_resamples: int | None = None, embedding: bool = True,
                 log=print) -> Path:
    final = report_folder(out, benchmark)
    runs, incomplete, damaged = find_runs(out, benchmark.name)
    for folder in incomplete:
        log(f"left out: {folder} has no metrics.json (an interrupted run; rerun it to complete it)")
    for error in damaged:
        log(f"left out: {damage_advice(error)}")
    # Scores at the archive's precision, so that a report rebuilt from the archive is the same report.
    runs = [archive.rounded(run) for run in runs]
    with exclusive(final.with_name(f".{final.name}.report.lock"), f"the report of {benchmark.name}", wait=True):
        from_archive = not runs and archive.has_archive(final)
        if from_archive:  # read under the lock: never half of one report's archive and half of another's
            runs = [run for run in archive.read_archive(final) if run.metrics.get("benchmark") == benchmark.name]
            log(f"no runs of {benchmark.name} in {Path(out) / 'runs'}: rebuilding the report from its archive "
                f"({final / archive.PREDICTIONS_FILE}, {len(runs)} runs)")
        table = leaderboard(runs, n_resamples or benchmark.evaluate.bootstrap, seed=0)
        work = final.with_name(f".{final.name}.report-{os.getpid()}")
        shutil.rmtree(work, ignore_errors=True)  # this process's own, from an earlier failed attempt
        work.mkdir(parents=True)
        try:
            write_report(work, runs, table, benchmark, embedding, log)
            if from_archive and embedding:
                keep_embedding_figure(final, work, log)
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


def keep_embedding_figure(final: Path, work: Path, log) -> None:
    """The archive holds no backbones: the embedding map an earlier report drew (listed in its
    manifest) is kept as it is rather than removed as stale."""
    try:
        earlier = set(json.loads((final / REPORT_MANIFEST).read_text()))
    except (OSError, ValueError, TypeError):
        earlier = set()
    if EMBEDDING_FILE in earlier and (final / EMBEDDING_FILE).is_file():
        shutil.copy2(final / EMBEDDING_FILE, work / EMBEDDING_FILE)
        log(f"embedding map not redrawn (the archive holds no backbones): {EMBEDDING_FILE} kept as it was")
    else:
        log("embedding map skipped: it needs the runs' backbones, which the archive does not hold")


def write_report(work: Path, runs: list[RunResult], table: pd.DataFrame, benchmark: Benchmark, embedding: bool,
                 log) -> None:
    (work / "leaderboard.md").write_text(markdown(table, benchmark.name, sorted({run.commit for run in runs})))
    table.to_csv(work / "leaderboard.csv", index=False, float_format="%.6f")
    (work / "leaderboard.tex").write_text(latex(table))
    archive.write_archive(work, runs)

    cells = group_cells(runs)
    full = max(fraction for _, fraction in cells)
    at_full = table[table["label_fraction"] == full]
    order = at_full["method"].tolist()  # the table's order: best first
    biomarkers = scored_labels(runs)
    figures.auroc_heatmap(table, work / "auroc_heatmap.png", biomarkers)
    seeds = " or ".join(str(n) for n in sorted({len(cells[label, full]) for label in order}))
    figures.roc_curves({label: seed_mean_scores(cells[label, full], biomarkers) for label in order}, biomarkers,
                       work / "roc_curves.png",
                       title=f"Test ROC curves at {full:.0%} expert labels, rows in the leaderboard's order: "
                             f"each method's scores averaged per B-scan over its {seeds} seed(s)")
    first_seed = {label: cells[label, full][0] for label in order}
    logs = {label: curve for label, run in first_seed.items() if (curve := archive.loss_log(run)) is not None}
    if logs:
        figures.loss_curves(logs, work / "loss_curves.png",
                            trivial={label: first_seed[label].metrics.get("trivial_loss") for label in logs})
    if table["label_fraction"].nunique() > 1:
        figures.label_efficiency(table, work / "label_efficiency.png")
    else:  # one point per method is not a curve
        log("label-efficiency figure skipped: the records hold one label fraction (compare --fractions)")
    curves = budget_points({label: cells[label, full] for label in order})
    if curves:
        figures.budget_curves(curves, work / "budget_curves.png")
    if embedding and not any(isinstance(run, archive.ArchivedRun) for run in runs):
        best = at_full["best_method"].iloc[0] if "best_method" in at_full else None
        shown = embedding_runs([*([best] if best in first_seed else []), *order], first_seed)
        if shown:
            embedding_figure(shown, benchmark, work / EMBEDDING_FILE, log)


def budget_points(runs_per_label: dict[str, list[RunResult]]) -> dict[str, dict[int, list[float]]]:
    """Per method, the test mean AUROC of each seed at each budget step its records hold; methods
    without pretraining (no budget probes) are left out."""
    curves = {}
    for label, runs in runs_per_label.items():
        points: dict[int, list[float]] = {}
        for run in runs:
            for probe in run.metrics.get("budget") or []:
                points.setdefault(int(probe["step"]), []).append(float(probe["mean_auroc"]))
        if len(points) > 1:
            curves[label] = points
    return curves


def scored_labels(runs: list[RunResult]) -> list[str]:
    """The labels the records score: the OLIVES biomarkers in their order, then any others."""
    seen = list(dict.fromkeys(runs[0].predictions["biomarker"].astype(str)))
    return [b for b in BIOMARKERS if b in seen] + [b for b in seen if b not in BIOMARKERS]


def seed_mean_scores(runs: list[RunResult], biomarkers: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """y_true and the scores averaged over the runs (seeds) per B-scan, each (n, biomarkers)."""
    tables = [run.score_table() for run in runs]
    y_true = tables[0]["y_true"][biomarkers].to_numpy(dtype=float)
    scores = [t["y_score"][biomarkers].reindex(tables[0].index).to_numpy(dtype=float) for t in tables]
    return y_true, np.mean(scores, axis=0)


def embedding_runs(order: list[str], first_seed: dict[str, RunResult]) -> list[RunResult]:
    """The best pretraining row (the first of `order` that is no baseline), the best clinical
    SupCon row that uses clinical labels (not the control, which has none) and random-init, those
    present with a backbone, each by its first seed."""
    order = list(dict.fromkeys(order))
    has_backbone = [label for label in order if (first_seed[label].folder / BACKBONE_FILE).exists()]
    pretrained = [label for label in has_backbone if first_seed[label].metrics.get("method") not in BASELINES]
    supcon = [label for label in pretrained if first_seed[label].metrics.get("method") == CLINICAL_SUPCON
              and any(column != INSTANCE_TERM for column, _ in first_seed[label].options.get("clinical") or [])]
    floor = [label for label in has_backbone if first_seed[label].metrics.get("method") == "random-init"]
    chosen = [*pretrained[:1], *supcon[:1], *floor[:1]]
    return [first_seed[label] for label in dict.fromkeys(chosen)]


def stratified_subsample(rows: pd.DataFrame, by: list[str], n: int, seed: int = 0) -> pd.DataFrame:
    """About n rows, each stratum (patient x biomarker status) in its share of `rows`."""
    if len(rows) <= n:
        return rows
    return rows.groupby(by, group_keys=False).sample(frac=n / len(rows), random_state=seed).sort_index()


def embedding_figure(runs: list[RunResult], benchmark: Benchmark, path: Path, log=print) -> None:
    """t-SNE of the frozen features of the same stratified subsample of test B-scans under each run,
    coloured by one biomarker and by patient."""
    from octbench.sources import load_cohort  # the cohort is needed only for this figure

    cohort = load_cohort(benchmark, None)
    test = cohort.part("test")
    if cohort.task.multiclass:  # coloured by class
        candidates = [cohort.task.column]
    else:
        labels = cohort.task.labels
        candidates = [b for b in EMBEDDING_BIOMARKERS if b in labels] or list(labels)
    if not candidates:
        log("embedding map skipped: the cohort has no labels to colour it by")
        return
    biomarker = min(candidates, key=lambda b: 0 if cohort.task.multiclass else abs(test[b].mean() - 0.5))
    test = stratified_subsample(test, ["patient", biomarker], EMBEDDING_POINTS)
    images = cohort.images_of(test)
    maps = {}
    for run in runs:
        try:
            weights = load_state_dict(run.folder / BACKBONE_FILE)
        except DamagedRecord as error:
            log(f"left out of the embedding figure: {error}")
            continue
        backbone, dim = create_backbone(benchmark.backbone)
        backbone.load_state_dict(weights)
        features = extract_features(Method(backbone, dim, MethodOptions()), images)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            maps[run.label] = TSNE(n_components=2, init="pca", random_state=0, perplexity=30).fit_transform(features)
    if maps:
        figures.embedding_map(maps, biomarker, test[biomarker].to_numpy(), test["patient"].to_numpy(), path)
