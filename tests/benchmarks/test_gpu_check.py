"""``benchmarks/gpu_check.py --tiny``: the GPU check's CPU rehearsal runs every section and writes the JSON the GPU
run will write, so that a lent GPU is not spent on a typo."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning", "ignore::DeprecationWarning")


def load_gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check_under_test", BENCH / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def gpu_check(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))  # its own imports: benchutil, bench_encoder, bench_labeller
    return load_gpu_check()


def test_peaks_are_looked_up_by_device_name(gpu_check):
    assert gpu_check.detect_peak("NVIDIA H100 80GB HBM3") == 989.0
    assert gpu_check.detect_peak("NVIDIA H100 PCIe") == 756.0
    assert gpu_check.detect_peak("NVIDIA H200") == 989.0
    assert gpu_check.detect_peak("NVIDIA A100-SXM4-80GB") == 312.0
    assert gpu_check.detect_peak("NVIDIA L40S") == 362.0 and gpu_check.detect_peak("NVIDIA L4") == 121.0
    assert gpu_check.detect_peak("cpu") is None and gpu_check.detect_peak(None) is None


def test_tiny_rehearsal_runs_every_section(gpu_check, tmp_path):
    import datasets
    import torch

    caching, threads = datasets.is_caching_enabled(), torch.get_num_threads()
    try:
        with contextlib.redirect_stdout(io.StringIO()) as printed:
            gpu_check.main(["--tiny", "--out", str(tmp_path), "--grpo-arms", "vanilla", "saerl"])
    finally:
        datasets.enable_caching() if caching else datasets.disable_caching()
        torch.set_num_threads(threads)
        sys.modules.pop("gpu_check_under_test", None)
    payload = json.loads((tmp_path / "gpu_check_tiny.json").read_text())
    results = payload["results"]
    assert payload["benchmark"] == "gpu_check" and "partial" not in results
    assert results["device_name"] == "cpu" and results["peak_bf16_tflops"] is None
    for section in ("peak", "encoder", "placement", "labeller", "grpo", "deepmath"):
        assert "error" not in results[section], results[section]
    enc = results["encoder"]
    assert enc["ours_tokens_s"] > 0 and enc["naive_tokens_s"] > 0 and enc["max_relative_difference"] < 1e-3
    assert "mfu_measured_peak" in enc  # no nominal peak on a CPU: MFU against the measured matmul rate only
    for how in ("folder", "in_memory"):
        assert results["placement"][how]["placed_as_expected"] and results["placement"][how]["same_indices"]
    lab = results["labeller"]
    assert lab["transformers_tokens_s"] > 0 and lab["plain_tokens_s"] > 0
    assert "vllm_tokens_s" in lab or lab["vllm"].startswith(("not importable", "skipped under --tiny"))
    arms = results["grpo"]["arms"]
    assert set(arms) == {"vanilla", "saerl"}
    assert all(len(a["step_time_s"]) == 3 and a["train_s_per_step"] > 0 for a in arms.values())
    assert "GRPO s/step, saerl" in printed.getvalue()
