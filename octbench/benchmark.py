"""Benchmark definitions: small declarative TOML files in `benchmarks/`, read strictly.

A definition names the data source, image size, backbone, schedule, protocol, seeds and methods.
Unknown keys are refused (with the closest known key), so a typo never silently falls back to a
default.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import tomllib

from octbench.errors import OctbenchError, closest

SOURCES = ("simulated", "olives", "table", "folder")  # see load_cohort in octbench/run.py


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

    def effective_lr(self) -> float:
        ratio = self.batch_size / (self.lr_reference_batch or self.batch_size)
        return self.lr * {"none": 1.0, "linear": ratio, "sqrt": ratio ** 0.5}[self.lr_scaling]


PROTOCOLS = ("linear", "linear-sgd", "knn", "finetune")  # see octbench/evaluate.py and finetune.py


@dataclass(frozen=True)
class EvaluateSpec:
    protocol: str = "linear"
    probe_c: tuple = (0.01, 0.1, 1.0, 10.0)
    bootstrap: int = 1000


@dataclass(frozen=True)
class Benchmark:
    name: str
    description: str = ""
    backbone: str = "resnet18"
    methods: tuple = ()
    seeds: int = 3
    cohort: CohortSpec = CohortSpec()
    pretrain: PretrainSpec = PretrainSpec()
    evaluate: EvaluateSpec = EvaluateSpec()
    path: str = ""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


SECTIONS = {"cohort": CohortSpec, "pretrain": PretrainSpec, "evaluate": EvaluateSpec}


def build_section(kind, values: dict, where: str):
    known = {f.name for f in dataclasses.fields(kind)}
    for key in values:
        if key not in known:
            raise OctbenchError(f"{where}: unknown key {key!r}{closest(key, known)}; "
                                f"known keys: {', '.join(sorted(known))}")
    converted = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    if kind is CohortSpec and converted.get("source", "simulated") not in SOURCES:
        raise OctbenchError(f"{where}: source {converted['source']!r} is not one of {', '.join(SOURCES)}"
                            f"{closest(converted['source'], SOURCES)}")
    if kind is PretrainSpec and converted.get("lr_scaling", "none") not in LR_SCALING:
        raise OctbenchError(f"{where}: lr_scaling {converted['lr_scaling']!r} is not one of {', '.join(LR_SCALING)}")
    if kind is EvaluateSpec and converted.get("protocol", "linear") not in PROTOCOLS:
        raise OctbenchError(f"{where}: protocol {converted['protocol']!r} is not one of {', '.join(PROTOCOLS)}")
    return kind(**converted)


def benchmarks_dir() -> Path:
    return Path(str(resources.files("octbench.benchmarks")))


def available_benchmarks() -> list[str]:
    return sorted(p.stem for p in benchmarks_dir().glob("*.toml"))


def load_benchmark(name_or_path: str) -> Benchmark:
    """A benchmark by name (a file in benchmarks/) or by path to a .toml file."""
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
    except tomllib.TOMLDecodeError as error:
        raise OctbenchError(f"{path}: not valid TOML: {error}") from None
    top = {k: v for k, v in raw.items() if k not in SECTIONS}
    sections = {k: build_section(kind, raw.get(k, {}), f"{path} [{k}]") for k, kind in SECTIONS.items()}
    benchmark = build_section(Benchmark, {"name": path.stem, **top}, str(path))
    return dataclasses.replace(benchmark, path=str(path), **sections)
