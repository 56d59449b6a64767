"""The `octbench` command."""

from __future__ import annotations

import argparse
import errno
import importlib.util
import logging
import os
import sys
import warnings
from pathlib import Path

from octbench.benchmark import PROTOCOLS, TRACKERS
from octbench.errors import NotRankZero, OctbenchError
from octbench.signals import Interrupted, stop_on_signals

DESCRIPTION = """\
octbench: which pretraining gives the best OCT biomarker detector?

  octbench run --method clinical-supcon     pretrain, probe and record one run
  octbench prepare --benchmark olives       read a cohort's tables and decode its images into the cache
  octbench synth --labels TABLES --out DIR  render simulated B-scans under the OLIVES label tables
  octbench export --out DIR                 write the default cohort as PNG files and cohort.csv
  octbench compare                          run every missing cell of a benchmark, then report
  octbench report                           rebuild leaderboards and figures from existing runs
  octbench list                             methods and benchmarks
  octbench show-config --set pretrain.steps=10   the benchmark as resolved, as TOML
  octbench export-backbone RUN --in-chans 3      a run's backbone for tools that want RGB input

Runs go to results/runs/<run-id>/ (config.json, metrics.json, predictions.csv, backbone.pt and .safetensors);
leaderboards and figures to results/<benchmark>/.
"""


# Option types: a bad value stops argparse at once (status 2, the option named), before anything runs.

