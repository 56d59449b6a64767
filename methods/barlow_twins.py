"""Barlow Twins: the cross-correlation of two views' embeddings is pushed towards the identity."""

import torch
from lightly.loss import BarlowTwinsLoss
from lightly.models.modules import BarlowTwinsProjectionHead

from octbench.method import Method


class BarlowTwins(Method):
    name = "barlow-twins"
    description = "self-supervised redundancy reduction: cross-correlation of two views towards identity"
    paper = "Zbontar et al., Barlow Twins: Self-Supervised Learning via Redundancy Reduction, ICML 2021"
    n_views = 2

    def __init__(self, backbone, feature_dim, options):
        super().__init__(backbone, feature_dim, options)
        # 3-layer projector of width 2048 (lightly's CIFAR-10 example); the paper's 8192 is sized
        # for ResNet-50 on ImageNet and would dominate a ResNet-18's compute.
        self.projection_head = BarlowTwinsProjectionHead(feature_dim, 2048, 2048)
        # Off-diagonal weight 0.005 (the paper's lambda); gathers across GPUs for the statistics.
        self.criterion = BarlowTwinsLoss(lambda_param=0.005, gather_distributed=True)

    def training_loss(self, views, batch) -> torch.Tensor:
        z0, z1 = (self.projection_head(self.backbone(v)) for v in views)
        return self.criterion(z0, z1)
