"""Benchmark: ``CurriculumDataset`` over a streaming source of N and 10N rows; peak memory must stay flat.

The source is a ``datasets.IterableDataset`` from a generator (nothing on disk, nothing materialised) whose
rows look like encoded prompts: an id, a ~200-character text, ``--top-k`` SAE indices and values, a cluster
id and a difficulty. Every run is a fresh subprocess that reads the whole stream once and reports its own
peak resident memory (``ru_maxrss``):

* **baseline**: plain iteration of the same ``IterableDataset`` (what a trainer reads without a curriculum);
* **ours**: ``CurriculumDataset(stream, batch_size, buffer_size=...)`` yielding every row in curriculum order.

Both run at N and at 10N rows, back to back. The target: ours' peak RSS at 10N is **less than 10% above** its
peak at N (memory does not grow with the stream; it is bounded by ``buffer_size``).

    python benchmarks/bench_stream.py                       # N = 100,000 (and 1,000,000)
    python benchmarks/bench_stream.py --rows 2000 --buffer-size 500 --batch-size 50   # smallest: proves it runs
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from benchutil import header, max_rss_mb, print_table, ratio, times, write_json


def rows(n: int, top_k: int, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    block = 1000
    for start in range(0, n, block):
        m = min(block, n - start)
        idx = rng.integers(0, 16_384, (m, top_k), dtype=np.int32).tolist()
        val = rng.random((m, top_k), dtype=np.float32).tolist()
        cid = rng.integers(0, 16, m).tolist()
        diff = rng.random(m).tolist()
        for j in range(m):
            i = start + j
            yield {
                "id": i,
                "text": f"Problem {i}: find the value of x such that " + "x + 1 = 2 and " * 12,
                "sae_indices": idx[j],
                "sae_values": val[j],
                "cluster_id": cid[j],
                "difficulty": diff[j],
            }


def child(args) -> None:
    import datasets

    from hf_saerl.curriculum import CurriculumDataset  # imported by both variants, so both start equal

    stream = datasets.IterableDataset.from_generator(rows, gen_kwargs={"n": args.n, "top_k": args.top_k})
    before = max_rss_mb()
    start = time.perf_counter()
    seen = 0
    if args.variant == "baseline":
        for _ in stream:
            seen += 1
    else:
        curriculum = CurriculumDataset(stream, args.batch_size, buffer_size=args.buffer_size, seed=0)
        total = squares = 0  # every id once: count, sum and sum of squares match (constant memory, unlike a set)
        for ex in curriculum:
            seen += 1
            total += ex["id"]
            squares += ex["id"] ** 2
        n = args.n
        if (seen, total, squares) != (n, n * (n - 1) // 2, (n - 1) * n * (2 * n - 1) // 6):
            raise SystemExit(f"the curriculum did not yield each of the {n} rows exactly once ({seen} rows seen)")
    seconds = time.perf_counter() - start
    print(
        "RESULT "
        + json.dumps({"rows_seen": seen, "seconds": seconds, "rss_before_mb": before, "peak_rss_mb": max_rss_mb()})
    )


def run(args, variant: str, n: int) -> dict:
    if args.in_process:  # quick, for the smoke test: the peak RSS is then the process's, not the run's
        import contextlib
        import io

        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            child(argparse.Namespace(**{**vars(args), "variant": variant, "n": n}))
        return json.loads(buf.getvalue().strip().splitlines()[-1][len("RESULT ") :])
    cmd = [
        sys.executable,
        __file__,
        "--_variant",
        variant,
        "--_n",
        str(n),
        "--top-k",
        str(args.top_k),
        "--batch-size",
        str(args.batch_size),
        "--buffer-size",
        str(args.buffer_size),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"{variant} at {n} rows failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="N; the stream is also read at 10N")
    parser.add_argument("--factor", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--buffer-size", type=int, default=10_000)
    parser.add_argument("--top-k", type=int, default=64)
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="no subprocesses (fast start; the peak RSS is not each run's own: no verdict)",
    )
    parser.add_argument("--_variant", choices=["baseline", "ours"], help=argparse.SUPPRESS)
    parser.add_argument("--_n", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._variant:
        args.variant, args.n = args._variant, args._n
        return child(args)

    header(
        f"curriculum stream: CurriculumDataset over a streaming source of {args.rows:,} and "
        f"{args.factor * args.rows:,} rows (buffer {args.buffer_size:,}, batch {args.batch_size})"
    )
    results = []
    for n in (args.rows, args.factor * args.rows):
        measured = {v: run(args, v, n) for v in ("baseline", "ours")}
        b, o = measured["baseline"], measured["ours"]
        results.append(
            {
                "rows": n,
                "baseline_s": b["seconds"],
                "ours_s": o["seconds"],
                "ratio_str": times(ratio(b["seconds"], o["seconds"])),
                "baseline_rows_s": n / b["seconds"],
                "ours_rows_s": n / o["seconds"],
                "baseline_peak_rss_mb": b["peak_rss_mb"],
                "ours_peak_rss_mb": o["peak_rss_mb"],
                "ours_rss_before_mb": o["rss_before_mb"],
                "baseline_extra_mb": b["peak_rss_mb"] - b["rss_before_mb"],
                "ours_extra_mb": o["peak_rss_mb"] - o["rss_before_mb"],
            }
        )
        print(f"# {n:,} rows done", flush=True)
    growth = results[1]["ours_peak_rss_mb"] / results[0]["ours_peak_rss_mb"] - 1
    base_growth = results[1]["baseline_peak_rss_mb"] / results[0]["baseline_peak_rss_mb"] - 1
    print_table(
        results,
        [
            ("rows", "rows", ","),
            ("baseline_s", "plain s", ".2f"),
            ("ours_s", "curriculum s", ".2f"),
            ("ratio_str", "plain/ours", None),
            ("ours_rows_s", "rows/s", ",.0f"),
            ("baseline_peak_rss_mb", "plain peak RSS MB", ".0f"),
            ("ours_peak_rss_mb", "curriculum peak RSS MB", ".0f"),
            ("baseline_extra_mb", "plain extra MB", ".0f"),
            ("ours_extra_mb", "curriculum extra MB", ".0f"),
        ],
    )
    print("(extra MB: peak RSS above the RSS after imports, before the stream is read)")
    verdict = ("PASS" if growth < 0.10 else "FAIL") if not args.in_process else "not judged (--in-process)"
    print(
        f"peak RSS growth from {args.rows:,} to {args.factor * args.rows:,} rows: curriculum {growth:+.1%} "
        f"(plain iteration {base_growth:+.1%}); target < +10%: {verdict}"
    )
    write_json(
        args.out, "stream", args, results, rss_growth=growth, baseline_rss_growth=base_growth, target_met=growth < 0.10
    )


if __name__ == "__main__":
    main()
