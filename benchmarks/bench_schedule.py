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
    python benchmarks/bench_schedule.py --rows 10000000 --before --out benchmarks/results/schedule_before_after.json

``--before`` measures, instead of the loop reference, the vectorised implementation as it was before issue 23's
rewrite (``tests/curriculum/schedule_before.py``), the two runs interleaved so that both see the same load, and
checks them equal; ``--out`` writes the figures (wall, CPU, peak traced memory, 1-minute load per run) as JSON.

Prints, per row count, the best wall time of ``--repeats`` runs of each (and its CPU time: on a shared machine
the wall time also counts the time other processes held the cores), and the ratio reference / new.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import time
from functools import partial
from pathlib import Path

import numpy as np

from hf_saerl.curriculum import build_schedule

REFERENCE_FILE = Path(__file__).resolve().parents[1] / "tests" / "curriculum" / "test_schedule.py"


BEFORE_FILE = REFERENCE_FILE.with_name("schedule_before.py")


def load_before():
    """``build_schedule`` as it was before issue 23's rewrite (the test suite's bit-identity reference)."""
    spec = importlib.util.spec_from_file_location("schedule_before", BEFORE_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build_schedule


def before_after(args, kwargs: dict) -> dict:
    """Interleaved runs of the implementation before and after issue 23's rewrite: wall, CPU and traced peak
    memory per run, with the load average read after each."""
    import tracemalloc

    before = load_before()
    out: dict = {
        "settings": {
            **kwargs,
            "clusters": args.clusters,
            "dtype": args.dtype,
            "repeats": args.repeats,
            "cores": os.cpu_count(),
            "numpy": np.__version__,
        },
        "rows": {},
    }
    for rows in args.rows:
        clusters, difficulty = inputs(rows, args.clusters, args.dtype)
        runs: dict[str, list[dict]] = {"before": [], "after": []}
        for _ in range(args.repeats):
            results = {}
            for name, fn in (("before", before), ("after", build_schedule)):
                wall, cpu = time.perf_counter(), time.process_time()
                results[name] = fn(clusters, difficulty, **kwargs)
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                runs[name].append({"wall_s": round(wall, 3), "cpu_s": round(cpu, 3), "load_1min": os.getloadavg()[0]})
            if results["before"] != results["after"]:
                raise SystemExit(f"The schedules differ at {rows} rows: the rewrite changed the schedule.")
            del results
        peaks = {}
        if args.trace_memory:  # a separate run: tracemalloc slows the Python lists down many times
            for name, fn in (("before", before), ("after", build_schedule)):
                tracemalloc.start()
                fn(clusters, difficulty, **kwargs)
                peaks[name] = round(tracemalloc.get_traced_memory()[1] / 2**20, 1)
                tracemalloc.stop()
        out["rows"][str(rows)] = {**runs, "peak_traced_mb": peaks}
        for name, r in runs.items():
            print(
                f"{rows:>12,} {name:>7}: best wall {min(x['wall_s'] for x in r):.2f} s, best cpu "
                f"{min(x['cpu_s'] for x in r):.2f} s, peak traced {peaks.get(name, '-')} MB, loads "
                f"{[x['load_1min'] for x in r]}"
            )
    return out


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
    parser.add_argument(
        "--reference-rows", type=int, default=1_000_000, help="run the reference only up to this many rows (it is slow)"
    )
    parser.add_argument(
        "--before",
        action="store_true",
        help="compare with the implementation before issue 23's rewrite, not the loop reference",
    )
    parser.add_argument("--out", help="write the --before figures to this JSON file")
    parser.add_argument(
        "--trace-memory",
        action="store_true",
        help="with --before: one more run of each under tracemalloc, for the peak of traced allocations",
    )
    args = parser.parse_args()
    kwargs = dict(batch_size=args.batch_size, mix_ratio=0.125, seed=1, epoch=0)
    if args.before:
        result = before_after(args, kwargs)
        if args.out:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps(result, indent=1))
        return
    reference = load_reference()
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, numpy {np.__version__}, "
        f"load average {os.getloadavg()[0]:.1f}; batch_size={args.batch_size}, {args.clusters} clusters, "
        f"{args.dtype} difficulty, best of {args.repeats}"
    )
    print(f"{'rows':>12} {'reference s':>12} {'(cpu)':>7} {'new s':>8} {'(cpu)':>7} {'ratio':>7}")
    for rows in args.rows:
        clusters, difficulty = inputs(rows, args.clusters, args.dtype)
        build_schedule(clusters[:1000], difficulty[:1000], **kwargs)  # warm up imports and caches
        new_wall, new_cpu, new = best_of(partial(build_schedule, clusters, difficulty, **kwargs), args.repeats)
        if rows <= args.reference_rows:
            ref_wall, ref_cpu, ref = best_of(partial(reference, clusters, difficulty, **kwargs), args.repeats)
            if ref != new:
                raise SystemExit(f"The schedules differ at {rows} rows: the vectorised build_schedule is wrong.")
            del ref
            print(
                f"{rows:>12,} {ref_wall:>12.2f} {ref_cpu:>7.2f} {new_wall:>8.2f} {new_cpu:>7.2f} "
                f"{ref_wall / new_wall:>6.1f}x"
            )
        else:
            print(f"{rows:>12,} {'(skipped)':>12} {'':>7} {new_wall:>8.2f} {new_cpu:>7.2f} {'':>7}")
        del new


if __name__ == "__main__":
    main()
