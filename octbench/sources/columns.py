"""Shared input checks of the table sources: columns found by name, clinical values validated,
patient ids parsed, tables cut down by patient.

Every message names the file, the column and (for values) the CSV line, so a user can fix the
table without reading octbench's code.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from octbench.errors import OctbenchError, closest


def normalised(name: str) -> str:
    """'Fluid (IRF)' -> 'fluidirf', 'CST ' -> 'cst', 'DRT/ME' -> 'drtme': headers differ in case,
    spaces and punctuation between releases, never in their letters."""
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def find_column(frame: pd.DataFrame, spellings: tuple[str, ...], what: str, file: Path) -> str:
    """The header of `frame` that matches one of `spellings` (after normalising), or a clear error."""
    by_norm = {normalised(c): c for c in frame.columns}
    for spelling in spellings:
        if normalised(spelling) in by_norm:
            return by_norm[normalised(spelling)]
    raise OctbenchError(f"{file}: no column for {what} (looked for {', '.join(map(repr, spellings))})"
                        f"{closest(spellings[0], frame.columns)}; its columns are: "
                        f"{', '.join(map(repr, frame.columns))}")


def read_csv(file: Path) -> pd.DataFrame:
    if not Path(file).exists():
        raise OctbenchError(f"table {file} does not exist; check the path (or --tables / [cohort] tables)")
    try:
        return pd.read_csv(file)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise OctbenchError(f"{file}: not a readable CSV table: {error}") from None


def shown(value) -> str:
    """A cell as a user reads it in the CSV: -5, 3.5, 'abc', or empty."""
    if pd.isna(value):
        return "empty"
    return repr(value) if isinstance(value, str) else str(value.item() if hasattr(value, "item") else value)


def csv_line(frame: pd.DataFrame, position: int) -> int:
    """Line number in the CSV file of the row at `position` (the header is line 1)."""
    return int(frame.index[position]) + 2


class Problems:
    """Collects every problem of a cohort's tables, so that one run reports all of them (a user
    fixes the export once) instead of the first only."""

    def __init__(self):
        self.messages: list[str] = []

    def check(self, function, *args):
        """function(*args), or None with its problem noted."""
        try:
            return function(*args)
        except OctbenchError as error:
            self.add(error)
            return None

    def add(self, error: OctbenchError) -> None:
        self.messages.append(str(error))

    def raise_all(self) -> None:
        if len(self.messages) == 1:
            raise OctbenchError(self.messages[0])
        if self.messages:
            raise OctbenchError(f"{len(self.messages)} problems in the cohort's tables; fix them and run again:\n  "
                                + "\n  ".join(self.messages))


def bad_rows(frame: pd.DataFrame, column: str, bad: pd.Series, file: Path, rule: str) -> OctbenchError:
    """'file: line 5 has 'BCVA' = empty (and 2 more rows: lines 9, 12); rule'."""
    positions = np.flatnonzero(bad.to_numpy())
    first = positions[0]
    message = f"{file}: line {csv_line(frame, first)} has {column.strip()!r} = {shown(frame[column].iloc[first])}"
    if len(positions) > 1:
        lines = ", ".join(str(csv_line(frame, p)) for p in positions[1:6])
        message += f" (and {len(positions) - 1} more rows: lines {lines}{', ...' if len(positions) > 6 else ''})"
    return OctbenchError(f"{message}; {rule}")


# Plausible values: BCVA as an ETDRS letter score, CST as a thickness in micrometres. Outside them
# a value is a typo or another unit (logMAR, Snellen, millimetres), which would silently corrupt
# the classes clinical SupCon is trained on.
CLINICAL_RANGES = {"BCVA": (0, 100, "an ETDRS letter score from 0 to 100 (convert logMAR or Snellen values)"),
                   "CST": (50, 2000, "a thickness in micrometres from 50 to 2000 (not millimetres)")}


def clinical_values(frame: pd.DataFrame, column: str, file: Path, name: str | None = None) -> pd.Series:
    """A numeric clinical value: present, a number, in its plausible range (BCVA, CST) or not negative."""
    values = pd.to_numeric(frame[column], errors="coerce")
    low, high, unit = CLINICAL_RANGES.get(name or normalised(column).upper(), (0, np.inf, "not negative"))
    bad = values.isna() | (values < low) | (values > high)
    if bad.any():
        raise bad_rows(frame, column, bad, file, f"it must be {unit}; fix or drop those rows")
    return values


def integer_ids(frame: pd.DataFrame, column: str, file: Path) -> pd.Series:
    """Patient and eye ids: `232.0` (how the OLIVES biomarker tables write them) is patient 232."""
    values = pd.to_numeric(frame[column], errors="coerce")
    bad = values.isna() | (values != values.round())
    if bad.any():
        raise bad_rows(frame, column, bad, file, "ids must be whole numbers")
    return values.astype(np.int64)


def binary_labels(frame: pd.DataFrame, column: str, file: Path) -> pd.Series:
    values = pd.to_numeric(frame[column], errors="coerce")
    bad = ~values.isin([0, 1])
    if bad.any():
        raise bad_rows(frame, column, bad, file, "biomarker labels must be 0 or 1")
    return values.astype(np.int64)


def limit_by_patient(frame: pd.DataFrame, limit: int | None, seed: int) -> pd.DataFrame:
    """At most `limit` rows, taken round-robin over patients (a random row of each patient in turn),
    so a small cohort keeps every patient it can and its patient-level split keeps its meaning.
    Deterministic: `octbench synth --limit N` renders exactly the rows a run with `--limit N` reads."""
    if limit is None or len(frame) <= limit:
        return frame
    shuffled = frame.sample(frac=1.0, random_state=seed)
    turn = shuffled.groupby("patient", sort=False).cumcount()
    chosen = turn.sort_values(kind="stable").index[:limit]
    return frame.loc[frame.index.isin(chosen)]
