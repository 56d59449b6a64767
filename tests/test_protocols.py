"""The protocol table and a run's metrics: one signature for every protocol, test labels never
handed to one, thresholds chosen on validation, accuracy and AUPRC as scikit-learn computes them."""

import inspect

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import accuracy_score, average_precision_score, roc_auc_score
from torch import nn

from octbench import BIOMARKERS, benchmark
from octbench.benchmark import Benchmark, EvaluateSpec, PretrainSpec
from octbench.cohort import Cohort
from octbench.evaluate import accuracy_threshold, evaluate, metrics_on_test, metrics_on_validation
from octbench.method import Method, MethodOptions
from octbench.protocols import PROTOCOLS, ProbeResult
from octbench.task import BIOMARKER_TASK

K = len(BIOMARKERS)
SIZE = 16


def tiny_cohort(seed: int = 0, masked: str | None = None) -> Cohort:
    """60 patients, 4 B-scans each; biomarker j brightens rows 2j..2j+1 of a positive B-scan.
    `masked`: that biomarker counts only on every other test B-scan (a balanced test set)."""
    rng = np.random.default_rng(seed)
    patients = np.repeat(np.arange(60), 4)
    n = len(patients)
    y = rng.integers(0, 2, size=(n, K))
    images = rng.normal(100, 25, size=(n, SIZE, SIZE))
    for j in range(K):
        images[:, 2 * j:2 * j + 2, :] += 60 * y[:, j, None, None]
    split = np.where(patients < 30, "train", np.where(patients < 42, "val", "test"))
    table = pd.DataFrame({"sample_id": np.arange(n), "patient": patients, "eye": 0, "visit": 0, "slice": 0,
                          "BCVA": 70.0, "CST": 300.0, "split": split, "in_pool": split == "train",
                          "labelled": True, "image": np.arange(n), **{b: y[:, j] for j, b in enumerate(BIOMARKERS)}})
    if masked:
        table[f"test_{masked}"] = (split == "test") & (np.arange(n) % 2 == 0)
    return Cohort(table, np.clip(images, 0, 255).astype(np.uint8))


def pixel_method() -> Method:
    """Features are the pixels themselves: enough for a linear probe of the bands."""
    return Method(nn.Flatten(), SIZE * SIZE, MethodOptions())


def tiny_benchmark(protocol: str = "linear") -> Benchmark:
    return Benchmark(name="tiny", pretrain=PretrainSpec(steps=4, batch_size=16),
                     evaluate=EvaluateSpec(protocol=protocol, probe_c=(0.1, 1.0), bootstrap=100))


def splits_of(cohort: Cohort):
    rows = {split: cohort.part(split) for split in ("train", "val", "test")}
    return ({split: cohort.images_of(r) for split, r in rows.items()},
            {split: cohort.labels_of(rows[split]) for split in ("train", "val")}, rows)


def test_the_benchmark_protocols_are_the_table_and_share_one_signature():
    assert benchmark.PROTOCOLS == tuple(PROTOCOLS)
    signatures = {name: list(inspect.signature(protocol).parameters) for name, protocol in PROTOCOLS.items()}
    assert all(params == ["method", "images", "labels", "task", "benchmark", "seed", "work_dir"]
               for params in signatures.values()), signatures


@pytest.mark.parametrize("name", sorted(PROTOCOLS))
def test_every_protocol_scores_val_and_test_from_train_and_val_labels(name, tmp_path, monkeypatch):
    import octbench.registry

    def no_registry(*args, **kwargs):
        raise AssertionError("a protocol looked a method up by name")

    monkeypatch.setattr(octbench.registry, "get_method", no_registry)
    cohort = tiny_cohort()
    images, labels, rows = splits_of(cohort)
    method = pixel_method()
    before = {k: v.clone() for k, v in method.state_dict().items()}
    result = PROTOCOLS[name](method, images, labels, BIOMARKER_TASK, tiny_benchmark(name), 0, tmp_path)
    assert isinstance(result, ProbeResult)
    assert result.test_scores.shape == (len(rows["test"]), K) and result.val_scores.shape == (len(rows["val"]), K)
    assert np.isfinite(result.test_scores).all() and np.isfinite(result.val_scores).all()
    assert result.chosen and result.timing
    assert all(torch.equal(before[k], v) for k, v in method.state_dict().items())  # the method is left as it was
    if name != "finetune":  # four fine-tuning steps learn little; the frozen probes separate the bands
        y_test = cohort.labels_of(rows["test"])
        assert min(roc_auc_score(y_test[:, j], result.test_scores[:, j]) for j in range(K)) > 0.9
    else:
        assert (tmp_path / "finetune_log.csv").exists()


def test_the_linear_protocol_takes_its_grid_from_the_benchmark(tmp_path):
    images, labels, _ = splits_of(tiny_cohort())
    for grid in [(0.5,), (0.02,)]:
        bench = Benchmark(name="tiny", evaluate=EvaluateSpec(probe_c=grid))
        chosen = PROTOCOLS["linear"](pixel_method(), images, labels, BIOMARKER_TASK, bench, 0, tmp_path).chosen
        assert {c["C"] for c in chosen.values()} == set(grid)


