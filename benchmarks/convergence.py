"""Is the default schedule long enough? Prints each method's mean AUROC at the benchmark's budget and
at a multiple of it, measured on this machine in one run.

    python benchmarks/convergence.py [--benchmark default] [--factor 4 | --long default-long]
                                     [--methods simclr clinical-supcon] [--seeds 1] [--out results]
                                     [--recorded]

A verdict drawn at the default budget holds for a method when the two numbers are within 0.01 (the
target of the default benchmark); otherwise the method was still improving when its schedule ended.
Runs are ordinary run records under --out (`octbench report` shows them), so a second call reuses
them. `--long default-long` takes the longer schedule from that benchmark file instead (it must differ
from --benchmark in its steps only), so these runs are the ones its leaderboard shows.
`--recorded` trains nothing: it averages the seeds that have records and says how many.
Each run's budget curve (metrics.json `budget`: 1/4, 1/2 and all of the schedule) is printed too.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

from octbench.benchmark import Benchmark, load_benchmark, with_overrides
from octbench.errors import OctbenchError
from octbench.run import RunRequest, execute, recorded

TARGET = 0.01


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--benchmark", default="default")
    parser.add_argument("--factor", type=int, default=4, help="the longer schedule, in multiples of the budget")
    parser.add_argument("--long", help="a benchmark that is --benchmark at more steps, e.g. default-long "
                                       "(default: --benchmark at --factor times its steps)")
    parser.add_argument("--methods", nargs="+", default=["simclr", "clinical-supcon"],
                        help="method names or entry aliases of the benchmark")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("results"))
    parser.add_argument("--recorded", action="store_true",
                        help="train nothing: average the seeds that have run records (a compare in progress)")
    args = parser.parse_args()
    try:
        benchmark = load_benchmark(args.benchmark)
        longer = (check_longer(benchmark, load_benchmark(args.long)) if args.long
                  else with_overrides(benchmark, steps=args.factor * benchmark.pretrain.steps))
    except OctbenchError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    budget, long_steps = benchmark.pretrain.steps, longer.pretrain.steps
    schedules = {budget: benchmark, long_steps: longer}
    start = time.perf_counter()
    rows = []
    for method in args.methods:
        means = {}
        for steps, resolved in schedules.items():
            scores = []
            for seed in range(args.seeds):
                request = RunRequest(benchmark=resolved, method=method, seed=seed, out=args.out, progress=False)
                if args.recorded:
                    (folder, metrics), reused = recorded(request), True
                    if metrics is None:
                        print(f"{folder.name}: no record", flush=True)
                        continue
                else:
                    folder, metrics, reused = execute(request)
                scores.append(metrics["mean_auroc"])
                curve = ", ".join(f"{p['step']}: {p['mean_auroc']:.3f}" for p in metrics.get("budget", []))
                print(f"{folder.name}: mean AUROC {metrics['mean_auroc']:.3f}"
                      f"{' (reused)' if reused else ''}; budget curve {curve}", flush=True)
            means[steps] = (float(np.mean(scores)) if scores else float("nan"), len(scores))
        rows.append((method, means[budget], means[long_steps]))
    print(f"\n{'method':<28} {budget:>6} steps {long_steps:>6} steps   difference   within {TARGET}")
    for method, (short, n_short), (long, n_long) in rows:
        seeds = f"   ({n_short} and {n_long} seeds)" if args.recorded else ""
        print(f"{method:<28} {short:12.3f} {long:12.3f}   {long - short:+10.3f}   {abs(long - short) <= TARGET}{seeds}")
    seeds = f"up to {args.seeds}" if args.recorded else args.seeds
    print(f"({seeds} seed(s) each, {time.perf_counter() - start:.0f} s)")


def check_longer(short: Benchmark, long: Benchmark) -> Benchmark:
    """`long`, when it is `short` at more pretraining steps and nothing else that its runs depend on."""
    a, b = settings_but_steps(short), settings_but_steps(long)
    if differ := [key for key in a if a[key] != b.get(key)]:
        raise OctbenchError(f"{long.path}: differs from {short.name} in {', '.join(differ)}, not only in "
                            "pretrain.steps, so the comparison would not be of the budget alone")
    if long.pretrain.steps <= short.pretrain.steps:
        raise OctbenchError(f"{long.path}: pretrain.steps = {long.pretrain.steps} is not more than "
                            f"{short.name}'s {short.pretrain.steps}")
    return long


def settings_but_steps(benchmark: Benchmark) -> dict:
    """`section.key` -> value for every setting a run depends on, pretrain.steps left out."""
    flat = {"backbone": benchmark.backbone}
    for section in ("cohort", "images", "pretrain", "evaluate"):
        flat |= {f"{section}.{key}": value for key, value in dataclasses.asdict(getattr(benchmark, section)).items()}
    flat.pop("pretrain.steps")
    return flat


if __name__ == "__main__":
    main()
