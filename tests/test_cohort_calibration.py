"""The simulated cohort reproduces every OLIVES label figure within the tolerance.

The same measuring code, run on the real OLIVES tables, must give the README's figures, so the
comparison is like for like.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from octbench.benchmark import load_benchmark
from octbench.simulate.calibration import (
    OLIVES_FIGURES,
    POOL_FIGURES,
    labelled_figures,
    pool_figures,
    within_tolerance,
)
from octbench.simulate.cohort import select_scans
from octbench.simulate.labels import FOVEAL_SLICE, simulate_labels

OLIVES = Path(__file__).resolve().parents[2] / "shared" / "olives" / "final_csvs_1"
DEFAULT = load_benchmark("default").cohort
BIOMARKER_NAMES = {"IR HRF": "IRHRF", "Partially attached vitreous face": "PAVF",
                   "Fully attached vitreous face": "FAVF", "Fluid (IRF)": "IRF", "DRT/ME": "DRT_ME",
                   "Vitreous debris": "VD", "Eye_ID": "eye"}


@pytest.fixture(scope="module")
def default_labels():
    return simulate_labels(DEFAULT.patients, DEFAULT.seed)


@pytest.fixture(scope="module")
def default_pool(default_labels):
    """Every volume of the patients whose B-scans make the default pretraining pool."""
    table = select_scans(default_labels, DEFAULT)
    return default_labels[default_labels["patient"].isin(table.loc[table["in_pool"], "patient"])]


@pytest.fixture(scope="module")
def default_figures(default_labels, default_pool):
    return {**labelled_figures(default_labels[default_labels["labelled"]]), **pool_figures(default_pool)}


@pytest.mark.parametrize("figure", sorted(OLIVES_FIGURES))
def test_default_cohort_matches_olives(default_figures, figure):
    measured = default_figures[figure]
    assert within_tolerance(figure, measured), f"{figure}: {measured:.3f}, OLIVES {OLIVES_FIGURES[figure]}"


def test_pool_keeps_olives_granularity(default_pool):
    """Positives of an exact-value contrastive loss come from other eyes, as in OLIVES; the values
    are integers and each eye is seen at many visits."""
    assert set(POOL_FIGURES) <= set(OLIVES_FIGURES)
    volumes = default_pool.groupby(["eye", "visit"], as_index=False)[["CST", "BCVA"]].first()
    assert volumes.groupby("eye").size().median() >= 12
    assert volumes["CST"].dtype.kind == "i" and volumes["BCVA"].dtype.kind == "i"


def test_cst_measures_the_central_b_scans_only(default_labels):
    """Each B-scan has its own thickness: CST follows the foveal B-scans' thickness closely and the
    periphery's only loosely (it is the central 1 mm), so a renderer drawing that thickness keeps
    image and CST consistent without drawing CST into every B-scan."""
    position = (default_labels["slice"] - FOVEAL_SLICE).abs()
    centre = default_labels[position == 0]
    periphery = default_labels[position == 20]
    assert np.corrcoef(centre["CST"], centre["thickness"])[0, 1] > 0.95
    assert np.corrcoef(periphery["CST"], periphery["thickness"])[0, 1] < 0.85


def real_tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The biomarker training set (one row per labelled B-scan) and the pretraining pool of split 1,
    in the columns the measuring code reads."""
    labelled = pd.read_csv(OLIVES / "biomarker_csv_files" / "complete_biomarker_training.csv")
    labelled = labelled.rename(columns=BIOMARKER_NAMES)
    labelled["visit"] = labelled.iloc[:, 0].str.split("/").str[-3]
    labelled["slice"] = labelled["Scan (n/49)"] - 1
    pool = pd.read_csv(OLIVES / "datasets_combined" / "prime_trex_compressed.csv").rename(columns={"Eye_ID": "eye"})
    pool["visit"] = pool["File_Path"].str.split("/").str[-3]
    return labelled, pool


@pytest.mark.skipif(not OLIVES.exists(), reason="the OLIVES label tables (../shared/olives) are not here")
def test_measuring_code_reproduces_the_real_olives_figures():
    labelled, pool = real_tables()
    figures = {**labelled_figures(labelled), **pool_figures(pool)}
    assert set(figures) == set(OLIVES_FIGURES)
    for name, value in figures.items():
        target = OLIVES_FIGURES[name]
        close = abs(value - target) <= (0.01 * target if name.startswith("sd_") else 0.015)
        assert close, f"{name}: {value:.3f} on the real tables, {target} listed"


def test_coarse_brightness_does_not_give_the_labels_away(tmp_path):
    """A logistic probe on 4x4 mean-pooled pixels (benchmarks/pixel_probe.py) stays near chance on
    the default cohort: scans vary in signal strength, contrast, position and tilt as real exports
    do, so only a network that sees the lesions can score well."""
    import importlib.util

    from octbench import BIOMARKERS
    from octbench.sources import load_cohort

    path = Path(__file__).parents[1] / "benchmarks" / "pixel_probe.py"
    spec = importlib.util.spec_from_file_location("pixel_probe", path)
    pixel_probe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pixel_probe)
    benchmark = load_benchmark("default")
    cohort = load_cohort(benchmark, tmp_path)
    parts = {part: cohort.part(part) for part in ("train", "val", "test")}
    features = {part: pixel_probe.pooled_pixels(cohort.images_of(rows), 4) for part, rows in parts.items()}
    scores = [pixel_probe.probe_auroc(features, {part: rows[b].to_numpy(dtype=int) for part, rows in parts.items()},
                                      benchmark.evaluate.probe_c) for b in BIOMARKERS]
    assert np.mean(scores) <= 0.65, dict(zip(BIOMARKERS, np.round(scores, 3)))
