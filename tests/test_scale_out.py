"""Beyond one process: rank slices of the global batch, the learning-rate rule, a 2-process DDP run
through the command, and a compare whose cells go through submitit's local executor."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from octbench.benchmark import PretrainSpec, load_benchmark
from octbench.cli import main
from octbench.errors import OctbenchError
from octbench.training import StepBatches

TINY = str(Path(__file__).parent / "data" / "tiny.toml")


def test_ranks_split_every_global_batch_into_disjoint_slices_that_cover_it():
    single = list(StepBatches(100, 16, seed=5, total=12))
    ranks = [list(StepBatches(100, 16, seed=5, total=12, rank=r, world=4)) for r in range(4)]
    for step, batch in enumerate(single):
        slices = [ranks[r][step] for r in range(4)]
        assert all(len(s) == 4 for s in slices)
        assert sum(slices, []) == batch  # the same global batch, in order, whatever the process count


def test_learning_rate_scaling_rule():
    assert PretrainSpec(lr=1e-3, batch_size=512).effective_lr() == 1e-3  # reference = the batch itself
    assert PretrainSpec(lr=1e-3, batch_size=512, lr_reference_batch=256, lr_scaling="linear").effective_lr() == 2e-3
    assert PretrainSpec(lr=1e-3, batch_size=1024, lr_reference_batch=256,
                        lr_scaling="sqrt").effective_lr() == pytest.approx(2e-3)


def test_unknown_lr_scaling_is_refused(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[pretrain]\nlr_scaling = "cubic"\n')
    with pytest.raises(OctbenchError, match="lr_scaling 'cubic' is not one of none, linear, sqrt"):
        load_benchmark(str(bad))


def octbench(*argv, cwd):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, "-m", "octbench.cli", *argv], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=600)


def test_two_process_ddp_run_writes_one_complete_record(tmp_path):
    """Lightning starts the second process itself (as on a 2-GPU node); only rank 0 writes."""
    done = octbench("run", "--method", "simclr", "--benchmark", TINY, "--devices", "2", "--steps", "4",
                    "--out", str(tmp_path / "results"), "--cache-dir", str(tmp_path / "cache"), "--no-progress",
                    cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("run record:") == 1
    (run_dir,) = (tmp_path / "results" / "runs").iterdir()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert 0.0 <= metrics["mean_auroc"] <= 1.0
    config = json.loads((run_dir / "config.json").read_text())
    assert config["compute"]["processes"] == 2 and len(config["splits"]["test"]) > 0
    assert not (run_dir / "checkpoints").exists()
    # the trained weights, from rank 0
    assert torch.load(run_dir / "backbone.pt", map_location="cpu", weights_only=True)


def test_compare_through_submitit_local_executor_runs_only_missing_cells(tmp_path, capsys):
    pytest.importorskip("submitit")
    argv = ["compare", "--benchmark", TINY, "--methods", "random-init", "simclr", "--seeds", "1",
            "--submit", "local", "--out", str(tmp_path / "results"), "--cache-dir", str(tmp_path / "cache"),
            "--no-embedding"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "2 missing cells to submit (local)" in printed
    runs = sorted(p.name for p in (tmp_path / "results" / "runs").iterdir())
    assert [r.split("_")[0] for r in runs] == ["random-init", "simclr"]
    assert (tmp_path / "results" / "tiny" / "leaderboard.csv").exists()
    assert any((tmp_path / "results" / "submitit").iterdir())  # the jobs' logs
    assert main(argv) == 0
    assert "0 missing cells to submit" in capsys.readouterr().out
