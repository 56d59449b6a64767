"""Volumes, wide intensities and non-square B-scans: nothing dropped, truncated or squashed silently."""

import io
import struct
import zlib

import numpy as np
import pandas as pd
import pytest
import tifffile
from PIL import Image

from octbench.benchmark import CohortSpec, ImageSpec
from octbench.errors import OctbenchError
from octbench.images import cohort_with_images, image_store
from octbench.pixels import PixelRule, decode_frame
from octbench.sources.folder import folder_cohort_table


def volume(rng, pages: int, shape=(24, 24), dtype=np.uint8) -> np.ndarray:
    high = 256 if dtype == np.uint8 else 65536
    return rng.integers(0, high, (pages, *shape), dtype=dtype)


def png_16bit_rgb(path, height=8, width=8) -> None:
    """A 48-bit RGB PNG, written by hand: Pillow cannot write one."""
    rows = np.random.default_rng(0).integers(0, 65536, (height, width, 3), dtype=np.uint16).astype(">u2")
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
                     + chunk(b"IEND", b""))


def test_a_multi_page_tiff_gives_one_b_scan_per_page_in_the_folder_source(tmp_path):
    """OCT2017's layout with each patient's B-scans stored as one multi-page TIFF."""
    rng = np.random.default_rng(0)
    pages = {}
    for cls, patients in (("CNV", (11, 12, 13)), ("NORMAL", (21, 22, 23))):
        for patient in patients:
            (tmp_path / cls).mkdir(exist_ok=True)
            pages[patient] = volume(rng, 5)
            tifffile.imwrite(tmp_path / cls / f"{cls}-{patient}.tif", pages[patient])
    spec = CohortSpec(source="folder", image_root=str(tmp_path), image_size=24,
                      split={"train": 0.34, "val": 0.33, "test": 0.33})
    rule = PixelRule.of(spec.image_size, ImageSpec())
    cohort = cohort_with_images(folder_cohort_table(spec), rule, tmp_path / "cache")
    table = cohort.table
    assert len(table) == 30 and sorted(table["slice"].unique()) == [0, 1, 2, 3, 4]
    assert table["sample_id"].is_unique
    # Labels given per volume (its class folder) hold for each of its pages.
    assert table.groupby("patient")["class"].nunique().max() == 1
    for _, row in table.iterrows():
        assert np.array_equal(cohort.images[row["image"]], pages[row["patient"]][int(row["slice"])])
    # The pages of one volume are not duplicates of each other.
    assert table["content_hash"].is_unique


def test_a_slice_column_names_one_page_of_a_volume(tmp_path):
    rng = np.random.default_rng(1)
    stack = volume(rng, 7)
    tifffile.imwrite(tmp_path / "eye.tif", stack)
    table = pd.DataFrame({"sample_id": ["a", "b"], "path": [str(tmp_path / "eye.tif")] * 2, "slice": [2, 6],
                          "patient": [1, 1]})
    cohort = cohort_with_images(table, 24, tmp_path / "cache")
    assert len(cohort.table) == 2
    for _, row in cohort.table.iterrows():
        assert np.array_equal(cohort.images[row["image"]], stack[int(row["slice"])])
    with pytest.raises(OctbenchError, match=r"eye.tif: slice 9 is not one of its 7 pages"):
        cohort_with_images(table.assign(slice=[2, 9]), 24, tmp_path / "cache")


def test_a_volume_where_one_b_scan_is_expected_is_refused(tmp_path):
    tifffile.imwrite(tmp_path / "stack.tif", volume(np.random.default_rng(2), 49))
    with pytest.raises(OctbenchError, match=r"stack.tif: holds 49 B-scans \(a volume\) where one was expected"):
        image_store([str(tmp_path / "stack.tif")], 16, tmp_path / "cache")


def test_16_bit_b_scans_are_mapped_by_the_recorded_rule(tmp_path):
    ramp = np.linspace(1000, 3000, 32 * 32).reshape(32, 32).astype(np.uint16)
    tifffile.imwrite(tmp_path / "wide.tif", ramp)
    Image.fromarray(ramp).save(tmp_path / "wide.png")  # Pillow's I;16
    for name in ("wide.tif", "wide.png"):
        data = (tmp_path / name).read_bytes()
        stretched = decode_frame(data, 0, PixelRule(32, "percentile", (0.0, 100.0)))
        assert stretched.min() == 0 and stretched.max() == 255  # the full range, not its high byte
        window = decode_frame(data, 0, PixelRule(32, "window", (0.0, 4000.0)))
        assert 60 <= window.min() <= 66 and 188 <= window.max() <= 193
    # The rule is part of the cache's key: another rule, another entry.
    a, _ = image_store([str(tmp_path / "wide.tif")], PixelRule(32, "percentile", (0.0, 100.0)), tmp_path / "c")
    b, _ = image_store([str(tmp_path / "wide.tif")], PixelRule(32, "window", (0.0, 4000.0)), tmp_path / "c")
    assert not np.array_equal(a, b) and len(list((tmp_path / "c").glob("images-*.npy"))) == 2


def test_48_bit_colour_is_refused_not_truncated(tmp_path):
    png_16bit_rgb(tmp_path / "deep.png")
    tifffile.imwrite(tmp_path / "deep.tif", np.full((8, 8, 3), 40000, dtype=np.uint16), photometric="rgb")
    with pytest.raises(OctbenchError) as error:
        image_store([str(tmp_path / "deep.png"), str(tmp_path / "deep.tif")], 8, tmp_path / "cache")
    message = str(error.value)
    assert "deep.png: 16-bit RGB PNG (48-bit colour)" in message and "does not cut it to 8 bits" in message
    assert "deep.tif: 48-bit colour" in message


@pytest.mark.parametrize("mode", ["pad", "crop", "squash"])
def test_a_non_square_b_scan_keeps_its_aspect_ratio_unless_told(mode):
    wide = np.full((32, 96), 200, dtype=np.uint8)  # a bright B-scan three times wider than deep
    wide[:, ::7] = 190
    buffer = io.BytesIO()
    Image.fromarray(wide).save(buffer, format="PNG")
    square = decode_frame(buffer.getvalue(), 0, PixelRule(48, resize=mode))
    assert square.shape == (48, 48)
    bright_rows = int((square.mean(axis=1) > 100).sum())
    expected = {"pad": 16, "crop": 48, "squash": 48}[mode]  # pad: 96 -> 48 wide, so 32 -> 16 deep
    assert bright_rows == expected
    if mode == "pad":
        assert square[:10].max() == 0 and square[-10:].max() == 0  # black above and below, like the vitreous
