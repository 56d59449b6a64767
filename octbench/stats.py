"""AUROC with bootstrap intervals that resample what varies: test patients and training seeds.

B-scans of one patient are correlated (same eye, same visit), so intervals resample patients, not
B-scans: a bootstrap that resamples scans would be far too narrow. A method's score also varies
with its training seed (initialisation, augmentations, labelled subset), so a leaderboard's
intervals and tests resample the seeds of a row too (`hierarchical_samples`).

Under patient resampling, an AUROC needs only, for each pair of patients (p, q), how often a
positive scan of p outscores a negative scan of q (`patient_pair_wins`): each resample is then a
quadratic form in its patient counts, exact and fast enough for tens of thousands of resamples.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

ALPHA = 0.05  # the level a leaderboard marks with '*'
# The smallest p-values a leaderboard's resamples can show (2 / (resamples + 1)): round numbers, so a
# p at the floor is printed as 'p < 0.0002' rather than as a made-up value.
P_FLOORS = (0.001, 0.0005, 0.0002, 0.0001)
PAIR_CELLS_LIMIT = 5_000_000  # scans x patients above which the per-scan weighting is used instead


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


def patient_resample_counts(patients: np.ndarray, n_resamples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Patient codes (n,) of the samples and (n_resamples, n_patients) counts: how often each
    patient was drawn (patients drawn with replacement, as many as there are)."""
    unique_patients, codes = np.unique(patients, return_inverse=True)
    n_patients = len(unique_patients)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_patients, size=(n_resamples, n_patients))
    counts = np.zeros((n_resamples, n_patients))
    np.add.at(counts, (np.arange(n_resamples)[:, None], draws), 1.0)
    return codes.ravel(), counts


def patient_bootstrap_weights(patients: np.ndarray, n_resamples: int, seed: int) -> np.ndarray:
    """(n_resamples, n_samples) weights: how often each sample's patient was drawn."""
    codes, counts = patient_resample_counts(patients, n_resamples, seed)
    return counts[:, codes]


