"""DINO (ResNet variant): a student matches the centred, sharpened output distribution of a
momentum teacher on the other view; self-distillation without labels or negatives.

Two global views only (no local multi-crop): 64 px scans leave little room for 96 px-style crops.
"""

import math

import torch
from lightly.loss import DINOLoss
from lightly.models.modules import DINOProjectionHead

from octbench.method import Method, momentum_copy


class DINO(Method):
    """`backbone` is the student: the network the optimiser trains (and `--compile` compiles).
    `teacher_backbone` is its momentum copy, moved only by EMA. The teacher is the network probed
    (`encode`), as in the paper, where it gives the better features; `probed_backbone()` names it,
    for the run record's weights file."""

    name = "dino"
    description = "self-distillation from a momentum teacher (ResNet variant, two global views)"
    paper = "Caron et al., Emerging Properties in Self-Supervised Vision Transformers, ICCV 2021"
    n_views = 2
    # Teacher rate from 0.996 to 1 on a cosine (the paper); lightly's short-schedule start 0.99.
    momentum = (0.99, 1.0)

    def __init__(self, backbone, feature_dim, options):
        super().__init__(backbone, feature_dim, options)
        # Head 512 hidden, 64 bottleneck, 2048 prototypes, batch norm for ResNets (lightly's
        # CIFAR-10 example; the paper's 65536 outputs are for ImageNet).
        def head():
            return DINOProjectionHead(feature_dim, 512, 64, 2048, batch_norm=True)

        self.student_head = head()
        self.teacher_backbone = momentum_copy(self.backbone)
        self.teacher_head = momentum_copy(self.student_head, blank=head())  # weight norm: no deepcopy
        # Teacher temperature 0.04, student 0.1, centre momentum 0.9 (the paper).
        self.criterion = DINOLoss(output_dim=2048, teacher_temp=0.04, warmup_teacher_temp=0.04,
                                  student_temp=0.1, center_momentum=0.9)

    def momentum_pairs(self):
        return [(self.backbone, self.teacher_backbone), (self.student_head, self.teacher_head)]

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        # The teacher is probed, as in the paper (its EMA of the student evaluates better).
        return self.teacher_backbone(images)

    def probed_backbone(self) -> torch.nn.Module:
        """The network `encode` reads, whose weights the run record should hold."""
        return self.teacher_backbone

    def training_loss(self, views, batch) -> torch.Tensor:
        with torch.no_grad():
            teacher = [self.teacher_head(self.teacher_backbone(v)) for v in views]
        student = [self.student_head(self.backbone(v)) for v in views]
        return self.criterion(teacher, student)

    def trivial_loss(self, batch_size: int) -> float:
        # A uniform student output over the head's dimensions, whatever the teacher's distribution.
        return math.log(self.criterion.center.shape[-1])
