"""The embedded default cohort: sample B-scans from the label model, render them, cache on disk.

The label model covers every B-scan of every visit; a benchmark renders only what it uses: a
pretraining pool drawn from the training patients' visits (clinical labels only, like OLIVES'
pool) and biomarker-labelled B-scans from the first and last visits of train, val and test patients.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from octbench import BIOMARKERS
from octbench.benchmark import CohortSpec
from octbench.cohort import Cohort
from octbench.locks import exclusive
from octbench.simulate.labels import LabelModel, simulate_labels
from octbench.simulate.render import render_scans
from octbench.splits import patient_level_split

# The cache key covers the simulator's own source, so a changed label model or renderer never
# serves stale images.
SIMULATOR_SOURCES = ("labels.py", "render.py", "cohort.py")
RENDER_CHUNK = 400


def default_cache_dir() -> Path:
    return Path(os.environ.get("OCTBENCH_CACHE", Path.home() / ".cache" / "octbench"))


def sample_rows(rows: pd.DataFrame, n: int, rng: np.random.Generator) -> pd.DataFrame:
    return rows if n >= len(rows) else rows.iloc[np.sort(rng.choice(len(rows), n, replace=False))]


def select_scans(labels: pd.DataFrame, spec: CohortSpec) -> pd.DataFrame:
    """The B-scans a benchmark uses, with their split, pool and labelled flags."""
    rng = np.random.default_rng([spec.seed, 1])
    split_of = patient_level_split(labels["patient"].to_numpy(), spec.split, spec.seed)
    labels = labels.assign(split=labels["patient"].map(split_of))
    counts = {"train": spec.train_scans, "val": spec.val_scans, "test": spec.test_scans}
    chosen = {name: sample_rows(labels[(labels["split"] == name) & labels["labelled"]], n, rng)
              for name, n in counts.items()}
    # The pool is every kind of visit of the training patients and includes the biomarker-training
    # B-scans, as OLIVES' pool holds every image of its training eyes.
    train_rows = labels[labels["split"] == "train"]
    extra_pool = sample_rows(train_rows.drop(index=chosen["train"].index),
                             max(spec.pool_scans - len(chosen["train"]), 0), rng)
    table = pd.concat([chosen["train"], chosen["val"], chosen["test"], extra_pool]).sort_index()
    table["labelled"] = table.index.isin(pd.Index(chosen["train"].index).append(
        [chosen["val"].index, chosen["test"].index]))
    table["in_pool"] = table.index.isin(pd.Index(chosen["train"].index).append(extra_pool.index))
    return table.reset_index(drop=True).assign(image=lambda t: np.arange(len(t)))


def hide_unlabelled(table: pd.DataFrame) -> pd.DataFrame:
    """Pool-only rows carry clinical labels only, as in OLIVES; the latent edema, the B-scan's
    own thickness and the rendering seeds stay hidden."""
    table = table.drop(columns=["severity", "thickness", "eye_seed", "scan_seed"])
    table[list(BIOMARKERS)] = table[list(BIOMARKERS)].astype(float).where(table["labelled"])
    return table


def render_parallel(table: pd.DataFrame, size: int, seed: int, workers: int) -> np.ndarray:
    """Render in chunks over processes; each row's image depends only on its own seed."""
    chunks = [table.iloc[i:i + RENDER_CHUNK] for i in range(0, len(table), RENDER_CHUNK)]
    images = np.empty((len(table), size, size), dtype=np.uint8)
    progress = tqdm(total=len(table), desc="rendering B-scans", unit="scan")
    # fork works from any caller (spawn needs a __main__ guard); the workers only run numpy.
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = [pool.submit(render_scans, chunk, size, seed, False) for chunk in chunks]
        start = 0
        for chunk, future in zip(chunks, futures):
            images[start:start + len(chunk)] = future.result()
            start += len(chunk)
            progress.update(len(chunk))
    progress.close()
    return images


def cache_key(spec: CohortSpec) -> str:
    digest = hashlib.sha256(json.dumps({"spec": asdict(spec), "label_model": asdict(LabelModel())},
                                       sort_keys=True).encode())
    for name in SIMULATOR_SOURCES:
        digest.update((Path(__file__).parent / name).read_bytes())
    return digest.hexdigest()[:16]


def cached_cohort(folder: Path, spec: CohortSpec) -> tuple[Cohort | None, str | None]:
    """The cached cohort when its entry is whole; else None and what is wrong with it (None when
    it is simply not there). Its images must match its table row for row, at the spec's size."""
    images_file, table_file = folder / "images.npy", folder / "table.csv"
    if not images_file.exists():
        return None, None
    try:
        table = pd.read_csv(table_file)
        images = np.load(images_file, mmap_mode="r")
    except (OSError, ValueError, EOFError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        return None, str(error) or type(error).__name__
    expected = (len(table), spec.image_size, spec.image_size)
    if images.shape != expected or images.dtype != np.uint8:
        return None, f"images.npy holds {images.dtype} images of shape {images.shape}, not {expected} uint8"
    # A table.csv cut short in its last row still parses, with that row's cells empty.
    if "image" not in table or not np.array_equal(table["image"], np.arange(len(table))) \
            or table.drop(columns=[c for c in BIOMARKERS if c in table]).isna().any().any():
        return None, "table.csv is incomplete"
    return Cohort(table=table, images=images, source_key=folder.name), None


def simulated_cohort(spec: CohortSpec, cache_dir: Path | None = None, workers: int | None = None) -> Cohort:
    """The simulated cohort of a benchmark, generated once and then read from the cache."""
    folder = Path(cache_dir or default_cache_dir()) / f"simulated-{cache_key(spec)}"
    cohort, _ = cached_cohort(folder, spec)
    if cohort is not None:  # the usual case: no lock taken, so a read-only cache serves too
        return cohort
    # One process renders an entry; another that asks for it meanwhile waits, then reads it.
    with exclusive(folder.with_name(f"{folder.name}.lock"), f"the simulated cohort {folder}", wait=True):
        cohort, damage = cached_cohort(folder, spec)
        if cohort is not None:
            return cohort
        if damage:
            print(f"octbench: simulated cohort cache {folder} is damaged ({damage}); rebuilding it", file=sys.stderr)
        labels = simulate_labels(spec.patients, spec.seed)
        table = select_scans(labels, spec)
        images = render_parallel(table, spec.image_size, spec.seed, workers or min(2, os.cpu_count() or 1))
        # Written to a temporary folder and renamed, so a killed run never leaves half a cache.
        partial = folder.with_name(f"{folder.name}.partial-{os.getpid()}")
        partial.mkdir(parents=True, exist_ok=True)
        hide_unlabelled(table).to_csv(partial / "table.csv", index=False)
        np.save(partial / "images.npy", images)
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(partial, folder)
    table = pd.read_csv(folder / "table.csv")
    return Cohort(table=table, images=np.load(folder / "images.npy", mmap_mode="r"), source_key=folder.name)
