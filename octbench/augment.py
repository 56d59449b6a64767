"""Batched view augmentations for one-channel B-scans, run on the training device.

One call transforms a whole batch with per-sample random parameters, so the GPU (or the CPU's
vector units) does the work instead of a per-image PIL loop. The family is the seed paper's
(RandomResizedCrop, horizontal flip, colour jitter, blur), adapted to one channel: brightness and
contrast instead of colour.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

# Intensity mean and std of OLIVES B-scans on a 0-1 scale (the seed code's normalisation).
OCT_MEAN, OCT_STD = 0.1706, 0.2112


def to_normalized_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 (B, H, W) or (B, 1, H, W) -> normalised float (B, 1, H, W)."""
    if images.dim() == 3:
        images = images.unsqueeze(1)
    return (images.float() / 255.0 - OCT_MEAN) / OCT_STD


@dataclass(frozen=True)
class ViewAugmentation:
    crop_scale: tuple[float, float] = (0.3, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_prob: float = 0.5
    jitter_prob: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    blur_prob: float = 0.5
    # torchvision's GaussianBlur default, in pixels of a 224 px image, scaled to the actual size:
    # a fixed pixel sigma would wipe out one-pixel lesions (foci) at 64 px that survive at 224.
    blur_sigma_at_224: tuple[float, float] = (0.1, 2.0)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised float (B, 1, H, W) -> one random view of each image, same shape."""
        views = self.resized_crop_and_flip(images)
        views = self.jitter(views)
        return self.blur(views)

    def uniform(self, n: int, low: float, high: float, like: torch.Tensor) -> torch.Tensor:
        return torch.rand(n, device=like.device, dtype=like.dtype) * (high - low) + low

    def resized_crop_and_flip(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        area = self.uniform(n, *self.crop_scale, like=x)
        log_ratio = self.uniform(n, math.log(self.crop_ratio[0]), math.log(self.crop_ratio[1]), like=x)
        width = torch.sqrt(area * torch.exp(log_ratio)).clamp(max=1.0)
        height = torch.sqrt(area / torch.exp(log_ratio)).clamp(max=1.0)
        # Crop centres keep the crop inside the image (coordinates in [-1, 1]).
        centre_x = (torch.rand_like(width) * 2 - 1) * (1 - width)
        centre_y = (torch.rand_like(height) * 2 - 1) * (1 - height)
        flip = torch.where(torch.rand_like(width) < self.flip_prob, -1.0, 1.0)
        theta = torch.zeros(n, 2, 3, device=x.device, dtype=x.dtype)
        theta[:, 0, 0], theta[:, 0, 2] = width * flip, centre_x
        theta[:, 1, 1], theta[:, 1, 2] = height, centre_y
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

    def jitter(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        apply = (torch.rand(n, 1, 1, 1, device=x.device) < self.jitter_prob).to(x.dtype)
        brightness = self.uniform(n, 1 - self.brightness, 1 + self.brightness, like=x).view(n, 1, 1, 1)
        contrast = self.uniform(n, 1 - self.contrast, 1 + self.contrast, like=x).view(n, 1, 1, 1)
        # Jitter acts on the displayed intensity (0-1), as torchvision's ColorJitter does.
        raw = x * OCT_STD + OCT_MEAN
        mean = raw.mean(dim=(2, 3), keepdim=True)
        jittered = ((raw * brightness - mean * brightness) * contrast + mean * brightness).clamp(0, 1)
        raw = apply * jittered + (1 - apply) * raw
        return (raw - OCT_MEAN) / OCT_STD

    def blur(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        if self.blur_prob == 0:
            return x
        low, high = (s * w / 224 for s in self.blur_sigma_at_224)
        sigma = self.uniform(n, low, high, like=x)
        sigma = torch.where(torch.rand_like(sigma) < self.blur_prob, sigma, torch.zeros_like(sigma))
        radius = max(1, math.ceil(3 * high))
        offsets = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
        kernel = torch.exp(-0.5 * (offsets[None, :] / sigma.clamp(min=1e-3)[:, None]) ** 2)
        kernel = kernel / kernel.sum(dim=1, keepdim=True)  # sigma 0 -> a unit impulse: no blur
        # One separable kernel per sample: fold the batch into channels and convolve by groups.
        folded = x.reshape(1, n, h, w)
        folded = F.conv2d(F.pad(folded, (radius, radius, 0, 0), mode="replicate"),
                          kernel.view(n, 1, 1, -1), groups=n)
        folded = F.conv2d(F.pad(folded, (0, 0, radius, radius), mode="replicate"),
                          kernel.view(n, 1, -1, 1), groups=n)
        return folded.reshape(n, 1, h, w)
