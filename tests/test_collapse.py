"""Collapse and non-learning are detected from the embedding and the loss curve, and recorded."""

import math

import numpy as np
import pandas as pd
import pytest

from octbench.collapse import effective_rank, training_health


def test_effective_rank_counts_the_directions_the_features_span():
    rng = np.random.default_rng(0)
    assert effective_rank(np.ones((100, 32))) == 0.0  # every image on one point
    line = rng.normal(size=(100, 1)) @ rng.normal(size=(1, 32))
    assert effective_rank(line) == pytest.approx(1.0, abs=1e-6)
    assert effective_rank(rng.normal(size=(500, 32))) > 25


def test_a_loss_at_its_trivial_level_marks_the_run_collapsed():
    trivial = math.log(2 * 128 - 1)
    features = np.random.default_rng(0).normal(size=(200, 16))
    flat = pd.DataFrame({"step": range(20), "train_loss": [trivial + 0.01] * 20})
    health = training_health(features, flat, trivial)
    assert health["at_trivial_loss"] and health["collapsed"] and "trivial level" in health["reason"]
    falling = pd.DataFrame({"step": range(20), "train_loss": np.linspace(trivial, trivial / 2, 20)})
    assert not training_health(features, falling, trivial)["collapsed"]
    collapsed = training_health(np.ones((200, 16)), falling, trivial)
    assert collapsed["collapsed"] and "effective rank" in collapsed["reason"]
