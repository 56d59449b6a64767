"""The image store: decode a cohort's B-scans once into one memory-mapped uint8 `.npy`.

Files are read as 8-bit grayscale (.tif, .png, .jpeg; colour is converted to gray), resized to the
benchmark's square image size, and stacked in the order of their sorted paths. The cache is keyed
by those paths, each file's size and modification time, and the image size, so a changed image or
size rebuilds it; it is written under a temporary name and renamed, so a killed build never leaves
half a cache, and built under a lock, so two processes never decode one entry twice. An entry
damaged since (cut short by a full disk or a copy) is named and rebuilt. Every file is checked
before anything is kept, and every problem is reported at once. The sha256 of each file is
recorded alongside, for the duplicate report of octbench/splits.py.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError

from octbench.cohort import Cohort
from octbench.errors import OctbenchError
from octbench.locks import exclusive

PROBLEMS_LISTED = 20
# Modes Pillow gives images with more than 8 bits per sample: refused rather than rescaled,
# because how to window a 16-bit scan into 8 bits is the user's call, not octbench's.
WIDE_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I", "F"}


def decode_bscan(data: bytes, size: int) -> np.ndarray:
    """(size, size) uint8 from an encoded 8-bit image; ValueError says what is wrong with it."""
    if not data:
        raise ValueError("cannot be decoded: the file is empty (0 bytes); was the export interrupted?")
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()  # decodes now, so a truncated file fails here rather than later
            if image.mode in WIDE_MODES:
                raise ValueError(f"{image.mode} image (more than 8 bits per pixel): octbench reads 8-bit B-scans "
                                 "and does not guess an intensity window; convert it to 8-bit first")
            gray = image.convert("L")
            low, high = gray.getextrema()
            if low == high:  # a blank export or a failed acquisition carries no B-scan
                raise ValueError(f"constant image (every pixel is {low}): an empty or blank B-scan")
            if gray.size != (size, size):
                gray = gray.resize((size, size), Image.Resampling.BILINEAR)
            return np.asarray(gray, dtype=np.uint8)
    except ValueError:
        raise
    except UnidentifiedImageError:
        raise ValueError("cannot be decoded: not an image format Pillow reads (is it truncated or not an "
                         "image?)") from None
    except (OSError, Image.DecompressionBombError, SyntaxError) as error:
        raise ValueError(f"cannot be decoded ({error}); is it truncated or not an image?") from None


def cache_key(paths: list[str], size: int) -> str:
    """Changes when any path, any file's size or modification time, or the image size changes."""
    entries = []
    for path in paths:
        stat = os.stat(path)
        entries.append([path, stat.st_size, stat.st_mtime_ns])
    return hashlib.sha256(json.dumps({"files": entries, "size": size}).encode()).hexdigest()[:16]


def problem_report(problems: list[str], total: int) -> str:
    listed = "\n  ".join(problems[:PROBLEMS_LISTED])
    more = f"\n  ... and {len(problems) - PROBLEMS_LISTED} more" if len(problems) > PROBLEMS_LISTED else ""
    return (f"{len(problems)} of {total} image files cannot be used; fix or remove them (or the rows naming "
            f"them) and run again:\n  {listed}{more}")


def build_cache(paths: list[str], size: int, target: Path, workers: int) -> list[str]:
    """Decode every file into `target` (.npy); returns the files' sha256 in the same order."""
    partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
    images = np.lib.format.open_memmap(partial, mode="w+", dtype=np.uint8, shape=(len(paths), size, size))
    hashes = [""] * len(paths)

    def decode(index: int) -> str | None:
        path = paths[index]
        try:
            data = Path(path).read_bytes()
            images[index] = decode_bscan(data, size)
        except (OSError, ValueError) as error:
            return f"{path}: {error}"
        hashes[index] = hashlib.sha256(data).hexdigest()
        return None

    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:  # Pillow decodes outside the GIL
            problems = [p for p in pool.map(decode, range(len(paths))) if p]
        if problems:
            raise OctbenchError(problem_report(problems, len(paths)))
        images.flush()
        os.replace(partial, target)  # POSIX renames an open memory-mapped file safely
    finally:
        partial.unlink(missing_ok=True)
    return hashes


def cached_store(target: Path, hash_file: Path, count: int, size: int) -> tuple[tuple | None, str | None]:
    """The cache entry's (images, hashes) when it is whole; else None and what is wrong with it
    (None when it is simply not there). A cache cut short by a full disk or a copy fails here with
    its own words rather than later with a bare mmap error."""
    if not (target.exists() and hash_file.exists()):
        return None, None
    try:
        images = np.load(target, mmap_mode="r")
        hashes = json.loads(hash_file.read_text())
    except (OSError, ValueError, EOFError) as error:
        return None, str(error) or type(error).__name__
    if images.shape != (count, size, size) or images.dtype != np.uint8:
        return None, f"it holds {images.dtype} images of shape {images.shape}, not {count} of {size}x{size} uint8"
    if not isinstance(hashes, list) or len(hashes) != count:
        return None, f"{hash_file.name} does not list the {count} images' hashes"
    return (images, hashes), None


def image_store(paths: list[str], size: int, cache_dir: Path, workers: int | None = None) -> tuple[np.ndarray, list]:
    """Memory-mapped (n, size, size) uint8 images of the sorted unique `paths`, and their sha256."""
    missing = [f"{p}: no such file" for p in paths if not Path(p).is_file()]
    if missing:
        raise OctbenchError(problem_report(missing, len(paths)) + "\n(is the image root right? "
                            "--olives-root / --image-root / [cohort] image_root)")
    key = cache_key(paths, size)
    folder = Path(cache_dir)
    folder.mkdir(parents=True, exist_ok=True)
    target, hash_file = folder / f"images-{key}.npy", folder / f"images-{key}.sha256.json"
    store, _ = cached_store(target, hash_file, len(paths), size)
    if store is not None:  # the usual case: no lock taken, so a read-only cache serves too
        return store
    # One process builds an entry; another that asks for it meanwhile waits, then reads it.
    with exclusive(folder / f"images-{key}.lock", f"the image cache {target}", wait=True):
        store, damage = cached_store(target, hash_file, len(paths), size)
        if store is not None:
            return store
        if damage:
            print(f"octbench: image cache {target} is damaged ({damage}); rebuilding it", file=sys.stderr)
        hashes = build_cache(paths, size, target, workers or min(8, os.cpu_count() or 1))
        partial = hash_file.with_name(f"{hash_file.name}.partial-{os.getpid()}")
        partial.write_text(json.dumps(hashes))
        os.replace(partial, hash_file)
    return np.load(target, mmap_mode="r"), hashes


def cohort_with_images(table: pd.DataFrame, size: int, cache_dir: Path) -> Cohort:
    """A source's table (with `path`) plus its decoded images: `image` indexes the store."""
    paths = sorted(table["path"].unique())
    images, hashes = image_store(paths, size, cache_dir)
    index = {path: i for i, path in enumerate(paths)}
    table = table.assign(image=table["path"].map(index).astype(np.int64))
    table["content_hash"] = np.asarray(hashes, dtype=object)[table["image"].to_numpy()]
    return Cohort(table=table.reset_index(drop=True), images=images)
