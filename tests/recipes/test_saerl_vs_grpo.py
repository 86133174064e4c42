"""The SAERL-vs-GRPO recipe: a 2-step smoke of every arm (tiny Llama + tiny SAE) and its summary arithmetic."""

from __future__ import annotations

import doctest
import json

import pytest

pytest.importorskip("trl")
pytest.importorskip("reasoning_gym")

RECIPE = "saerl_vs_grpo"  # the recipe fixture (conftest.py) imports recipes/saerl_vs_grpo.py


def test_docstring_examples(recipe):
    assert doctest.testmod(recipe).failed == 0


def test_ci_smoke_every_arm(recipe, tmp_path):
    result = recipe.main(["--preset", "ci", "--arms", "all", "--seeds", "0", "--out", str(tmp_path)])
    steps = recipe.PRESETS["ci"]["max_steps"]
    assert sorted(result["summary"]) == sorted(recipe.ARMS)
    for run in result["runs"]:
        assert run["eval"][0]["step"] == 0 and run["eval"][-1]["step"] == steps
        assert len(run["train_reward"]) == steps
        assert all(0.0 <= e[m] <= 1.0 for e in run["eval"] for m in ("greedy", "sampled"))
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert on_disk["meta"]["preset"] == "ci" and len(on_disk["runs"]) == len(recipe.ARMS)
    table = (tmp_path / "results.md").read_text()
    assert all(f"| {arm} |" in table for arm in recipe.ARMS)
    assert (tmp_path / "accuracy.png").stat().st_size > 0
    # Same settings again: the existing runs are kept, not recomputed.
    again = recipe.main(["--preset", "ci", "--arms", "vanilla", "--seeds", "0", "--out", str(tmp_path)])
    assert again["meta"]["arms_run_now"] == [] and len(again["runs"]) == len(recipe.ARMS)


def _run(arm, seed, curve):
    return {
        "arm": arm,
        "seed": seed,
        "eval": [{"step": s, "greedy": g, "sampled": g} for s, g in curve],
        "train_reward": [{"step": 1, "reward": 0.5}],
        "wall_s": 10.0,
        "train_s_per_step": 1.0,
    }


def test_summary_steps_to_target_and_sd(recipe):
    records = [
        _run("vanilla", 0, [(0, 0.1), (5, 0.2), (10, 0.3)]),
        _run("vanilla", 1, [(0, 0.1), (5, 0.2), (10, 0.5)]),
        _run("saerl", 0, [(0, 0.1), (5, 0.4), (10, 0.45)]),
        _run("oracle", 0, [(0, 0.1), (5, 0.2), (10, 0.2)]),
    ]
    summary = recipe.summarise(records, n_heldout=100)
    assert summary["vanilla"]["final_greedy"]["mean"] == pytest.approx(0.4)
    assert summary["vanilla"]["final_greedy"]["sd"] == pytest.approx(0.1414, abs=1e-3)
    assert summary["saerl"]["final_greedy"]["sd"] is None  # one seed: no sd, never a made-up 0
    assert summary["saerl"]["steps_to_vanilla_final"] == 5
    assert summary["vanilla"]["steps_to_vanilla_final"] == 10
    assert summary["oracle"]["steps_to_vanilla_final"] is None
    table = recipe.markdown(summary, {"preset": "x", "n_heldout": 100, "cfg": {"max_steps": 10}})
    assert "| oracle | 1 | 20.0 |" in table and "not reached" in table and "40.0 ± 14.1" in table


def test_unknown_arm_is_a_usage_error(recipe):
    with pytest.raises(SystemExit):
        recipe.parse_args(["--arms", "curriculum"])
