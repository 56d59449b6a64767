"""Clinically labelled supervised contrastive learning (the seed paper of octbench).

B-scans that share a clinical value (BCVA letters, CST µm, eye, patient, or any cohort column named
by --clinical) are positives; the loss is the weighted sum of one SupCon term per clinical label,
plus SimCLR's instance term when `simclr` is named (`--clinical cst,simclr=0.5`).
"""

import math

import torch
from lightly.loss import NTXentLoss
from lightly.models.modules import SimCLRProjectionHead

from octbench.clinical import INSTANCE_TERM
from octbench.losses import weighted_supcon_loss
from octbench.method import Method

PAPER = "Kokilepersaud et al., Clinically Labeled Contrastive Learning for OCT Biomarker Classification, IEEE JBHI 2023"


class ClinicalSupCon(Method):
    name = "clinical-supcon"
    description = "supervised contrastive learning with clinical labels as classes (--clinical, --bins)"
    paper = PAPER
    n_views = 2
    takes_clinical = True
    # BCVA and CST: the two clinical values the paper builds its positives from.
    default_clinical = "bcva,cst"
    takes = {"temperature": float}

    def __init__(self, backbone, feature_dim, options):
        super().__init__(backbone, feature_dim, options)
        # The SupCon head of Khosla et al. (2-layer MLP to 128 dimensions).
        self.projection_head = SimCLRProjectionHead(feature_dim, 512, 128)
        self.temperature = options.get("temperature", 0.07)  # the seed paper's and Khosla et al.'s temperature
        # Label terms in the order of the batch's `labels` columns; the instance term has none.
        self.label_weights = [w for column, w in options.clinical if column != INSTANCE_TERM]
        self.instance_weight = sum(w for column, w in options.clinical if column == INSTANCE_TERM)
        self.instance_loss = NTXentLoss(temperature=self.temperature, gather_distributed=True)

    def trivial_loss(self, batch_size: int) -> float:
        # Every term (SupCon per label, NT-Xent) is a log-softmax over the other 2B - 1 views; with
        # no view told apart from another each is ln(2B - 1), and the weights sum to 1.
        return math.log(2 * batch_size - 1)

    def training_loss(self, views, batch) -> torch.Tensor:
        projections = [self.projection_head(self.backbone(v)) for v in views]
        loss = torch.zeros((), device=projections[0].device)
        if self.label_weights:
            loss = loss + weighted_supcon_loss(torch.stack(projections, dim=1), batch["labels"],
                                               self.label_weights, self.temperature, gather_distributed=True)
        if self.instance_weight:
            loss = loss + self.instance_weight * self.instance_loss(projections[0], projections[1])
        return loss
