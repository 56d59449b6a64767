"""`octbench synth`: simulated B-scans under the real OLIVES label structure.

For every row of the OLIVES tables (as the olives source reads them, `--limit` included) one
B-scan is rendered by octbench/simulate/render.py and saved, 8-bit, at the row's relative path
under the output root, so that `octbench run --benchmark olives --olives-root <root>` runs on
images that agree with the real labels: the row's biomarkers, CST and slice.

What the renderer needs and the tables lack is derived from the row, deterministically:
  eye_seed    from the eye id (every B-scan of an eye shares its anatomy);
  scan_seed   from a hash of the relative path (speckle and acquisition nuisance);
  laterality  from the path's OD/OS folder;
  severity    the edema level of the label model: the mean of the CST and the inverted BCVA
              z-scores (OLIVES pool: CST 308 ± 84 µm, BCVA 79.5 ± 10.5 letters), lowered away from
              the fovea by the label model's slice falloff;
  thickness   the retina under the B-scan: CST at the fovea, less the edema thickening that the
              lower severity away from the fovea takes off (the label model's thickening curve).
Pool-only rows carry no biomarker labels; they get a draw from the label model's own thresholds
and noise given that severity (DRT/ME, IRF, IRHRF) and eye-level states seeded by the eye
(vitreous face, debris, IRHRF propensity), so biomarkers stay tied to CST and BCVA as in
octbench/simulate/labels.py. These draws are for rendering only: pool rows stay unlabelled.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from octbench import BIOMARKERS
from octbench.errors import OctbenchError
from octbench.simulate.labels import FOVEAL_SLICE, SLICES_PER_VOLUME, LabelModel, softplus
from octbench.simulate.render import render_bscan
from octbench.sources.olives import olives_cohort_table

CST_MEAN, CST_SD = 308.0, 84.0  # OLIVES pool, shared/olives/README.md
BCVA_MEAN, BCVA_SD = 79.5, 10.5
# A few pool paths of OLIVES end in .jpg or .png: each file is written in the format its name says.
FORMATS = {".tif": "TIFF", ".tiff": "TIFF", ".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}
CHUNK = 200


def stable_int(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")


def render_inputs(table: pd.DataFrame, seed: int) -> pd.DataFrame:
    """The renderer's columns for every row (see the module docstring)."""
    model = LabelModel()
    table = table.copy()
    volume = table["sample_id"].str.rsplit("/", n=1).str[0]
    # Some pool volumes have more than 49 B-scans: place each on the 49-slice grid of the renderer.
    last = table.groupby(volume)["slice"].transform("max").clip(lower=SLICES_PER_VOLUME - 1)
    table["slice"] = np.round(table["slice"] * (SLICES_PER_VOLUME - 1) / last).astype(int)
    distance = np.abs(table["slice"] - FOVEAL_SLICE) / FOVEAL_SLICE
    visit_severity = 0.5 * (table["CST"] - CST_MEAN) / CST_SD + 0.5 * (BCVA_MEAN - table["BCVA"]) / BCVA_SD
    severity = visit_severity - model.slice_falloff * distance**2
    table["severity"] = severity.round(3)
    table["thickness"] = (table["CST"] - model.cst_edema_scale
                          * (softplus(visit_severity.to_numpy()) - softplus(severity.to_numpy()))).round(1)
    table["eye_seed"] = (seed * 1_000_003 + table["eye"]) % (2**31)
    table["scan_seed"] = table["sample_id"].map(stable_int)
    unlabelled = ~table["labelled"]
    if unlabelled.any():
        draws = pool_biomarkers(table[unlabelled], seed, model)
        table.loc[unlabelled, list(BIOMARKERS)] = draws.to_numpy()
    table[list(BIOMARKERS)] = table[list(BIOMARKERS)].astype(int)
    return table


