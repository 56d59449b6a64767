import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from octbench.stats import bootstrap_aurocs, patient_bootstrap_weights, percentile_interval, weighted_auroc


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
