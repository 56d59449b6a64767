"""Tests of the simulated B-scan renderer: determinism, nuisance, and visible, labelled signs."""

import numpy as np
import pandas as pd
import pytest

from octbench import BIOMARKERS
from octbench.simulate.render import (
    draw_nuisance,
    render_bscan,
    render_scans,
    scan_geometry,
)

SIZE = 64


def make_scan(**overrides) -> dict:
    """A healthy central scan of a normal eye; keyword arguments override any field."""
    scan = {"slice": 24, "eye_seed": 3, "laterality": "OD", "CST": 275, "thickness": 275.0,
            "severity": 1.0, "scan_seed": 0}
    scan.update({name: 0 for name in BIOMARKERS})
    scan.update(overrides)
    return scan


def render(scan: dict, seed: int, size: int = SIZE) -> np.ndarray:
    return render_bscan(scan, size, np.random.default_rng(seed))


def geometry(scan: dict, seed: int, size: int = SIZE) -> dict:
    """The layer geometry render_bscan(scan, size, default_rng(seed)) draws with."""
    return scan_geometry(scan, size, draw_nuisance(np.random.default_rng(seed)))


def changed_pixels(scan: dict, biomarker: str, seed: int, threshold: int = 50):
    """Rows and columns that get brighter / darker when `biomarker` is switched on."""
    diff = render({**scan, biomarker: 1}, seed).astype(int) - render(scan, seed).astype(int)
    return np.nonzero(diff > threshold), np.nonzero(diff < -threshold)


def band_thickness_at_fovea(image: np.ndarray, fovea_col: int) -> int:
    """Rows from the first bright row (ILM) to the brightest row (RPE), 5 central columns."""
    profile = image[:, max(fovea_col - 2, 0):fovea_col + 3].mean(axis=1)
    rpe = int(np.argmax(profile))
    ilm = int(np.argmax(profile > 0.35 * profile[rpe]))
    return rpe - ilm


