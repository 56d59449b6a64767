"""How much coarse intensity alone gives the labels away: a logistic probe on 4x4-pooled pixels.

Each B-scan of the default cohort is mean-pooled to a 4x4 grid (16 numbers); per biomarker a
logistic regression is fitted on the training split for each regularisation strength of the
benchmark's probe grid, the strength is chosen on validation AUROC, and the test split is scored
once. A cohort whose labels a probe this weak can read would let any backbone look good, so the
simulated cohort keeps this probe's mean AUROC low while the biomarkers stay visible to a trained
network.

    python benchmarks/pixel_probe.py [--benchmark default] [--cache DIR] [--grid 4]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler

from octbench import BIOMARKERS
from octbench.benchmark import load_benchmark
from octbench.sources import load_cohort


def pooled_pixels(images: np.ndarray, grid: int) -> np.ndarray:
    """(n, grid * grid) block means of (n, size, size) images on a 0..1 scale."""
    n, height, width = images.shape
    cut = np.asarray(images[:, :height - height % grid, :width - width % grid], dtype=np.float64) / 255.0
    blocks = cut.reshape(n, grid, cut.shape[1] // grid, grid, cut.shape[2] // grid)
    return blocks.mean(axis=(2, 4)).reshape(n, grid * grid)


def probe_auroc(features: dict[str, np.ndarray], labels: dict[str, np.ndarray], c_grid) -> float:
    """Test AUROC of the logistic probe whose C scored best on validation."""
    scaler = StandardScaler().fit(features["train"])
    scaled = {part: scaler.transform(x) for part, x in features.items()}
    best = (-np.inf, None)
    for c in c_grid:
        probe = LogisticRegression(C=c, max_iter=1000).fit(scaled["train"], labels["train"])
        val = roc_auc_score(labels["val"], probe.decision_function(scaled["val"]))
        best = max(best, (val, probe), key=lambda pair: pair[0])
    return float(roc_auc_score(labels["test"], best[1].decision_function(scaled["test"])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--benchmark", default="default")
    parser.add_argument("--cache", type=Path, default=None, help="cohort cache folder (default: octbench's)")
    parser.add_argument("--grid", type=int, default=4, help="pooled grid side (default 4: 16 numbers)")
    args = parser.parse_args()
    benchmark = load_benchmark(args.benchmark)
    cohort = load_cohort(benchmark, args.cache)
    parts = {part: cohort.part(part) for part in ("train", "val", "test")}
    features = {part: pooled_pixels(cohort.images_of(rows), args.grid) for part, rows in parts.items()}
    scores = {}
    for biomarker in BIOMARKERS:
        labels = {part: rows[biomarker].to_numpy(dtype=int) for part, rows in parts.items()}
        scores[biomarker] = probe_auroc(features, labels, benchmark.evaluate.probe_c)
        print(f"{biomarker:8s} {scores[biomarker]:.3f}")
    print(f"{'mean':8s} {np.mean(list(scores.values())):.3f}  ({args.grid}x{args.grid}-pooled pixels, "
          f"logistic probe, C chosen on val)")


if __name__ == "__main__":
    main()
