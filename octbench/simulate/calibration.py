"""The OLIVES figures the simulated cohort must reproduce, and how to measure them on a table.

Targets come from the real OLIVES label tables (split 1), as listed in `shared/olives/README.md`:
biomarker figures on the biomarker-labelled B-scans, granularity figures on every volume.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

OLIVES_FIGURES = {
    "prevalence_IRHRF": 0.67,
    "prevalence_PAVF": 0.33,
    "prevalence_FAVF": 0.56,
    "prevalence_IRF": 0.45,
    "prevalence_DRT_ME": 0.34,
    "prevalence_VD": 0.30,
    "auroc_CST_DRT_ME": 0.82,
    "auroc_CST_IRF": 0.77,
    "auroc_BCVA_DRT_ME": 0.22,
    "auroc_BCVA_IRF": 0.24,
    "eye_majority_PAVF": 0.855,  # "84-87% of its B-scans"
    "eye_majority_FAVF": 0.855,
    "share_CST_with_other_eye": 0.91,
    "share_BCVA_with_other_eye": 0.98,
}
TOLERANCE = 0.05


def share_with_other_eye(volumes: pd.DataFrame, column: str) -> float:
    """Fraction of volumes whose exact `column` value also occurs in a volume of another eye."""
    eyes_per_value = volumes.groupby(column)["eye"].nunique()
    return float((volumes[column].map(eyes_per_value) > 1).mean())


def cohort_figures(table: pd.DataFrame) -> dict[str, float]:
    """Measure every OLIVES figure on a cohort table (one row per B-scan)."""
    labelled = table[table["labelled"]]
    figures = {}
    for biomarker in ("IRHRF", "PAVF", "FAVF", "IRF", "DRT_ME", "VD"):
        figures[f"prevalence_{biomarker}"] = float(labelled[biomarker].mean())
    for clinical in ("CST", "BCVA"):
        for biomarker in ("DRT_ME", "IRF"):
            figures[f"auroc_{clinical}_{biomarker}"] = float(
                roc_auc_score(labelled[biomarker], labelled[clinical]))
    for biomarker in ("PAVF", "FAVF"):
        share = labelled.groupby("eye")[biomarker].mean()
        figures[f"eye_majority_{biomarker}"] = float(np.maximum(share, 1 - share).mean())
    volumes = table.groupby(["eye", "visit"], as_index=False)[["CST", "BCVA"]].first()
    for clinical in ("CST", "BCVA"):
        figures[f"share_{clinical}_with_other_eye"] = share_with_other_eye(volumes, clinical)
    return figures
