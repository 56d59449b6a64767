"""Render simulated retinal OCT B-scans (Spectralis-like) as square 8-bit images.

Every number below comes from `shared/reference/oct-appearance.md` unless a comment says it was
enlarged so that a biomarker stays visible at 64 px. Geometry is computed in output pixels from
physical units: the frame is 496 native px (3.87 um each, ~1.9 mm) deep and ~6 mm wide.
Shapes are drawn with soft (area-coverage) edges in linear intensity, which anti-aliases them
without rendering at a higher resolution first.

Each B-scan is drawn with its own thickness (the label model's `thickness`: the retina under that
B-scan, as CST would read it at the fovea), not with its volume's CST, which measures only the
central 1 mm.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import numpy as np
import pandas as pd

from octbench import BIOMARKERS

NATIVE_DEPTH_PX = 496
UM_PER_NATIVE_PX = 3.87
FRAME_WIDTH_MM = 6.0
SLICE_SPACING_MM = 0.125  # 49 B-scans over 6 mm
FOVEA_SLICE = 24

VITREOUS = 0.0004  # linear reflectivity relative to the RPE (RPE = 1)
# Retinal layers from the ILM down to Bruch's membrane, with their relative linear reflectivity.
LAYER_REFLECTIVITY = np.array([
    0.35,   # RNFL
    0.08,   # GCL
    0.15,   # IPL
    0.035,  # INL
    0.12,   # OPL
    0.012,  # ONL (darkest retinal layer)
    0.08,   # ELM (thin bright line)
    0.015,  # myoid zone (dark)
    0.6,    # EZ (bright line)
    0.03,   # outer segments (dark)
    0.3,    # IZ (faint line)
    1.0,    # RPE / Bruch (brightest band)
])
INL, OPL, ONL = 3, 4, 5
HEALTHY_CST_UM = 280.0  # above it, the retina is swollen by edema
INL_SWELLING = 0.4  # share of the swelling in the INL (the rest in the ONL / Henle fibre layer)
OUTER_UM = np.array([10.0, 20.0, 12.0, 25.0, 10.0, 22.0])  # ELM, myoid, EZ, OS, IZ, RPE
# Scan-to-scan acquisition nuisance (the ranges draw_nuisance draws from). Real exports differ in
# where the retina sits (the operator's focus and axial offset), its tilt, the signal strength
# and the display contrast; without this a probe on 4x4 mean-pooled pixels reads the labels off
# the overall brightness (a thicker retina, a brighter vitreous) instead of seeing the lesions.
TOP_FRAC = (0.08, 0.5)  # top of the retina, fraction of the frame height
TILT_DEGREES = 12.0
GAIN_LOG_SD = 0.35  # signal strength, log-normal
CONTRAST = 0.25  # display contrast 1 +- CONTRAST
DISPLAY_BLACK = (0.13, 0.19)  # display black level, around the fourth root of the vitreous signal
NOISE_FLOOR = (0.00005, 0.0008)  # detector noise, visible in the vitreous
# IRHRF: 3-5 foci per scan within this distance (mm) of the fovea.
HRF_COUNT = (3, 5)
HRF_SPREAD_MM = 2.5


@functools.lru_cache(maxsize=8)
def pixel_centres(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Row (size, 1) and column (1, size) coordinates of pixel centres; pixel i spans [i, i+1)."""
    centres = np.arange(size, dtype=np.float64) + 0.5
    return centres[:, None], centres[None, :]


@functools.lru_cache(maxsize=4096)
def eye_anatomy(eye_seed: int) -> dict:
    """What all scans of one eye share: curvature, layer ratios, vessels, choroid texture."""
    rng = np.random.default_rng(eye_seed)
    n_vessels = int(rng.integers(3, 7))
    return {
        "sag": rng.uniform(0.05, 0.14),  # periphery rise ("smile"), fraction of frame height
        "inner_weights": np.array([0.14, 0.28, 0.24, 0.2, 0.14]) * rng.uniform(0.85, 1.15, 5),
        "rnfl_nasal_gain": rng.uniform(0.6, 1.2),
        "vessel_mm": rng.uniform(-2.9, 2.9, n_vessels),  # relative to the fovea
        "vessel_drift_mm": rng.uniform(-0.02, 0.02, n_vessels),  # per slice
        "vessel_shadow": rng.uniform(0.5, 0.8, n_vessels),
        "choroid_um": rng.uniform(150.0, 250.0),  # 1/e depth of the choroid signal
        "choroid_gain": rng.uniform(0.15, 0.3),
        "choroid_grids": rng.normal(size=(2, 16, 28)),  # blended across slices
    }


