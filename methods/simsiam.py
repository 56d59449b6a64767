"""SimSiam: a predictor maps one view's projection to the other's, with a stop-gradient on the target."""

import torch
from lightly.loss import NegativeCosineSimilarity
from lightly.models.modules import SimSiamPredictionHead, SimSiamProjectionHead

from octbench.method import Method


class SimSiam(Method):
    name = "simsiam"
    description = "self-supervised siamese prediction with a stop-gradient, no negatives, no momentum"
    paper = "Chen and He, Exploring Simple Siamese Representation Learning, CVPR 2021"
    n_views = 2

    def __init__(self, backbone, feature_dim, options):
        super().__init__(backbone, feature_dim, options)
        # Projector 512-512-128 and bottleneck predictor 128-64-128: lightly's CIFAR-10 sizes,
        # the paper's ResNet-18 setting scaled to a small dataset.
        self.projection_head = SimSiamProjectionHead(feature_dim, 512, 128)
        self.prediction_head = SimSiamPredictionHead(128, 64, 128)
        self.criterion = NegativeCosineSimilarity()

    def training_loss(self, views, batch) -> torch.Tensor:
        projections = [self.projection_head(self.backbone(v)) for v in views]
        predictions = [self.prediction_head(z) for z in projections]
        # The stop-gradient on the projections is what keeps SimSiam from collapsing.
        return 0.5 * (self.criterion(predictions[0], projections[1].detach())
                      + self.criterion(predictions[1], projections[0].detach()))
