"""Pretrained starting points (--init): weights the tests write themselves, loaded into the
one-channel backbone, recorded, and part of a run's identity; nothing is ever downloaded."""

import argparse
import hashlib
import json
import shutil
import socket
from pathlib import Path
from types import SimpleNamespace

import huggingface_hub.constants
import pytest
import timm
import torch
from safetensors.torch import save_file

from octbench.backbone import create_backbone
from octbench.benchmark import load_benchmark
from octbench.cli import main
from octbench.errors import OctbenchError
from octbench.init import refuse_a_download, starting_point
from octbench.method import MethodOptions
from octbench.overrides import apply_settings
from octbench.registry import get_method

TINY = Path(__file__).parent / "data" / "tiny.toml"
SUMMED = "summed 3 -> 1 channels"
TAG = "resnet18.a1_in1k"  # timm's default ImageNet weights of resnet18, faked in a local cache below


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def rgb_resnet(name: str = "resnet18", seed: int = 0) -> dict:
    """An ImageNet-style state dict: 3 input channels and a 10-class classifier."""
    torch.manual_seed(seed)
    return timm.create_model(name, in_chans=3, num_classes=10).state_dict()


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One simulated tiny cohort for every run of this module."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def rgb_weights(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("weights") / "resnet18-rgb.pt"
    torch.save(rgb_resnet(), path)
    return path


