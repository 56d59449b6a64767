"""A tiny run through the whole flow, and the run record's contract."""

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import timm
import torch
from safetensors.torch import load_file
from sklearn.metrics import roc_auc_score

from octbench import BIOMARKERS
from octbench.cli import main
from octbench.record import METRICS_KEYS, PREDICTION_COLUMNS

TINY = str(Path(__file__).parent / "data" / "tiny.toml")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    cache = tmp_path_factory.mktemp("cache")
    argv = ["run", "--method", "clinical-supcon", "--clinical", "bcva=0.3,cst=0.7", "--benchmark", TINY,
            "--out", str(out), "--cache-dir", str(cache), "--no-progress"]
    assert main(argv) == 0
    (run_dir,) = (out / "runs").iterdir()
    return run_dir, argv


def test_run_record_schema(tiny_run):
    run_dir, _ = tiny_run
    assert sorted(p.name for p in run_dir.iterdir()) == ["backbone.pt", "backbone.safetensors", "config.json",
                                                        "metrics.json", "predictions.csv", "pretrain_log.csv"]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert set(METRICS_KEYS) <= set(metrics)
    assert metrics["method"] == "clinical-supcon" and metrics["benchmark"] == "tiny" and metrics["seed"] == 0
    assert set(metrics["auroc"]) == set(BIOMARKERS) == set(metrics["auroc_ci"])
    health = metrics["health"]  # did pretraining learn anything: recorded for every trained method
    assert health["feature_dim"] == 512 and health["effective_rank"] > 1 and isinstance(health["collapsed"], bool)
    assert health["trivial_loss"] == pytest.approx(math.log(2 * 16 - 1))
    assert [point["step"] for point in metrics["budget"]] == [1, 2]  # 1/4 and 1/2 of 2 steps round to 1
    assert metrics["budget"][-1]["mean_auroc"] == metrics["mean_auroc"]
    for lo, hi in metrics["auroc_ci"].values():
        assert 0 <= lo <= hi <= 1
    config = json.loads((run_dir / "config.json").read_text())
    assert config["clinical"] == [["BCVA", 0.3], ["CST", 0.7]]
    assert config["benchmark"]["pretrain"]["steps"] == 2
    splits = config["splits"]
    assert not (set(splits["train"]) & set(splits["test"])) and not (set(splits["val"]) & set(splits["test"]))
    assert config["leakage"]["patients_in_several_splits"] == []
    losses = pd.read_csv(run_dir / "pretrain_log.csv")["train_loss"].dropna()
    assert len(losses) == 2 and losses.notna().all()


def test_predictions_reproduce_the_reported_aurocs(tiny_run):
    run_dir, _ = tiny_run
    metrics = json.loads((run_dir / "metrics.json").read_text())
    predictions = pd.read_csv(run_dir / "predictions.csv")
    assert list(predictions.columns) == PREDICTION_COLUMNS
    assert len(predictions) == metrics["n_test_scans"] * len(BIOMARKERS)
    for biomarker, group in predictions.groupby("biomarker"):
        assert roc_auc_score(group["y_true"], group["y_score"]) == pytest.approx(metrics["auroc"][biomarker])


def test_backbone_weights_load_into_the_same_timm_model(tiny_run):
    run_dir, _ = tiny_run
    model = timm.create_model("resnet18", in_chans=1, num_classes=0)
    model.load_state_dict(torch.load(run_dir / "backbone.pt", weights_only=True))
    assert model(torch.zeros(2, 1, 32, 32)).shape == (2, 512)
    model.load_state_dict(load_file(run_dir / "backbone.safetensors"))  # the same weights, no pickle


def test_finished_run_is_reused_not_rerun(tiny_run, capsys):
    run_dir, argv = tiny_run
    before = (run_dir / "metrics.json").stat().st_mtime_ns
    assert main(argv) == 0
    assert "reused" in capsys.readouterr().out
    assert (run_dir / "metrics.json").stat().st_mtime_ns == before


@pytest.mark.parametrize("argv, message", [
    (["run", "--method", "simclrr"], "did you mean 'simclr'"),
    (["run", "--method", "clinical-supcon", "--clinical", "acuity"], "which the cohort lacks"),
    (["run", "--method", "simclr", "--clinical", "cst"], "does not use clinical labels"),
    (["run", "--method", "simclr", "--benchmark", "defualt"], "did you mean 'default'"),
])
def test_bad_input_exits_2_with_a_message_and_writes_nothing(tmp_path, capsys, argv, message):
    assert main(argv + ["--out", str(tmp_path / "results")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "results").exists()


def test_benchmark_with_unknown_key_is_refused(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[pretrain]\nstep = 3\n")
    assert main(["run", "--method", "simclr", "--benchmark", str(bad), "--out", str(tmp_path)]) == 2
    assert "unknown key 'step' (did you mean 'steps'?)" in capsys.readouterr().err


def test_an_error_after_the_cohort_loads_leaves_no_run_folder(tmp_path, capsys):
    out = tmp_path / "results"
    code = main(["run", "--method", "clinical-supcon", "--clinical", "acuity", "--benchmark", TINY, "--out", str(out),
                 "--cache-dir", str(tmp_path / "cache"), "--no-progress"])
    assert code == 2
    assert "'acuity'" in capsys.readouterr().err
    assert not (out / "runs").exists() or not any((out / "runs").iterdir())


def test_finetune_protocol_trains_the_backbone_and_records_its_log(tmp_path):
    out = tmp_path / "results"
    assert main(["run", "--method", "random-init", "--protocol", "finetune", "--benchmark", TINY, "--steps", "2",
                 "--out", str(out), "--cache-dir", str(tmp_path / "cache"), "--no-progress"]) == 0
    (run_dir,) = (out / "runs").iterdir()
    assert "_finetune-" in run_dir.name
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["protocol"] == "finetune" and len(metrics["probe"]["val_auroc"]) == len(BIOMARKERS)
    assert (run_dir / "finetune_log.csv").exists()
    predictions = pd.read_csv(run_dir / "predictions.csv")
    for biomarker, part in predictions.groupby("biomarker"):
        assert metrics["auroc"][biomarker] == pytest.approx(roc_auc_score(part["y_true"], part["y_score"]))
