"""Clinically labelled supervised contrastive learning (the seed paper of octbench).

B-scans that share a clinical value (BCVA letters, CST µm, eye, patient, or any cohort column named
by --clinical) are positives; the loss is the weighted sum of one SupCon term per clinical label.
"""

import torch
from lightly.models.modules import SimCLRProjectionHead

from octbench.losses import weighted_supcon_loss
from octbench.method import Method


class ClinicalSupCon(Method):
    name = "clinical-supcon"
    description = "supervised contrastive learning with clinical labels as classes (--clinical, --bins)"
    paper = ("Kokilepersaud et al., Clinically Labeled Contrastive Learning for OCT Biomarker "
             "Classification, IEEE JBHI 2023")
    n_views = 2
    takes_clinical = True
    # BCVA and CST: the two clinical values the paper builds its positives from.
    default_clinical = "bcva,cst"

    def __init__(self, backbone, feature_dim, options):
        super().__init__(backbone, feature_dim, options)
        # The SupCon head of Khosla et al. (2-layer MLP to 128 dimensions).
        self.projection_head = SimCLRProjectionHead(feature_dim, 512, 128)
        self.weights = [weight for _, weight in options.clinical]
        self.temperature = 0.07  # the seed paper's and Khosla et al.'s temperature

    def training_loss(self, views, batch) -> torch.Tensor:
        features = torch.stack([self.projection_head(self.backbone(v)) for v in views], dim=1)
        return weighted_supcon_loss(features, batch["labels"], self.weights, self.temperature,
                                    gather_distributed=True)
