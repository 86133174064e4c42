"""Extra views of the recipe's results.json (python analyse.py results.json > analysis.json): per-seed paired
differences vs vanilla, the mean greedy accuracy over steps 5-20, seed-mean curves."""

import json
import sys

import numpy as np

with open(sys.argv[1]) as f:
    res = json.load(f)
runs = res["runs"]
by = {(r["arm"], r["seed"]): r for r in runs}
arms = ["vanilla", "saerl", "saerl_nomix", "saerl_fullmix", "oracle"]
seeds = sorted({r["seed"] for r in runs})
out = {}
for arm in arms:
    rows = [by[(arm, s)] for s in seeds if (arm, s) in by]
    if not rows:
        continue
    fin = np.array([r["eval"][-1]["greedy"] for r in rows]) * 100
    fins = np.array([r["eval"][-1]["sampled"] for r in rows]) * 100
    auc = np.array([np.mean([e["greedy"] for e in r["eval"][1:]]) for r in rows]) * 100
    diff = [
        100 * (by[(arm, s)]["eval"][-1]["greedy"] - by[("vanilla", s)]["eval"][-1]["greedy"])
        for s in seeds
        if (arm, s) in by and ("vanilla", s) in by
    ]
    curve = {e["step"]: [] for e in rows[0]["eval"]}
    for r in rows:
        for e in r["eval"]:
            curve[e["step"]].append(100 * e["greedy"])
    out[arm] = {
        "seeds": [r["seed"] for r in rows],
        "final_greedy": fin.round(1).tolist(),
        "final_greedy_mean_sd": [round(fin.mean(), 1), round(fin.std(ddof=1), 1) if len(fin) > 1 else None],
        "final_sampled_mean_sd": [round(fins.mean(), 1), round(fins.std(ddof=1), 1) if len(fins) > 1 else None],
        "mean_greedy_steps5_20": [round(auc.mean(), 1), round(auc.std(ddof=1), 1) if len(auc) > 1 else None],
        "paired_final_minus_vanilla_per_seed": [round(d, 1) for d in diff],
        "paired_mean": round(float(np.mean(diff)), 1) if diff else None,
        "mean_curve_greedy": {k: round(float(np.mean(v)), 1) for k, v in curve.items()},
        "wall_s": [round(r["wall_s"]) for r in rows],
        "train_s_per_step": [round(r["train_s_per_step"], 1) for r in rows],
        "final_train_reward_mean": round(
            float(np.mean([np.mean([x["reward"] for x in r["train_reward"][-5:]]) for r in rows])), 3
        ),
    }
print(json.dumps(out, indent=1))
