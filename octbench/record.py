"""The run record: one folder per run, written whole or not at all.

Everything is written into a hidden sibling folder, which is renamed into place as the last step;
a reader therefore sees either a complete record or none, and a folder without `metrics.json` is
an interrupted run, left out of every table.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import zipfile
from importlib import metadata
from pathlib import Path

import pandas as pd
import torch
from safetensors.torch import save_file

from octbench.errors import OctbenchError

METRICS_KEYS = ("run_id", "method", "benchmark", "seed", "label_fraction", "protocol",
                "auroc", "mean_auroc", "auroc_ci", "timing")
PREDICTION_COLUMNS = ["sample_id", "patient", "biomarker", "y_true", "y_score"]
BACKBONE_FILE = "backbone.pt"
# The same weights for tools that load safetensors (timm, Hugging Face): no pickle at all.
SAFETENSORS_FILE = "backbone.safetensors"


def package_versions() -> dict[str, str]:
    names = ("octbench", "torch", "torchvision", "lightly", "timm", "pytorch-lightning", "scikit-learn",
             "numpy", "pandas")
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


@functools.cache
def git_commit() -> str | None:
    """HEAD of the checkout octbench runs from, with '-dirty' when its code has uncommitted changes
    (then the commit alone does not reproduce the run). Read once per process, at its first run:
    the code a process runs is the code it imported, whatever the checkout holds later. Results
    written into the checkout (results/) do not make it dirty."""
    where = Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=where)
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!results"],
                                capture_output=True, text=True, timeout=5, cwd=where.parent)
    except (OSError, subprocess.TimeoutExpired):
        return None
    commit = head.stdout.strip()
    if not commit or head.returncode != 0:
        return None
    return commit + ("-dirty" if status.stdout.strip() else "")


def write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


def partial_dir(final: Path) -> Path:
    """The hidden folder a run writes into before it is complete."""
    return final.with_name(f".partial-{final.name}")


def publish(partial: Path, final: Path) -> None:
    """Move a complete record into place, replacing an older record of the same run."""
    if final.exists():
        stale = final.with_name(f".stale-{final.name}-{os.getpid()}")
        os.replace(final, stale)
        os.replace(partial, final)
        shutil.rmtree(stale)
    else:
        os.replace(partial, final)


def write_run_record(partial: Path, config: dict, metrics: dict, predictions: pd.DataFrame,
                     backbone: torch.nn.Module) -> None:
    """Fill `partial` with the four files of the contract (metrics.json last)."""
    missing = [k for k in METRICS_KEYS if k not in metrics]
    if missing:
        raise ValueError(f"metrics lack {missing}")
    partial.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(partial / "checkpoints", ignore_errors=True)  # kept for resuming until now; not part of a record
    for snapshot in partial.glob("budget-step*"):  # probed and deleted by octbench/budget.py; never recorded
        snapshot.unlink()
    write_json(partial / "config.json", config)
    predictions[PREDICTION_COLUMNS].to_csv(partial / "predictions.csv", index=False)
    torch.save(backbone.state_dict(), partial / BACKBONE_FILE)
    save_safetensors(backbone.state_dict(), partial / SAFETENSORS_FILE,
                     {"timm_model": str(config.get("benchmark", {}).get("backbone", "")), "in_chans": "1",
                      "run_id": str(config.get("run_id", ""))})
    write_json(partial / "metrics.json", metrics)


def save_safetensors(state_dict: dict, path: Path, metadata: dict[str, str]) -> None:
    """A state dict as safetensors: every tensor contiguous in memory (a channels-last training
    leaves the convolutions strided), with string metadata saying what model it loads into."""
    save_file({k: v.detach().cpu().contiguous() for k, v in state_dict.items()}, str(path), metadata=metadata)


class DamagedRecord(OctbenchError):
    """A run folder whose files cannot be read back: named, left out of every table, never deleted."""


def load_state_dict(path: Path) -> dict:
    """Weights saved by torch.save, loaded as tensors only: a weights file never runs code."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise DamagedRecord(f"{path} is missing") from None
    except Exception as error:  # a truncated zip, a pickle with code in it, another format
        raise DamagedRecord(f"{path} cannot be loaded as weights ({type(error).__name__}: {error}); "
                            "is it truncated?") from None


def read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DamagedRecord(f"{path} is not readable JSON ({error})") from None
    if not isinstance(data, dict):
        raise DamagedRecord(f"{path} holds a JSON {type(data).__name__}, not an object")
    return data


def load_metrics(run_dir: Path) -> dict | None:
    """A run's metrics, or None for an incomplete run (no metrics.json). A record whose metrics
    cannot be read, lack a key of the contract or have lost a file raises DamagedRecord."""
    run_dir = Path(run_dir)
    path = run_dir / "metrics.json"
    if not path.exists():
        return None
    metrics = read_json(path)
    missing = [key for key in METRICS_KEYS if key not in metrics]
    if missing:
        raise DamagedRecord(f"{path} lacks {', '.join(missing)}")
    for name in ("config.json", "predictions.csv", BACKBONE_FILE):
        if not (run_dir / name).is_file():
            raise DamagedRecord(f"{run_dir / name} is missing")
    if not zipfile.is_zipfile(run_dir / BACKBONE_FILE):  # torch.save writes a zip; a cut-off one has no directory
        raise DamagedRecord(f"{run_dir / BACKBONE_FILE} is not a complete weights file; is it truncated?")
    return metrics


def damage_advice(error: DamagedRecord) -> str:
    return (f"damaged run record: {error}; it is left out of every table. `octbench run ... --force` "
            "retrains that run and replaces its record")
