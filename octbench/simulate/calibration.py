"""The OLIVES figures the simulated cohort must reproduce, and how to measure them on a table.

Targets come from the real OLIVES label tables (split 1), as listed in `shared/olives/README.md`.
Biomarker figures are measured on the biomarker-labelled B-scans (OLIVES: the first and last visit
of each training eye, 49 B-scans each), the pool figures on every volume of the pretraining pool.
The same code measures the real tables in `tests/test_cohort_calibration.py`, so simulated and real
figures are compared like for like.

B-scan position is the distance from the fovea in B-scans: |Scan (n/49) - 25| in OLIVES, which is
|slice - 24| for 0-based slices.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

BIOMARKER_COLUMNS = ("IRHRF", "PAVF", "FAVF", "IRF", "DRT_ME", "VD")
FOVEAL_SLICE = 24
POSITION_BANDS = {"0_4": (0, 4), "5_12": (5, 12), "13_24": (13, 24)}
# The biomarkers whose CST ranking and prevalence OLIVES reports by B-scan position.
LOCAL_BIOMARKERS = ("IRF", "DRT_ME", "IRHRF")

OLIVES_FIGURES = {
    # Prevalence on the biomarker training set.
    "prevalence_IRHRF": 0.67,
    "prevalence_PAVF": 0.33,
    "prevalence_FAVF": 0.56,
    "prevalence_IRF": 0.45,
    "prevalence_DRT_ME": 0.34,
    "prevalence_VD": 0.30,
    # AUROC of the raw clinical value for a biomarker.
    "auroc_CST_DRT_ME": 0.82,
    "auroc_CST_IRF": 0.77,
    "auroc_CST_IRHRF": 0.63,
    "auroc_BCVA_DRT_ME": 0.22,
    "auroc_BCVA_IRF": 0.24,
    # CST is the central 1 mm: its ranking and the prevalence fall off away from the fovea.
    "auroc_CST_IRF_at_0_4": 0.867,
    "auroc_CST_IRF_at_5_12": 0.785,
    "auroc_CST_IRF_at_13_24": 0.731,
    "auroc_CST_DRT_ME_at_0_4": 0.915,
    "auroc_CST_DRT_ME_at_5_12": 0.847,
    "auroc_CST_DRT_ME_at_13_24": 0.764,
    "auroc_CST_IRHRF_at_0_4": 0.665,
    "auroc_CST_IRHRF_at_5_12": 0.652,
    "auroc_CST_IRHRF_at_13_24": 0.603,
    "prevalence_IRF_at_0_4": 0.57,
    "prevalence_IRF_at_5_12": 0.48,
    "prevalence_IRF_at_13_24": 0.38,
    "prevalence_DRT_ME_at_0_4": 0.42,
    "prevalence_DRT_ME_at_5_12": 0.36,
    "prevalence_DRT_ME_at_13_24": 0.29,
    "prevalence_IRHRF_at_0_4": 0.75,
    "prevalence_IRHRF_at_5_12": 0.70,
    "prevalence_IRHRF_at_13_24": 0.62,
    # Spread of the clinical values over volumes (checked to a relative tolerance).
    "sd_CST_labelled": 123.0,
    "sd_BCVA_labelled": 11.0,
    "sd_CST_pool": 84.5,
    "sd_BCVA_pool": 10.6,
    # Scan-weighted share of the eye's majority label.
    "eye_majority_IRHRF": 0.758,
    "eye_majority_PAVF": 0.844,
    "eye_majority_FAVF": 0.869,
    "eye_majority_IRF": 0.737,
    "eye_majority_DRT_ME": 0.763,
    "eye_majority_VD": 0.769,
    # Share of adjacent B-scan pairs of a volume with the same label.
    "adjacent_same_IRHRF": 0.826,
    "adjacent_same_PAVF": 0.977,
    "adjacent_same_FAVF": 0.985,
    "adjacent_same_IRF": 0.923,
    "adjacent_same_DRT_ME": 0.974,
    "adjacent_same_VD": 0.858,
    # Pairs of B-scans from different eyes: share that agree on a biomarker when they share the
    # exact CST / BCVA value, and among all pairs of different eyes.
    "same_CST_agreement_DRT_ME": 0.715,
    "same_CST_agreement_IRF": 0.563,
    "same_CST_agreement_IRHRF": 0.477,
    "same_CST_agreement_PAVF": 0.599,
    "same_CST_agreement_FAVF": 0.484,
    "same_CST_agreement_VD": 0.589,
    "same_BCVA_agreement_DRT_ME": 0.677,
    "same_BCVA_agreement_IRF": 0.580,
    "same_BCVA_agreement_IRHRF": 0.552,
    "same_BCVA_agreement_PAVF": 0.570,
    "same_BCVA_agreement_FAVF": 0.542,
    "same_BCVA_agreement_VD": 0.565,
    "random_pair_agreement_DRT_ME": 0.551,
    "random_pair_agreement_IRF": 0.502,
    "random_pair_agreement_IRHRF": 0.556,
    "random_pair_agreement_PAVF": 0.556,
    "random_pair_agreement_FAVF": 0.502,
    "random_pair_agreement_VD": 0.575,
    # Granularity of the pool: volumes whose exact value also occurs in a volume of another eye.
    "share_CST_with_other_eye": 0.91,
    "share_BCVA_with_other_eye": 0.98,
}
POOL_FIGURES = ("sd_CST_pool", "sd_BCVA_pool", "share_CST_with_other_eye", "share_BCVA_with_other_eye")
TOLERANCE = 0.05  # absolute, for shares and AUROCs
SPREAD_TOLERANCE = 0.15  # relative, for the sd_ figures


def within_tolerance(name: str, measured: float, target: float | None = None) -> bool:
    """Whether a measured figure matches its OLIVES target (absolute, or relative for spreads)."""
    target = OLIVES_FIGURES[name] if target is None else target
    if name.startswith("sd_"):
        return abs(measured - target) <= SPREAD_TOLERANCE * target
    return abs(measured - target) <= TOLERANCE


def share_with_other_eye(volumes: pd.DataFrame, column: str) -> float:
    """Fraction of volumes whose exact `column` value also occurs in a volume of another eye."""
    eyes_per_value = volumes.groupby(column)["eye"].nunique()
    return float((volumes[column].map(eyes_per_value) > 1).mean())


def pair_agreement(labelled: pd.DataFrame, biomarker: str, same: str | None = None) -> float:
    """Share of ordered pairs of B-scans from different eyes that agree on `biomarker`, among all
    such pairs or among those sharing the exact value of column `same`. Counted per value and eye,
    so no pair is formed."""
    value = labelled[same].to_numpy() if same else np.zeros(len(labelled), dtype=int)
    scans = pd.DataFrame({"n": 1, "ones": labelled[biomarker].to_numpy(dtype=int)})
    counts = scans.groupby([value, labelled["eye"].to_numpy()]).sum()
    counts["zeros"] = counts["n"] - counts["ones"]
    per_value = counts.groupby(level=0).sum()
    squares = (counts**2).groupby(level=0).sum()  # pairs within one eye, to be left out
    pairs = per_value["n"] ** 2 - squares["n"]
    agreeing = per_value["ones"] ** 2 - squares["ones"] + per_value["zeros"] ** 2 - squares["zeros"]
    return float(agreeing.sum() / pairs.sum())


def adjacent_same(labelled: pd.DataFrame, biomarker: str) -> float:
    """Share of pairs of neighbouring B-scans of one volume with the same label."""
    ordered = labelled.sort_values(["eye", "visit", "slice"])
    volume = ordered.groupby(["eye", "visit"], sort=False).ngroup().to_numpy()
    label, slice_ = ordered[biomarker].to_numpy(), ordered["slice"].to_numpy()
    neighbours = (volume[1:] == volume[:-1]) & (slice_[1:] - slice_[:-1] == 1)
    return float((label[1:] == label[:-1])[neighbours].mean())


def labelled_figures(labelled: pd.DataFrame) -> dict[str, float]:
    """Figures measured on the biomarker-labelled B-scans (columns eye, visit, slice, BCVA, CST and
    the six biomarkers)."""
    figures = {}
    position = (labelled["slice"] - FOVEAL_SLICE).abs()
    for biomarker in BIOMARKER_COLUMNS:
        figures[f"prevalence_{biomarker}"] = float(labelled[biomarker].mean())
        share = labelled.groupby("eye")[biomarker].mean()
        scans = labelled.groupby("eye").size()
        figures[f"eye_majority_{biomarker}"] = float((np.maximum(share, 1 - share) * scans).sum() / scans.sum())
        figures[f"adjacent_same_{biomarker}"] = adjacent_same(labelled, biomarker)
        for clinical in ("CST", "BCVA"):
            figures[f"same_{clinical}_agreement_{biomarker}"] = pair_agreement(labelled, biomarker, clinical)
        figures[f"random_pair_agreement_{biomarker}"] = pair_agreement(labelled, biomarker)
    for clinical, biomarkers in (("CST", ("DRT_ME", "IRF", "IRHRF")), ("BCVA", ("DRT_ME", "IRF"))):
        for biomarker in biomarkers:
            figures[f"auroc_{clinical}_{biomarker}"] = float(roc_auc_score(labelled[biomarker], labelled[clinical]))
    for biomarker in LOCAL_BIOMARKERS:
        for band, (low, high) in POSITION_BANDS.items():
            rows = labelled[(position >= low) & (position <= high)]
            figures[f"auroc_CST_{biomarker}_at_{band}"] = float(roc_auc_score(rows[biomarker], rows["CST"]))
            figures[f"prevalence_{biomarker}_at_{band}"] = float(rows[biomarker].mean())
    volumes = labelled.groupby(["eye", "visit"])[["CST", "BCVA"]].first()
    figures["sd_CST_labelled"] = float(volumes["CST"].std())
    figures["sd_BCVA_labelled"] = float(volumes["BCVA"].std())
    return figures


def pool_figures(pool: pd.DataFrame) -> dict[str, float]:
    """Figures measured on the volumes of the pretraining pool (columns eye, visit, BCVA, CST; one
    row per B-scan or per volume)."""
    volumes = pool.groupby(["eye", "visit"], as_index=False)[["CST", "BCVA"]].first()
    figures = {f"sd_{clinical}_pool": float(volumes[clinical].std()) for clinical in ("CST", "BCVA")}
    for clinical in ("CST", "BCVA"):
        figures[f"share_{clinical}_with_other_eye"] = share_with_other_eye(volumes, clinical)
    return figures


def cohort_figures(table: pd.DataFrame, pool: pd.DataFrame | None = None) -> dict[str, float]:
    """Every OLIVES figure: biomarker figures on the table's labelled rows, pool figures on `pool`
    (default: every volume of the table)."""
    return {**labelled_figures(table[table["labelled"]]), **pool_figures(table if pool is None else pool)}
