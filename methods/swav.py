"""SwAV: each view predicts the other's assignment to learned prototypes, with balanced
assignments from a few Sinkhorn-Knopp iterations; clustering instead of pairwise contrast.

Two views only (no multi-crop), as for DINO. At a small batch the authors add two things, kept
here: a queue of recent features, so that Sinkhorn spreads many more samples than one batch over
the prototypes (otherwise 128 samples over hundreds of prototypes give near-uniform codes, and the
loss sits at ln(prototypes)), and prototypes frozen over the first steps, so that they do not move
before the features mean anything.
"""

import math

import torch
import torch.nn.functional as F
from lightly.loss import SwaVLoss
from lightly.models.modules import SwaVProjectionHead, SwaVPrototypes

from octbench.method import Method

PROJECTION_DIM = 128


class SwaV(Method):
    name = "swav"
    description = "self-supervised swapped prediction of balanced prototype assignments"
    paper = "Caron et al., Unsupervised Learning of Visual Features by Contrasting Cluster Assignments, NeurIPS 2020"
    n_views = 2
    takes = {"prototypes": int, "queue": int}

    def __init__(self, backbone, feature_dim, options):
        super().__init__(backbone, feature_dim, options)
        # Projector 512-512-128 (lightly's CIFAR-10 example). 256 prototypes: the paper's 3000 are
        # for ImageNet's 1000 classes; a 6,000-scan pool calls for far fewer.
        n_prototypes = options.get("prototypes", 256)
        self.projection_head = SwaVProjectionHead(feature_dim, 512, PROJECTION_DIM)
        self.prototypes = SwaVPrototypes(PROJECTION_DIM, n_prototypes=n_prototypes, n_steps_frozen_prototypes=0)
        self.criterion = SwaVLoss(temperature=0.1, sinkhorn_iterations=3, sinkhorn_epsilon=0.05,
                                  sinkhorn_gather_distributed=True)
        # The queue: the paper uses 3840 features at batch 256 per GPU pair; here 1024 (8 batches of
        # 128), so that its features are at most 8 steps old in a schedule of about a hundred.
        self.queue_length = options.get("queue", 1024)
        self.register_buffer("queue", torch.zeros(self.n_views, self.queue_length, PROJECTION_DIM))
        self.register_buffer("queue_filled", torch.zeros((), dtype=torch.long))

    def before_step(self, step: int, total_steps: int) -> None:
        with torch.no_grad():
            self.prototypes.normalize()  # the prototypes live on the unit sphere

    def after_backward(self, step: int, total_steps: int) -> None:
        # Prototypes stay frozen over the first tenth of the schedule (the paper: its first epoch).
        if step < max(1, total_steps // 10):
            for parameter in self.prototypes.parameters():
                parameter.grad = None

    def training_loss(self, views, batch) -> torch.Tensor:
        features = [F.normalize(self.projection_head(self.backbone(v)), dim=1) for v in views]
        scores = [self.prototypes(f) for f in features]
        queue_scores = None
        if self.queue_length and int(self.queue_filled) >= self.queue_length:
            with torch.no_grad():
                queue_scores = [self.prototypes(self.queue[v]) for v in range(len(views))]
        loss = self.criterion(scores, [], queue_scores)
        if self.queue_length:
            self.enqueue(features)
        return loss

    @torch.no_grad()
    def enqueue(self, features: list[torch.Tensor]) -> None:
        """Newest features first; the oldest fall off the end."""
        for v, f in enumerate(features):
            kept = self.queue[v, : self.queue_length - len(f)].clone()
            self.queue[v] = torch.cat([f.detach().to(self.queue.dtype), kept])[: self.queue_length]
        self.queue_filled.add_(len(features[0])).clamp_(max=self.queue_length)

    def trivial_loss(self, batch_size: int) -> float:
        # Uniform scores over the prototypes: the cross-entropy with any assignment (each row sums
        # to 1 after Sinkhorn) is ln(prototypes); lightly averages it over the view pairs.
        return math.log(self.prototypes.heads[0].out_features)
