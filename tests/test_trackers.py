"""Experiment trackers through the command: a real TensorBoard event file and a real local MLflow
store (each read back with its own library) get the loss curve and the final metrics; W&B runs
offline; a missing extra is named before anything trains. The CSV log and the record stay as they are."""

import importlib.util
import json
from pathlib import Path

import pandas as pd
import pytest

import octbench.trackers
from octbench.cli import main
from octbench.trackers import final_metrics

TINY = str(Path(__file__).parent / "data" / "tiny.toml")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(autouse=True)
def local_only(monkeypatch, tmp_path):
    """No tracker setting of the machine's environment leaks in, and W&B keeps its files here."""
    for name in ("MLFLOW_TRACKING_URI", "WANDB_MODE", "WANDB_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    for name in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(name, str(tmp_path / "wandb-home"))


def run(out: Path, cache: Path, *extra, method="simclr") -> Path:
    argv = ["run", "--method", method, "--benchmark", TINY, "--out", str(out), "--cache-dir", str(cache),
            "--no-progress", *extra]
    assert main(argv) == 0
    (run_dir,) = (out / "runs").iterdir()
    return run_dir


def record_of(run_dir: Path) -> tuple[pd.DataFrame, dict, dict]:
    log = pd.read_csv(run_dir / "pretrain_log.csv")
    assert list(log.columns) == ["epoch", "step", "train_loss"]  # the CSV log keeps the loss alone
    return log, json.loads((run_dir / "metrics.json").read_text()), json.loads((run_dir / "config.json").read_text())


def test_tensorboard_event_file_has_the_loss_curve_lr_and_final_auroc(tmp_path, cache):
    pytest.importorskip("tensorboard", reason="octbench[tensorboard] is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "results"
    run_dir = run(out, cache, "--logger", "tensorboard", "--set", "pretrain.steps=3")
    log, metrics, config = record_of(run_dir)
    (events,) = (out / "tensorboard" / run_dir.name).iterdir()
    tracker = EventAccumulator(str(events))
    tracker.Reload()
    loss = tracker.Scalars("train_loss")
    assert [e.step for e in loss] == list(log["step"]) == [0, 1, 2]
    assert [e.value for e in loss] == pytest.approx(list(log["train_loss"]), rel=1e-6)
    scalars = tracker.Tags()["scalars"]
    assert any(tag.startswith("lr-AdamW") for tag in scalars)  # Lightning's LearningRateMonitor
    assert tracker.Scalars("mean_auroc")[-1].value == pytest.approx(metrics["mean_auroc"], rel=1e-6)
    assert tracker.Scalars("auroc/IRF")[-1].value == pytest.approx(metrics["auroc"]["IRF"], rel=1e-6)
    assert tracker.Scalars("auroc_ci/IRF/low")[-1].value == pytest.approx(metrics["auroc_ci"]["IRF"][0], rel=1e-6)
    assert config["benchmark"]["log"]["logger"] == "tensorboard"
    assert config["benchmark"]["overrides"] == ['log.logger="tensorboard"', "pretrain.steps=3"]
    assert config["octbench_version"] == config["versions"]["octbench"]


def test_local_mlflow_store_has_the_run_its_parameters_metrics_and_record(tmp_path, cache):
    pytest.importorskip("mlflow", reason="octbench[mlflow] is not installed")
    from mlflow.tracking import MlflowClient

    out = tmp_path / "results"
    run_dir = run(out, cache, "--logger", "mlflow", "--set", "pretrain.steps=3")
    log, metrics, _ = record_of(run_dir)
    client = MlflowClient(f"sqlite:///{out / 'mlruns' / 'mlflow.db'}")  # the default: a local store under --out
    (tracked,) = client.search_runs([client.get_experiment_by_name("octbench").experiment_id])
    assert tracked.info.run_name == run_dir.name and tracked.info.status == "FINISHED"
    history = client.get_metric_history(tracked.info.run_id, "train_loss")
    assert [m.step for m in history] == [0, 1, 2]
    assert [m.value for m in history] == pytest.approx(list(log["train_loss"]))
    assert any(name.startswith("lr-AdamW") for name in tracked.data.metrics)
    assert tracked.data.metrics["mean_auroc"] == pytest.approx(metrics["mean_auroc"])
    assert tracked.data.metrics["mean_auroc_ci/high"] == pytest.approx(metrics["mean_auroc_ci"][1])
    assert tracked.data.params["benchmark/pretrain/steps"] == "3" and tracked.data.params["seed"] == "0"
    files = {Path(a.path).name for a in client.list_artifacts(tracked.info.run_id, "record")}
    assert files == {p.name for p in run_dir.iterdir()}
    assert (out / "mlruns" / "artifacts").is_dir() and not Path("mlruns").exists()  # nothing in the working folder


def test_compare_logs_each_cell_to_the_store_named(tmp_path, cache):
    pytest.importorskip("mlflow", reason="octbench[mlflow] is not installed")
    from mlflow.tracking import MlflowClient

    out, store = tmp_path / "results", tmp_path / "elsewhere" / "store.db"
    argv = ["compare", "--benchmark", TINY, "--methods", "random-init", "--seeds", "1", "--out", str(out),
            "--cache-dir", str(cache), "--no-embedding", "--logger", "mlflow", "--tracking-uri", f"sqlite:///{store}",
            "--set", "log.experiment=floor"]
    assert main(argv) == 0
    client = MlflowClient(f"sqlite:///{store}")
    (tracked,) = client.search_runs([client.get_experiment_by_name("floor").experiment_id])
    (run_dir,) = (out / "runs").iterdir()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert tracked.info.run_name == run_dir.name
    assert tracked.data.metrics["mean_auroc"] == pytest.approx(metrics["mean_auroc"])
    assert "train_loss" not in tracked.data.metrics  # random-init never pretrains
    assert (store.parent / "artifacts").is_dir() and not (out / "mlruns").exists()


def test_wandb_runs_offline_by_default(tmp_path, cache):
    pytest.importorskip("wandb", reason="octbench[wandb] is not installed")
    out = tmp_path / "results"
    run_dir = run(out, cache, "--logger", "wandb", "--set", "pretrain.steps=2")
    _, metrics, _ = record_of(run_dir)
    (offline,) = (out / "wandb" / "wandb").glob("offline-run-*")
    (data,) = offline.glob("run-*.wandb")
    written = data.read_bytes()  # W&B's own record of the run, to be uploaded by `wandb sync`
    assert b"train_loss" in written and b"mean_auroc" in written
    assert json.dumps(metrics["mean_auroc"]).encode() in written


def test_a_missing_tracker_extra_is_named_before_anything_runs(tmp_path, monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(octbench.trackers.importlib.util, "find_spec",
                        lambda name, *args: None if name == "mlflow" else real(name, *args))
    out = tmp_path / "results"
    argv = ["run", "--method", "simclr", "--benchmark", TINY, "--out", str(out), "--logger", "mlflow"]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert error == ("octbench: error: logger mlflow needs the mlflow package, which is not installed: "
                     "pip install 'octbench[mlflow]'\n")
    assert not out.exists()


def test_metrics_are_flattened_for_trackers():
    metrics = {"seed": 0, "label_fraction": 1.0, "auroc": {"IRF": 0.7}, "mean_auroc": 0.6,
               "auroc_ci": {"IRF": [0.6, 0.8]}, "mean_auroc_ci": [0.5, 0.7], "health": {"collapsed": False},
               "budget": [{"step": 1, "mean_auroc": 0.55}, {"step": 2, "mean_auroc": 0.6}], "method": "simclr",
               "timing": {"total_s": 3.0}, "trivial_loss": None}
    flat, curves = final_metrics(metrics)
    assert flat == {"auroc/IRF": 0.7, "mean_auroc": 0.6, "auroc_ci/IRF/low": 0.6, "auroc_ci/IRF/high": 0.8,
                    "mean_auroc_ci/low": 0.5, "mean_auroc_ci/high": 0.7, "timing/total_s": 3.0}
    assert curves == [(1, {"budget/mean_auroc": 0.55}), (2, {"budget/mean_auroc": 0.6})]
