"""SwAV: each view predicts the other's assignment to learned prototypes, with balanced
assignments from a few Sinkhorn-Knopp iterations; clustering instead of pairwise contrast.

Two views only (no multi-crop), as for DINO.
"""

import math

import torch
import torch.nn.functional as F
from lightly.loss import SwaVLoss
from lightly.models.modules import SwaVProjectionHead, SwaVPrototypes

from octbench.method import Method


class SwaV(Method):
    name = "swav"
    description = "self-supervised swapped prediction of balanced prototype assignments"
    paper = "Caron et al., Unsupervised Learning of Visual Features by Contrasting Cluster Assignments, NeurIPS 2020"
    n_views = 2

    def __init__(self, backbone, feature_dim, options):
        super().__init__(backbone, feature_dim, options)
        # Projector 512-512-128 and 512 prototypes (lightly's CIFAR-10 example; the paper's 3000
        # prototypes are for ImageNet). Prototypes stay frozen for the first step, as in the paper.
        self.projection_head = SwaVProjectionHead(feature_dim, 512, 128)
        self.prototypes = SwaVPrototypes(128, n_prototypes=512, n_steps_frozen_prototypes=1)
        self.criterion = SwaVLoss(temperature=0.1, sinkhorn_iterations=3, sinkhorn_epsilon=0.05,
                                  sinkhorn_gather_distributed=True)
        self.step = 0

    def before_step(self, step: int, total_steps: int) -> None:
        self.step = step
        self.prototypes.normalize()  # the prototypes live on the unit sphere

    def training_loss(self, views, batch) -> torch.Tensor:
        features = [F.normalize(self.projection_head(self.backbone(v)), dim=1) for v in views]
        scores = [self.prototypes(f, self.step) for f in features]
        return self.criterion(scores, [])

    def trivial_loss(self, batch_size: int) -> float:
        # Uniform scores over the prototypes: the cross-entropy with any assignment (each row sums
        # to 1 after Sinkhorn) is ln(prototypes); lightly averages it over the view pairs.
        return math.log(self.prototypes.heads[0].out_features)
