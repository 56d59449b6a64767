"""Input that must be refused or repaired through the command: table paths that leave their root,
repeated headers and B-scans, tables that are not comma-separated UTF-8, damaged cache entries,
two builders of one cache entry, and a negative --limit. Each refusal exits 2 naming the culprit,
with no traceback and nothing written outside the command's folders."""

import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import PATH_HEADER, write_olives_tables
from PIL import Image

import octbench.images
import octbench.simulate.cohort
from octbench.benchmark import CohortSpec
from octbench.cli import main
from octbench.errors import OctbenchError
from octbench.images import image_store
from octbench.sources.columns import limit_by_patient
from octbench.synth import synthesise

OLIVES_TINY = str(Path(__file__).parent / "data" / "olives_tiny.toml")
TINY = str(Path(__file__).parent / "data" / "tiny.toml")
TRAIN = "biomarker_csv_files/complete_biomarker_training.csv"
TEST = "biomarker_csv_files/complete_biomarker_test.csv"
POOL = "datasets_combined/prime_trex_compressed.csv"


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def edit_table(tmp_path: Path, name: str, change) -> Path:
    file = tmp_path / "tables" / name
    change(pd.read_csv(file)).to_csv(file, index=False)
    return file


def set_path(frame: pd.DataFrame, column: str, rows: dict) -> pd.DataFrame:
    frame = frame.copy()
    for row, path in rows.items():
        frame.loc[row, column] = path
    return frame


def refused(argv: list[str], capsys, *culprits: str) -> str:
    """Runs the command, which must exit 2 with one octbench error naming every culprit."""
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert error.startswith("octbench: error: ") and "Traceback" not in error
    for culprit in culprits:
        assert culprit in error
    return error


def olives_run(tmp_path: Path) -> list[str]:
    return ["run", "--method", "simclr", "--benchmark", OLIVES_TINY, "--tables", str(tmp_path / "tables"),
            "--olives-root", str(tmp_path / "img"), "--out", str(tmp_path / "results"),
            "--cache-dir", str(tmp_path / "cache"), "--no-progress"]


def write_scan(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((np.arange(256, dtype=np.uint8).reshape(16, 16) + value).astype(np.uint8)).save(path)


def table_cohort(tmp_path: Path, image_root: str | None = "scans", rows: int = 24) -> tuple[Path, str]:
    """A user's CSV with the six biomarkers, its images under tmp_path/scans, and a benchmark for it."""
    for i in range(rows):
        write_scan(tmp_path / "scans" / f"s{i}.png", i)
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"file": [f"s{i}.png" for i in range(rows)], "patient": [i // 2 for i in range(rows)],
                          "BCVA": 70, "CST": 300})
    for name in ("IRHRF", "PAVF", "FAVF", "IRF", "DRT_ME", "VD"):
        frame[name] = rng.integers(0, 2, rows)
    frame.to_csv(tmp_path / "scans.csv", index=False)
    root = f'image_root = "{tmp_path / image_root}"\n' if image_root else ""
    benchmark = tmp_path / "table.toml"
    benchmark.write_text(f'description = "a user table"\nbackbone = "resnet18"\nseeds = 1\n\n[cohort]\n'
                         f'source = "table"\ntable = "{tmp_path / "scans.csv"}"\n{root}image_size = 16\n'
                         'columns = { path = "file" }\n\n[pretrain]\nsteps = 2\nbatch_size = 8\n')
    return tmp_path / "scans.csv", str(benchmark)


def table_run(tmp_path: Path, benchmark: str) -> list[str]:
    return ["run", "--method", "simclr", "--benchmark", benchmark, "--out", str(tmp_path / "results"),
            "--cache-dir", str(tmp_path / "cache"), "--no-progress"]


def nothing_made(tmp_path: Path) -> None:
    """No run folder and no image cache: the refusal came before anything was written."""
    assert not (tmp_path / "results").exists()
    assert not list(tmp_path.glob("cache/**/*.npy"))


# 1. Paths from a table stay inside their root.

