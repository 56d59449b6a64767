"""AUROC with patient-level bootstrap intervals.

B-scans of one patient are correlated (same eye, same visit), so intervals resample patients, not
B-scans: a bootstrap that resamples scans would be far too narrow.
"""

from __future__ import annotations

import numpy as np


def weighted_auroc(y_true: np.ndarray, y_score: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """AUROC of one score under many weightings at once.

    y_true, y_score: (n,); weights: (r, n) non-negative sample weights (bootstrap counts).
    Returns (r,) AUROCs, ties counted one half, equal to scikit-learn's roc_auc_score with
    sample_weight for each row. NaN where a weighting leaves one class empty.
    """
    order = np.argsort(y_score, kind="mergesort")
    score, positive = y_score[order], y_true[order].astype(bool)
    w = np.atleast_2d(weights)[:, order]
    group_starts = np.flatnonzero(np.r_[True, score[1:] != score[:-1]])  # runs of tied scores
    pos = np.add.reduceat(np.where(positive, w, 0.0), group_starts, axis=1)
    neg = np.add.reduceat(np.where(positive, 0.0, w), group_starts, axis=1)
    neg_below = np.cumsum(neg, axis=1) - neg
    total_pos, total_neg = pos.sum(axis=1), neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (pos * (neg_below + 0.5 * neg)).sum(axis=1) / (total_pos * total_neg)


def patient_bootstrap_weights(patients: np.ndarray, n_resamples: int, seed: int) -> np.ndarray:
    """(n_resamples, n_samples) weights: how often each sample's patient was drawn."""
    unique_patients, codes = np.unique(patients, return_inverse=True)
    n_patients = len(unique_patients)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_patients, size=(n_resamples, n_patients))
    counts = np.zeros((n_resamples, n_patients))
    np.add.at(counts, (np.arange(n_resamples)[:, None], draws), 1.0)
    return counts[:, codes]


def bootstrap_aurocs(y_true: np.ndarray, y_score: np.ndarray, patients: np.ndarray,
                     n_resamples: int = 1000, seed: int = 0) -> np.ndarray:
    """(n_resamples, n_biomarkers) AUROCs under patient-level resampling.

    y_true, y_score: (n, n_biomarkers); patients: (n,). The same resamples serve every biomarker,
    so the mean over biomarkers can be bootstrapped too.
    """
    weights = patient_bootstrap_weights(patients, n_resamples, seed)
    return np.stack([weighted_auroc(y_true[:, j], y_score[:, j], weights)
                     for j in range(y_true.shape[1])], axis=1)


def percentile_interval(samples: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The central `level` interval of bootstrap samples, ignoring resamples with one class."""
    tail = (1.0 - level) / 2 * 100
    lo, hi = np.nanpercentile(samples, [tail, 100 - tail])
    return float(lo), float(hi)


def seed_averaged_mean_auroc(y_true: np.ndarray, scores_per_seed: list[np.ndarray],
                             weights: np.ndarray) -> np.ndarray:
    """(r,) mean-over-biomarkers AUROC, averaged over seeds, under each row of `weights`.

    y_true: (n, k); scores_per_seed: one (n, k) array per seed, all on the same n test B-scans.
    NaN in y_true or a score marks a B-scan that does not count for that biomarker: it gets weight 0.
    """
    def auroc(scores: np.ndarray, j: int) -> np.ndarray:
        scored = ~(np.isnan(y_true[:, j]) | np.isnan(scores[:, j]))
        return weighted_auroc(np.nan_to_num(y_true[:, j]), np.nan_to_num(scores[:, j]), weights * scored)

    per_seed = [np.nanmean([auroc(scores, j) for j in range(y_true.shape[1])], axis=0) for scores in scores_per_seed]
    return np.mean(per_seed, axis=0)


def paired_bootstrap_p(samples_a: np.ndarray, samples_b: np.ndarray) -> float:
    """Two-sided p-value of 'A and B differ', from bootstrap samples drawn with the same patient
    resamples for both (paired): twice the share of resamples on the minority side of zero."""
    difference = samples_a - samples_b
    difference = difference[~np.isnan(difference)]
    if np.all(difference == 0):
        return 1.0
    # +1 in numerator and denominator: a bootstrap p-value is never exactly zero.
    below = (np.sum(difference <= 0) + 1) / (len(difference) + 1)
    above = (np.sum(difference >= 0) + 1) / (len(difference) + 1)
    return float(min(1.0, 2 * min(below, above)))


def holm_adjust(p_values: list[float]) -> list[float]:
    """Holm's step-down adjustment: controls the family-wise error over the comparisons."""
    order = np.argsort(p_values)
    adjusted = np.empty(len(p_values))
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted.tolist()
