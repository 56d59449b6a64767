"""Leaderboards: every complete run record of a benchmark, aggregated over seeds, with intervals
and paired significance tests, written as Markdown, CSV and LaTeX.

A row is one benchmark entry (its label, from the records) under one protocol at one label fraction.
AUROCs, average precision and accuracy are recomputed from each run's `predictions.csv` (never
copied from `metrics.json`), so a table always agrees with the scores it summarises.

Intervals and tests come from one hierarchical bootstrap: each resample draws the test patients with
replacement (the same draws for every row, which makes the comparison of two rows paired) and each
row's training seeds with replacement, so a row whose seeds disagree gets the wider interval it
deserves. Rows are ranked, and the best pretraining row chosen, on validation AUROC: the test split
only reports.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score
from threadpoolctl import threadpool_limits

from octbench import BIOMARKERS
from octbench.clinical import INSTANCE_TERM
from octbench.errors import OctbenchError
from octbench.record import PREDICTION_COLUMNS, DamagedRecord, load_metrics, read_json
from octbench.stats import (
    ALPHA,
    hierarchical_samples,
    holm_with_bounds,
    mean_over_biomarkers,
    p_floor,
    paired_bootstrap_p,
    patient_resample_counts,
    percentile_interval,
    resampled_aurocs,
    resamples_for,
)

REFERENCE_METHOD = "simclr"  # the matched control of every row: the self-supervised standard
CLINICAL_METHOD = "clinical-supcon"  # ...except these, controlled by SupCon without clinical labels
# Rows that frame the table (floor, ceiling, diagnostic) rather than compete in it: never "best".
BASELINES = ("random-init", "supervised", "raw-pixels")
PROTOCOL_NAMES = {
    "linear": "linear probe on frozen features, one logistic regression per label (one multinomial for classes)",
    "linear-sgd": "linear probe on frozen features, one multi-label (or softmax) head trained by SGD",
    "knn": "k-nearest-neighbour probe on frozen features",
    "finetune": "backbone fine-tuned end to end with a linear head",
}
COMPARISONS = (("best", "Δ best"), ("control", "Δ control"), ("next", "Δ next"))


@dataclass
class RunResult:
    folder: Path
    metrics: dict
    predictions: pd.DataFrame

    @property
    def label(self) -> str:
        """The benchmark entry's display label, as the record states it."""
        return self.metrics.get("label") or self.metrics["method"]

    @property
    def method(self) -> str:
        return self.metrics["method"]

    @property
    def protocol(self) -> str:
        return self.metrics.get("protocol") or "linear"

    @property
    def options(self) -> dict:
        return self.metrics.get("options") or {}

    @property
    def fingerprint(self) -> str | None:
        return (self.metrics.get("cohort") or {}).get("fingerprint")

    @property
    def multiclass(self) -> bool:
        """Its cohort's labels are the classes of one multi-class task (octbench/task.py)."""
        return (self.metrics.get("task") or {}).get("kind") == "multiclass"

    @property
    def collapsed(self) -> bool:
        """Its pretraining did not learn (octbench/collapse.py): marked, never ranked best."""
        return bool((self.metrics.get("health") or {}).get("collapsed"))

    @property
    def late_gain(self) -> float | None:
        """Test mean AUROC gained over the last half of the schedule (metrics.json `budget`)."""
        curve = self.metrics.get("budget") or []
        if len(curve) < 2:
            return None
        half = min(curve[:-1], key=lambda point: abs(point["step"] - curve[-1]["step"] / 2))
        return float(curve[-1]["mean_auroc"] - half["mean_auroc"])

    @property
    def val_mean_auroc(self) -> float | None:
        """Mean validation AUROC: as recorded, else from the validation AUROC of each biomarker."""
        if self.metrics.get("val_mean_auroc") is not None:
            return float(self.metrics["val_mean_auroc"])
        per_biomarker = self.metrics.get("val_auroc") or {
            b: chosen.get("val_auroc") for b, chosen in (self.metrics.get("probe") or {}).items()
            if isinstance(chosen, dict)}
        values = list(per_biomarker.values())
        return float(np.mean(values)) if values and None not in values else None

    @property
    def commit(self) -> str:
        try:
            return read_json(self.folder / "config.json").get("git_commit") or "unknown"
        except DamagedRecord:
            return "unknown"

    @property
    def cell(self) -> tuple[str, str, float]:
        return self.label, self.protocol, float(self.metrics["label_fraction"])

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


