import numpy as np
import pandas as pd
import pytest

from octbench.clinical import class_ids, parse_clinical_spec
from octbench.errors import OctbenchError

COLUMNS = ["BCVA", "CST", "eye", "patient"]


def test_unweighted_labels_share_the_loss_equally():
    assert parse_clinical_spec("cst,eye", COLUMNS) == (("CST", 0.5), ("eye", 0.5))


def test_weights_and_case_insensitive_names():
    assert parse_clinical_spec("bcva=0.3, CST=0.7", COLUMNS) == (("BCVA", 0.3), ("CST", 0.7))


@pytest.mark.parametrize("spec, message", [
    ("bvca", "did you mean 'BCVA'"),
    ("bcva=x", "not a number"),
    ("bcva=0.3,cst", "every label or to none"),
    ("cst,cst", "twice"),
    ("bcva=-1", "positive"),
])
def test_bad_specs_are_refused_with_the_reason(spec, message):
    with pytest.raises(OctbenchError, match=message):
        parse_clinical_spec(spec, COLUMNS)


def test_exact_value_classes_and_quantile_bins():
    values = pd.Series([250, 300, 250, 400, 300, 251], name="CST")
    ids = class_ids(values)
    assert (ids[0] == ids[2]) and (ids[1] == ids[4]) and len(set(ids)) == 4
    binned = class_ids(pd.Series(np.arange(100), name="CST"), bins=4)
    assert sorted(np.bincount(binned)) == [25, 25, 25, 25]


def test_missing_clinical_value_names_column_and_row():
    with pytest.raises(OctbenchError, match=r"'BCVA'.*row 2"):
        class_ids(pd.Series([80, 75, None], name="BCVA"))
