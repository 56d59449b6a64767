"""The seed paper's second stage as a protocol: fine-tune the pretrained backbone end to end.

A copy of the pretrained backbone gets a linear multi-label head and is trained with binary
cross-entropy on the biomarker training labels: octbench's supervised baseline, started from the
pretrained weights, through the same Lightning loop and schedule as pretraining and with that
baseline's label-preserving views. The schedule is fixed (the benchmark's pretraining steps); the
validation scores are recorded, the test split scored once.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from torch import nn

from octbench.benchmark import PretrainSpec
from octbench.evaluate import check_both_classes, extract_features
from octbench.losses import label_scores
from octbench.method import Method, MethodOptions
from octbench.methods.supervised import Supervised
from octbench.protocols import ProbeResult
from octbench.task import BIOMARKER_TASK, Task
from octbench.training import InMemoryBatches, pretrain


def finetune_probe(method: Method, images: dict[str, np.ndarray], labels: dict[str, np.ndarray],
                   spec: PretrainSpec, seed: int, work_dir: Path, task: Task = BIOMARKER_TASK) -> ProbeResult:
    """Scores of the fine-tuned network on val and test (logits; class probabilities for a
    multi-class task), and its validation AUROCs; `method` is not changed."""
    check_both_classes({split: labels[split] for split in ("train", "val")}, task)
    tuner = Supervised(copy.deepcopy(method.backbone), method.feature_dim, MethodOptions(task=task))
    data = InMemoryBatches(images["train"], np.zeros((len(labels["train"]), 0), dtype=np.int64), labels["train"])
    folder = work_dir / "finetune"
    folder.mkdir(parents=True, exist_ok=True)
    pretrain(tuner, data, spec, seed, folder, progress=False)
    (folder / "pretrain_log.csv").replace(work_dir / "finetune_log.csv")
    shutil.rmtree(folder)  # its checkpoints, kept until here for a stopped run to resume from
    network = Method(nn.Sequential(tuner.backbone, tuner.classifier), method.feature_dim, MethodOptions())
    val, test = (label_scores(task.multiclass, torch.from_numpy(extract_features(network, images[split]))).numpy()
                 for split in ("val", "test"))
    val_auroc = [float(roc_auc_score(labels["val"][:, j], val[:, j])) for j in range(val.shape[1])]
    return ProbeResult(test, val, {"steps": spec.steps, "val_auroc": val_auroc})
