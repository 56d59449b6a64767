"""Clinical labels as contrastive classes: parse `--clinical` and turn values into class ids.

`--clinical cst,eye` gives each label an equal share of the loss; `--clinical bcva=0.3,cst=0.7`
sets the weights of the seed paper's linear combination; `--clinical cst,simclr=0.5` adds SimCLR's
instance term (each B-scan its own class) with weight 0.5 and gives CST the rest. Values are
classes by exact value (the paper's choice: integer letters and µm) or, with `--bins N`, by N
quantile bins of the pool.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from octbench.errors import OctbenchError, closest

INSTANCE_TERM = "simclr"  # not a column: every B-scan is its own class (SimCLR's NT-Xent)


def parse_clinical_spec(spec: str, columns) -> tuple[tuple[str, float], ...]:
    """'bcva=0.3,cst=0.7' -> (('BCVA', 0.3), ('CST', 0.7)), matching cohort columns by name
    regardless of case. Labels without a weight share equally what the given weights leave of 1."""
    by_lower = {str(c).lower(): str(c) for c in columns} | {INSTANCE_TERM: INSTANCE_TERM}
    parsed = []
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            raise OctbenchError(f"--clinical {spec!r}: empty label name; write e.g. 'bcva,cst' or 'bcva=0.3,cst=0.7'")
        name, _, weight_text = item.partition("=")
        column = by_lower.get(name.strip().lower())
        if column is None:
            raise OctbenchError(f"--clinical names {name.strip()!r}, which the cohort lacks"
                                f"{closest(name.strip(), by_lower.values())}; "
                                f"choose from: {', '.join(by_lower.values())}")
        try:
            weight = float(weight_text) if weight_text else None
        except ValueError:
            raise OctbenchError(f"--clinical {item!r}: weight {weight_text!r} is not a number") from None
        if weight is not None and not weight > 0:
            raise OctbenchError(f"--clinical {item!r}: a weight must be positive")
        parsed.append((column, weight))
    names = [c for c, _ in parsed]
    if len(set(names)) != len(names):
        raise OctbenchError(f"--clinical {spec!r} names a label twice")
    unweighted = [c for c, w in parsed if w is None]
    if not unweighted:
        return tuple(parsed)
    left = 1.0 - sum(w for _, w in parsed if w is not None)
    if left <= 0:
        raise OctbenchError(f"--clinical {spec!r}: the given weights leave nothing of 1 for "
                            f"{', '.join(unweighted)}; weight every label or lower the others")
    return tuple((c, left / len(unweighted) if w is None else w) for c, w in parsed)


def class_ids(values: pd.Series, bins: int | None = None) -> np.ndarray:
    """Class id per row: one class per exact value, or per quantile bin when `bins` is set."""
    if values.isna().any():
        row = int(np.flatnonzero(values.isna().to_numpy())[0])
        raise OctbenchError(f"clinical column {values.name!r} has missing values (first at row {row}); "
                            "fill or drop those rows")
    if bins and pd.api.types.is_numeric_dtype(values) and values.nunique() > bins:
        return pd.qcut(values, bins, labels=False, duplicates="drop").to_numpy(dtype=np.int64)
    return pd.factorize(values, sort=True)[0].astype(np.int64)


def clinical_class_matrix(rows: pd.DataFrame, clinical, bins: int | None) -> np.ndarray:
    """(n_rows, n_labels) class ids for the clinical columns of a parsed spec (the instance term
    needs none)."""
    columns = [column for column, _ in clinical if column != INSTANCE_TERM]
    if not columns:
        return np.zeros((len(rows), 0), dtype=np.int64)
    return np.stack([class_ids(rows[column], bins) for column in columns], axis=1)
