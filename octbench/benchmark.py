"""Benchmark definitions: small declarative TOML files in `benchmarks/`, read strictly.

A definition names the data source, image size, backbone, schedule, protocol, seeds and methods.
Unknown keys are refused (with the closest known key), so a typo never silently falls back to a
default.
"""

from __future__ import annotations

import dataclasses
import math
import re
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # the same parser, as a package before Python 3.11 took it in
    import tomli as tomllib

from octbench import protocols
from octbench.errors import OctbenchError, closest

TASK_KINDS = ("binary", "multiclass")  # octbench/task.py
SOURCES = ("simulated", "olives", "table", "folder")  # see load_cohort in octbench/run.py
INTENSITY_RULES = ("percentile", "window")  # the rules of octbench/pixels.py
RESIZE_MODES = ("pad", "crop", "squash")


@dataclass(frozen=True)
class CohortSpec:
    source: str = "simulated"
    patients: int = 180
    seed: int = 0
    image_size: int = 64
    split: dict = field(default_factory=lambda: {"train": 0.5, "val": 0.15, "test": 0.35})
    pool_scans: int = 6000
    train_scans: int = 2000
    val_scans: int = 800
    test_scans: int = 3000
    # Sources read from files (olives, table, folder); the simulated cohort ignores these.
    tables: str = ""  # olives: folder of the label tables (the official code's final_csvs_1)
    table: str = ""  # table: the CSV, one row per B-scan
    image_root: str = ""  # relative image paths are joined to it; folder: the class folders
    columns: dict = field(default_factory=dict)  # table: cohort name -> CSV header, where they differ
    labels: tuple = ()  # table: label columns (default: the six canonical biomarkers)
    clinical: tuple = ()  # table: further clinical columns kept for --clinical
    limit: int = 0  # keep at most this many rows per table, across patients (0: all)
    validation_fraction: float = 0.15  # olives, folder: training patients set aside for validation


@dataclass(frozen=True)
class ImageSpec:
    """How image files become the model's square 8-bit B-scans (octbench/pixels.py); the simulated
    cohort renders its own and ignores this section."""
    # Files wider than 8 bits (16-bit, float): "percentile" (each B-scan's own percentiles
    # intensity_range become 0 and 255) or "window" (the fixed intensities intensity_range).
    intensity: str = "percentile"
    intensity_range: tuple = (0.5, 99.5)
    resize: str = "pad"  # non-square B-scans: "pad" (keeps the aspect ratio), "crop" or "squash"


LR_SCALING = ("none", "linear", "sqrt")


@dataclass(frozen=True)
class PretrainSpec:
    steps: int = 120
    batch_size: int = 128  # the global batch: all processes together, whatever the number of GPUs
    optimizer: str = "adamw"
    lr: float = 1e-3  # the learning rate at lr_reference_batch
    weight_decay: float = 1e-4
    warmup_fraction: float = 0.1
    # How lr follows a batch size other than the reference one: "linear" (Goyal et al. 2017, SGD),
    # "sqrt" (common for Adam-type optimisers) or "none". 0: the reference is batch_size itself.
    lr_scaling: str = "none"
    lr_reference_batch: int = 0
    sync_batchnorm: bool = False  # batch-norm statistics over the global batch when distributed
    # The backbone's starting point (octbench/init.py): a weights file, a run folder or timm:<model tag>
    # from the local cache; "" starts it random. An entry's own init replaces it.
    init: str = ""

    def effective_lr(self) -> float:
        ratio = self.batch_size / (self.lr_reference_batch or self.batch_size)
        return self.lr * {"none": 1.0, "linear": ratio, "sqrt": ratio ** 0.5}[self.lr_scaling]


PROTOCOLS = tuple(protocols.PROTOCOLS)  # the names of the protocol table


@dataclass(frozen=True)
class EvaluateSpec:
    protocol: str = "linear"
    probe_c: tuple = (0.01, 0.1, 1.0, 10.0)
    bootstrap: int = 1000
    # How a table cohort's labels are scored (octbench/task.py): "binary" (each label column 0/1,
    # one AUROC each) or "multiclass" ([cohort] labels names one column of class names). A folder
    # cohort's class folders are always one multi-class task.
    task: str = "binary"