def check_one_cohort(runs: list[RunResult]) -> None:
    """A leaderboard compares runs on one cohort; records from before fingerprints cannot tell."""
    counts = pd.Series([run.fingerprint for run in runs if run.fingerprint]).value_counts()
    if len(counts) > 1:
        listed = ", ".join(f"{fingerprint} ({n} run{'s' if n > 1 else ''})" for fingerprint, n in counts.items())
        raise OctbenchError(f"the runs come from {len(counts)} cohorts, fingerprints {listed}; a leaderboard "
                            "compares runs of one cohort: rerun the stale ones (octbench compare --force) or "
                            "move their folders out of the runs folder")


def row_names(runs: list[RunResult]) -> dict[tuple[str, str], str]:
    """The table's name of each (label, protocol): the label, plus the protocol when several appear."""
    several = len({run.protocol for run in runs}) > 1
    return {(run.label, run.protocol): f"{run.label} ({run.protocol})" if several else run.label for run in runs}


def group_cells(runs: list[RunResult]) -> dict[tuple[str, float], list[RunResult]]:
    """Runs by (row name, label fraction), seeds in order; one entry's runs must agree on the
    method and its options, and hold each seed once."""
    names = row_names(runs)
    cells: dict[tuple[str, float], list[RunResult]] = {}
    for run in sorted(runs, key=lambda r: (r.cell, r.metrics["seed"], str(r.folder))):
        label, protocol, fraction = run.cell
        cell = cells.setdefault((names[label, protocol], fraction), [])
        if cell and (run.method, json.dumps(run.options, sort_keys=True)) != (
                cell[0].method, json.dumps(cell[0].options, sort_keys=True)):
            raise OctbenchError(f"{cell[0].folder} and {run.folder} carry the same label {label!r} but differ in "
                                "method or options; give each benchmark entry a label of its own")
        if cell and cell[-1].metrics["seed"] == run.metrics["seed"]:
            raise OctbenchError(f"{cell[-1].folder} and {run.folder} are both seed {run.metrics['seed']} of "
                                f"{label!r} at label fraction {fraction}: one run recorded twice; move one "
                                "of them out of the runs folder")
        cell.append(run)
    return cells


def record_biomarkers(runs: list[RunResult]) -> list[str]:
    """The labels the records score: the canonical biomarkers in their order, then any others."""
    seen = [str(b) for b in runs[0].predictions["biomarker"].unique()]
    ordered = [b for b in BIOMARKERS if b in seen] + [b for b in seen if b not in BIOMARKERS]
    for run in runs:
        if {str(b) for b in run.predictions["biomarker"].unique()} != set(ordered):
            raise OctbenchError(f"{run.folder}: its predictions score other labels than {runs[0].folder} "
                                f"({', '.join(ordered)}); a leaderboard compares runs of one benchmark")
    return ordered


def aligned_scores(runs: list[RunResult], index: pd.Index, biomarkers: list[str] | None = None
                   ) -> tuple[np.ndarray, list[np.ndarray]]:
    """y_true (n, k) and one (n, k) score array per run, on the B-scans of `index`."""
    biomarkers = biomarkers or record_biomarkers(runs)
    tables = [run.score_table() for run in runs]
    for run, table in zip(runs, tables):
        if not table.index.equals(index):
            raise OctbenchError(f"{run.folder}: its test B-scans differ from the other runs of the benchmark; "
                                "was the benchmark's cohort changed? Rerun it with --force")
    y_true = tables[0]["y_true"][biomarkers].to_numpy(dtype=float)
    return y_true, [t["y_score"][biomarkers].to_numpy(dtype=float) for t in tables]


