"""The SAERL-vs-GRPO recipe: a 2-step smoke of every arm (tiny Llama + tiny SAE), its run files and resume, the
selector arm's prior, and the paired analysis checked against independent computations on hand-made run files."""

from __future__ import annotations

import doctest
import json
import math

import numpy as np
import pytest

pytest.importorskip("trl")
pytest.importorskip("reasoning_gym")

RECIPE = "saerl_vs_grpo"  # the recipe fixture (conftest.py) imports recipes/saerl_vs_grpo.py

STEP_COLUMNS = {
    "step",
    "frac_reward_zero_std",
    "reward_mean",
    "reward_std",
    "completions",
    "completions_total",
    "generated_tokens",
    "generated_tokens_total",
    "groups",
    "carrying_groups",
    "carrying_groups_total",
}


def test_docstring_examples(recipe):
    assert doctest.testmod(recipe).failed == 0


def test_ci_smoke_every_arm_writes_its_files_and_resumes(recipe, tmp_path):
    cfg = recipe.PRESETS["ci"]
    steps, per_step = cfg["max_steps"], cfg["prompts_per_step"] * cfg["num_generations"]
    result = recipe.main(["--preset", "ci", "--arms", "all", "--seeds", "0", "--out", str(tmp_path)])
    assert sorted(result["arms"]) == sorted(recipe.ARMS)
    heldout = json.loads((tmp_path / "base_eval.json").read_text())["problems"]
    ids = [p["problem_id"] for p in heldout]
    assert len(ids) == len(set(ids)) > 0  # deduplicated: problems pair one to one
    for arm in recipe.ARMS:
        folder = tmp_path / "runs" / f"{arm}_seed0"
        run = json.loads((folder / "run.json").read_text())
        assert run["arm"] == arm and run["seed"] == 0
        evals = recipe.read_jsonl(folder / "eval.jsonl")
        assert {e["step"] for e in evals} == {0, steps}
        assert all(set(e) == {"step", "problem_id", "family", "correct", "n_tokens"} for e in evals)
        assert sorted(e["problem_id"] for e in evals if e["step"] == steps) == sorted(ids)
        assert all(e["correct"] in (0, 1) and 1 <= e["n_tokens"] <= cfg["max_completion_length"] for e in evals)
        rows = recipe.read_jsonl(folder / "steps.jsonl")
        assert [r["step"] for r in rows] == list(range(1, steps + 1))
        assert all(set(r) >= STEP_COLUMNS for r in rows)
        assert [r["completions_total"] for r in rows] == [per_step * k for k in range(1, steps + 1)]
        for r in rows:  # carrying groups = groups whose rewards are not all equal, from frac_reward_zero_std
            assert r["groups"] == cfg["prompts_per_step"]
            assert r["carrying_groups"] == round(r["groups"] * (1 - r["frac_reward_zero_std"]))
            assert 0 < r["generated_tokens"] <= per_step * cfg["max_completion_length"]
        assert run["totals"]["completions"] == per_step * steps
        if arm in recipe.SELECTOR_ARMS:
            assert "selection/observed_mean" in rows[0] and run["selector_prior"].startswith("none")
    assert (tmp_path / "results.md").is_file() and (tmp_path / "accuracy_vs_completions.png").stat().st_size > 0
    assert all(f"| {arm} | 0 |" in (tmp_path / "results.md").read_text() for arm in recipe.ARMS)

    # Finished runs are skipped; an unfinished one (no run.json) runs again.
    before = (tmp_path / "runs" / "vanilla_seed0" / "run.json").read_text()
    (tmp_path / "runs" / "history_seed0" / "run.json").unlink()
    again = recipe.main(["--preset", "ci", "--arms", "vanilla,history", "--seeds", "0", "--out", str(tmp_path)])
    assert again["meta"]["arms_run_now"] == [["history", 0]]
    assert (tmp_path / "runs" / "vanilla_seed0" / "run.json").read_text() == before
    assert len(again["runs"]) == len(recipe.ARMS)
    # --prepare-only reuses the cached preparation and trains nothing
    prep = recipe.main(["--preset", "ci", "--prepare-only", "--out", str(tmp_path)])
    assert "reloaded_from" in prep["meta"]["prepare"]
    assert (tmp_path / "runs" / "vanilla_seed0" / "run.json").read_text() == before


