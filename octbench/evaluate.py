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

from octbench.augment import to_normalized_float
from octbench.benchmark import Benchmark
from octbench.cohort import Cohort
from octbench.errors import OctbenchError
from octbench.losses import label_loss, label_scores
from octbench.method import Method
from octbench.protocols import PROTOCOLS, ProbeResult
from octbench.stats import patient_bootstrap_weights, percentile_interval, weighted_auroc
from octbench.task import BIOMARKER_TASK, Task


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


def check_both_classes(labels: dict[str, np.ndarray], task: Task = BIOMARKER_TASK) -> None:
    what = "class" if task.multiclass else "biomarker"
    for split, y in labels.items():
        for j, name in enumerate(task.labels):
            if len(np.unique(y[:, j])) < 2:
                state = "every" if y[0, j] else "no"
                raise OctbenchError(f"{what} {name} has a single class in the {split} split ({state} B-scan "
                                    f"positive): its AUROC is undefined; use a larger or balanced split, or drop "
                                    f"this {what}")


def macro_auroc(y: np.ndarray, scores: np.ndarray) -> float:
    """Mean over the columns of the one-vs-rest AUROC."""
    return float(np.mean([roc_auc_score(y[:, j], scores[:, j]) for j in range(y.shape[1])]))


def fit_per_label(x: dict[str, np.ndarray], labels: dict[str, np.ndarray], task: Task, grid, make, score,
                  name: str) -> ProbeResult:
    """Binary labels: per label, the probe `make(value)` of `grid` with the best validation AUROC;
    `score(probe, x)` gives its scores."""
    k = len(task.labels)
    scores = {split: np.zeros((len(x[split]), k)) for split in ("val", "test")}
    chosen = {}
    for j, label in enumerate(task.labels):
        best = None
        for value in grid:
            probe = make(value).fit(x["train"], labels["train"][:, j])
            val_scores = score(probe, x["val"])
            val_auroc = roc_auc_score(labels["val"][:, j], val_scores)
            if best is None or val_auroc > best[0]:
                best = (val_auroc, value, probe, val_scores)
        scores["val"][:, j] = best[3]
        scores["test"][:, j] = score(best[2], x["test"])  # the test split, touched once
        chosen[label] = {name: best[1], "val_auroc": float(best[0])}
    return ProbeResult(scores["test"], scores["val"], chosen)


def fit_multiclass(x: dict[str, np.ndarray], labels: dict[str, np.ndarray], grid, make, name: str) -> ProbeResult:
    """One multi-class probe `make(value)` of `grid`, chosen by its macro one-vs-rest validation AUROC;
    its scores are class probabilities."""
    classes = {split: labels[split].argmax(axis=1) for split in ("train", "val")}
    best = None
    for value in grid:
        probe = make(value).fit(x["train"], classes["train"])
        val_scores = probe.predict_proba(x["val"])
        val_auroc = macro_auroc(labels["val"], val_scores)
        if best is None or val_auroc > best[0]:
            best = (val_auroc, value, probe, val_scores)
    return ProbeResult(best[2].predict_proba(x["test"]), best[3],
                       {name: best[1], "head": "multi-class", "val_mean_auroc": float(best[0])})


def linear_probe(features: dict[str, np.ndarray], labels: dict[str, np.ndarray],
                 c_grid=(0.01, 0.1, 1.0, 10.0), seed: int = 0, task: Task = BIOMARKER_TASK) -> ProbeResult:
    """Per biomarker, the logistic regression whose C gives the best validation AUROC (a multi-class
    task: one multinomial logistic regression, C chosen by the macro AUROC).

    features: 'train', 'val' and 'test' arrays; labels: 'train' and 'val' (any others are not read).
    """
    check_both_classes({split: labels[split] for split in ("train", "val")}, task)
    scaler = StandardScaler().fit(features["train"])
    x = {split: scaler.transform(f) for split, f in features.items()}
    if task.multiclass:
        return fit_multiclass(x, labels, c_grid, lambda c: LogisticRegression(C=c, max_iter=1000, random_state=seed),
                              "C")
    # Newton-Cholesky: exact second-order steps, fast when samples outnumber features (a few thousand
    # B-scans, 512 features) and insensitive to ill-conditioned features.
    return fit_per_label(x, labels, task, c_grid,
                         lambda c: LogisticRegression(C=c, solver="newton-cholesky", max_iter=200, random_state=seed),
                         lambda probe, xs: probe.decision_function(xs), "C")


