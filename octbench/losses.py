"""Losses that lightly lacks. Pure functions of tensors, testable on their own."""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from lightly.utils.dist import gather


def supcon_loss(features: torch.Tensor, labels: torch.Tensor, temperature: float = 0.07,
                gather_distributed: bool = False) -> torch.Tensor:
    """Supervised contrastive loss, the L_out form of Khosla et al. (NeurIPS 2020, eq. 2).

    features: (batch, views, dim) embeddings, several views per image (L2-normalised here).
    labels:   (batch,) class ids; two samples are positives when their ids are equal, so the
              other views of the same image are always positives.
    For anchor i with positives P(i) and every other sample A(i):
        l_i = -1/|P(i)| * sum_{p in P(i)} log( exp(z_i.z_p/t) / sum_{a in A(i)} exp(z_i.z_a/t) )
    The loss is the mean of l_i over anchors that have at least one positive; an anchor without
    one is left out (it would divide by zero), and a batch without any gives 0, never NaN.
    With gather_distributed, anchors are this process's samples and the contrast set is every
    process's samples, labels gathered alongside.
    """
    batch, views, _ = features.shape
    z = F.normalize(features, dim=-1).reshape(batch * views, -1)  # view-major within an image
    anchor_labels = labels.repeat_interleave(views)
    contrast, contrast_labels, offset = z, anchor_labels, 0
    if gather_distributed and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        contrast = torch.cat(gather(z), dim=0)
        contrast_labels = torch.cat(gather(anchor_labels), dim=0)
        offset = dist.get_rank() * batch * views  # equal batch sizes per process, as DDP gives

    logits = z @ contrast.T / temperature
    self_mask = torch.zeros_like(logits, dtype=torch.bool)
    self_mask[torch.arange(len(z)), torch.arange(len(z)) + offset] = True
    positive = (anchor_labels[:, None] == contrast_labels[None, :]) & ~self_mask
    logits = logits.masked_fill(self_mask, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    n_positive = positive.sum(dim=1)
    has_positive = n_positive > 0
    if not has_positive.any():
        return features.sum() * 0.0
    mean_log_prob_pos = log_prob.masked_fill(~positive, 0.0).sum(dim=1)[has_positive] / n_positive[has_positive]
    return -mean_log_prob_pos.mean()


def weighted_supcon_loss(features: torch.Tensor, labels: torch.Tensor, weights, temperature: float = 0.07,
                         gather_distributed: bool = False) -> torch.Tensor:
    """Sum over clinical labels of weight_j * SupCon(features, labels[:, j]): the seed paper's
    linear combination of one supervised contrastive term per clinical label."""
    return sum(w * supcon_loss(features, labels[:, j], temperature, gather_distributed)
               for j, w in enumerate(weights))


def label_loss(multiclass: bool):
    """The loss of a head's logits on (n, k) 0/1 expert labels: binary cross-entropy per label, or
    softmax cross-entropy over the classes of a multi-class task (its labels one-hot)."""
    if multiclass:
        return lambda logits, targets: F.cross_entropy(logits, targets.argmax(dim=1))
    return F.binary_cross_entropy_with_logits


def label_scores(multiclass: bool, logits: torch.Tensor) -> torch.Tensor:
    """What a head's logits score: themselves per binary label; class probabilities (softmax) for a
    multi-class task, on which its one-vs-rest AUROCs are computed."""
    return logits.softmax(dim=1) if multiclass else logits
