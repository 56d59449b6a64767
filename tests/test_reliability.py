"""Nothing lost, nothing silent: reports never touch run records, damaged records are named and
left out, two identical runs never share a folder, and SIGTERM / SIGINT leave a resumable run."""

import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from octbench.cli import main
from octbench.compare import cells
from octbench.record import DamagedRecord, load_state_dict

TINY = Path(__file__).parent / "data" / "tiny.toml"


def run_argv(out: Path, cache: Path, method: str = "random-init", seed: int = 0, benchmark: Path = TINY) -> list[str]:
    return ["run", "--method", method, "--seed", str(seed), "--benchmark", str(benchmark), "--out", str(out),
            "--cache-dir", str(cache), "--no-progress"]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """Two complete run records (random-init needs no pretraining: seconds) and their cache."""
    out, cache = tmp_path_factory.mktemp("results"), tmp_path_factory.mktemp("cache")
    for seed in (0, 1):
        assert main(run_argv(out, cache, seed=seed)) == 0
    return out, cache


def copy_results(two_runs, tmp_path) -> tuple[Path, Path]:
    out, cache = two_runs
    shutil.copytree(out, tmp_path / "results")
    return tmp_path / "results", cache


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("name", ["runs", "."])
def test_a_report_never_replaces_the_run_records(two_runs, tmp_path, capsys, name):
    out, _ = copy_results(two_runs, tmp_path)
    benchmark = tmp_path / f"{name}.toml"  # a file named runs.toml or ..toml: the name 'runs' or '.'
    shutil.copy(TINY, benchmark)
    before = snapshot(out)
    assert main(["report", "--benchmark", str(benchmark), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and repr(name) in err
    assert snapshot(out) == before


def test_a_report_replaces_only_its_own_files(two_runs, tmp_path, capsys):
    out, _ = copy_results(two_runs, tmp_path)
    folder = out / "tiny"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    assert main(["report", "--benchmark", str(TINY), "--out", str(out), "--no-embedding"]) == 0
    assert (folder / "notes.txt").read_text() == "mine"
    assert (folder / "leaderboard.md").exists()
    manifest = json.loads((folder / ".octbench-report.json").read_text())
    assert "notes.txt" not in manifest and "leaderboard.md" in manifest
    (folder / "stale.png").write_text("an earlier report's figure")  # listed as written by an earlier report
    (folder / ".octbench-report.json").write_text(json.dumps([*manifest, "stale.png"]))
    assert main(["report", "--benchmark", str(TINY), "--out", str(out), "--no-embedding"]) == 0
    assert not (folder / "stale.png").exists() and (folder / "notes.txt").read_text() == "mine"
    assert len(list((out / "runs").iterdir())) == 2


def test_a_damaged_metrics_file_is_named_and_the_other_runs_are_reported(two_runs, tmp_path, capsys):
    out, cache = copy_results(two_runs, tmp_path)
    damaged = next(d for d in sorted((out / "runs").iterdir()) if "seed1" in d.name)
    (damaged / "metrics.json").write_text('{"run_id": "x", "auroc": {')  # cut off mid-write
    capsys.readouterr()
    assert main(["report", "--benchmark", str(TINY), "--out", str(out), "--no-embedding"]) == 0
    captured = capsys.readouterr()
    assert str(damaged / "metrics.json") in captured.out and "Traceback" not in captured.err
    table = pd.read_csv(out / "tiny" / "leaderboard.csv")
    assert table["seeds"].tolist() == [1]  # the other seed's run, and only it

    # The same run again: refused, naming the file; nothing changed until --force retrains it.
    assert main(run_argv(out, cache, seed=1)) == 2
    err = capsys.readouterr().err
    assert str(damaged / "metrics.json") in err and "--force" in err and "Traceback" not in err
    assert main([*run_argv(out, cache, seed=1), "--force"]) == 0
    assert "replacing a damaged run record" in capsys.readouterr().err
    assert json.loads((damaged / "metrics.json").read_text())["seed"] == 1


def test_missing_predictions_leave_the_run_out(two_runs, tmp_path, capsys):
    out, _ = copy_results(two_runs, tmp_path)
    damaged = sorted((out / "runs").iterdir())[0]
    (damaged / "predictions.csv").unlink()
    assert main(["report", "--benchmark", str(TINY), "--out", str(out), "--no-embedding"]) == 0
    assert str(damaged / "predictions.csv") in capsys.readouterr().out
    assert pd.read_csv(out / "tiny" / "leaderboard.csv")["seeds"].tolist() == [1]


def test_a_truncated_backbone_is_named_and_retrained_on_force(two_runs, tmp_path, capsys):
    out, cache = copy_results(two_runs, tmp_path)
    damaged = sorted((out / "runs").iterdir())[0]
    backbone = damaged / "backbone.pt"
    backbone.write_bytes(backbone.read_bytes()[:1000])
    assert main(run_argv(out, cache, seed=0)) == 2
    err = capsys.readouterr().err
    assert str(backbone) in err and "truncated" in err and "--force" in err
    assert main(["report", "--benchmark", str(TINY), "--out", str(out), "--no-embedding"]) == 0
    assert str(backbone) in capsys.readouterr().out
    assert main([*run_argv(out, cache, seed=0), "--force"]) == 0
    assert load_state_dict(backbone)  # whole again


def test_weights_are_loaded_as_tensors_only(tmp_path):
    good = tmp_path / "good.pt"
    torch.save({"w": torch.ones(2)}, good)
    assert torch.equal(load_state_dict(good)["w"], torch.ones(2))
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:100])
    with pytest.raises(DamagedRecord, match="truncated.pt"):
        load_state_dict(truncated)
    code = tmp_path / "code.pt"  # a pickle that would run a command when unpickled
    code.write_bytes(pickle.dumps(subprocess.Popen))
    with pytest.raises(DamagedRecord, match="code.pt"):
        load_state_dict(code)


