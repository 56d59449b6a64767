"""Every probe protocol learns a separable signal, chooses on validation, never reads test labels."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from octbench import BIOMARKERS
from octbench.evaluate import PROBES


def synthetic(n: int, seed: int):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 16))
    y = (x[:, :len(BIOMARKERS)] + 0.5 * rng.normal(size=(n, len(BIOMARKERS))) > 0).astype(int)
    return x, y


@pytest.mark.parametrize("protocol", sorted(PROBES))
def test_probe_learns_and_ignores_test_labels(protocol):
    (xt, yt), (xv, yv), (xs, ys) = synthetic(600, 0), synthetic(200, 1), synthetic(300, 2)
    features = {"train": xt, "val": xv, "test": xs}
    scores, chosen = PROBES[protocol](features, {"train": yt, "val": yv, "test": ys}, seed=0)
    assert scores.shape == ys.shape
    for j in range(len(BIOMARKERS)):
        assert roc_auc_score(ys[:, j], scores[:, j]) > 0.8
    shuffled = np.random.default_rng(3).permutation(ys)
    again, chosen_again = PROBES[protocol](features, {"train": yt, "val": yv, "test": shuffled}, seed=0)
    np.testing.assert_allclose(scores, again)
    assert chosen == chosen_again
