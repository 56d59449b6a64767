"""The image store: decoding, the cache key, every bad file reported at once, and duplicates by hash."""

import os
import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from octbench.errors import OctbenchError
from octbench.images import image_store
from octbench.splits import leakage_problems, leakage_report


def write_png(path, values, **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(values, **kwargs).save(path)
    return str(path)


@pytest.fixture
def scans(tmp_path):
    rng = np.random.default_rng(0)
    return [write_png(tmp_path / "img" / f"{i}.png", rng.integers(0, 256, (40, 30), dtype=np.uint8))
            for i in range(3)]


def test_images_are_decoded_resized_and_memory_mapped(tmp_path, scans):
    rgb = tmp_path / "img" / "colour.tif"
    colour = np.full((20, 20, 3), 200, dtype=np.uint8)
    colour[:10] = 100
    Image.fromarray(colour).save(rgb)  # colour becomes gray
    images, hashes = image_store(sorted([*scans, str(rgb)]), 16, tmp_path / "cache")
    assert images.shape == (4, 16, 16) and images.dtype == np.uint8
    assert isinstance(images, np.memmap)
    assert images[-1][0, 0] == 100 and images[-1][-1, -1] == 200
    assert len(set(hashes)) == 4 and all(len(h) == 64 for h in hashes)


def test_cache_is_reused_then_rebuilt_when_an_image_or_the_size_changes(tmp_path, scans):
    cache = tmp_path / "cache"
    first, _ = image_store(scans, 16, cache)
    built = {p.name: p.stat().st_mtime_ns for p in cache.iterdir()}
    again, _ = image_store(scans, 16, cache)
    assert {p.name: p.stat().st_mtime_ns for p in cache.iterdir()} == built  # read, not rebuilt
    write_png(tmp_path / "img" / "1.png", np.tile(np.arange(30, dtype=np.uint8), (40, 1)))
    stat = os.stat(scans[1])
    os.utime(scans[1], ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # a later time, whatever the clock
    changed, _ = image_store(scans, 16, cache)
    assert changed[1][:, 0].max() < 5 and not np.array_equal(changed[1], first[1])
    assert np.array_equal(changed[0], first[0])
    resized, _ = image_store(scans, 8, cache)
    assert resized.shape == (3, 8, 8)
    assert not [p for p in cache.iterdir() if "partial" in p.name]


def test_every_bad_file_is_reported_at_once(tmp_path, scans):
    truncated = tmp_path / "img" / "truncated.png"
    shutil.copy(scans[0], truncated)
    truncated.write_bytes(truncated.read_bytes()[:200])
    wide = write_png(tmp_path / "img" / "wide.png", np.full((10, 10), 40000, dtype=np.uint16))
    text = tmp_path / "img" / "notes.png"
    text.write_text("not an image")
    blank = write_png(tmp_path / "img" / "blank.png", np.full((10, 10), 7, dtype=np.uint8))
    empty = tmp_path / "img" / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(OctbenchError) as error:
        image_store(sorted([*scans, str(truncated), wide, str(text), blank, str(empty)]), 16, tmp_path / "cache")
    message = str(error.value)
    assert "5 of 8 image files cannot be used" in message
    assert "blank.png: constant image (every pixel is 7)" in message
    assert "empty.png: cannot be decoded" in message
    assert "truncated.png: cannot be decoded" in message
    assert "wide.png: constant image under the percentile rule" in message
    assert "notes.png: cannot be decoded" in message
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").iterdir())  # nothing half-written


def test_missing_files_are_listed_first_twenty_then_a_count(tmp_path):
    paths = [str(tmp_path / f"missing{i}.png") for i in range(25)]
    with pytest.raises(OctbenchError) as error:
        image_store(paths, 16, tmp_path / "cache")
    message = str(error.value)
    assert "25 of 25 image files" in message and "missing0.png: no such file" in message
    assert "... and 5 more" in message and "--olives-root" in message


def test_byte_identical_images_across_splits_are_found_by_content_hash(tmp_path, scans):
    copy = tmp_path / "img" / "V2" / "copy.png"  # the same bytes under another visit, as on Zenodo
    copy.parent.mkdir()
    shutil.copy(scans[0], copy)
    table = pd.DataFrame({"sample_id": ["a", "b", "c", "d"], "patient": [1, 2, 3, 4],
                          "split": ["train", "train", "test", "test"], "path": [*scans, str(copy)]})
    report = leakage_report(table)
    assert report["patients_in_several_splits"] == []
    assert report["duplicate_images_across_splits"] == [
        {"sha256": report["duplicate_images_across_splits"][0]["sha256"], "splits": ["test", "train"],
         "sample_ids": ["a", "d"]}]
    assert "byte-identical" in leakage_problems(report)[0]
    same_split = table.assign(split="train")
    assert leakage_report(same_split)["duplicate_groups_within_one_split"] == 1
    assert leakage_problems(leakage_report(same_split)) == []
