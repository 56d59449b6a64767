"""From an image file's bytes to the model's square 8-bit B-scans: frames, intensity, geometry.

A file may hold one B-scan (PNG, JPEG, BMP, a one-page TIFF) or a volume (a multi-page TIFF, one
B-scan per page); `frame_count` says how many, and `decode_frame` decodes one of them. Vendor
volumes (HEYEX, Topcon, Duke, RETOUCH) are read by octbench/vendor.py, and their B-scans pass
through `fit_frame` like any other. Nothing is
dropped or truncated silently:
- intensity: 8-bit B-scans stay as they are; 16-bit, 32-bit and float ones (RETOUCH's Heidelberg
  volumes, raw exports) are mapped to 0..255 by the benchmark's [images] rule, `percentile` (each B-scan's own
  low and high percentiles, `intensity_range`, become 0 and 255) or `window` (fixed values);
  colour wider than 8 bits per sample (48-bit RGB) is refused, never cut to its high byte;
- geometry: `pad` (the default) scales the long side to the image size and pads the short one with
  black, as the vitreous above a retina is; `crop` scales the short side and cuts the centre;
  `squash` stretches both sides to the size (the aspect ratio is lost).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PNG_COLOUR_TYPES = {2: "RGB", 4: "gray + alpha", 6: "RGBA"}
LUMINANCE = np.array([0.299, 0.587, 0.114])  # ITU-R 601-2, as Pillow's convert("L")


@dataclass(frozen=True)
class PixelRule:
    """How a cohort's files become the model's B-scans; recorded in the image cache's key."""

    size: int
    intensity: str = "percentile"
    intensity_range: tuple[float, float] = (0.5, 99.5)
    resize: str = "pad"

    @classmethod
    def of(cls, image_size: int, images) -> PixelRule:
        """The rule of a benchmark's [cohort] image_size and [images] section."""
        return cls(image_size, images.intensity, tuple(images.intensity_range), images.resize)

    def key(self) -> dict:
        return {"size": self.size, "intensity": self.intensity, "intensity_range": list(self.intensity_range),
                "resize": self.resize}


def is_tiff(data: bytes) -> bool:
    return data[:4] in TIFF_MAGIC


def frame_count(data: bytes) -> int:
    """How many B-scans the file holds: a TIFF's pages, or the frames Pillow sees."""
    if not data:
        raise ValueError("cannot be decoded: the file is empty (0 bytes); was the export interrupted?")
    if is_tiff(data):
        import tifffile

        try:
            with tifffile.TiffFile(io.BytesIO(data)) as tiff:
                return len(tiff.pages)
        except (tifffile.TiffFileError, ValueError, OSError) as error:
            raise ValueError(f"cannot be decoded as TIFF ({error}); is it truncated?") from None
    try:
        with Image.open(io.BytesIO(data)) as image:
            return int(getattr(image, "n_frames", 1))
    except UnidentifiedImageError:
        raise ValueError("cannot be decoded: not an image format Pillow reads (is it truncated or not an "
                         "image?)") from None
    except (OSError, Image.DecompressionBombError, SyntaxError) as error:
        raise ValueError(f"cannot be decoded ({error}); is it truncated or not an image?") from None


def raw_frame(data: bytes, frame: int) -> np.ndarray:
    """One frame as stored: (h, w) or (h, w, channels), of the file's own dtype."""
    if is_tiff(data):
        import tifffile

        try:
            with tifffile.TiffFile(io.BytesIO(data)) as tiff:
                return tiff.pages[frame].asarray()
        except (tifffile.TiffFileError, ValueError, OSError, IndexError) as error:
            raise ValueError(f"page {frame} cannot be decoded ({error}); is the TIFF truncated?") from None
    if data[:8] == PNG_MAGIC and len(data) > 25 and data[24] == 16 and data[25] in PNG_COLOUR_TYPES:
        # Pillow opens 16-bit colour PNGs as 8-bit RGB: the low byte would be lost without a word.
        raise ValueError(f"16-bit {PNG_COLOUR_TYPES[data[25]]} PNG ({16 * (3 if data[25] == 2 else 4)}-bit colour): "
                         "octbench does not cut it to 8 bits; save it as 16-bit grayscale (or 8-bit) first")
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.seek(frame)
            image.load()  # decodes now, so a truncated file fails here rather than later
            if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
                return np.asarray(image)
            return np.asarray(image.convert("L"))
    except UnidentifiedImageError:
        raise ValueError("cannot be decoded: not an image format Pillow reads (is it truncated or not an "
                         "image?)") from None
    except (OSError, EOFError, Image.DecompressionBombError, SyntaxError) as error:
        raise ValueError(f"cannot be decoded ({error}); is it truncated or not an image?") from None


