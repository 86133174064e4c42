"""Power of the SAERL-vs-GRPO comparison, from the variance the CPU runs measured (issue 24's design step).

Reads ``analysis.json`` (final greedy held-out accuracy per arm and seed, 71 problems) and writes ``power.json``:

* the seed-to-seed sd of one arm's final accuracy, pooled over the five arms;
* the sd of the paired difference (arm minus vanilla, same seed), over the four arms x three seeds;
* the power the 3-seed design had for the paper's +3 points, and its minimal detectable difference (80% power);
* the seeds needed for 80% power at +3 points with 71 and with 300 held-out problems. How much of the paired sd
  more problems remove is not identified by these files (they keep no per-problem correctness), so two bounds are
  given: "all training noise" (more problems do not help) and "all measurement noise" (the variance falls as
  71/N). The truth lies between.

Paired two-sided t-test at alpha = 0.05, power from the noncentral t distribution.

Run: python docs/results/saerl_vs_grpo_cpu/power.py
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from scipy import stats

HERE = Path(__file__).resolve().parent
ALPHA, TARGET_POWER, EFFECT = 0.05, 0.80, 3.0  # points of accuracy
N_OLD, N_NEW = 71, 300


def power(n: int, sd: float, effect: float) -> float:
    """Power of a two-sided paired t-test with ``n`` pairs, sd of a difference ``sd``, true difference ``effect``."""
    df = n - 1
    t_crit = stats.t.ppf(1 - ALPHA / 2, df)
    nc = effect / (sd / np.sqrt(n))
    return float(1 - stats.nct.cdf(t_crit, df, nc) + stats.nct.cdf(-t_crit, df, nc))


def seeds_needed(sd: float, effect: float, limit: int = 2000) -> int:
    return next(n for n in range(2, limit) if power(n, sd, effect) >= TARGET_POWER)


def min_detectable(n: int, sd: float) -> float:
    lo, hi = 0.0, 100.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if power(n, sd, mid) < TARGET_POWER else (lo, mid)
    return hi


def main() -> None:
    analysis = json.loads((HERE / "analysis.json").read_text())
    finals = {arm: np.asarray(v["final_greedy"], dtype=float) for arm, v in analysis.items()}
    n_seeds = len(finals["vanilla"])
    within = np.mean([np.var(v, ddof=1) for v in finals.values()])
    diffs = np.concatenate([finals[a] - finals["vanilla"] for a in finals if a != "vanilla"])
    sd_diff = float(np.std(diffs, ddof=1))
    scale = N_OLD / N_NEW
    out = {
        "source": "analysis.json (5 arms x seeds 0, 1, 2; 71 held-out problems; final greedy accuracy in points)",
        "alpha": ALPHA,
        "target_power": TARGET_POWER,
        "effect_points": EFFECT,
        "sd_one_arm_pooled": round(float(np.sqrt(within)), 2),
        "paired_differences": [round(float(d), 1) for d in diffs],
        "sd_paired_difference": round(sd_diff, 2),
        "old_design": {
            "seeds": n_seeds,
            "problems": N_OLD,
            "power_at_3_points": round(power(n_seeds, sd_diff, EFFECT), 3),
            "min_detectable_difference_80pct": round(min_detectable(n_seeds, sd_diff), 1),
        },
        "seeds_for_80pct_power_at_3_points": {
            f"{N_OLD}_problems": seeds_needed(sd_diff, EFFECT),
            f"{N_NEW}_problems_all_training_noise": seeds_needed(sd_diff, EFFECT),
            f"{N_NEW}_problems_all_measurement_noise": seeds_needed(sd_diff * np.sqrt(scale), EFFECT),
        },
        "min_detectable_difference_80pct_by_seeds": {
            str(n): {
                f"{N_OLD}_problems": round(min_detectable(n, sd_diff), 1),
                f"{N_NEW}_problems_all_measurement_noise": round(min_detectable(n, sd_diff * np.sqrt(scale)), 1),
            }
            for n in (4, 6, 8, 12, 16, 24)
        },
    }
    (HERE / "power.json").write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
