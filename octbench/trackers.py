"""Experiment trackers next to the run record: TensorBoard, MLflow or Weights & Biases.

They go through Lightning's own loggers, added to the pretraining trainer beside the CSV log: the
loss and the learning rate per logged step. When the record is complete, `log_run` gives the same
tracker run the configuration (as hyperparameters), the metrics (AUROC per label, mean, intervals,
budget curve) and the record's files as artifacts (MLflow, W&B; TensorBoard keeps the
configuration as text). The run record stays the source of truth: a tracker is a view of it.

Nothing leaves the machine unless asked: TensorBoard writes <out>/tensorboard/<run>/, MLflow a
local store (sqlite:///<out>/mlruns/mlflow.db, artifacts beside it; --tracking-uri or
MLFLOW_TRACKING_URI for another), W&B runs offline into <out>/wandb/ (WANDB_MODE=online to upload).
Each tracker is an optional extra: pip install 'octbench[mlflow]'.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import sys
from pathlib import Path

from octbench.benchmark import LogSpec
from octbench.errors import OctbenchError

NEEDS = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb"}  # logger -> package (and extra)
FOLDERS = {"tensorboard": "tensorboard", "mlflow": "mlruns", "wandb": "wandb"}  # under the results folder
PARTIAL = ".partial-"  # a run's work folder is <out>/runs/.partial-<run> (octbench.record.partial_dir)
NOT_METRICS = ("seed", "label_fraction", "options", "schedule", "cohort")  # in metrics.json, but settings
NOT_PARAMETERS = ("splits", "leakage")  # in config.json, but patient lists: kept in the artifacts

# Loggers of the runs this process is pretraining, by run name: log_run finishes what pretraining began.
OPEN: dict[str, object] = {}


def check_tracker(log: LogSpec) -> None:
    """The tracker's package is installed, or a one-line error naming the extra to install."""
    if log.logger == "none":
        return
    package = NEEDS[log.logger]
    if importlib.util.find_spec(package) is None:
        raise OctbenchError(f"logger {log.logger} needs the {package} package, which is not installed: "
                            f"pip install 'octbench[{log.logger}]'")


def pretraining_loggers(log: LogSpec, work_dir: Path) -> list:
    """The tracker's Lightning logger for the run pretraining in `work_dir` (none without one)."""
    if log.logger == "none":
        return []
    name = Path(work_dir).name.removeprefix(PARTIAL)
    logger = open_logger(log, name, Path(work_dir).parent.parent)
    OPEN[name] = logger
    return [logger]


def tracking_uri(log: LogSpec, out: Path) -> str:
    default = "sqlite:///" + str((Path(out) / FOLDERS["mlflow"] / "mlflow.db").resolve())
    return log.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or default


def artifact_location(uri: str) -> str | None:
    """Artifacts of a sqlite store go beside its database (MLflow's own default is the working folder)."""
    if not uri.startswith("sqlite:///"):
        return None
    return (Path(uri.removeprefix("sqlite:///")).parent / "artifacts").resolve().as_uri()


def open_logger(log: LogSpec, name: str, out: Path):
    """A Lightning logger for run `name`, its store or files created now, so a store that cannot be
    used fails before anything trains."""
    check_tracker(log)
    folder = Path(out) / FOLDERS[log.logger]
    try:
        if log.logger == "tensorboard":
            from pytorch_lightning.loggers import TensorBoardLogger

            logger = TensorBoardLogger(save_dir=str(folder), name=name, default_hp_metric=False)
        elif log.logger == "mlflow":
            from pytorch_lightning.loggers import MLFlowLogger

            uri = tracking_uri(log, out)
            if uri.startswith("sqlite:///"):
                Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
            logger = MLFlowLogger(experiment_name=log.experiment, run_name=name, tracking_uri=uri,
                                  tags={"octbench.run": name}, artifact_location=artifact_location(uri))
        else:
            from pytorch_lightning.loggers import WandbLogger

            folder.mkdir(parents=True, exist_ok=True)
            logger = WandbLogger(project=log.experiment, name=name, save_dir=str(folder),
                                 mode=os.environ.get("WANDB_MODE", "offline"))
        logger.experiment  # noqa: B018 (creates the run: an unusable store is refused here)
    except OctbenchError:
        raise
    except Exception as error:
        raise OctbenchError(f"logger {log.logger} cannot log to {where(log, out)}: "
                            f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}") from None
    return logger


