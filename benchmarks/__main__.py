"""Run the whole benchmark suite: ``python -m benchmarks`` (full sizes) or ``python -m benchmarks --quick``.

Each benchmark runs as its own script in a fresh interpreter, one after the other (never two at once, so they do
not share the cores), with its output shown and kept in ``--out-dir``: ``<name>.json`` (the script's ``--out``,
or its printed table for the two scripts that write none) and ``<name>.log``. The sizes of each mode are in
:data:`SUITE`; ``--tiny`` is the size the smoke test (``tests/benchmarks/test_benchmarks_smoke.py``) runs.

    python -m benchmarks --quick                      # every stage at small sizes (a few minutes on 2 cores)
    python -m benchmarks --out-dir bench_results      # full sizes (the 1M-row estimator fits take a while)
    python -m benchmarks --quick --only encoder stream
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: name -> (script, full-size arguments, --quick arguments, --tiny arguments, writes --out itself)
SUITE: dict[str, tuple[str, list[str], list[str], list[str], bool]] = {
    "encoder": (
        "bench_encoder.py",
        [],
        ["--model", "tiny", "--n-texts", "64", "--max-length", "128", "--in-process"],
        ["--model", "tiny", "--n-texts", "4", "--max-length", "16", "--in-process"],
        True,
    ),
    "estimators": (
        "bench_estimators.py",
        [],
        ["--rows", "5000", "--difficulty-rows", "1000", "--d-sae", "2048", "--top-k", "32"],
        [
            "--rows",
            "200",
            "--difficulty-rows",
            "200",
            "--d-sae",
            "256",
            "--top-k",
            "8",
            "--n-clusters",
            "4",
            "--auto-range",
            "2",
            "4",
        ],
        True,
    ),
    "difficulty_fit": (
        "bench_difficulty_fit.py",
        ["--rows", "1000", "10000", "--old-rows", "1000"],
        ["--rows", "1000", "--old-rows", "--no-nested", "--test-rows", "1000"],
        ["--rows", "200", "--old-rows", "--no-nested", "--test-rows", "100", "--d-sae", "256", "--top-k", "8"],
        True,
    ),
    "schedule": (
        "bench_schedule.py",
        [],
        ["--rows", "100000", "1000000", "--repeats", "1"],
        ["--rows", "20000", "--repeats", "1"],
        False,
    ),
    "stream": (
        "bench_stream.py",
        [],
        ["--rows", "10000", "--buffer-size", "2000"],
        ["--rows", "500", "--buffer-size", "100", "--batch-size", "20", "--in-process"],
        True,
    ),
    "labeller": (
        "bench_labeller.py",
        [],
        ["--model", "tiny", "--n-prompts", "4", "--n", "2", "--max-new-tokens", "16"],
        ["--model", "tiny", "--n-prompts", "1", "--n", "2", "--max-new-tokens", "4"],
        True,
    ),
    "audit_spans": (
        "bench_audit_spans.py",
        [],
        ["--n-pairs", "8", "--max-length", "64"],
        ["--n-pairs", "2", "--max-length", "32"],
        False,
    ),
    "gpu_check": ("gpu_check.py", [], ["--tiny"], ["--tiny"], True),
    "selection": (
        "bench_selection.py",
        ["--synthetic", "400"],
        ["--synthetic", "200", "--seeds", "5"],
        ["--tiny"],
        True,
    ),
}


def arguments(name: str, mode: str) -> list[str]:
    """The arguments of benchmark ``name`` in ``mode`` (``full``, ``quick`` or ``tiny``)."""
    _, full, quick, tiny, _ = SUITE[name]
    if name == "gpu_check" and mode == "full":
        import importlib.util

        if importlib.util.find_spec("torch") is None or not __import__("torch").cuda.is_available():
            return ["--tiny"]  # no GPU here: the CPU rehearsal only
    return {"full": full, "quick": quick, "tiny": tiny}[mode]


def run_one(name: str, mode: str, out_dir: Path) -> dict:
    script, *_, writes_json = SUITE[name]
    out = out_dir / f"{name}.json"
    cmd = [sys.executable, str(HERE / script), *arguments(name, mode)] + (["--out", str(out)] if writes_json else [])
    print(f"\n### {name}: {' '.join(cmd[1:])}", flush=True)
    start = time.perf_counter()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    lines = []
    with subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=HERE.parent
    ) as proc:
        for line in proc.stdout:
            print(line, end="", flush=True)
            lines.append(line)
    seconds = time.perf_counter() - start
    (out_dir / f"{name}.log").write_text("".join(lines), encoding="utf-8")
    if not writes_json and proc.returncode == 0:
        out.write_text(
            json.dumps({"benchmark": name, "args": cmd[2:], "stdout": "".join(lines)}, indent=2) + "\n",
            encoding="utf-8",
        )
    return {"name": name, "exit": proc.returncode, "seconds": round(seconds, 1), "json": str(out)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="small sizes: every stage in a few minutes")
    mode.add_argument("--tiny", action="store_true", help="the smoke test's sizes: proves each script runs")
    parser.add_argument("--out-dir", type=Path, default=Path("bench_results"))
    parser.add_argument("--only", nargs="+", choices=sorted(SUITE), help="run only these")
    parser.add_argument("--skip", nargs="+", choices=sorted(SUITE), default=[], help="leave these out")
    args = parser.parse_args(argv)
    which = "quick" if args.quick else "tiny" if args.tiny else "full"
    args.out_dir.mkdir(parents=True, exist_ok=True)
    names = [n for n in (args.only or SUITE) if n not in args.skip]
    summary = [run_one(name, which, args.out_dir) for name in names]
    print(f"\n### suite ({which}) done; load average {os.getloadavg()[0]:.1f}")
    for s in summary:
        status = "ok" if s["exit"] == 0 else f"FAILED (exit {s['exit']})"
        print(f"{s['name']:<15} {status:<16} {s['seconds']:>7.1f} s")
    (args.out_dir / "suite.json").write_text(
        json.dumps({"mode": which, "runs": summary}, indent=2) + "\n", encoding="utf-8"
    )
    if any(s["exit"] for s in summary):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
