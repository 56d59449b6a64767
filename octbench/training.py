"""Pretraining through PyTorch Lightning: batches from memory, views made on the device.

The loop, precision, devices, logging and progress bar are Lightning's; a method supplies only its
loss. Images stay uint8 until they reach the device, where `ViewAugmentation` makes the views of a
whole batch at once.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import CSVLogger
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler

from octbench.augment import ViewAugmentation, to_normalized_float
from octbench.benchmark import PretrainSpec
from octbench.method import Method


class InMemoryBatches(Dataset):
    """Indexed by a list of rows: returns a whole batch, so there is no per-item collate."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, biomarkers: np.ndarray | None = None):
        self.images = torch.from_numpy(np.ascontiguousarray(images))
        self.labels = torch.from_numpy(labels)
        self.biomarkers = None if biomarkers is None else torch.from_numpy(biomarkers.astype(np.float32))

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, rows: list[int]) -> dict:
        batch = {"image": self.images[rows].unsqueeze(1), "labels": self.labels[rows]}
        if self.biomarkers is not None:
            batch["biomarkers"] = self.biomarkers[rows]
        return batch


def batch_loader(dataset: InMemoryBatches, batch_size: int, seed: int) -> DataLoader:
    batch_size = min(batch_size, len(dataset))
    sampler = BatchSampler(RandomSampler(dataset, generator=torch.Generator().manual_seed(seed)),
                           batch_size, drop_last=True)
    return DataLoader(dataset, sampler=sampler, batch_size=None, pin_memory=torch.cuda.is_available())


def warmup_cosine(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


class Pretraining(pl.LightningModule):
    def __init__(self, method: Method, spec: PretrainSpec, augmentation: ViewAugmentation):
        super().__init__()
        self.method = method
        self.spec = spec
        self.augmentation = augmentation

    def on_after_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        batch["image"] = to_normalized_float(batch["image"]).contiguous(memory_format=torch.channels_last)
        return batch

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        self.method.before_step(self.global_step, self.spec.steps)
        views = [self.augmentation(batch["image"]).contiguous(memory_format=torch.channels_last)
                 for _ in range(max(self.method.n_views, 1))]
        loss = self.method.training_loss(views, batch)
        self.log("train_loss", loss, prog_bar=True, on_step=True, batch_size=len(batch["image"]))
        return loss

    def configure_optimizers(self):
        spec = self.spec
        decay = [p for p in self.method.parameters() if p.requires_grad and p.ndim > 1]
        no_decay = [p for p in self.method.parameters() if p.requires_grad and p.ndim <= 1]
        groups = [{"params": decay, "weight_decay": spec.weight_decay},
                  {"params": no_decay, "weight_decay": 0.0}]  # no decay on norms and biases
        if spec.optimizer == "adamw":
            optimizer = torch.optim.AdamW(groups, lr=spec.lr)
        elif spec.optimizer == "sgd":
            optimizer = torch.optim.SGD(groups, lr=spec.lr, momentum=0.9)
        else:
            raise ValueError(f"unknown optimizer {spec.optimizer!r}")
        warmup = max(1, int(spec.warmup_fraction * spec.steps))
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: warmup_cosine(step, spec.steps, warmup))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


def pretrain(method: Method, dataset: InMemoryBatches, spec: PretrainSpec, seed: int, work_dir: Path,
             progress: bool = True) -> None:
    """Train `method` in place for `spec.steps` steps; the loss curve goes to work_dir/pretrain_log.csv."""
    pl.seed_everything(seed, workers=True, verbose=False)
    method.to(memory_format=torch.channels_last)
    module = Pretraining(method, spec, method.augmentation)
    on_gpu = torch.cuda.is_available()
    trainer = pl.Trainer(
        max_steps=spec.steps, max_epochs=-1, accelerator="auto", devices=1,
        precision="bf16-mixed" if on_gpu else "32-true",
        deterministic=not on_gpu,  # bit-identical CPU runs; GPU keeps its fast kernels
        logger=CSVLogger(str(work_dir), name="", version=""), log_every_n_steps=max(1, min(5, spec.steps // 20)),
        enable_checkpointing=False, enable_model_summary=False, enable_progress_bar=progress,
        default_root_dir=str(work_dir))
    trainer.fit(module, batch_loader(dataset, spec.batch_size, seed))
    method.cpu()
    (work_dir / "metrics.csv").replace(work_dir / "pretrain_log.csv")
    (work_dir / "hparams.yaml").unlink(missing_ok=True)
