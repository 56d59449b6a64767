"""Budget curves: is a method still improving when its schedule ends?

During pretraining the method's weights are saved at 1/4 and 1/2 of the schedule (in the run's
work folder, so a stopped and resumed run keeps them). After the run is scored, each snapshot is
probed with the default protocol (frozen features, logistic regression chosen on validation), and
metrics.json records the test and validation mean AUROC against pretraining steps. The last point
is the run itself. The snapshots are deleted once probed: they are not part of the record.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pandas as pd
import pytorch_lightning as pl
import torch

from octbench.benchmark import Benchmark
from octbench.cohort import Cohort
from octbench.evaluate import evaluate
from octbench.method import Method
from octbench.record import load_state_dict

BUDGET_FRACTIONS = (0.25, 0.5)
SNAPSHOT = re.compile(r"budget-step(\d+)\.pt")


def snapshot_steps(steps: int) -> list[int]:
    return sorted({max(1, round(fraction * steps)) for fraction in BUDGET_FRACTIONS} - {steps})


class BudgetSnapshots(pl.Callback):
    """Saves the whole method (backbone and heads: some methods probe a momentum network) at the
    budget steps."""

    def __init__(self, folder: Path, steps: int):
        self.folder, self.targets = Path(folder), set(snapshot_steps(steps))

    def on_train_batch_end(self, trainer: pl.Trainer, module: pl.LightningModule, outputs, batch, batch_idx):
        if trainer.is_global_zero and trainer.global_step in self.targets:
            path = self.folder / f"budget-step{trainer.global_step}.pt"
            partial = path.with_suffix(".partial")
            torch.save(module.method.state_dict(), partial)
            partial.replace(path)


def budget_curve(method: Method, cohort: Cohort, benchmark: Benchmark, seed: int, train_rows: pd.DataFrame,
                 work: Path, final: dict) -> list[dict]:
    """[{step, mean_auroc, val_mean_auroc}] at each snapshot and at the end (`final`: the run's metrics
    under the default protocol, or None to probe the end of the schedule too)."""
    linear = dataclasses.replace(benchmark, evaluate=dataclasses.replace(benchmark.evaluate, protocol="linear"))
    snapshots = sorted((int(m.group(1)), p) for p in work.glob("budget-step*.pt") if (m := SNAPSHOT.fullmatch(p.name)))
    trained = {k: v.clone() for k, v in method.state_dict().items()}
    points = []
    for step, path in snapshots:
        method.load_state_dict(load_state_dict(path))
        metrics, _, _ = evaluate(method, cohort, linear, seed, train_rows, work)
        points.append({"step": step, "mean_auroc": metrics["mean_auroc"], "val_mean_auroc": metrics["val_mean_auroc"]})
        path.unlink()
    method.load_state_dict(trained)
    if final is None:
        final, _, _ = evaluate(method, cohort, linear, seed, train_rows, work)
    points.append({"step": benchmark.pretrain.steps, "mean_auroc": final["mean_auroc"],
                   "val_mean_auroc": final["val_mean_auroc"]})
    return points
