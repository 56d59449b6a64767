"""Every setting is checked before anything trains: benchmark keys when the file is read, command
options when they are parsed, and what the data allows once the cohort is loaded. Each bad setting
exits 2 with a message naming the key and the value, without a traceback and without a run folder."""

import importlib.util
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import octbench.finetune
import octbench.run
import octbench.training
from octbench import BIOMARKERS
from octbench.benchmark import load_benchmark, with_overrides
from octbench.cli import main
from octbench.errors import OctbenchError
from octbench.run import RunRequest, execute

TINY = Path(__file__).parent / "data" / "tiny.toml"


def tiny_with(tmp_path: Path, section: str, key: str, value: str, stem: str = "tiny") -> Path:
    """tests/data/tiny.toml with one key set to `value` (TOML text) in [section] ('' for the top level)."""
    lines = TINY.read_text().splitlines()
    if section and f"[{section}]" not in lines:  # a section tiny.toml leaves at its defaults
        lines.append(f"[{section}]")
    start = lines.index(f"[{section}]") + 1 if section else 0
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("[")), len(lines))
    line = f"{key} = {value}"
    found = [i for i in range(start, end) if re.match(rf"{re.escape(key)}\s*=", lines[i])]
    if found:
        lines[found[0]] = line
    else:
        lines.insert(start, line)
    path = tmp_path / f"{stem}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One simulated tiny cohort for every test of this module that loads it."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def no_training(monkeypatch):
    """Fails the test if any pretraining or fine-tuning step is started."""
    calls = []
    for module in (octbench.run, octbench.training, octbench.finetune):
        monkeypatch.setattr(module, "pretrain", lambda *args, **kwargs: calls.append(args))
    return calls


def run_command(benchmark, out: Path, cache: Path, *extra, method="simclr") -> list[str]:
    return ["run", "--method", method, "--benchmark", str(benchmark), "--out", str(out),
            "--cache-dir", str(cache), "--no-progress", *extra]


def refused(argv: list[str], capsys, out: Path) -> str:
    """main(argv) exits 2 with one message and no traceback, and writes nothing under `out`."""
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert "octbench: error: " in error and "Traceback" not in error  # (after the cohort's progress bar)
    assert not out.exists() or not any(out.rglob("*"))  # no runs/, no hidden .partial-* folder
    return error


BAD_KEYS = [
    ("pretrain", "steps", '"ten"', "[pretrain]: steps 'ten' is not a whole number >= 1"),
    ("pretrain", "steps", "2.5", "[pretrain]: steps 2.5 is not a whole number >= 1"),
    ("pretrain", "steps", "0", "[pretrain]: steps 0 is not a whole number >= 1"),
    ("pretrain", "steps", "-3", "[pretrain]: steps -3 is not a whole number >= 1"),
    ("pretrain", "steps", "true", "[pretrain]: steps true is not a whole number >= 1"),
    ("pretrain", "batch_size", "0", "[pretrain]: batch_size 0 is not a whole number >= 2 (contrastive losses"),
    ("pretrain", "batch_size", "1", "[pretrain]: batch_size 1 is not a whole number >= 2 (contrastive losses"),
    ("pretrain", "optimizer", '"adamm"', "[pretrain]: optimizer 'adamm' is not one of adamw, sgd "
                                         "(did you mean 'adamw'?)"),
    ("pretrain", "lr", "-1", "[pretrain]: lr -1 is not a finite number > 0"),
    ("pretrain", "lr", "nan", "[pretrain]: lr nan is not a finite number > 0"),
    ("pretrain", "weight_decay", "-0.1", "[pretrain]: weight_decay -0.1 is not a finite number >= 0"),
    ("pretrain", "warmup_fraction", "2", "[pretrain]: warmup_fraction 2 is not a number in [0, 1)"),
    ("pretrain", "sync_batchnorm", '"yes"', "[pretrain]: sync_batchnorm 'yes' is not true or false"),
    ("pretrain", "lr_reference_batch", "-1", "[pretrain]: lr_reference_batch -1 is not a whole number >= 0"),
    ("cohort", "pool_scans", "0", "[cohort]: pool_scans 0 is not a whole number >= 1"),
    ("cohort", "image_size", "0", "[cohort]: image_size 0 is not a whole number >= 8 (the backbone"),
    ("cohort", "patients", "2", "[cohort]: patients 2 is not a whole number >= 3"),
    ("cohort", "limit", "-1", "[cohort]: limit -1 is not a whole number >= 0"),
    ("cohort", "validation_fraction", "1", "[cohort]: validation_fraction 1 is not a number in (0, 1)"),
    ("cohort", "split", "{ train = 0.5, val = 0.2, test = 0.2 }",
     "[cohort]: split { train = 0.5, val = 0.2, test = 0.2 } is not a table { train = ..., val = ..., test = ... } "
     "of fractions, each > 0, that sum to 1 (these sum to 0.9)"),
    ("cohort", "split", "{ train = 0.5, val = 0, test = 0.5 }",
     "[cohort]: split { train = 0.5, val = 0, test = 0.5 } is not a table"),
    ("cohort", "split", "{ train = 0.5, valid = 0.2, test = 0.3 }",
     "[cohort]: split { train = 0.5, valid = 0.2, test = 0.3 } is not a table"),
    ("cohort", "columns", "{ patient = 3 }", "[cohort]: columns { patient = 3 } is not a table of cohort names"),
    ("evaluate", "probe_c", "[]", "[evaluate]: probe_c [] is not a non-empty list of numbers > 0"),
    ("evaluate", "probe_c", "[-1]", "[evaluate]: probe_c [-1] is not a non-empty list of numbers > 0"),
    ("evaluate", "bootstrap", "0", "[evaluate]: bootstrap 0 is not a whole number >= 100 (the 95% interval"),
    ("evaluate", "protocol", '"lineer"', "[evaluate]: protocol 'lineer' is not one of linear, linear-sgd, knn, "
                                         "finetune (did you mean 'linear'?)"),
    ("images", "resize", '"stretch"', "[images]: resize 'stretch' is not one of pad, crop, squash"),
    ("images", "intensity_range", "[99, 1]", "[images]: intensity_range [99, 1] is not a pair [low, high] of numbers "
                                             "with low < high"),
    ("", "seeds", "0", "tiny.toml: seeds 0 is not a whole number >= 1"),
    ("", "backbone", '""', "tiny.toml: backbone '' is not a non-empty string"),
    ("", "methods", '"simclr"', "tiny.toml: methods 'simclr' is not a list of method names or entries"),
]


