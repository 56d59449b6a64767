"""Every frozen-feature probe learns a separable signal, chooses on validation, never reads test labels."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from octbench import BIOMARKERS
from octbench.evaluate import knn_probe, linear_probe, sgd_linear_probe

PROBES = {"linear": linear_probe, "linear-sgd": sgd_linear_probe, "knn": knn_probe}


def synthetic(n: int, seed: int):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 16))
    y = (x[:, :len(BIOMARKERS)] + 0.5 * rng.normal(size=(n, len(BIOMARKERS))) > 0).astype(int)
    return x, y


@pytest.mark.parametrize("protocol", sorted(PROBES))
def test_probe_learns_and_ignores_test_labels(protocol):
    (xt, yt), (xv, yv), (xs, ys) = synthetic(600, 0), synthetic(200, 1), synthetic(300, 2)
    features = {"train": xt, "val": xv, "test": xs}
    result = PROBES[protocol](features, {"train": yt, "val": yv, "test": ys}, seed=0)
    assert result.test_scores.shape == ys.shape and result.val_scores.shape == yv.shape
    for j in range(len(BIOMARKERS)):
        assert roc_auc_score(ys[:, j], result.test_scores[:, j]) > 0.8
    shuffled = np.random.default_rng(3).permutation(ys)
    again = PROBES[protocol](features, {"train": yt, "val": yv, "test": shuffled}, seed=0)
    np.testing.assert_allclose(result.test_scores, again.test_scores)
    assert result.chosen == again.chosen
    without_test = PROBES[protocol](features, {"train": yt, "val": yv}, seed=0)  # test labels are never needed
    np.testing.assert_allclose(result.test_scores, without_test.test_scores)


@pytest.mark.parametrize("protocol", sorted(PROBES))
def test_validation_scores_are_those_of_the_chosen_probe(protocol):
    (xt, yt), (xv, yv), (xs, _) = synthetic(600, 0), synthetic(200, 1), synthetic(300, 2)
    result = PROBES[protocol]({"train": xt, "val": xv, "test": xs}, {"train": yt, "val": yv}, seed=0)
    val_auroc = [roc_auc_score(yv[:, j], result.val_scores[:, j]) for j in range(len(BIOMARKERS))]
    if protocol == "linear-sgd":  # one head for every biomarker, chosen by the mean
        assert np.mean(val_auroc) == pytest.approx(result.chosen["val_mean_auroc"])
    else:
        assert val_auroc == pytest.approx([result.chosen[b]["val_auroc"] for b in BIOMARKERS])
