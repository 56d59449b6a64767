"""Shared input checks of the table sources: columns found by name, clinical values validated,
patient ids parsed, tables cut down by patient.

Every message names the file, the column and (for values) the CSV line, so a user can fix the
table without reading octbench's code.
"""

from __future__ import annotations

import csv
import io
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
    """A table as pandas reads it, once its text and header pass the checks below: pandas would
    decode another encoding with a bare UnicodeDecodeError, read a ';'-separated export as one
    column, and rename a repeated header `X.1` without a word."""
    if not Path(file).exists():
        raise OctbenchError(f"table {file} does not exist; check the path (or --tables / [cohort] tables)")
    text = utf8_text(Path(file))
    check_separator(text, file)
    check_repeated_columns(first_row(text, ","), file)
    try:
        return pd.read_csv(io.StringIO(text))
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise OctbenchError(f"{file}: not a readable CSV table: {error}") from None


def utf8_text(file: Path) -> str:
    """The file's text; a byte-order mark (as spreadsheet programs write) is dropped."""
    try:
        data = file.read_bytes()
    except OSError as error:
        raise OctbenchError(f"table {file} cannot be read ({error.strerror}); check the path and its "
                            "permissions") from None
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as error:
        line = data[:error.start].count(b"\n") + 1
        raise OctbenchError(f"{file}: not UTF-8 text (byte 0x{data[error.start]:02x} at line {line}); save it as "
                            "UTF-8 and run again") from None


def first_row(text: str, delimiter: str) -> list[str]:
    """The header row as split by `delimiter` (blank lines before it are skipped, as pandas does)."""
    rows = csv.reader(io.StringIO(text), delimiter=delimiter)
    return next((row for row in rows if any(cell.strip() for cell in row)), [])


# What a spreadsheet saves as "CSV" where the decimal mark is a comma, or as text.
OTHER_SEPARATORS = {";": "semicolon", "\t": "tab"}


def check_separator(text: str, file: Path) -> None:
    """Refuse a header that splits into more fields on ';' or a tab than on ',': read as CSV, its
    whole header would be one column and every column would be reported missing."""
    commas = len(first_row(text, ","))
    for separator, name in OTHER_SEPARATORS.items():
        fields = len(first_row(text, separator))
        if fields > commas:
            raise OctbenchError(f"{file}: looks {separator!r}-separated ({name}s split its header into {fields} "
                                f"columns, commas into {commas}); save it comma-separated (CSV) and run again")


def check_repeated_columns(header: list[str], file: Path) -> None:
    """Refuse a header naming one column twice (after normalising, as find_column matches): which
    copy octbench would read is not the user's choice."""
    first_at: dict[str, int] = {}
    repeats = []
    for number, name in enumerate(header, start=1):
        key = normalised(name)
        if not key:  # unnamed columns (an index pandas wrote) are never looked up
            continue
        if key in first_at:
            earlier = header[first_at[key] - 1]
            also = "" if earlier == name else f" as {earlier!r}"
            repeats.append(f"{name!r} (columns {first_at[key]}{also} and {number})")
        else:
            first_at[key] = number
    if repeats:
        raise OctbenchError(f"{file}: the header repeats column {', '.join(repeats)}; octbench finds columns by "
                            "name, so rename or remove the extra copy")


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
    if limit is not None and limit < 1:  # a slice would silently drop rows from the end instead
        raise OctbenchError(f"limit {limit}: keep at least 1 row per table (--limit N with N >= 1, or "
                            "[cohort] limit), or leave it out to keep every row")
    if limit is None or len(frame) <= limit:
        return frame
    shuffled = frame.sample(frac=1.0, random_state=seed)
    turn = shuffled.groupby("patient", sort=False).cumcount()
    chosen = turn.sort_values(kind="stable").index[:limit]
    return frame.loc[frame.index.isin(chosen)]