def test_selector_arm_uses_the_sae_proxy_and_history_does_not(recipe, tmp_path):
    import datasets

    from hf_saerl.estimators import DifficultyProbe

    n = 40
    data = {
        "sae_indices": [[i % 5, 5 + i % 3] for i in range(n)],
        "sae_values": [[1.0, 1.0]] * n,
        "cluster_id": [i % 2 for i in range(n)],
    }
    ds = datasets.Dataset.from_dict({"prompt": [f"q{i}" for i in range(n)], **data})
    labelled = ds.add_column("true_pass_rate", [0.1 + 0.2 * (i % 5) for i in range(n)])
    # as prepare() fits it (cv=3, default transform), through the prepared cache's save / load
    DifficultyProbe(8, label="pass_rate", cv=3).fit(labelled, label_column="true_pass_rate").save_pretrained(
        tmp_path / "probe"
    )
    probe = DifficultyProbe.from_pretrained(tmp_path / "probe")
    prepared = {"sets": {"selector": ds, "history": ds}, "probe": probe}
    sel, prior = recipe.make_selector("selector", 3, prepared)
    hist, hprior = recipe.make_selector("history", 3, prepared)
    assert prior == "sae_proxy" and hprior == "none"
    assert sel.prior_mean([0, 4]).round(1).tolist() == [0.1, 0.9]  # the proxy's pass rates
    assert hist.prior_mean([0, 4]).tolist() == [0.5, 0.5]  # Beta(1, 1)
    assert sel.config.seed == hist.config.seed == 3
    assert np.array_equal(sel.cluster_ids, hist.cluster_ids)


def test_pilot_heldout_is_300_distinct_problems(recipe):
    cfg = recipe.PRESETS["pilot"]
    pool, heldout, _ = recipe.build_pool(cfg)
    questions = list(heldout["question"])
    assert len(questions) == len(set(questions)) == 300
    assert not set(questions) & set(pool["question"])  # never trained on
    assert len(set(heldout["problem_id"])) == 300
    assert sorted(set(heldout["family"])) == sorted(recipe.pool_families(cfg))
    assert len(pool) == 6 * cfg["pool_per_family"] + round(cfg["noise_fraction"] * 6 * cfg["pool_per_family"])
    assert all(p[0]["content"].endswith("Answer with only the final answer.") for p in heldout["prompt"])


def test_balanced_take_round_robin_over_families(recipe):
    families = ["a"] * 5 + ["b"] * 2 + ["c"] * 5
    rows = list(range(12))
    # round-robin a, b, c, a, b, c, a, (b empty) c, a: a takes 4, b its 2, c 3
    assert recipe.balanced_take(rows, families, 9) == [0, 1, 2, 3, 5, 6, 7, 8, 9]
    assert recipe.balanced_take(rows[::2], families, 3) == [0, 6, 8]  # only the rows given, in their order
    with pytest.raises(ValueError, match="Raise heldout_per_family"):
        recipe.balanced_take(rows, families, 13)


def test_seeds_and_arms_take_commas(recipe):
    args = recipe.parse_args(["--seeds", "0,1", "3", "--arms", "pilot"])
    assert args.seeds == [0, 1, 3] and args.arms == list(recipe.PILOT_ARMS)
    assert recipe.parse_args(["--arms", "vanilla,selector"]).arms == ["vanilla", "selector"]
    with pytest.raises(SystemExit):
        recipe.parse_args(["--arms", "curriculum"])
    with pytest.raises(SystemExit):
        recipe.parse_args(["--seeds", "a"])


# ---------------------------------------------------------------------------------------------- analysis
def write_run(out, arm, seed, correct_by_step, carrying, key="k", per_step=16, groups=4):
    """A hand-made finished run: ``correct_by_step`` {step: {problem_id: 0/1}}, ``carrying`` groups per step."""
    folder = out / "runs" / f"{arm}_seed{seed}"
    folder.mkdir(parents=True)
    with (folder / "eval.jsonl").open("w") as f:
        for step, problems in correct_by_step.items():
            for pid, ok in problems.items():
                f.write(
                    json.dumps({"step": step, "problem_id": pid, "family": "f", "correct": ok, "n_tokens": 3}) + "\n"
                )
    total = {"completions": 0, "generated_tokens": 0, "groups": 0, "carrying_groups": 0}
    with (folder / "steps.jsonl").open("w") as f:
        for step, c in enumerate(carrying, start=1):
            row = {"completions": per_step, "generated_tokens": 5 * per_step, "groups": groups, "carrying_groups": c}
            for k, v in row.items():
                total[k] += v
            frac = 1 - c / groups
            f.write(
                json.dumps(
                    {"step": step, "frac_reward_zero_std": frac, "reward_mean": 0.1, "reward_std": 0.1, **row}
                    | {f"{k}_total": v for k, v in total.items()}
                )
                + "\n"
            )
    (folder / "run.json").write_text(json.dumps({"arm": arm, "seed": seed, "config_key": key}))


