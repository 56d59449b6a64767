"""Pretraining through PyTorch Lightning: batches from memory, views made on the device.

The loop, precision, devices, logging and progress bar are Lightning's; a method supplies only its
loss. Images stay uint8 until they reach the device, where `ViewAugmentation` makes the views of a
whole batch at once.
"""

from __future__ import annotations

import dataclasses
import math
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import LearningRateMonitor, ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.utilities.exceptions import SIGTERMException
from torch.utils.data import DataLoader, Dataset, Sampler

from octbench import trackers
from octbench.augment import ViewAugmentation, to_normalized_float
from octbench.benchmark import LogSpec, PretrainSpec
from octbench.errors import OctbenchError
from octbench.method import Method
from octbench.signals import STOP_SIGNALS, Interrupted


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


class StepBatches(Sampler):
    """Batches of row indices for training steps start..total-1, the same batches whatever step
    training (re)starts from, so a resumed run sees exactly what an uninterrupted one would.

    Each epoch is a fresh permutation from one seeded generator (drop-last batches); the stream is
    the one torch's RandomSampler inside a BatchSampler produces, which draws a second, unused
    permutation at the end of every epoch. With several processes every one draws the same global
    batch and keeps its own slice of it, so the global batch does not depend on the process count."""

    def __init__(self, n: int, batch_size: int, seed: int, total: int, start: int = 0, rank: int = 0,
                 world: int = 1):
        self.n, self.batch_size, self.seed, self.total, self.start = n, batch_size, seed, total, start
        self.per_epoch = n // batch_size
        self.share = batch_size // world
        self.rank = rank

    def __len__(self) -> int:
        # The whole run is one Lightning epoch, so a restored batch counter (= step) stays aligned.
        return self.total

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed)
        epoch = -1
        for step in range(self.total):
            if step // self.per_epoch != epoch:
                epoch = step // self.per_epoch
                order = torch.randperm(self.n, generator=generator)
                torch.randperm(self.n, generator=generator)  # the sampler's draw at StopIteration
            if step >= self.start:
                offset = (step % self.per_epoch) * self.batch_size + self.rank * self.share
                yield order[offset:offset + self.share].tolist()


def batch_loader(dataset: InMemoryBatches, batch_size: int, seed: int, total_steps: int,
                 start_step: int = 0, rank: int = 0, world: int = 1) -> DataLoader:
    if batch_size > len(dataset):  # never cut down to fit: the run id and the lr rule say batch_size
        raise OctbenchError(f"batch_size {batch_size} is larger than the {len(dataset)} B-scans it is drawn from")
    if batch_size % world:
        raise OctbenchError(f"the global batch of {batch_size} does not split evenly over {world} processes; "
                            f"choose a batch_size that is a multiple of {world}")
    sampler = StepBatches(len(dataset), batch_size, seed, total_steps, start_step, rank, world)
    # The batch is already in memory: a worker process would only copy it (batch_size=None: no collate).
    return DataLoader(dataset, sampler=sampler, batch_size=None, pin_memory=torch.cuda.is_available())


PRECISIONS = ("auto", "bf16-mixed", "32-true")


@dataclass(frozen=True)
class Compute:
    """Where pretraining runs and where it is logged; none of it changes what a run is, only how
    fast it is made and who else sees it.

    devices x num_nodes processes share the benchmark's global batch (Lightning's DDP, started by
    `octbench run` itself, by torchrun or by SLURM's srun). compile: torch.compile the backbone.
    precision: "auto" is the GPU configuration on a GPU (bf16 mixed precision, every image blurred
    without a host sync, non-deterministic kernels) and 32-bit, deterministic, on a CPU;
    "bf16-mixed" forces the GPU configuration on any device (so a CPU can test it), "32-true" forces
    32-bit. log: the experiment tracker (the benchmark's [log] section, as the command resolved it)."""
    devices: int = 1
    num_nodes: int = 1
    compile: bool = False
    precision: str = "auto"
    log: LogSpec = LogSpec()

    def gpu_configuration(self) -> bool:
        return self.precision == "bf16-mixed" or (self.precision == "auto" and torch.cuda.is_available())


ONE_PROCESS = Compute()


