"""Smoke test of the benchmark suite: every script of ``python -m benchmarks`` runs at its tiniest size.

All scripts run in this one process (the tiny models of ``hf_saerl.testing``, no subprocess per script, so
torch, transformers and sae-lens are imported once), each writing its JSON where it can.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def _suite():
    spec = importlib.util.spec_from_file_location("benchmarks_main", BENCH / "__main__.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SUITE = _suite()


@contextlib.contextmanager
def _global_state_kept():
    """A benchmark may switch off datasets' cache and progress bars, or quiet hf_saerl's logger, for its own run;
    give the rest of the test session the state it had."""
    import logging

    import datasets
    import torch

    caching, bars = datasets.is_caching_enabled(), datasets.is_progress_bar_enabled()
    levels = {name: logging.getLogger(name).level for name in ("hf_saerl", "datasets", "transformers")}
    threads = torch.get_num_threads()
    try:
        yield
    finally:
        datasets.enable_caching() if caching else datasets.disable_caching()
        datasets.enable_progress_bars() if bars else datasets.disable_progress_bars()
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
        torch.set_num_threads(threads)


def _run_script(script: str, argv: list[str]) -> str:
    """``python benchmarks/<script> argv`` in this process; its printed output."""
    sys.path.insert(0, str(BENCH))
    old_argv = sys.argv
    sys.argv = [str(BENCH / script), *argv]
    try:
        with _global_state_kept():
            spec = importlib.util.spec_from_file_location(f"_smoke_{Path(script).stem}", BENCH / script)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                module.main()
            return out.getvalue()
    finally:
        sys.argv = old_argv
        sys.path.remove(str(BENCH))


#: Run at tiny size by their own tests, which also check what they write (tests/benchmarks/test_gpu_check.py).
OWN_TESTS = {"gpu_check"}


@pytest.mark.parametrize("name", sorted(set(SUITE.SUITE) - OWN_TESTS))
def test_benchmark_runs_at_tiny_size(name, tmp_path):
    script, *_, writes_json = SUITE.SUITE[name]
    argv = SUITE.arguments(name, "tiny")
    out = tmp_path / f"{name}.json"
    printed = _run_script(script, argv + (["--out", str(out)] if writes_json else []))
    assert printed.strip(), f"{script} printed nothing"
    if writes_json:
        payload = json.loads(out.read_text(encoding="utf-8"))
        assert payload["results"], payload
        assert payload.get("benchmark") or payload.get("meta")


def test_suite_modes_cover_every_script():
    for name, (script, *_rest) in SUITE.SUITE.items():
        assert (BENCH / script).is_file(), script
        for mode in ("full", "quick", "tiny"):
            assert isinstance(SUITE.arguments(name, mode), list)
