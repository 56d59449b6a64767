"""The command is quiet by default: none of Lightning's banner lines on a run (--debug keeps them),
and its version from the installed package."""

import logging
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from octbench.cli import BANNER_LOGGERS, main, quiet_libraries

TINY = str(Path(__file__).parent / "data" / "tiny.toml")
BANNERS = ("GPU available", "TPU available", "HPU available", "litlogger", "LitLogger", "`Trainer.fit` stopped",
           "💡")


def test_a_run_prints_no_library_banners(tmp_path):
    command = [sys.executable, "-m", "octbench", "run", "--method", "simclr", "--benchmark", TINY, "--out",
               str(tmp_path / "results"), "--cache-dir", str(tmp_path / "cache"), "--no-progress", "--steps", "1"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "run record:" in done.stdout
    lines = [line for line in done.stderr.splitlines() if any(b in line for b in BANNERS)]
    assert lines == [], done.stderr[-3000:]


def test_debug_keeps_the_banners():
    loggers = [logging.getLogger(name) for name in BANNER_LOGGERS]
    levels = [logger.level for logger in loggers]
    try:
        for logger in loggers:
            logger.setLevel(logging.NOTSET)
        quiet_libraries(debug=True)
        assert all(logger.level == logging.NOTSET for logger in loggers)  # INFO banners pass
        quiet_libraries()
        assert all(logger.level == logging.WARNING for logger in loggers)  # warnings still pass
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"octbench {metadata.version('octbench')}"
