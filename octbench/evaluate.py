"""Probes of frozen features: the protocols that turn a pretrained backbone into AUROCs.

    linear      one logistic regression per biomarker (scikit-learn), C chosen on validation
    linear-sgd  the seed paper's protocol: one multi-label linear head trained 25 epochs by SGD,
                learning rate chosen on validation
    knn         cosine k-nearest neighbours per biomarker, k chosen on validation

Features are extracted once per split. Every hyperparameter is chosen on the validation split; the
test split is scored once, by the chosen probe, and AUROC is computed from scores, never from
rounded predictions.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import KNeighborsClassifier
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


def knn_probe(features: dict[str, np.ndarray], labels: dict[str, np.ndarray], k_grid=(5, 10, 20, 50),
              seed: int = 0) -> tuple[np.ndarray, dict]:
    """Per biomarker, the distance-weighted share of positive neighbours among the k nearest
    training B-scans (cosine), k chosen on validation."""
    check_both_classes(labels)
    x = {split: f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12) for split, f in features.items()}
    scores = np.zeros((len(x["test"]), len(BIOMARKERS)))
    chosen = {}
    for j, biomarker in enumerate(BIOMARKERS):
        best = None
        for k in k_grid:
            knn = KNeighborsClassifier(n_neighbors=min(k, len(x["train"])), weights="distance").fit(
                x["train"], labels["train"][:, j])
            val_auroc = roc_auc_score(labels["val"][:, j], knn.predict_proba(x["val"])[:, 1])
            if best is None or val_auroc > best[0]:
                best = (val_auroc, k, knn)
        scores[:, j] = best[2].predict_proba(x["test"])[:, 1]
        chosen[biomarker] = {"k": best[1], "val_auroc": float(best[0])}
    return scores, chosen


def sgd_linear_probe(features: dict[str, np.ndarray], labels: dict[str, np.ndarray], lr_grid=(0.1, 0.01, 0.001),
                     seed: int = 0, epochs: int = 25, batch_size: int = 64) -> tuple[np.ndarray, dict]:
    """The seed paper's linear protocol: one linear layer for all biomarkers (multi-label BCE),
    25 epochs of SGD with momentum on standardised frozen features; the learning rate is chosen
    by the mean validation AUROC."""
    check_both_classes(labels)
    scaler = StandardScaler().fit(features["train"])
    x = {split: torch.from_numpy(scaler.transform(f)).float() for split, f in features.items()}
    y_train = torch.from_numpy(labels["train"]).float()
    best = None
    for lr in lr_grid:
        generator = torch.Generator().manual_seed(seed)
        head = torch.nn.Linear(x["train"].shape[1], len(BIOMARKERS))
        with torch.no_grad():  # the same initial head for every learning rate
            head.weight.copy_(torch.randn(head.weight.shape, generator=generator) * 0.01)
            head.bias.zero_()
        optimizer = torch.optim.SGD(head.parameters(), lr=lr, momentum=0.9)
        for _ in range(epochs):
            for rows in torch.randperm(len(y_train), generator=generator).split(batch_size):
                loss = torch.nn.functional.binary_cross_entropy_with_logits(head(x["train"][rows]), y_train[rows])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        with torch.no_grad():
            val_scores = head(x["val"]).numpy()
        val_auroc = float(np.mean([roc_auc_score(labels["val"][:, j], val_scores[:, j])
                                   for j in range(len(BIOMARKERS))]))
        if best is None or val_auroc > best[0]:
            best = (val_auroc, lr, head)
    with torch.no_grad():
        scores = best[2](x["test"]).numpy()
    return scores, {"head": "multi-label", "lr": best[1], "epochs": epochs, "val_mean_auroc": best[0]}


PROBES = {"linear": linear_probe, "linear-sgd": sgd_linear_probe, "knn": knn_probe}