TRACKERS = ("none", "tensorboard", "mlflow", "wandb")  # see octbench/trackers.py


@dataclass(frozen=True)
class LogSpec:
    """Where a run's curves and results go besides its own record (which is always written, with
    its CSV loss log). Not part of a run's identity: the same run logged elsewhere is the same run."""
    logger: str = "none"  # an experiment tracker: tensorboard, mlflow or wandb
    tracking_uri: str = ""  # mlflow: its store (default: file:<out>/mlruns); a sqlite:/// path works too
    experiment: str = "octbench"  # mlflow: the experiment; wandb: the project


# Method names (and entry aliases): lowercase words joined by hyphens, so run names stay readable.
METHOD_NAME = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")
ENTRY_KEYS = ("name", "label", "alias", "clinical", "bins", "init")  # every other key of an entry is a method option


@dataclass(frozen=True)
class MethodEntry:
    """One row of a benchmark: a method, its options, and the label tables and figures show.

    In a benchmark file: `methods = ["simclr", { name = "clinical-supcon", clinical = "eye",
    label = "clinical SupCon (eye)", alias = "clinical-supcon-eye" }]`. `--method ALIAS` selects
    the entry; options other than clinical, bins and init are the method's own (Method.takes).
    `init` starts the entry's backbone from pretrained weights (as [pretrain] init, which it replaces):
    { name = "random-init", init = "timm:resnet18.a1_in1k", alias = "imagenet-init" }."""
    method: str
    label: str = ""
    alias: str = ""
    clinical: str | None = None
    bins: int | None = None
    options: tuple[tuple[str, object], ...] = ()
    init: str = ""

    @property
    def handle(self) -> str:
        """How the command line and run names refer to the entry."""
        return self.alias or self.method

    def display(self) -> str:
        if self.label:
            return self.label
        extras = [f"clinical={self.clinical}"] * bool(self.clinical) + [f"bins={self.bins}"] * bool(self.bins)
        extras += [f"{k}={v}" for k, v in self.options] + [f"init={self.init}"] * bool(self.init)
        return self.handle + (f" ({', '.join(extras)})" if extras and not self.alias else "")


def method_entry(value) -> MethodEntry:
    if isinstance(value, MethodEntry):
        return value
    if isinstance(value, str):
        return MethodEntry(method=value)
    options = tuple(sorted((k, v) for k, v in value.items() if k not in ENTRY_KEYS))
    return MethodEntry(method=value["name"], label=value.get("label", ""), alias=value.get("alias", ""),
                       clinical=value.get("clinical"), bins=value.get("bins"), options=options,
                       init=value.get("init", ""))


@dataclass(frozen=True)
class Benchmark:
    name: str
    description: str = ""
    backbone: str = "resnet18"
    methods: tuple = ()
    seeds: int = 3
    cohort: CohortSpec = CohortSpec()
    images: ImageSpec = ImageSpec()
    pretrain: PretrainSpec = PretrainSpec()
    evaluate: EvaluateSpec = EvaluateSpec()
    log: LogSpec = LogSpec()
    path: str = ""
    overrides: tuple = ()  # the `section.key=value` settings given on the command line, in order

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


SECTIONS = {"cohort": CohortSpec, "images": ImageSpec, "pretrain": PretrainSpec, "evaluate": EvaluateSpec,
            "log": LogSpec}


# Field rules: each takes a value as TOML gives it and returns what is allowed when the value breaks
# the rule, or None when it is fine. Every key a benchmark file may set has exactly one.

def is_whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_finite(value) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)) and math.isfinite(value)


def whole(minimum: int, why: str = ""):
    return lambda value: None if is_whole(value) and value >= minimum else f"a whole number >= {minimum}{why}"


def number(accept, allowed: str):
    return lambda value: None if is_finite(value) and accept(value) else allowed