def test_synth_refuses_paths_leading_out_of_out_and_writes_nothing(tmp_path, capsys):
    write_olives_tables(tmp_path, images=False)
    edit_table(tmp_path, TRAIN, lambda f: set_path(f, PATH_HEADER, {1: "/Prime_FULL/../../../escaped/W0/OD/1.png",
                                                                     4: "/../../escaped/W0/OD/4.png"}))
    edit_table(tmp_path, POOL, lambda f: set_path(f, "File_Path", {2: "/Prime_FULL/../../../../escaped/W0/OD/2.png"}))
    before = files_under(tmp_path)
    error = refused(["synth", "--labels", str(tmp_path / "tables"), "--out", str(tmp_path / "out" / "img"),
                     "--size", "16"], capsys,
                    "2 problems in the cohort's tables",
                    f"complete_biomarker_training.csv: line 3 has '{PATH_HEADER}' = "
                    "'/Prime_FULL/../../../escaped/W0/OD/1.png' (and 1 more rows: lines 6); it leads outside the "
                    f"image root {tmp_path / 'out' / 'img'}",
                    "prime_trex_compressed.csv: line 4 has 'File_Path' = '/Prime_FULL/../../../../escaped/W0/OD/2.png'")
    assert "remove the '..'" in error
    assert files_under(tmp_path) == before and not (tmp_path / "escaped").exists()
    assert not (tmp_path / "out").exists()


def test_run_refuses_an_olives_path_outside_the_image_root(tmp_path, capsys):
    write_olives_tables(tmp_path)
    write_scan(tmp_path / "outside" / "W0" / "OD" / "1.png", 3)  # readable, so only the check can stop it
    edit_table(tmp_path, TEST, lambda f: set_path(f, PATH_HEADER, {1: "/Prime_FULL/../../outside/W0/OD/1.png"}))
    refused(olives_run(tmp_path), capsys, f"complete_biomarker_test.csv: line 3 has '{PATH_HEADER}' = "
                                          f"'/Prime_FULL/../../outside/W0/OD/1.png'; it leads outside the image root "
                                          f"{tmp_path / 'img'}")
    nothing_made(tmp_path)


def test_a_path_that_folds_back_inside_the_root_is_read(tmp_path, capsys):
    write_olives_tables(tmp_path)
    edit_table(tmp_path, TEST, lambda f: set_path(f, PATH_HEADER, {1: "/Prime_FULL/../Prime_FULL/01-009/W0/OD/1.png"}))
    argv = ["prepare", "--benchmark", OLIVES_TINY, "--tables", str(tmp_path / "tables"),
            "--olives-root", str(tmp_path / "img"), "--cache-dir", str(tmp_path / "cache")]
    assert main(argv) == 0, capsys.readouterr().err


@pytest.mark.parametrize("image_root", ["scans", None])
def test_run_refuses_a_table_source_path_outside_its_root(tmp_path, capsys, monkeypatch, image_root):
    table, benchmark = table_cohort(tmp_path, image_root)
    if image_root is None:  # paths are relative to the current folder, as before
        monkeypatch.chdir(tmp_path / "scans")
    write_scan(tmp_path / "outside.png", 99)
    frame = pd.read_csv(table)
    set_path(frame, "file", {3: "../outside.png", 7: "a/../../outside.png"}).to_csv(table, index=False)
    root = f"the image root {tmp_path / 'scans'}" if image_root else f"the current folder {tmp_path / 'scans'}"
    refused(table_run(tmp_path, benchmark), capsys,
            f"scans.csv: line 5 has 'file' = '../outside.png' (and 1 more rows: lines 9); it leads outside {root}")
    nothing_made(tmp_path)


# 2. A column named twice in a header.

def test_a_repeated_header_is_refused_in_an_olives_table(tmp_path, capsys):
    write_olives_tables(tmp_path)
    edit_table(tmp_path, TRAIN, lambda f: pd.concat([f, f[["BCVA"]]], axis=1))
    columns = pd.read_csv(tmp_path / "tables" / TRAIN, nrows=0).columns
    assert "BCVA.1" in columns  # what pandas would silently read
    position = list(columns).index("BCVA") + 1
    refused(olives_run(tmp_path), capsys, f"complete_biomarker_training.csv: the header repeats column 'BCVA' "
                                          f"(columns {position} and {len(columns)}); octbench finds columns by name")
    nothing_made(tmp_path)


