"""The report's archive: a report rebuilt from predictions.csv.gz and runs.jsonl alone (a fresh clone,
no run folders) gives the same tables, byte for byte."""

import gzip
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from octbench import archive
from octbench.cli import main
from octbench.leaderboard import find_runs

TINY = Path(__file__).parent / "data" / "tiny.toml"
TABLES = ("leaderboard.md", "leaderboard.csv", "leaderboard.tex")


@pytest.fixture(scope="module")
def three_runs(tmp_path_factory):
    """Three run records that need no pretraining (seconds); one is given a loss curve and a trivial
    level, as a pretrained run has."""
    out, cache = tmp_path_factory.mktemp("results"), tmp_path_factory.mktemp("cache")
    for method, seed in (("random-init", 0), ("random-init", 1), ("raw-pixels", 0)):
        assert main(["run", "--method", method, "--seed", str(seed), "--benchmark", str(TINY), "--out", str(out),
                     "--cache-dir", str(cache), "--no-progress"]) == 0
    folder = next(f for f in sorted((out / "runs").iterdir()) if f.name.startswith("random-init"))
    pd.DataFrame({"epoch": 0, "step": [0, 1, 2], "train_loss": [5.5, 5.25, 5.125]}).to_csv(
        folder / "pretrain_log.csv", index=False)
    metrics = json.loads((folder / "metrics.json").read_text())
    (folder / "metrics.json").write_text(json.dumps({**metrics, "trivial_loss": 5.0}, indent=2))
    return out


@pytest.fixture
def reported(three_runs, tmp_path):
    out = tmp_path / "results"
    shutil.copytree(three_runs, out)
    assert main(["report", "--benchmark", str(TINY), "--out", str(out), "--no-embedding"]) == 0
    return out


def contents(folder: Path, names) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in names}


def test_a_report_rebuilt_from_the_archive_alone_has_byte_identical_tables(reported, capsys):
    folder = reported / "tiny"
    files = (*TABLES, archive.PREDICTIONS_FILE, archive.RUNS_FILE)
    before = contents(folder, files)
    manifest = json.loads((folder / ".octbench-report.json").read_text())
    assert {archive.PREDICTIONS_FILE, archive.RUNS_FILE} <= set(manifest)  # published like the report's other files
    shutil.rmtree(reported / "runs")
    capsys.readouterr()
    assert main(["report", "--benchmark", str(TINY), "--out", str(reported)]) == 0
    printed = capsys.readouterr().out
    assert sum("rebuilding the report from its archive" in line for line in printed.splitlines()) == 1
    assert "embedding map skipped" in printed
    assert contents(folder, files) == before  # the archive rewritten from itself is the same file too
    shown = {p.name for p in folder.iterdir()}
    assert {"roc_curves.png", "loss_curves.png", "auroc_heatmap.png"} <= shown
    assert "label_efficiency.png" not in shown and "label-efficiency figure skipped" in printed  # one fraction
    print(f"archive of 3 runs: {(folder / archive.PREDICTIONS_FILE).stat().st_size} B predictions, "
          f"{(folder / archive.RUNS_FILE).stat().st_size} B runs")


def test_the_archive_reads_back_as_the_runs_it_was_written_from(reported):
    runs, _, _ = find_runs(reported, "tiny")
    archived = archive.read_archive(reported / "tiny")
    assert [run.metrics for run in archived] == [run.metrics for run in runs]
    assert [run.label for run in archived] == [run.label for run in runs]
    for run, back in zip(runs, archived):
        pd.testing.assert_frame_equal(back.predictions, archive.rounded(run).predictions)
        assert back.commit == run.commit and back.folder == reported / "tiny"
        log = archive.loss_log(run)
        if log is None:
            assert back.loss_log is None
        else:
            pd.testing.assert_frame_equal(back.loss_log, log, check_dtype=False)
    with gzip.open(reported / "tiny" / archive.PREDICTIONS_FILE, "rt") as text:
        header = text.readline().strip().split(",")
    assert header == ["method", "label_fraction", "seed", "protocol", "sample_id", "patient", "biomarker", "y_true",
                      "y_score"]
    scores = pd.read_csv(reported / "tiny" / archive.PREDICTIONS_FILE, dtype={"y_score": str})["y_score"]
    assert (scores == archive.score_text(scores.astype(float))).all()  # SIGNIFICANT_DIGITS, as written


def test_the_runs_folder_is_read_whenever_it_holds_runs(reported, capsys):
    capsys.readouterr()
    assert main(["report", "--benchmark", str(TINY), "--out", str(reported), "--no-embedding"]) == 0
    assert "archive" not in capsys.readouterr().out


def test_an_embedding_map_an_earlier_report_drew_is_kept_when_rebuilding_from_the_archive(reported, capsys):
    folder = reported / "tiny"
    (folder / "embedding_tsne.png").write_bytes(b"drawn from the backbones")
    manifest = folder / ".octbench-report.json"
    manifest.write_text(json.dumps([*json.loads(manifest.read_text()), "embedding_tsne.png"]))
    shutil.rmtree(reported / "runs")
    capsys.readouterr()
    assert main(["report", "--benchmark", str(TINY), "--out", str(reported)]) == 0
    assert "embedding_tsne.png kept as it was" in capsys.readouterr().out
    assert (folder / "embedding_tsne.png").read_bytes() == b"drawn from the backbones"
    assert "embedding_tsne.png" in json.loads(manifest.read_text())


def test_a_damaged_archive_is_named(reported, capsys):
    path = reported / "tiny" / archive.PREDICTIONS_FILE
    path.write_bytes(path.read_bytes()[:200])
    shutil.rmtree(reported / "runs")
    capsys.readouterr()
    assert main(["report", "--benchmark", str(TINY), "--out", str(reported), "--no-embedding"]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "Traceback" not in err