def pool_biomarkers(rows: pd.DataFrame, seed: int, m: LabelModel) -> pd.DataFrame:
    """Biomarkers of pool-only rows: the label model's thresholds applied to the severity, with its
    noise; eye-level states drawn once per eye."""
    eyes = np.unique(rows["eye"])
    eye_rng = np.random.default_rng([seed, 7])
    eye_irhrf = dict(zip(eyes, eye_rng.normal(0.0, m.irhrf_eye_sd, len(eyes))))
    eye_vd = dict(zip(eyes, eye_rng.normal(0.0, m.vd_eye_sd, len(eyes))))
    eye_vitreous = dict(zip(eyes, eye_rng.choice(3, size=len(eyes), p=m.vitreous_state_probs)))
    rng = np.random.default_rng([seed, 8])
    n = len(rows)
    # One draw per row stands for the label model's visit, smooth and per-B-scan noise together.
    irhrf_sd = np.sqrt(m.irhrf_visit_sd**2 + m.irhrf_noise_sd**2 + m.irhrf_white_sd**2)
    vd_sd = np.sqrt(m.vd_visit_sd**2 + m.vd_noise_sd**2 + m.vd_white_sd**2)
    edema = rows["severity"].to_numpy()
    state = rows["eye"].map(eye_vitreous).to_numpy()
    # Each B-scan departs from its eye's state at that state's rate, towards the states it favours.
    deviate = rng.random(n) < np.asarray(m.vitreous_deviation)[state]
    cumulative = np.cumsum(np.asarray(m.vitreous_transition), axis=1)[state]
    other = (rng.random((n, 1)) > cumulative).sum(axis=1)
    state = np.where(deviate, other, state)
    return pd.DataFrame({
        "IRHRF": (m.irhrf_edema_weight * edema + rows["eye"].map(eye_irhrf).to_numpy()
                  + rng.normal(0, irhrf_sd, n)) > m.irhrf_threshold,
        "PAVF": state == 1,
        "FAVF": state == 0,
        "IRF": edema + rng.normal(0, m.irf_noise_sd, n) > m.irf_threshold,
        "DRT_ME": edema + rng.normal(0, m.drt_noise_sd, n) > m.drt_threshold,
        "VD": rows["eye"].map(eye_vd).to_numpy() + rng.normal(0, vd_sd, n) > m.vd_threshold,
    }, index=rows.index).astype(int)


def save_image(image: np.ndarray, path: Path) -> None:
    """8-bit grayscale, in the format the path's suffix names, written under a temporary name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
    kind = FORMATS.get(path.suffix.lower(), "PNG")
    Image.fromarray(image).save(partial, format=kind, **({"quality": 95} if kind == "JPEG" else {}))
    os.replace(partial, path)


def render_chunk(rows: list[dict], size: int, seed: int) -> int:
    for scan in rows:
        save_image(render_bscan(scan, size, np.random.default_rng([seed, int(scan["scan_seed"])])), Path(scan["path"]))
    return len(rows)


def synthesise(labels: Path, out: Path, limit: int | None = None, size: int = 224, seed: int = 0,
               workers: int | None = None) -> int:
    """Render every row of the OLIVES tables under `out`; returns how many B-scans were written."""
    if size < 1:
        raise OctbenchError(f"size {size}: B-scans are rendered at a size of at least 1 pixel (--size N, e.g. 224)")
    if limit is not None and limit < 1:  # checked here too, so nothing is read before it is refused
        raise OctbenchError(f"limit {limit}: keep at least 1 row per table (--limit N with N >= 1), or leave it "
                            "out to render every row")
    table = render_inputs(olives_cohort_table(labels, out, limit, seed=seed), seed)
    rows = table.to_dict("records")
    chunks = [rows[i:i + CHUNK] for i in range(0, len(rows), CHUNK)]
    workers = workers or min(4, os.cpu_count() or 1)
    if workers == 1 or len(chunks) == 1:
        return sum(render_chunk(chunk, size, seed) for chunk in chunks)
    # fork works from any caller (spawn needs a __main__ guard); the workers only run numpy and Pillow.
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context(method)) as pool:
        return sum(pool.map(render_chunk, chunks, [size] * len(chunks), [seed] * len(chunks)))