def test_analysis_by_hand(recipe, tmp_path):
    pids = [f"p{i}" for i in range(10)]
    # seed 0: vanilla right on p0-p4; selector right on p0-p6 except p4 -> b = 2 (p5, p6), c = 1 (p4)
    # seed 1: vanilla right on p0-p1; selector right on p0-p3 -> b = 2 (p2, p3), c = 0
    van = {0: {p: int(i < 5) for i, p in enumerate(pids)}, 1: {p: int(i < 2) for i, p in enumerate(pids)}}
    sel = {0: {p: int(i < 7 and i != 4) for i, p in enumerate(pids)}, 1: {p: int(i < 4) for i, p in enumerate(pids)}}
    zero = dict.fromkeys(pids, 0)
    for s in (0, 1):
        write_run(tmp_path, "vanilla", s, {0: zero, 4: van[s]}, carrying=[1, 1, 0, 2])
        write_run(
            tmp_path, "selector", s, {0: zero, 2: dict.fromkeys(pids, 1) if s == 0 else zero, 4: sel[s]}, [2, 3, 3, 4]
        )
    write_run(tmp_path, "history", 0, {0: zero, 4: van[0]}, [0, 0, 0, 0], key="other")  # other settings: ignored
    result = recipe.analyse(tmp_path, "k", n_boot=500)
    assert {r["arm"] for r in result["runs"]} == {"vanilla", "selector"}
    acc = {(r["arm"], r["seed"]): r["final_accuracy"] for r in result["runs"]}
    assert acc == {("vanilla", 0): 0.5, ("vanilla", 1): 0.2, ("selector", 0): 0.6, ("selector", 1): 0.4}
    p = result["arms"]["selector"]["paired"]
    assert p["per_seed_diff"] == pytest.approx([0.1, 0.2]) and p["mean_diff"] == pytest.approx(0.15)
    assert (p["mcnemar_b_arm_right_baseline_wrong"], p["mcnemar_c_arm_wrong_baseline_right"]) == (4, 1)
    # exact McNemar by hand: two-sided binomial tail of min(b, c) = 1 in n = 5 trials at 1/2
    by_hand = 2 * sum(math.comb(5, k) for k in range(0, 2)) / 2**5
    assert p["mcnemar_p_exact"] == pytest.approx(by_hand)  # 0.375
    # paired t over the two seeds by hand: diffs 0.1, 0.2 -> t = mean / (sd / sqrt 2) with 1 df
    d = np.array([0.1, 0.2])
    t = d.mean() / (d.std(ddof=1) / math.sqrt(2))
    assert p["paired_t_p_seeds"] == pytest.approx(1 - 2 * math.atan(t) / math.pi)  # Cauchy (t, 1 df) two-sided
    # gradient-carrying groups per 1,000 completions: 4 / 64 and 12 / 64
    assert result["arms"]["vanilla"]["carrying_per_1000"]["mean"] == pytest.approx(62.5)
    assert result["arms"]["selector"]["carrying_per_1000"]["mean"] == pytest.approx(187.5)
    assert p["carrying_per_1000_diff"] == pytest.approx(125.0)
    # seed-mean curves: selector 0.5 at step 2 (after 32 completions) >= vanilla's final mean 0.35
    assert result["arms"]["selector"]["to_baseline_final"] == {
        "step": 2,
        "completions": 32.0,
        "generated_tokens": 160.0,
    }
    assert result["arms"]["vanilla"]["to_baseline_final"] == {"step": 4, "completions": 64.0, "generated_tokens": 320.0}
    # CIs: a problem resample never leaves [min, max] of the per-problem mean differences, and contains the mean
    lo, hi = p["ci95_problems"]
    assert lo <= 0.15 <= hi and lo >= -0.5 and hi <= 1.0
    table = (tmp_path / "results.md").read_text()
    assert "| selector | 2 | 50.0 ± 14.1 | +15.0 |" in table and "4 / 1, 0.375" in table
    assert (tmp_path / "accuracy_vs_completions.png").stat().st_size > 0


def test_bootstrap_ci_covers_the_true_difference(recipe):
    # Synthetic paired data with a known difference: the arm is right with probability 0.6, the baseline 0.4,
    # independently, on 400 problems x 4 seeds. The true difference is 0.2.
    rng = np.random.default_rng(1)
    arm = rng.random((4, 400)) < 0.6
    base = rng.random((4, 400)) < 0.4
    diffs = arm.astype(float) - base.astype(float)
    for how in ("problems", "seeds", "both"):
        lo, hi = recipe.paired_bootstrap_ci(diffs, how, n_boot=1000, seed=0)
        assert lo < 0.2 < hi and lo > 0.0, how  # covers the truth and excludes no difference
    # the problem bootstrap's width matches the normal approximation sd(mean) * 2 * 1.96 within 15%
    lo, hi = recipe.paired_bootstrap_ci(diffs, "problems", n_boot=2000, seed=0)
    per_problem = diffs.mean(axis=0)
    normal = 2 * 1.96 * per_problem.std(ddof=1) / math.sqrt(per_problem.size)
    assert (hi - lo) == pytest.approx(normal, rel=0.15)
    # no difference: a CI around 0
    same = np.zeros((3, 50))
    assert recipe.paired_bootstrap_ci(same, "both", n_boot=100) == (0.0, 0.0)