def random_table(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = [make_scan(slice=int(rng.integers(0, 49)), eye_seed=int(rng.integers(0, 50)),
                      thickness=float(rng.integers(200, 600)), severity=float(rng.uniform(-2, 3)),
                      scan_seed=int(rng.integers(0, 2**31)),
                      **{b: int(rng.random() < 0.5) for b in ("IRHRF", "IRF", "DRT_ME", "VD")})
            for _ in range(n)]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("size", [64, 128, 224])
def test_shape_dtype_and_range(size):
    image = render(make_scan(IRF=1, VD=1, PAVF=1), seed=1, size=size)
    assert image.shape == (size, size) and image.dtype == np.uint8
    assert image.max() > 200 and image.min() == 0  # bright RPE, black vitreous


def test_same_seed_same_image_and_different_scan_seed_different_image():
    table = random_table(3)
    again = render_scans(table, SIZE, seed=7, progress=False)
    assert np.array_equal(render_scans(table, SIZE, seed=7, progress=False), again)
    table.loc[1, "scan_seed"] += 1
    changed = render_scans(table, SIZE, seed=7, progress=False)
    assert np.array_equal(changed[0], again[0]) and not np.array_equal(changed[1], again[1])
    assert not np.array_equal(render_scans(table, SIZE, seed=8, progress=False)[0], again[0])


def test_render_scans_rows_do_not_depend_on_order_or_neighbours():
    table = random_table(8)
    images = render_scans(table, SIZE, seed=3, progress=False)
    order = np.random.default_rng(0).permutation(len(table))
    shuffled = render_scans(table.iloc[order].reset_index(drop=True), SIZE, 3, progress=False)
    assert np.array_equal(shuffled, images[order])
    single = render_scans(table.iloc[[5]], SIZE, seed=3, progress=False)
    assert np.array_equal(single[0], images[5])


def test_render_scans_names_missing_columns():
    with pytest.raises(KeyError, match="thickness"):
        render_scans(random_table(2).drop(columns="thickness"), SIZE, seed=0, progress=False)


def test_retina_position_varies_from_scan_to_scan():
    brightest_rows = [np.argmax(render(make_scan(), seed).mean(axis=1)) for seed in range(20)]
    assert np.ptp(brightest_rows) >= 10


def test_healthy_central_slice_has_a_foveal_pit_that_fades_off_centre():
    for seed in range(5):
        geo = geometry(make_scan(), seed)
        thickness = geo["boundaries"][-1] - geo["boundaries"][0]
        fovea = int(np.argmin(np.abs(geo["u"])))
        side = int(0.2 * SIZE)
        assert thickness[fovea] < 0.9 * min(thickness[fovea - side], thickness[fovea + side])
        off = geometry(make_scan(slice=40), seed)
        off_thickness = off["boundaries"][-1] - off["boundaries"][0]
        assert off_thickness[fovea] > 1.1 * thickness[fovea]  # no pit 2 mm from the fovea


@pytest.mark.parametrize("cst", [220, 275, 450, 600])
def test_thickness_at_the_fovea_equals_cst(cst):
    """At the foveal B-scan the label model's thickness is the volume's CST: drawn there, it is
    what CST measures."""
    for drt in (0, 1):
        geo = geometry(make_scan(thickness=cst, DRT_ME=drt), seed=4, size=224)
        fovea = int(np.argmin(np.abs(geo["u"])))
        thickness_um = (geo["boundaries"][-1] - geo["boundaries"][0])[fovea] * geo["um_per_px"]
        assert thickness_um == pytest.approx(cst, rel=0.03)


def test_a_thicker_retina_gives_a_visibly_thicker_band():
    thicker = 0
    for seed in range(10):
        fovea = int(np.argmin(np.abs(geometry(make_scan(), seed)["u"])))
        thin = band_thickness_at_fovea(render(make_scan(thickness=250), seed), fovea)
        thick = band_thickness_at_fovea(render(make_scan(thickness=500), seed), fovea)
        thicker += thick >= thin + 4  # 250 um more is ~8 px at 64 px
    assert thicker >= 9


def test_irf_darkens_pixels_inside_the_retina():
    for seed in range(5):
        scan = make_scan(thickness=400, IRF=1, severity=0.0)
        # 30 grey levels: small cysts of a low-contrast scan darken a dark INL/ONL by less than 50.
        _, (rows, cols) = changed_pixels({**scan, "IRF": 0}, "IRF", seed, threshold=30)
        b = geometry(scan, seed)["boundaries"]
        assert len(rows) >= 4
        assert np.all((rows >= b[0, cols] - 1) & (rows <= b[-1, cols] + 1))


def test_irhrf_adds_bright_dots_inside_the_retina():
    for seed in range(5):
        (rows, cols), _ = changed_pixels(make_scan(thickness=350, slice=30), "IRHRF", seed)
        b = geometry(make_scan(thickness=350, slice=30), seed)["boundaries"]
        assert len(rows) >= 2
        assert np.all((rows >= b[0, cols] - 1) & (rows <= b[-1, cols] + 1))


@pytest.mark.parametrize("biomarker", ["VD", "PAVF"])
def test_vitreous_signs_brighten_pixels_above_the_retina(biomarker):
    for seed in range(5):
        (rows, cols), _ = changed_pixels(make_scan(), biomarker, seed, threshold=30)
        ilm = geometry(make_scan(), seed)["boundaries"][0]
        assert np.sum(rows < ilm[cols] - 3) >= 3


def test_favf_is_a_line_hugging_the_ilm_across_the_scan():
    for seed in range(5):
        (rows, cols), _ = changed_pixels(make_scan(slice=10), "FAVF", seed, threshold=30)
        ilm = geometry(make_scan(slice=10), seed)["boundaries"][0]
        hugging = (rows < ilm[cols]) & (rows > ilm[cols] - 4)
        assert np.mean(hugging) > 0.9 and len(np.unique(cols[hugging])) > 0.6 * SIZE


def test_drt_thickens_the_retina_away_from_the_foveola_and_changes_its_texture():
    scan = make_scan(slice=30, thickness=300, severity=2.0)
    for seed in range(3):
        plain, drt = geometry(scan, seed), geometry({**scan, "DRT_ME": 1}, seed)
        thickness = [g["boundaries"][-1] - g["boundaries"][0] for g in (plain, drt)]
        assert np.all(thickness[1] > 1.1 * thickness[0])



def test_drt_makes_the_outer_retina_spongy():
    scan = make_scan(slice=30, thickness=450, severity=2.0)
    rows = np.arange(SIZE)[:, None] + 0.5
    spread = {0: [], 1: []}
    for seed in range(6):
        for drt in (0, 1):
            b = geometry({**scan, "DRT_ME": drt}, seed)["boundaries"]
            inside_onl = (rows > b[5] + 1) & (rows < b[6] - 1)  # ONL, away from its borders
            onl = render({**scan, "DRT_ME": drt}, seed)[inside_onl]
            spread[drt].append(onl.std() / onl.mean())  # speckle alone: constant ratio
    assert np.mean(spread[1]) > 1.5 * np.mean(spread[0])


def test_healthy_scans_show_nothing_in_the_vitreous():
    for seed in range(10):
        scan = make_scan(slice=seed * 5)
        image = render(scan, seed)
        ilm = geometry(scan, seed)["boundaries"][0]
        vitreous = np.arange(SIZE)[:, None] < ilm[None, :] - 3
        assert image[vitreous].max() < 100


def test_signal_strength_contrast_and_tilt_vary_from_scan_to_scan():
    """Real exports differ in signal strength, display contrast and tilt: the RPE's brightness and
    slope change from scan to scan of one and the same retina."""
    rpe_brightness, slopes = [], []
    for seed in range(20):
        image = render(make_scan(slice=40), seed)
        rpe_brightness.append(np.sort(image, axis=None)[-64:].mean())
        rpe = geometry(make_scan(slice=40), seed)["boundaries"][-1]
        slopes.append(np.polyfit(np.arange(SIZE), rpe, 1)[0])
    assert max(rpe_brightness) > 1.15 * min(rpe_brightness)
    assert max(slopes) - min(slopes) > np.tan(np.radians(10))


def test_overall_brightness_says_little_about_thickness():
    """A thicker retina swells its dark nuclear layers and the display varies from scan to scan,
    so the mean intensity of a scan is a poor proxy of its thickness (it was r ~ 0.7)."""
    rng = np.random.default_rng(0)
    thickness = rng.uniform(250, 600, 80)
    means = [render(make_scan(thickness=t, slice=int(rng.integers(0, 49)), eye_seed=int(rng.integers(0, 40))),
                    seed).mean() for seed, t in enumerate(thickness)]
    assert np.corrcoef(thickness, means)[0, 1] < 0.5


def test_the_b_scans_own_thickness_not_cst_sets_its_band():
    """CST is a volume's central 1 mm; each B-scan is drawn with its own thickness."""
    scan = make_scan(slice=5, thickness=300)
    assert np.array_equal(render(scan, 2), render({**scan, "CST": 600}, 2))
    assert not np.array_equal(render(scan, 2), render({**scan, "thickness": 450}, 2))


def test_swelling_fills_the_nuclear_layers_not_the_bright_inner_ones():
    thin, thick = (geometry(make_scan(slice=40, thickness=t), 1, size=224) for t in (280, 500))
    layers = [np.diff(g["boundaries"], axis=0).mean(axis=1) for g in (thin, thick)]
    inner_bright = [layer[:3].sum() for layer in layers]  # RNFL, GCL, IPL
    nuclear = [layer[3] + layer[5] for layer in layers]  # INL, ONL
    assert inner_bright[1] < 1.1 * inner_bright[0]
    assert nuclear[1] - nuclear[0] > 0.8 * (sum(layers[1]) - sum(layers[0]))
