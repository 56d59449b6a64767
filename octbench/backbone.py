"""Backbones: any timm model with one input channel and no classifier, randomly initialised."""

from __future__ import annotations

import timm
from torch import nn

from octbench.errors import OctbenchError, closest


def create_backbone(name: str) -> tuple[nn.Module, int]:
    """(model, feature dimension). Weights are never downloaded: every run starts from scratch."""
    if not timm.is_model(name):
        raise OctbenchError(f"unknown backbone {name!r}{closest(name, timm.list_models())}; "
                            "any timm model name works, e.g. resnet18 or resnet50")
    model = timm.create_model(name, pretrained=False, in_chans=1, num_classes=0)
    return model, model.num_features
