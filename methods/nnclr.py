"""NNCLR: the positive of a view is the nearest neighbour of the other view in a support set of
past embeddings, so that positives differ by more than augmentation."""

import math

import torch
from lightly.loss import NTXentLoss
from lightly.models.modules import NNCLRPredictionHead, NNCLRProjectionHead, NNMemoryBankModule

from octbench.method import Method


class NNCLR(Method):
    name = "nnclr"
    description = "self-supervised contrast with nearest neighbours from a support set as positives"
    paper = "Dwibedi et al., With a Little Help from My Friends: Nearest-Neighbor Contrastive Learning, ICCV 2021"
    n_views = 2

    def __init__(self, backbone, feature_dim, options):
        super().__init__(backbone, feature_dim, options)
        # Projector 512-512-128, predictor 128-512-128 (lightly's CIFAR-10 example).
        self.projection_head = NNCLRProjectionHead(feature_dim, 512, 128)
        self.prediction_head = NNCLRPredictionHead(128, 512, 128)
        # Support set of 4096 embeddings: the paper uses 98304 for ImageNet; the pool here has 6000.
        self.memory_bank = NNMemoryBankModule(size=(4096, 128))
        self.criterion = NTXentLoss(temperature=0.1, gather_distributed=True)  # the paper's 0.1

    def training_loss(self, views, batch) -> torch.Tensor:
        projections = [self.projection_head(self.backbone(v)) for v in views]
        predictions = [self.prediction_head(z) for z in projections]
        neighbours = [self.memory_bank(projections[0].detach(), update=False),
                      self.memory_bank(projections[1].detach(), update=True)]
        return 0.5 * (self.criterion(neighbours[0], predictions[1]) + self.criterion(neighbours[1], predictions[0]))

    def trivial_loss(self, batch_size: int) -> float:
        # Each NT-Xent term when neighbours, predictions and every other embedding are one vector:
        # the positive among 2B - 1 equally similar candidates.
        return math.log(2 * batch_size - 1)