@pytest.mark.parametrize("section, key, value, message", BAD_KEYS,
                         ids=[f"{s or 'top'}.{k}={v}" for s, k, v, _ in BAD_KEYS])
def test_a_bad_benchmark_key_is_refused_naming_file_section_key_and_value(tmp_path, capsys, no_training,
                                                                       section, key, value, message):
    benchmark = tiny_with(tmp_path, section, key, value)
    out = tmp_path / "results"
    error = refused(run_command(benchmark, out, tmp_path / "cache"), capsys, out)
    assert f"{benchmark}" in error and message in error
    assert not no_training


@pytest.mark.parametrize("section, key, value", [("pretrain", "steps", "0"), ("evaluate", "probe_c", "[]")])
def test_compare_refuses_a_bad_key_before_any_cell_trains(tmp_path, capsys, no_training, section, key, value):
    out = tmp_path / "results"
    argv = ["compare", "--benchmark", str(tiny_with(tmp_path, section, key, value)), "--seeds", "1",
            "--out", str(out), "--cache-dir", str(tmp_path / "cache"), "--no-embedding"]
    assert f"{key} {value}" in refused(argv, capsys, out)
    assert not no_training
    assert not (tmp_path / "cache").exists()  # not even the cohort was built


def test_the_old_misspelt_key_message_still_holds(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('[evaluate]\nbootstrapp = 100\n')
    error = refused(run_command(bad, tmp_path / "results", tmp_path / "cache"), capsys, tmp_path / "results")
    assert "unknown key 'bootstrapp' (did you mean 'bootstrap'?)" in error


def test_a_section_written_as_a_value_is_refused(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('pretrain = 3\n')
    error = refused(run_command(bad, tmp_path / "results", tmp_path / "cache"), capsys, tmp_path / "results")
    assert "pretrain 3 is not a table; write its keys under [pretrain]" in error


@pytest.mark.parametrize("stem, name, shown", [
    ("runs", None, "'runs' cannot be used: octbench keeps its run records in <out>/runs/"),
    ("tiny", '"."', "'.' cannot be used: it names the folder its reports are written to"),
    ("tiny", '".."', "'..' cannot be used"),
    ("tiny", '"a/b"', "'a/b' cannot be used: it names the folder its reports are written to, so it may hold only "
                      "lowercase letters, digits, '-', '_' and '.', starting with a letter or digit"),
    ("Tiny Bench", None, "'Tiny Bench' cannot be used"),
])
def test_a_benchmark_name_that_is_not_a_folder_of_its_own_is_refused(tmp_path, capsys, stem, name, shown):
    benchmark = tiny_with(tmp_path, "", "name", name, stem) if name else tiny_with(tmp_path, "", "seeds", "1", stem)
    out = tmp_path / "results"
    error = refused(run_command(benchmark, out, tmp_path / "cache"), capsys, out)
    assert f"benchmark name {shown}" in error and "rename the benchmark file" in error


def test_a_valid_name_key_names_the_benchmark(tmp_path):
    assert load_benchmark(str(tiny_with(tmp_path, "", "name", '"tiny-v2.1_b"'))).name == "tiny-v2.1_b"


def test_the_shipped_benchmarks_pass_their_own_checks():
    for name in ("default", "default-long", "olives"):
        load_benchmark(name)


def test_an_override_in_code_goes_through_the_same_checks(tmp_path, no_training):
    benchmark = with_overrides(load_benchmark(str(TINY)), steps=0)
    with pytest.raises(OctbenchError, match=r"tiny.toml \[pretrain\]: steps 0 is not a whole number >= 1"):
        execute(RunRequest(benchmark=benchmark, method="simclr", out=tmp_path / "results", cache_dir=tmp_path))
    assert not (tmp_path / "results").exists() and not no_training


def option_refused(argv: list[str], capsys) -> str:
    """argparse stops on a bad option: status 2, its usage and the option's message."""
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    error = capsys.readouterr().err
    assert "Traceback" not in error
    return error


@pytest.mark.parametrize("option, value, message", [
    ("--seed", "-1", "argument --seed: '-1' is not a whole number >= 0"),
    ("--bins", "0", "argument --bins: '0' is not a whole number >= 2"),
    ("--bins", "-3", "argument --bins: '-3' is not a whole number >= 2"),
    ("--steps", "0", "argument --steps: '0' is not a whole number >= 1"),
    ("--steps", "ten", "argument --steps: 'ten' is not a whole number >= 1"),
    ("--limit", "-5", "argument --limit: '-5' is not a whole number >= 1"),
    ("--label-fraction", "0", "argument --label-fraction: '0' is not a fraction in (0, 1]"),
    ("--label-fraction", "nan", "argument --label-fraction: 'nan' is not a fraction in (0, 1]"),
    ("--devices", "0", "argument --devices: '0' is not a whole number >= 1"),
])
def test_a_bad_run_option_exits_2_naming_the_option_and_its_range(tmp_path, capsys, option, value, message):
    out = tmp_path / "results"
    error = option_refused(run_command(TINY, out, tmp_path / "cache", option, value), capsys)
    assert message in error
    assert not out.exists()


@pytest.mark.parametrize("argv, message", [
    (["compare", "--seeds", "0"], "argument --seeds: '0' is not a whole number >= 1"),
    (["compare", "--jobs", "0"], "argument --jobs: '0' is not a whole number >= 1"),
    (["compare", "--fractions", "0.5", "1.5"], "argument --fractions: '1.5' is not a fraction in (0, 1]"),
    (["synth", "--labels", "tables", "--out", "img", "--size", "4"], "argument --size: '4' is not a whole number >= 8"),
    (["synth", "--labels", "tables", "--out", "img", "--limit", "0"],
     "argument --limit: '0' is not a whole number >= 1"),
])
def test_a_bad_option_of_another_command_exits_2(tmp_path, capsys, argv, message):
    assert message in option_refused(argv, capsys)


def test_out_and_cache_dir_must_not_be_files(tmp_path, capsys):
    file = tmp_path / "results.txt"
    file.write_text("not a folder")
    for option in ("--out", "--cache-dir"):
        argv = ["run", "--method", "simclr", "--benchmark", str(TINY), option, str(file)]
        assert f"argument {option}: {file} is a file, not a folder" in option_refused(argv, capsys)
    assert file.read_text() == "not a folder"


def test_a_folder_given_as_benchmark_is_refused_with_the_list_of_benchmarks(tmp_path, capsys):
    error = option_refused(["run", "--method", "simclr", "--benchmark", str(tmp_path), "--out", str(tmp_path / "r")],
                           capsys)
    assert f"argument --benchmark: benchmark {tmp_path} is a folder; pass a benchmark .toml file or one of: " \
           "default, default-long, olives" in error
    with pytest.raises(OctbenchError, match="is a folder"):
        load_benchmark(str(tmp_path))


def test_a_batch_larger_than_the_pool_is_refused_before_pretraining(tmp_path, capsys, cache, no_training):
    benchmark = tiny_with(tmp_path, "pretrain", "batch_size", "1000")
    out = tmp_path / "results"
    error = refused(run_command(benchmark, out, cache), capsys, out)
    assert f"{benchmark} [pretrain]: batch_size 1000 is larger than the 160 B-scans of the pretraining pool " \
           "simclr trains on; set batch_size to at most 160" in error
    assert not no_training


def test_a_batch_larger_than_the_labelled_training_rows_is_refused_for_a_method_trained_on_them(
        tmp_path, capsys, cache, no_training):
    benchmark = tiny_with(tmp_path, "pretrain", "batch_size", "150")  # the pool holds 160, train 120
    out = tmp_path / "results"
    error = refused(run_command(benchmark, out, cache, method="supervised"), capsys, out)
    assert "batch_size 150 is larger than the 120 biomarker-labelled training B-scans supervised trains on" in error
    error = refused(run_command(benchmark, out, cache, "--protocol", "finetune", method="random-init"), capsys, out)
    assert "batch_size 150 is larger than the 120 biomarker-labelled training B-scans the finetune protocol" in error


def test_a_method_without_pretraining_is_not_held_to_the_batch(tmp_path, capsys, cache):
    benchmark = tiny_with(tmp_path, "pretrain", "batch_size", "1000")
    assert main(run_command(benchmark, tmp_path / "results", cache, method="random-init")) == 0
    assert "run record:" in capsys.readouterr().out


def write_table_cohort(tmp_path: Path, val_irf: int | None) -> Path:
    """A 'table' cohort of 10 patients, 4 B-scans each (train 1-6, val 7-8, test 9-10), every
    biomarker with both classes in every split, except IRF in val when `val_irf` is set."""
    rng = np.random.default_rng(0)
    rows = []
    for patient in range(1, 11):
        split = "train" if patient <= 6 else "val" if patient <= 8 else "test"
        for n in range(4):
            path = tmp_path / "scans" / f"p{patient}_{n}.png"
            path.parent.mkdir(exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8)).save(path)
            row = {"path": path.name, "patient": patient, "split": split, "BCVA": 70, "CST": 300 + n}
            row.update({b: (n + j) % 2 for j, b in enumerate(BIOMARKERS)})
            if split == "val" and val_irf is not None:
                row["IRF"] = val_irf
            rows.append(row)
    pd.DataFrame(rows).to_csv(tmp_path / "scans.csv", index=False)
    benchmark = tmp_path / "mine.toml"
    benchmark.write_text(f'seeds = 1\n[cohort]\nsource = "table"\ntable = "{tmp_path / "scans.csv"}"\n'
                         f'image_root = "{tmp_path / "scans"}"\nimage_size = 16\n'
                         "[pretrain]\nsteps = 2\nbatch_size = 8\n[evaluate]\nprobe_c = [1.0]\nbootstrap = 100\n")
    return benchmark


def test_a_validation_split_without_one_class_of_a_biomarker_is_refused_before_pretraining(
        tmp_path, capsys, no_training):
    benchmark = write_table_cohort(tmp_path, val_irf=0)
    out = tmp_path / "results"
    error = refused(run_command(benchmark, out, tmp_path / "cache"), capsys, out)
    assert f"{benchmark}: biomarker IRF has a single class (0) among the 8 val B-scans of 2 patients, and the " \
           "probe is chosen by validation AUROC" in error
    assert not no_training


def test_the_same_table_cohort_with_both_classes_runs(tmp_path, capsys):
    benchmark = write_table_cohort(tmp_path, val_irf=None)
    assert main(run_command(benchmark, tmp_path / "results", tmp_path / "cache", "--steps", "1")) == 0
    assert "run record:" in capsys.readouterr().out


def convergence_script():
    path = Path(__file__).parents[1] / "benchmarks" / "convergence.py"
    spec = importlib.util.spec_from_file_location("convergence", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_default_long_is_the_default_at_more_steps_with_the_same_rows():
    """Its leaderboard is read against the default's as a budget comparison: nothing a run depends on
    but the steps may differ, and every entry keeps the default's alias and label."""
    default, long = load_benchmark("default"), load_benchmark("default-long")
    assert convergence_script().check_longer(default, long).pretrain.steps == 4 * default.pretrain.steps
    rows = {entry.handle: entry.display() for entry in default.methods}
    assert all(rows[entry.handle] == entry.display() for entry in long.methods)


def test_convergence_refuses_a_long_benchmark_that_differs_in_more_than_its_steps(tmp_path):
    text = (Path(__file__).parents[1] / "benchmarks" / "default-long.toml").read_text()
    changed = tmp_path / "long-lr.toml"
    changed.write_text(text.replace("lr = 1e-3", "lr = 3e-3"))
    with pytest.raises(OctbenchError, match=r"long-lr.toml: differs from default in pretrain.lr, not only in "):
        convergence_script().check_longer(load_benchmark("default"), load_benchmark(str(changed)))
