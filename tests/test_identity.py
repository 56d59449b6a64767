"""Run identity: a record is reused only for the same configuration and the same cohort, and a
benchmark entry runs with its options under its own label."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from octbench import BIOMARKERS
from octbench.cli import main

TINY = Path(__file__).parent / "data" / "tiny.toml"


def write_table_cohort(root: Path, seed: int) -> None:
    """40 patients x 3 B-scans with random 8-bit images and labels, as a user's own CSV."""
    rng = np.random.default_rng(seed)
    rows = []
    for patient in range(40):
        for n in range(3):
            name = f"p{patient}_{n}.png"
            (root / "img").mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8)).save(root / "img" / name)
            rows.append({"path": name, "patient": patient, "BCVA": 70, "CST": 300,
                         **{b: int(rng.random() < 0.5) for b in BIOMARKERS}})
    pd.DataFrame(rows).to_csv(root / "scans.csv", index=False)


BENCHMARK = """
description = "a user's table"
[cohort]
source = "table"
table = "{root}/scans.csv"
image_root = "{root}/img"
image_size = 16
split = {{ train = 0.5, val = 0.25, test = 0.25 }}
[pretrain]
steps = 2
batch_size = 8
[evaluate]
probe_c = [1.0]
bootstrap = 100
"""


def test_the_same_command_on_two_cohorts_gives_two_records(tmp_path, capsys):
    data = tmp_path / "data"
    benchmark = tmp_path / "mine.toml"
    benchmark.write_text(BENCHMARK.format(root=data))
    argv = ["run", "--method", "random-init", "--benchmark", str(benchmark), "--out", str(tmp_path / "results"),
            "--cache-dir", str(tmp_path / "cache"), "--no-progress"]
    write_table_cohort(data, seed=0)
    assert main(argv) == 0
    write_table_cohort(data, seed=1)  # other images and labels, at the same paths
    capsys.readouterr()
    assert main(argv) == 0
    assert "reused" not in capsys.readouterr().out
    records = sorted((tmp_path / "results" / "runs").iterdir())
    assert len(records) == 2
    first, second = (json.loads((r / "metrics.json").read_text()) for r in records)
    assert first["cohort"]["fingerprint"] != second["cohort"]["fingerprint"]
    assert first["key"] != second["key"] and first["cohort"]["source"] == "table"
    capsys.readouterr()
    assert main(argv) == 0  # the same cohort again: its record is reused
    assert "reused" in capsys.readouterr().out


def test_a_variant_entry_runs_with_its_options_under_its_label(tmp_path, capsys):
    benchmark = tmp_path / "variants.toml"
    benchmark.write_text(TINY.read_text().replace(
        'methods = ["random-init", "simclr"]',
        'methods = ["random-init", { name = "clinical-supcon", clinical = "eye", temperature = 0.2, '
        'alias = "supcon-eye", label = "SupCon on the eye" }]'))
    out = tmp_path / "results"
    assert main(["compare", "--benchmark", str(benchmark), "--seeds", "1", "--out", str(out), "--cache-dir",
                 str(tmp_path / "cache"), "--no-embedding"]) == 0
    (record,) = [r for r in (out / "runs").iterdir() if r.name.startswith("supcon-eye_")]
    metrics = json.loads((record / "metrics.json").read_text())
    assert metrics["method"] == "clinical-supcon" and metrics["label"] == "SupCon on the eye"
    assert metrics["options"] == {"clinical": [["eye", 1.0]], "bins": None, "temperature": 0.2}
    assert "SupCon on the eye" in (out / "variants" / "leaderboard.md").read_text()
    # The entry's alias on the command line is the same run: its record is reused.
    capsys.readouterr()
    assert main(["run", "--method", "supcon-eye", "--benchmark", str(benchmark), "--out", str(out),
                 "--cache-dir", str(tmp_path / "cache"), "--no-progress"]) == 0
    assert "reused" in capsys.readouterr().out


def test_an_option_the_method_does_not_take_is_refused_before_training(tmp_path, capsys):
    benchmark = tmp_path / "bad.toml"
    benchmark.write_text(TINY.read_text().replace('methods = ["random-init", "simclr"]',
                                                  'methods = [{ name = "simclr", queue = 4096 }]'))
    out = tmp_path / "results"
    assert main(["compare", "--benchmark", str(benchmark), "--seeds", "1", "--out", str(out),
                 "--cache-dir", str(tmp_path / "cache")]) == 2
    assert "'simclr' does not take the option 'queue'" in capsys.readouterr().err
    assert not (out / "runs").exists() or not any((out / "runs").iterdir())