def one_of(options: tuple):
    return lambda value: None if value in options and isinstance(value, str) else \
        f"one of {', '.join(options)}{closest(value, options)}"


def text(value) -> str | None:
    return None if isinstance(value, str) else "a string"


def filled_text(value) -> str | None:
    return None if isinstance(value, str) and value.strip() else "a non-empty string"


def true_or_false(value) -> str | None:
    return None if isinstance(value, bool) else "true or false"


def names(value) -> str | None:
    ok = isinstance(value, (list, tuple)) and all(isinstance(v, str) and v.strip() for v in value)
    return None if ok else "a list of non-empty strings"


def entry_problem(value) -> str | None:
    if isinstance(value, MethodEntry):
        return None
    if isinstance(value, str):
        return None if METHOD_NAME.fullmatch(value) else f"{value!r}: a method name is lowercase words joined by '-'"
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        return f"{shown(value)}: an entry is a method name or a table with name = \"...\""
    if not METHOD_NAME.fullmatch(value["name"]):
        return f"{value['name']!r}: a method name is lowercase words joined by '-'"
    if "alias" in value and not (isinstance(value["alias"], str) and METHOD_NAME.fullmatch(value["alias"])):
        return f"alias {shown(value['alias'])}: lowercase words joined by '-'"
    for key in ("label", "clinical", "init"):
        if key in value and not (isinstance(value[key], str) and value[key].strip()):
            return f"{key} {shown(value[key])}: a non-empty string"
    if "bins" in value and not (is_whole(value["bins"]) and value["bins"] >= 2):
        return f"bins {shown(value['bins'])}: a whole number >= 2"
    for key, option in value.items():
        if key not in ENTRY_KEYS and not isinstance(option, (str, int, float, bool)):
            return f"option {key} {shown(option)}: a number, string or boolean"
    return None


def method_entries(value) -> str | None:
    """methods: entries, each once; aliases name one entry each."""
    if not isinstance(value, (list, tuple)):
        return "a list of method names or entries { name = \"...\", ... }"
    for item in value:
        if (problem := entry_problem(item)) is not None:
            return f"a list of method entries ({problem})"
    entries = [method_entry(item) for item in value]
    for name, what in ((lambda e: (e.method, e.clinical, e.bins, e.options, e.init), "the same method and options"),
                       (lambda e: e.handle, "the same alias")):
        seen = [name(e) for e in entries]
        if len(set(seen)) != len(seen):
            return f"a list of distinct entries (two entries have {what}; give one an alias or other options)"
    return None


def probe_grid(value) -> str | None:
    ok = isinstance(value, (list, tuple)) and value and all(is_finite(v) and v > 0 for v in value)
    return None if ok else "a non-empty list of numbers > 0 (the probe's inverse regularisation strengths)"


def low_high(value) -> str | None:
    ok = isinstance(value, (list, tuple)) and len(value) == 2 and all(is_finite(v) for v in value) \
        and value[0] < value[1]
    return None if ok else "a pair [low, high] of numbers with low < high (percentiles, or intensities for window)"


def split_fractions(value) -> str | None:
    allowed = "a table { train = ..., val = ..., test = ... } of fractions, each > 0, that sum to 1"
    if not isinstance(value, dict) or sorted(value) != ["test", "train", "val"]:
        return allowed
    if not all(is_finite(v) and v > 0 for v in value.values()):
        return allowed
    total = sum(value.values())
    # Refused rather than rescaled: a typo would otherwise silently move patients between splits.
    return None if abs(total - 1) <= 1e-6 else f"{allowed} (these sum to {total:g})"


def column_names(value) -> str | None:
    ok = isinstance(value, dict) and all(isinstance(v, str) and v.strip() for v in value.values())
    return None if ok else "a table of cohort names to CSV headers, e.g. { patient = \"subject\" }"


