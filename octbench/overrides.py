"""Command-line settings: `--set section.key=value` overrides any benchmark key, and
`octbench show-config` writes the benchmark it resolves to back as TOML.

A value is read as TOML (`10`, `1e-3`, `true`, `[0.1, 1.0]`, `{train=0.6,val=0.2,test=0.2}`, a
quoted string), and a bare word that is no TOML value is a string (`log.logger=mlflow`). It is
checked by the rules the benchmark file's keys are checked by (octbench/benchmark.py RULES), with
the same messages. A top-level key has no section (`--set backbone=resnet50`). The settings are kept,
in order, in the benchmark (`overrides`), so a run record says what was overridden.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re

from octbench.benchmark import (
    RULES,
    SECTIONS,
    Benchmark,
    MethodEntry,
    limited,
    section_values,
    tomllib,
)
from octbench.errors import OctbenchError, closest

SETTING = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_-]*)(?:\.([A-Za-z_][A-Za-z0-9_-]*))?\s*=(.*)", re.DOTALL)
EXAMPLES = "e.g. pretrain.steps=10, cohort.split='{train=0.6,val=0.2,test=0.2}' or backbone=resnet50"


def parse_value(text: str, setting: str):
    """A TOML value, or a bare word as a string."""
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        pass
    word = text.strip()
    if word and word[0] not in "[{\"'" and "\n" not in word:
        return word
    raise OctbenchError(f"--set {setting}: {text!r} is not a TOML value (quote a string, write a list as [1, 2] "
                        "and a table as {key = value})")


def parse_setting(text: str) -> tuple[str | None, str, object]:
    """'pretrain.steps=10' -> ('pretrain', 'steps', 10); 'backbone=resnet50' -> (None, 'backbone', 'resnet50')."""
    match = SETTING.fullmatch(text)
    if not match:
        raise OctbenchError(f"--set {text}: expected section.key=value or, for a top-level key, key=value "
                            f"({EXAMPLES})")
    first, second, value = match.groups()
    section, key = (first, second) if second else (None, first)
    return section, key, parse_value(value, text)


def apply_settings(benchmark: Benchmark, settings) -> Benchmark:
    """The benchmark with each `section.key=value` applied in order, each checked as the file's keys
    are; a key given twice with two values is refused rather than silently taking the last."""
    given: dict[str, tuple[str, object]] = {}
    for text in settings:
        section, key, value = parse_setting(text)
        where = f"--set {text}"
        name = f"{section}.{key}" if section else key
        if name in given and given[name][1] != value:
            raise OctbenchError(f"{where}: {name} is already set by {given[name][0]}; give it once")
        given[name] = (text, value)
        if section is None:
            if key in SECTIONS:
                raise OctbenchError(f"{where}: {key} is a section; set one of its keys, e.g. "
                                    f"--set {key}.{next(iter(RULES[SECTIONS[key]]))}=...")
            if key not in RULES[Benchmark]:
                known = [*RULES[Benchmark], *SECTIONS]
                raise OctbenchError(f"{where}: unknown key {key!r}{closest(key, known)}; top-level keys: "
                                    f"{', '.join(RULES[Benchmark])}; sections: {', '.join(SECTIONS)} "
                                    "(set section.key=value)")
            benchmark = dataclasses.replace(benchmark, **section_values(Benchmark, {key: value}, where))
            continue
        if section not in SECTIONS:
            raise OctbenchError(f"{where}: unknown section {section!r}{closest(section, SECTIONS)}; sections: "
                                f"{', '.join(SECTIONS)}, or a top-level key without one "
                                f"({', '.join(RULES[Benchmark])})")
        values = section_values(SECTIONS[section], {key: value}, where)
        part = dataclasses.replace(getattr(benchmark, section), **values)
        benchmark = dataclasses.replace(benchmark, **{section: part})
        if section == "cohort" and key == "limit" and value:
            benchmark = limited(benchmark, value)  # as --limit: a cut-down cohort is another benchmark
    return dataclasses.replace(benchmark, overrides=(*benchmark.overrides, *settings))


# TOML out: tomllib reads TOML but has no writer, and a benchmark needs only a few kinds of value.

BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def toml_key(key: str) -> str:
    return key if BARE_KEY.fullmatch(key) else toml_value(key)


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return repr(value) if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, str):  # JSON's escapes are TOML's basic-string escapes
        return json.dumps(value).replace("\x7f", "\\u007f")
    if isinstance(value, MethodEntry):
        return toml_value(entry_table(value))
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(map(toml_value, value)) + "]"
    if isinstance(value, dict):
        items = ", ".join(f"{toml_key(str(k))} = {toml_value(v)}" for k, v in value.items())
        return "{ " + items + " }" if value else "{}"
    raise TypeError(f"no TOML form for {type(value).__name__}")


def entry_table(entry: MethodEntry) -> str | dict:
    """A method entry as a benchmark file writes it: a name, or a table with its options."""
    table = {"name": entry.method, "label": entry.label, "alias": entry.alias, "clinical": entry.clinical,
             "bins": entry.bins, "init": entry.init, **dict(entry.options)}
    table = {k: v for k, v in table.items() if v not in ("", None)}
    return entry.method if list(table) == ["name"] else table


def benchmark_toml(benchmark: Benchmark) -> str:
    """The benchmark as a TOML file that loads back to the same benchmark (every key written, the
    defaults included)."""
    lines = [f"# benchmark {benchmark.name}, resolved from {benchmark.path or 'code'}"]
    lines += [f"#   --set {text}" for text in benchmark.overrides]
    for key in RULES[Benchmark]:
        value = getattr(benchmark, key)
        if key == "methods" and value:
            lines.append("methods = [")
            lines += [f"    {toml_value(entry)}," for entry in value]
            lines.append("]")
        else:
            lines.append(f"{key} = {toml_value(value)}")
    for section in SECTIONS:
        lines += ["", f"[{section}]"]
        part = getattr(benchmark, section)
        lines += [f"{field.name} = {toml_value(getattr(part, field.name))}" for field in dataclasses.fields(part)]
    return "\n".join(lines) + "\n"
