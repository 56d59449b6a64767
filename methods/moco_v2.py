"""MoCo v2: a query matches the key of its other view among a queue of past keys (the negatives).

Keys come from a momentum encoder, a slowly moving copy of the query encoder, so that the keys in
the queue stay consistent with each other.
"""

import math

import torch
from lightly.loss import NTXentLoss
from lightly.models.modules import MoCoProjectionHead

from octbench.method import Method, momentum_copy


class MoCoV2(Method):
    name = "moco-v2"
    description = "self-supervised contrast against a queue of momentum-encoded keys"
    paper = "Chen et al., Improved Baselines with Momentum Contrastive Learning, arXiv 2003.04297, 2020"
    n_views = 2
    # BYOL's cosine schedule from 0.99 to 1 (lightly's MoCo examples); the paper's fixed 0.999
    # assumes hundreds of epochs, under which a short schedule's keys would barely move.
    momentum = (0.99, 1.0)
    takes = {"queue": int}

    def __init__(self, backbone, feature_dim, options):
        super().__init__(backbone, feature_dim, options)
        # 2-layer MLP head to 128 dimensions (MoCo v2).
        self.projection_head = MoCoProjectionHead(feature_dim, 512, 128)
        self.key_backbone = momentum_copy(self.backbone)
        self.key_projection_head = momentum_copy(self.projection_head)
        # Temperature 0.2 (MoCo v2). The queue is sized for the schedule: 1024 keys (8 batches of
        # 128) are at most 8 steps old, so they come from nearly the encoder the queries see; 4096
        # keys would be 32 steps old, a third of the default schedule, and the paper's 65536 more
        # than the pool has scans.
        queue = options.get("queue", 1024)
        self.criterion = NTXentLoss(temperature=0.2, memory_bank_size=(queue, 128), gather_distributed=True)

    def momentum_pairs(self):
        return [(self.backbone, self.key_backbone), (self.projection_head, self.key_projection_head)]

    def training_loss(self, views, batch) -> torch.Tensor:
        query = self.projection_head(self.backbone(views[0]))
        with torch.no_grad():
            key = self.key_projection_head(self.key_backbone(views[1]))
        return self.criterion(query, key)

    def trivial_loss(self, batch_size: int) -> float:
        # Identical queries and keys: the positive among itself and the queue's K keys, all equally similar.
        return math.log(self.criterion.memory_bank.size[0] + 1)
