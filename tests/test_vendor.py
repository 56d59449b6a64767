"""Vendor OCT volumes through eyepy (the `vendor` extra): each B-scan of a volume becomes a row.

How each format is tested:
- Duke .mat: written by the test with scipy.io.savemat in the Duke layout, read by eyepy's own
  import_duke_mat, run end to end.
- HEYEX .vol: written by the test with eyepy's own definition of the format (vol_format.build),
  read by eyepy's import_heyex_vol, run end to end. (eyepy 0.21's HeVolWriter cannot build a file:
  it passes datetimes where the format's date adapter parses ISO strings, counts a B-scan's layers
  before they exist and iterates their names as layers; and the adapter gives the 8-byte exam time
  a float, which the test rounds.)
- HEYEX .e2e, .xml, Topcon .fda, RETOUCH .mhd: nothing here writes them, so octbench's reading is
  tested on the structure eyepy parses them into: eyepy's import function is replaced by one
  returning an eyepy EyeVolume the test builds.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import file_benchmark

from octbench import vendor
from octbench.cli import main
from octbench.pixels import PixelRule, fit_frame
from octbench.sources.folder import folder_cohort_table

eyepy = pytest.importorskip("eyepy", reason="the vendor extra (eyepy) is not installed: pip install '.[vendor]'")
scipy_io = pytest.importorskip("scipy.io")

SIZE = 32


def duke_mat(path: Path, volume: np.ndarray, age: int = 70) -> None:
    """A .mat in the layout of the Duke AMD / control SD-OCT set: images (H, W, n), layerMaps (n, W, 3)."""
    n, _, width = volume.shape
    layers = np.stack([np.full((n, width), depth, dtype=float) for depth in (5.0, 15.0, 20.0)], axis=-1)
    scipy_io.savemat(path, {"images": np.moveaxis(volume, 0, -1).astype(np.float64), "layerMaps": layers,
                            "Age": np.array([[age]])})


def eye_volume(data: np.ndarray):
    """An eyepy EyeVolume, as eyepy's readers return them."""
    from eyepy.core.eyemeta import EyeBscanMeta, EyeVolumeMeta

    bscans = [EyeBscanMeta(start_pos=(0.0, 0.1 * i), end_pos=(3.0, 0.1 * i), pos_unit="mm")
              for i in range(len(data))]
    return eyepy.EyeVolume(data=data, meta=EyeVolumeMeta(scale_z=0.1, scale_x=0.01, scale_y=0.004,
                                                         scale_unit="mm", bscan_meta=bscans))


def band_volume(rng, cls: int, pages: int = 4, height: int = 40, width: int = 30) -> np.ndarray:
    """Noise with a bright band whose depth tells the class."""
    volume = rng.uniform(0, 80, (pages, height, width))
    row = 5 + 12 * cls
    volume[:, row:row + 4] = rng.uniform(160, 255, (pages, 4, width))
    return volume


def benchmark_file(path: Path, root: Path) -> Path:
    return file_benchmark(path, "vendor volumes", ["raw-pixels"],
                          f'source = "folder"\nimage_root = "{root}"\nimage_size = {SIZE}\n'
                          "split = { train = 0.5, val = 0.25, test = 0.25 }")


def run_folder(tmp_path: Path, root: Path) -> dict:
    bench = benchmark_file(tmp_path / "vendor.toml", root)
    out = tmp_path / "out"
    assert main(["run", "--benchmark", str(bench), "--method", "raw-pixels", "--out", str(out),
                 "--cache-dir", str(tmp_path / "cache"), "--no-progress"]) == 0
    (folder,) = (out / "runs").iterdir()
    return json.loads((folder / "metrics.json").read_text())


