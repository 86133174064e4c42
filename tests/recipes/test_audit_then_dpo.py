"""The audit -> DPO recipe on its ci preset (tiny Llama + tiny SAE, synthetic pairs in two regions)."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("trl")

RECIPE = "audit_then_dpo"  # the recipe fixture (conftest.py) imports recipes/audit_then_dpo.py


def test_ci_preset_end_to_end(recipe, tmp_path):
    run = tmp_path / "seed0"
    results = recipe.main(["--preset", "ci", "--out", str(run)])
    _check_ci_run(recipe, run, results)
    # recipes/rescore_audit.py re-fits the same audit and re-scores the saved rollouts: its share score reproduces
    # the run's own shifts and metrics (another code path: compare_shift on arrays, not validate_shift)
    rescore = _rescore_module()
    out = rescore.main(["--results", str(tmp_path), "--seeds", "0"])
    assert all(check["ok"] for check in out["reproduces_saved_share_shifts"].values())
    assert out["audit"]["matches_saved_tables"] and (tmp_path / "rescore.json").is_file()
    for name in ("dpo", "intervention"):
        saved, again = results["validation"][name]["metrics"], out["per_seed"]["seed0"][name]
        for view in ("all", "flagged", "top", "regions"):
            want = saved[view]["r2"]  # the results' JSON-able summary writes NaN as None
            got = again["share"]["metrics"][view]["r2"]
            assert (want is None and np.isnan(got)) or got == pytest.approx(want, abs=1e-9)
        assert set(again["rate"]["metrics"]) == set(again["share"]["metrics"])
        reliability = again["rate"]["noise"]["reliability"]
        assert np.isnan(reliability) or 0.0 <= reliability <= 1.0


def _rescore_module():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "recipes" / "rescore_audit.py"
    spec = importlib.util.spec_from_file_location("rescore_audit_recipe", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_max_steps_bounds_training_and_peak_rss_is_recorded(recipe, tmp_path):
    results = recipe.main(["--preset", "ci", "--out", str(tmp_path), "--max-steps", "1"])
    assert results["training"]["dpo"]["steps"] == 1 and results["training"]["intervention"]["steps"] == 1
    assert 0 < results["machine"]["peak_rss_gb"] < 64 and results["machine"]["max_steps"] == 1


def _check_ci_run(recipe, tmp_path, results):
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert on_disk["preset"] == "ci" and on_disk["data"]["n_prompts"] == recipe.PRESETS["ci"]["n_prompts"]
    for name in ("dpo", "intervention"):
        metrics = results["validation"][name]["metrics"]
        assert {"all", "flagged", "top", "regions", "regions_flagged"} <= set(metrics)
        assert (tmp_path / f"shift_{name}.png").stat().st_size > 0
    # Each trained model is its own: its rollouts differ from the reference's (the deepcopy pitfall, see fresh_copy)
    reference = json.loads((tmp_path / "rollouts_reference.json").read_text())
    for name in ("dpo", "intervention"):
        assert json.loads((tmp_path / f"rollouts_{name}.json").read_text()) != reference
    # The intervention effect is the table arithmetic: its change is the target's shift difference
    effect = results["intervention_effect"]
    assert effect["change"] == pytest.approx(effect["shift_intervention"] - effect["shift_dpo"])
    dpo_table = {r["concept"]: r for r in json.loads((tmp_path / "dpo_validation.json").read_text())["table"]}
    assert effect["shift_dpo"] == pytest.approx(dpo_table[effect["concept"]]["measured_shift"])
    regional = json.loads((tmp_path / "dpo_validation.json").read_text())["region_table"]
    assert {r["region_name"] for r in regional} <= {"odd", "even"} and regional


def test_a_run_cut_short_resumes_and_other_settings_are_refused(recipe, tmp_path):
    first = recipe.main(["--preset", "ci", "--out", str(tmp_path)])
    (tmp_path / "rollouts_intervention.json").unlink()  # as if cut short before the intervention was sampled
    again = recipe.main(["--preset", "ci", "--out", str(tmp_path)])
    assert again["training"]["dpo"]["resumed"] and "resumed" not in again["training"]["intervention"]
    assert again["validation"]["dpo"]["metrics"] == first["validation"]["dpo"]["metrics"]  # the same rollouts
    with pytest.raises(SystemExit, match="from other settings"):
        recipe.main(["--preset", "ci", "--seed", "1", "--out", str(tmp_path)])