def warmup_cosine(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


class Pretraining(pl.LightningModule):
    def __init__(self, method: Method, spec: PretrainSpec, dataset: InMemoryBatches, seed: int, start_step: int,
                 blur_every_image: bool = False):
        super().__init__()
        self.method = method
        self.spec = spec
        self.augmentation = method.augmentation
        if blur_every_image and isinstance(self.augmentation, ViewAugmentation):  # as on a GPU
            self.augmentation = dataclasses.replace(self.augmentation, blur_every_image=True)
        self.dataset, self.seed, self.start_step = dataset, seed, start_step

    def train_dataloader(self) -> DataLoader:
        # Built here, where the process's rank is known (after DDP has started).
        return batch_loader(self.dataset, self.spec.batch_size, self.seed, self.spec.steps, self.start_step,
                            self.global_rank, self.trainer.world_size)

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

    def on_after_backward(self) -> None:
        self.method.after_backward(self.global_step, self.spec.steps)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # The augmentations draw from torch's global generators: saving their state makes a
        # resumed run draw the same views as an uninterrupted one.
        checkpoint["rng"] = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            checkpoint["rng"]["cuda"] = torch.cuda.get_rng_state_all()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.rng_to_restore = checkpoint.get("rng")

    def on_train_start(self) -> None:
        if self.trainer.world_size > 1:
            # Every process draws its own views (a seed per rank); a resumed one continues from
            # a seed derived from the step, since only rank 0's generator state is checkpointed.
            torch.manual_seed(self.seed + 1_000_003 * self.global_rank + self.global_step)
            return
        rng = getattr(self, "rng_to_restore", None)
        if rng:  # after Lightning's own restore, right before the first resumed step
            torch.set_rng_state(rng["torch"])
            if "cuda" in rng and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(rng["cuda"])

    def configure_optimizers(self):
        spec = self.spec
        decay = [p for p in self.method.parameters() if p.requires_grad and p.ndim > 1]
        no_decay = [p for p in self.method.parameters() if p.requires_grad and p.ndim <= 1]
        groups = [{"params": decay, "weight_decay": spec.weight_decay},
                  {"params": no_decay, "weight_decay": 0.0}]  # no decay on norms and biases
        lr = spec.effective_lr()
        if spec.optimizer == "adamw":
            optimizer = torch.optim.AdamW(groups, lr=lr)
        elif spec.optimizer == "sgd":
            optimizer = torch.optim.SGD(groups, lr=lr, momentum=0.9)
        else:
            raise ValueError(f"unknown optimizer {spec.optimizer!r}")
        warmup = max(1, int(spec.warmup_fraction * spec.steps))
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: warmup_cosine(step, spec.steps, warmup))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


class CheckpointOnSignal(pl.Callback):
    """During pretraining: a signal is noted, and at the end of the step the checkpoint is saved
    and training stops; `pretrain` then raises Interrupted."""

    def __init__(self, checkpoint: Path):
        self.checkpoint = checkpoint
        self.received: int | None = None
        self.saved_step: int | None = None

    def note(self, signum: int, frame) -> None:
        if self.received is not None:  # a second signal: stop now, the periodic checkpoint remains
            print(f"\noctbench: second {signal.Signals(signum).name}: stopping now", file=sys.stderr, flush=True)
            os._exit(128 + signum)
        self.received = signum
        print(f"\noctbench: {signal.Signals(signum).name} received: saving a checkpoint at the end of this step",
              file=sys.stderr, flush=True)

    @contextmanager
    def installed(self) -> Iterator[None]:
        """Around trainer.fit: Lightning's own SIGTERM handler, registered inside fit, calls ours
        too; SIGINT stays ours alone, so no KeyboardInterrupt reaches Lightning (which would exit
        with status 1 and no checkpoint)."""
        previous = {s: signal.getsignal(s) for s in STOP_SIGNALS}
        for s in STOP_SIGNALS:
            signal.signal(s, self.note)
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    def on_train_batch_end(self, trainer: pl.Trainer, module, outputs, batch, batch_idx: int) -> None:
        if self.received is None or self.saved_step is not None:
            return
        trainer.save_checkpoint(self.checkpoint)
        self.saved_step = trainer.global_step
        trainer.should_stop = True

    def raise_if_stopped(self) -> None:
        if self.received is not None:
            raise Interrupted(self.received, self.checkpoint if self.saved_step is not None else None,
                              self.saved_step)


class SignalDeferringTrainer(pl.Trainer):
    """In one process, Lightning's reaction to SIGTERM (stop at the end of any step, with no
    checkpoint) is left to CheckpointOnSignal, which saves first. Lightning's own check follows the
    callbacks in each step, so a signal arriving between the two stopped the run unsaved. Across
    processes Lightning's check stays: it is how rank 0 tells the other ranks to stop."""

    @property
    def received_sigterm(self) -> bool:
        return self.world_size > 1 and super().received_sigterm


CHECKPOINT_DIR = "checkpoints"


class LossLog(CSVLogger):
    """pretrain_log.csv: the loss curve only. The learning rate goes to an experiment tracker,
    when there is one, and not into this file."""

    def log_metrics(self, metrics: dict, step: int | None = None) -> None:
        metrics = {k: v for k, v in metrics.items() if not k.startswith("lr-")}
        if metrics:
            super().log_metrics(metrics, step)


