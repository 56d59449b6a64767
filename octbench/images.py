"""The image store: decode a cohort's B-scans once into one memory-mapped uint8 `.npy`.

A B-scan is a file, or one page of a volume file (a multi-page TIFF): the store's entries are
(path, frame) pairs, in sorted order. `octbench/pixels.py` turns each into the benchmark's square
8-bit image by the cohort's intensity and resize rules. The cache is keyed by the entries, each
file's size and modification time, and those rules, so a changed image or rule rebuilds it; it is
written under a temporary name and renamed, so a killed build never leaves half a cache, and built
under a lock, so two processes never decode one entry twice. An entry damaged since (cut short by
a full disk or a copy) is named and rebuilt. Every file is checked before anything is kept, and
every problem is reported at once. A sha256 per B-scan (of the file, and of the page within a
volume) is recorded alongside, for the duplicate report of octbench/splits.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from octbench.cohort import Cohort
from octbench.errors import OctbenchError
from octbench.locks import exclusive
from octbench.pixels import PixelRule, decode_frame, fit_frame, frame_count, is_tiff
from octbench.vendor import VENDOR_FORMATS, available, is_vendor_file, page_hash, read_volume

PROBLEMS_LISTED = 20
Entry = tuple[str, int]  # (file path, frame within the file)


def decode_bscan(data: bytes, size: int | PixelRule) -> np.ndarray:
    """(size, size) uint8 from a one-frame image file; ValueError says what is wrong with it."""
    return decode_frame(data, 0, size if isinstance(size, PixelRule) else PixelRule(size))


def entries_of(items) -> list[Entry]:
    """Plain paths stand for their first (only) frame."""
    return [(item, 0) if isinstance(item, str) else (str(item[0]), int(item[1])) for item in items]


def cache_key(entries: list[Entry], rule: PixelRule) -> str:
    """Changes when any entry, any file's size or modification time, or the pixel rule changes."""
    files = []
    for path, frame in entries:
        stat = os.stat(path)
        files.append([path, frame, stat.st_size, stat.st_mtime_ns])
    return hashlib.sha256(json.dumps({"files": files, **rule.key()}).encode()).hexdigest()[:16]


def problem_report(problems: list[str], total: int) -> str:
    listed = "\n  ".join(problems[:PROBLEMS_LISTED])
    more = f"\n  ... and {len(problems) - PROBLEMS_LISTED} more" if len(problems) > PROBLEMS_LISTED else ""
    return (f"{len(problems)} of {total} image files cannot be used; fix or remove them (or the rows naming "
            f"them) and run again:\n  {listed}{more}")


def frame_hash(data: bytes, frame: int, frames: int) -> str:
    """The file's sha256; for a page of a volume, of the file and the page number, so two copies
    of one volume match page by page and the pages of one volume do not match each other."""
    digest = hashlib.sha256(data)
    if frames > 1:
        digest.update(f"#frame{frame}".encode())
    return digest.hexdigest()


def build_cache(entries: list[Entry], rule: PixelRule, target: Path, workers: int,
                whole_files: frozenset = frozenset()) -> list[str]:
    """Decode every entry into `target` (.npy); returns their sha256 in the same order. Entries
    in `whole_files` stand for a whole file, which must then hold one B-scan."""
    partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
    size = rule.size
    images = np.lib.format.open_memmap(partial, mode="w+", dtype=np.uint8, shape=(len(entries), size, size))
    hashes = [""] * len(entries)

    def decode(index: int) -> str | None:
        path, frame = entries[index]
        try:
            if is_vendor_file(path):
                volume = read_volume(path)
                frames = len(volume)
            else:
                data = Path(path).read_bytes()
                frames = frame_count(data)
            if frames > 1 and (path, frame) in whole_files:
                raise ValueError(f"holds {frames} B-scans (a volume) where one was expected; list it as a volume "
                                 "(one row per file, expanded to its pages) or name a page with a slice column")
            if is_vendor_file(path):
                if frame >= frames:
                    raise ValueError(f"has {frames} B-scans, no B-scan {frame}")
                images[index] = fit_frame(volume[frame], rule)
                hashes[index] = page_hash(volume[frame])
                return None
            images[index] = decode_frame(data, frame, rule)
        except (OSError, ValueError) as error:
            return f"{path}{f' (page {frame})' if frame else ''}: {error}"
        hashes[index] = frame_hash(data, frame, frames)
        return None

    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:  # Pillow decodes outside the GIL
            problems = [p for p in pool.map(decode, range(len(entries))) if p]
        if problems:
            raise OctbenchError(problem_report(problems, len(entries)))
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