def draw_nuisance(rng: np.random.Generator) -> dict:
    """Scan-level acquisition nuisance: where the retina sits in the frame, its tilt, the signal
    strength and the display's contrast vary from scan to scan, as in real exports, so that labels
    cannot be read off fixed pixel positions or off the overall brightness."""
    return {
        "top_frac": rng.uniform(TOP_FRAC[0], TOP_FRAC[1]),  # top of the retina within the frame
        "tilt": np.tan(np.radians(rng.uniform(-TILT_DEGREES, TILT_DEGREES))),
        "sag_jitter": rng.uniform(0.75, 1.25),
        "fovea_shift": rng.uniform(-0.1, 0.1),  # fraction of the width
        "gain": np.exp(rng.normal(0.0, GAIN_LOG_SD)),  # signal strength
        "contrast": rng.uniform(1.0 - CONTRAST, 1.0 + CONTRAST),  # display contrast
        "black": rng.uniform(*DISPLAY_BLACK),  # display black level (fourth-root scale)
        "frames": int(rng.integers(8, 31)),  # averaged frames: speckle ~ Gamma(N, 1/N)
        "depth_falloff": rng.uniform(0.2, 1.0),
        "vignette": rng.uniform(0.0, 0.35),
        "noise_floor": np.exp(rng.uniform(np.log(NOISE_FLOOR[0]), np.log(NOISE_FLOOR[1]))),
        # Independent streams, so toggling one biomarker leaves speckle and the others unchanged.
        "seeds": rng.integers(0, 2**63, size=6),
    }


def severity_level(scan: Mapping) -> float:
    """Severity (about -2..3) mapped to 0..1."""
    return float(np.clip((float(scan["severity"]) + 2.0) / 5.0, 0.0, 1.0))


def scan_geometry(scan: Mapping, size: int, nuisance: dict) -> dict:
    """Per-column layer boundaries (13, size) in output rows, plus lateral coordinates."""
    eye = eye_anatomy(int(scan["eye_seed"]))
    _, x = pixel_centres(size)
    x = x[0]
    um_per_px = NATIVE_DEPTH_PX * UM_PER_NATIVE_PX / size
    u_frame = (x / size - 0.5) * FRAME_WIDTH_MM
    u = u_frame - nuisance["fovea_shift"] * FRAME_WIDTH_MM  # mm from the fovea
    slice_mm = (int(scan["slice"]) - FOVEA_SLICE) * SLICE_SPACING_MM
    rho = np.hypot(u, slice_mm)  # en-face distance from the foveola: pit only in central slices
    pit = np.exp(-((rho / 0.55) ** 2))

    # Healthy: CST ~270 um at the foveola, parafovea ~340 (pit removes ~20 %), thinning outward.
    # DRT flattens the pit and thickens the retina around the centre with severity.
    drt = bool(int(scan["DRT_ME"]))
    pit_fraction = 0.2 * (1.0 - 0.85 * drt)
    # The B-scan's own thickness (its edema), which CST reads at the foveal B-scan.
    parafovea_um = float(scan["thickness"]) / (1.0 - pit_fraction)
    periphery = 1.0 - 0.15 * np.clip((rho - 1.0) / 2.5, 0.0, 1.0)
    thickness_um = parafovea_um * (1.0 - pit_fraction * pit) * periphery
    if drt:  # leave the foveola at the B-scan's thickness, so that image and CST stay consistent
        thickness_um *= 1.0 + (0.15 + 0.35 * severity_level(scan)) * (1.0 - pit)

    # Thickness beyond a healthy retina's is swelling of the INL and the ONL (fluid, dark), not
    # of the bright inner layers.
    healthy_um = HEALTHY_CST_UM / 0.8 * (1.0 - 0.2 * pit) * periphery
    swelling_um = np.clip(thickness_um - healthy_um, 0.0, None)
    # Inner layers taper to zero at the foveola, where the ONL is thickest.
    outer_um = OUTER_UM.sum()
    taper = 1.0 - np.exp(-((rho / 0.4) ** 2))
    inner_um = (thickness_um - swelling_um - outer_um) * 0.62 * taper
    onl_um = thickness_um - outer_um - inner_um - INL_SWELLING * taper * swelling_um
    nasal = u if scan["laterality"] == "OD" else -u  # RNFL thicker nasally: mirror for OS
    weights = np.repeat(eye["inner_weights"][:, None], size, axis=1)
    weights[0] *= (1.0 + eye["rnfl_nasal_gain"] * np.clip(nasal / 3.0, -0.6, 1.0)) * np.clip(
        rho / 1.5, 0.1, 1.0)
    inner_layers_um = inner_um * weights / weights.sum(axis=0)
    inner_layers_um[INL] += INL_SWELLING * taper * swelling_um
    outer_layers_um = np.repeat(OUTER_UM[:, None], size, axis=1)
    layers_px = np.vstack([inner_layers_um, onl_um, outer_layers_um]) / um_per_px

    # Bruch's membrane: smile-shaped curvature plus tilt; then place the retina in the frame.
    sag_px = eye["sag"] * nuisance["sag_jitter"] * size
    bruch = -sag_px * (u_frame / (FRAME_WIDTH_MM / 2)) ** 2 + nuisance["tilt"] * (x - size / 2)
    ilm = bruch - layers_px.sum(axis=0)
    bruch += nuisance["top_frac"] * size - ilm.min()
    bruch -= max(0.0, bruch.max() - 0.9 * size)  # keep the RPE inside the frame
    boundaries = bruch - np.vstack([np.cumsum(layers_px[::-1], axis=0)[::-1], np.zeros(size)])
    return {"boundaries": boundaries, "u": u, "rho": rho, "um_per_px": um_per_px}