@pytest.fixture
def offline(monkeypatch):
    """Any attempt to open a network connection fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError("a network connection was attempted")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def run_command(out: Path, cache: Path, *extra, method="random-init", benchmark=TINY) -> list[str]:
    return ["run", "--method", method, "--benchmark", str(benchmark), "--out", str(out), "--cache-dir", str(cache),
            "--no-progress", *extra]


def read(run_dir: Path, name: str) -> dict:
    return json.loads((run_dir / name).read_text())


def refused(argv: list[str], capsys, out: Path) -> str:
    """main(argv) exits 2 with one message and no traceback, and writes nothing under `out`."""
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert "octbench: error: " in error and "Traceback" not in error
    assert not out.exists() or not any(out.rglob("*"))
    return error


# Loading

def test_rgb_weights_load_with_the_first_convolution_summed_over_colour(rgb_weights):
    start = starting_point(str(rgb_weights), "resnet18")
    backbone, _ = create_backbone("resnet18", start)
    saved, loaded = torch.load(rgb_weights, weights_only=True), backbone.state_dict()
    assert torch.equal(loaded["conv1.weight"], saved["conv1.weight"].sum(dim=1, keepdim=True))
    assert set(loaded) == set(saved) - {"fc.weight", "fc.bias"}  # the classifier is dropped
    assert all(torch.equal(loaded[key], saved[key]) for key in loaded if key != "conv1.weight")
    assert start.first_conv == SUMMED and start.sha256 == sha256(rgb_weights)


def test_safetensors_and_wrapped_checkpoints_give_the_same_weights(rgb_weights, tmp_path):
    saved = torch.load(rgb_weights, weights_only=True)
    save_file(saved, str(tmp_path / "weights.safetensors"))
    # timm's train.py: the weights of a DDP-wrapped model under "state_dict", its arguments beside them
    torch.save({"state_dict": {f"module.{k}": v for k, v in saved.items()}, "epoch": 3,
                "args": argparse.Namespace(lr=0.1)}, tmp_path / "checkpoint.pth.tar")
    torch.save({"model": saved}, tmp_path / "model.pth")
    reference = starting_point(str(rgb_weights), "resnet18").state
    for name in ("weights.safetensors", "checkpoint.pth.tar", "model.pth"):
        state = starting_point(str(tmp_path / name), "resnet18").state
        assert state.keys() == reference.keys() and all(torch.equal(state[k], reference[k]) for k in state), name


@pytest.mark.parametrize("name, online, target", [("byol", "backbone", "target_backbone"),
                                                   ("moco-v2", "backbone", "key_backbone"),
                                                   ("dino", "backbone", "teacher_backbone")])
def test_momentum_copies_start_from_the_init(rgb_weights, name, online, target):
    backbone, dim = create_backbone("resnet18", starting_point(str(rgb_weights), "resnet18"))
    method = get_method(name)(backbone, dim, MethodOptions())
    expected = torch.load(rgb_weights, weights_only=True)["conv1.weight"].sum(dim=1, keepdim=True)
    for module in (online, target):
        assert torch.equal(getattr(method, module).state_dict()["conv1.weight"], expected), module


def test_init_is_a_checked_benchmark_key_and_explained_in_the_help(tmp_path, capsys):
    assert apply_settings(load_benchmark(str(TINY)), ["pretrain.init=w.pt"]).pretrain.init == "w.pt"
    bad = tmp_path / "bad.toml"
    bad.write_text(TINY.read_text().replace("[pretrain]", "[pretrain]\ninit = 5"))
    with pytest.raises(OctbenchError, match=r"\[pretrain\]: init 5 is not a string"):
        load_benchmark(str(bad))
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    shown = capsys.readouterr().out
    assert "--init SOURCE" in shown and "timm:<model tag>" in shown


# Runs through the command line

@pytest.fixture(scope="module")
def init_runs(tmp_path_factory, cache, rgb_weights):
    """random-init on tiny.toml, started at random and from the RGB weights, into one results folder."""
    out = tmp_path_factory.mktemp("results")
    assert main(run_command(out, cache)) == 0
    assert main(run_command(out, cache, "--init", str(rgb_weights))) == 0
    runs = sorted((out / "runs").iterdir())
    assert len(runs) == 2
    started = next(run for run in runs if read(run, "metrics.json")["init"])
    plain = next(run for run in runs if run != started)
    return out, plain, started


def test_a_run_from_weights_records_them_and_is_a_run_of_its_own(init_runs, rgb_weights, cache, tmp_path, capsys):
    out, plain, started = init_runs
    metrics, config = read(started, "metrics.json"), read(started, "config.json")
    expected = {"source": str(rgb_weights), "sha256": sha256(rgb_weights), "first_conv": SUMMED,
                "file": str(rgb_weights.resolve())}
    assert metrics["init"] == config["init"] == expected
    assert config["benchmark"]["pretrain"]["init"] == str(rgb_weights)
    assert f"-init{sha256(rgb_weights)[:8]}_" in started.name and started.name.startswith("random-init-init")
    assert metrics["label"] == "random-init (init resnet18-rgb.pt)"  # a leaderboard row of its own
    assert read(plain, "metrics.json")["init"] is None and read(plain, "config.json")["init"] is None
    assert "init" not in read(plain, "config.json")["key"]["pretrain"]  # random starts keep the keys they had
    assert metrics["auroc"] != read(plain, "metrics.json")["auroc"]
    recorded = torch.load(started / "backbone.pt", weights_only=True)["conv1.weight"]  # what was probed
    assert torch.equal(recorded, torch.load(rgb_weights, weights_only=True)["conv1.weight"].sum(1, keepdim=True))
    copy = tmp_path / "elsewhere.pt"  # the same weights at another path: the same run
    shutil.copy(rgb_weights, copy)
    before = set((out / "runs").iterdir())
    capsys.readouterr()
    assert main(run_command(out, cache, "--init", str(copy))) == 0
    assert "reused" in capsys.readouterr().out and set((out / "runs").iterdir()) == before


def test_another_runs_folder_is_a_starting_point(init_runs, cache, capsys):
    out, _, started = init_runs
    before = set((out / "runs").iterdir())
    assert main(run_command(out, cache, "--init", str(started))) == 0
    (follow,) = set((out / "runs").iterdir()) - before
    metrics = read(follow, "metrics.json")
    assert metrics["init"] == {"source": str(started), "sha256": sha256(started / "backbone.pt"),
                               "first_conv": "as is", "file": str((started / "backbone.pt").resolve())}
    # The same weights probed frozen again: the same scores as the run they come from.
    for biomarker, auroc in read(started, "metrics.json")["auroc"].items():
        assert metrics["auroc"][biomarker] == pytest.approx(auroc, abs=1e-6)
    capsys.readouterr()
    assert main(run_command(out, cache, "--init", str(started / "backbone.pt"))) == 0  # its file: the same run
    assert "reused" in capsys.readouterr().out


def test_weights_that_do_not_fit_or_do_not_exist_are_refused_before_anything_runs(tmp_path, capsys):
    out, unused = tmp_path / "results", tmp_path / "cache"
    resnet50 = tmp_path / "resnet50.pt"
    torch.save(rgb_resnet("resnet50"), resnet50)
    error = refused(run_command(out, unused, "--init", str(resnet50)), capsys, out)
    assert str(resnet50) in error and "backbone resnet18" in error and "layer1.0.conv3.weight" in error
    missing = tmp_path / "nowhere.pt"
    assert str(missing) in refused(run_command(out, unused, "--init", str(missing)), capsys, out)
    compare = ["compare", "--benchmark", str(TINY), "--out", str(out), "--cache-dir", str(unused), "--jobs", "2",
               "--no-embedding", "--init", str(missing)]
    assert str(missing) in refused(compare, capsys, out)  # every cell's init is checked before the first runs
    (tmp_path / "not-a-run").mkdir()
    error = refused(run_command(out, unused, "--init", str(tmp_path / "not-a-run")), capsys, out)
    assert "not-a-run" in error and "backbone.pt" in error
    assert not unused.exists()  # refused before the cohort was even loaded


# timm tags: the local Hugging Face cache only

def test_a_timm_tag_outside_the_local_cache_is_refused_without_a_download(tmp_path, monkeypatch, offline, capsys):
    hub = tmp_path / "hf-hub"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hub))
    offline_before = huggingface_hub.constants.HF_HUB_OFFLINE
    out = tmp_path / "results"
    error = refused(run_command(out, tmp_path / "cache", "--init", f"timm:{TAG}"), capsys, out)
    assert f"timm:{TAG}" in error and str(hub) in error and "never downloads" in error
    assert huggingface_hub.constants.HF_HUB_OFFLINE == offline_before  # offline only for the call
    assert "no model 'resnet1'" in refused(run_command(out, tmp_path / "cache", "--init", "timm:resnet1.x"),
                                           capsys, out)


def test_timm_weights_only_at_a_url_must_already_be_in_the_torch_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "torch-hub"))
    config = SimpleNamespace(hf_hub_id=None, url="https://example.org/weights/old-resnet.pth?raw=1")
    with pytest.raises(OctbenchError, match="not in the local torch hub cache .*torch-hub.checkpoints"):
        refuse_a_download("oldnet.in1k", config)
    (tmp_path / "torch-hub" / "checkpoints").mkdir(parents=True)
    (tmp_path / "torch-hub" / "checkpoints" / "old-resnet.pth").write_bytes(b"")
    refuse_a_download("oldnet.in1k", config)  # there: timm reads it without a download


def fake_hub_cache(root: Path, tag: str, state: dict) -> None:
    """`state` where huggingface_hub keeps timm/<tag>'s model.safetensors once downloaded."""
    repo, commit = root / f"models--timm--{tag}", "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(repo / "snapshots" / commit / "model.safetensors"))