def image_store(items, size: int | PixelRule, cache_dir: Path, workers: int | None = None) -> tuple[np.ndarray, list]:
    """Memory-mapped (n, size, size) uint8 images of the sorted unique entries (paths, or (path,
    frame) pairs), and their sha256."""
    items = list(items)
    entries = entries_of(items)
    rule = size if isinstance(size, PixelRule) else PixelRule(size)
    size = rule.size
    missing = [f"{p}: no such file" for p in sorted({p for p, _ in entries}) if not Path(p).is_file()]
    if missing:
        raise OctbenchError(problem_report(missing, len(entries)) + "\n(is the image root right? "
                            "--olives-root / --image-root / [cohort] image_root)")
    key = cache_key(entries, rule)
    folder = Path(cache_dir)
    folder.mkdir(parents=True, exist_ok=True)
    target, hash_file = folder / f"images-{key}.npy", folder / f"images-{key}.sha256.json"
    store, _ = cached_store(target, hash_file, len(entries), size)
    if store is not None:  # the usual case: no lock taken, so a read-only cache serves too
        return store
    # One process builds an entry; another that asks for it meanwhile waits, then reads it.
    with exclusive(folder / f"images-{key}.lock", f"the image cache {target}", wait=True):
        store, damage = cached_store(target, hash_file, len(entries), size)
        if store is not None:
            return store
        if damage:
            print(f"octbench: image cache {target} is damaged ({damage}); rebuilding it", file=sys.stderr)
        whole_files = frozenset((item, 0) for item in items if isinstance(item, str))
        hashes = build_cache(entries, rule, target, workers or min(8, os.cpu_count() or 1), whole_files)
        partial = hash_file.with_name(f"{hash_file.name}.partial-{os.getpid()}")
        partial.write_text(json.dumps(hashes))
        os.replace(partial, hash_file)
    return np.load(target, mmap_mode="r"), hashes


def expand_volumes(table: pd.DataFrame) -> pd.DataFrame:
    """One row per B-scan. A row whose file is a volume (several pages) becomes one row per page,
    with `slice` its page index and the row's labels (given per volume) on every page; a row that
    names its page in a `slice` column (labels given per B-scan) stays one row, that page. The
    B-scans of one-page files are frame 0."""
    counts = {path: volume_pages(path) for path in table["path"].unique()}
    pages = table["path"].map(counts)
    if (pages <= 1).all():
        return table.assign(frame=0)
    named = table["slice"].notna() if "slice" in table else pd.Series(False, index=table.index)
    single = table[pages <= 1].assign(frame=0)
    per_scan = table[(pages > 1) & named].copy()
    per_scan["frame"] = per_scan["slice"].astype(int) if len(per_scan) else 0
    limit = per_scan["path"].map(counts).astype(int)
    bad = per_scan[(per_scan["frame"] < 0) | (per_scan["frame"] >= limit)]
    if len(bad):
        row = bad.iloc[0]
        raise OctbenchError(f"{row['path']}: slice {row['frame']} is not one of its {counts[row['path']]} pages "
                            f"(0-based; {len(bad)} rows like it); fix the table's slice column")
    volumes = table[(pages > 1) & ~named]
    expanded = volumes.loc[volumes.index.repeat(pages[volumes.index])].copy()
    expanded["frame"] = expanded.groupby(level=0).cumcount().to_numpy()
    expanded["slice"] = expanded["frame"]
    pages_rows = pd.concat([per_scan, expanded])
    pages_rows["sample_id"] = pages_rows["sample_id"].astype(str) + "#" + pages_rows["frame"].astype(str)
    return pd.concat([single, pages_rows]).reset_index(drop=True)


def volume_pages(path: str) -> int:
    """Pages of a TIFF volume, read from its headers only; B-scans of a vendor volume (eyepy);
    other formats hold one B-scan. A bad file is reported when decoded."""
    if is_vendor_file(path):
        try:
            return len(read_volume(path))
        except ValueError:
            return 1
    try:
        with open(path, "rb") as file:
            if not is_tiff(file.read(4)):
                return 1
        import tifffile

        with tifffile.TiffFile(path) as tiff:
            return len(tiff.pages)
    except (OSError, ValueError):
        return 1


def check_vendor_readers(paths: pd.Series) -> None:
    """A cohort of vendor volumes that cannot be read here fails in one line naming what to install."""
    suffixes = {Path(p).suffix.lower() for p in paths.unique() if is_vendor_file(p)}
    if not suffixes:
        return
    readable = available()
    missing = sorted(s for s in suffixes if not readable[s])
    if not missing:
        return
    formats = ", ".join(f"{VENDOR_FORMATS[s][0]} ({s})" for s in missing)
    needs = sorted({VENDOR_FORMATS[s][2] for s in missing} - {""})
    also = f", and {' and '.join(needs)} for {'them' if len(missing) > 1 else 'it'}" if needs else ""
    raise OctbenchError(f"the cohort holds {formats} volumes, which octbench reads through eyepy: install the vendor "
                        f"extra, pip install 'octbench[vendor]'{also}")


def cohort_with_images(table: pd.DataFrame, size: int | PixelRule, cache_dir: Path) -> Cohort:
    """A source's table (with `path`) plus its decoded images: `image` indexes the store, `frame`
    is the page of a volume file."""
    check_vendor_readers(table["path"])
    table = expand_volumes(table)
    entries = sorted(set(zip(table["path"], table["frame"].astype(int))))
    images, hashes = image_store(entries, size, cache_dir)
    index = {entry: i for i, entry in enumerate(entries)}
    table = table.assign(image=[index[(p, int(f))] for p, f in zip(table["path"], table["frame"])])
    table["image"] = table["image"].astype(np.int64)
    table["content_hash"] = np.asarray(hashes, dtype=object)[table["image"].to_numpy()]
    return Cohort(table=table.reset_index(drop=True), images=images)
