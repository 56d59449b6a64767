"""Leaderboards from synthetic run records: rows by entry label, hierarchical intervals, resample
counts, validation ranking, matched controls, secondary metrics, Markdown and LaTeX."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score

from octbench.errors import OctbenchError
from octbench.leaderboard import RunResult, format_delta, format_p, latex, leaderboard, markdown
from octbench.stats import (
    mean_auroc_samples,
    p_floor,
    patient_resample_counts,
    percentile_interval,
    resamples_for,
)

LABELS = ("IRF", "DRT_ME")
N_PATIENTS, PER_PATIENT = 40, 5


def truth() -> tuple[np.ndarray, np.ndarray]:
    """Patients (n,) and labels (n, k), the same test set for every run."""
    rng = np.random.default_rng(0)
    patients = np.repeat(np.arange(N_PATIENTS), PER_PATIENT)
    return patients, rng.integers(0, 2, size=(len(patients), len(LABELS)))


def synthetic_run(label: str, seed: int = 0, signal: float = 1.0, method: str | None = None, fraction: float = 1.0,
                  protocol: str = "linear", options: dict | None = None, val: float | None = 0.8,
                  noise: int | None = None, fingerprint: str | None = "9f2c0ddc", threshold: float | None = 0.5,
                  record_label: bool = True) -> RunResult:
    """A run whose scores are signal * y + a patient effect + noise (seeded by `noise`, else by the
    label and seed)."""
    patients, y = truth()
    rng = np.random.default_rng(noise if noise is not None else [seed, len(label), ord(label[0])])
    score = signal * y + rng.normal(0, 0.5, N_PATIENTS)[patients][:, None] + rng.normal(size=y.shape)
    predictions = pd.DataFrame({
        "sample_id": np.repeat([f"s{i:04d}" for i in range(len(patients))], len(LABELS)),
        "patient": np.repeat(patients, len(LABELS)), "biomarker": np.tile(LABELS, len(patients)),
        "y_true": y.ravel(), "y_score": score.ravel()})
    method = method or label
    metrics = {"run_id": f"{method}_resnet18_bench_seed{seed}_lf{fraction}", "method": method, "benchmark": "bench",
               "seed": seed, "label_fraction": fraction, "protocol": protocol, "options": options or {},
               "cohort": {"source": "simulated", "fingerprint": fingerprint} if fingerprint else None}
    if record_label:
        metrics["label"] = label
    if val is not None:
        metrics["val_mean_auroc"] = val
    if threshold is not None:
        metrics["threshold"] = {b: threshold for b in LABELS}
    return RunResult(Path(f"/runs/{label}-{seed}-{fraction}-{protocol}"), metrics, predictions)


def board(*runs: RunResult, **kwargs) -> pd.DataFrame:
    return leaderboard(list(runs), **kwargs).set_index("method")


def patient_only_interval(table: pd.DataFrame, runs: list[RunResult]) -> tuple[float, float]:
    """The interval of the seed-averaged score with patients resampled and the seeds kept."""
    patients, y = truth()
    codes, counts = patient_resample_counts(patients, table.attrs["n_resamples"], 0)
    scores = [run.score_table()["y_score"][list(LABELS)].to_numpy() for run in runs]
    return percentile_interval(np.mean([mean_auroc_samples(y.astype(float), s, codes, counts) for s in scores], axis=0))


def width(interval) -> float:
    return interval[1] - interval[0]


# ---- rows -------------------------------------------------------------------------------------------

def test_rows_are_named_by_the_records_label_never_by_the_folder_name():
    runs = [synthetic_run("my_moco", record_label=False), synthetic_run("my_simclr", record_label=False),
            synthetic_run("clinical SupCon (BCVA+CST)", method="clinical-supcon",
                          options={"clinical": [["BCVA", 0.5], ["CST", 0.5]], "bins": None})]
    table = board(*runs)
    assert set(table.index) == {"my_moco", "my_simclr", "clinical SupCon (BCVA+CST)"}
    assert table.loc["clinical SupCon (BCVA+CST)", "method_name"] == "clinical-supcon"


def test_rows_are_grouped_by_label_protocol_and_fraction():
    runs = [synthetic_run("simclr", seed, protocol=protocol, fraction=fraction)
            for seed in (0, 1) for protocol in ("linear", "knn") for fraction in (1.0, 0.25)]
    table = leaderboard(runs)
    assert sorted(zip(table["method"], table["label_fraction"])) == [
        ("simclr (knn)", 0.25), ("simclr (knn)", 1.0), ("simclr (linear)", 0.25), ("simclr (linear)", 1.0)]
    assert (table["seeds"] == 2).all()
    assert table["label_fraction"].tolist() == [1.0, 1.0, 0.25, 0.25]  # the full-label block first


def test_runs_of_two_cohorts_are_refused_naming_each_fingerprint_and_its_runs():
    runs = [synthetic_run("simclr", 0, fingerprint="aaaa1111"), synthetic_run("simclr", 1, fingerprint="aaaa1111"),
            synthetic_run("byol", 0, fingerprint="bbbb2222")]
    with pytest.raises(OctbenchError, match=r"aaaa1111 \(2 runs\), bbbb2222 \(1 run\)"):
        leaderboard(runs)
    # Records from before fingerprints cannot tell: they join the one fingerprinted cohort.
    table = leaderboard([*runs[:2], synthetic_run("byol", 0, fingerprint=None)])
    assert table.attrs["cohort"] == {"source": "simulated", "fingerprint": "aaaa1111", "unrecorded": 1}


def test_one_seed_recorded_twice_or_one_label_with_two_option_sets_is_refused():
    with pytest.raises(OctbenchError, match="both seed 0 of 'simclr'"):
        leaderboard([synthetic_run("simclr", 0), synthetic_run("simclr", 0, noise=5)])
    with pytest.raises(OctbenchError, match="same label 'cs' but differ"):
        leaderboard([synthetic_run("cs", 0, method="clinical-supcon", options={"clinical": [["BCVA", 1.0]]}),
                     synthetic_run("cs", 1, method="clinical-supcon", options={"clinical": [["CST", 1.0]]})])


# ---- intervals and resamples --------------------------------------------------------------------------

def test_seeds_that_disagree_widen_the_interval_and_seeds_that_agree_do_not():
    other = synthetic_run("byol", 0, noise=99)
    agreeing = [synthetic_run("simclr", seed, noise=7) for seed in (0, 1)]  # identical scores
    table = board(*agreeing, other)
    assert table.loc["simclr", ["ci_low", "ci_high"]].tolist() == pytest.approx(
        patient_only_interval(table, agreeing), abs=1e-12)
    one_seed = board(agreeing[0], other)
    assert table.loc["simclr", ["ci_low", "ci_high"]].tolist() == pytest.approx(
        one_seed.loc["simclr", ["ci_low", "ci_high"]].tolist(), abs=1e-12)

    disagreeing = [synthetic_run("simclr", 0, signal=0.4, noise=7), synthetic_run("simclr", 1, signal=2.5, noise=8)]
    table = board(*disagreeing, other)
    hierarchical = table.loc["simclr", ["ci_low", "ci_high"]].tolist()
    assert width(hierarchical) > 1.5 * width(patient_only_interval(table, disagreeing))


def test_the_resample_count_follows_the_number_of_comparisons():
    assert [resamples_for(m) for m in (1, 5, 6, 16, 25, 26, 1000)] == [1999, 1999, 3999, 9999, 9999, 19999, 19999]
    for m in range(1, 51):  # the smallest p is at least ten times below Holm's smallest threshold
        assert p_floor(resamples_for(m)) <= 0.05 / (10 * m) + 1e-12
    assert resamples_for(1, at_least=5000) == 5000
    runs = [synthetic_run(name, seed) for name in ("simclr", "byol", "moco-v2") for seed in (0, 1)]
    assert leaderboard(runs, n_resamples=50).attrs["n_resamples"] == 1999  # a request for fewer is raised


def test_clearly_different_methods_resolve_a_p_below_the_old_floor_printed_with_less_than():
    runs = [synthetic_run("simclr", seed, signal=0.2, val=0.6) for seed in (0, 1)]
    runs += [synthetic_run("moco-v2", seed, signal=3.0, val=0.9) for seed in (0, 1)]
    table = board(*runs)
    assert table.loc["simclr", "p_best"] < 2 / 1001
    assert table.loc["simclr", "p_best"] == pytest.approx(p_floor(table.attrs["n_resamples"]))
    assert table.loc["simclr", "p_best_bound"]
    text = markdown(leaderboard(runs), "bench")
    assert "(p < 0.001)" in text and "p = 0.001" not in text and "p=0.001" not in text


# ---- ranking and comparisons --------------------------------------------------------------------------

def test_rows_are_ranked_and_the_best_chosen_on_validation():
    runs = [synthetic_run("moco-v2", seed, signal=2.5, val=0.70) for seed in (0, 1)]  # best on test
    runs += [synthetic_run("byol", seed, signal=1.0, val=0.90) for seed in (0, 1)]  # best on validation
    runs += [synthetic_run("simclr", seed, signal=1.5, val=0.80) for seed in (0, 1)]
    runs += [synthetic_run("supervised", seed, signal=4.0, val=0.99) for seed in (0, 1)]
    table = leaderboard(runs)
    assert table["method"].tolist() == ["byol", "simclr", "moco-v2", "supervised"]
    assert (table["best_method"] == "byol").all() and table.attrs["ranked_on_validation"]
    text = markdown(table, "bench")
    assert "ordered by mean validation AUROC" in text and "chosen on validation AUROC" in text

    del runs[0].metrics["val_mean_auroc"]  # one record without validation scores: test order, said so
    table = leaderboard(runs)
    assert table["method"].tolist() == ["moco-v2", "simclr", "byol", "supervised"]
    assert "ordered by test mean AUROC: no validation scores in these records" in markdown(table, "bench")


def test_validation_auroc_falls_back_to_the_probes_record():
    run = synthetic_run("simclr", val=None)
    run.metrics["probe"] = {"IRF": {"C": 1.0, "val_auroc": 0.7}, "DRT_ME": {"C": 0.1, "val_auroc": 0.8}}
    assert run.val_mean_auroc == pytest.approx(0.75)
    assert synthetic_run("simclr", val=None).val_mean_auroc is None


def test_each_row_is_compared_with_the_best_its_matched_control_and_the_next_row():
    instance = {"clinical": [["simclr", 1.0]], "bins": None}
    clinical = {"clinical": [["BCVA", 0.5], ["CST", 0.5]], "bins": None}
    runs = [synthetic_run("moco-v2", val=0.9), synthetic_run("simclr", val=0.8),
            synthetic_run("SupCon BCVA+CST", method="clinical-supcon", options=clinical, val=0.85),
            synthetic_run("SupCon instance", method="clinical-supcon", options=instance, val=0.7),
            synthetic_run("supervised", val=0.95), synthetic_run("random-init", val=0.5)]
    table = board(*runs)
    def references(column: str) -> dict:
        return {name: ref if isinstance(ref, str) else None for name, ref in table[column].items()}

    assert references("control_method") == {
        "moco-v2": "simclr", "SupCon BCVA+CST": "SupCon instance", "simclr": None, "SupCon instance": None,
        "supervised": "simclr", "random-init": "simclr"}
    assert references("next_method") == {
        "moco-v2": "SupCon BCVA+CST", "SupCon BCVA+CST": "simclr", "simclr": "SupCon instance",
        "SupCon instance": None, "supervised": "random-init", "random-init": None}
    assert (table["best_method"] == "moco-v2").all()  # supervised scores higher but is a baseline
    assert table.loc["simclr", "delta_control"] != table.loc["simclr", "delta_control"]  # NaN: itself
    expected = table.loc["SupCon BCVA+CST", "mean_auroc"] - table.loc["SupCon instance", "mean_auroc"]
    assert table.loc["SupCon BCVA+CST", "delta_control"] == pytest.approx(expected)
    assert table.loc[["moco-v2", "supervised"], "baseline"].tolist() == [False, True]
    for column in ("p_best", "p_control", "p_next"):
        tested = table[column].dropna()
        assert len(tested) and ((tested > 0) & (tested <= 1)).all()


# ---- secondary metrics ----------------------------------------------------------------------------------

def test_average_precision_and_accuracy_come_from_the_predictions_and_the_recorded_threshold():
    runs = [synthetic_run("simclr", seed, threshold=0.4) for seed in (0, 1)] + [synthetic_run("byol", threshold=None)]
    table = board(*runs)
    for label in LABELS:
        per_seed = [run.predictions[run.predictions["biomarker"] == label] for run in runs[:2]]
        auprc = np.mean([average_precision_score(p["y_true"], p["y_score"]) for p in per_seed])
        accuracy = np.mean([((p["y_score"] >= 0.4) == p["y_true"]).mean() for p in per_seed])
        assert table.loc["simclr", f"{label}_auprc"] == pytest.approx(auprc)
        assert table.loc["simclr", f"{label}_accuracy"] == pytest.approx(accuracy)
    assert np.isnan(table.loc["byol", "mean_accuracy"]) and table.loc["byol", "mean_auprc"] > 0.5
    text = markdown(leaderboard(runs), "bench")
    byol_line = [line for line in text.splitlines() if line.startswith("| byol |")]
    assert len(byol_line) == 1 and byol_line[0].count("/ —") == len(LABELS) + 1


# ---- Markdown ----------------------------------------------------------------------------------------------

def test_markdown_states_the_records_protocol_cohort_fractions_seeds_and_commits():
    runs = [synthetic_run(name, seed, protocol="knn", fraction=fraction)
            for name in ("simclr", "byol") for seed in (0, 1, 2) for fraction in (1.0, 0.25)]
    text = markdown(leaderboard(runs), "bench", ["0123456789abcdef0123"])  # the old positional call
    assert "Protocol: `knn`, k-nearest-neighbour probe on frozen features." in text
    assert "linear probe" not in text.lower()
    assert "Cohort: simulated, fingerprint `9f2c0ddc`." in text
    assert "Label fractions: 100%, 25% of training patients." in text and "Seeds per row: 3." in text
    assert "`0123456789ab`" in text
    assert "draws the row's training seeds with replacement and the test patients with replacement" in text
    other = markdown(leaderboard(runs), "bench", cohort={"source": "olives", "fingerprint": "77aa"}, protocol="linear")
    assert "Cohort: olives, fingerprint `77aa`." in other and "Protocol: `linear`" in other


def test_markdown_puts_baselines_below_and_bolds_only_the_best_of_each_column():
    runs = [synthetic_run(name, seed, signal=signal, val=val) for name, signal, val in
            (("simclr", 1.0, 0.8), ("byol", 1.5, 0.85), ("supervised", 4.0, 0.99), ("random-init", 0.1, 0.5))
            for seed in (0, 1)]
    runs.append(synthetic_run("raw-pixels", 0, signal=0.5, val=0.6))
    text = markdown(leaderboard(runs), "bench")
    lines = text.splitlines()
    where = {name: next(i for i, line in enumerate(lines) if line.startswith(f"| {rank} | {name} |"))
             for rank, name in (("1", "byol"), ("2", "simclr"), ("", "supervised"), ("", "random-init"),
                                ("", "raw-pixels"))}
    baselines = next(i for i, line in enumerate(lines) if line.startswith("Baselines"))
    assert where["byol"] < where["simclr"] < baselines < min(where[b] for b in ("supervised", "random-init"))
    bold = [line.count("**") // 2 for line in lines if line.startswith("| ")]
    assert sum(bold) == len(LABELS) + 1  # one best value per biomarker column and the mean
    assert "**" not in lines[where["supervised"]]  # a baseline is never the best of a column
    assert "1 †" in lines[where["raw-pixels"]] and "one seed (†): raw-pixels" in text


# ---- LaTeX -------------------------------------------------------------------------------------------------

def latex_rows(text: str) -> list[str]:
    body = text[text.index(r"\toprule"):text.index(r"\bottomrule")]
    return [line for line in body.splitlines() if line.rstrip().endswith(r"\\")]


def test_latex_holds_every_fraction_with_intervals_seeds_and_escaped_names(tmp_path):
    runs = [synthetic_run(name, seed, fraction=fraction, method=method)
            for name, method in (("SupCon_a & 50% #1", "clinical-supcon"), ("simclr", "simclr"),
                                 ("supervised", "supervised"))
            for seed in (0, 1) for fraction in (1.0, 0.5, 0.25)]
    runs.append(synthetic_run("byol", 0))
    text = latex(leaderboard(runs))
    for command in (r"\toprule", r"\midrule", r"\bottomrule", r"\caption{", r"\begin{tabular}"):
        assert command in text
    assert r"SupCon\_a \& 50\% \#1" in text and "SupCon_a" not in text
    assert all(f"{fraction}\\%" in text for fraction in (100, 50, 25))
    assert "$^\\dagger$" in text and "[0." in text and "$\\pm$" in text

    stack = []
    for kind, name in re.findall(r"\\(begin|end)\{(\w+)\}", text):
        if kind == "begin":
            stack.append(name)
        else:
            assert stack and stack.pop() == name
    assert not stack
    rows = latex_rows(text)
    ampersands = {len(re.findall(r"(?<!\\)&", row)) for row in rows}
    assert len(rows) == 1 + 3 * 3 + 1 and len(ampersands) == 1  # header, 3 rows x 3 fractions, byol
    columns = re.search(r"\\begin\{tabular\}\{(\w+)\}", text).group(1)
    assert ampersands == {len(columns) - 1}

    if shutil.which("pdflatex") is None:
        return
    document = tmp_path / "table.tex"
    document.write_text("\\documentclass{article}\\usepackage{booktabs}\\begin{document}\n" + text
                        + "\\end{document}\n")
    result = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", document.name],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-2000:]
    assert (tmp_path / "table.pdf").exists()


def test_the_table_csv_carries_every_column(tmp_path):
    table = leaderboard([synthetic_run("simclr", seed) for seed in (0, 1)] + [synthetic_run("byol")])
    table.to_csv(tmp_path / "leaderboard.csv", index=False)
    columns = set(pd.read_csv(tmp_path / "leaderboard.csv").columns)
    assert {"method", "label_fraction", "seeds", "mean_auroc", "ci_low", "ci_high", "mean_auprc", "mean_accuracy",
            "IRF_auprc", "IRF_accuracy", "val_mean_auroc", "p_best", "p_best_bound", "control_method",
            "p_next"} <= columns
    assert json.loads(table.loc[0, "options"]) == {}


def test_p_values_print_as_resolved_numbers_or_as_bounds_at_the_floor():
    assert format_p(p_floor(1999), bound=True) == "p < 0.001"
    assert format_p(p_floor(9999) * 16, bound=True) == "p < 0.0032"
    assert format_p(0.0042, bound=False) == "p = 0.0042" and format_p(0.2314, bound=False) == "p = 0.231"
    assert format_delta(0.0104, 0.0042) == "+0.010* (p = 0.0042)"
    assert format_delta(-0.2, 0.003, bound=True) == "-0.200* (p < 0.003)"
    assert format_delta(np.nan, np.nan) == "—"


def test_a_collapsed_row_is_marked_and_never_best_and_the_late_gain_is_shown():
    runs = [synthetic_run("simclr", seed, signal=2.0, val=0.9) for seed in range(2)]
    runs += [synthetic_run("byol", seed, signal=0.5, val=0.8) for seed in range(2)]
    for run in runs:
        run.metrics["budget"] = [{"step": 30, "mean_auroc": 0.6}, {"step": 60, "mean_auroc": 0.7},
                                 {"step": 120, "mean_auroc": 0.75}]
    for run in runs[:2]:
        run.metrics["health"] = {"collapsed": True, "reason": "final loss at its trivial level"}
    table = leaderboard(runs)
    assert table.set_index("method").loc["byol", "best_method"] == "byol"  # simclr ranks first but collapsed
    assert table["gain_last_half"].tolist() == pytest.approx([0.05, 0.05])
    text = markdown(table, "bench")
    assert "simclr ⚠ collapsed (2/2 seeds)" in text and "+0.050" in text


def test_the_header_names_the_fractions_where_a_several_seed_row_has_one_seed():
    runs = [synthetic_run("simclr", seed) for seed in (0, 1, 2)] + [synthetic_run("simclr", 0, fraction=0.1)]
    runs += [synthetic_run("byol", 0, fraction=fraction) for fraction in (1.0, 0.1)]
    text = markdown(leaderboard(runs), "bench")
    assert "one seed (†): byol, simclr (at 10%)." in text
