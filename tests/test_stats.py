import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from octbench.stats import (
    bootstrap_aurocs,
    hierarchical_samples,
    holm_with_bounds,
    patient_bootstrap_weights,
    patient_resample_counts,
    percentile_interval,
    resampled_auroc,
    weighted_auroc,
)


def test_weighted_auroc_equals_sklearn_with_ties_and_weights():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    score = np.round(rng.normal(y * 0.8, 1.0), 1)  # rounding makes many ties
    weights = rng.integers(0, 4, size=(5, 200)).astype(float)
    ours = weighted_auroc(y, score, weights)
    for row, w in zip(ours, weights):
        assert row == pytest.approx(roc_auc_score(y, score, sample_weight=w), abs=1e-12)


def test_bootstrap_resamples_patients_not_scans():
    patients = np.repeat(np.arange(10), 7)
    weights = patient_bootstrap_weights(patients, 100, seed=1)
    # All B-scans of one patient share a weight in every resample, and each resample draws 10 patients.
    per_patient = weights.reshape(100, 10, 7)
    assert (per_patient == per_patient[:, :, :1]).all()
    assert np.allclose(per_patient[:, :, 0].sum(axis=1), 10)


def test_patient_bootstrap_is_wider_than_scan_bootstrap_under_clustering():
    rng = np.random.default_rng(2)
    patients = np.repeat(np.arange(30), 20)
    patient_effect = rng.normal(0, 1.5, 30)[patients]  # scans of a patient are correlated
    y = rng.integers(0, 2, 30)[patients]
    score = y * 0.5 + patient_effect + rng.normal(0, 0.3, len(y))
    by_patient = bootstrap_aurocs(y[:, None], score[:, None], patients, 400, seed=0)[:, 0]
    by_scan = bootstrap_aurocs(y[:, None], score[:, None], np.arange(len(y)), 400, seed=0)[:, 0]
    width = lambda s: np.subtract(*percentile_interval(s)[::-1])  # noqa: E731
    assert width(by_patient) > 2 * width(by_scan)


def test_patient_pair_auroc_equals_the_per_scan_weighting_and_sklearn():
    rng = np.random.default_rng(3)
    patients = rng.integers(0, 25, 400)
    y = rng.integers(0, 2, 400).astype(float)
    score = np.round(rng.normal(y * 0.7, 1.0), 1)  # many ties
    y[::9] = np.nan  # scans that do not count for this biomarker
    codes, counts = patient_resample_counts(patients, 200, seed=4)
    point, samples = resampled_auroc(y, score, codes, counts)
    scored = ~np.isnan(y)
    assert point == pytest.approx(roc_auc_score(y[scored], score[scored]), abs=1e-12)
    by_scan = weighted_auroc(y[scored], score[scored], counts[:, codes][:, scored])
    np.testing.assert_allclose(samples, by_scan, rtol=0, atol=1e-12)
    assert np.allclose(patient_bootstrap_weights(patients, 200, seed=4), counts[:, codes])


def test_hierarchical_samples_resample_seeds_only_when_there_are_several():
    rng = np.random.default_rng(0)
    one = rng.normal(size=(1, 500))
    assert np.array_equal(hierarchical_samples(one, np.random.default_rng(1)), one[0])
    same = np.repeat(one, 3, axis=0)  # seeds that agree: the seed draws change nothing
    np.testing.assert_allclose(hierarchical_samples(same, np.random.default_rng(1)), one[0])
    apart = np.stack([one[0] * 0.01 + 0.6, one[0] * 0.01 + 0.9])  # seeds that disagree
    drawn = hierarchical_samples(apart, np.random.default_rng(1))
    assert set(np.round(drawn - one[0] * 0.01, 6)) == {0.6, 0.75, 0.9}  # both seeds, or either twice


def test_holm_marks_adjusted_p_values_that_rest_on_the_resampling_floor_as_bounds():
    floor = 0.001
    adjusted, bounds = holm_with_bounds([floor, floor, 0.3], floor)
    np.testing.assert_allclose(adjusted, [0.003, 0.003, 0.3])
    assert bounds == [True, True, False]
    adjusted, bounds = holm_with_bounds([floor, 0.02, 0.04], floor)
    np.testing.assert_allclose(adjusted, [0.003, 0.04, 0.04])
    assert bounds == [True, False, False]
