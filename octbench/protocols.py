"""The evaluation protocols, in one table: how a pretrained method becomes scores per biomarker.

    linear      one logistic regression per biomarker on frozen features, C chosen on validation
                among the benchmark's [evaluate] probe_c
    linear-sgd  the seed paper's linear protocol: one multi-label linear head on frozen features,
                25 epochs of SGD, learning rate chosen on validation
    knn         cosine k-nearest neighbours per biomarker on frozen features, k chosen on validation
    finetune    the seed paper's second stage: a copy of the backbone trained end to end with a
                linear head on the training labels

Every protocol is a plain function with one signature,

    protocol(method, images, labels, task, benchmark, seed, work_dir) -> ProbeResult

images: uint8 B-scans (n, H, W) of 'train', 'val' and 'test'; labels: (n, k) 0/1 labels (one-hot
for a multi-class task) of 'train' and 'val' only, so that no protocol can read the test labels;
task: what the labels are (octbench/task.py). Every hyperparameter is
chosen on the validation split and the test split is scored once, by the chosen probe. A protocol
is added by writing one function and one line in `PROTOCOLS`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from octbench.benchmark import Benchmark
    from octbench.method import Method
    from octbench.task import Task

# The table is read when the command starts (benchmark checks, --protocol choices), which must stay
# quick: the libraries a protocol needs (torch, scikit-learn, Lightning) are imported when it runs.


@dataclass(frozen=True)
class ProbeResult:
    """What a protocol returns: scores (higher: more likely positive) of the chosen probe."""
    test_scores: np.ndarray  # (n_test, k)
    val_scores: np.ndarray  # (n_val, k): validation metrics and decision thresholds come from them
    chosen: dict  # the hyperparameters chosen on validation, recorded as metrics["probe"]
    timing: dict = field(default_factory=dict)  # seconds per stage, recorded in metrics["timing"]


Protocol = Callable[["Method", dict, dict, "Task", "Benchmark", int, Path], ProbeResult]


def on_frozen_features(method: Method, images: dict[str, np.ndarray],
                       probe: Callable[[dict[str, np.ndarray]], ProbeResult]) -> ProbeResult:
    """Features of every split extracted once by `method.encode`, then `probe(features)`."""
    from octbench.evaluate import extract_features

    start = time.perf_counter()
    features = {split: extract_features(method, x) for split, x in images.items()}
    features_s = time.perf_counter() - start
    start = time.perf_counter()
    result = probe(features)
    return dataclasses.replace(result, timing={"features_s": features_s, "probe_s": time.perf_counter() - start})


def linear(method: Method, images: dict, labels: dict, task: Task, benchmark: Benchmark, seed: int,
           work_dir: Path) -> ProbeResult:
    from octbench.evaluate import linear_probe

    return on_frozen_features(
        method, images, lambda features: linear_probe(features, labels, benchmark.evaluate.probe_c, seed, task))


def linear_sgd(method: Method, images: dict, labels: dict, task: Task, benchmark: Benchmark, seed: int,
               work_dir: Path) -> ProbeResult:
    from octbench.evaluate import sgd_linear_probe

    return on_frozen_features(method, images,
                              lambda features: sgd_linear_probe(features, labels, seed=seed, task=task))


def knn(method: Method, images: dict, labels: dict, task: Task, benchmark: Benchmark, seed: int,
        work_dir: Path) -> ProbeResult:
    from octbench.evaluate import knn_probe

    return on_frozen_features(method, images, lambda features: knn_probe(features, labels, seed=seed, task=task))


def finetune(method: Method, images: dict, labels: dict, task: Task, benchmark: Benchmark, seed: int,
             work_dir: Path) -> ProbeResult:
    """Trains a copy of the backbone (the method itself is left as it is), on the pretraining schedule."""
    from octbench.finetune import finetune_probe

    start = time.perf_counter()
    result = finetune_probe(method, images, labels, benchmark.pretrain, seed, work_dir, task)
    return dataclasses.replace(result, timing={"finetune_s": time.perf_counter() - start})


PROTOCOLS: dict[str, Protocol] = {"linear": linear, "linear-sgd": linear_sgd, "knn": knn, "finetune": finetune}
