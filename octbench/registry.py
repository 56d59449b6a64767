"""Finds methods: the files in octbench's `methods/` and in the user's folders.

A user adds a method without editing octbench: put one file holding a `Method` subclass in a folder
and pass `--methods-dir FOLDER` or set OCTBENCH_METHODS (folders separated by ':').
"""

from __future__ import annotations

import importlib.util
import inspect
import os
from importlib import resources
from pathlib import Path

from octbench.benchmark import METHOD_NAME
from octbench.errors import OctbenchError, closest
from octbench.method import Method


def builtin_methods_dir() -> Path:
    return Path(str(resources.files("octbench.methods")))


def method_dirs(extra: list[str] | None = None) -> list[Path]:
    from_env = [p for p in os.environ.get("OCTBENCH_METHODS", "").split(os.pathsep) if p]
    return [builtin_methods_dir()] + [Path(p) for p in from_env + list(extra or [])]


def methods_in_file(path: Path) -> list[type[Method]]:
    spec = importlib.util.spec_from_file_location(f"octbench_method_{path.parent.name}_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as error:  # a user's file: report which one, whatever went wrong in it
        raise OctbenchError(f"method file {path} failed to import: {type(error).__name__}: {error}") from error
    found = [obj for obj in vars(module).values()
             if inspect.isclass(obj) and issubclass(obj, Method) and obj.__module__ == module.__name__]
    for cls in found:
        check_method_class(cls, path)
    return found


def check_method_class(cls: type[Method], path: Path) -> None:
    problems = [f"class attribute {attr!r} must be a non-empty string"
                for attr in ("name", "description", "paper") if not isinstance(getattr(cls, attr), str)
                or not getattr(cls, attr)]
    if isinstance(cls.name, str) and cls.name and not METHOD_NAME.fullmatch(cls.name):
        problems.append(f"name {cls.name!r} must be lowercase letters and digits, words joined by '-' "
                        "(e.g. 'my-moco'): run names and tables are built from it")
    if getattr(cls, "n_views", 0) and cls.training_loss is Method.training_loss:
        problems.append("a method with n_views > 0 must define training_loss(self, views, batch)")
    if cls.trains_on not in ("pool", "biomarkers"):
        problems.append("trains_on must be 'pool' or 'biomarkers'")
    if not isinstance(cls.n_views, int) or cls.n_views < 0:
        problems.append("n_views must be an integer >= 0")
    if problems:
        raise OctbenchError(f"method {cls.__name__} in {path} does not meet the method interface "
                            f"(see octbench/method.py): " + "; ".join(problems))


def discover_methods(extra_dirs: list[str] | None = None) -> dict[str, type[Method]]:
    """Every method by name; a name defined twice is refused, naming both files."""
    registry: dict[str, type[Method]] = {}
    origin: dict[str, Path] = {}
    for folder in method_dirs(extra_dirs):
        if not folder.is_dir():
            raise OctbenchError(f"methods folder {folder} does not exist")
        for path in sorted(folder.glob("*.py")):
            if path.name.startswith("_"):
                continue
            for cls in methods_in_file(path):
                if cls.name in registry:
                    raise OctbenchError(f"method name {cls.name!r} in {path} is already taken by "
                                        f"{origin[cls.name]}; rename one of them")
                registry[cls.name], origin[cls.name] = cls, path
    return registry


def get_method(name: str, extra_dirs: list[str] | None = None) -> type[Method]:
    registry = discover_methods(extra_dirs)
    if name not in registry:
        raise OctbenchError(f"unknown method {name!r}{closest(name, registry)}; "
                            f"run 'octbench list' to see the {len(registry)} methods")
    return registry[name]