def test_threshold_maximises_accuracy_and_takes_the_middle_of_ties():
    assert accuracy_threshold(np.array([0, 0, 1, 1]), np.array([0.0, 1.0, 2.0, 3.0])) == 1.5
    # Accuracy 6/8 at 1.5, 3.5 and 5.5: the middle one.
    assert accuracy_threshold(np.array([0, 0, 1, 0, 1, 0, 1, 1]), np.arange(8.0)) == 3.5
    # All positive beats any cut when the scores say nothing: below the lowest score.
    assert accuracy_threshold(np.array([1, 1, 0, 1]), np.array([0.0, 1.0, 2.0, 3.0])) < 0


def fixed_protocol(result: ProbeResult, seen: list):
    def protocol(method, images, labels, task, benchmark, seed, work_dir):
        seen.append(sorted(labels))
        return result
    return protocol


def scores_for(y: np.ndarray, shift: float, seed: int) -> np.ndarray:
    """Positives score higher by 2 on average; `shift` moves every score."""
    return 2.0 * y + np.random.default_rng(seed).normal(size=y.shape) + shift


def test_run_metrics_choose_thresholds_on_validation_and_score_counted_test_rows(tmp_path, monkeypatch):
    cohort = tiny_cohort(masked="IRF")
    _, labels, rows = splits_of(cohort)
    y_val, y_test = labels["val"], cohort.labels_of(rows["test"])
    # Test scores shifted by 3: the test split's own best threshold is far from the validation's.
    result = ProbeResult(scores_for(y_test, 3.0, 1), scores_for(y_val, 0.0, 2), {"C": "fixed"})
    seen = []
    monkeypatch.setitem(PROTOCOLS, "linear", fixed_protocol(result, seen))
    metrics, predictions, timing = evaluate(pixel_method(), cohort, tiny_benchmark(), 0, rows["train"], tmp_path)
    assert seen == [["train", "val"]]  # the test labels are never handed to a protocol
    for key in ("auroc", "mean_auroc", "auroc_ci", "mean_auroc_ci", "probe", "n_test_scans", "val_auroc",
                "val_mean_auroc", "threshold", "accuracy", "auprc"):
        assert key in metrics
    assert metrics["probe"] == {"C": "fixed"} and "bootstrap_s" in timing
    counted = cohort.counted_test_rows(rows["test"])
    assert metrics["n_test_scans_per_biomarker"]["IRF"] == counted[:, BIOMARKERS.index("IRF")].sum() < len(y_test)
    for j, b in enumerate(BIOMARKERS):
        threshold = metrics["threshold"][b]
        assert threshold == accuracy_threshold(y_val[:, j], result.val_scores[:, j])
        assert threshold != accuracy_threshold(y_test[counted[:, j], j], result.test_scores[counted[:, j], j])
        assert metrics["val_auroc"][b] == pytest.approx(roc_auc_score(y_val[:, j], result.val_scores[:, j]))
        part = predictions[predictions["biomarker"] == b]
        assert len(part) == counted[:, j].sum()
        assert metrics["accuracy"][b] == pytest.approx(accuracy_score(part["y_true"], part["y_score"] >= threshold))
        assert metrics["auprc"][b] == pytest.approx(average_precision_score(part["y_true"], part["y_score"]))
        assert metrics["auroc"][b] == pytest.approx(roc_auc_score(part["y_true"], part["y_score"]))
    assert metrics["val_mean_auroc"] == pytest.approx(np.mean(list(metrics["val_auroc"].values())))


def test_separable_validation_scores_give_accuracy_one_at_their_threshold():
    rng = np.random.default_rng(0)
    y_val, y_test = rng.integers(0, 2, size=(50, K)), rng.integers(0, 2, size=(80, K))
    y_val[:2] = [[0] * K, [1] * K]  # both classes in every column

    def separable(y):  # negatives in [0, 1), positives in [3, 4)
        return 3.0 * y + rng.uniform(size=y.shape)

    val_scores = separable(y_val)
    validation = metrics_on_validation(y_val, val_scores)
    assert validation["val_auroc"] == {b: 1.0 for b in BIOMARKERS} and validation["val_mean_auroc"] == 1.0
    for j, b in enumerate(BIOMARKERS):
        threshold = validation["threshold"][b]
        assert val_scores[y_val[:, j] == 0, j].max() < threshold < val_scores[y_val[:, j] == 1, j].min()
    test = metrics_on_test(y_test, separable(y_test), np.ones_like(y_test, dtype=bool), validation["threshold"],
                           np.arange(80) // 4, 100, 0)
    assert test["accuracy"] == {b: 1.0 for b in BIOMARKERS} and test["auprc"] == {b: 1.0 for b in BIOMARKERS}


def test_dino_trains_its_student_and_probes_its_teacher():
    from octbench.backbone import create_backbone
    from octbench.registry import get_method

    torch.manual_seed(0)
    backbone, dim = create_backbone("resnet18")
    dino = get_method("dino")(backbone, dim, MethodOptions())
    assert dino.backbone is backbone  # what training and --compile work on: the student
    assert dino.probed_backbone() is dino.teacher_backbone is not dino.backbone
    views = [torch.randn(4, 1, 32, 32), torch.randn(4, 1, 32, 32)]
    dino.train()
    dino.training_loss(views, {}).backward()
    assert all(p.grad is not None for p in dino.backbone.parameters())
    assert not any(p.requires_grad for p in dino.teacher_backbone.parameters())
    with torch.no_grad():
        for p in dino.backbone.parameters():
            p.add_(0.1)
    dino.eval()
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(dino.encode(x), dino.teacher_backbone(x))
        assert not torch.allclose(dino.encode(x), dino.backbone(x))