RULES = {
    Benchmark: {
        "name": text,  # then check_benchmark_name
        "description": text,
        "backbone": filled_text,
        "methods": method_entries,
        "seeds": whole(1),
    },
    CohortSpec: {
        "source": one_of(SOURCES),
        "patients": whole(3, " (train, val and test each need patients)"),
        "seed": whole(0),
        "image_size": whole(8, " (the backbone halves an image five times: smaller ones leave its later "
                               "stages a single pixel)"),
        "split": split_fractions,
        "pool_scans": whole(1),
        "train_scans": whole(1),
        "val_scans": whole(1),
        "test_scans": whole(1),
        "tables": text,
        "table": text,
        "image_root": text,
        "columns": column_names,
        "labels": names,
        "clinical": names,
        "limit": whole(0, " (0 keeps every row)"),
        "validation_fraction": number(lambda v: 0 < v < 1, "a number in (0, 1)"),
    },
    ImageSpec: {
        "intensity": one_of(INTENSITY_RULES),
        "intensity_range": low_high,
        "resize": one_of(RESIZE_MODES),
    },
    PretrainSpec: {
        "steps": whole(1),
        "batch_size": whole(2, " (contrastive losses need two images per batch)"),
        "optimizer": one_of(("adamw", "sgd")),
        "lr": number(lambda v: v > 0, "a finite number > 0"),
        "weight_decay": number(lambda v: v >= 0, "a finite number >= 0"),
        "warmup_fraction": number(lambda v: 0 <= v < 1, "a number in [0, 1)"),
        "lr_scaling": one_of(LR_SCALING),
        "lr_reference_batch": whole(0, " (0: batch_size itself)"),
        "sync_batchnorm": true_or_false,
        "init": text,  # then octbench/init.py, when a run reads the weights
    },
    EvaluateSpec: {
        "protocol": one_of(PROTOCOLS),
        "probe_c": probe_grid,
        "bootstrap": whole(100, " (the 95% interval's percentiles need that many resamples)"),
        "task": one_of(TASK_KINDS),
    },
    LogSpec: {
        "logger": one_of(TRACKERS),
        "tracking_uri": text,
        "experiment": filled_text,
    },
}

# A benchmark's name is the folder <out>/<name>/ its reports go to.
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]*")
RESERVED_NAMES = {"runs": "octbench keeps its run records in <out>/runs/",
                  **{name: f"the {tracker} logger writes to <out>/{name}/" for name, tracker in
                     (("tensorboard", "tensorboard"), ("mlruns", "mlflow"), ("wandb", "wandb"))}}


def check_benchmark_name(name, where: str) -> None:
    """Refuse a name that is not a plain folder name of its own under the results folder."""
    if isinstance(name, str) and NAME_PATTERN.fullmatch(name) and name not in RESERVED_NAMES:
        return
    why = RESERVED_NAMES.get(name) or ("it names the folder its reports are written to, so it may hold only "
                                       "lowercase letters, digits, '-', '_' and '.', starting with a letter or digit")
    raise OctbenchError(f"{where}: benchmark name {name!r} cannot be used: {why}; rename the benchmark file "
                        "(or set another name = \"...\" in it)")


def shown(value) -> str:
    """A value as it is written in TOML: true, 'ten', nan, [0.1, 1.0], { train = 0.5 }."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(map(shown, value)) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {shown(v)}" for k, v in value.items()) + " }" if value else "{}"
    return repr(value)


def check_values(kind, values: dict, where: str) -> None:
    """Every key known and every value allowed, or an error naming the key, the value and the rule."""
    rules = RULES[kind]
    for key in values:
        if key not in rules:
            raise OctbenchError(f"{where}: unknown key {key!r}{closest(key, rules)}; "
                                f"known keys: {', '.join(sorted(rules))}")
    for key, value in values.items():
        if (allowed := rules[key](value)) is not None:
            raise OctbenchError(f"{where}: {key} {shown(value)} is not {allowed}")
    if kind is Benchmark and "name" in values:
        check_benchmark_name(values["name"], where)


def section_values(kind, values: dict, where: str) -> dict:
    """Checked values as the dataclass holds them (lists as tuples, method entries built)."""
    check_values(kind, values, where)
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    if kind is Benchmark and "methods" in values:
        values["methods"] = tuple(method_entry(v) for v in values["methods"])
    return values


def build_section(kind, values: dict, where: str):
    return kind(**section_values(kind, values, where))


def find_entry(benchmark: Benchmark, handle: str) -> MethodEntry | None:
    """The benchmark's entry `handle` names: its alias, or a method listed once without options."""
    for entry in benchmark.methods:
        if entry.alias == handle:
            return entry
    plain = [e for e in benchmark.methods if e.method == handle and not e.alias]
    return plain[0] if len(plain) == 1 else None