def whole_number(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= {minimum}")
        return value
    return parse


def fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not 0 < value <= 1:  # NaN fails the comparison too
        raise argparse.ArgumentTypeError(f"{text!r} is not a fraction in (0, 1], e.g. 0.25 or 1")
    return value


def folder(text: str) -> Path:
    """A folder octbench writes into: created if missing, but never an existing file."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file, not a folder; name a folder (created if missing)")
    return path


def benchmark_name_or_file(text: str) -> str:
    from octbench.benchmark import check_not_a_folder

    try:
        check_not_a_folder(text)
    except OctbenchError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def octbench_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("octbench")
    except metadata.PackageNotFoundError:  # imported from a checkout that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="octbench", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true", help="show tracebacks and the libraries' own messages")
    parser.add_argument("--version", action="version", version=f"octbench {octbench_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="pretrain one method, probe it, write its run record",
                              description="Pretrain one method on a benchmark, probe its frozen features "
                                          "for each biomarker, and write the run record.")
    run.add_argument("--method", required=True, help="method name (see 'octbench list')")
    run.add_argument("--benchmark", default="default", type=benchmark_name_or_file,
                     help="benchmark name from 'octbench list' or a path to a .toml file (default: default)")
    run.add_argument("--clinical", help="clinical-supcon: labels and weights, e.g. 'bcva,cst' or "
                                        "'bcva=0.3,cst=0.7', any clinical column of the cohort (BCVA, CST, eye, "
                                        "patient, ...); add 'simclr=0.5' for SimCLR's instance term")
    run.add_argument("--bins", type=whole_number(2),
                     help="clinical-supcon: classes from N quantile bins instead of exact values")
    run.add_argument("--seed", type=whole_number(0), default=0,
                     help="training seed (default 0); the cohort is fixed by the benchmark")
    run.add_argument("--steps", type=whole_number(1), help="override the benchmark's pretraining steps")
    run.add_argument("--out", type=folder, default="results", help="results folder (default: results)")
    run.add_argument("--force", action="store_true", help="rerun even if a complete record exists")
    run.add_argument("--methods-dir", action="append", default=[], metavar="DIR",
                     help="also load methods from DIR (repeatable; or set OCTBENCH_METHODS)")
    run.add_argument("--cache-dir", type=folder, help="where cohorts are cached (default: $OCTBENCH_CACHE or "
                                                     "~/.cache/octbench)")
    run.add_argument("--protocol", choices=PROTOCOLS,
                     help="probe: linear (logistic regression per biomarker, default), linear-sgd (the seed "
                          "paper's multi-label head, 25 epochs of SGD), knn, or finetune (the whole "
                          "backbone trained with a head on the biomarker labels, the paper's second stage)")
    run.add_argument("--label-fraction", type=fraction, default=1.0,
                     help="share of training patients whose biomarker labels the probe uses (default 1.0)")
    run.add_argument("--no-progress", action="store_true", help="hide progress bars")
    run.add_argument("--strict", action="store_true",
                     help="refuse to run when patients or byte-identical images cross splits (default: warn)")
    add_cohort_options(run)
    add_setting_options(run)
    add_init_option(run)
    add_compute_options(run)

    prepare = commands.add_parser("prepare", help="read a cohort and decode its images into the cache",
                                  description="Read the benchmark's cohort (tables and images), check every "
                                              "image, and build the uint8 image cache runs read from.")
    prepare.add_argument("--benchmark", default="default", type=benchmark_name_or_file,
                         help="benchmark name or .toml path (default: default)")
    prepare.add_argument("--cache-dir", type=folder, help="where cohorts are cached")
    add_cohort_options(prepare)

    synth = commands.add_parser(
        "synth", help="render simulated B-scans that agree with the OLIVES label tables",
        description="Render, for every row of the OLIVES label tables, a simulated B-scan at that row's "
                    "relative path under --out, agreeing with its biomarkers, CST and slice; pool-only rows get "
                    "biomarkers drawn from the simulator's label model given BCVA and CST.")
    synth.add_argument("--labels", type=Path, required=True, help="folder of the OLIVES label tables (final_csvs_1)")
    synth.add_argument("--out", type=folder, required=True, help="image root to write the B-scans under")
    synth.add_argument("--limit", type=whole_number(1),
                       help="at most N rows per table, across patients (as run --limit)")
    synth.add_argument("--size", type=whole_number(8), default=224, help="image size in pixels (default 224)")
    synth.add_argument("--seed", type=whole_number(0), default=0,
                       help="seed of the cohort's limit and validation split (default 0, as [cohort] seed)")

    compare = commands.add_parser(
        "compare", help="run the missing cells of a benchmark, then write its leaderboard and figures",
        description="Run every (method, seed, label fraction) cell of a benchmark that has no complete run "
                    "record yet (finished cells are reused, so an interrupted compare resumes), then write "
                    "results/<benchmark>/: leaderboard.md/.csv/.tex and figures.")
    compare.add_argument("--benchmark", default="default", type=benchmark_name_or_file,
                         help="benchmark name or .toml path (default: default)")
    compare.add_argument("--methods", nargs="+", help="methods to compare (default: the benchmark's list)")
    compare.add_argument("--seeds", type=whole_number(1), help="seeds 0..N-1 per cell (default: the benchmark's)")
    compare.add_argument("--fractions", type=fraction, nargs="+", default=[1.0],
                         help="label fractions, e.g. 0.05 0.1 0.25 1 (default: 1)")
    compare.add_argument("--protocol", choices=PROTOCOLS, help="probe protocol (default: the benchmark's)")
    compare.add_argument("--jobs", type=whole_number(1), default=1, help="cells run at once, each with cores/J threads")
    compare.add_argument("--out", type=folder, default="results", help="results folder (default: results)")
    compare.add_argument("--methods-dir", action="append", default=[], metavar="DIR")
    compare.add_argument("--cache-dir", type=folder, help="where cohorts are cached")
    compare.add_argument("--no-embedding", action="store_true", help="skip the t-SNE figure")
    compare.add_argument("--submit", choices=("slurm", "local"),
                         help="send each missing cell as a job through submitit instead of running it here: "
                              "slurm (a cluster), or local (submitit's local executor, to try a sweep)")
    compare.add_argument("--slurm-partition", help="--submit slurm: the partition")
    compare.add_argument("--slurm-time", type=whole_number(1), default=240,
                         help="--submit slurm: minutes per cell (default 240)")
    compare.add_argument("--slurm-cpus", type=whole_number(1), default=8,
                         help="--submit slurm: CPUs per process (default 8)")
    add_cohort_options(compare)
    add_setting_options(compare)
    add_init_option(compare)
    add_compute_options(compare)

    show = commands.add_parser(
        "show-config", help="print a benchmark as resolved (with --set overrides), as TOML",
        description="Print the benchmark with every key resolved (defaults and --set overrides included) as a "
                    "TOML file; saved, it loads back to the same benchmark.")
    show.add_argument("--benchmark", default="default", type=benchmark_name_or_file,
                      help="benchmark name or .toml path (default: default)")
    show.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                      help="override a benchmark key, as on run and compare (repeatable)")

    weights = commands.add_parser(
        "export-backbone", help="write a run's backbone for tools that want another number of input channels",
        description="Write a run's backbone as .safetensors and .pt with a first convolution taking C channels "
                    "(its one-channel weight repeated over them and divided by C): a gray image repeated over "
                    "C channels gives the features the run's one-channel model gives the image.")
    weights.add_argument("run_dir", type=Path, metavar="RUN_FOLDER", help="a run record, results/runs/<run-id>")
    weights.add_argument("--in-chans", type=whole_number(1), default=3, help="input channels (default 3)")
    weights.add_argument("--out", type=Path, metavar="FILE",
                         help="FILE.safetensors and FILE.pt (default: ./<run-id>-in<C>); never replaced")

    export = commands.add_parser(
        "export", help="write a benchmark's cohort as PNG files and cohort.csv, for other tools",
        description="Write every B-scan of the benchmark's cohort as an 8-bit PNG and DIR/cohort.csv (path, "
                    "patient, eye, visit, slice, BCVA, CST, the six biomarkers, split, in_pool, labelled). "
                    "octbench's table source reads it back: [cohort] source = \"table\", table = \"DIR/cohort.csv\", "
                    "image_root = \"DIR\".")
    export.add_argument("--benchmark", default="default", help="benchmark name or .toml path (default: default)")
    export.add_argument("--out", type=Path, required=True, help="folder to create (it must not exist)")
    export.add_argument("--cache-dir", type=Path, help="where cohorts are cached")
    export.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    report = commands.add_parser("report", help="rebuild leaderboards and figures from existing runs",
                                 description="Aggregate every complete run record of a benchmark into "
                                             "results/<benchmark>/ without training anything.")
    report.add_argument("--benchmark", default="default", type=benchmark_name_or_file,
                        help="benchmark name or .toml path (default: default)")
    report.add_argument("--out", type=folder, default="results", help="results folder (default: results)")
    report.add_argument("--no-embedding", action="store_true", help="skip the t-SNE figure")
    add_cohort_options(report)

    listing = commands.add_parser(
        "list", help="show methods and benchmarks",
        description="Show every method (built in, and from --methods-dir / $OCTBENCH_METHODS) and every benchmark. "
                    "A methods folder is Python code: every .py file in it is imported, and so executed, "
                    "by list, run and compare. Only name folders whose code you trust.")
    listing.add_argument("--methods-dir", action="append", default=[], metavar="DIR")
    return parser


def add_cohort_options(parser: argparse.ArgumentParser) -> None:
    """Where a file-based cohort lives, and how much of it to read; they override [cohort]."""
    parser.add_argument("--tables", help="OLIVES label tables folder (the official code's final_csvs_1)")
    parser.add_argument("--olives-root", "--image-root", dest="image_root",
                        help="image root the tables' relative paths are joined to")
    parser.add_argument("--limit", type=whole_number(1),
                        help="keep at most N rows per table, across patients (a quick check)")


def add_setting_options(parser: argparse.ArgumentParser) -> None:
    """Any benchmark key, and the experiment tracker; they override the benchmark file."""
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override any benchmark key, the value read as TOML and checked as in the file: "
                             "--set pretrain.steps=10, --set cohort.split='{train=0.6,val=0.2,test=0.2}', "
                             "--set backbone=resnet50 (repeatable; see octbench show-config)")
    parser.add_argument("--logger", choices=TRACKERS,
                        help="also log to an experiment tracker: the loss and learning rate per step, then the "
                             "configuration, metrics and record files (an extra each: pip install "
                             "'octbench[mlflow]'); written under --out, nothing is uploaded by default")
    parser.add_argument("--tracking-uri", help="mlflow: the store (default: sqlite:///<out>/mlruns/mlflow.db)")


def add_init_option(parser: argparse.ArgumentParser) -> None:
    """Where every backbone starts; it stands for --set pretrain.init=SOURCE (octbench/init.py)."""
    parser.add_argument("--init", metavar="SOURCE",
                        help="start the backbone from pretrained weights instead of random ones: a .pt, .pth "
                             "or .safetensors state dict, a run folder (its backbone.pt), or timm:<model tag> "
                             "(e.g. timm:resnet18.a1_in1k) from the local Hugging Face cache; nothing is "
                             "downloaded. A 3-channel first convolution is summed to 1 channel and classifier "
                             "weights are dropped; the rest must fit the backbone. Every method starts from it "
                             "(random-init: these weights, probed frozen); the run record states it (init: "
                             "source, sha256, first_conv) and runs from other weights get other folders. "
                             "Same as --set pretrain.init=SOURCE; an entry with its own init keeps it")


def add_compute_options(parser: argparse.ArgumentParser) -> None:
    """How pretraining runs; the benchmark's global batch and schedule stay as defined."""
    parser.add_argument("--devices", type=whole_number(1), default=1,
                        help="GPUs (or CPU processes) per node for pretraining, through Lightning's DDP; they "
                             "share the benchmark's global batch (default 1)")
    parser.add_argument("--num-nodes", type=whole_number(1), default=1,
                        help="machines, under SLURM or torchrun (default 1)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the backbone (GPU; slow to start)")
    parser.add_argument("--precision", choices=("auto", "bf16-mixed", "32-true"), default="auto",  # PRECISIONS
                        help="auto: bf16 mixed precision on a GPU, 32-bit on a CPU; bf16-mixed: the GPU "
                             "configuration on any device (to test it on a CPU); 32-true: 32-bit")


def compute_options(args, benchmark):
    from octbench.training import Compute

    if args.devices < 1 or args.num_nodes < 1:
        raise OctbenchError("--devices and --num-nodes must be at least 1")
    return Compute(devices=args.devices, num_nodes=args.num_nodes, compile=args.compile, precision=args.precision,
                   log=benchmark.log)


def cohort_overrides(args) -> dict:
    return {"tables": args.tables, "image_root": args.image_root, "limit": args.limit}


def resolved_benchmark(args):
    """The benchmark with the command's overrides: its own options (--steps, --protocol, --limit,
    --tables, --image-root, --logger, --tracking-uri) as the settings they stand for, then --set."""
    from octbench.benchmark import load_benchmark
    from octbench.overrides import apply_settings, toml_value
    from octbench.trackers import check_tracker

    options = [("pretrain.steps", getattr(args, "steps", None)), ("evaluate.protocol", args.protocol),
               ("cohort.tables", args.tables), ("cohort.image_root", args.image_root), ("cohort.limit", args.limit),
               ("log.logger", args.logger), ("log.tracking_uri", args.tracking_uri),
               ("pretrain.init", getattr(args, "init", None))]
    settings = [f"{key}={toml_value(value)}" for key, value in options if value is not None]
    benchmark = apply_settings(load_benchmark(args.benchmark), [*settings, *args.set])
    check_tracker(benchmark.log)  # a missing extra is named now, not after the cohort is loaded
    return benchmark


def format_result(run_dir: Path, metrics: dict, reused: bool) -> str:
    multiclass = (metrics.get("task") or {}).get("kind") == "multiclass"
    width = max(10, *(len(label) for label in metrics["auroc"]))
    lines = [f"{'class' if multiclass else 'biomarker':<{width}} {'AUROC':>6}   95% CI (patient bootstrap)"]
    for label, auroc in metrics["auroc"].items():
        lo, hi = metrics["auroc_ci"][label]
        lines.append(f"{label:<{width}} {auroc:6.3f}   [{lo:.3f}, {hi:.3f}]")
    lo, hi = metrics.get("mean_auroc_ci", [float("nan")] * 2)
    lines.append(f"{'mean':<{width}} {metrics['mean_auroc']:6.3f}   [{lo:.3f}, {hi:.3f}]")
    if multiclass:
        lines.append(f"{'accuracy':<{width}} {metrics['accuracy']:6.3f}   (most probable class)")
    header = f"{metrics['method']} on {metrics['benchmark']}, seed {metrics['seed']}"
    header += " (reused; --force reruns)" if reused else f" ({metrics['timing']['total_s']:.0f} s)"
    return "\n".join([header, *lines, f"run record: {run_dir}"])


def command_run(args) -> None:
    from octbench.run import RunRequest, execute

    benchmark = resolved_benchmark(args)
    request = RunRequest(benchmark=benchmark, method=args.method, clinical=args.clinical, bins=args.bins,
                         seed=args.seed, out=args.out, force=args.force, methods_dirs=args.methods_dir,
                         cache_dir=args.cache_dir, progress=not args.no_progress,
                         label_fraction=args.label_fraction, strict=args.strict,
                         compute=compute_options(args, benchmark))
    run_dir, metrics, reused = execute(request)
    print(format_result(run_dir, metrics, reused))


def command_compare(args) -> None:
    from octbench.compare import run_cells
    from octbench.identity import resolve_entry
    from octbench.report import build_report

    benchmark = resolved_benchmark(args)
    # --methods names entries by alias (clinical-supcon-eye) or methods by name.
    methods = [resolve_entry(benchmark, handle) for handle in args.methods] if args.methods else list(benchmark.methods)
    if not methods:
        raise OctbenchError(f"benchmark {benchmark.name!r} names no methods; pass --methods")
    compute = compute_options(args, benchmark)
    seeds = range(args.seeds or benchmark.seeds)
    if args.submit:
        from octbench.sweep import SlurmOptions, submit_cells

        slurm = SlurmOptions(partition=args.slurm_partition, minutes=args.slurm_time, cpus=args.slurm_cpus)
        submit_cells(benchmark, methods, seeds, args.fractions, args.out,
                     args.submit, slurm, compute, methods_dirs=args.methods_dir, cache_dir=args.cache_dir)
        failed = []
    else:
        failed = run_cells(benchmark, methods, seeds, args.fractions, args.out, jobs=args.jobs,
                           methods_dirs=args.methods_dir, cache_dir=args.cache_dir, compute=compute)
    folder = build_report(args.out, benchmark, embedding=not args.no_embedding)
    print((folder / "leaderboard.md").read_text())
    print(f"report: {folder}")
    if failed:
        raise OctbenchError(f"the report leaves out {len(failed)} cells that could not be made:\n  "
                            + "\n  ".join(failed))


def command_report(args) -> None:
    from octbench.benchmark import load_benchmark, with_overrides
    from octbench.report import build_report

    benchmark = with_overrides(load_benchmark(args.benchmark), **cohort_overrides(args))
    folder = build_report(args.out, benchmark, embedding=not args.no_embedding)
    print((folder / "leaderboard.md").read_text())
    print(f"report: {folder}")


def command_prepare(args) -> None:
    from octbench.benchmark import load_benchmark, with_overrides
    from octbench.simulate.cohort import default_cache_dir
    from octbench.sources import load_cohort, source_cohort
    from octbench.splits import leakage_problems, leakage_report

    benchmark = with_overrides(load_benchmark(args.benchmark), **cohort_overrides(args))
    if benchmark.cohort.source == "simulated":
        cohort = load_cohort(benchmark, args.cache_dir)
    else:  # any labels: an image folder's classes can be cached before octbench can probe them
        cohort = source_cohort(benchmark.cohort, args.cache_dir or default_cache_dir(), benchmark.images)
    table = cohort.table
    print(f"{benchmark.name}: {len(table)} B-scans of {table['patient'].nunique()} patients; "
          f"pool {int(table['in_pool'].sum())}, " + ", ".join(f"{split} {len(cohort.part(split))}"
                                                             for split in ("train", "val", "test"))
          + f"; images {cohort.images.shape[1]} px, cached")
    for problem in leakage_problems(leakage_report(table)):
        print(f"leakage: {problem}")


def command_export(args) -> None:
    from octbench.benchmark import load_benchmark
    from octbench.export import export_cohort

    written = export_cohort(load_benchmark(args.benchmark), args.out, args.cache_dir, progress=not args.no_progress)
    print(f"wrote {written} B-scans and {args.out / 'cohort.csv'}")


def command_show_config(args) -> None:
    from octbench.benchmark import check_benchmark, load_benchmark
    from octbench.overrides import apply_settings, benchmark_toml

    benchmark = apply_settings(load_benchmark(args.benchmark), args.set)
    check_benchmark(benchmark)
    print(benchmark_toml(benchmark), end="")


def command_export_backbone(args) -> None:
    from octbench.weights import export_backbone

    for path in export_backbone(args.run_dir, args.in_chans, args.out):
        print(f"wrote {path}")


def command_synth(args) -> None:
    from octbench.synth import synthesise

    written = synthesise(args.labels, args.out, args.limit, args.size, args.seed)
    print(f"rendered {written} B-scans under {args.out}")


def command_list(args) -> None:
    from octbench.benchmark import available_benchmarks, load_benchmark
    from octbench.registry import discover_methods

    methods = discover_methods(args.methods_dir)
    width = max(map(len, [*methods, *available_benchmarks()]))
    print("methods:")
    for name, cls in sorted(methods.items()):
        print(f"  {name:<{width}}  {cls.description}\n  {'':<{width}}  [{cls.paper}]")
    print("benchmarks:")
    for name in available_benchmarks():
        benchmark = load_benchmark(name)
        print(f"  {name:<{width}}  {benchmark.description}")
        for entry in benchmark.methods:
            handle = f"--method {entry.handle}" if entry.alias else entry.handle
            print(f"  {'':<{width}}    {handle:<40} {entry.display()}")
    print_sources_and_formats()


SOURCE_NOTES = {  # [cohort] source = ...: what each reads (octbench/sources/)
    "simulated": "the default: a simulated OLIVES-like cohort, calibrated to the real label tables",
    "olives": "the OLIVES label tables (official final_csvs_1, or the Zenodo release's CSVs) and their images",
    "table": "your CSV, one row per B-scan or volume: path, patient, clinical values, 0/1 labels or a class column",
    "folder": "class sub-folders (OCT2017 / Kermany layout), optionally under train/ val/ test/: a multi-class task",
}


def print_sources_and_formats() -> None:
    from octbench.vendor import EXTRA_HINT, VENDOR_FORMATS, available

    print("sources ([cohort] source):")
    for name, note in SOURCE_NOTES.items():
        print(f"  {name:<10} {note}")
    print("image formats:")
    print(f"  {'built in':<10} PNG, JPEG, BMP, TIFF (a multi-page TIFF is a volume: one B-scan per page); "
          "16-bit and float by the [images] intensity rule")
    readable, have_eyepy = available(), importlib.util.find_spec("eyepy") is not None
    for suffix, (name, function, need) in VENDOR_FORMATS.items():
        if readable[suffix]:
            state = "available"
        elif have_eyepy:
            state = f"needs pip install {need}"
        else:
            state = f"needs {EXTRA_HINT}" + (f" and {need}" if need else "")
        print(f"  {suffix:<10} {name:<12} eyepy.{function:<18} {state}")


# Where the libraries' banners come from: Lightning's "GPU available / TPU available / HPU available"
# lines, its litlogger tip and "`Trainer.fit` stopped" are INFO records of its rank_zero loggers.
# The levels go on these child loggers: Lightning resets its package logger to INFO on import.
BANNER_LOGGERS = ("pytorch_lightning.utilities.rank_zero", "lightning_fabric.utilities.rank_zero",
                  "lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")
CHATTY_LOGGERS = ("pytorch_lightning.loggers.mlflow",)  # "Experiment with name ... not found. Creating it."
# Warnings about how octbench drives Lightning by design (batches from memory, no worker processes;
# a resumed run's checkpoint folder, and its mid-epoch checkpoint, which StepBatches resumes exactly)
# or about Lightning's own internals: nothing a user can act on.
EXPECTED_WARNINGS = (".*does not have many workers", "Checkpoint directory .* exists and is not empty",
                     "You're resuming from a checkpoint that ended before the epoch ended",
                     ".*isinstance\\(treespec, LeafSpec\\)` is deprecated")


def quiet_libraries(debug: bool = False) -> None:
    """Keep the terminal for octbench's own output and the warnings that matter; --debug keeps
    everything the libraries say."""
    if debug:
        return
    for name in BANNER_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # its database set-up lines
    os.environ.setdefault("WANDB_SILENT", "true")  # octbench prints where the run went
    for message in EXPECTED_WARNINGS:
        warnings.filterwarnings("ignore", message=message)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    quiet_libraries(args.debug)
    commands = {"run": command_run, "compare": command_compare, "report": command_report, "list": command_list,
                "prepare": command_prepare, "synth": command_synth, "export": command_export,
                "show-config": command_show_config, "export-backbone": command_export_backbone}
    try:
        with stop_on_signals():
            commands[args.command](args)
    except Interrupted as stop:
        print(f"octbench: {stop.message()}", file=sys.stderr)
        return stop.exit_status
    except OctbenchError as error:
        if args.debug:
            raise
        print(f"octbench: error: {error}", file=sys.stderr)
        return 2
    except NotRankZero:
        return 0
    except KeyboardInterrupt:  # raised by a library that installed its own SIGINT handler
        print("octbench: interrupted; nothing was recorded for the unfinished run", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `octbench list | head`: the reader has gone, which is not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0
    except OSError as error:
        if error.errno not in (errno.ENOSPC, errno.EDQUOT) or args.debug:
            raise
        # A full disk is the machine's state, not a bug: say where, and that nothing finished is lost.
        where = f" writing {error.filename}" if error.filename else ""
        print(f"octbench: error: no space left on the device{where}; a run record takes ~100 MB and a pretraining "
              "checkpoint ~130 MB. Free some space and give the same command again: finished records are kept, "
              "and a run resumes from its last checkpoint", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
