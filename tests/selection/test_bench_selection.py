"""The selection benchmark: its replay counts checked by hand on worlds whose outcome is known, and the --tiny run."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_selection.py"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(BENCH.parent))
    spec = importlib.util.spec_from_file_location("bench_selection", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _world(bench, p, drift=0.0):
    X = sp.csr_matrix(np.eye(len(p)))
    return bench.World(np.asarray(p, dtype=float), X, neighbours=1, drift=drift)


def test_replay_counts_on_known_worlds(bench):
    # every prompt at p = 0 (or 1): every group is zero-variance, and no first visit is in the band
    for p in (0.0, 1.0):
        out = bench.run_arm(
            bench.Uniform(20, 0), _world(bench, [p] * 20), 4, budget=320, batch=8, rng=np.random.default_rng(0)
        )
        assert out["zero_var_share"] == pytest.approx(1.0, abs=1e-3)
        assert out["grad_groups_per_1k"] == pytest.approx(0.0, abs=0.5)
        assert out["first_visit_in_band"] == 0.0 and out["first_visits"] == 20
    # p = 0.5 everywhere: the zero-variance share is 2 * 0.5**G in expectation (1/8 at G = 4)
    out = bench.run_arm(
        bench.Uniform(400, 0), _world(bench, [0.5] * 400), 4, budget=40_000, batch=40, rng=np.random.default_rng(1)
    )
    assert out["zero_var_share"] == pytest.approx(0.125, abs=0.015)
    assert out["grad_groups_per_1k"] == pytest.approx(1000 * 0.875 / 4, rel=0.03)
    assert out["first_visit_in_band"] == 1.0


def test_oracle_picks_the_most_learnable_and_drift_moves_neighbours(bench):
    world = _world(bench, [0.0, 0.5, 0.9, 0.3])
    assert sorted(bench.Oracle(0).select(2, world).tolist()) == [1, 3]
    X = sp.csr_matrix(np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]))
    drifting = bench.World(np.array([0.2, 0.2, 0.2]), X, neighbours=1, drift=1.0)
    drifting.trained(np.array([0]))
    p = drifting.p
    assert p[0] == pytest.approx(p[1]) and p[0] > 0.2 + 0.1 and p[2] == pytest.approx(0.2)  # 1 is 0's neighbour


def test_tiny_run_writes_every_arm(bench, tmp_path):
    out = tmp_path / "tiny.json"
    bench.main(["--tiny", "--seeds", "1", "--G", "4", "--out", str(out)])
    result = json.loads(out.read_text())["results"]
    arms = {row["arm"] for row in result["table"]}
    assert arms == set(bench.ARMS)
    by = {row["arm"]: row for row in result["table"]}
    assert by["oracle"]["zero_var_share"] < by["uniform"]["zero_var_share"]
    assert set(result["targets"]) >= {"zero_var_ratio_ours_vs_uniform_G4", "first_visit_in_band_ours_minus_history_G4"}
    # the paired differences, recomputed by hand from the per-seed runs
    row = next(r for r in result["paired"] if r["other"] == "history" and r["outcome"] == "zero_var_share")
    ours = [r["zero_var_share"] for r in result["per_seed"]["sae_prior_refit"]["4"]]
    hist = [r["zero_var_share"] for r in result["per_seed"]["history"]["4"]]
    assert row["diff"] == pytest.approx(np.mean(ours) - np.mean(hist))
    assert row["seeds_ours_ahead"] == sum(a < b for a, b in zip(ours, hist, strict=True)) and row["seeds"] == 1


def test_speed_mode_runs_small(bench, tmp_path):
    out = tmp_path / "speed.json"
    res = bench.main(
        [
            "--speed",
            "--speed-rows",
            "5000",
            "--speed-d-sae",
            "256",
            "--speed-top-k",
            "8",
            "--speed-obs",
            "1000",
            "--speed-repeats",
            "5",
            "--out",
            str(out),
        ]
    )
    assert res["observations"] >= 1000 and res["select_update_ms_median"] > 0
    assert res["update_with_refit_inline_s"] > 0 and res["background_refit_s"] > 0
    assert json.loads(out.read_text())["results"]["pool_rows"] == 5000