def test_a_duke_mat_volume_gives_one_b_scan_per_page_in_eyepys_order(tmp_path):
    rng = np.random.default_rng(0)
    volume = band_volume(rng, 0, pages=6)
    duke_mat(tmp_path / "AMD-1.mat", volume)
    read = vendor.read_volume_uncached(tmp_path / "AMD-1.mat")
    assert read.shape == (6, 40, 30) and np.allclose(read, volume)
    assert eyepy.import_duke_mat(tmp_path / "AMD-1.mat").data.shape == read.shape
    (tmp_path / "oct" / "AMD").mkdir(parents=True)
    duke_mat(tmp_path / "oct" / "AMD" / "AMD-1.mat", volume)
    from octbench.images import cohort_with_images
    cohort = cohort_with_images(folder_cohort_table_of(tmp_path / "oct"), PixelRule(SIZE), tmp_path / "cache")
    assert len(cohort.table) == 6 and sorted(cohort.table["slice"]) == list(range(6))
    assert cohort.table["content_hash"].is_unique
    # Float intensities go through the benchmark's rule (percentile, padded to a square), page by page.
    for page in (0, 5):
        stored = cohort.images[cohort.table.loc[cohort.table["slice"] == page, "image"].iloc[0]]
        assert np.array_equal(stored, fit_frame(volume[page], PixelRule(SIZE)))


def folder_cohort_table_of(root: Path) -> pd.DataFrame:
    """A one-class folder cannot be a task; the folder reader's table of it is enough here."""
    from octbench.benchmark import CohortSpec

    (root / "NORMAL").mkdir(exist_ok=True)
    duke_mat(root / "NORMAL" / "NORMAL-2.mat", band_volume(np.random.default_rng(5), 1, pages=6))
    table = folder_cohort_table(CohortSpec(source="folder", image_root=str(root),
                                           split={"train": 0.5, "val": 0.25, "test": 0.25}))
    return table[table["class"] == "AMD"]


def test_a_duke_mat_cohort_runs_end_to_end(tmp_path):
    rng = np.random.default_rng(1)
    for cls, name in enumerate(("AMD", "CONTROL")):
        (tmp_path / "duke" / name).mkdir(parents=True)
        for patient in range(8):
            duke_mat(tmp_path / "duke" / name / f"{name}-{100 * cls + patient}.mat", band_volume(rng, cls))
    metrics = run_folder(tmp_path, tmp_path / "duke")
    assert list(metrics["auroc"]) == ["AMD", "CONTROL"] and metrics["task"]["kind"] == "multiclass"
    assert metrics["n_test_scans"] % 4 == 0 and metrics["n_test_scans"] >= 8  # whole volumes of 4 B-scans
    assert metrics["mean_auroc"] > 0.9


@pytest.fixture
def vol_writer(monkeypatch):
    """Writes a HEYEX VOL export with eyepy's own format definition; raw intensities in [0, 1]."""
    from eyepy.io import utils as eyepy_io
    from eyepy.io.he.vol_reader import vol_format

    int_date = type(eyepy_io.IntDate)  # the 8-byte exam time: eyepy's adapter gives it a float
    encode = int_date._encode
    monkeypatch.setattr(int_date, "_encode", lambda self, obj, context, path: round(encode(self, obj, context, path)))

    def write(path: Path, volume: np.ndarray) -> None:
        n, height, width = volume.shape
        date = "2020-01-01T00:00:00"
        bscans = [dict(bscan_hdr_size=256, start_x=0.0, start_y=0.1 * i, end_x=3.0, end_y=0.1 * i, num_seg=0,
                       quality=30.0, shift=0, iv_transformation=[0] * 6,
                       layer_segmentations=np.zeros((0, width), np.float32), data=volume[i].astype(np.float32))
                  for i in range(n)]
        path.write_bytes(vol_format.build(dict(
            size_x=width, size_y=height, n_bscans=n, scale_x=0.01, scale_y=0.004, distance=0.1, size_x_slo=64,
            size_y_slo=64, scale_x_slo=0.01, scale_y_slo=0.01, field_size_slo=30, scan_focus=0.0,
            scan_position="OD", exam_time=date, scan_pattern=1, id="exam", reference_id="exam", pid=1,
            patient_id="p", dob=date, vid=0, visit_id="visit", visit_date=date, grid_type=0, grid_offset=0,
            grid_type1=0, grid_offset1=0, prog_id="octbench tests", localizer=np.zeros((64, 64), np.uint8),
            bscans=bscans)))

    return write