def test_compare_makes_each_cell_once():
    assert cells(["simclr", "simclr", "byol"], [0, 0], [1, 1.0, 0.5]) == [
        ("simclr", 0, 1.0), ("byol", 0, 1.0), ("simclr", 0, 0.5), ("byol", 0, 0.5)]


def training_run(out: Path, cache: Path, steps: int) -> list[str]:
    return [sys.executable, "-m", "octbench.cli", *run_argv(out, cache, method="simclr"), "--steps", str(steps)]


def wait_for(path: Path, child: subprocess.Popen, seconds: float = 300) -> None:
    deadline = time.time() + seconds
    while not path.exists() and child.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert path.exists(), f"{path} never appeared (the run ended with {child.poll()})"


@pytest.mark.skipif(os.name != "posix", reason="uses POSIX signals and flock")
def test_two_identical_runs_give_one_record_and_one_clear_refusal(two_runs, tmp_path):
    _, cache = two_runs
    out = tmp_path / "results"
    first = subprocess.Popen(training_run(out, cache, 30), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(out / "runs", first)
    lock = None
    deadline = time.time() + 120
    while lock is None and time.time() < deadline and first.poll() is None:
        lock = next((p for p in (out / "runs").glob(".*.lock")), None)
        time.sleep(0.05)
    assert lock is not None, "the first run took no lock"
    second = subprocess.run(training_run(out, cache, 30), capture_output=True, text=True)
    assert second.returncode == 2
    assert f"process {first.pid}" in second.stderr and "Traceback" not in second.stderr
    assert first.wait() == 0
    (record,) = (out / "runs").iterdir()  # one record, no lock or partial folder left
    steps = pd.read_csv(record / "pretrain_log.csv")["step"]
    assert steps.is_unique


@pytest.fixture(scope="module")
def straight_run(two_runs, tmp_path_factory):
    """An uninterrupted 40-step simclr run: what a stopped and resumed one must equal."""
    _, cache = two_runs
    straight = tmp_path_factory.mktemp("straight")
    assert subprocess.run(training_run(straight, cache, 40), capture_output=True).returncode == 0
    (expected,) = (straight / "runs").iterdir()
    return expected, cache


@pytest.mark.skipif(os.name != "posix", reason="uses POSIX signals")
@pytest.mark.parametrize("signum, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_saves_a_checkpoint_exits_non_zero_and_the_run_resumes(straight_run, tmp_path, signum, status):
    expected, cache = straight_run

    out = tmp_path / "stopped"
    child = subprocess.Popen(training_run(out, cache, 40), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(out / "runs" / f".partial-{expected.name}" / "checkpoints" / "last.ckpt", child)
    child.send_signal(signum)
    _, err = child.communicate(timeout=120)
    if child.returncode == 0:
        pytest.skip("the run finished before the signal arrived")
    assert child.returncode == status, err
    assert "checkpoint saved" in err and "Traceback" not in err
    assert not (out / "runs" / expected.name).exists()  # no record from a stopped run
    assert (out / "runs" / f".partial-{expected.name}" / "checkpoints" / "last.ckpt").exists()
    if signum != signal.SIGTERM:
        return  # resuming is the same whichever signal stopped the run: checked once

    resumed = subprocess.run(training_run(out, cache, 40), capture_output=True, text=True)
    assert resumed.returncode == 0 and "resuming pretraining from step" in resumed.stdout
    first, second = (json.loads((d / "metrics.json").read_text()) for d in (expected, out / "runs" / expected.name))
    assert second["auroc"] == first["auroc"]
    log = (out / "runs" / expected.name / "pretrain_log.csv").read_text()
    assert log == (expected / "pretrain_log.csv").read_text()


@pytest.mark.skipif(os.name != "posix", reason="uses POSIX signals")
def test_a_signal_arriving_after_the_checkpoint_callback_ran_is_saved_at_the_next_step(two_runs, tmp_path,
                                                                                       monkeypatch, capsys):
    from octbench.training import CheckpointOnSignal

    _, cache = two_runs
    out = tmp_path / "late"
    noted_at_end_of_step = CheckpointOnSignal.on_train_batch_end

    def then_signal(self, trainer, *args):  # the signal lands after this step's callback has looked
        noted_at_end_of_step(self, trainer, *args)
        if trainer.global_step == 5 and self.received is None:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(CheckpointOnSignal, "on_train_batch_end", then_signal)
    assert main([*run_argv(out, cache, method="simclr"), "--steps", "20"]) == 143
    err = capsys.readouterr().err
    assert "after pretraining step 6; checkpoint saved" in err, err
    (partial,) = (out / "runs").glob(".partial-*")
    checkpoint = torch.load(partial / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert checkpoint["global_step"] == 6


def test_a_full_disk_is_named_with_what_to_do_and_other_os_errors_still_surface(monkeypatch, capsys):
    import errno

    import octbench.cli

    def full(args):
        raise OSError(errno.ENOSPC, "No space left on device", "results/runs/.partial-x/checkpoints/last.ckpt")

    monkeypatch.setattr(octbench.cli, "command_list", full)
    assert main(["list"]) == 1
    error = capsys.readouterr().err
    assert "no space left on the device writing results/runs/.partial-x/checkpoints/last.ckpt" in error
    assert "give the same command again" in error and "Traceback" not in error

    def denied(args):
        raise PermissionError(errno.EACCES, "Permission denied", "somewhere")

    monkeypatch.setattr(octbench.cli, "command_list", denied)
    with pytest.raises(PermissionError):
        main(["list"])
