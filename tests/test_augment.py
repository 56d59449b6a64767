"""The batched views against the operations they stand for: grid_sample's bilinear crop,
torchvision's brightness/contrast jitter, a per-image Gaussian blur."""

import math

import pytest
import torch
import torch.nn.functional as F

from octbench.augment import OCT_MEAN, OCT_STD, ViewAugmentation, to_normalized_float


@pytest.fixture
def images():
    generator = torch.Generator().manual_seed(0)
    return to_normalized_float(torch.randint(0, 256, (12, 40, 56), dtype=torch.uint8, generator=generator))


def test_normalisation_matches_the_formula(images):
    raw = torch.randint(0, 256, (3, 8, 8), dtype=torch.uint8)
    expected = (raw.float().unsqueeze(1) / 255 - OCT_MEAN) / OCT_STD
    torch.testing.assert_close(to_normalized_float(raw), expected)


def test_crop_equals_grid_sample_with_the_same_draws(images):
    augmentation = ViewAugmentation()
    torch.manual_seed(1)
    views = augmentation.resized_crop_and_flip(images)
    # Redraw the same parameters and sample them with grid_sample, the general affine path.
    torch.manual_seed(1)
    n = len(images)
    area = augmentation.uniform(n, *augmentation.crop_scale, like=images)
    log_ratio = augmentation.uniform(n, math.log(3 / 4), math.log(4 / 3), like=images)
    width = torch.sqrt(area * torch.exp(log_ratio)).clamp(max=1.0)
    height = torch.sqrt(area / torch.exp(log_ratio)).clamp(max=1.0)
    centre_x = (torch.rand_like(width) * 2 - 1) * (1 - width)
    centre_y = (torch.rand_like(height) * 2 - 1) * (1 - height)
    flip = torch.where(torch.rand_like(width) < 0.5, -1.0, 1.0)
    assert (flip < 0).any() and (flip > 0).any()
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = width * flip, centre_x
    theta[:, 1, 1], theta[:, 1, 2] = height, centre_y
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    expected = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
    torch.testing.assert_close(views, expected, atol=1e-4, rtol=1e-4)


def test_full_crop_without_flip_is_the_image(images):
    augmentation = ViewAugmentation(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip_prob=0.0)
    torch.testing.assert_close(augmentation.resized_crop_and_flip(images), images)
    flipped = ViewAugmentation(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip_prob=1.0)
    torch.testing.assert_close(flipped.resized_crop_and_flip(images), images.flip(-1))


def test_jitter_scales_brightness_and_contrast_of_the_displayed_intensity(images):
    augmentation = ViewAugmentation(jitter_prob=0.5)
    torch.manual_seed(2)
    jittered = augmentation.jitter(images)
    torch.manual_seed(2)
    n = len(images)
    apply = torch.rand(n) < 0.5
    brightness = torch.rand(n) * 0.8 + 0.6
    contrast = torch.rand(n) * 0.8 + 0.6
    assert apply.any() and not apply.all()
    for i in range(n):
        shown = images[i] * OCT_STD + OCT_MEAN
        if apply[i]:
            # brightness b scales the image; contrast c moves it away from its mean (b m).
            mean = shown.mean() * brightness[i]
            shown = (contrast[i] * (shown * brightness[i] - mean) + mean).clamp(0, 1)
        torch.testing.assert_close(jittered[i], (shown - OCT_MEAN) / OCT_STD, atol=1e-5, rtol=1e-5)


def test_blur_convolves_only_the_images_drawn(images):
    augmentation = ViewAugmentation(blur_prob=0.5, blur_sigma_at_224=(8.0, 12.0))  # 2-3 px at 56 px
    torch.manual_seed(3)
    blurred = augmentation.blur(images)
    torch.manual_seed(3)
    torch.rand(len(images))  # the sigmas
    chosen = torch.rand(len(images)) < 0.5
    assert chosen.any() and not chosen.all()
    torch.testing.assert_close(blurred[~chosen], images[~chosen], atol=0, rtol=0)
    # A normalised kernel with replicated borders keeps each image's mean and smooths it.
    torch.testing.assert_close(blurred.mean(dim=(1, 2, 3)), images.mean(dim=(1, 2, 3)), atol=0.05, rtol=0)
    roughness = (blurred.diff(dim=-1).abs().mean(dim=(1, 2, 3)), images.diff(dim=-1).abs().mean(dim=(1, 2, 3)))
    assert (roughness[0][chosen] < 0.8 * roughness[1][chosen]).all()


def test_views_stay_in_the_displayable_range(images):
    views = ViewAugmentation(jitter_prob=1.0)(images) * OCT_STD + OCT_MEAN
    assert views.min() >= -1e-5 and views.max() <= 1 + 1e-5