def knn_probe(features: dict[str, np.ndarray], labels: dict[str, np.ndarray], k_grid=(5, 10, 20, 50),
              seed: int = 0, task: Task = BIOMARKER_TASK) -> ProbeResult:
    """Per biomarker, the distance-weighted share of positive neighbours among the k nearest
    training B-scans (cosine), k chosen on validation; a multi-class task: the share of each class."""
    check_both_classes({split: labels[split] for split in ("train", "val")}, task)
    x = {split: f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12) for split, f in features.items()}

    def make(k):
        return KNeighborsClassifier(n_neighbors=min(k, len(x["train"])), weights="distance")

    if task.multiclass:
        return fit_multiclass(x, labels, k_grid, make, "k")
    return fit_per_label(x, labels, task, k_grid, make, lambda probe, xs: probe.predict_proba(xs)[:, 1], "k")


def sgd_linear_probe(features: dict[str, np.ndarray], labels: dict[str, np.ndarray], lr_grid=(0.1, 0.01, 0.001),
                     seed: int = 0, epochs: int = 25, batch_size: int = 64, task: Task = BIOMARKER_TASK) -> ProbeResult:
    """The seed paper's linear protocol: one linear layer for all biomarkers (multi-label BCE; a
    multi-class task: softmax cross-entropy), 25 epochs of SGD with momentum on standardised frozen
    features; the learning rate is chosen by the mean validation AUROC."""
    check_both_classes({split: labels[split] for split in ("train", "val")}, task)
    scaler = StandardScaler().fit(features["train"])
    x = {split: torch.from_numpy(scaler.transform(f)).float() for split, f in features.items()}
    y_train = torch.tensor(labels["train"], dtype=torch.float32)  # a copy: cohort arrays may be read-only
    loss_of = label_loss(task.multiclass)
    best = None
    for lr in lr_grid:
        generator = torch.Generator().manual_seed(seed)
        head = torch.nn.Linear(x["train"].shape[1], y_train.shape[1])
        with torch.no_grad():  # the same initial head for every learning rate
            head.weight.copy_(torch.randn(head.weight.shape, generator=generator) * 0.01)
            head.bias.zero_()
        optimizer = torch.optim.SGD(head.parameters(), lr=lr, momentum=0.9)
        for _ in range(epochs):
            for rows in torch.randperm(len(y_train), generator=generator).split(batch_size):
                loss = loss_of(head(x["train"][rows]), y_train[rows])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        with torch.no_grad():
            val_scores = label_scores(task.multiclass, head(x["val"])).numpy()
        val_auroc = macro_auroc(labels["val"], val_scores)
        if best is None or val_auroc > best[0]:
            best = (val_auroc, lr, head, val_scores)
    with torch.no_grad():
        scores = label_scores(task.multiclass, best[2](x["test"])).numpy()
    head_kind = "multi-class" if task.multiclass else "multi-label"
    return ProbeResult(scores, best[3], {"head": head_kind, "lr": best[1], "epochs": epochs,
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


def metrics_on_validation(y_val: np.ndarray, val_scores: np.ndarray, task: Task = BIOMARKER_TASK) -> dict:
    """AUROC per label and their mean on the validation split (what a leaderboard may select on, as
    it never selects on the test split), and per binary label the accuracy-maximising threshold (a
    multi-class task's accuracy takes the most probable class instead)."""
    auroc = {b: float(roc_auc_score(y_val[:, j], val_scores[:, j])) for j, b in enumerate(task.labels)}
    metrics = {"val_auroc": auroc, "val_mean_auroc": float(np.mean(list(auroc.values())))}
    if not task.multiclass:
        metrics["threshold"] = {b: accuracy_threshold(y_val[:, j], val_scores[:, j]) for j, b in enumerate(task.labels)}
    return metrics


def metrics_on_test(y_test: np.ndarray, test_scores: np.ndarray, counted: np.ndarray, thresholds: dict[str, float],
                 patients: np.ndarray, bootstrap: int, seed: int, task: Task = BIOMARKER_TASK) -> dict:
    """AUROC per label (one-vs-rest per class), their mean and their patient-bootstrap intervals;
    average precision; accuracy: per binary label at its validation threshold, or for a multi-class
    task the share of B-scans whose most probable class is theirs. Each label is scored on the test
    rows that count for it (`counted`, OLIVES: its balanced test set)."""
    auroc, accuracy, auprc = {}, {}, {}
    for j, b in enumerate(task.labels):
        y, s = y_test[counted[:, j], j], test_scores[counted[:, j], j]
        auroc[b] = float(roc_auc_score(y, s))
        if not task.multiclass:
            accuracy[b] = float(accuracy_score(y, s >= thresholds[b]))
        auprc[b] = float(average_precision_score(y, s))
    weights = patient_bootstrap_weights(patients, bootstrap, seed)
    samples = np.stack([weighted_auroc(y_test[:, j], test_scores[:, j], weights * counted[:, j])
                        for j in range(len(task.labels))], axis=1)
    if task.multiclass:
        accuracy = float(accuracy_score(y_test.argmax(axis=1), test_scores.argmax(axis=1)))
    return {
        "auroc": auroc,
        "mean_auroc": float(np.mean(list(auroc.values()))),
        "auroc_ci": {b: list(percentile_interval(samples[:, j])) for j, b in enumerate(task.labels)},
        "mean_auroc_ci": list(percentile_interval(samples.mean(axis=1))),
        "accuracy": accuracy,
        "auprc": auprc,
    }


def evaluate(method: Method, cohort: Cohort, benchmark: Benchmark, seed: int,
             train_rows: pd.DataFrame, work: Path) -> tuple[dict, pd.DataFrame, dict]:
    """Run the benchmark's protocol on the method; metrics (without run identity), predictions and timings."""
    task = cohort.task
    rows = {"train": train_rows, "val": cohort.part("val"), "test": cohort.part("test")}
    images = {split: cohort.images_of(r) for split, r in rows.items()}
    labels = {split: cohort.labels_of(rows[split]) for split in ("train", "val")}  # never the test's
    result = PROTOCOLS[benchmark.evaluate.protocol](method, images, labels, task, benchmark, seed, work)
    start = time.perf_counter()
    test = rows["test"]
    y_true = cohort.labels_of(test)
    # A cohort without test_<B> columns counts every test row for every label.
    counted = cohort.counted_test_rows(test)
    validation = metrics_on_validation(labels["val"], result.val_scores, task)
    scores = result.test_scores
    metrics = {
        "protocol": benchmark.evaluate.protocol,
        **({"task": task.record()} if task != BIOMARKER_TASK else {}),  # the six biomarkers' records stay as they were
        **metrics_on_test(y_true, scores, counted, validation.get("threshold", {}), test["patient"].to_numpy(),
                          benchmark.evaluate.bootstrap, seed, task),
        **validation,
        "probe": result.chosen,
        "n_train_scans": len(train_rows),
        "n_train_patients": int(train_rows["patient"].nunique()),
        "n_test_scans": len(test),
        "n_test_patients": int(test["patient"].nunique()),
    }
    if not counted.all():
        metrics["n_test_scans_per_biomarker"] = {b: int(counted[:, j].sum()) for j, b in enumerate(task.labels)}
    k = len(task.labels)
    keep = counted.ravel()  # row-major: scan by scan, labels within a scan
    predictions = pd.DataFrame({  # the label's column keeps its name, `biomarker`, for a class too
        "sample_id": np.repeat(test["sample_id"].to_numpy(), k)[keep],
        "patient": np.repeat(test["patient"].to_numpy(), k)[keep],
        "biomarker": np.tile(task.labels, len(test))[keep],
        "y_true": y_true.ravel()[keep],
        "y_score": scores.ravel()[keep],
    })
    return metrics, predictions, {**result.timing, "bootstrap_s": time.perf_counter() - start}
