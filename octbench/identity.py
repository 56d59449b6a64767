"""What a run is: its benchmark entry, its resolved options, and the key that identifies its record.

A record is reused only for the same key: the fully resolved configuration (method and options,
backbone, schedule, probe, seed, label fraction) and the fingerprint of the cohort it ran on (the
cohort table's content, with each image's sha256 for file sources, and the simulator's version for
the simulated one). The folder name stays readable, OpenMMLab style, and ends in a short hash of the
key, so two cohorts or two settings never share a record. Everything that groups runs reads the key's
fields from metrics.json, never the folder name.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from octbench.benchmark import Benchmark, MethodEntry, find_entry
from octbench.clinical import parse_clinical_spec
from octbench.cohort import Cohort
from octbench.errors import OctbenchError, closest
from octbench.method import Method, MethodOptions
from octbench.task import BIOMARKER_TASK, Task

if TYPE_CHECKING:
    from octbench.init import StartingPoint

HASH_LENGTH = 8  # in folder names; metrics.json keeps the full key hash


def resolve_entry(benchmark: Benchmark, handle: str, clinical: str | None = None, bins: int | None = None
                  ) -> MethodEntry:
    """The entry `--method HANDLE` names: one of the benchmark's entries (by alias, or a method listed
    once), or the method itself; --clinical / --bins given on the command line replace the entry's."""
    entry = find_entry(benchmark, handle) or MethodEntry(method=handle)
    if clinical is not None or bins is not None:
        entry = dataclasses.replace(entry, clinical=clinical if clinical is not None else entry.clinical,
                                    bins=bins if bins is not None else entry.bins, alias="", label="")
    return entry


def method_options(method_cls: type[Method], entry: MethodEntry, clinical_columns: list[str],
                   task: Task = BIOMARKER_TASK) -> MethodOptions:
    """The entry's options, checked against what the method takes; `task`: the cohort's labels."""
    settings = checked_settings(method_cls, entry)
    if not method_cls.takes_clinical:
        if entry.clinical or entry.bins:
            raise OctbenchError(f"method {method_cls.name!r} does not use clinical labels; "
                                "--clinical and --bins apply to clinical-supcon")
        return MethodOptions(settings=settings, task=task)
    spec = entry.clinical or method_cls.default_clinical
    return MethodOptions(clinical=parse_clinical_spec(spec, clinical_columns), bins=entry.bins, settings=settings,
                         task=task)


def checked_settings(method_cls: type[Method], entry: MethodEntry) -> tuple[tuple[str, object], ...]:
    """The entry's own options of the method (Method.takes), each known and of its type."""
    unknown = [key for key, _ in entry.options if key not in method_cls.takes]
    if unknown:
        takes = ", ".join(sorted(method_cls.takes)) or "none"
        raise OctbenchError(f"method {method_cls.name!r} does not take the option {unknown[0]!r}"
                            f"{closest(unknown[0], method_cls.takes)}; it takes: {takes}"
                            + (", and clinical, bins" if method_cls.takes_clinical else ""))
    settings = []
    for key, value in entry.options:
        kind = method_cls.takes[key]
        if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else kind):
            raise OctbenchError(f"method {method_cls.name!r}: option {key} = {value!r} must be a {kind.__name__}")
        settings.append((key, kind(value)))
    return tuple(settings)


@dataclass(frozen=True)
class RunIdentity:
    name: str  # the record's folder name
    key: dict  # every field the record depends on
    digest: str  # sha256 of the key
    pretrain_digest: str  # of the fields its pretraining depends on: shared across label fractions
    init: dict | None = None  # the backbone's starting point as records state it (None: random)
    label: str = ""  # the row its tables show (run_label)

    def metrics_fields(self) -> dict:
        """The key's fields as metrics.json stores them (everything that groups runs reads these)."""
        key = self.key
        return {"key": self.digest, "pretrain_key": self.pretrain_digest, "options": key["options"],
                "backbone": key["backbone"], "schedule": {k: key["pretrain"][k] for k in ("steps", "batch_size")},
                "cohort": key["cohort"], "init": self.init}


