import numpy as np
import pandas as pd
import pytest

from octbench.clinical import class_ids, clinical_class_matrix, parse_clinical_spec
from octbench.cohort import Cohort
from octbench.errors import OctbenchError

COLUMNS = ["BCVA", "CST", "eye", "patient"]


def test_unweighted_labels_share_the_loss_equally():
    assert parse_clinical_spec("cst,eye", COLUMNS) == (("CST", 0.5), ("eye", 0.5))


def test_weights_and_case_insensitive_names():
    assert parse_clinical_spec("bcva=0.3, CST=0.7", COLUMNS) == (("BCVA", 0.3), ("CST", 0.7))


@pytest.mark.parametrize("spec, message", [
    ("bvca", "did you mean 'BCVA'"),
    ("bcva=x", "not a number"),
    ("bcva=0.6,cst=0.5,eye", "leave nothing of 1 for eye"),
    ("cst,cst", "twice"),
    ("bcva=-1", "positive"),
])
def test_bad_specs_are_refused_with_the_reason(spec, message):
    with pytest.raises(OctbenchError, match=message):
        parse_clinical_spec(spec, COLUMNS)


def test_unweighted_labels_share_what_the_weights_leave_and_simclr_is_a_term():
    assert parse_clinical_spec("cst,simclr=0.5", COLUMNS) == (("CST", 0.5), ("simclr", 0.5))
    parsed = parse_clinical_spec("bcva,cst,simclr=0.2", COLUMNS)
    assert [c for c, _ in parsed] == ["BCVA", "CST", "simclr"]
    np.testing.assert_allclose([w for _, w in parsed], [0.4, 0.4, 0.2])


def test_any_cohort_column_can_be_a_class_and_the_instance_term_needs_no_column():
    rows = pd.DataFrame({"BCVA": [80, 80, 75], "DRSS": [35, 43, 35]})
    clinical = parse_clinical_spec("drss,simclr,bcva", ["BCVA", "DRSS"])
    matrix = clinical_class_matrix(rows, clinical, bins=None)
    assert matrix.shape == (3, 2)
    assert matrix[0, 0] == matrix[2, 0] != matrix[1, 0]  # DRSS 35, 43, 35
    assert matrix[0, 1] == matrix[1, 1] != matrix[2, 1]  # BCVA 80, 80, 75


def test_exact_value_classes_and_quantile_bins():
    values = pd.Series([250, 300, 250, 400, 300, 251], name="CST")
    ids = class_ids(values)
    assert (ids[0] == ids[2]) and (ids[1] == ids[4]) and len(set(ids)) == 4
    binned = class_ids(pd.Series(np.arange(100), name="CST"), bins=4)
    assert sorted(np.bincount(binned)) == [25, 25, 25, 25]


def test_missing_clinical_value_names_column_and_row():
    with pytest.raises(OctbenchError, match=r"'BCVA'.*row 2"):
        class_ids(pd.Series([80, 75, None], name="BCVA"))


@pytest.mark.parametrize("method, clinical, bins, name", [
    ("clinical-supcon", None, None, "clinical-supcon-bcva0.5-cst0.5"),  # generic: labels in the name
    ("clinical-supcon-eye", None, None, "clinical-supcon-eye"),  # an entry's alias on its own labels
    ("clinical-supcon-eye", "bcva", None, "clinical-supcon-bcva1"),  # --clinical replaces the entry's labels
    ("clinical-supcon-cst", None, 4, "clinical-supcon-cst1-bins4"),
])
def test_run_names_say_the_labels_a_run_used_once(method, clinical, bins, name):
    from octbench.benchmark import load_benchmark
    from octbench.registry import get_method
    from octbench.run import RunRequest, planned_run

    request = RunRequest(benchmark=load_benchmark("default"), method=method, clinical=clinical, bins=bins)
    cls = get_method(request.resolved_entry().method)
    cohort = Cohort(table=pd.DataFrame({c: [1] for c in ["BCVA", "CST", "eye", "patient"]}), images=np.zeros(1))
    _, identity, folder = planned_run(request, cls, cohort)
    assert identity.name.split("_")[0] == name and folder.name == identity.name
    assert identity.name.endswith("-" + identity.digest[:8])
