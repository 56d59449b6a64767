"""What a pretraining method is: a backbone, the heads its loss needs, and that loss.

A method is one file in `methods/` (or in a folder of the user's, see `octbench.registry`) holding
one subclass of `Method`. It declares what it needs instead of overriding a framework:

    name, description, paper   shown by `octbench list`
    n_views                    augmented views per image its loss takes (0: no pretraining)
    trains_on                  "pool" (clinically labelled B-scans) or "biomarkers" (expert labels)
    takes_clinical             whether it reads `--clinical` (then batches carry `labels`)
    default_clinical           the `--clinical` it uses when none is given
    takes                      the options a benchmark entry may set for it, with their types
                               ({"temperature": float}); any other option is refused
    augmentation               how its views are drawn (default: the seed paper's family)
    momentum                   (start, end) EMA rate of its momentum targets, cosine-scheduled

and implements `training_loss(views, batch)`; a method with momentum targets (MoCo, BYOL, DINO)
also lists them in `momentum_pairs()`; `before_step` moves them before every step, and
`after_backward` may edit the gradients before the optimiser applies them (DINO's frozen last layer).

Batches are dicts: `image` (normalised float, (B, 1, H, W)), `labels` (B, k) class ids of the
clinical columns named by `--clinical`, and, for methods that train on biomarkers, `biomarkers`
(B, 6) floats. The training loop, optimiser,
schedule, precision and devices belong to `octbench.training`, not to methods.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import ClassVar

import torch
from lightly.models.utils import deactivate_requires_grad, update_momentum
from lightly.utils.scheduler import cosine_schedule
from torch import nn

from octbench.augment import ViewAugmentation
from octbench.task import BIOMARKER_TASK, Task


def momentum_copy(module: nn.Module, blank: nn.Module | None = None) -> nn.Module:
    """A target network: starts as an exact copy of `module`, then moves only by EMA.
    Modules that cannot be deep-copied (weight-normed heads) pass a freshly built `blank` twin."""
    if blank is None:
        target = copy.deepcopy(module)
    else:
        target = blank
        target.load_state_dict(module.state_dict())
    deactivate_requires_grad(target)
    return target


@dataclass(frozen=True)
class MethodOptions:
    clinical: tuple[tuple[str, float], ...] = ()  # (cohort column, weight) pairs
    bins: int | None = None  # continuous clinical values: classes by exact value, or quantile bins
    settings: tuple[tuple[str, object], ...] = ()  # the method's own options (see Method.takes), sorted by key
    # The cohort's expert labels, for methods that train on them (supervised); not in record():
    # the cohort's fingerprint and spec key them.
    task: Task = BIOMARKER_TASK

    def get(self, key: str, default):
        return dict(self.settings).get(key, default)

    def record(self) -> dict:
        """As stored in run records and keys: plain JSON values."""
        return {"clinical": [list(pair) for pair in self.clinical], "bins": self.bins, **dict(self.settings)}


class Method(nn.Module):
    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    n_views: ClassVar[int] = 2
    trains_on: ClassVar[str] = "pool"
    takes_clinical: ClassVar[bool] = False
    default_clinical: ClassVar[str] = ""  # the --clinical used when none is given
    takes: ClassVar[dict[str, type]] = {}  # options a benchmark entry may set, e.g. {"temperature": float}
    augmentation: ClassVar[ViewAugmentation] = ViewAugmentation()
    momentum: ClassVar[tuple[float, float] | None] = None

    def __init__(self, backbone: nn.Module, feature_dim: int, options: MethodOptions):
        super().__init__()
        self.backbone = backbone
        self.feature_dim = feature_dim
        self.options = options

    def training_loss(self, views: list[torch.Tensor], batch: dict) -> torch.Tensor:
        """The loss of one batch; `views` holds `n_views` augmented copies of `batch['image']`.
        Every method with n_views > 0 defines it; baselines without pretraining need not."""
        raise TypeError(f"{type(self).__name__} has n_views = 0: it is never trained")

    def trivial_loss(self, batch_size: int) -> float | None:
        """The loss of a network that has learned nothing (uniform assignments, or an embedding that
        does not tell images apart) at a global batch of `batch_size`; None where no such level is
        known. A loss curve that ends there shows a run that collapsed rather than learned."""
        return None

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Features the evaluator probes: by default the backbone's pooled output."""
        return self.backbone(images)

    def probed_backbone(self) -> nn.Module:
        """The network `encode` runs, saved as the run record's backbone.pt: by default the trained
        backbone; a method that probes a momentum copy (DINO's teacher) returns that."""
        return self.backbone

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        """(online, target) modules whose targets follow the online weights by EMA."""
        return []

    def momentum_at(self, step: int, total_steps: int) -> float:
        """The EMA rate at `step`: from momentum[0] up to momentum[1] on a cosine (BYOL's schedule)."""
        start, end = self.momentum
        return cosine_schedule(step, max(total_steps, 1), start, end)

    def before_step(self, step: int, total_steps: int) -> None:
        """Called before every training step: moves each momentum target,
        target <- m * target + (1 - m) * online. Methods with other per-step work extend it."""
        if self.momentum is None:
            return
        rate = self.momentum_at(step, total_steps)
        for online, target in self.momentum_pairs():
            update_momentum(online, target, m=rate)

    def after_backward(self, step: int, total_steps: int) -> None:
        """Called after the backward pass of every step, before the optimiser step."""
