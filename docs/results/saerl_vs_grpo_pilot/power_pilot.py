"""Re-estimate the decisive run's power from the pilot's per-problem files (issue 24's procedure step).

Reads every finished run under ``runs/`` (``run.json`` present) and, for each arm against ``vanilla`` on the seeds
both have, writes ``power_pilot.json``:

* **Better** (final greedy held-out accuracy, points): the paired difference per seed; its measurement variance
  within a seed (the variance of the per-problem differences, 1 / 0 / -1, over the problems, divided by their
  number: what more held-out problems shrink); the spread of the per-seed differences; the training variance as
  what that spread leaves beyond measurement (floored at 0); and the seeds needed for 80% power at +3 points with a
  paired t-test over seeds, at the pilot's held-out size. With two seeds the spread has one degree of freedom, so
  an upper bound is also given: the training variance set to its one-sided 80% upper confidence limit
  (chi-square), which is the figure to plan with.
* **Cheaper** (gradient-carrying groups per 1,000 generated completions, from TRL's ``frac_reward_zero_std``): the
  paired difference per seed and, within a run, its binomial standard error over the run's groups.

Paired two-sided t-test at alpha = 0.05, power from the noncentral t distribution (the method of
``docs/results/saerl_vs_grpo_cpu/power.py``).

Run: python docs/results/saerl_vs_grpo_pilot/power_pilot.py [--out DIR]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

import numpy as np
from scipy import stats

HERE = Path(__file__).resolve().parent
ALPHA, TARGET_POWER, EFFECT = 0.05, 0.80, 3.0  # points of accuracy (as in power.py, whose functions are used)


def _power_tools():
    """``power``, ``seeds_needed`` and ``min_detectable`` of the CPU run's ``power.py``: one method for both."""
    spec = importlib.util.spec_from_file_location("svg_cpu_power", HERE.parent / "saerl_vs_grpo_cpu" / "power.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.power, module.seeds_needed, module.min_detectable


power, seeds_needed, min_detectable = _power_tools()


def load_runs(out: Path) -> dict[tuple[str, int], dict]:
    runs = {}
    for folder in sorted((out / "runs").iterdir()):
        if not (folder / "run.json").is_file():
            continue  # unfinished: not a result
        run = json.loads((folder / "run.json").read_text())
        evals = [json.loads(line) for line in (folder / "eval.jsonl").read_text().splitlines() if line.strip()]
        steps = [json.loads(line) for line in (folder / "steps.jsonl").read_text().splitlines() if line.strip()]
        last = max(e["step"] for e in evals)
        run["final"] = {e["problem_id"]: int(e["correct"]) for e in evals if e["step"] == last}
        run["final_step"] = last
        run["groups"] = sum(s["groups"] for s in steps)
        run["carrying"] = sum(s["carrying_groups"] for s in steps)
        run["completions"] = sum(s["completions"] for s in steps)
        runs[(run["arm"], int(run["seed"]))] = run
    return runs


def compare(runs: dict, arm: str, baseline: str = "vanilla") -> dict:
    seeds = sorted(s for (a, s) in runs if a == arm and (baseline, s) in runs)
    per_seed, meas_var = [], []
    cheaper = []
    for s in seeds:
        mine, theirs = runs[(arm, s)], runs[(baseline, s)]
        problems = sorted(set(mine["final"]) & set(theirs["final"]))
        d = np.array([mine["final"][p] - theirs["final"][p] for p in problems], dtype=float)
        per_seed.append(
            {
                "seed": s,
                "problems": len(problems),
                "acc_arm": round(100 * np.mean([mine["final"][p] for p in problems]), 2),
                "acc_baseline": round(100 * np.mean([theirs["final"][p] for p in problems]), 2),
                "diff_points": round(100 * d.mean(), 2),
                "discordant": {"arm_only": int((d > 0).sum()), "baseline_only": int((d < 0).sum())},
            }
        )
        meas_var.append(1e4 * d.var(ddof=1) / len(d))
        rates = []
        for run in (mine, theirs):
            p = run["carrying"] / run["groups"]
            rates.append((1000 * run["carrying"] / run["completions"], 1000 * np.sqrt(p * (1 - p) / run["groups"])))
        groups_per_completion = mine["groups"] / mine["completions"]
        cheaper.append(
            {
                "seed": s,
                "carrying_per_1k_arm": round(rates[0][0], 1),
                "carrying_per_1k_baseline": round(rates[1][0], 1),
                "diff": round(rates[0][0] - rates[1][0], 1),
                "se_within_run": round(float(np.hypot(rates[0][1], rates[1][1]) * groups_per_completion), 1),
            }
        )
    out: dict = {"arm": arm, "baseline": baseline, "seeds": seeds, "better": {"per_seed": per_seed}}
    out["cheaper"] = {"per_seed": cheaper}
    if not seeds:
        return out
    n_problems = per_seed[0]["problems"]
    diffs = np.array([p["diff_points"] for p in per_seed])
    meas = float(np.mean(meas_var))
    better = out["better"]
    better.update(mean_diff_points=round(float(diffs.mean()), 2), measurement_sd_points=round(np.sqrt(meas), 2))
    if len(seeds) > 1:
        total = float(diffs.var(ddof=1))
        df = len(seeds) - 1
        train = max(total - meas, 0.0)
        # one-sided 80% upper confidence limit of the total variance (chi-square, df = seeds - 1), minus measurement
        train_upper = max(total * df / stats.chi2.ppf(0.20, df) - meas, 0.0)
        sd_point, sd_upper = np.sqrt(train + meas), np.sqrt(train_upper + meas)
        better.update(
            sd_between_seeds_points=round(np.sqrt(total), 2),
            training_sd_points=round(np.sqrt(train), 2),
            training_sd_points_upper80=round(np.sqrt(train_upper), 2),
            seeds_for_80pct_power_at_3_points={
                f"{n_problems}_problems_point_estimate": seeds_needed(sd_point, EFFECT),
                f"{n_problems}_problems_upper80": seeds_needed(sd_upper, EFFECT),
            },
            min_detectable_difference_80pct={
                str(n): {
                    "point_estimate": round(min_detectable(n, sd_point), 1),
                    "upper80": round(min_detectable(n, sd_upper), 1),
                }
                for n in (len(seeds), 4, 8, 12, 16)
                if n >= 2
            },
        )
        c = np.array([x["diff"] for x in cheaper])
        out["cheaper"].update(mean_diff=round(float(c.mean()), 1), sd_between_seeds=round(float(c.std(ddof=1)), 1))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=HERE, help="the recipe's --out folder (default: this one)")
    args = parser.parse_args()
    runs = load_runs(args.out)
    arms = sorted({a for a, _ in runs if a != "vanilla"})
    result = {
        "source": "runs/*/eval.jsonl (final evaluated step) and steps.jsonl of every finished run",
        "alpha": ALPHA,
        "target_power": TARGET_POWER,
        "effect_points": EFFECT,
        "runs": sorted(f"{a}_seed{s}" for a, s in runs),
        "comparisons": [compare(runs, arm) for arm in arms],
    }
    (args.out / "power_pilot.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
