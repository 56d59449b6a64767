"""The simulated cohort reproduces every OLIVES label figure within the tolerance.

The same measuring code, run on the real OLIVES tables, must give the README's figures, so the
comparison is like for like.
"""

from pathlib import Path

import pandas as pd
import pytest

from octbench.benchmark import load_benchmark
from octbench.simulate.calibration import OLIVES_FIGURES, TOLERANCE, cohort_figures, share_with_other_eye
from octbench.simulate.cohort import select_scans
from octbench.simulate.labels import simulate_labels

OLIVES = Path(__file__).resolve().parents[2] / "shared" / "olives" / "final_csvs_1"
DEFAULT = load_benchmark("default").cohort


@pytest.fixture(scope="module")
def default_labels():
    return simulate_labels(DEFAULT.patients, DEFAULT.seed)


@pytest.mark.parametrize("figure", sorted(f for f in OLIVES_FIGURES if not f.startswith("share")))
def test_default_cohort_matches_olives(default_labels, figure):
    measured = cohort_figures(default_labels)[figure]
    assert abs(measured - OLIVES_FIGURES[figure]) <= TOLERANCE, f"{figure}: {measured:.3f}"


def test_pool_granularity_positives_come_from_other_eyes(default_labels):
    """The pretraining pool (training patients only) keeps OLIVES' granularity: most volumes share
    their exact CST and BCVA with a volume of another eye."""
    table = select_scans(default_labels, DEFAULT)
    pool = default_labels[default_labels["patient"].isin(table.loc[table["in_pool"], "patient"])]
    volumes = pool.groupby(["eye", "visit"], as_index=False)[["CST", "BCVA"]].first()
    assert abs(share_with_other_eye(volumes, "CST") - 0.91) <= TOLERANCE
    assert abs(share_with_other_eye(volumes, "BCVA") - 0.98) <= TOLERANCE
    visits_per_eye = volumes.groupby("eye").size()
    assert visits_per_eye.median() >= 12 and volumes["CST"].dtype.kind == "i" and volumes["BCVA"].dtype.kind == "i"


@pytest.mark.skipif(not OLIVES.exists(), reason="the OLIVES label tables (../shared/olives) are not here")
def test_measuring_code_reproduces_the_real_olives_figures():
    columns = {"IR HRF": "IRHRF", "Partially attached vitreous face": "PAVF",
               "Fully attached vitreous face": "FAVF", "Fluid (IRF)": "IRF", "DRT/ME": "DRT_ME",
               "Vitreous debris": "VD", "Eye_ID": "eye"}
    labelled = pd.read_csv(OLIVES / "biomarker_csv_files" / "complete_biomarker_training.csv").rename(columns=columns)
    labelled["visit"] = labelled.iloc[:, 0].str.split("/").str[-3]
    labelled["labelled"] = True
    pool = pd.read_csv(OLIVES / "datasets_combined" / "prime_trex_compressed.csv").rename(columns={"Eye_ID": "eye"})
    pool["visit"] = pool["File_Path"].str.split("/").str[-3]
    pool["labelled"] = False
    figures = cohort_figures(labelled)
    for name, value in figures.items():
        if not name.startswith("share"):
            assert abs(value - OLIVES_FIGURES[name]) <= 0.015, name
    volumes = pool.groupby(["eye", "visit"], as_index=False)[["CST", "BCVA"]].first()
    assert share_with_other_eye(volumes, "CST") == pytest.approx(0.91, abs=0.01)
    assert share_with_other_eye(volumes, "BCVA") == pytest.approx(0.98, abs=0.01)
