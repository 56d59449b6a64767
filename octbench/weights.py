"""A run's backbone for other tools: `octbench export-backbone RUN --in-chans 3`.

Runs train one-channel backbones (B-scans are gray). Tools built for RGB input load a copy whose
first convolution takes C channels: its weight repeated over them and divided by C, so a gray image
repeated over C channels gives exactly the features the one-channel model gives that image.
Inputs stay normalised as octbench normalises them (OCT_MEAN, OCT_STD on every channel).
"""

from __future__ import annotations

import os
from pathlib import Path

import timm
import torch

from octbench.augment import OCT_MEAN, OCT_STD
from octbench.errors import OctbenchError
from octbench.record import BACKBONE_FILE, load_state_dict, read_json, save_safetensors


def first_convolution(model_name: str, state: dict) -> str:
    """The state-dict key of the weight that meets the image: timm's own record of it (its
    pretrained_cfg first_conv), else the first 4-d weight taking one channel."""
    if timm.is_model(model_name):
        first = timm.get_pretrained_cfg_value(model_name, "first_conv")
        for name in [first] if isinstance(first, str) else list(first or []):
            if f"{name}.weight" in state:
                return f"{name}.weight"
    for key, value in state.items():
        if key.endswith("weight") and value.ndim == 4 and value.shape[1] == 1:
            return key
    raise OctbenchError(f"no one-channel input convolution found among the weights of {model_name}")


def with_input_channels(state: dict, key: str, in_chans: int) -> dict:
    weight = state[key]
    return {**state, key: weight.repeat(1, in_chans, 1, 1) / in_chans}


def export_backbone(run_dir: Path, in_chans: int, out: Path | None = None) -> list[Path]:
    """Write <out>.safetensors and <out>.pt (default: ./<run>-in<C>) with the run's backbone taking
    `in_chans` channels; an existing file is never replaced."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise OctbenchError(f"{run_dir} is not a run folder (results/runs/<run-id>/)")
    model_name = read_json(run_dir / "config.json").get("benchmark", {}).get("backbone")
    if not model_name:
        raise OctbenchError(f"{run_dir / 'config.json'} does not name its backbone (benchmark.backbone)")
    state = load_state_dict(run_dir / BACKBONE_FILE)
    key = first_convolution(model_name, state)
    if state[key].shape[1] != 1:
        raise OctbenchError(f"{run_dir / BACKBONE_FILE}: {key} takes {state[key].shape[1]} channels, not 1")
    state = with_input_channels(state, key, in_chans)
    stem = Path(out) if out is not None else Path(f"{run_dir.name}-in{in_chans}")
    if stem.suffix in (".safetensors", ".pt"):
        stem = stem.with_suffix("")
    targets = [stem.with_name(stem.name + ".safetensors"), stem.with_name(stem.name + ".pt")]
    for target in targets:
        if target.exists():
            raise OctbenchError(f"{target} exists; remove it or pass another --out")
    stem.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"timm_model": model_name, "in_chans": str(in_chans), "run_id": run_dir.name,
                "input_mean": str(OCT_MEAN), "input_std": str(OCT_STD)}
    for target in targets:  # each written beside its name, then renamed: never a half-written file
        partial = target.with_name(f".{target.name}.{os.getpid()}")
        if target.suffix == ".safetensors":
            save_safetensors(state, partial, metadata)
        else:
            torch.save(state, partial)
        os.replace(partial, target)
    return targets
