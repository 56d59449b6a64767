"""Backbones others can load: every record has backbone.safetensors beside backbone.pt, and
`octbench export-backbone RUN --in-chans 3` writes a copy for RGB tools that gives a gray image,
repeated over three channels, the features the one-channel model gives it."""

import json
from pathlib import Path

import pytest
import timm
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from octbench.backbone import create_backbone
from octbench.cli import main
from octbench.record import BACKBONE_FILE


@pytest.fixture
def run_dir(tmp_path) -> Path:
    """A run folder as far as export-backbone reads it: config.json naming the backbone, backbone.pt."""
    torch.manual_seed(0)
    backbone, _ = create_backbone("resnet18")
    folder = tmp_path / "runs" / "simclr_resnet18_16xb-2s_tiny_seed0_lf1.0-0123abcd"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"run_id": folder.name, "benchmark": {"backbone": "resnet18"}}))
    torch.save(backbone.to(memory_format=torch.channels_last).state_dict(), folder / BACKBONE_FILE)
    return folder


def test_a_three_channel_copy_gives_the_same_features(run_dir, tmp_path, capsys):
    out = tmp_path / "exported" / "rgb"
    assert main(["export-backbone", str(run_dir), "--in-chans", "3", "--out", str(out)]) == 0
    assert f"wrote {out}.safetensors" in capsys.readouterr().out
    gray = timm.create_model("resnet18", in_chans=1, num_classes=0).eval()
    gray.load_state_dict(torch.load(run_dir / BACKBONE_FILE, weights_only=True))
    rgb = timm.create_model("resnet18", in_chans=3, num_classes=0).eval()
    rgb.load_state_dict(load_file(f"{out}.safetensors"))
    image = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        assert torch.allclose(rgb(image.repeat(1, 3, 1, 1)), gray(image), atol=1e-5)
    copy = timm.create_model("resnet18", in_chans=3, num_classes=0)
    copy.load_state_dict(torch.load(f"{out}.pt", weights_only=True))  # the same weights as a torch file
    with safe_open(f"{out}.safetensors", "pt") as weights:
        assert weights.metadata()["timm_model"] == "resnet18" and weights.metadata()["in_chans"] == "3"


def test_export_names_its_files_after_the_run_and_never_replaces_one(run_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["export-backbone", str(run_dir)]) == 0
    assert (tmp_path / f"{run_dir.name}-in3.safetensors").exists() and (tmp_path / f"{run_dir.name}-in3.pt").exists()
    capsys.readouterr()
    assert main(["export-backbone", str(run_dir)]) == 2
    assert "exists; remove it or pass another --out" in capsys.readouterr().err


def test_a_folder_without_a_record_is_refused(tmp_path, capsys):
    assert main(["export-backbone", str(tmp_path)]) == 2
    assert "config.json" in capsys.readouterr().err
