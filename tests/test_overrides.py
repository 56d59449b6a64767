"""`--set section.key=value` on run and compare, checked by the benchmark file's rules, and
`octbench show-config`, which writes the resolved benchmark as TOML that loads back to it."""

import dataclasses
import sys
from pathlib import Path

import pytest

import octbench.run
import octbench.trackers
from octbench.benchmark import load_benchmark, tomllib
from octbench.cli import main
from octbench.overrides import apply_settings, benchmark_toml

TINY = Path(__file__).parent / "data" / "tiny.toml"


def error_of(argv, capsys) -> str:
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert error.startswith("octbench: error: ") and "Traceback" not in error
    assert error.count("\n") == 1  # one line
    return error.removeprefix("octbench: error: ").strip()


@pytest.fixture
def requests(monkeypatch):
    """run and compare resolve their benchmark, then hand it on: the requests are kept, nothing runs."""
    made = []

    def keep(request):
        made.append(request)
        raise SystemExit(0)

    monkeypatch.setattr(octbench.run, "execute", keep)
    monkeypatch.setattr(octbench.trackers, "check_tracker", lambda log: None)  # whether or not one is installed
    return made


def run_argv(*extra) -> list[str]:
    return ["run", "--method", "simclr", "--benchmark", str(TINY), "--no-progress", *extra]


def test_a_bad_value_is_named_with_its_key_and_the_expected_type(capsys):
    assert error_of(run_argv("--set", "pretrain.steps=ten"), capsys) == \
        "--set pretrain.steps=ten: steps 'ten' is not a whole number >= 1"
    assert error_of(run_argv("--set", "pretrain.batch_size=1"), capsys).startswith(
        "--set pretrain.batch_size=1: batch_size 1 is not a whole number >= 2")
    assert "split { train = 0.6, val = 0.2, test = 0.3 } is not a table" in \
        error_of(run_argv("--set", "cohort.split={train=0.6,val=0.2,test=0.3}"), capsys)


def test_a_misspelt_key_or_section_is_named_with_the_closest_one(capsys):
    error = error_of(run_argv("--set", "pretrain.stpes=10"), capsys)
    assert error.startswith("--set pretrain.stpes=10: unknown key 'stpes' (did you mean 'steps'?); known keys: ")
    error = error_of(["compare", "--benchmark", str(TINY), "--set", "pretrian.steps=10"], capsys)
    assert error.startswith("--set pretrian.steps=10: unknown section 'pretrian' (did you mean 'pretrain'?)")
    assert "did you mean 'backbone'?" in error_of(run_argv("--set", "backbon=resnet50"), capsys)
    assert "expected section.key=value" in error_of(run_argv("--set", "pretrain"), capsys)
    assert "is not a TOML value" in error_of(run_argv("--set", "cohort.split={train="), capsys)


def test_one_key_given_two_values_is_refused(capsys):
    error = error_of(run_argv("--steps", "5", "--set", "pretrain.steps=6"), capsys)
    assert error == "--set pretrain.steps=6: pretrain.steps is already set by pretrain.steps=5; give it once"


def test_settings_reach_the_run_and_are_kept_in_order(requests):
    with pytest.raises(SystemExit):
        main(run_argv("--steps", "3", "--limit", "40", "--set", "cohort.split={train=0.6,val=0.2,test=0.2}",
                      "--set", "evaluate.probe_c=[0.5]", "--set", "backbone=resnet34", "--logger", "tensorboard"))
    benchmark = requests[0].benchmark
    assert benchmark.pretrain.steps == 3 and benchmark.backbone == "resnet34"
    assert benchmark.cohort.split == {"train": 0.6, "val": 0.2, "test": 0.2} and benchmark.evaluate.probe_c == (0.5,)
    assert benchmark.cohort.limit == 40 and benchmark.name == "tiny-limit40"  # as --limit always named it
    assert benchmark.log.logger == "tensorboard" and requests[0].compute.log == benchmark.log
    assert benchmark.overrides == ("pretrain.steps=3", "cohort.limit=40", 'log.logger="tensorboard"',
                                   "cohort.split={train=0.6,val=0.2,test=0.2}", "evaluate.probe_c=[0.5]",
                                   "backbone=resnet34")
    assert benchmark.to_dict()["overrides"] == benchmark.overrides  # what config.json keeps


def test_compare_takes_settings_too(requests, monkeypatch):
    import octbench.compare

    seen = []
    monkeypatch.setattr(octbench.compare, "run_cells", lambda benchmark, *args, **kwargs: seen.append(benchmark)
                        or sys.exit(0))
    with pytest.raises(SystemExit):
        main(["compare", "--benchmark", str(TINY), "--set", "pretrain.lr=0.01", "--protocol", "knn"])
    assert seen[0].pretrain.lr == 0.01 and seen[0].evaluate.protocol == "knn"


def test_bare_words_are_strings_and_toml_values_are_typed():
    benchmark = apply_settings(load_benchmark(str(TINY)), ["log.logger=mlflow", "log.experiment='my study'",
                                                          "pretrain.lr=1e-2", "pretrain.sync_batchnorm=true"])
    assert benchmark.log.logger == "mlflow" and benchmark.log.experiment == "my study"
    assert benchmark.pretrain.lr == 0.01 and benchmark.pretrain.sync_batchnorm is True


@pytest.mark.parametrize("name", ["default", "olives", str(TINY)])
def test_show_config_writes_toml_that_loads_back_to_the_same_benchmark(name, tmp_path, capsys):
    argv = ["show-config", "--benchmark", name, "--set", "pretrain.steps=10", "--set", "log.logger=mlflow"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    tomllib.loads(text)  # valid TOML
    path = tmp_path / f"{Path(name).stem}.toml"
    path.write_text(text)
    expected = apply_settings(load_benchmark(name), ["pretrain.steps=10", "log.logger=mlflow"])
    loaded = load_benchmark(str(path))
    assert dataclasses.replace(loaded, path="") == dataclasses.replace(expected, path="", overrides=())
    assert "#   --set pretrain.steps=10" in text


def test_show_config_refuses_what_run_refuses(capsys):
    assert "unknown key 'stpes'" in error_of(["show-config", "--set", "pretrain.stpes=10"], capsys)


def test_toml_strings_survive_quotes_and_backslashes(tmp_path):
    benchmark = apply_settings(load_benchmark(str(TINY)), ['description="a \\"quoted\\" C:\\\\path, ünïcode"'])
    path = tmp_path / "tiny.toml"
    path.write_text(benchmark_toml(benchmark))
    assert load_benchmark(str(path)).description == 'a "quoted" C:\\path, ünïcode'
