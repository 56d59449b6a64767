"""Leaderboards: every complete run record of a benchmark, aggregated over seeds, with intervals
and paired significance tests, written as Markdown, CSV and LaTeX.

AUROCs are recomputed from each run's `predictions.csv` (never copied from `metrics.json`), so a
table always agrees with the scores it summarises. Intervals and tests resample patients with one
shared set of resamples, which makes the comparison of two methods paired: both are scored on the
same resampled test patients.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from octbench import BIOMARKERS
from octbench.errors import OctbenchError
from octbench.record import PREDICTION_COLUMNS, DamagedRecord, load_metrics, read_json
from octbench.stats import (
    holm_adjust,
    paired_bootstrap_p,
    patient_bootstrap_weights,
    percentile_interval,
    seed_averaged_mean_auroc,
)

REFERENCE_METHOD = "simclr"  # every row is also compared with it: the self-supervised standard
# Rows that frame the table (floor, ceiling, diagnostic) rather than compete in it: never "best".
BASELINES = ("random-init", "supervised", "raw-pixels")


@dataclass
class RunResult:
    folder: Path
    metrics: dict
    predictions: pd.DataFrame

    @property
    def label(self) -> str:
        """The method as the table names it: name plus clinical labels, e.g. clinical-supcon-bcva0.5-cst0.5,
        plus the probe protocol when it is not the default linear one."""
        name = self.metrics["run_id"].split("_")[0]
        protocol = self.metrics.get("protocol", "linear")
        return name if protocol == "linear" else f"{name} ({protocol})"

    @property
    def commit(self) -> str:
        try:
            return read_json(self.folder / "config.json").get("git_commit") or "unknown"
        except DamagedRecord:
            return "unknown"

    @property
    def cell(self) -> tuple[str, float]:
        return self.label, float(self.metrics["label_fraction"])

    def score_table(self) -> pd.DataFrame:
        """One row per test B-scan: patient, then y_true and y_score per biomarker; NaN where a
        B-scan does not count for a biomarker (OLIVES scores each on its balanced test set)."""
        wide = self.predictions.pivot(index=["sample_id", "patient"], columns="biomarker",
                                      values=["y_true", "y_score"])
        return wide.sort_index()


def find_runs(out: Path, benchmark: str) -> tuple[list[RunResult], list[Path], list[DamagedRecord]]:
    """Complete runs of `benchmark` under out/runs, the folders of incomplete ones, and what is
    wrong with each damaged one (a record whose files cannot be read back)."""
    complete, incomplete, damaged = [], [], []
    for folder in sorted((Path(out) / "runs").glob("*")):
        if folder.name.startswith(".") or not folder.is_dir():
            continue  # hidden: a run being written, or one that was interrupted while writing
        try:
            metrics = load_metrics(folder)
            if metrics is None:
                incomplete.append(folder)
            elif metrics.get("benchmark") == benchmark:
                complete.append(RunResult(folder, metrics, read_predictions(folder / "predictions.csv")))
        except DamagedRecord as error:
            damaged.append(error)
    return complete, incomplete, damaged


def read_predictions(path: Path) -> pd.DataFrame:
    try:
        predictions = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise DamagedRecord(f"{path} is not a readable CSV ({error})") from None
    missing = [c for c in PREDICTION_COLUMNS if c not in predictions.columns]
    if missing:
        raise DamagedRecord(f"{path} lacks the columns {', '.join(missing)}")
    if predictions[["y_true", "y_score"]].isna().any().any() or predictions.duplicated(
            ["sample_id", "biomarker"]).any():
        raise DamagedRecord(f"{path} has empty or repeated rows")
    return predictions


def group_cells(runs: list[RunResult]) -> dict[tuple[str, float], list[RunResult]]:
    cells: dict[tuple[str, float], list[RunResult]] = {}
    for run in sorted(runs, key=lambda r: (r.cell, r.metrics["seed"])):
        cells.setdefault(run.cell, []).append(run)
    return cells


def aligned_scores(runs: list[RunResult], index: pd.Index) -> tuple[np.ndarray, list[np.ndarray]]:
    """y_true (n, 6) and one (n, 6) score array per run, on the B-scans of `index`."""
    tables = [run.score_table() for run in runs]
    for run, table in zip(runs, tables):
        if not table.index.equals(index):
            raise OctbenchError(f"{run.folder}: its test B-scans differ from the other runs of the benchmark; "
                                "was the benchmark's cohort changed? Rerun it with --force")
    y_true = tables[0]["y_true"][list(BIOMARKERS)].to_numpy()
    return y_true, [t["y_score"][list(BIOMARKERS)].to_numpy() for t in tables]


def scored_auroc(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """AUROC on the B-scans scored for this biomarker (NaN marks the others)."""
    scored = ~(np.isnan(y_true) | np.isnan(y_score))
    return float(roc_auc_score(y_true[scored], y_score[scored]))


def leaderboard(runs: list[RunResult], n_resamples: int = 1000, seed: int = 0) -> pd.DataFrame:
    """One row per (method, label fraction): AUROC per biomarker and mean, as mean and std over
    seeds; a 95% patient-bootstrap interval of the seed-averaged mean AUROC; and, within each
    label fraction, the paired difference from the best row and from simclr with Holm-adjusted
    p-values."""
    cells = group_cells(runs)
    if not cells:
        raise OctbenchError("no complete runs to aggregate; run 'octbench run' or 'octbench compare' first")
    index = next(iter(cells.values()))[0].score_table().index
    patients = index.get_level_values("patient").to_numpy()
    weights = patient_bootstrap_weights(patients, n_resamples, seed)
    rows, samples = [], {}
    for (label, fraction), cell_runs in cells.items():
        y_true, scores = aligned_scores(cell_runs, index)
        per_seed = np.array([[scored_auroc(y_true[:, j], s[:, j]) for j in range(len(BIOMARKERS))]
                             for s in scores])
        samples[label, fraction] = seed_averaged_mean_auroc(y_true, scores, weights)
        row = {"method": label, "label_fraction": fraction, "seeds": len(cell_runs)}
        for j, biomarker in enumerate(BIOMARKERS):
            row[biomarker] = per_seed[:, j].mean()
            row[f"{biomarker}_std"] = per_seed[:, j].std(ddof=1) if len(cell_runs) > 1 else 0.0
        means = per_seed.mean(axis=1)
        row["mean_auroc"] = means.mean()
        row["mean_auroc_std"] = means.std(ddof=1) if len(cell_runs) > 1 else 0.0
        row["ci_low"], row["ci_high"] = percentile_interval(samples[label, fraction])
        rows.append(row)
    table = pd.DataFrame(rows)
    parts = [compare_within_fraction(part, samples) for _, part in table.groupby("label_fraction", sort=False)]
    return pd.concat(parts).sort_values(["label_fraction", "mean_auroc"], ascending=[False, False],
                                        ignore_index=True)


def compare_within_fraction(table: pd.DataFrame, samples: dict) -> pd.DataFrame:
    table = table.copy()
    fraction = table["label_fraction"].iloc[0]
    contenders = table[~table["method"].isin(BASELINES)]
    best = (contenders if len(contenders) else table).sort_values("mean_auroc")["method"].iloc[-1]
    for column, reference in (("best", best), (REFERENCE_METHOD, REFERENCE_METHOD)):
        if (reference, fraction) not in samples:
            table[f"delta_{column}"], table[f"p_{column}"] = np.nan, np.nan
            continue
        ref_mean = table.loc[table["method"] == reference, "mean_auroc"].iloc[0]
        table[f"delta_{column}"] = table["mean_auroc"] - ref_mean
        p = [np.nan if m == reference else paired_bootstrap_p(samples[m, fraction], samples[reference, fraction])
             for m in table["method"]]
        tested = [i for i, v in enumerate(p) if not np.isnan(v)]
        adjusted = holm_adjust([p[i] for i in tested]) if tested else []
        for i, value in zip(tested, adjusted):
            p[i] = value
        table[f"p_{column}"] = p
    table["best_method"] = best
    return table


def significance(p: float) -> str:
    return "" if np.isnan(p) else ("*" if p < 0.05 else "")


def format_delta(delta: float, p: float) -> str:
    if np.isnan(delta) or np.isnan(p):
        return "—" if np.isnan(delta) or delta == 0 else f"{delta:+.3f}"
    return f"{delta:+.3f}{significance(p)} (p={p:.3f})" if p >= 0.001 else f"{delta:+.3f}* (p<0.001)"


def markdown(table: pd.DataFrame, benchmark: str, commits: list[str] = ()) -> str:
    lines = [f"# Leaderboard: {benchmark}", "",
             "Test AUROC per biomarker, mean ± std over seeds (linear probe on frozen features). "
             "`95% CI`: patient-bootstrap interval of the seed-averaged mean AUROC. "
             "`Δ best` (best pretraining method, baselines excluded) and `Δ simclr`: paired "
             "patient-bootstrap difference in mean AUROC, "
             "Holm-adjusted p-value within the label fraction; `*` marks p < 0.05.", ""]
    if commits:
        short = [c[:12] + ("-dirty" if c.endswith("-dirty") else "") for c in commits]
        lines += ["Runs made at octbench commit(s): " + ", ".join(f"`{c}`" for c in short) + ".", ""]
    for fraction, part in table.groupby("label_fraction", sort=False):
        lines += [f"## Biomarker labels: {fraction:.0%} of training patients", "",
                  "| rank | method | seeds | " + " | ".join(BIOMARKERS) + " | mean | 95% CI | Δ best | Δ simclr |",
                  "|---:|---|---:|" + "---:|" * len(BIOMARKERS) + "---:|---|---|---|"]
        for rank, row in enumerate(part.itertuples(index=False), start=1):
            spread = (lambda std: f" ± {std:.3f}") if row.seeds > 1 else (lambda std: "")
            cells = [f"{getattr(row, b):.3f}{spread(getattr(row, b + '_std'))}" for b in BIOMARKERS]
            lines.append(f"| {rank} | {row.method} | {row.seeds} | " + " | ".join(cells)
                         + f" | **{row.mean_auroc:.3f}**{spread(row.mean_auroc_std)}"
                         + f" | [{row.ci_low:.3f}, {row.ci_high:.3f}]"
                         + f" | {format_delta(row.delta_best, row.p_best)}"
                         + f" | {format_delta(row.delta_simclr, row.p_simclr)} |")
        lines.append("")
    return "\n".join(lines)


def latex(table: pd.DataFrame) -> str:
    """A booktabs table of the full-label rows, ready for a paper; best value per column in bold."""
    part = table[table["label_fraction"] == table["label_fraction"].max()]
    columns = [*BIOMARKERS, "mean_auroc"]
    best = {c: part[c].max() for c in columns}
    header = " & ".join(["Method", *[b.replace("_", r"\_") for b in BIOMARKERS], "Mean"])
    lines = [r"\begin{tabular}{l" + "c" * len(columns) + "}", r"\toprule", header + r" \\", r"\midrule"]
    for row in part.itertuples(index=False):
        cells = []
        for c in columns:
            value = f"{getattr(row, c):.3f}"
            value = rf"\textbf{{{value}}}" if np.isclose(getattr(row, c), best[c]) else value
            std = getattr(row, "mean_auroc_std" if c == "mean_auroc" else f"{c}_std")
            cells.append(rf"{value}$\pm${std:.3f}")
        name = re.sub(r"([_&%#])", r"\\\1", row.method)
        lines.append(" & ".join([name, *cells]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", ""]
    return "\n".join(lines)
