"""The label model of the simulated cohort: patients -> eyes -> visits -> 49 B-scans.

Every number below is calibrated to the real OLIVES label tables (their figures are in
`shared/olives/README.md` and checked by `tests/test_cohort_calibration.py`), never to a method
comparison. The structure mirrors OLIVES: most patients contribute one eye, each eye is seen at many
visits (median ~17), BCVA (letters) and CST (µm) are integers shared by the 49 B-scans of a visit,
and biomarkers are labelled per B-scan on the first and last visit of each eye.

A latent edema severity drives CST, BCVA, DRT/ME, IRF and IRHRF together; the vitreous biomarkers
(PAVF, FAVF) and vitreous debris follow an eye-level state, as they do in OLIVES.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

SLICES_PER_VOLUME = 49
FOVEAL_SLICE = 24


@dataclass(frozen=True)
class LabelModel:
    # Cohort shape (OLIVES: 71 patients, 76 eyes, 3-27 visits per eye, median 17.5).
    second_eye_rate: float = 0.08
    visits_mean: float = 17.0
    visits_sd: float = 6.0
    visits_min: int = 3
    visits_max: int = 27
    # Edema severity: eye baseline, treatment response over visits, visit-to-visit noise.
    response_mean: float = 0.9
    response_sd: float = 0.5
    visit_noise_sd: float = 0.35
    # CST (µm) = healthy thickness + edema thickening (OLIVES pool: mean 308, sd 84, 151-723).
    cst_healthy_mean: float = 266.0
    cst_healthy_sd: float = 22.0
    cst_edema_scale: float = 155.0
    cst_noise_sd: float = 12.0
    # BCVA (letters) falls with edema (OLIVES pool: mean 79.5, sd 10.5, 27-98).
    bcva_healthy: float = 85.7
    bcva_edema_slope: float = 10.0
    bcva_eye_sd: float = 3.5
    bcva_noise_sd: float = 4.0
    # Per-B-scan edema: eye offset, central slices worse, smooth slice-to-slice noise.
    slice_falloff: float = 1.1
    slice_noise_sd: float = 0.86
    drt_noise_sd: float = 0.3
    irf_noise_sd: float = 0.75
    drt_threshold: float = -0.17
    irf_threshold: float = -0.8
    # IRHRF: eye propensity plus edema (OLIVES: CST ranks it with AUROC 0.63).
    irhrf_edema_weight: float = 0.25
    irhrf_eye_sd: float = 1.0
    irhrf_noise_sd: float = 0.7
    irhrf_threshold: float = -0.85
    # Vitreous: each eye has a dominant state; B-scans deviate in contiguous runs.
    vitreous_state_probs: tuple = (0.60, 0.32, 0.08)  # FAVF, PAVF, detached
    vitreous_deviation: float = 0.19
    # Vitreous debris: eye propensity, weakly seen at visits.
    vd_eye_sd: float = 1.2
    vd_noise_sd: float = 0.7
    vd_threshold: float = 0.78


def smooth_noise(rng: np.random.Generator, n_rows: int, length: int, width: float) -> np.ndarray:
    """Unit-variance noise that changes smoothly along axis 1 (biomarkers drift slice to slice)."""
    white = rng.standard_normal((n_rows, length + 6 * int(width)))
    kernel = np.exp(-0.5 * (np.arange(-3 * int(width), 3 * int(width) + 1) / width) ** 2)
    smooth = np.stack([np.convolve(row, kernel, mode="valid") for row in white])[:, :length]
    return smooth / np.sqrt((kernel**2).sum())


def simulate_labels(n_patients: int, seed: int, model: LabelModel = LabelModel()) -> pd.DataFrame:
    """One row per B-scan of every visit of every eye; biomarkers for every row.

    Columns: sample_id, patient, eye, laterality, visit, slice, BCVA, CST, the six biomarkers,
    severity (slice-level edema, used by the renderer), eye_seed, scan_seed, labelled (first or
    last visit of the eye, the B-scans that carry expert biomarker labels in OLIVES).
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

    eye_severity = rng.standard_normal(n_eyes)
    eye_response = rng.normal(m.response_mean, m.response_sd, n_eyes)
    eye_cst = rng.normal(m.cst_healthy_mean, m.cst_healthy_sd, n_eyes)
    eye_bcva = rng.normal(0.0, m.bcva_eye_sd, n_eyes)
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
    treated = 1.0 - np.exp(-visit_index / 3.0)
    severity = (eye_severity[visit_eye] - eye_response[visit_eye] * treated
                + rng.normal(0.0, m.visit_noise_sd, len(visit_eye)))
    thickening = np.log1p(np.exp(1.6 * severity)) / 1.6  # softplus: thickness cannot fall below healthy
    cst = np.round(eye_cst[visit_eye] + m.cst_edema_scale * thickening
                   + rng.normal(0.0, m.cst_noise_sd, len(visit_eye)))
    bcva = np.round(m.bcva_healthy - m.bcva_edema_slope * thickening * 1.6 + eye_bcva[visit_eye]
                    + rng.normal(0.0, m.bcva_noise_sd, len(visit_eye)))
    bcva = np.clip(bcva, 0, 100)
    cst = np.clip(cst, 150, 800)

    # Visits -> 49 B-scans.
    n_vis, n_sl = len(visit_eye), SLICES_PER_VOLUME
    distance = np.abs(np.arange(n_sl) - FOVEAL_SLICE) / FOVEAL_SLICE
    edema = (severity[:, None] - m.slice_falloff * distance[None, :] ** 2
             + m.slice_noise_sd * smooth_noise(rng, n_vis, n_sl, 4.0))
    drt = edema + m.drt_noise_sd * smooth_noise(rng, n_vis, n_sl, 3.0) > m.drt_threshold
    irf = edema + m.irf_noise_sd * smooth_noise(rng, n_vis, n_sl, 2.0) > m.irf_threshold
    irhrf = (m.irhrf_edema_weight * edema + eye_irhrf[visit_eye][:, None]
             + m.irhrf_noise_sd * smooth_noise(rng, n_vis, n_sl, 3.0)) > m.irhrf_threshold
    vd = (eye_vd[visit_eye][:, None]
          + m.vd_noise_sd * smooth_noise(rng, n_vis, n_sl, 4.0)) > m.vd_threshold

    # Vitreous: a contiguous run of B-scans departs from the eye's dominant state.
    state = np.repeat(eye_vitreous[visit_eye][:, None], n_sl, axis=1)
    deviation_score = smooth_noise(rng, n_vis, n_sl, 5.0)
    deviate = deviation_score > np.quantile(deviation_score, 1.0 - m.vitreous_deviation)
    other = (state + rng.integers(1, 3, size=(n_vis, 1))) % 3
    state = np.where(deviate, other, state)

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
        "eye_seed": (seed * 1_000_003 + eye_of_row) % (2**31),
        "scan_seed": np.arange(n_vis * n_sl),
        "labelled": np.repeat(first_or_last, n_sl),
    })
    return table