def pretrain(method: Method, dataset: InMemoryBatches, spec: PretrainSpec, seed: int, work_dir: Path,
             progress: bool = True, compute: Compute = ONE_PROCESS, callbacks=()) -> int | None:
    """Train `method` in place for `spec.steps` steps; the loss curve goes to work_dir/pretrain_log.csv.
    Returns the number of processes that trained, in rank 0 (the one that goes on to evaluate and
    write the record), and None in the others.

    A checkpoint is kept in work_dir/checkpoints about every tenth of the run; if one is there when
    training starts (the run was killed), training continues from it and, on CPU, ends exactly
    where an uninterrupted run would."""
    pl.seed_everything(seed, workers=True, verbose=False)
    method.to(memory_format=torch.channels_last)
    if compute.compile:
        method.backbone.compile()  # in place: the state dict keeps its keys
    resume, start = last_checkpoint(work_dir)
    gpu_configuration = compute.gpu_configuration()
    module = Pretraining(method, spec, dataset, seed, start, blur_every_image=gpu_configuration)
    earlier_log = work_dir / "pretrain_log.partial.csv"
    # The logger starts a new file: the rows logged before the stop are kept apart and joined at the
    # end. They are in metrics.csv, or in pretrain_log.csv if pretraining had ended (stopped while
    # the run was evaluated).
    logged = [work_dir / name for name in ("metrics.csv", "pretrain_log.csv") if (work_dir / name).exists()]
    if resume and logged:
        logged[0].replace(earlier_log)
    elif not resume:
        earlier_log.unlink(missing_ok=True)  # from an attempt whose checkpoint was unusable
    log_every = max(1, min(5, spec.steps // 20))
    distributed = compute.devices * compute.num_nodes > 1
    stopper = CheckpointOnSignal(work_dir / CHECKPOINT_DIR / "last.ckpt")
    checkpoints = ModelCheckpoint(dirpath=work_dir / CHECKPOINT_DIR, filename="last", save_top_k=0,
                                  save_last=True, every_n_train_steps=max(1, min(100, spec.steps // 10)))
    tracked = trackers.pretraining_loggers(compute.log, work_dir)  # none unless --logger names one
    monitors = [LearningRateMonitor(logging_interval="step")] if tracked else []
    trainer = SignalDeferringTrainer(
        max_steps=spec.steps, max_epochs=-1, accelerator="auto", devices=compute.devices,
        num_nodes=compute.num_nodes, strategy="ddp" if distributed else "auto",
        sync_batchnorm=spec.sync_batchnorm and distributed, use_distributed_sampler=False,  # StepBatches slices
        precision="bf16-mixed" if gpu_configuration else "32-true",
        deterministic=not gpu_configuration,  # bit-identical CPU runs; GPU keeps its fast kernels
        logger=[LossLog(str(work_dir), name="", version=""), *tracked], log_every_n_steps=log_every,
        callbacks=[checkpoints, stopper, *monitors, *callbacks], enable_model_summary=False,
        enable_progress_bar=progress, default_root_dir=str(work_dir))
    with stopper.installed():
        try:
            trainer.fit(module, ckpt_path=resume, weights_only=True)  # a checkpoint never runs code
        except SIGTERMException:  # Lightning's own reaction to the SIGTERM that stopper has handled
            if stopper.received is None:
                raise
    stopper.raise_if_stopped()
    method.cpu()
    if not trainer.is_global_zero:
        return None
    # No metrics.csv: resumed from a checkpoint at the last step, so no step ran in this attempt.
    log = pd.read_csv(work_dir / "metrics.csv") if (work_dir / "metrics.csv").exists() else None
    if earlier_log.exists():
        before = pd.read_csv(earlier_log)
        # A stopped run also logs the step it stopped at; an uninterrupted one logs every log_every steps.
        before = before[(before["step"] + 1) % log_every == 0]
        log = before if log is None else pd.concat([before[before["step"] < log["step"].min()], log],
                                                   ignore_index=True)
        earlier_log.unlink()
    log.to_csv(work_dir / "pretrain_log.csv", index=False)
    (work_dir / "metrics.csv").unlink(missing_ok=True)
    (work_dir / "hparams.yaml").unlink(missing_ok=True)
    # The checkpoints stay until the record is written (a run stopped while it is evaluated
    # resumes at the end of pretraining); they are not part of the record.
    return trainer.world_size


def last_checkpoint(work_dir: Path) -> tuple[str | None, int]:
    """The checkpoint to resume from and its step, or (None, 0) for a fresh start."""
    path = work_dir / CHECKPOINT_DIR / "last.ckpt"
    if not path.exists():
        return None, 0
    try:
        # Loaded as Lightning will load it (weights only), so an unusable file is caught here.
        step = int(torch.load(path, map_location="cpu", weights_only=True)["global_step"])
    except Exception as error:  # killed while writing it, or written by another version
        print(f"cannot resume from {path} ({type(error).__name__}); starting pretraining over", flush=True)
        path.unlink()
        return None, 0
    print(f"resuming pretraining from step {step} ({path})", flush=True)
    return str(path), step
