"""The audit -> DPO recipe on its ci preset (tiny Llama + tiny SAE, synthetic pairs in two regions)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("trl")

RECIPE = "audit_then_dpo"  # the recipe fixture (conftest.py) imports recipes/audit_then_dpo.py


def test_ci_preset_end_to_end(recipe, tmp_path):
    results = recipe.main(["--preset", "ci", "--out", str(tmp_path)])
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
