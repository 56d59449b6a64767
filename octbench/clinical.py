"""Clinical labels as contrastive classes: parse `--clinical` and turn values into class ids.

`--clinical cst,eye` gives each label an equal share of the loss; `--clinical bcva=0.3,cst=0.7`
sets the weights of the seed paper's linear combination. Values are classes by exact value (the
paper's choice: integer letters and µm) or, with `--bins N`, by N quantile bins of the pool.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from octbench.errors import OctbenchError, closest


def parse_clinical_spec(spec: str, columns) -> tuple[tuple[str, float], ...]:
    """'bcva=0.3,cst=0.7' -> (('BCVA', 0.3), ('CST', 0.7)), matching cohort columns by name
    regardless of case; unweighted labels share the loss equally."""
    by_lower = {str(c).lower(): str(c) for c in columns}
    parsed = []
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            raise OctbenchError(f"--clinical {spec!r}: empty label name; write e.g. 'bcva,cst' or 'bcva=0.3,cst=0.7'")
        name, _, weight_text = item.partition("=")
        column = by_lower.get(name.strip().lower())
        if column is None:
            raise OctbenchError(f"--clinical names {name.strip()!r}, which the cohort lacks"
                                f"{closest(name.strip(), by_lower.values())}; "
                                f"clinical columns: {', '.join(by_lower.values())}")
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
    if all(w is None for _, w in parsed):
        return tuple((c, 1.0 / len(parsed)) for c, _ in parsed)
    if any(w is None for _, w in parsed):
        raise OctbenchError(f"--clinical {spec!r}: give a weight to every label or to none")
    return tuple(parsed)


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
    """(n_rows, n_labels) class ids for the (column, weight) pairs of a parsed spec."""
    if not clinical:
        return np.zeros((len(rows), 0), dtype=np.int64)
    return np.stack([class_ids(rows[column], bins) for column, _ in clinical], axis=1)
