"""`octbench export` writes the simulated cohort as files that the table source reads back as the same cohort."""

from pathlib import Path

import numpy as np
import pandas as pd

from octbench import BIOMARKERS
from octbench.benchmark import load_benchmark
from octbench.cli import main
from octbench.export import COLUMNS
from octbench.sources import load_cohort

TINY = Path(__file__).parent / "data" / "tiny.toml"


def test_an_exported_cohort_reads_back_as_the_same_cohort(tmp_path, capsys):
    out, cache = tmp_path / "exported", tmp_path / "cache"
    assert main(["export", "--benchmark", str(TINY), "--out", str(out), "--cache-dir", str(cache),
                 "--no-progress"]) == 0
    table = pd.read_csv(out / "cohort.csv")
    assert list(table.columns) == COLUMNS
    assert table["path"].str.startswith("images/").all() and (out / table["path"].iloc[0]).is_file()
    assert table["slice"].between(0, 48).all()

    original = load_cohort(load_benchmark(str(TINY)), cache)
    mine = tmp_path / "exported.toml"
    mine.write_text(TINY.read_text().split("[cohort]")[0]
                    + f'[cohort]\nsource = "table"\ntable = "{out}/cohort.csv"\nimage_root = "{out}"\nimage_size = 32\n'
                    + "[pretrain]\nsteps = 2\nbatch_size = 16\n")
    read_back = load_cohort(load_benchmark(str(mine)), cache)
    for part in ("pool", "train", "val", "test"):
        a, b = original.part(part), read_back.part(part)
        assert len(a) == len(b) and (a["patient"].to_numpy() == b["patient"].to_numpy()).all()
        assert np.array_equal(a[list(BIOMARKERS)].to_numpy(), b[list(BIOMARKERS)].to_numpy(), equal_nan=True)
        assert np.array_equal(original.images_of(a), read_back.images_of(b))
    assert main(["export", "--benchmark", str(TINY), "--out", str(out), "--cache-dir", str(cache)]) == 2
    assert "already exists" in capsys.readouterr().err
