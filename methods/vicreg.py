"""VICReg: two views' embeddings agree (invariance) while each dimension keeps its variance and
dimensions stay decorrelated (covariance), which prevents collapse without negatives."""

import torch
from lightly.loss import VICRegLoss
from lightly.models.modules.heads import VICRegProjectionHead

from octbench.method import Method


class VICReg(Method):
    name = "vicreg"
    description = "self-supervised variance-invariance-covariance regularisation of two views"
    paper = "Bardes et al., VICReg: Variance-Invariance-Covariance Regularization, ICLR 2022"
    n_views = 2

    def __init__(self, backbone, feature_dim, options):
        super().__init__(backbone, feature_dim, options)
        # 2-layer expander of width 2048 (lightly's CIFAR-10 example; the paper's 8192 is for ResNet-50).
        self.projection_head = VICRegProjectionHead(feature_dim, 2048, 2048, num_layers=2)
        # Invariance 25, variance 25, covariance 1: the paper's coefficients.
        self.criterion = VICRegLoss(lambda_param=25.0, mu_param=25.0, nu_param=1.0, gather_distributed=True)

    def training_loss(self, views, batch) -> torch.Tensor:
        z0, z1 = (self.projection_head(self.backbone(v)) for v in views)
        return self.criterion(z0, z1)
