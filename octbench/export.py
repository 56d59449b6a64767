"""`octbench export`: a benchmark's cohort as files, for tools other than octbench.

Writes one 8-bit PNG per B-scan and `cohort.csv` (one row per B-scan: `path` relative to the output
folder, `patient`, `eye`, `visit`, `slice` (index in the eye's 49-scan volume, 24 at the fovea),
`BCVA`, `CST`, the six biomarkers (empty for pool-only B-scans), `split`, `in_pool`, `labelled`).
octbench's `table` source reads it back (`[cohort] source = "table"`, `table = "DIR/cohort.csv"`,
`image_root = "DIR"`), so lightly's or solo-learn's own scripts can train on the same cohort.
The folder is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from octbench import BIOMARKERS
from octbench.benchmark import Benchmark
from octbench.errors import OctbenchError
from octbench.sources import load_cohort

COLUMNS = ["path", "patient", "eye", "visit", "slice", "BCVA", "CST", *BIOMARKERS, "split", "in_pool", "labelled"]


def export_cohort(benchmark: Benchmark, out: Path, cache_dir: Path | None = None, progress: bool = True) -> int:
    """Write the cohort under `out` (which must not exist yet); returns how many B-scans were written."""
    out = Path(out)
    if out.exists():
        raise OctbenchError(f"{out} already exists; export writes a new folder (choose another --out or remove it)")
    cohort = load_cohort(benchmark, cache_dir)
    table = cohort.table
    missing = [c for c in COLUMNS[1:] if c not in table.columns]
    if missing:
        raise OctbenchError(f"the {benchmark.name} cohort lacks {', '.join(missing)}; export writes cohorts "
                            "that have every column of cohort.csv")
    partial = out.with_name(f".{out.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    (partial / "images").mkdir(parents=True)
    try:
        paths = []
        for row in tqdm(table.itertuples(index=False), total=len(table), desc="writing B-scans", unit="scan",
                        disable=not progress):
            relative = f"images/{row.sample_id}.png"
            Image.fromarray(cohort.images[row.image]).save(partial / relative)
            paths.append(relative)
        frame = table.assign(path=paths)[COLUMNS]
        frame.to_csv(partial / "cohort.csv", index=False)
        os.replace(partial, out)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return len(table)