def smooth_field(rng: np.random.Generator, size: int, cells: tuple[int, int]) -> np.ndarray:
    """Smooth random field in [0, 1]: a coarse Gaussian grid bilinearly upsampled."""
    return sample_grid(rng.normal(size=cells), *pixel_centres(size), size, size)


def sample_grid(grid: np.ndarray, rows, cols, height: float, width: float) -> np.ndarray:
    """Bilinear lookup of `grid` stretched over height x width, squashed to 0..1 by a sigmoid."""
    gy = np.clip(rows / height * (grid.shape[0] - 1), 0, grid.shape[0] - 1.001)
    gx = np.clip(cols / width * (grid.shape[1] - 1), 0, grid.shape[1] - 1.001)
    iy, ix = gy.astype(int), gx.astype(int)
    fy, fx = gy - iy, gx - ix
    value = ((grid[iy, ix] * (1 - fx) + grid[iy, ix + 1] * fx) * (1 - fy)
             + (grid[iy + 1, ix] * (1 - fx) + grid[iy + 1, ix + 1] * fx) * fy)
    return 1.0 / (1.0 + np.exp(-2.5 * value))


def soft_ellipses(rows, cols, cy, cx, ry, rx) -> np.ndarray:
    """Area coverage (0..1) of the union of ellipses; arrays of centres and radii in px."""
    cover = np.zeros(np.broadcast_shapes(rows.shape, cols.shape))
    for y0, x0, a, b in zip(cy, cx, ry, rx):
        rho = np.sqrt(((cols - x0) / b) ** 2 + ((rows - y0) / a) ** 2)
        cover = np.maximum(cover, np.clip(0.5 + (1.0 - rho) * min(a, b), 0.0, 1.0))
    return cover


def gaussian_blobs(rows, cols, cy, cx, sy, sx, amplitude, angle=None) -> np.ndarray:
    """Sum of (optionally rotated, elongated) Gaussian spots."""
    out = np.zeros(np.broadcast_shapes(rows.shape, cols.shape))
    angle = np.zeros(len(cy)) if angle is None else angle
    for y0, x0, a, b, amp, th in zip(cy, cx, sy, sx, amplitude, angle):
        dy, dx = rows - y0, cols - x0
        along, across = dx * np.cos(th) + dy * np.sin(th), -dx * np.sin(th) + dy * np.cos(th)
        out += amp * np.exp(-0.5 * ((along / b) ** 2 + (across / a) ** 2))
    return out


