"""A diagnostic: the probe on raw downsampled pixels, with no network at all.

If it rivals a pretrained backbone, the cohort's labels can be read off pixel positions and the
benchmark cannot tell methods apart.
"""

import torch
import torch.nn.functional as F

from octbench.method import Method


class RawPixels(Method):
    name = "raw-pixels"
    description = "diagnostic: linear probe on 16x16 downsampled pixels"
    paper = "diagnostic baseline"
    n_views = 0

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(images, 16).flatten(1)