def test_headers_that_differ_only_in_spaces_and_case_are_one_column(tmp_path, capsys):
    table, benchmark = table_cohort(tmp_path)
    pd.read_csv(table).assign(**{"cst ": 250}).to_csv(table, index=False)
    refused(table_run(tmp_path, benchmark), capsys,
            "scans.csv: the header repeats column 'cst ' (columns 4 as 'CST' and 11)")
    nothing_made(tmp_path)


# 3. A B-scan listed twice in a table-source cohort.

def test_a_bscan_listed_twice_in_a_user_table_is_refused_with_its_lines(tmp_path, capsys):
    table, benchmark = table_cohort(tmp_path)
    frame = pd.read_csv(table)
    set_path(frame, "file", {5: "s2.png", 9: "./s2.png"}).to_csv(table, index=False)
    refused(table_run(tmp_path, benchmark), capsys,
            "scans.csv: line 7 has 'file' = 's2.png' (and 1 more rows: lines 11); it repeats an earlier row's image")
    nothing_made(tmp_path)


# 4. A table separated by semicolons or tabs.

@pytest.mark.parametrize("separator, name", [(";", "semicolons"), ("\t", "tabs")])
def test_a_table_not_separated_by_commas_gets_one_message(tmp_path, capsys, separator, name):
    write_olives_tables(tmp_path)
    file = tmp_path / "tables" / TRAIN
    pd.read_csv(file).to_csv(file, index=False, sep=separator)
    error = refused(olives_run(tmp_path), capsys, f"complete_biomarker_training.csv: looks {separator!r}-separated "
                                                  f"({name} split its header into 26 columns, commas into 1); save "
                                                  "it comma-separated (CSV)")
    assert error.count("\n") == 1 and "no column" not in error
    nothing_made(tmp_path)


# 5. A table that is not UTF-8.

def test_a_latin1_table_is_named_with_its_byte_and_line(tmp_path, capsys):
    table, benchmark = table_cohort(tmp_path)
    frame = pd.read_csv(table).assign(site="Paris")
    frame.loc[2, "site"] = "Créteil"
    frame.to_csv(table, index=False, encoding="latin-1")
    refused(table_run(tmp_path, benchmark), capsys,
            "scans.csv: not UTF-8 text (byte 0xe9 at line 4); save it as UTF-8")
    nothing_made(tmp_path)


def test_a_utf8_table_with_a_byte_order_mark_is_read(tmp_path, capsys):
    write_olives_tables(tmp_path)
    file = tmp_path / "tables" / TRAIN
    pd.read_csv(file).to_csv(file, index=False, encoding="utf-8-sig")
    argv = ["prepare", "--benchmark", OLIVES_TINY, "--tables", str(tmp_path / "tables"),
            "--olives-root", str(tmp_path / "img"), "--cache-dir", str(tmp_path / "cache")]
    assert main(argv) == 0, capsys.readouterr().err


# 6. A damaged cache entry is named and rebuilt.

def truncate(file: Path, keep: int) -> None:
    with open(file, "r+b") as handle:
        handle.truncate(keep)


@pytest.mark.parametrize("keep", [0, 60, 500])  # empty, inside the .npy header, inside the images
def test_a_truncated_image_cache_is_named_and_rebuilt(tmp_path, capsys, keep):
    write_olives_tables(tmp_path)
    argv = ["prepare", "--benchmark", OLIVES_TINY, "--tables", str(tmp_path / "tables"),
            "--olives-root", str(tmp_path / "img"), "--cache-dir", str(tmp_path / "cache")]
    assert main(argv) == 0
    (cache,) = (tmp_path / "cache" / "images").glob("images-*.npy")
    whole = np.load(cache).copy()
    truncate(cache, keep)
    capsys.readouterr()
    assert main(argv) == 0
    error = capsys.readouterr().err
    assert f"octbench: image cache {cache} is damaged (" in error and "rebuilding it" in error
    assert "Traceback" not in error and np.array_equal(np.load(cache), whole)
    assert not list((tmp_path / "cache").rglob("*.lock")) and not list((tmp_path / "cache").rglob("*partial*"))


