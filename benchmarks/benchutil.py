"""Shared helpers of the benchmark scripts: peak memory, machine facts, the result table and the JSON file.

The scripts run as ``python benchmarks/<script>.py``, so this folder is on ``sys.path`` and they import it as
``benchutil``. Nothing in the library imports it.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import resource
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


def rss_bytes() -> int:
    """The resident set size of this process now."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def max_rss_mb() -> float:
    """The peak resident set size of this process so far (the kernel's ``ru_maxrss``), in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class PeakRSS:
    """Peak resident memory above the level at ``__enter__``, sampled every 2 ms in a background thread."""

    def __enter__(self) -> PeakRSS:
        self.start = self.peak = rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, rss_bytes())

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())

    @property
    def extra_mb(self) -> float:
        return (self.peak - self.start) / 2**20

    @property
    def peak_mb(self) -> float:
        return self.peak / 2**20


def timed(fn: Callable[[], Any], repeats: int = 1) -> tuple[float, float, Any]:
    """Best wall seconds of ``repeats`` calls, the CPU seconds of that call, and its result."""
    best: tuple[float, float, Any] = (float("inf"), 0.0, None)
    for _ in range(max(1, repeats)):
        wall, cpu = time.perf_counter(), time.process_time()
        result = fn()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        if wall < best[0]:
            best = (wall, cpu, result)
    return best


def machine() -> dict[str, Any]:
    """What the numbers ran on: CPU, cores, load average, library versions."""
    info: dict[str, Any] = {
        "machine": platform.machine(),
        "processor": _cpu_name(),
        "cpus": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    for name in ("torch", "transformers", "datasets", "sklearn", "numpy"):
        with contextlib.suppress(ImportError):
            info[name] = __import__(name).__version__
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return info


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def ratio(baseline: float | None, ours: float | None) -> float | None:
    """``baseline / ours`` (above 1: ours is faster / smaller), or None when either is missing."""
    if baseline is None or ours is None or ours == 0:
        return None
    return baseline / ours


def times(value: float | None) -> str | None:
    """A ratio printed as ``"2.31x"`` (None stays None)."""
    return None if value is None else f"{value:.2f}x"


def _cell(value: Any, spec: str | None) -> str:
    if value is None:
        return "-"
    if spec and isinstance(value, (int, float)):
        return format(value, spec)
    return str(value)


def print_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str, str | None]]) -> None:
    """Print ``rows`` under ``columns`` = ``[(key, header, format spec), ...]``; a missing value prints ``-``."""
    cells = [[_cell(r.get(key), spec) for key, _, spec in columns] for r in rows]
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, (_, h, _) in enumerate(columns)]
    line = "  ".join(
        h.rjust(w) if i else h.ljust(w) for i, ((_, h, _), w) in enumerate(zip(columns, widths, strict=True))
    )
    print(line)
    print("-" * len(line))
    for c in cells:
        print("  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in enumerate(zip(c, widths, strict=True))))


def write_json(path: str | Path | None, name: str, args: Any, results: Any, **extra: Any) -> None:
    """Write ``{"benchmark", "machine", "args", "results", ...}`` to ``path`` (nothing when it is None)."""
    if path is None:
        return
    payload = {
        "benchmark": name,
        "machine": machine(),
        "args": {k: v for k, v in vars(args).items() if not k.startswith("_")},
        "results": results,
        **extra,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=_default) + "\n", encoding="utf-8")
    print(f"wrote {path}")


def _default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def header(title: str) -> None:
    """Print the benchmark's title and the machine it runs on."""
    m = machine()
    print(f"== {title}")
    print(
        f"machine: {m['processor']}, {m['cpus']} cores, load average {m['load_average_1m']}, "
        f"torch {m.get('torch', '-')} ({m.get('torch_threads', '-')} threads), {m['time_utc']}"
    )
