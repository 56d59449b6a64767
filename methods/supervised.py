"""The ceiling of every table: the backbone trained end to end on the expert training labels."""

import torch
from torch import nn

from octbench.augment import ViewAugmentation
from octbench.losses import label_loss
from octbench.method import Method


class Supervised(Method):
    name = "supervised"
    description = "baseline: trained end to end on the expert biomarker labels (the ceiling)"
    paper = "fully supervised row of Kokilepersaud et al., IEEE JBHI 2023"
    n_views = 1
    trains_on = "biomarkers"
    # Label-preserving views: a small crop cannot cut the central lesions out of a positive scan,
    # and no blur, which would erase foci that the label still claims.
    augmentation = ViewAugmentation(crop_scale=(0.8, 1.0), blur_prob=0.0)

    def __init__(self, backbone, feature_dim, options):
        super().__init__(backbone, feature_dim, options)
        # One output per biomarker (binary cross-entropy), or per class of a multi-class task (softmax).
        self.classifier = nn.Linear(feature_dim, len(options.task.labels))
        self.loss = label_loss(options.task.multiclass)

    def training_loss(self, views, batch) -> torch.Tensor:
        return self.loss(self.classifier(self.backbone(views[0])), batch["biomarkers"])
