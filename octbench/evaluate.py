"""The linear-probe evaluator: frozen features, one logistic regression per biomarker.

Features are extracted once per split. Each probe's regularisation is chosen on the validation
split; the test split is scored once, by the chosen probe, and AUROC is computed from scores,
never from rounded predictions.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler

from octbench import BIOMARKERS
from octbench.augment import to_normalized_float
from octbench.errors import OctbenchError


@torch.no_grad()
def extract_features(method, images: np.ndarray, batch_size: int = 256, device: str | None = None) -> np.ndarray:
    """Features of uint8 images from `method.encode` (normalised (B, 1, H, W) -> (B, D)), in eval mode."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    method.eval().to(device)
    chunks = []
    for start in range(0, len(images), batch_size):
        batch = torch.from_numpy(np.ascontiguousarray(images[start:start + batch_size])).to(device)
        x = to_normalized_float(batch).contiguous(memory_format=torch.channels_last)
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=device == "cuda"):
            chunks.append(method.encode(x).float().flatten(1).cpu())
    return torch.cat(chunks).numpy()


def check_both_classes(labels: dict[str, np.ndarray]) -> None:
    for split, y in labels.items():
        for j, biomarker in enumerate(BIOMARKERS):
            if len(np.unique(y[:, j])) < 2:
                raise OctbenchError(f"biomarker {biomarker} has a single class in the {split} split "
                                    f"(all {int(y[0, j])}): its AUROC is undefined; use a larger or "
                                    "balanced split, or drop this biomarker")


def linear_probe(features: dict[str, np.ndarray], labels: dict[str, np.ndarray],
                 c_grid=(0.01, 0.1, 1.0, 10.0), seed: int = 0) -> tuple[np.ndarray, dict]:
    """Test scores (n_test, n_biomarkers) and, per biomarker, the chosen C and its validation AUROC.

    features/labels: dicts with 'train', 'val' and 'test' arrays.
    """
    check_both_classes(labels)
    scaler = StandardScaler().fit(features["train"])
    x = {split: scaler.transform(f) for split, f in features.items()}
    scores = np.zeros((len(x["test"]), len(BIOMARKERS)))
    chosen = {}
    for j, biomarker in enumerate(BIOMARKERS):
        best = None
        for c in c_grid:
            # Newton-Cholesky: exact second-order steps, fast when samples outnumber features
            # (a few thousand B-scans, 512 features) and insensitive to ill-conditioned features.
            probe = LogisticRegression(C=c, solver="newton-cholesky", max_iter=200, random_state=seed)
            probe.fit(x["train"], labels["train"][:, j])
            val_auroc = roc_auc_score(labels["val"][:, j], probe.decision_function(x["val"]))
            if best is None or val_auroc > best[0]:
                best = (val_auroc, c, probe)
        scores[:, j] = best[2].decision_function(x["test"])  # the test split, touched once
        chosen[biomarker] = {"C": best[1], "val_auroc": float(best[0])}
    return scores, chosen
