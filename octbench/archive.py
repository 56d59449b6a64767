"""The report's archive: every run's test scores and record in two compact files beside the
leaderboard, so that a clone of the repository rebuilds the tables and figures without the run
folders (which are not committed).

    predictions.csv.gz  one row per run, test B-scan and biomarker: method (as the leaderboard
                        labels it), label_fraction, seed, protocol, sample_id, patient, biomarker,
                        y_true, y_score (scores to 9 significant digits)
    runs.jsonl          one line per run, in the order of its rows above: its metrics.json, its
                        pretraining loss curve (`pretrain_log`, [{step, train_loss}]) when it has
                        one, and under `archive` its number of rows and the commit it was made at

A report rounds every score to the archive's precision whether it reads run folders or the archive,
so that both give byte-identical tables. The gzip stream carries no time stamp: an unchanged
archive is an unchanged file.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from octbench.leaderboard import RunResult
from octbench.record import PREDICTION_COLUMNS, DamagedRecord

PREDICTIONS_FILE = "predictions.csv.gz"
RUNS_FILE = "runs.jsonl"
KEY_COLUMNS = ["method", "label_fraction", "seed", "protocol"]
SIGNIFICANT_DIGITS = 9  # AUROCs need ranks, not 17 digits; at 6, close scores tied and moved an AUROC by 1e-4


@dataclasses.dataclass
class ArchivedRun(RunResult):
    """A run read back from an archive: `folder` is the report folder, which holds no backbone, so
    figures that need one are not drawn from it."""

    recorded_commit: str = "unknown"
    loss_log: pd.DataFrame | None = None

    @property
    def commit(self) -> str:
        return self.recorded_commit


def score_text(values) -> list[str]:
    return [f"{v:.{SIGNIFICANT_DIGITS}g}" for v in np.asarray(values, dtype=float)]


def round_significant(values) -> np.ndarray:
    """Each value as the float its text in the archive (SIGNIFICANT_DIGITS) reads back as, exactly."""
    return np.array([float(text) for text in score_text(values)])


def rounded(run: RunResult) -> RunResult:
    """`run` with its scores at the archive's precision."""
    predictions = run.predictions.copy()
    predictions["y_score"] = round_significant(predictions["y_score"])
    return dataclasses.replace(run, predictions=predictions)


def loss_log(run: RunResult) -> pd.DataFrame | None:
    """The run's logged pretraining loss (step, train_loss), or None for a run without pretraining."""
    if isinstance(run, ArchivedRun):
        return run.loss_log
    path = Path(run.folder) / "pretrain_log.csv"
    if not path.exists():
        return None
    try:
        log = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return None  # a damaged log costs the run its loss curve, not its place in the tables
    if not {"step", "train_loss"} <= set(log.columns):
        return None
    return log.dropna(subset=["train_loss"])[["step", "train_loss"]].reset_index(drop=True)


def has_archive(folder: Path) -> bool:
    return (Path(folder) / PREDICTIONS_FILE).exists() and (Path(folder) / RUNS_FILE).exists()


def write_archive(folder: Path, runs: list[RunResult]) -> None:
    """Write predictions.csv.gz and runs.jsonl of `runs` into `folder`."""
    folder = Path(folder)
    lines = []
    with open(folder / PREDICTIONS_FILE, "wb") as raw, \
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as packed, \
            io.TextIOWrapper(packed, encoding="utf-8", newline="") as text:
        for i, run in enumerate(runs):
            rows = run.predictions[PREDICTION_COLUMNS].copy()
            rows["y_score"] = score_text(rows["y_score"])  # the other columns as the run wrote them
            for column, value in zip(KEY_COLUMNS, key_of(run)):
                rows.insert(KEY_COLUMNS.index(column), column, value)
            rows.to_csv(text, index=False, header=i == 0, lineterminator="\n")
            lines.append(run_line(run, len(rows)))
    (folder / RUNS_FILE).write_text("".join(json.dumps(line) + "\n" for line in lines))


def key_of(run: RunResult) -> tuple[str, float, int, str]:
    return run.label, float(run.metrics["label_fraction"]), int(run.metrics["seed"]), \
        run.metrics.get("protocol", "linear")


def run_line(run: RunResult, n_rows: int) -> dict:
    line = dict(run.metrics)
    log = loss_log(run)
    if log is not None:
        line["pretrain_log"] = [{"step": int(step), "train_loss": float(f"{loss:.{SIGNIFICANT_DIGITS}g}")}
                                for step, loss in zip(log["step"], log["train_loss"]) if math.isfinite(loss)]
    line["archive"] = {"rows": n_rows, "git_commit": run.commit}
    return line


def read_archive(folder: Path) -> list[ArchivedRun]:
    """The runs of the archive in `folder`, in the order they were written."""
    folder = Path(folder)
    lines = read_lines(folder / RUNS_FILE)
    try:
        table = pd.read_csv(folder / PREDICTIONS_FILE, dtype={"y_score": str})
        # Python's own parsing: each score reads back as exactly the float the report rounded it to
        table["y_score"] = np.array([float(text) for text in table["y_score"]])
    except (OSError, EOFError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise DamagedRecord(f"{folder / PREDICTIONS_FILE} is not a readable gzip CSV ({error}); "
                            "rebuild it with 'octbench report' from the run records") from None
    missing = [c for c in KEY_COLUMNS + PREDICTION_COLUMNS if c not in table.columns]
    if missing:
        raise DamagedRecord(f"{folder / PREDICTIONS_FILE} lacks the columns {', '.join(missing)}")
    if sum(line["archive"]["rows"] for line in lines) != len(table):
        raise DamagedRecord(f"{folder / PREDICTIONS_FILE} and {folder / RUNS_FILE} disagree on the number of "
                            "rows; were they written by different reports? Rebuild them from the run records")
    runs, start = [], 0
    for number, line in enumerate(lines, start=1):
        archive = line.pop("archive")
        log = line.pop("pretrain_log", None)
        rows = table.iloc[start:start + archive["rows"]]
        start += archive["rows"]
        run = ArchivedRun(folder, line, rows[PREDICTION_COLUMNS].reset_index(drop=True),
                          recorded_commit=archive.get("git_commit") or "unknown",
                          loss_log=None if log is None else pd.DataFrame(log, columns=["step", "train_loss"]))
        if not rows_match(rows, key_of(run)):
            raise DamagedRecord(f"{folder / RUNS_FILE} line {number} ({line.get('run_id')}) does not match its "
                                f"rows in {folder / PREDICTIONS_FILE}; rebuild them from the run records")
        runs.append(run)
    return runs


def read_lines(path: Path) -> list[dict]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise DamagedRecord(f"{path} is not readable ({error})") from None
    lines = []
    for number, raw in enumerate(text.splitlines(), start=1):
        try:
            line = json.loads(raw)
            rows = line["archive"]["rows"]
            if not isinstance(rows, int) or rows < 0 or not {"run_id", "label_fraction", "seed"} <= set(line):
                raise ValueError("missing fields")
        except (ValueError, KeyError, TypeError) as error:
            raise DamagedRecord(f"{path} line {number} is not a run of the archive ({error})") from None
        lines.append(line)
    return lines


def rows_match(rows: pd.DataFrame, key: tuple[str, float, int, str]) -> bool:
    label, fraction, seed, protocol = key
    return bool(len(rows) == 0 or ((rows["method"].astype(str) == label).all()
                                   and np.isclose(rows["label_fraction"].astype(float), fraction).all()
                                   and (rows["seed"] == seed).all()
                                   and (rows["protocol"].astype(str) == protocol).all()))