def soft_curve(rows, curve: np.ndarray, sigma: float) -> np.ndarray:
    """Thin line along y = curve(x), with a Gaussian profile across the (tilted) line."""
    slope = np.gradient(curve)
    distance = (rows - curve[None, :]) / np.sqrt(1.0 + slope**2)[None, :]
    return np.exp(-0.5 * (distance / sigma) ** 2)


def retina_reflectivity(scan: Mapping, size: int, geo: dict, rng_drt) -> np.ndarray:
    """Linear reflectivity of vitreous, retinal layers and choroid, before biomarker lesions."""
    rows, cols = pixel_centres(size)
    below = np.clip(rows[None] - geo["boundaries"][:, None, :] + 0.5, 0.0, 1.0)  # (13, H, W)
    members = below[:-1] - below[1:]  # area fraction of each pixel in each layer
    refl = members * LAYER_REFLECTIVITY[:, None, None]
    if bool(int(scan["DRT_ME"])):
        # Spongy, darker, mottled outer retina in DRT/ME: no discrete cysts. The mottle grain is
        # ~4 output px at every size (not a physical size) so that it survives at 64 px.
        mottle = smooth_field(rng_drt, size, (max(4, size // 4), max(4, size // 4)))
        strength = 0.3 + 0.7 * severity_level(scan)
        refl[INL:ONL + 1] *= 1.0 - strength + strength * (0.05 + 1.8 * mottle**2)
    reflectivity = refl.sum(axis=0) + VITREOUS * (1.0 - below[0])

    eye = eye_anatomy(int(scan["eye_seed"]))
    bruch = geo["boundaries"][-1]
    depth_um = (rows - bruch[None, :]) * geo["um_per_px"]  # below Bruch's membrane
    w = int(scan["slice"]) / 48.0  # choroid texture drifts slowly across the volume
    grid = eye["choroid_grids"][0] * (1 - w) + eye["choroid_grids"][1] * w
    texture = sample_grid(grid, np.clip(depth_um, 0, None), (geo["u"] + 3.5)[None, :], 900.0, 7.0)
    # Textured choroid (lumens dark) fading into the sclera: signal drops sharply below the RPE.
    choroid = eye["choroid_gain"] * (0.1 + texture**2) * np.exp(-((depth_um / eye["choroid_um"]) ** 2))
    return reflectivity + below[-1] * choroid


def add_vessels(reflectivity, scan: Mapping, size: int, geo: dict) -> np.ndarray:
    """Superficial vessels: small bright ovals in the RNFL casting dark shadow columns."""
    rows, cols = pixel_centres(size)
    eye = eye_anatomy(int(scan["eye_seed"]))
    slice_offset = int(scan["slice"]) - FOVEA_SLICE
    px_per_mm = size / FRAME_WIDTH_MM
    vessel_u = eye["vessel_mm"] + eye["vessel_drift_mm"] * slice_offset
    cx = np.interp(vessel_u, geo["u"], np.arange(size) + 0.5, left=-9, right=-9)
    ilm, rnfl_bottom = geo["boundaries"][0], geo["boundaries"][1]
    col = np.clip(cx.astype(int), 0, size - 1)
    cy = (ilm[col] + 2 * rnfl_bottom[col]) / 3
    r = max(0.5, 6.0 * size / NATIVE_DEPTH_PX)
    width = max(0.45, 0.03 * px_per_mm)
    for y0, x0, strength in zip(cy, cx, eye["vessel_shadow"]):
        column = strength * np.exp(-0.5 * ((cols - x0) / width) ** 2)
        reflectivity *= 1.0 - column * np.clip(rows - y0, 0.0, 1.0)
    n = len(cx)
    return reflectivity + gaussian_blobs(rows, cols, cy, cx, [r] * n, [1.5 * r] * n, [0.3] * n)


def add_fluid_and_foci(reflectivity, scan: Mapping, size: int, geo: dict, rng_irf, rng_hrf):
    """IRF: near-black cysts in INL/ONL. IRHRF: bright dots in OPL/ONL, often near cysts."""
    rows, cols = pixel_centres(size)
    b, u = geo["boundaries"], geo["u"]
    native = size / NATIVE_DEPTH_PX  # output px per native px
    sev = severity_level(scan)
    near = np.flatnonzero(np.abs(u) < 1.3)  # fluid starts at the centre
    near = near if len(near) else np.arange(size)
    cy = cx = np.zeros(0)
    if bool(int(scan["IRF"])):
        n = int(np.clip(rng_irf.integers(1, 3) + round(3 * sev), 1, 5))
        col = rng_irf.choice(near, size=n)
        top, bottom = b[INL, col], b[ONL + 1, col]  # INL top .. ELM
        ry = np.maximum(native * rng_irf.uniform(8, 14 + 26 * sev, n), 1.1)
        ry = np.minimum(ry, np.maximum(0.45 * (bottom - b[0, col]), 1.1))
        rx = np.clip(ry * rng_irf.uniform(1.2, 2.0, n), 1.4, max(1.4, 0.5 * size / FRAME_WIDTH_MM))
        cy = np.clip(top + rng_irf.uniform(0.3, 0.75, n) * (bottom - top), b[0, col] + ry,
                     bottom - ry * 0.8)
        cx = col + 0.5 + rng_irf.uniform(-0.5, 0.5, n)
        cyst = soft_ellipses(rows, cols, cy, cx, ry, rx)
        # Tissue below a cyst is slightly brighter (less attenuation through fluid).
        below_cyst = soft_ellipses(rows, cols, cy + 3 * ry, cx, 3 * ry, rx)
        reflectivity = reflectivity * (1 + 0.4 * below_cyst) * (1 - cyst) + 0.3 * VITREOUS * cyst
    if bool(int(scan["IRHRF"])):
        # A few foci scattered over the macula (near the fluid or not), as many in mild as in
        # severe edema: their number growing with severity made a scan's coarse brightness tell
        # its edema and its foci apart without seeing a single focus.
        n = int(rng_hrf.integers(HRF_COUNT[0], HRF_COUNT[1] + 1))
        spread = np.flatnonzero(np.abs(u) < HRF_SPREAD_MM)
        col = rng_hrf.choice(spread if len(spread) else np.arange(size), size=n)
        y = b[OPL, col] + rng_hrf.uniform(-0.3, 0.9, n) * (b[ONL + 1, col] - b[OPL, col])
        x = col + rng_hrf.uniform(0, 1, n)
        if len(cx):  # half of the foci sit on a cyst's rim
            k = rng_hrf.integers(0, len(cx), n)
            on_rim = rng_hrf.random(n) < 0.5
            y = np.where(on_rim, cy[k] - 0.9 * ry[k], y)
            x = np.where(on_rim, cx[k] + rng_hrf.uniform(-0.8, 0.8, n) * rx[k], x)
        # 20-40 um dots are under one output pixel at 64 px (94 um wide, 30 um deep): enlarged
        # to >= 0.8 px and as bright as the RPE or brighter, so that each one stays a visible dot.
        sigma = np.maximum(native * rng_hrf.uniform(3, 5, n), 0.8)
        reflectivity = reflectivity + gaussian_blobs(rows, cols, y, x, sigma, sigma,
                                                     rng_hrf.uniform(0.8, 1.3, n))
    return reflectivity


def add_vitreous_signs(reflectivity, scan: Mapping, size: int, geo: dict, rng_vf, rng_vd):
    """FAVF/PAVF: the hyaloid line on or lifted off the ILM. VD: floaters in the vitreous."""
    rows, cols = pixel_centres(size)
    ilm, u = geo["boundaries"][0], geo["u"]
    line_sigma = max(0.42, 2.0 * size / NATIVE_DEPTH_PX)
    # Drawn >= 1.6 px above the ILM (the reference: "lies on the ILM") so a dark gap at 64 px
    # separates it from the retina; thin lines keep sigma >= 0.42 output px.
    hyaloid = ilm - max(1.6, 6.0 * size / NATIVE_DEPTH_PX)
    if bool(int(scan["FAVF"])):
        reflectivity = reflectivity + rng_vf.uniform(0.15, 0.5) * soft_curve(rows, hyaloid,
                                                                            line_sigma)
    elif bool(int(scan["PAVF"])):
        attach = [0.0 if rng_vf.random() < 0.7 else rng_vf.uniform(-2.0, 2.0)]
        if rng_vf.random() < 0.3:
            attach.append(rng_vf.uniform(-2.5, 2.5))
        gap = np.min([np.clip(np.abs(u - a) - 0.2, 0, None) for a in attach], axis=0)
        lift = rng_vf.uniform(0.03, 0.18) * size * gap**1.5
        reflectivity = reflectivity + rng_vf.uniform(0.02, 0.15) * soft_curve(
            rows, hyaloid - lift, line_sigma)
    if bool(int(scan["VD"])):
        n = int(rng_vd.integers(2, 7))
        x = rng_vd.uniform(0.05, 0.95, n) * size
        floor = np.interp(x, cols[0], ilm) - max(2.5, 10 * size / NATIVE_DEPTH_PX)
        y = 0.03 * size + rng_vd.uniform(0.0, 1.0, n) * np.clip(floor - 0.03 * size, 0, None)
        sy = np.maximum(size / NATIVE_DEPTH_PX * rng_vd.uniform(3, 6, n), 0.5)
        strand = rng_vd.random(n) < 0.5  # dots or short strands
        sx = np.where(strand, sy * rng_vd.uniform(2.5, 4.5, n), sy)
        reflectivity = reflectivity + gaussian_blobs(rows, cols, y, x, sy, sx,
                                                     rng_vd.uniform(0.02, 0.2, n),
                                                     rng_vd.uniform(0, np.pi, n))
    return reflectivity


def form_image(reflectivity, size: int, nuisance: dict, rng_speckle) -> np.ndarray:
    """Gain, depth fall-off, vignetting, multiplicative speckle and fourth-root display."""
    rows, cols = pixel_centres(size)
    n = nuisance["frames"]
    intensity = reflectivity * nuisance["gain"] * np.exp(-nuisance["depth_falloff"] * rows / size)
    intensity *= 1.0 - nuisance["vignette"] * (2 * cols / size - 1) ** 2
    intensity *= rng_speckle.gamma(n, 1.0 / n, size=(size, size))  # average of N speckle frames
    intensity += nuisance["noise_floor"] * rng_speckle.exponential(size=(size, size))
    black = nuisance["black"]
    display = nuisance["contrast"] * (intensity ** 0.25 - black) / (1.0 - black)
    return np.round(np.clip(display, 0.0, 1.0) * 255).astype(np.uint8)


def render_bscan(scan: Mapping, size: int, rng: np.random.Generator) -> np.ndarray:
    """One B-scan as uint8 array (size, size)."""
    nuisance = draw_nuisance(rng)
    streams = [np.random.default_rng(int(s)) for s in nuisance["seeds"]]
    geo = scan_geometry(scan, size, nuisance)
    reflectivity = retina_reflectivity(scan, size, geo, streams[0])
    reflectivity = add_fluid_and_foci(reflectivity, scan, size, geo, streams[1], streams[2])
    reflectivity = add_vessels(reflectivity, scan, size, geo)
    reflectivity = add_vitreous_signs(reflectivity, scan, size, geo, streams[3], streams[4])
    return form_image(reflectivity, size, nuisance, streams[5])


def render_scans(table: pd.DataFrame, size: int, seed: int, progress: bool = True) -> np.ndarray:
    """uint8 array (len(table), size, size); row i uses rng [seed, scan_seed of row i]."""
    missing = [c for c in ("slice", "eye_seed", "laterality", "thickness", "severity", "scan_seed",
                           *BIOMARKERS) if c not in table.columns]
    if missing:
        raise KeyError(f"render_scans: table lacks columns {missing}")
    rows = table.to_dict("records")
    if progress:
        from tqdm.auto import tqdm
        rows = tqdm(rows, desc=f"render {size}px", unit="scan")
    images = np.empty((len(table), size, size), dtype=np.uint8)
    for i, scan in enumerate(rows):
        images[i] = render_bscan(scan, size, np.random.default_rng([seed, int(scan["scan_seed"])]))
    return images