def patient_pair_wins(y_true: np.ndarray, y_score: np.ndarray, codes: np.ndarray, n_patients: int
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """wins (P, P): over positive scans of patient p and negative scans of patient q, the number of
    pairs the positive outscores (ties one half); and the positive and negative scans per patient."""
    order = np.argsort(y_score, kind="mergesort")
    score, positive, patient = y_score[order], y_true[order].astype(bool), codes[order]
    group = np.cumsum(np.r_[True, score[1:] != score[:-1]]) - 1  # runs of tied scores
    n_groups = int(group[-1]) + 1 if len(group) else 0
    negatives = np.bincount(group[~positive] * n_patients + patient[~positive],
                            minlength=n_groups * n_patients).reshape(n_groups, n_patients).astype(float)
    beaten = np.cumsum(negatives, axis=0) - 0.5 * negatives  # per tie group: negatives below, ties one half
    # Sum each positive scan's row by its patient (reduceat over scans sorted by patient; no BLAS:
    # a small matrix product can be slower than this on a loaded machine).
    by_patient = np.argsort(patient[positive], kind="stable")
    rows, owners = beaten[group[positive][by_patient]], patient[positive][by_patient]
    wins = np.zeros((n_patients, n_patients))
    present, starts = np.unique(owners, return_index=True)
    if len(present):
        wins[present] = np.add.reduceat(rows, starts, axis=0)
    return (wins, np.bincount(patient[positive], minlength=n_patients).astype(float),
            negatives.sum(axis=0))


def resampled_auroc(y_true: np.ndarray, y_score: np.ndarray, codes: np.ndarray, counts: np.ndarray
                    ) -> tuple[float, np.ndarray]:
    """AUROC of one score, and (r,) AUROCs under each row of patient `counts` (r, P): equal to
    roc_auc_score, and to `weighted_auroc` with each scan weighted by its patient's count. NaN in
    y_true or y_score marks a scan that does not count; NaN where a resample leaves one class empty."""
    scored = ~(np.isnan(y_true) | np.isnan(y_score))
    y, s, c = y_true[scored], y_score[scored], codes[scored]
    n_patients = counts.shape[1]
    if len(y) * n_patients > PAIR_CELLS_LIMIT or n_patients ** 2 > 1000 * max(len(y), 1):
        step = max(1, 2_000_000 // max(len(y), 1))  # scans as the unit: bounded memory per chunk
        samples = np.concatenate([weighted_auroc(y, s, counts[i:i + step][:, c]) for i in range(0, len(counts), step)])
        return float(weighted_auroc(y, s, np.ones((1, len(y))))[0]), samples
    wins, positives, negatives = patient_pair_wins(y, s, c, n_patients)
    with np.errstate(invalid="ignore", divide="ignore"):
        samples = ((counts @ wins) * counts).sum(axis=1) / ((counts @ positives) * (counts @ negatives))
        return float(wins.sum() / (positives.sum() * negatives.sum())), samples


def clustered_auroc(y_true: np.ndarray, y_score: np.ndarray, codes: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """(r,) AUROCs of one score under each row of patient `counts` (see `resampled_auroc`)."""
    return resampled_auroc(y_true, y_score, codes, counts)[1]


def resampled_aurocs(y_true: np.ndarray, y_score: np.ndarray, codes: np.ndarray, counts: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
    """AUROC per biomarker (k,) and under each patient resample (r, k); y_true, y_score: (n, k), NaN
    where a scan does not count for a biomarker."""
    results = [resampled_auroc(y_true[:, j], y_score[:, j], codes, counts) for j in range(y_true.shape[1])]
    return np.array([point for point, _ in results]), np.stack([samples for _, samples in results], axis=1)


def mean_over_biomarkers(samples: np.ndarray) -> np.ndarray:
    """(r,) mean of (r, k) resampled AUROCs over biomarkers, leaving out those a resample made
    one-class (NaN where all are)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(samples, axis=1)


def mean_auroc_samples(y_true: np.ndarray, y_score: np.ndarray, codes: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """(r,) mean-over-biomarkers AUROC under each patient resample; y_true, y_score: (n, k), NaN
    where a scan does not count for a biomarker."""
    return mean_over_biomarkers(resampled_aurocs(y_true, y_score, codes, counts)[1])


def hierarchical_samples(per_seed: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(r,) seed-averaged statistic with the seeds resampled too.

    per_seed: (S, r), the statistic of each of a row's S seeds under each of r patient resamples.
    Resample i draws S seeds with replacement and averages their statistic under patient resample i,
    so an interval widens with the disagreement between seeds; one seed leaves patients only.
    """
    n_seeds, n_resamples = per_seed.shape
    if n_seeds == 1:
        return per_seed[0].copy()
    draws = rng.integers(0, n_seeds, size=(n_resamples, n_seeds))
    return np.take_along_axis(per_seed.T, draws, axis=1).mean(axis=1)


def resamples_for(n_comparisons: int, alpha: float = ALPHA, at_least: int = 0) -> int:
    """Resamples enough for a family of `n_comparisons` Holm-adjusted tests at `alpha`: the smallest
    p they can show, 2 / (resamples + 1), is a round number at most alpha / (10 m) (so at least
    20 m / alpha resamples), capped at P_FLOORS[-1]; `at_least` asks for more."""
    target = alpha / (10 * max(1, n_comparisons))
    floor = next((f for f in P_FLOORS if f <= target), P_FLOORS[-1])
    return max(round(2 / floor) - 1, at_least)


def p_floor(n_resamples: int) -> float:
    """The smallest p `paired_bootstrap_p` gives from n_resamples: no resample on the other side."""
    return 2 / (n_resamples + 1)


def bootstrap_aurocs(y_true: np.ndarray, y_score: np.ndarray, patients: np.ndarray,
                     n_resamples: int = 1000, seed: int = 0) -> np.ndarray:
    """(n_resamples, n_biomarkers) AUROCs under patient-level resampling.

    y_true, y_score: (n, n_biomarkers); patients: (n,). The same resamples serve every biomarker,
    so the mean over biomarkers can be bootstrapped too.
    """
    codes, counts = patient_resample_counts(patients, n_resamples, seed)
    return np.stack([clustered_auroc(y_true[:, j].astype(float), y_score[:, j].astype(float), codes, counts)
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


def holm_with_bounds(p_values: list[float], floor: float) -> tuple[list[float], list[bool]]:
    """Holm-adjusted p-values, and for each whether it is only an upper bound: a p at the
    resampling floor may be anything below it, and so may an adjusted p that depends on one."""
    high = holm_adjust(p_values)
    low = holm_adjust([0.0 if math.isclose(p, floor) or p < floor else p for p in p_values])
    return high, [h > lo and h < 1.0 for h, lo in zip(high, low)]
