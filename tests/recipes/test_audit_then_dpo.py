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


def test_each_preset_accumulates_micro_batches_up_to_its_pairs_per_step(recipe):
    for name, cfg in recipe.PRESETS.items():
        micro, accumulation = recipe.micro_batches(cfg)
        assert micro == cfg["micro_batch_size"] and micro * accumulation == cfg["batch_size"], name
    assert recipe.micro_batches(recipe.PRESETS["cpu"]) == (1, 4)  # one pair per forward: the memory bound
    assert recipe.PRESETS["cpu"]["logprob_vocab_chunk"] == 4096
    for bad in (3, 0, 5):
        with pytest.raises(ValueError, match="positive divisor of batch_size=4"):
            recipe.micro_batches({"batch_size": 4, "micro_batch_size": bad})


def test_micro_batches_and_narrow_logprob_tiles_train_exactly_as_one_batch(recipe, tmp_path):
    """4 pairs per step as one batch with TRL's LM-head tiles, or as 4 accumulated micro-batches with tiles of 16
    vocabulary entries (the cpu preset's memory settings): the same losses, step by step, and the same weights, up to
    float rounding (pairs of different lengths, so each micro-batch is padded differently)."""
    import torch
    import trl.trainer.utils as trl_utils

    cfg = dict(recipe.PRESETS["ci"], batch_size=4, epochs=1)
    model, tok, _, pairs, *_ = recipe.load_ci(cfg)
    assert model.config.vocab_size > 3 * 16  # several tiles
    pairs = pairs.select(range(12)).map(lambda r, i: {"chosen": r["chosen"] + " ." * (i % 4)}, with_indices=True)
    pairs = recipe.to_chat(pairs)
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    runs = {}
    for micro, chunk in ((4, 0), (1, 16)):
        settings = {**cfg, "micro_batch_size": micro, "logprob_vocab_chunk": chunk}
        policy, log = recipe.train_dpo(
            model, tok, pairs, settings, str(tmp_path / str(micro)), concept_lambda=None, seed=0, max_steps=3
        )
        assert log["steps"] == 3 and log["gradient_accumulation_steps"] == 4 // micro
        runs[micro] = (log["losses"], {n: p.detach().clone() for n, p in policy.named_parameters()})
    assert trl_utils._CHUNKED_LOGPROB_CHUNK_SIZE == 32768  # restored
    (one, w_one), (acc, w_acc) = runs[4], runs[1]
    assert len(one) == len(acc) == 3 and one[0] == pytest.approx(np.log(2), abs=1e-4)  # the policy starts at the ref
    assert acc == pytest.approx(one, abs=1e-5) and one[-1] < one[0]  # it trained, and the same way
    moved = max(float((w_one[n] - start[n]).abs().max()) for n in w_one)
    apart = max(float((w_one[n] - w_acc[n]).abs().max()) for n in w_one)
    assert moved > 1e-3 and apart < 1e-3 * moved, (moved, apart)
    assert all(torch.equal(p, start[n]) for n, p in model.named_parameters())  # the reference stays untouched


def test_logprob_vocab_chunk_refuses_a_non_positive_width(recipe):
    with pytest.raises(ValueError, match="logprob_vocab_chunk=-1"), recipe.logprob_vocab_chunk(-1):
        pass