def to_gray(pixels: np.ndarray) -> np.ndarray:
    """(h, w) from gray or colour; colour of more than 8 bits per sample is refused."""
    if pixels.ndim == 2:
        return pixels
    if pixels.ndim == 3 and pixels.shape[-1] in (3, 4):
        if pixels.dtype != np.uint8:
            bits = 8 * pixels.dtype.itemsize * pixels.shape[-1]
            raise ValueError(f"{bits}-bit colour ({pixels.shape[-1]} samples of {pixels.dtype}): octbench does not "
                             "cut it to 8 bits; save it as 16-bit grayscale (or 8-bit) first")
        return np.round(pixels[..., :3] @ LUMINANCE).astype(np.uint8)
    raise ValueError(f"a frame of shape {pixels.shape} is not a 2-D B-scan")


def to_8bit(gray: np.ndarray, rule: PixelRule) -> np.ndarray:
    """8-bit stays as is; anything wider is mapped by the rule."""
    if gray.dtype == np.uint8:
        return gray
    if gray.dtype == bool:
        return gray.astype(np.uint8) * 255
    values = gray.astype(np.float64)
    if not np.isfinite(values).all():
        raise ValueError("holds NaN or infinite intensities")
    low, high = rule.intensity_range
    if rule.intensity == "percentile":
        low, high = np.percentile(values, [low, high])
    if high <= low:
        raise ValueError(f"constant image under the {rule.intensity} rule (low {low:g} = high {high:g}): an empty "
                         "or blank B-scan")
    return np.round(np.clip((values - low) / (high - low), 0.0, 1.0) * 255).astype(np.uint8)


def fit(gray: np.ndarray, rule: PixelRule) -> np.ndarray:
    """(size, size) by the rule's resize mode."""
    size, (height, width) = rule.size, gray.shape
    image = Image.fromarray(gray)
    if rule.resize == "squash" or height == width:
        return np.asarray(image.resize((size, size), Image.Resampling.BILINEAR) if gray.shape != (size, size)
                          else image, dtype=np.uint8)
    scale = size / (max if rule.resize == "pad" else min)(height, width)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    scaled = np.asarray(image.resize((new_w, new_h), Image.Resampling.BILINEAR), dtype=np.uint8)
    if rule.resize == "crop":
        top, left = (new_h - size) // 2, (new_w - size) // 2
        return scaled[top:top + size, left:left + size]
    canvas = np.zeros((size, size), dtype=np.uint8)
    top, left = (size - new_h) // 2, (size - new_w) // 2
    canvas[top:top + new_h, left:left + new_w] = scaled
    return canvas


def decode_frame(data: bytes, frame: int, rule: PixelRule) -> np.ndarray:
    """(size, size) uint8 of one frame; ValueError says what is wrong with it."""
    if not data:
        raise ValueError("cannot be decoded: the file is empty (0 bytes); was the export interrupted?")
    return fit_frame(raw_frame(data, frame), rule)


def fit_frame(pixels: np.ndarray, rule: PixelRule) -> np.ndarray:
    """(size, size) uint8 of one decoded frame (from a file here, or a vendor volume's B-scan)."""
    gray = to_8bit(to_gray(pixels), rule)
    low, high = int(gray.min()), int(gray.max())
    if low == high:  # a blank export or a failed acquisition carries no B-scan
        raise ValueError(f"constant image (every pixel is {low}): an empty or blank B-scan")
    return fit(gray, rule)
