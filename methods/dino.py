"""DINO (ResNet variant): a student matches the centred, sharpened output distribution of a
momentum teacher on the other view; self-distillation without labels or negatives.

Two global views only (no local multi-crop): 64 px scans leave little room for 96 px-style crops.
The authors' safeguards for short or small-batch training are kept: the teacher's temperature warms
up from 0.04 to 0.07, the head's last layer stays frozen over the first steps, and the teacher's
EMA rate is scaled to the schedule (the paper's 0.996 is for ~100k steps; over a hundred steps it
would leave the teacher at its random start, whose centred outputs are uniform: a loss at ln K).
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
    # Teacher rate from 0.9 to 1 on a cosine: at 0.9 the teacher averages the student's last ~10
    # steps, a tenth of the default schedule, as 0.996 averages a small share of the paper's.
    momentum = (0.9, 1.0)

    def __init__(self, backbone, feature_dim, options):
        super().__init__(backbone, feature_dim, options)
        # Head 512 hidden, 64 bottleneck, 2048 prototypes, batch norm for ResNets (lightly's
        # CIFAR-10 example; the paper's 65536 outputs are for ImageNet).
        def head():
            return DINOProjectionHead(feature_dim, 512, 64, 2048, batch_norm=True)

        self.student_head = head()
        self.teacher_backbone = momentum_copy(self.backbone)
        self.teacher_head = momentum_copy(self.student_head, blank=head())  # weight norm: no deepcopy
        # Teacher temperature 0.04 warming up to 0.07 over the first 30% of the schedule (the
        # paper: over 30 of 100 epochs), student 0.1, centre momentum 0.9.
        self.teacher_temps = (0.04, 0.07)
        self.criterion = DINOLoss(output_dim=2048, teacher_temp=0.07, warmup_teacher_temp=0.04,
                                  student_temp=0.1, center_momentum=0.9)
        self.step, self.total_steps = 0, 1

    def before_step(self, step: int, total_steps: int) -> None:
        super().before_step(step, total_steps)
        self.step, self.total_steps = step, total_steps

    def teacher_temperature(self) -> float:
        warmup = 0.3 * self.total_steps
        start, end = self.teacher_temps
        return end if self.step >= warmup else start + (end - start) * self.step / warmup

    def after_backward(self, step: int, total_steps: int) -> None:
        # The last layer stays frozen over the first tenth of the schedule (the paper: its first epoch).
        if step < max(1, total_steps // 10):
            for parameter in self.student_head.last_layer.parameters():
                parameter.grad = None

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
        return self.criterion(teacher, student, teacher_temp=self.teacher_temperature())

    def trivial_loss(self, batch_size: int) -> float:
        # A uniform student output over the head's dimensions, whatever the teacher's distribution.
        return math.log(self.criterion.center.shape[-1])
