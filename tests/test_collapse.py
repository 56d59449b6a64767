"""Collapse and non-learning are detected from the embedding and the loss curve, and recorded."""

import math

import numpy as np
import pandas as pd
import pytest

from octbench.collapse import effective_rank, final_loss, halfway_loss, training_health


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


def test_final_and_halfway_losses_are_means_of_a_tenth_of_the_logged_steps():
    log = pd.DataFrame({"step": range(20), "train_loss": [5.0] * 8 + [4.0, 6.0] + [5.0] * 8 + [1.0, 3.0]})
    assert final_loss(log) == pytest.approx(2.0)
    assert halfway_loss(log) == pytest.approx(5.0)  # steps 8 and 9
    assert final_loss(log.head(3)) == pytest.approx(5.0)  # fewer than ten: the last one
    assert final_loss(None) is None and halfway_loss(pd.DataFrame({"step": []})) is None


def test_a_loss_falling_through_its_trivial_level_is_learning_and_a_flat_one_there_is_not():
    """NT-Xent at tau 0.07 starts above ln 255 and may still be falling through it at the last step
    (the shape of the SupCon control's curve); SwAV's loss flat 2% below ln K is not learning, nor
    is DINO's rising to its level."""
    trivial = math.log(255)
    features = np.random.default_rng(0).normal(size=(200, 16))
    falling_through = np.concatenate([np.linspace(7.4, 5.7, 12), np.linspace(5.7, 5.45, 12)])
    health = training_health(features, pd.DataFrame({"step": range(24), "train_loss": falling_through}), trivial)
    assert abs(health["final_loss"] - trivial) < 0.02 * trivial  # near the level, yet still moving
    assert not health["at_trivial_loss"] and not health["collapsed"]
    flat_below = np.concatenate([np.linspace(5.71, 5.50, 12), np.full(12, 5.44)])
    health = training_health(features, pd.DataFrame({"step": range(24), "train_loss": flat_below}), math.log(256))
    assert health["at_trivial_loss"] and health["collapsed"] and "not falling" in health["reason"]
    rising_to = np.concatenate([np.linspace(7.34, 7.45, 12), np.linspace(7.45, 7.61, 12)])  # DINO's curve
    health = training_health(features, pd.DataFrame({"step": range(24), "train_loss": rising_to}), 7.6246)
    assert health["at_trivial_loss"] and health["collapsed"]