def where(log: LogSpec, out: Path) -> str:
    if log.logger == "mlflow":
        return tracking_uri(log, out)
    folder = Path(out) / FOLDERS[log.logger]
    if log.logger == "wandb" and os.environ.get("WANDB_MODE", "offline") == "offline":
        return f"{folder} (offline: `wandb sync {folder / 'wandb'}/offline-run-*` uploads it)"
    return str(folder)


def hyperparameters(config: dict) -> dict:
    """The run's configuration as a tracker shows it: nested keys joined by '/', patient lists left out."""
    params = {key: value for key, value in config.items() if key not in NOT_PARAMETERS}
    if isinstance(params.get("benchmark"), dict):
        params["benchmark"] = {k: v for k, v in params["benchmark"].items() if k not in ("methods", "description")}
    return params


def final_metrics(metrics: dict) -> tuple[dict[str, float], list[tuple[int, dict[str, float]]]]:
    """metrics.json's numbers flattened ('auroc/IRF', 'auroc_ci/IRF/low', 'mean_auroc'), and its
    curves (lists of points with a step, e.g. the budget curve) as (step, values) pairs."""
    flat, curves = {}, []

    def visit(name: str, value) -> None:
        if isinstance(value, bool) or value is None or isinstance(value, str):
            return
        if isinstance(value, (int, float)):
            if math.isfinite(value):
                flat[name] = float(value)
        elif isinstance(value, dict):
            for key, item in value.items():
                visit(f"{name}/{key}", item)
        elif isinstance(value, (list, tuple)):
            if value and all(isinstance(p, dict) and "step" in p for p in value):
                for point in value:
                    values = {f"{name}/{k}": float(v) for k, v in point.items() if k != "step"
                              and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
                    curves.append((int(point["step"]), values))
            elif len(value) == 2 and (name.endswith("_ci") or "_ci/" in name):  # an interval
                visit(f"{name}/low", value[0])
                visit(f"{name}/high", value[1])
            else:
                for i, item in enumerate(value):
                    visit(f"{name}/{i}", item)

    for key, value in metrics.items():
        if key not in NOT_METRICS:
            visit(key, value)
    return flat, curves


def log_run(request, metrics: dict, config: dict, final: Path) -> None:
    """At the end of a run whose record is complete at `final`: its configuration, metrics and files
    to the tracker run its pretraining logged to (a new one when it pretrained elsewhere or not at
    all). The record is already written: a tracker that fails now is reported, not fatal."""
    log = request.compute.log
    if log.logger == "none":
        OPEN.pop(final.name, None)
        return
    try:
        logger = OPEN.pop(final.name, None) or open_logger(log, final.name, Path(request.out))
        flat, curves = final_metrics(metrics)
        step = int(request.benchmark.pretrain.steps)
        if log.logger == "tensorboard":  # the HPARAMS tab: configuration against the mean AUROC
            logger.log_hyperparams(hyperparameters(config), {"mean_auroc": metrics["mean_auroc"]})
        else:
            logger.log_hyperparams(hyperparameters(config))
        for at, values in curves:
            logger.log_metrics(values, step=at)
        logger.log_metrics(flat, step=step)
        log_files(logger, log.logger, final, config, metrics)
        if log.logger == "wandb":
            logger.experiment.summary.update(flat)
            logger.experiment.finish()
        else:
            logger.finalize("success")
    except Exception as error:
        print(f"octbench: warning: the run record {final} is complete, but logging it to {log.logger} failed: "
              f"{type(error).__name__}: {error}", file=sys.stderr)
        return
    print(f"logged to {log.logger}: {where(log, Path(request.out))}", flush=True)


def log_files(logger, kind: str, final: Path, config: dict, metrics: dict) -> None:
    """The record's files as artifacts where the tracker keeps files; TensorBoard gets the
    configuration as text."""
    if kind == "mlflow":
        logger.experiment.log_artifacts(logger.run_id, str(final), artifact_path="record")
    elif kind == "wandb":
        import wandb

        artifact = wandb.Artifact(f"run-record-{metrics.get('key', 'unkeyed')}", type="run-record")
        artifact.add_dir(str(final))
        logger.experiment.log_artifact(artifact)
    else:
        text = json.dumps(hyperparameters(config), indent=2)
        logger.experiment.add_text("config", f"run record: {final}\n\n```\n{text}\n```")
