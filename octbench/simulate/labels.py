"""The label model of the simulated cohort: patients -> eyes -> visits -> 49 B-scans.

Every number below is calibrated to the real OLIVES label tables (their figures are in
`shared/olives/README.md`, measured by `octbench/simulate/calibration.py` and checked by
`tests/test_cohort_calibration.py`), never to a method comparison. The structure mirrors OLIVES:
most patients contribute one eye, each eye is seen at many visits (median ~17), BCVA (letters) and
CST (µm) are integers shared by the 49 B-scans of a visit, and biomarkers are labelled per B-scan
on the first and last visit of each eye.

Edema is local. Each visit has a severity (the eye's baseline, lowered by anti-VEGF treatment over
the first visits); each B-scan's edema is that severity, lower away from the eye's lesion centre
(near, not at, the fovea) and with slice-to-slice noise. The retina under a B-scan thickens with
its own edema, and CST is the mean thickness of the central B-scans (the central 1 mm), so CST
ranks a biomarker best near the fovea, as in OLIVES. BCVA falls with the central edema. DRT/ME,
IRF and IRHRF follow the B-scan's edema; the vitreous biomarkers (PAVF, FAVF) and vitreous debris
follow eye-level states.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

SLICES_PER_VOLUME = 49
FOVEAL_SLICE = 24
CENTRAL_SLICES = 4  # CST: the central 1 mm, +-0.5 mm = +-4 B-scans 0.125 mm apart


@dataclass(frozen=True)
class LabelModel:
    # Cohort shape (OLIVES: 71 patients, 76 eyes, 3-27 visits per eye, median 17.5).
    second_eye_rate: float = 0.08
    visits_mean: float = 17.0
    visits_sd: float = 6.0
    visits_min: int = 3
    visits_max: int = 27
    # Visit severity: eye baseline, treatment response over visits, visit-to-visit noise.
    severity_mean: float = 0.203
    severity_sd: float = 1.01
    response_mean: float = 1.09
    response_sd: float = 0.507
    visit_noise_sd: float = 0.105
    # B-scan edema: lower away from the eye's lesion centre (in B-scans from the fovea, drifting a
    # little from visit to visit), plus slice-to-slice noise: a slow part, which makes the edema of
    # the periphery differ from the centre's, and a fast part.
    centre_sd: float = 9.43
    centre_drift_sd: float = 1.7
    slice_falloff: float = 1.42
    slice_noise_sd: float = 0.619
    slice_noise_width: float = 10.5
    slice_detail_sd: float = 0.712
    # Thickness (µm) under a B-scan = the eye's healthy thickness + edema thickening; CST is its
    # mean over the central B-scans plus measurement noise (OLIVES pool: mean 308, sd 84, 151-723).
    cst_healthy_mean: float = 238.4
    cst_healthy_sd: float = 26.4
    cst_edema_scale: float = 168.0
    cst_noise_sd: float = 9.95
    # BCVA (letters) falls with the central edema and, lastingly, with the eye's baseline edema
    # (OLIVES pool: mean 79.5, sd 10.5, 27-98; most of its spread is between eyes).
    bcva_healthy: float = 85.6
    bcva_edema_slope: float = 16.3
    bcva_chronic_slope: float = 0.53
    bcva_eye_sd: float = 3.77
    bcva_noise_sd: float = 2.39
    # DRT/ME and IRF: the B-scan's edema with their own smooth noise, above a threshold.
    drt_noise_sd: float = 0.436
    drt_noise_width: float = 6.25
    irf_noise_sd: float = 0.915
    irf_noise_width: float = 2.09
    drt_threshold: float = -0.302
    irf_threshold: float = -0.788
    # IRHRF: eye propensity, more foci as the B-scan swells (a dry retina has only the eye's own
    # propensity), visit and per-B-scan noise (OLIVES: CST ranks it with AUROC 0.63; neighbouring
    # B-scans agree on it less than on any other biomarker).
    irhrf_edema_weight: float = 0.256
    irhrf_edema_onset: float = -3.0
    irhrf_slice_falloff: float = 0.0
    irhrf_eye_sd: float = 0.7
    irhrf_visit_sd: float = 0.00706
    irhrf_noise_sd: float = 0.633
    irhrf_noise_width: float = 2.79
    irhrf_white_sd: float = 0.523
    irhrf_threshold: float = -0.006
    # Vitreous: each eye has a dominant state (FAVF, PAVF, detached); B-scans depart from it in
    # contiguous runs, at a rate and towards states that depend on it (OLIVES: FAVF eyes keep 85%
    # of their B-scans and depart mostly to PAVF, PAVF eyes keep 75%).
    vitreous_state_probs: tuple = (0.60, 0.32, 0.08)
    vitreous_deviation: tuple = (0.15, 0.25, 0.21)
    vitreous_transition: tuple = ((0.0, 0.79, 0.21), (0.45, 0.0, 0.55), (0.42, 0.58, 0.0))
    vitreous_run_width: float = 4.57
    # Vitreous debris: eye propensity, visit to visit changes, flickering from B-scan to B-scan.
    vd_eye_sd: float = 0.752
    vd_visit_sd: float = 0.182
    vd_noise_sd: float = 0.858
    vd_noise_width: float = 2.46
    vd_white_sd: float = 0.441
    vd_threshold: float = 0.61


def smooth_noise(rng: np.random.Generator, n_rows: int, length: int, width: float) -> np.ndarray:
    """Unit-variance noise that changes smoothly along axis 1 (biomarkers drift slice to slice)."""
    half = int(np.ceil(3 * width))
    white = rng.standard_normal((n_rows, length + 2 * half))
    kernel = np.exp(-0.5 * (np.arange(-half, half + 1) / width) ** 2)
    windows = np.lib.stride_tricks.sliding_window_view(white, len(kernel), axis=1)
    return windows @ kernel / np.sqrt((kernel**2).sum())


def softplus(x: np.ndarray, sharpness: float = 1.6) -> np.ndarray:
    """Edema thickening: zero for a dry retina, linear in severe edema; thickness never falls below
    healthy."""
    return np.logaddexp(0.0, sharpness * x) / sharpness


def central_mean(values: np.ndarray) -> np.ndarray:
    """Mean over the central B-scans of each volume (rows): what CST measures."""
    return values[:, FOVEAL_SLICE - CENTRAL_SLICES:FOVEAL_SLICE + CENTRAL_SLICES + 1].mean(axis=1)


def slice_thickness(eye_healthy_um, edema, model: LabelModel = LabelModel()) -> np.ndarray:
    """Retinal thickness (µm) under a B-scan with this edema, as CST would read it at the fovea."""
    return eye_healthy_um + model.cst_edema_scale * softplus(edema)


def simulate_labels(n_patients: int, seed: int, model: LabelModel = LabelModel()) -> pd.DataFrame:
    """One row per B-scan of every visit of every eye; biomarkers for every row.

    Columns: sample_id, patient, eye, laterality, visit, slice, BCVA, CST, the six biomarkers,
    severity (the B-scan's edema), thickness (µm: the retina under the B-scan, as CST would read
    it at the fovea), both used by the renderer, eye_seed, scan_seed, labelled (first or last visit
    of the eye, the B-scans that carry expert biomarker labels in OLIVES).
    """
    m = model
    rng = np.random.default_rng(seed)

    # Patients -> eyes.
    two_eyes = rng.random(n_patients) < m.second_eye_rate
    eye_patient = np.repeat(np.arange(n_patients), np.where(two_eyes, 2, 1))
    n_eyes = len(eye_patient)
    laterality = np.where(rng.random(n_eyes) < 0.5, "OD", "OS")
    laterality[1:][eye_patient[1:] == eye_patient[:-1]] = "OS"  # a patient's second eye
    n_visits = np.clip(np.round(rng.normal(m.visits_mean, m.visits_sd, n_eyes)),
                       m.visits_min, m.visits_max).astype(int)

    eye_severity = rng.normal(m.severity_mean, m.severity_sd, n_eyes)
    eye_response = rng.normal(m.response_mean, m.response_sd, n_eyes)
    eye_healthy = rng.normal(m.cst_healthy_mean, m.cst_healthy_sd, n_eyes)
    eye_bcva = rng.normal(0.0, m.bcva_eye_sd, n_eyes)
    eye_centre = rng.normal(0.0, m.centre_sd, n_eyes)
    eye_irhrf = rng.normal(0.0, m.irhrf_eye_sd, n_eyes)
    eye_vd = rng.normal(0.0, m.vd_eye_sd, n_eyes)
    # Dominant vitreous states in their exact proportions (then shuffled): the state is eye-level, so
    # drawing it eye by eye would let a cohort of ~100 eyes miss OLIVES' prevalences by chance.
    counts = np.floor(np.asarray(m.vitreous_state_probs) * n_eyes).astype(int)
    counts[0] += n_eyes - counts.sum()
    eye_vitreous = rng.permutation(np.repeat(np.arange(3), counts))

    # Eyes -> visits: anti-VEGF treatment lowers edema over the first visits, with noise.
    visit_eye = np.repeat(np.arange(n_eyes), n_visits)
    visit_index = np.concatenate([np.arange(n) for n in n_visits])
    n_vis, n_sl = len(visit_eye), SLICES_PER_VOLUME
    treated = 1.0 - np.exp(-visit_index / 3.0)
    severity = (eye_severity[visit_eye] - eye_response[visit_eye] * treated
                + rng.normal(0.0, m.visit_noise_sd, n_vis))

    # Visits -> 49 B-scans: edema is worst at the lesion centre and varies from slice to slice.
    centre = eye_centre[visit_eye] + rng.normal(0.0, m.centre_drift_sd, n_vis)
    distance = (np.arange(n_sl)[None, :] - FOVEAL_SLICE - centre[:, None]) / FOVEAL_SLICE
    edema = (severity[:, None] - m.slice_falloff * distance**2
             + m.slice_noise_sd * smooth_noise(rng, n_vis, n_sl, m.slice_noise_width)
             + m.slice_detail_sd * smooth_noise(rng, n_vis, n_sl, 3.0))
    thickness = slice_thickness(eye_healthy[visit_eye][:, None], edema, m)
    cst = np.clip(np.round(central_mean(thickness) + rng.normal(0.0, m.cst_noise_sd, n_vis)), 150, 800)
    bcva = np.round(m.bcva_healthy - m.bcva_edema_slope * softplus(central_mean(edema))
                    - m.bcva_chronic_slope * eye_severity[visit_eye] + eye_bcva[visit_eye]
                    + rng.normal(0.0, m.bcva_noise_sd, n_vis))
    bcva = np.clip(bcva, 0, 100)

    drt = edema + m.drt_noise_sd * smooth_noise(rng, n_vis, n_sl, m.drt_noise_width) > m.drt_threshold
    irf = edema + m.irf_noise_sd * smooth_noise(rng, n_vis, n_sl, m.irf_noise_width) > m.irf_threshold
    foveal_distance = np.abs(np.arange(n_sl) - FOVEAL_SLICE)[None, :] / FOVEAL_SLICE
    irhrf = (m.irhrf_edema_weight * softplus(edema - m.irhrf_edema_onset) + eye_irhrf[visit_eye][:, None]
             - m.irhrf_slice_falloff * foveal_distance**2
             + m.irhrf_visit_sd * rng.standard_normal((n_vis, 1))
             + m.irhrf_noise_sd * smooth_noise(rng, n_vis, n_sl, m.irhrf_noise_width)
             + m.irhrf_white_sd * rng.standard_normal((n_vis, n_sl))) > m.irhrf_threshold
    vd = (eye_vd[visit_eye][:, None] + m.vd_visit_sd * rng.standard_normal((n_vis, 1))
          + m.vd_noise_sd * smooth_noise(rng, n_vis, n_sl, m.vd_noise_width)
          + m.vd_white_sd * rng.standard_normal((n_vis, n_sl))) > m.vd_threshold

    # Vitreous: a contiguous run of B-scans departs from the eye's dominant state.
    dominant = eye_vitreous[visit_eye]
    deviation_score = smooth_noise(rng, n_vis, n_sl, m.vitreous_run_width)
    deviate = np.zeros((n_vis, n_sl), dtype=bool)
    other = np.empty(n_vis, dtype=int)
    for k in range(3):
        rows = dominant == k
        if rows.any():
            deviate[rows] = deviation_score[rows] > np.quantile(deviation_score[rows], 1.0 - m.vitreous_deviation[k])
            other[rows] = rng.choice(3, size=rows.sum(), p=m.vitreous_transition[k])
    state = np.where(deviate, other[:, None], dominant[:, None])

    first_or_last = np.r_[True, visit_eye[1:] != visit_eye[:-1]] | np.r_[visit_eye[1:] != visit_eye[:-1], True]
    eye_of_row = np.repeat(visit_eye, n_sl)
    patient_of_row = eye_patient[eye_of_row]
    visit_of_row = np.repeat(visit_index, n_sl)
    slice_of_row = np.tile(np.arange(n_sl), n_vis)
    table = pd.DataFrame({
        "sample_id": [f"P{p:04d}-E{e:04d}-V{v:02d}-S{s:02d}" for p, e, v, s in
                      zip(patient_of_row, eye_of_row, visit_of_row, slice_of_row)],
        "patient": patient_of_row,
        "eye": eye_of_row,
        "laterality": laterality[eye_of_row],
        "visit": visit_of_row,
        "slice": slice_of_row,
        "BCVA": np.repeat(bcva, n_sl).astype(int),
        "CST": np.repeat(cst, n_sl).astype(int),
        "IRHRF": irhrf.ravel().astype(int),
        "PAVF": (state == 1).ravel().astype(int),
        "FAVF": (state == 0).ravel().astype(int),
        "IRF": irf.ravel().astype(int),
        "DRT_ME": drt.ravel().astype(int),
        "VD": vd.ravel().astype(int),
        "severity": edema.ravel().round(3),
        "thickness": thickness.ravel().round(1),
        "eye_seed": (seed * 1_000_003 + eye_of_row) % (2**31),
        "scan_seed": np.arange(n_vis * n_sl),
        "labelled": np.repeat(first_or_last, n_sl),
    })
    return table