def scored_auroc(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """AUROC on the B-scans scored for this biomarker (NaN marks the others)."""
    scored = ~(np.isnan(y_true) | np.isnan(y_score))
    return float(roc_auc_score(y_true[scored], y_score[scored]))


def per_seed_scores(runs: list[RunResult], y_true: np.ndarray, scores: list[np.ndarray],
                    biomarkers: list[str]) -> dict[str, np.ndarray]:
    """(seeds, k) average precision, and accuracy at each run's validation threshold (positive at
    or above it; NaN where the record holds none)."""
    values = {"auprc": [], "accuracy": []}
    for run, s in zip(runs, scores):
        thresholds = run.metrics.get("threshold") or {}
        auprc, accuracy = [], []
        for j, biomarker in enumerate(biomarkers):
            scored = ~(np.isnan(y_true[:, j]) | np.isnan(s[:, j]))
            y, score = y_true[scored, j], s[scored, j]
            auprc.append(average_precision_score(y, score))
            threshold = thresholds.get(biomarker)
            accuracy.append(np.nan if threshold is None else np.mean((score >= threshold) == y))
        values["auprc"].append(auprc)
        values["accuracy"].append(accuracy)
    return {metric: np.array(v) for metric, v in values.items()}


def summarise(runs: list[RunResult], aurocs: np.ndarray, y_true: np.ndarray, scores: list[np.ndarray],
              biomarkers: list[str]) -> dict:
    """A row's columns from its runs; aurocs: (seeds, k) test AUROC of each run."""
    seeds = len(runs)
    spread = (lambda v: float(np.std(v, ddof=1))) if seeds > 1 else (lambda v: 0.0)
    per_seed = {"auroc": aurocs, **per_seed_scores(runs, y_true, scores, biomarkers)}
    validation = [run.val_mean_auroc for run in runs]
    row = {"method_name": runs[0].method, "protocol": runs[0].protocol,
           "options": json.dumps(runs[0].options, sort_keys=True), "seeds": seeds,
           "val_mean_auroc": np.nan if None in validation else float(np.mean(validation)),
           "collapsed_seeds": sum(run.collapsed for run in runs)}
    gains = [run.late_gain for run in runs]
    row["gain_last_half"] = np.nan if None in gains else float(np.mean(gains))
    for j, biomarker in enumerate(biomarkers):
        row[biomarker] = per_seed["auroc"][:, j].mean()
        row[f"{biomarker}_std"] = spread(per_seed["auroc"][:, j])
    means = per_seed["auroc"].mean(axis=1)
    row["mean_auroc"], row["mean_auroc_std"] = means.mean(), spread(means)
    for metric in ("auprc", "accuracy"):
        for j, biomarker in enumerate(biomarkers):
            row[f"{biomarker}_{metric}"] = per_seed[metric][:, j].mean()
        row[f"mean_{metric}"] = per_seed[metric].mean()
    if runs[0].multiclass:  # the multi-class probe's accuracy: its most probable class, per seed
        accuracy = [multiclass_accuracy(y_true, s) for s in scores]
        row["accuracy"], row["accuracy_std"] = float(np.mean(accuracy)), spread(accuracy)
    return row


def multiclass_accuracy(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Share of B-scans whose most probable class is their class ((n, k) one-hot and probabilities)."""
    return float(np.mean(scores.argmax(axis=1) == y_true.argmax(axis=1)))


def leaderboard(runs: list[RunResult], n_resamples: int | None = None, seed: int = 0) -> pd.DataFrame:
    """One row per (entry label, protocol, label fraction): AUROC per biomarker and mean, as mean and
    std over seeds; a 95% hierarchical-bootstrap interval of the seed-averaged mean AUROC; within
    each label fraction, the paired difference from the best pretraining row, the matched control and
    the next row, with Holm-adjusted p-values; average precision and accuracy.

    n_resamples: at least this many resamples; more when the comparisons need them
    (`stats.resamples_for`). Settings the Markdown header states are kept in `table.attrs`.
    """
    if not runs:
        raise OctbenchError("no complete runs to aggregate; run 'octbench run' or 'octbench compare' first")
    check_one_cohort(runs)
    cells = group_cells(runs)
    biomarkers = record_biomarkers(runs)
    index = next(iter(cells.values()))[0].score_table().index
    block_sizes = pd.Series([(fraction, cell_runs[0].protocol) for (_, fraction), cell_runs in cells.items()]
                            ).value_counts()
    n_resamples = resamples_for(int(block_sizes.max()) - 1, ALPHA, at_least=n_resamples or 0)
    codes, counts = patient_resample_counts(index.get_level_values("patient").to_numpy(), n_resamples, seed)
    rows, samples = [], {}
    # One BLAS thread: the resamples are many small matrix products, which threads waiting on each
    # other make several times slower on a busy machine.
    with threadpool_limits(limits=1, user_api="blas"):
        for (name, fraction), cell_runs in cells.items():
            rows.append(summarise_cell(name, fraction, cell_runs, index, biomarkers, codes, counts, seed, samples))
    table = pd.DataFrame(rows)
    on_validation = bool(table["val_mean_auroc"].notna().all())
    blocks = [compare_block(rank_block(block, on_validation), samples, p_floor(n_resamples))
              for _, block in table.groupby(["label_fraction", "protocol"], sort=False)]
    order = {fraction: i for i, fraction in enumerate(sorted(table["label_fraction"].unique(), reverse=True))}
    blocks.sort(key=lambda b: (order[b["label_fraction"].iloc[0]], b["protocol"].iloc[0]))
    table = pd.concat(blocks, ignore_index=True)
    fingerprints = sorted({run.fingerprint for run in runs if run.fingerprint})
    sources = sorted({(run.metrics.get("cohort") or {}).get("source") or "" for run in runs} - {""})
    table.attrs.update({
        "benchmark": runs[0].metrics.get("benchmark", ""), "biomarkers": biomarkers,
        "multiclass": runs[0].multiclass,
        "n_resamples": n_resamples, "p_floor": p_floor(n_resamples), "ranked_on_validation": on_validation,
        "protocols": sorted(table["protocol"].unique()),
        "cohort": {"source": ", ".join(sources) or None, "fingerprint": fingerprints[0] if fingerprints else None,
                   "unrecorded": sum(run.fingerprint is None for run in runs)},
    })
    return table


def summarise_cell(name: str, fraction: float, runs: list[RunResult], index: pd.Index, biomarkers: list[str],
                   codes: np.ndarray, counts: np.ndarray, seed: int, samples: dict) -> dict:
    """A row's columns; its hierarchical resamples of the seed-averaged mean AUROC go to `samples`."""
    y_true, scores = aligned_scores(runs, index, biomarkers)
    resampled = [resampled_aurocs(y_true, s, codes, counts) for s in scores]  # per seed: (k,), (r, k)
    per_seed = np.stack([mean_over_biomarkers(resamples) for _, resamples in resampled])
    # Each row's seed draws depend on the row alone: adding a row leaves the others' intervals as they were.
    rng = np.random.default_rng([seed, zlib.crc32(f"{name}\0{fraction}".encode())])
    samples[name, fraction] = hierarchical_samples(per_seed, rng)
    aurocs = np.stack([point for point, _ in resampled])
    row = {"method": name, "label_fraction": fraction, **summarise(runs, aurocs, y_true, scores, biomarkers)}
    row["baseline"] = row["method_name"] in BASELINES
    row["ci_low"], row["ci_high"] = percentile_interval(samples[name, fraction])
    return row


def rank_block(block: pd.DataFrame, on_validation: bool) -> pd.DataFrame:
    """Pretraining rows, then baselines, each in the order of their mean validation AUROC (test mean
    AUROC when some record has none); ties by name."""
    key = block["val_mean_auroc" if on_validation else "mean_auroc"].round(12)  # a mean's last bit is no tie-break
    block = block.assign(key=key).sort_values(["baseline", "key", "method"], ascending=[True, False, True],
                                              ignore_index=True).drop(columns="key")
    block["rank"] = block.groupby("baseline").cumcount() + 1
    return block


def is_instance_only(options: str) -> bool:
    """SupCon with the instance term alone: clinical-supcon without clinical labels."""
    clinical = json.loads(options).get("clinical") or []
    return len(clinical) == 1 and clinical[0][0] == INSTANCE_TERM


def control_of(row, block: pd.DataFrame) -> str | None:
    """The row's matched control: for clinical-supcon, clinical-supcon on the instance term alone;
    for every other method, simclr (the row labelled simclr when there are several)."""
    if row.method_name == CLINICAL_METHOD:
        candidates = block[(block["method_name"] == CLINICAL_METHOD) & block["options"].map(is_instance_only)]
    else:
        candidates = block[block["method_name"] == REFERENCE_METHOD]
        candidates = candidates.sort_values("method", key=lambda m: m != REFERENCE_METHOD, kind="stable")
    return candidates["method"].iloc[0] if len(candidates) else None


def compare_block(block: pd.DataFrame, samples: dict, floor: float) -> pd.DataFrame:
    """Each row against the best pretraining row, its matched control and the row ranked just below
    it (within its part: pretraining rows or baselines); Holm within each of the three families."""
    fraction = block["label_fraction"].iloc[0]
    contenders = block[~block["baseline"] & (block["collapsed_seeds"] < block["seeds"])]  # collapsed: never best
    best = (contenders if len(contenders) else block)["method"].iloc[0]  # ranked on validation
    below = block.groupby("baseline")["method"].shift(-1)
    references = {"best": [best] * len(block), "control": [control_of(row, block) for row in block.itertuples()],
                  "next": [None if pd.isna(name) else name for name in below]}
    means = dict(zip(block["method"], block["mean_auroc"]))
    for column, refs in references.items():
        refs = [None if ref == name else ref for ref, name in zip(refs, block["method"])]
        tested = [i for i, ref in enumerate(refs) if ref is not None]
        raw = [paired_bootstrap_p(samples[block["method"].iloc[i], fraction], samples[refs[i], fraction])
               for i in tested]
        adjusted, bounds = holm_with_bounds(raw, floor) if tested else ([], [])
        p, bound = np.full(len(block), np.nan), np.zeros(len(block), dtype=bool)
        p[tested], bound[tested] = adjusted, bounds
        block[f"{column}_method"] = refs
        block[f"delta_{column}"] = [np.nan if ref is None else means[name] - means[ref]
                                    for ref, name in zip(refs, block["method"])]
        block[f"p_{column}"], block[f"p_{column}_bound"] = p, bound
    block["best_method"] = best
    return block


# ---- rendering -------------------------------------------------------------------------------------

def round_up(p: float) -> str:
    """p rounded up to two significant digits: an honest upper bound."""
    digits = max(0, 1 - int(np.floor(np.log10(p))))
    return f"{np.ceil(p * 10 ** digits - 1e-9) / 10 ** digits:.{digits}f}".rstrip("0").rstrip(".")


def format_p(p: float, bound: bool) -> str:
    if bound:
        return f"p < {round_up(p)}"
    return f"p = {p:.3f}" if p >= 0.01 else f"p = {p:.2g}"


def format_delta(delta: float, p: float, bound: bool = False) -> str:
    if np.isnan(delta):
        return "—"
    if np.isnan(p):
        return f"{delta:+.3f}"
    return f"{delta:+.3f}{'*' if p < ALPHA else ''} ({format_p(p, bound)})"


def table_biomarkers(table: pd.DataFrame) -> list[str]:
    return table.attrs.get("biomarkers") or [b for b in BIOMARKERS if b in table.columns]


def best_values(block: pd.DataFrame, columns: list[str]) -> dict[str, float]:
    """Per column, the best pretraining value as printed (3 decimals); none where fewer than two
    rows compete."""
    contenders = block[~block["baseline"]] if (~block["baseline"]).any() else block
    if len(contenders) < 2:
        return {}
    return {c: round(contenders[c].max(), 3) for c in columns}


def describe_cohort(cohort: dict | None) -> str:
    if not cohort or not cohort.get("fingerprint"):
        return "Cohort: not recorded (run records from before cohort fingerprints)."
    text = f"Cohort: {cohort.get('source') or 'unknown source'}, fingerprint `{cohort['fingerprint']}`"
    if cohort.get("unrecorded"):
        text += f" ({cohort['unrecorded']} older records carry no fingerprint)"
    return text + "."


def describe_protocols(protocols) -> str:
    names = [f"`{p}`, {PROTOCOL_NAMES[p]}" if p in PROTOCOL_NAMES else f"`{p}`" for p in protocols]
    return ("Protocol: " if len(names) == 1 else "Protocols: ") + "; ".join(names) + "."


def one_seed_rows(table: pd.DataFrame) -> list[str]:
    """The methods with one seed, each with the label fractions where it has one seed when it has more
    elsewhere (a 3-seed row at 100% is not a one-seed row because its 10% cell has one seed)."""
    rows = []
    for method, cells in table.groupby("method", sort=True):
        single = cells.loc[cells["seeds"] == 1, "label_fraction"]
        if len(single) == len(cells):
            rows.append(method)
        elif len(single):
            rows.append(f"{method} (at {', '.join(f'{f:.0%}' for f in sorted(single, reverse=True))})")
    return rows


def header(table: pd.DataFrame, benchmark: str, commits, cohort, protocols) -> list[str]:
    attrs = table.attrs
    n = attrs.get("n_resamples", "the")
    on_validation = attrs.get("ranked_on_validation", False)
    fractions = ", ".join(f"{f:.0%}" for f in sorted(table["label_fraction"].unique(), reverse=True))
    seeds = sorted(table["seeds"].unique())
    one_seed = one_seed_rows(table)
    if len(seeds) > 1:
        seeds_text = f"Seeds per row: {seeds[0]} to {seeds[-1]}"
        seeds_text += f"; one seed (†): {', '.join(one_seed)}" if one_seed else ""
    else:
        seeds_text = f"Seeds per row: {seeds[0]}" + (" (every interval resamples patients only)" if one_seed else "")
    facts = [describe_cohort(cohort), describe_protocols(protocols),
             f"Label fractions: {fractions} of training patients.", seeds_text + "."]
    if commits:
        short = [c[:12] + ("-dirty" if c.endswith("-dirty") else "") for c in commits]
        facts.append("Runs made at octbench commit(s): " + ", ".join(f"`{c}`" for c in short) + ".")
    order = ("ordered by mean validation AUROC (averaged over seeds)" if on_validation
             else "ordered by test mean AUROC: no validation scores in these records")
    chosen = ("chosen on validation AUROC" if on_validation
              else "chosen on test mean AUROC, as the records hold no validation scores")
    return [
        f"# Leaderboard: {benchmark}", "", " ".join(facts), "",
        ("Test one-vs-rest AUROC per class, and the multi-class probe's accuracy (its most probable class)"
         if attrs.get("multiclass") else "Test AUROC per biomarker")
        + f", mean ± std over seeds. Rows are {order}: pretraining methods first, then "
        f"the baselines ({', '.join(BASELINES)}) in a block of their own. **Bold**: the best pretraining "
        "value of each column.", "",
        f"`95% CI`: percentile interval of the seed-averaged mean AUROC over {n} hierarchical bootstrap "
        "resamples. Each resample draws the row's training seeds with replacement and the test patients with "
        "replacement (the same patients for every row, so differences are paired), and averages the "
        "mean-over-biomarkers AUROC over the drawn seeds; a row with one seed (†) resamples patients only.", "",
        f"`Δ best`: difference in mean AUROC from the best pretraining row, {chosen} (named above each table). "
        f"`Δ control`: from the matched control, {REFERENCE_METHOD}; for {CLINICAL_METHOD} rows, "
        f"{CLINICAL_METHOD} with the instance term only (SupCon without clinical labels). `Δ next`: from the "
        "row ranked just below. Differences and two-sided p-values come from the same resamples, "
        "Holm-adjusted within each column of a label fraction; `*` marks p < 0.05; `p < x`: no resample "
        f"crossed zero, and x is the smallest p that {n} resamples can show (after Holm).", "",
        "`gain, last half`: test mean AUROC gained from half to all of the pretraining schedule (each run's "
        "budget curve, averaged over seeds; — without one): a clear gain means the method was still improving. "
        "⚠ collapsed: the loss stayed at its trivial level or the embedding collapsed (metrics.json `health`); "
        "such a row is never chosen as the best.", ""]


def cell_text(value: float, std: float, seeds: int, best: float | None) -> str:
    text = f"**{value:.3f}**" if best is not None and round(value, 3) == best else f"{value:.3f}"
    return text + (f" ± {std:.3f}" if seeds > 1 else "")


def markdown_rows(part: pd.DataFrame, biomarkers: list[str], best: dict, ranked: bool) -> list[str]:
    multiclass = "accuracy" in part.columns  # a multi-class task: its probe's accuracy after the mean AUROC
    lines = ["| rank | method | seeds | " + " | ".join(biomarkers) + " | mean |" + (" accuracy |" if multiclass else "")
             + " 95% CI | Δ best | Δ control | Δ next | gain, last half |",
             "|---:|---|---:|" + "---:|" * len(biomarkers) + "---:|" + ("---:|" if multiclass else "")
             + "---|---|---|---|---:|"]
    for row in part.to_dict("records"):
        cells = [cell_text(row[b], row[f"{b}_std"], row["seeds"], best.get(b)) for b in biomarkers]
        deltas = [format_delta(row[f"delta_{c}"], row[f"p_{c}"], bool(row[f"p_{c}_bound"])) for c, _ in COMPARISONS]
        seeds = f"{row['seeds']}" + (" †" if row["seeds"] == 1 else "")
        name = row["method"].replace("|", "/")
        if row.get("collapsed_seeds"):
            name += f" ⚠ collapsed ({row['collapsed_seeds']}/{row['seeds']} seeds)"
        gain = "—" if pd.isna(row.get("gain_last_half", np.nan)) else f"{row['gain_last_half']:+.3f}"
        lines.append(f"| {row['rank'] if ranked else ''} | {name} | {seeds} | "
                     + " | ".join(cells)
                     + f" | {cell_text(row['mean_auroc'], row['mean_auroc_std'], row['seeds'], best.get('mean_auroc'))}"
                     + (f" | {cell_text(row['accuracy'], row['accuracy_std'], row['seeds'], best.get('accuracy'))}"
                        if multiclass else "")
                     + f" | [{row['ci_low']:.3f}, {row['ci_high']:.3f}] | " + " | ".join(deltas) + f" | {gain} |")
    return lines


def secondary_rows(part: pd.DataFrame, biomarkers: list[str]) -> list[str]:
    def pair(auprc: float, accuracy: float) -> str:
        return f"{auprc:.3f} / " + ("—" if np.isnan(accuracy) else f"{accuracy:.3f}")

    lines = ["| method | " + " | ".join(biomarkers) + " | mean |", "|---|" + "---:|" * (len(biomarkers) + 1)]
    for row in part.to_dict("records"):
        lines.append(f"| {row['method'].replace('|', '/')} | "
                     + " | ".join(pair(row[f"{b}_auprc"], row[f"{b}_accuracy"]) for b in biomarkers)
                     + f" | {pair(row['mean_auprc'], row['mean_accuracy'])} |")
    return lines


def markdown(table: pd.DataFrame, benchmark: str, commits: list[str] = (), *, cohort: dict | None = None,
             protocol: str | list[str] | None = None) -> str:
    """The leaderboard as Markdown; cohort and protocol default to what the table's records state."""
    biomarkers = table_biomarkers(table)
    cohort = cohort if cohort is not None else table.attrs.get("cohort")
    protocols = [protocol] if isinstance(protocol, str) else list(protocol or table.attrs.get("protocols")
                                                                   or sorted(table["protocol"].unique()))
    lines = header(table, benchmark, commits, cohort, protocols)
    several = table["protocol"].nunique() > 1
    chosen = "chosen on validation" if table.attrs.get("ranked_on_validation") else "chosen on test mean AUROC"
    for (fraction, protocol_name), part in table.groupby(["label_fraction", "protocol"], sort=False):
        multiclass = table.attrs.get("multiclass", False)
        best = best_values(part, [*biomarkers, "mean_auroc", *(["accuracy"] if multiclass else [])])
        title = f"## {'Class' if multiclass else 'Biomarker'} labels: {fraction:.0%} of training patients"
        lines += [title + (f", {protocol_name}" if several else ""), ""]
        methods, baselines = part[~part["baseline"]], part[part["baseline"]]
        controls = sorted(set(part["control_method"].dropna()))
        note = f"Best pretraining row ({chosen}): {part['best_method'].iloc[0]}."
        if controls:
            note += f" Matched controls: {', '.join(controls)}."
        lines += [note, ""]
        if len(methods):
            lines += [*markdown_rows(methods, biomarkers, best, ranked=True), ""]
        if len(baselines):
            lines += ["Baselines (they frame the table and are never “best”):", "",
                      *markdown_rows(baselines, biomarkers, best, ranked=False), ""]
        lines += ["Average precision (AUPRC) / accuracy at the threshold chosen on validation, mean over seeds "
                  "(— where the records hold no threshold"
                  + ("; a multi-class probe's accuracy is its most probable class, in the table above" if multiclass
                     else "") + "):", "", *secondary_rows(part, biomarkers), ""]
    return "\n".join(lines)


LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                 "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def tex(text) -> str:
    return "".join(LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def latex(table: pd.DataFrame, benchmark: str | None = None) -> str:
    """A booktabs table, ready for a paper: a block per label fraction (pretraining rows, then the
    baselines), mean ± std over seeds, the 95% interval, best pretraining value per column in bold."""
    biomarkers = table_biomarkers(table)
    benchmark = benchmark or table.attrs.get("benchmark") or ""
    columns = [*biomarkers, "mean_auroc"]
    n_columns = 3 + len(columns) + 1
    protocols = "; ".join(PROTOCOL_NAMES.get(p, p) for p in sorted(table["protocol"].unique()))
    order = ("mean validation AUROC" if table.attrs.get("ranked_on_validation")
             else "test mean AUROC (no validation scores in the records)")
    caption = (f"Test AUROC on {tex(benchmark)}, {tex(protocols)}: mean $\\pm$ std over seeds. 95\\% CI: hierarchical "
               f"bootstrap over training seeds and test patients ({table.attrs.get('n_resamples', '')} resamples). "
               f"Rows ordered by {order}; baselines below each block; bold: best pretraining value of each column; "
               "$^\\dagger$: one seed (patients resampled only).")
    label = "".join(ch if ch.isalnum() or ch == "-" else "-" for ch in benchmark.lower()) or "octbench"
    lines = [r"\begin{table}[t]", r"\centering", r"\small", rf"\caption{{{caption}}}",
             rf"\label{{tab:leaderboard-{label}}}", r"\begin{tabular}{ll" + "c" * (n_columns - 2) + "}",
             r"\toprule",
             " & ".join(["Labels", "Method", "Seeds", *map(tex, biomarkers), "Mean", r"95\% CI"]) + r" \\"]
    several = table["protocol"].nunique() > 1
    for (fraction, protocol), part in table.groupby(["label_fraction", "protocol"], sort=False):
        lines.append(r"\midrule")
        best = best_values(part, columns)
        first = tex(f"{fraction:.0%}" + (f" {protocol}" if several else ""))
        for i, row in enumerate(part.to_dict("records")):
            if i and row["baseline"] and not part["baseline"].iloc[i - 1]:
                lines.append(rf"\cmidrule(l){{2-{n_columns}}}")
            cells = []
            for c in columns:
                value = f"{row[c]:.3f}"
                value = rf"\textbf{{{value}}}" if c in best and round(row[c], 3) == best[c] else value
                std = row["mean_auroc_std" if c == "mean_auroc" else f"{c}_std"]
                cells.append(value + (rf"$\pm${std:.3f}" if row["seeds"] > 1 else ""))
            seeds = f"{row['seeds']}" + (r"$^\dagger$" if row["seeds"] == 1 else "")
            lines.append(" & ".join([first if i == 0 else "", tex(row["method"]), seeds, *cells,
                                     f"[{row['ci_low']:.3f}, {row['ci_high']:.3f}]"]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(lines)
