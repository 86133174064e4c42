"""Benchmark: ``build_schedule`` vectorised (issue 16) vs the loop-based reference it replaced.

The reference is the implementation kept in ``tests/curriculum/test_schedule.py`` (``reference_build_schedule``),
loaded from there, so the two are measured in the same process on the same inputs: cluster ids drawn uniformly
from ``--clusters`` clusters, difficulty uniform in [0, 1) as float32 (a ``datasets`` float32 column, what
``DifficultyProbe`` writes; ``--dtype float64`` for Python floats), default schedule parameters otherwise. The
reference is slow (about 15 s at 10M rows), so by default it only runs up to ``--reference-rows``; wherever it
runs, both schedules are checked equal before any time is printed.

    python benchmarks/bench_schedule.py                          # 1M and 10M rows
    python benchmarks/bench_schedule.py --rows 100000 --repeats 1   # smallest: proves it runs
    python benchmarks/bench_schedule.py --rows 10000000 --reference-rows 10000000   # the reference at 10M too

Prints, per row count, the best wall time of ``--repeats`` runs of each (and its CPU time: on a shared machine
the wall time also counts the time other processes held the cores), and the ratio reference / new.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import time
from pathlib import Path

import numpy as np

from hf_saerl.curriculum import build_schedule

REFERENCE_FILE = Path(__file__).resolve().parents[1] / "tests" / "curriculum" / "test_schedule.py"


def load_reference():
    """``reference_build_schedule`` from the test file (it needs pytest and hypothesis: the dev extra)."""
    spec = importlib.util.spec_from_file_location("schedule_reference", REFERENCE_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.reference_build_schedule


def inputs(rows: int, clusters: int, dtype: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, clusters, rows), rng.random(rows).astype(dtype)


def best_of(fn, repeats: int) -> tuple[float, float, object]:
    """Best wall time and the CPU time of that run, and the result."""
    best = (float("inf"), 0.0, None)
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        result = fn()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        if wall < best[0]:
            best = (wall, cpu, result)
        del result
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--clusters", type=int, default=16)
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--reference-rows", type=int, default=1_000_000,
                        help="run the reference only up to this many rows (it is slow)")
    args = parser.parse_args()
    reference = load_reference()
    kwargs = dict(batch_size=args.batch_size, mix_ratio=0.125, seed=1, epoch=0)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, numpy {np.__version__}, "
          f"load average {os.getloadavg()[0]:.1f}; batch_size={args.batch_size}, {args.clusters} clusters, "
          f"{args.dtype} difficulty, best of {args.repeats}")
    print(f"{'rows':>12} {'reference s':>12} {'(cpu)':>7} {'new s':>8} {'(cpu)':>7} {'ratio':>7}")
    for rows in args.rows:
        clusters, difficulty = inputs(rows, args.clusters, args.dtype)
        build_schedule(clusters[:1000], difficulty[:1000], **kwargs)  # warm up imports and caches
        new_wall, new_cpu, new = best_of(lambda: build_schedule(clusters, difficulty, **kwargs), args.repeats)
        if rows <= args.reference_rows:
            ref_wall, ref_cpu, ref = best_of(lambda: reference(clusters, difficulty, **kwargs), args.repeats)
            if ref != new:
                raise SystemExit(f"The schedules differ at {rows} rows: the vectorised build_schedule is wrong.")
            del ref
            print(f"{rows:>12,} {ref_wall:>12.2f} {ref_cpu:>7.2f} {new_wall:>8.2f} {new_cpu:>7.2f} "
                  f"{ref_wall / new_wall:>6.1f}x")
        else:
            print(f"{rows:>12,} {'(skipped)':>12} {'':>7} {new_wall:>8.2f} {new_cpu:>7.2f} {'':>7}")
        del new


if __name__ == "__main__":
    main()