@pytest.mark.parametrize("damaged, keep", [("images.npy", 1000), ("table.csv", -3), ("table.csv", 0)])
def test_a_truncated_simulated_cohort_cache_is_named_and_rebuilt(tmp_path, capsys, damaged, keep):
    argv = ["prepare", "--benchmark", TINY, "--cache-dir", str(tmp_path / "cache")]
    assert main(argv) == 0
    (folder,) = (tmp_path / "cache").glob("simulated-*")
    whole = np.load(folder / "images.npy").copy()
    file = folder / damaged
    truncate(file, keep if keep >= 0 else file.stat().st_size + keep)  # -3: the last row cut short
    capsys.readouterr()
    assert main(argv) == 0
    error = capsys.readouterr().err
    assert f"octbench: simulated cohort cache {folder} is damaged (" in error and "rebuilding it" in error
    assert "Traceback" not in error and np.array_equal(np.load(folder / "images.npy"), whole)
    assert len(pd.read_csv(folder / "table.csv")) == len(whole)


# 7. Two builders of one cache entry: one builds, both read it.

def test_two_threads_building_one_image_cache_entry_build_it_once(tmp_path, monkeypatch):
    paths = []
    for i in range(6):
        write_scan(tmp_path / "img" / f"{i}.png", i)
        paths.append(str(tmp_path / "img" / f"{i}.png"))
    builds = []
    build = octbench.images.build_cache

    def slow_build(*args):
        builds.append(threading.get_ident())
        time.sleep(0.5)  # long enough that the other thread arrives while this one builds
        return build(*args)

    monkeypatch.setattr(octbench.images, "build_cache", slow_build)
    results = [None, None]

    def store(i):
        results[i] = image_store(paths, 8, tmp_path / "cache", workers=1)

    threads = [threading.Thread(target=store, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(builds) == 1
    (first, first_hashes), (second, second_hashes) = results
    assert np.array_equal(first, second) and first_hashes == second_hashes and first.shape == (6, 8, 8)
    assert not list((tmp_path / "cache").glob("*.lock"))


def test_two_threads_building_one_simulated_cohort_render_it_once(tmp_path, monkeypatch):
    renders = []

    def slow_render(table, size, seed, workers):
        renders.append(threading.get_ident())
        time.sleep(0.5)
        return octbench.simulate.cohort.render_scans(table, size, seed, False)

    monkeypatch.setattr(octbench.simulate.cohort, "render_parallel", slow_render)
    spec = CohortSpec(patients=12, image_size=16, pool_scans=20, train_scans=10, val_scans=6, test_scans=10)
    results = [None, None]

    def cohort(i):
        results[i] = octbench.simulate.cohort.simulated_cohort(spec, tmp_path / "cache")

    threads = [threading.Thread(target=cohort, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(renders) == 1
    assert np.array_equal(results[0].images, results[1].images) and results[0].table.equals(results[1].table)
    assert not list((tmp_path / "cache").glob("*.lock"))


# 8. A negative --limit is refused, not turned into a slice.

def test_synth_refuses_a_negative_limit_and_a_zero_size(tmp_path, capsys):
    write_olives_tables(tmp_path, images=False)
    base = ["synth", "--labels", str(tmp_path / "tables"), "--out", str(tmp_path / "out")]
    for option, value in (("--limit", "-5"), ("--size", "0")):
        try:  # the command line may refuse it before synthesise() does, as argparse does: exit 2
            code = main([*base, option, value])
        except SystemExit as exit:
            code = exit.code
        error = capsys.readouterr().err
        assert code == 2 and option.strip("-") in error and value in error and "Traceback" not in error
    assert not (tmp_path / "out").exists()
    with pytest.raises(OctbenchError, match=r"limit -5: keep at least 1 row per table"):
        synthesise(tmp_path / "tables", tmp_path / "out", limit=-5)
    with pytest.raises(OctbenchError, match=r"size 0: B-scans are rendered at a size of at least 1 pixel"):
        synthesise(tmp_path / "tables", tmp_path / "out", size=0)
    frame = pd.DataFrame({"patient": [1, 1, 2, 2, 3]})
    with pytest.raises(OctbenchError, match=r"limit -5: keep at least 1 row per table"):
        limit_by_patient(frame, -5, seed=0)
    assert len(limit_by_patient(frame, 3, seed=0)) == 3 and len(limit_by_patient(frame, None, seed=0)) == 5