def check_benchmark(benchmark: Benchmark) -> None:
    """The same rules on a benchmark as resolved (after command-line overrides or built in code)."""
    where = benchmark.path or benchmark.name
    top = {key: getattr(benchmark, key) for key in RULES[Benchmark]}
    check_values(Benchmark, top, where)
    for section, kind in SECTIONS.items():
        check_values(kind, dataclasses.asdict(getattr(benchmark, section)), f"{where} [{section}]")


def benchmarks_dir() -> Path:
    return Path(str(resources.files("octbench.benchmarks")))


def available_benchmarks() -> list[str]:
    return sorted(p.stem for p in benchmarks_dir().glob("*.toml"))


def check_not_a_folder(name_or_path: str) -> None:
    """A benchmark is a name from benchmarks/ or a .toml file, never a folder."""
    if name_or_path not in available_benchmarks() and Path(name_or_path).is_dir():
        raise OctbenchError(f"benchmark {name_or_path} is a folder; pass a benchmark .toml file or one of: "
                            f"{', '.join(available_benchmarks())}")


def load_benchmark(name_or_path: str) -> Benchmark:
    """A benchmark by name (a file in benchmarks/) or by path to a .toml file."""
    check_not_a_folder(name_or_path)
    path = Path(name_or_path)
    if not path.suffix:
        path = benchmarks_dir() / f"{name_or_path}.toml"
        if not path.exists():
            names = available_benchmarks()
            raise OctbenchError(f"unknown benchmark {name_or_path!r}{closest(name_or_path, names)}; "
                                f"available: {', '.join(names)}")
    if not path.exists():
        raise OctbenchError(f"benchmark file {path} does not exist")
    try:
        raw = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise OctbenchError(f"{path}: not valid TOML: {error}") from None
    top = {k: v for k, v in raw.items() if k not in SECTIONS}
    for key in SECTIONS:
        if not isinstance(raw.get(key, {}), dict):
            raise OctbenchError(f"{path}: {key} {shown(raw[key])} is not a table; write its keys under [{key}]")
    sections = {k: build_section(kind, raw.get(k, {}), f"{path} [{k}]") for k, kind in SECTIONS.items()}
    benchmark = build_section(Benchmark, {"name": path.stem, **top}, str(path))
    return dataclasses.replace(benchmark, path=str(path), **sections)


def with_overrides(benchmark: Benchmark, steps: int | None = None, protocol: str | None = None,
                   **cohort: object) -> Benchmark:
    """`cohort` overrides [cohort] keys whose value is not None (--limit, --tables, --image-root)."""
    cohort = {key: value for key, value in cohort.items() if value is not None}
    if cohort:
        benchmark = dataclasses.replace(benchmark, cohort=dataclasses.replace(benchmark.cohort, **cohort))
    if cohort.get("limit"):
        benchmark = limited(benchmark, cohort["limit"])
    if steps is not None:
        benchmark = dataclasses.replace(benchmark, pretrain=dataclasses.replace(benchmark.pretrain, steps=steps))
    if protocol is not None:
        benchmark = dataclasses.replace(benchmark, evaluate=dataclasses.replace(benchmark.evaluate, protocol=protocol))
    return benchmark


def limited(benchmark: Benchmark, limit: int) -> Benchmark:
    """A cut-down cohort is another benchmark: its runs and tables stay apart."""
    return dataclasses.replace(benchmark, name=f"{benchmark.name}-limit{limit}")
