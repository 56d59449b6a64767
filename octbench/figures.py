"""The figures of a benchmark report, each a function from aggregated results to one PNG."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from sklearn.metrics import roc_auc_score, roc_curve  # noqa: E402

from octbench import BIOMARKERS  # noqa: E402
from octbench.collapse import final_loss, halfway_loss, sits_at_trivial_level  # noqa: E402

LINE_STYLES = ("-", "--", "-.", ":")


def palette(n: int) -> list:
    """Distinct colours for n methods in rank order: tab10's ten hues, so that neighbouring ranks
    never share one (tab20 pairs a light and a dark shade of each). Past ten, colours repeat and
    `line_styles` tells the rows apart."""
    colours = sns.color_palette("tab10", 10)
    return [colours[i % 10] for i in range(n)]


def line_styles(n: int) -> list[str]:
    """Solid for the first ten rows, then dashed, dash-dotted, dotted."""
    return [LINE_STYLES[(i // 10) % len(LINE_STYLES)] for i in range(n)]


def save(fig, path: Path) -> None:
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)


def auroc_heatmap(table: pd.DataFrame, path: Path, biomarkers: list[str] | None = None) -> None:
    """Method x biomarker AUROC (full labels), methods in the table's order."""
    biomarkers = biomarkers or [b for b in BIOMARKERS if b in table.columns]
    part = table[table["label_fraction"] == table["label_fraction"].max()]
    grid = part.set_index("method")[[*biomarkers, "mean_auroc"]].rename(columns={"mean_auroc": "mean"})
    fig, ax = plt.subplots(figsize=(1.1 * grid.shape[1] + 3, 0.42 * len(grid) + 1.5))
    sns.heatmap(grid, annot=True, fmt=".3f", cmap="viridis", vmin=0.5, vmax=1.0, ax=ax,
                cbar_kws={"label": "test AUROC (mean over seeds)"})
    ax.set_xlabel("biomarker")
    ax.set_ylabel("pretraining method")
    ax.set_title("Linear-probe AUROC per biomarker")
    save(fig, path)


def roc_curves(cell_scores: dict[str, tuple[np.ndarray, np.ndarray]], biomarkers: list[str], path: Path,
               title: str) -> None:
    """ROC per biomarker, methods overlaid in rank order; `cell_scores` maps each method (best first)
    to (y_true, y_score), (n, biomarkers) arrays with NaN where a B-scan does not count. The legend
    of each panel gives the AUC of the curve drawn."""
    cols = min(3, len(biomarkers))
    rows = int(np.ceil(len(biomarkers) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(5.3 * cols, 5.5 * rows), sharex=True, sharey=True, squeeze=False)
    for ax in axes.ravel()[len(biomarkers):]:
        ax.axis("off")
    n = len(cell_scores)
    styles = list(zip(palette(n), line_styles(n)))
    for j, (biomarker, ax) in enumerate(zip(biomarkers, axes.ravel())):
        for rank, ((colour, style), (method, (y_true, y_score))) in enumerate(zip(styles, cell_scores.items()), 1):
            scored = ~(np.isnan(y_true[:, j]) | np.isnan(y_score[:, j]))  # NaN: not in this biomarker's test set
            fpr, tpr, _ = roc_curve(y_true[scored, j], y_score[scored, j])
            auc = roc_auc_score(y_true[scored, j], y_score[scored, j])
            ax.plot(fpr, tpr, color=colour, linestyle=style, linewidth=1.3, label=f"{rank}. {method}  {auc:.3f}")
        ax.plot([0, 1], [0, 1], color="black", linestyle=":", linewidth=0.7)
        ax.set_title(biomarker)
        ax.set_aspect("equal")
        ax.set_xlim(-0.01, 1.01)
        ax.set_ylim(-0.01, 1.01)
        # Below the diagonal is empty for any method better than chance: the legend goes there.
        ax.legend(loc="lower right", fontsize=6.5 if n > 10 else 8, frameon=True, framealpha=0.85,
                  handlelength=2.2, borderaxespad=0.3, labelspacing=0.25, title="rank. method  AUC",
                  title_fontsize=6.5 if n > 10 else 8)
    for ax in axes.ravel()[:len(biomarkers)]:
        ax.set_xlabel("false-positive rate")
        ax.set_ylabel("true-positive rate")
        ax.tick_params(labelbottom=True, labelleft=True)
    fig.suptitle(title)
    fig.tight_layout()
    save(fig, path)


def at_trivial_level(log: pd.DataFrame, trivial: float | None) -> bool:
    """Whether the loss curve ends, no longer falling, at the loss of a network that learned nothing
    (octbench/collapse.py)."""
    return sits_at_trivial_level(final_loss(log), halfway_loss(log), trivial)


def loss_curves(logs: dict[str, pd.DataFrame], path: Path, trivial: dict[str, float | None] | None = None) -> None:
    """Pretraining loss per method (small multiples: losses have different scales), with the
    method's trivial level dashed where it is known; a panel whose curve ends within 2% of that level
    and no longer falls says so in red."""
    trivial = trivial or {}
    n = len(logs)
    cols = min(4, n)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.8 * cols, 2.9 * rows), squeeze=False)
    for ax, (method, log) in zip(axes.ravel(), logs.items()):
        log = log.dropna(subset=["train_loss"])
        ax.plot(log["step"], log["train_loss"], linewidth=1.2, color="tab:blue")
        level = trivial.get(method)
        if level is not None:
            ax.axhline(level, color="0.35", linestyle="--", linewidth=1.0, label=f"trivial level {level:.3g}")
            ax.legend(loc="best", fontsize=7, frameon=False, handlelength=1.8)
        if at_trivial_level(log, level):
            ax.set_title(f"{method}: at trivial level", fontsize=9, color="red", fontweight="bold")
        else:
            ax.set_title(method, fontsize=9)
        ax.set_xlabel("step")
        ax.set_ylabel("training loss")
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    fig.suptitle("Pretraining loss (first seed of each method); dashed: the loss of a network that learned "
                 "nothing; red: the curve ends within 2% of it (last 10% of steps) and no longer falls")
    fig.tight_layout()
    save(fig, path)


