"""SimCLR: two augmented views of each image attract, every other image in the batch repels."""

import math

import torch
from lightly.loss import NTXentLoss
from lightly.models.modules import SimCLRProjectionHead

from octbench.method import Method


class SimCLR(Method):
    name = "simclr"
    description = "self-supervised contrastive learning of two views (NT-Xent)"
    paper = "Chen et al., A Simple Framework for Contrastive Learning of Visual Representations, ICML 2020"
    n_views = 2

    def __init__(self, backbone, feature_dim, options):
        super().__init__(backbone, feature_dim, options)
        # 2-layer MLP head to 128 dimensions, as in the paper and lightly's SimCLR benchmark.
        self.projection_head = SimCLRProjectionHead(feature_dim, 512, 128)
        # Temperature 0.1: lightly's ImageNet benchmark and the paper's best for large batches.
        self.criterion = NTXentLoss(temperature=0.1, gather_distributed=True)

    def training_loss(self, views, batch) -> torch.Tensor:
        z0, z1 = (self.projection_head(self.backbone(v)) for v in views)
        return self.criterion(z0, z1)

    def trivial_loss(self, batch_size: int) -> float:
        # NT-Xent with identical embeddings: each of the 2B views sees its positive among 2B - 1
        # equally similar others.
        return math.log(2 * batch_size - 1)
