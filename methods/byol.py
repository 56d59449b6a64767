"""BYOL: an online network predicts a momentum target's projection of the other view; no negatives."""

import torch
from lightly.loss import NegativeCosineSimilarity
from lightly.models.modules import BYOLPredictionHead, BYOLProjectionHead

from octbench.method import Method, momentum_copy


class BYOL(Method):
    name = "byol"
    description = "self-supervised prediction of a momentum target's projection, no negatives"
    paper = "Grill et al., Bootstrap Your Own Latent, NeurIPS 2020"
    n_views = 2
    # The paper's cosine schedule of the target rate towards 1, from 0.99 (lightly's benchmark).
    momentum = (0.99, 1.0)

    def __init__(self, backbone, feature_dim, options):
        super().__init__(backbone, feature_dim, options)
        # Projection and prediction MLPs with 4096 hidden units to 256 dimensions (the paper).
        self.projection_head = BYOLProjectionHead(feature_dim, 4096, 256)
        self.prediction_head = BYOLPredictionHead(256, 4096, 256)
        self.target_backbone = momentum_copy(self.backbone)
        self.target_projection_head = momentum_copy(self.projection_head)
        self.criterion = NegativeCosineSimilarity()

    def momentum_pairs(self):
        return [(self.backbone, self.target_backbone),
                (self.projection_head, self.target_projection_head)]

    def training_loss(self, views, batch) -> torch.Tensor:
        predictions = [self.prediction_head(self.projection_head(self.backbone(v))) for v in views]
        with torch.no_grad():
            targets = [self.target_projection_head(self.target_backbone(v)) for v in views]
        # Symmetric: each view's prediction is matched to the other view's target.
        return 0.5 * (self.criterion(predictions[0], targets[1]) + self.criterion(predictions[1], targets[0]))
