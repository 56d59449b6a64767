"""Backbones: any timm model with one input channel and no classifier, randomly initialised or
started from pretrained weights (octbench/init.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import timm
from torch import nn

from octbench.errors import OctbenchError, closest

if TYPE_CHECKING:
    from octbench.init import StartingPoint


def create_backbone(name: str, start: StartingPoint | None = None) -> tuple[nn.Module, int]:
    """(model, feature dimension). Weights are never downloaded: a run starts from scratch, or from
    `start`, weights already read and checked to fit this backbone. They are loaded here, before any
    method is built, so momentum copies (MoCo, BYOL, DINO) start from them too."""
    if not timm.is_model(name):
        raise OctbenchError(f"unknown backbone {name!r}{closest(name, timm.list_models())}; "
                            "any timm model name works, e.g. resnet18 or resnet50")
    model = timm.create_model(name, pretrained=False, in_chans=1, num_classes=0)
    if start is not None:
        model.load_state_dict(start.state)  # strict: init.check_fit has made sure every key fits
    return model, model.num_features
