"""The figures of a benchmark report, each a function from aggregated results to one PNG."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from sklearn.metrics import roc_curve  # noqa: E402

from octbench import BIOMARKERS  # noqa: E402

# Colour-bar labels of the clinical values an embedding map is coloured by.
UNITS = {"CST": "CST (µm)", "BCVA": "BCVA (ETDRS letters)"}


def palette(n: int) -> list:
    """Distinct colours for n overlaid methods: tab10's are more distinct than tab20's pairs."""
    return sns.color_palette("tab10" if n <= 10 else "tab20", n)


def save(fig, path: Path) -> None:
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)


def auroc_heatmap(table: pd.DataFrame, path: Path) -> None:
    """Method x biomarker AUROC (full labels), methods ordered by mean AUROC."""
    part = table[table["label_fraction"] == table["label_fraction"].max()]
    grid = part.set_index("method")[[*BIOMARKERS, "mean_auroc"]].rename(columns={"mean_auroc": "mean"})
    fig, ax = plt.subplots(figsize=(1.1 * grid.shape[1] + 3, 0.42 * len(grid) + 1.5))
    sns.heatmap(grid, annot=True, fmt=".3f", cmap="viridis", vmin=0.5, vmax=1.0, ax=ax,
                cbar_kws={"label": "test AUROC (mean over seeds)"})
    ax.set_xlabel("biomarker")
    ax.set_ylabel("pretraining method")
    ax.set_title("Linear-probe AUROC per biomarker")
    save(fig, path)


def roc_curves(cell_scores: dict[str, tuple[np.ndarray, np.ndarray]], path: Path) -> None:
    """ROC per biomarker, methods overlaid; `cell_scores` maps method -> (y_true, y_score) of its first seed."""
    fig, axes = plt.subplots(2, 3, figsize=(13, 8.5), sharex=True, sharey=True)
    colours = palette(len(cell_scores))
    for j, (biomarker, ax) in enumerate(zip(BIOMARKERS, axes.ravel())):
        for colour, (method, (y_true, y_score)) in zip(colours, cell_scores.items()):
            scored = ~(np.isnan(y_true[:, j]) | np.isnan(y_score[:, j]))  # NaN: not in this biomarker's test set
            fpr, tpr, _ = roc_curve(y_true[scored, j], y_score[scored, j])
            ax.plot(fpr, tpr, color=colour, linewidth=1.2, label=method)
        ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=0.8)
        ax.set_title(biomarker)
        ax.set_aspect("equal")
    for ax in axes[-1]:
        ax.set_xlabel("false-positive rate")
    for ax in axes[:, 0]:
        ax.set_ylabel("true-positive rate")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, title="method")
    fig.suptitle("Test ROC curves (seed 0 of each method)")
    fig.tight_layout()
    save(fig, path)


def loss_curves(logs: dict[str, pd.DataFrame], path: Path) -> None:
    """Pretraining loss per method (small multiples: losses have different scales)."""
    n = len(logs)
    cols = min(4, n)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.7 * rows), squeeze=False)
    for ax, (method, log) in zip(axes.ravel(), logs.items()):
        log = log.dropna(subset=["train_loss"])
        ax.plot(log["step"], log["train_loss"], linewidth=1.2)
        ax.set_title(method, fontsize=9)
        ax.set_xlabel("step")
        ax.set_ylabel("training loss")
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    fig.suptitle("Pretraining loss (seed 0)")
    fig.tight_layout()
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
    for colour, method in zip(palette(len(methods)), methods):
        part = table[table["method"] == method].sort_values("label_fraction")
        x = part["label_fraction"] * 100
        ax.plot(x, part["mean_auroc"], marker="o", color=colour, label=method)
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


def embedding_map(points: np.ndarray, colours: pd.DataFrame, method: str, path: Path) -> None:
    """2-D map of test features, one panel per biomarker or clinical value."""
    n = colours.shape[1]
    cols = min(3, n)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 4.0 * rows), squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    for ax, column in zip(axes.ravel(), colours.columns):
        values = colours[column].to_numpy()
        binary = set(np.unique(values)) <= {0, 1}
        scatter = ax.scatter(points[:, 0], points[:, 1], c=values, s=3, linewidths=0,
                             cmap="coolwarm" if binary else "viridis")
        ax.set_title(f"{column}" + (" (red: present)" if binary else ""), fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        if not binary:
            fig.colorbar(scatter, ax=ax, fraction=0.046, label=UNITS.get(column, column))
    fig.suptitle(f"t-SNE of frozen test features: {method}")
    fig.tight_layout()
    save(fig, path)
