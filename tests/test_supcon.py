"""SupCon against a direct, loop-by-loop reading of Khosla et al.'s L_out formula."""

import math

import pytest
import torch
import torch.nn.functional as F

from octbench.losses import supcon_loss, weighted_supcon_loss


def supcon_by_the_formula(features, labels, temperature):
    """l_i = -1/|P(i)| sum_p log(exp(z_i.z_p/t) / sum_{a != i} exp(z_i.z_a/t)), mean over anchors with P(i)."""
    batch, views, _ = features.shape
    z = [F.normalize(features[b, v], dim=0) for b in range(batch) for v in range(views)]
    y = [int(labels[b]) for b in range(batch) for _ in range(views)]
    losses = []
    for i in range(len(z)):
        others = [a for a in range(len(z)) if a != i]
        positives = [p for p in others if y[p] == y[i]]
        if not positives:
            continue
        denominator = sum(math.exp(float(z[i] @ z[a]) / temperature) for a in others)
        total = sum(math.log(math.exp(float(z[i] @ z[p]) / temperature) / denominator) for p in positives)
        losses.append(-total / len(positives))
    return sum(losses) / len(losses)


@pytest.mark.parametrize("views", [1, 2, 3])
@pytest.mark.parametrize("temperature", [0.07, 0.5])
def test_supcon_matches_the_formula(views, temperature):
    torch.manual_seed(views)
    features = torch.randn(8, views, 5, dtype=torch.float64)
    labels = torch.tensor([0, 0, 1, 2, 2, 2, 3, 4])  # with one view, labels 1, 3 and 4 have no positive
    expected = supcon_by_the_formula(features, labels, temperature)
    assert supcon_loss(features, labels, temperature).item() == pytest.approx(expected, rel=1e-9)


def test_anchor_without_positive_is_left_out_not_nan():
    features = torch.randn(4, 1, 3, requires_grad=True)
    loss = supcon_loss(features, torch.tensor([0, 1, 2, 3]))  # one view, all labels distinct
    assert loss.item() == 0.0
    loss.backward()
    assert torch.isfinite(features.grad).all()
    with_one_pair = supcon_loss(features, torch.tensor([0, 0, 2, 3]))
    assert torch.isfinite(with_one_pair) and with_one_pair.item() > 0


def test_loss_falls_when_same_label_embeddings_align():
    labels = torch.tensor([0, 0, 1, 1])
    aligned = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]).unsqueeze(1).repeat(1, 2, 1)
    mixed = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]]).unsqueeze(1).repeat(1, 2, 1)
    assert supcon_loss(aligned, labels) < supcon_loss(mixed, labels)


def test_weighted_sum_of_terms():
    torch.manual_seed(0)
    features = torch.randn(6, 2, 4)
    labels = torch.tensor([[0, 1], [0, 2], [1, 1], [1, 2], [2, 1], [2, 2]])
    combined = weighted_supcon_loss(features, labels, [0.3, 0.7])
    expected = 0.3 * supcon_loss(features, labels[:, 0]) + 0.7 * supcon_loss(features, labels[:, 1])
    assert combined.item() == pytest.approx(expected.item(), rel=1e-6)