def test_an_imagenet_init_entry_runs_from_timm_weights_in_the_local_cache(tmp_path, cache, monkeypatch, offline):
    torch.manual_seed(1)
    imagenet = timm.create_model("resnet18").state_dict()  # 3 channels, 1000 classes, as timm publishes it
    fake_hub_cache(tmp_path / "hf-hub", TAG, imagenet)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf-hub"))
    benchmark = tmp_path / "tiny.toml"
    benchmark.write_text(TINY.read_text().replace(
        'methods = ["random-init", "simclr"]',
        f'methods = ["random-init", {{ name = "random-init", init = "timm:{TAG}", alias = "imagenet-init", '
        'label = "ImageNet init (frozen)" }]'))
    out = tmp_path / "results"
    assert main(run_command(out, cache, method="imagenet-init", benchmark=benchmark)) == 0
    (record,) = (out / "runs").iterdir()
    assert record.name.startswith("imagenet-init_resnet18_tiny_seed0")  # the alias names the init
    metrics = read(record, "metrics.json")
    assert metrics["label"] == "ImageNet init (frozen)" and metrics["method"] == "random-init"
    assert metrics["init"]["source"] == f"timm:{TAG}" and metrics["init"]["first_conv"] == SUMMED
    assert metrics["init"]["file"] == str(tmp_path / "hf-hub")
    recorded = torch.load(record / "backbone.pt", weights_only=True)
    assert torch.equal(recorded["conv1.weight"], imagenet["conv1.weight"].sum(dim=1, keepdim=True))
    assert torch.equal(recorded["layer4.1.conv2.weight"], imagenet["layer4.1.conv2.weight"])