def budget_curves(curves: dict[str, dict[int, list[float]]], path: Path) -> None:
    """Test mean AUROC against pretraining steps (the runs' budget probes at 1/4, 1/2 and all of
    the schedule), averaged over seeds, with each seed's points faint: a line still rising at the
    right edge belongs to a method that was still improving when its schedule ended."""
    fig, ax = plt.subplots(figsize=(8, 5))
    labels = list(curves)
    for colour, style, label in zip(palette(len(labels)), line_styles(len(labels)), labels):
        steps = sorted(curves[label])
        for step in steps:
            ax.scatter([step] * len(curves[label][step]), curves[label][step], color=colour, alpha=0.3, s=8)
        ax.plot(steps, [np.mean(curves[label][step]) for step in steps], marker="o", color=colour,
                linestyle=style, label=label)
    ax.set_xlabel("pretraining steps")
    ax.set_ylabel("mean test AUROC")
    ax.set_title("Budget curves: the default probe at 1/4, 1/2 and all of each schedule (dots: seeds)")
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, title="method")
    save(fig, path)


def label_efficiency(table: pd.DataFrame, path: Path) -> None:
    """Mean AUROC against the fraction of labelled training patients, with the 95% interval band.
    Methods run at a single fraction are left out when others have a curve: dots would bury it."""
    fractions_per_method = table.groupby("method")["label_fraction"].nunique()
    curves = fractions_per_method.index[fractions_per_method > 1]
    if len(curves):
        table = table[table["method"].isin(curves)]
    fig, ax = plt.subplots(figsize=(8, 5))
    methods = list(dict.fromkeys(table["method"]))  # the leaderboard's order
    for colour, style, method in zip(palette(len(methods)), line_styles(len(methods)), methods):
        part = table[table["method"] == method].sort_values("label_fraction")
        x = part["label_fraction"] * 100
        ax.plot(x, part["mean_auroc"], marker="o", color=colour, linestyle=style, label=method)
        ax.fill_between(x, part["ci_low"], part["ci_high"], color=colour, alpha=0.15)
    ax.set_xscale("log")
    ticks = sorted(table["label_fraction"].unique() * 100)
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("biomarker-labelled training patients (%)")
    ax.set_ylabel("mean test AUROC")
    ax.set_title("Label efficiency (band: 95% patient-bootstrap interval)")
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, title="method")
    save(fig, path)


def embedding_map(maps: dict[str, np.ndarray], biomarker: str, present: np.ndarray, patients: np.ndarray,
                  path: Path) -> None:
    """2-D maps (t-SNE) of the same test B-scans under several methods, one column per method: the
    top row coloured by one biomarker (0/1 `present`) or by the class of a multi-class task (class
    names in `present`), the bottom row by patient (clusters of one colour there are patients told
    apart, not disease)."""
    k = len(maps)
    fig, axes = plt.subplots(2, k, figsize=(4.6 * k, 9.0), squeeze=False)
    codes = pd.factorize(pd.Series(patients))[0]
    n_patients = int(codes.max()) + 1 if len(codes) else 0
    repeat = ", 20 colours repeating" if n_patients > 20 else ""
    patient_colours = np.array(sns.color_palette("tab20", 20))[codes % 20]
    present = np.asarray(present)
    if present.dtype.kind in "biuf":  # a biomarker: absent, then present drawn on top
        groups = [(present.astype(float) == value, f"{biomarker} {name}", colour)
                  for value, name, colour in ((0, "absent", "#4a7ab7"), (1, "present", "#d6453d"))]
    else:  # the classes of a multi-class task
        classes = sorted(set(present.tolist()))
        palette = sns.color_palette("tab10", max(10, len(classes)))
        groups = [(present == name, str(name), palette[i]) for i, name in enumerate(classes)]
    for column, (method, points) in enumerate(maps.items()):
        top, bottom = axes[0, column], axes[1, column]
        for part, name, colour in groups:
            top.scatter(points[part, 0], points[part, 1], s=6, linewidths=0, color=colour,
                        label=f"{name} ({part.sum()})")
        bottom.scatter(points[:, 0], points[:, 1], s=6, linewidths=0, c=patient_colours)
        top.set_title(f"{method}\ncolour: {biomarker}", fontsize=10)
        bottom.set_title(f"{method}\ncolour: patient ({n_patients} patients{repeat})", fontsize=10)
        top.legend(loc="best", fontsize=8, markerscale=2.5, frameon=True, framealpha=0.85)
        for ax in (top, bottom):
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(f"t-SNE of frozen test features: the same {len(present)} test B-scans in every panel "
                 f"(stratified by patient and {biomarker})")
    fig.tight_layout()
    save(fig, path)
