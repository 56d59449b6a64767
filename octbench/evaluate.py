"""Evaluation: frozen-feature probes, and the metrics of a run from its protocol's scores.

The probes (the protocols of `octbench.protocols` call them on features extracted once per split):

    linear      one logistic regression per biomarker (scikit-learn), C chosen on validation
    linear-sgd  the seed paper's protocol: one multi-label linear head trained 25 epochs by SGD,
                learning rate chosen on validation
    knn         cosine k-nearest neighbours per biomarker, k chosen on validation

Every hyperparameter is chosen on the validation split; the test split is scored once, by the
chosen probe, and AUROC is computed from scores, never from rounded predictions. The one decision
that needs rounding, the accuracy threshold, is chosen on validation scores too.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, average_precision_score, roc_auc_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import StandardScaler

from octbench import BIOMARKERS
from octbench.augment import to_normalized_float
from octbench.benchmark import Benchmark
from octbench.cohort import Cohort
from octbench.errors import OctbenchError
from octbench.method import Method
from octbench.protocols import PROTOCOLS, ProbeResult
from octbench.stats import patient_bootstrap_weights, percentile_interval, weighted_auroc


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
                 c_grid=(0.01, 0.1, 1.0, 10.0), seed: int = 0) -> ProbeResult:
    """Per biomarker, the logistic regression whose C gives the best validation AUROC.

    features: 'train', 'val' and 'test' arrays; labels: 'train' and 'val' (any others are not read).
    """
    check_both_classes({split: labels[split] for split in ("train", "val")})
    scaler = StandardScaler().fit(features["train"])
    x = {split: scaler.transform(f) for split, f in features.items()}
    scores = {split: np.zeros((len(x[split]), len(BIOMARKERS))) for split in ("val", "test")}
    chosen = {}
    for j, biomarker in enumerate(BIOMARKERS):
        best = None
        for c in c_grid:
            # Newton-Cholesky: exact second-order steps, fast when samples outnumber features
            # (a few thousand B-scans, 512 features) and insensitive to ill-conditioned features.
            probe = LogisticRegression(C=c, solver="newton-cholesky", max_iter=200, random_state=seed)
            probe.fit(x["train"], labels["train"][:, j])
            val_scores = probe.decision_function(x["val"])
            val_auroc = roc_auc_score(labels["val"][:, j], val_scores)
            if best is None or val_auroc > best[0]:
                best = (val_auroc, c, probe, val_scores)
        scores["val"][:, j] = best[3]
        scores["test"][:, j] = best[2].decision_function(x["test"])  # the test split, touched once
        chosen[biomarker] = {"C": best[1], "val_auroc": float(best[0])}
    return ProbeResult(scores["test"], scores["val"], chosen)


def knn_probe(features: dict[str, np.ndarray], labels: dict[str, np.ndarray], k_grid=(5, 10, 20, 50),
              seed: int = 0) -> ProbeResult:
    """Per biomarker, the distance-weighted share of positive neighbours among the k nearest
    training B-scans (cosine), k chosen on validation."""
    check_both_classes({split: labels[split] for split in ("train", "val")})
    x = {split: f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12) for split, f in features.items()}
    scores = {split: np.zeros((len(x[split]), len(BIOMARKERS))) for split in ("val", "test")}
    chosen = {}
    for j, biomarker in enumerate(BIOMARKERS):
        best = None
        for k in k_grid:
            knn = KNeighborsClassifier(n_neighbors=min(k, len(x["train"])), weights="distance").fit(
                x["train"], labels["train"][:, j])
            val_scores = knn.predict_proba(x["val"])[:, 1]
            val_auroc = roc_auc_score(labels["val"][:, j], val_scores)
            if best is None or val_auroc > best[0]:
                best = (val_auroc, k, knn, val_scores)
        scores["val"][:, j] = best[3]
        scores["test"][:, j] = best[2].predict_proba(x["test"])[:, 1]
        chosen[biomarker] = {"k": best[1], "val_auroc": float(best[0])}
    return ProbeResult(scores["test"], scores["val"], chosen)


def sgd_linear_probe(features: dict[str, np.ndarray], labels: dict[str, np.ndarray], lr_grid=(0.1, 0.01, 0.001),
                     seed: int = 0, epochs: int = 25, batch_size: int = 64) -> ProbeResult:
    """The seed paper's linear protocol: one linear layer for all biomarkers (multi-label BCE),
    25 epochs of SGD with momentum on standardised frozen features; the learning rate is chosen
    by the mean validation AUROC."""
    check_both_classes({split: labels[split] for split in ("train", "val")})
    scaler = StandardScaler().fit(features["train"])
    x = {split: torch.from_numpy(scaler.transform(f)).float() for split, f in features.items()}
    y_train = torch.tensor(labels["train"], dtype=torch.float32)  # a copy: cohort arrays may be read-only
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
            best = (val_auroc, lr, head, val_scores)
    with torch.no_grad():
        scores = best[2](x["test"]).numpy()
    return ProbeResult(scores, best[3], {"head": "multi-label", "lr": best[1], "epochs": epochs,
                                         "val_mean_auroc": best[0]})


def accuracy_threshold(y_true: np.ndarray, scores: np.ndarray) -> float:
    """The score threshold (positive at or above it) of the highest accuracy on (y_true, scores).

    Candidates lie halfway between consecutive distinct scores, and half a mean gap below the
    lowest (all positive) and above the highest (all negative); of tied candidates, the middle one.
    """
    scores = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(y_true).astype(bool)
    values = np.unique(scores)
    gap = (values[-1] - values[0]) / (len(values) - 1) if len(values) > 1 else 1.0
    edges = np.concatenate([[values[0] - gap], values, [values[-1] + gap]])
    candidates = (edges[1:] + edges[:-1]) / 2
    negatives_below = np.searchsorted(np.sort(scores[~positive]), candidates, side="left")
    positives_at_or_above = positive.sum() - np.searchsorted(np.sort(scores[positive]), candidates, side="left")
    correct = negatives_below + positives_at_or_above
    best = np.flatnonzero(correct == correct.max())
    return float(candidates[best[len(best) // 2]])


def metrics_on_validation(y_val: np.ndarray, val_scores: np.ndarray) -> dict:
    """AUROC per biomarker and its mean on the validation split (what a leaderboard may select on,
    as it never selects on the test split), and per biomarker the accuracy-maximising threshold."""
    auroc = {b: float(roc_auc_score(y_val[:, j], val_scores[:, j])) for j, b in enumerate(BIOMARKERS)}
    return {"val_auroc": auroc, "val_mean_auroc": float(np.mean(list(auroc.values()))),
            "threshold": {b: accuracy_threshold(y_val[:, j], val_scores[:, j]) for j, b in enumerate(BIOMARKERS)}}


def metrics_on_test(y_test: np.ndarray, test_scores: np.ndarray, counted: np.ndarray, thresholds: dict[str, float],
                 patients: np.ndarray, bootstrap: int, seed: int) -> dict:
    """AUROC per biomarker, its mean and their patient-bootstrap intervals; accuracy at the
    validation threshold; average precision. Each biomarker is scored on the test rows that count
    for it (`counted`, OLIVES: its balanced test set)."""
    auroc, accuracy, auprc = {}, {}, {}
    for j, b in enumerate(BIOMARKERS):
        y, s = y_test[counted[:, j], j], test_scores[counted[:, j], j]
        auroc[b] = float(roc_auc_score(y, s))
        accuracy[b] = float(accuracy_score(y, s >= thresholds[b]))
        auprc[b] = float(average_precision_score(y, s))
    weights = patient_bootstrap_weights(patients, bootstrap, seed)
    samples = np.stack([weighted_auroc(y_test[:, j], test_scores[:, j], weights * counted[:, j])
                        for j in range(len(BIOMARKERS))], axis=1)
    return {
        "auroc": auroc,
        "mean_auroc": float(np.mean(list(auroc.values()))),
        "auroc_ci": {b: list(percentile_interval(samples[:, j])) for j, b in enumerate(BIOMARKERS)},
        "mean_auroc_ci": list(percentile_interval(samples.mean(axis=1))),
        "accuracy": accuracy,
        "auprc": auprc,
    }


def evaluate(method: Method, cohort: Cohort, benchmark: Benchmark, seed: int,
             train_rows: pd.DataFrame, work: Path) -> tuple[dict, pd.DataFrame, dict]:
    """Run the benchmark's protocol on the method; metrics (without run identity), predictions and timings."""
    rows = {"train": train_rows, "val": cohort.part("val"), "test": cohort.part("test")}
    images = {split: cohort.images_of(r) for split, r in rows.items()}
    labels = {split: cohort.biomarkers_of(rows[split]) for split in ("train", "val")}  # never the test's
    result = PROTOCOLS[benchmark.evaluate.protocol](method, images, labels, benchmark, seed, work)
    start = time.perf_counter()
    test = rows["test"]
    y_true = cohort.biomarkers_of(test)
    # A cohort without test_<B> columns counts every test row for every biomarker.
    counted = cohort.counted_test_rows(test)
    validation = metrics_on_validation(labels["val"], result.val_scores)
    scores = result.test_scores
    metrics = {
        "protocol": benchmark.evaluate.protocol,
        **metrics_on_test(y_true, scores, counted, validation["threshold"], test["patient"].to_numpy(),
                       benchmark.evaluate.bootstrap, seed),
        **validation,
        "probe": result.chosen,
        "n_train_scans": len(train_rows),
        "n_train_patients": int(train_rows["patient"].nunique()),
        "n_test_scans": len(test),
        "n_test_patients": int(test["patient"].nunique()),
    }
    if not counted.all():
        metrics["n_test_scans_per_biomarker"] = {b: int(counted[:, j].sum()) for j, b in enumerate(BIOMARKERS)}
    keep = counted.ravel()  # row-major: scan by scan, biomarkers within a scan
    predictions = pd.DataFrame({
        "sample_id": np.repeat(test["sample_id"].to_numpy(), len(BIOMARKERS))[keep],
        "patient": np.repeat(test["patient"].to_numpy(), len(BIOMARKERS))[keep],
        "biomarker": np.tile(BIOMARKERS, len(test))[keep],
        "y_true": y_true.ravel()[keep],
        "y_score": scores.ravel()[keep],
    })
    return metrics, predictions, {**result.timing, "bootstrap_s": time.perf_counter() - start}