def test_a_heyex_vol_written_here_is_read_by_eyepy_page_by_page(tmp_path, vol_writer):
    raw = np.random.default_rng(3).uniform(0.0, 0.5, (5, 40, 30))
    vol_writer(tmp_path / "eye.vol", raw)
    read = vendor.read_volume_uncached(tmp_path / "eye.vol")
    assert read.shape == (5, 40, 30) and read.dtype == np.uint8  # eyepy's HEYEX display transform
    assert np.array_equal(read, eyepy.import_heyex_vol(tmp_path / "eye.vol").data)
    assert len({page.tobytes() for page in read}) == 5


def test_a_heyex_vol_cohort_runs_end_to_end(tmp_path, vol_writer):
    rng = np.random.default_rng(2)
    for cls, name in enumerate(("CNV", "NORMAL")):
        (tmp_path / "vol" / name).mkdir(parents=True)
        for patient in range(8):
            vol_writer(tmp_path / "vol" / name / f"{name}-{100 * cls + patient}.vol", band_volume(rng, cls) / 512)
    metrics = run_folder(tmp_path, tmp_path / "vol")
    assert list(metrics["auroc"]) == ["CNV", "NORMAL"] and metrics["n_test_scans"] % 4 == 0
    assert metrics["mean_auroc"] > 0.9


@pytest.mark.parametrize("suffix, function, given", [
    (".vol", "import_heyex_vol", "file"), (".e2e", "import_heyex_e2e", "file"), (".xml", "import_heyex_xml", "file"),
    (".fda", "import_topcon_fda", "file"), (".mat", "import_duke_mat", "file"), (".mhd", "import_retouch", "folder")])
def test_each_vendor_format_is_read_by_its_eyepy_function(tmp_path, monkeypatch, suffix, function, given):
    data = np.arange(3 * 8 * 6, dtype=np.uint16).reshape(3, 8, 6)  # RETOUCH's Heidelberg volumes: 16-bit
    path = tmp_path / f"oct{suffix}"
    path.write_bytes(b"x")
    calls = []
    monkeypatch.setattr(eyepy, function, lambda p: calls.append(Path(p)) or eye_volume(data))
    assert np.array_equal(vendor.read_volume_uncached(path), data)
    assert calls == [path if given == "file" else tmp_path]


def test_a_damaged_vendor_file_is_named_with_eyepys_reason(tmp_path):
    (tmp_path / "bad.mat").write_bytes(b"not a mat file")
    with pytest.raises(ValueError, match=r"cannot be read as a Duke MAT file by eyepy"):
        vendor.read_volume_uncached(tmp_path / "bad.mat")


def test_without_eyepy_a_vendor_cohort_fails_in_one_line_naming_the_extra(tmp_path, monkeypatch, capsys):
    for cls in ("CNV", "NORMAL"):
        (tmp_path / "vol" / cls).mkdir(parents=True)
        for patient in range(4):
            (tmp_path / "vol" / cls / f"{cls}-{patient}.vol").write_bytes(b"x")
    monkeypatch.setattr(vendor, "available", lambda: dict.fromkeys(vendor.VENDOR_FORMATS, False))
    import octbench.images
    monkeypatch.setattr(octbench.images, "available", vendor.available)
    bench = benchmark_file(tmp_path / "vendor.toml", tmp_path / "vol")
    assert main(["run", "--benchmark", str(bench), "--method", "raw-pixels", "--out", str(tmp_path / "out"),
                 "--cache-dir", str(tmp_path / "cache"), "--no-progress"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "HEYEX VOL (.vol)" in error and "pip install 'octbench[vendor]'" in error
    assert not (tmp_path / "out").exists()


def test_list_shows_the_sources_and_which_formats_can_be_read_here(capsys, monkeypatch):
    monkeypatch.setattr(vendor, "available", lambda: {**dict.fromkeys(vendor.VENDOR_FORMATS, True), ".mhd": False})
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    sources = out[out.index("sources ([cohort] source):"):out.index("image formats:")]
    assert all(f"  {name} " in sources for name in ("simulated", "olives", "table", "folder"))
    assert "multi-page TIFF is a volume" in out
    lines = {line.split()[0]: line for line in out[out.index("image formats:"):].splitlines()[2:]}
    assert "eyepy.import_heyex_vol" in lines[".vol"] and lines[".vol"].endswith("available")
    assert lines[".mhd"].endswith("needs pip install itk")