def init_source(benchmark: Benchmark, entry: MethodEntry) -> str:
    """Where the run's backbone starts: the entry's own init (an imagenet-init entry), else the
    benchmark's ([pretrain] init, --init); "" for a random start."""
    return entry.init or benchmark.pretrain.init


def run_label(entry: MethodEntry, start: StartingPoint | None) -> str:
    """The entry's label; started from the benchmark's --init, with that init too, so that the
    leaderboard keeps it in a row apart from the same entry started at random."""
    if start is None or entry.init:
        return entry.display()
    return f"{entry.display()} (init {start.shown()})"


def digest_of(fields: dict) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:16]


def run_identity(benchmark: Benchmark, entry: MethodEntry, method_cls: type[Method], options: MethodOptions,
                 cohort: Cohort, seed: int, label_fraction: float, start: StartingPoint | None = None) -> RunIdentity:
    spec = dataclasses.asdict(benchmark.cohort)
    for where in ("tables", "table", "image_root"):  # where the files are is not what they hold
        spec.pop(where)
    if benchmark.cohort.source != "simulated":  # how files became B-scans; the simulator renders its own
        spec["images"] = dataclasses.asdict(benchmark.images)
    schedule = dataclasses.asdict(benchmark.pretrain)
    schedule.pop("init")  # keyed below by the weights' content: a random start keeps the keys it always had
    pretraining = {"benchmark": benchmark.name, "method": method_cls.name, "options": options.record(),
                   "backbone": benchmark.backbone, "pretrain": schedule,
                   "cohort": {"source": benchmark.cohort.source, "fingerprint": cohort.fingerprint(), "spec": spec},
                   "seed": seed}
    if start is not None:
        pretraining["init"] = start.key()
    if method_cls.trains_on == "biomarkers":  # its pretraining sees the labels of the fraction's patients
        pretraining["label_fraction"] = float(label_fraction)
    evaluation = dataclasses.asdict(benchmark.evaluate)
    if evaluation["task"] == "binary":  # the default: binary cohorts keep the keys they had before tasks
        evaluation.pop("task")
    key = {**pretraining, "label_fraction": float(label_fraction), "evaluate": evaluation}
    digest = digest_of(key)
    name = readable_name(benchmark, entry, method_cls, options, seed, label_fraction, start)
    return RunIdentity(f"{name}-{digest[:HASH_LENGTH]}", key, digest, digest_of(pretraining),
                       start.record() if start is not None else None, run_label(entry, start))


def readable_name(benchmark: Benchmark, entry: MethodEntry, method_cls: type[Method], options: MethodOptions,
                  seed: int, label_fraction: float, start: StartingPoint | None = None) -> str:
    """entry[-labels][-init]_backbone_schedule_benchmark_seed_fraction[_protocol], e.g.
    clinical-supcon-bcva0.5-cst0.5_resnet18_128xb-120s_default_seed0_lf1.0."""
    name = entry.alias or method_cls.name
    if not entry.alias:
        if options.clinical:
            name += "-" + "-".join(f"{c.lower()}{w:g}" for c, w in options.clinical)
            name += f"-bins{options.bins}" if options.bins else ""
        name += "".join(f"-{k.replace('_', '')}{v:g}" if isinstance(v, float) else f"-{k.replace('_', '')}{v}"
                        for k, v in options.settings)
    if start is not None and not (entry.alias and entry.init):  # an entry's alias names its own init
        name += f"-init{start.short()}"
    b = benchmark
    schedule = f"_{b.pretrain.batch_size}xb-{b.pretrain.steps}s" if method_cls.n_views else ""
    protocol = "" if b.evaluate.protocol == "linear" else f"_{b.evaluate.protocol}"  # the default stays implicit
    return f"{name}_{b.backbone}{schedule}_{b.name}_seed{seed}_lf{float(label_fraction)}{protocol}"
