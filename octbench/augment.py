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
    # One multiply-add over the batch instead of three passes: (x / 255 - mean) / std.
    # copy=True: the in-place steps must never touch a caller's float tensor.
    return images.to(torch.float32, copy=True).mul_(1 / (255 * OCT_STD)).sub_(OCT_MEAN / OCT_STD)


def bilinear_taps(coordinate: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pixel coordinates (n, k), clamped to the image as grid_sample's border padding does ->
    the lower neighbour, the upper one and the weight of the upper one."""
    coordinate = coordinate.clamp(0, size - 1)
    low = coordinate.floor()
    weight = (coordinate - low).unsqueeze(-1)
    low = low.long()
    return low, (low + 1).clamp(max=size - 1), weight


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
    # How blur is computed, not what it gives: convolve every image (sigma 0 leaves one unchanged),
    # as on a GPU, rather than only the drawn ones, as a CPU does by default.
    blur_every_image: bool = False

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
        # An axis-aligned crop is separable: interpolate rows, then columns. This is grid_sample's
        # bilinear sampling (align_corners=False, border padding) at half its cost on a CPU.
        h, w = x.shape[-2:]
        column = (torch.arange(w, device=x.device, dtype=x.dtype) * 2 + 1) / w - 1
        row = (torch.arange(h, device=x.device, dtype=x.dtype) * 2 + 1) / h - 1
        source_x = ((width * flip)[:, None] * column + centre_x[:, None] + 1) * w / 2 - 0.5
        source_y = (height[:, None] * row + centre_y[:, None] + 1) * h / 2 - 0.5
        top, bottom, weight_y = bilinear_taps(source_y, h)
        images = x[:, 0]
        samples = torch.arange(n, device=x.device)[:, None]
        rows = torch.lerp(images[samples, top], images[samples, bottom], weight_y)  # (n, h, w)
        left, right, weight_x = bilinear_taps(source_x, w)
        left, right = (i[:, None, :].expand(n, h, w) for i in (left, right))
        views = torch.lerp(rows.gather(2, left), rows.gather(2, right), weight_x.transpose(1, 2))
        return views.unsqueeze(1)

    def jitter(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        apply = torch.rand(n, 1, 1, 1, device=x.device) < self.jitter_prob
        brightness = self.uniform(n, 1 - self.brightness, 1 + self.brightness, like=x).view(n, 1, 1, 1)
        contrast = self.uniform(n, 1 - self.contrast, 1 + self.contrast, like=x).view(n, 1, 1, 1)
        brightness, contrast = (torch.where(apply, f, torch.ones_like(f)) for f in (brightness, contrast))
        # Jitter acts on the displayed intensity v = x * std + mean (0-1), like torchvision's
        # brightness then contrast (without its clip between the two): v' = clamp(b c (v - m) + b m,
        # 0, 1), m the image's mean intensity. As one scale and shift of x per image it is one pass.
        mean = x.mean(dim=(2, 3), keepdim=True) * OCT_STD + OCT_MEAN
        scale = brightness * contrast
        shift = ((OCT_MEAN - mean) * scale + mean * brightness - OCT_MEAN) / OCT_STD
        low, high = -OCT_MEAN / OCT_STD, (1 - OCT_MEAN) / OCT_STD
        return torch.addcmul(shift, x, scale).clamp_(low, high)

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
        # One separable kernel per image: fold the images into channels and convolve by groups. A
        # CPU convolves only the images drawn for blurring; a GPU convolves all of them rather than
        # stall until the host learns which were drawn.
        if x.device.type == "cpu" and not self.blur_every_image:
            chosen = (sigma > 0).nonzero().squeeze(1)
        else:
            chosen = torch.arange(n, device=x.device)
        k = len(chosen)
        if k == 0:
            return x
        folded = x[chosen].reshape(1, k, h, w)
        kernel = kernel[chosen]
        folded = F.conv2d(F.pad(folded, (radius, radius, 0, 0), mode="replicate"), kernel.view(k, 1, 1, -1), groups=k)
        folded = F.conv2d(F.pad(folded, (0, 0, radius, radius), mode="replicate"), kernel.view(k, 1, -1, 1), groups=k)
        return x.index_copy(0, chosen, folded.reshape(k, 1, h, w))
