"""The GPU configuration of pretraining (bf16 mixed precision, channels-last tensors, every image
blurred as on a GPU, non-deterministic kernels) forced on the CPU with --precision bf16-mixed, so a
machine without a GPU tests the path a GPU takes."""

import argparse
import importlib.util
import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import timm
import torch
from safetensors.torch import load_file

from octbench.augment import ViewAugmentation, to_normalized_float
from octbench.benchmark import load_benchmark
from octbench.cli import main
from octbench.record import SAFETENSORS_FILE, load_metrics, load_state_dict
from octbench.sources import load_cohort
from octbench.training import PRECISIONS, Compute

TINY = str(Path(__file__).parent / "data" / "tiny.toml")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.mark.parametrize("method", ["simclr", "clinical-supcon"])
def test_bf16_pretraining_on_the_cpu_learns_and_records(method, tmp_path, cache):
    out = tmp_path / "results"
    argv = ["run", "--method", method, "--benchmark", TINY, "--out", str(out), "--cache-dir", str(cache),
            "--no-progress", "--precision", "bf16-mixed", "--set", "pretrain.steps=10"]
    assert main(argv) == 0
    (run_dir,) = (out / "runs").iterdir()
    assert json.loads((run_dir / "config.json").read_text())["compute"]["precision"] == "bf16-mixed"
    losses = pd.read_csv(run_dir / "pretrain_log.csv")["train_loss"].to_numpy()
    assert len(losses) == 10 and np.isfinite(losses).all()
    assert losses[5:].mean() < losses[:5].mean() and losses[-1] < losses[0]  # learning, not diverging
    metrics = load_metrics(run_dir)
    assert np.isfinite(metrics["mean_auroc"])
    model = timm.create_model("resnet18", in_chans=1, num_classes=0)
    model.load_state_dict(load_state_dict(run_dir / "backbone.pt"))
    tensors = load_file(run_dir / SAFETENSORS_FILE)
    assert all(torch.equal(tensors[k], v) for k, v in model.state_dict().items())
    assert all(v.dtype != torch.bfloat16 for v in tensors.values())  # the weights stay 32-bit


def test_the_gpu_blur_gives_the_cpu_blur(tmp_path):
    images = to_normalized_float(torch.randint(0, 256, (16, 32, 32), dtype=torch.uint8))
    views = {}
    for every_image in (False, True):
        torch.manual_seed(0)
        views[every_image] = ViewAugmentation(blur_prob=0.5, blur_every_image=every_image)(images)
    assert torch.allclose(views[False], views[True], atol=1e-5)


def test_precision_choices_agree_with_the_command():
    from octbench.cli import build_parser

    run = build_parser()._subparsers._group_actions[0].choices["run"]
    (precision,) = [a for a in run._actions if a.dest == "precision"]
    assert tuple(precision.choices) == PRECISIONS
    assert Compute(precision="bf16-mixed").gpu_configuration()
    assert not Compute(precision="32-true").gpu_configuration()


def test_gpu_check_script_parses():
    script = Path(__file__).parents[1] / "benchmarks" / "gpu_check.sh"
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0


def test_the_gpu_figures_of_throughput_run_cut_down_on_a_cpu(cache):
    """benchmarks/throughput.py's GPU figures, as gpu_check.sh runs them, at 32 px and a few steps on
    the CPU: the script works before a GPU runs it."""
    path = Path(__file__).parents[1] / "benchmarks" / "throughput.py"
    spec = importlib.util.spec_from_file_location("throughput", path)
    throughput = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(throughput)
    benchmark = load_benchmark(TINY)
    cohort = load_cohort(benchmark, cache)
    args = argparse.Namespace(backbones=["resnet18"], size=32, gpu_batch=8, steps=2, pretrain_like=TINY,
                              pretrain_steps=7)
    lines = []
    throughput.gpu_figures(args, benchmark, cohort.images_of(cohort.part("pool")), "this CPU", lines.append,
                           device="cpu")
    assert len(lines) == 2 and lines[0].startswith("- resnet18 at 32 px, batch 8, on this CPU: fp32 ")
    assert "views/s steady state" in lines[1] and "7 steps" in lines[1]
