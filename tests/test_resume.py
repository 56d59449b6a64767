"""A run killed mid-pretraining continues from its checkpoint and ends where an uninterrupted run does."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from octbench.benchmark import load_benchmark
from octbench.cli import main
from octbench.run import RunRequest, execute, recorded

TINY = str(Path(__file__).parent / "data" / "tiny.toml")


def argv(out: Path, cache: Path) -> list[str]:
    return ["run", "--method", "simclr", "--benchmark", TINY, "--steps", "12", "--out", str(out),
            "--cache-dir", str(cache), "--no-progress"]


@pytest.mark.skipif(os.name != "posix", reason="uses SIGKILL")
def test_killed_run_resumes_and_matches_an_uninterrupted_one(tmp_path, capsys):
    cache = tmp_path / "cache"
    assert main(argv(tmp_path / "straight", cache)) == 0  # also builds the cohort cache
    (straight,) = (tmp_path / "straight" / "runs").iterdir()

    out = tmp_path / "killed"
    child = subprocess.Popen([sys.executable, "-m", "octbench.cli", *argv(out, cache)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint = out / "runs" / f".partial-{straight.name}" / "checkpoints" / "last.ckpt"
    deadline = time.time() + 300
    while not checkpoint.exists() and child.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # let at least one checkpoint be complete
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert checkpoint.exists(), "the run finished or failed before its first checkpoint"
    assert not (out / "runs" / straight.name).exists()  # nothing published by the killed run

    capsys.readouterr()
    assert main(argv(out, cache)) == 0
    assert "resuming pretraining from step" in capsys.readouterr().out
    resumed = out / "runs" / straight.name
    first, second = (json.loads((d / "metrics.json").read_text()) for d in (straight, resumed))
    assert second["auroc"] == first["auroc"]
    assert sorted(p.name for p in resumed.iterdir()) == sorted(p.name for p in straight.iterdir())
    log = (resumed / "pretrain_log.csv").read_text()
    assert log == (straight / "pretrain_log.csv").read_text()


def test_same_seed_gives_identical_aurocs(tmp_path):
    cache = tmp_path / "cache"
    for name in ("a", "b"):
        assert main([*argv(tmp_path / name, cache)[:-1], "--steps", "3", "--no-progress"]) == 0
    aurocs = [json.loads(next((tmp_path / n / "runs").iterdir()).joinpath("metrics.json").read_text())["auroc"]
              for n in ("a", "b")]
    assert aurocs[0] == aurocs[1]


def test_recorded_reads_a_finished_cell_and_trains_nothing(tmp_path):
    """What convergence.py --recorded reads while a compare is still running."""
    benchmark = load_benchmark(TINY)
    request = RunRequest(benchmark=benchmark, method="random-init", out=tmp_path / "results",
                         cache_dir=tmp_path / "cache", progress=False)
    folder, metrics = recorded(request)
    assert metrics is None and not folder.exists()
    made, made_metrics, _ = execute(request)
    assert recorded(request) == (made, json.loads((made / "metrics.json").read_text()))
    assert recorded(request)[1]["mean_auroc"] == made_metrics["mean_auroc"]
