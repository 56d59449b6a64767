"""What a pretraining method is: a backbone, the heads its loss needs, and that loss.

A method is one file in `methods/` (or in a folder of the user's, see `octbench.registry`) holding
one subclass of `Method`. It declares what it needs instead of overriding a framework:

    name, description, paper   shown by `octbench list`
    n_views                    augmented views per image its loss takes (0: no pretraining)
    trains_on                  "pool" (clinically labelled B-scans) or "biomarkers" (expert labels)
    takes_clinical             whether it reads `--clinical` (then batches carry `labels`)

and implements `training_loss(views, batch)`. Batches are dicts: `image` (normalised float,
(B, 1, H, W)), `labels` (B, k) class ids of the clinical columns named by `--clinical`, and, for
methods that train on biomarkers, `biomarkers` (B, 6) floats. The training loop, optimiser,
schedule, precision and devices belong to `octbench.training`, not to methods.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn


@dataclass(frozen=True)
class MethodOptions:
    clinical: tuple[tuple[str, float], ...] = ()  # (cohort column, weight) pairs
    bins: int | None = None  # continuous clinical values: classes by exact value, or quantile bins


class Method(nn.Module):
    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    n_views: ClassVar[int] = 2
    trains_on: ClassVar[str] = "pool"
    takes_clinical: ClassVar[bool] = False
    default_clinical: ClassVar[str] = ""  # the --clinical used when none is given

    def __init__(self, backbone: nn.Module, feature_dim: int, options: MethodOptions):
        super().__init__()
        self.backbone = backbone
        self.feature_dim = feature_dim
        self.options = options

    def training_loss(self, views: list[torch.Tensor], batch: dict) -> torch.Tensor:
        """The loss of one batch; `views` holds `n_views` augmented copies of `batch['image']`.
        Every method with n_views > 0 defines it; baselines without pretraining need not."""
        raise TypeError(f"{type(self).__name__} has n_views = 0: it is never trained")

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Features the evaluator probes: by default the backbone's pooled output."""
        return self.backbone(images)
