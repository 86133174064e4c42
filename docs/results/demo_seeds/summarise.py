"""Summarise fresh-clone demo runs (one ``report.json`` per seed) into a per-seed table and mean ± sd.

    python docs/results/demo_seeds/summarise.py docs/results/demo_seeds/seed0 docs/results/demo_seeds/seed1 ...

Writes ``summary.json`` and ``summary.md`` next to this script. Each run folder holds the demo's ``report.json``
and ``time_v.txt`` (GNU time's output: wall time and peak memory) and ``loadavg_start.txt`` / ``loadavg_end.txt``,
and ``pool_saerl.parquet`` (the pool with its labels and SAE features).

How much of the proxy's ranking is *which task* a prompt belongs to? From each run's ``pool_saerl.parquet`` this
re-fits the SAE-feature proxy on the training rows (the demo's settings) and reports, out of fold, its Spearman
within each task (mean over tasks) beside a baseline that knows nothing but the task: each prompt predicted by the
mean label of its task in the other folds.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).parent

ROWS = [
    ("difficulty Spearman, out of fold: SAE", ("metrics", "difficulty", "spearman")),
    ("difficulty Spearman, out of fold: raw", ("metrics", "difficulty", "baseline", "spearman")),
    ("difficulty Spearman, out of fold: SAE + raw", ("metrics", "difficulty", "both", "spearman")),
    ("difficulty Spearman, out of fold: length", ("metrics", "difficulty", "length_baseline", "spearman")),
    ("held-out Spearman (proxy used for the curriculum)", ("pool", "holdout", "spearman")),
    (
        "task-level Spearman, measured vs predicted (unlabelled)",
        ("pool", "spearman_task_measured_vs_predicted_unlabelled"),
    ),
    ("labelled: mean pass rate", ("pool", "mean_pass_rate_labelled")),
    ("labelled: share never solved", ("pool", "fraction_labelled_never_solved")),
    ("labelled: share with posterior mean in [0.1, 0.9]", ("pool", "labels", "fraction_in_band_0.1_0.9")),
    ("labelled: samples per prompt (mean)", ("pool", "labels", "samples_per_prompt", "mean")),
    ("failed samples: wrong answer", ("pool", "labels", "failed_share", "wrong")),
    ("failed samples: no extractable answer", ("pool", "labels", "failed_share", "no_answer")),
    ("failed samples: cut off at the token limit", ("pool", "labels", "failed_share", "truncated")),
    ("curriculum Spearman(batch, difficulty)", ("curriculum", "spearman_batch_vs_difficulty")),
    ("quality AUROC: SAE", ("metrics", "quality", "auroc")),
    ("quality AUROC: raw", ("metrics", "quality", "baseline", "auroc")),
    ("CHAMP topic accuracy: SAE", ("metrics", "topic", "accuracy")),
    ("CHAMP topic accuracy: raw", ("metrics", "topic", "baseline", "accuracy")),
    ("CHAMP cluster NMI vs category: SAE", ("metrics", "clusters", "nmi")),
    ("CHAMP cluster NMI vs category: raw", ("metrics", "clusters", "baseline", "nmi")),
    ("CHAMP difficulty Spearman (other models' pass rates): SAE", ("metrics", "difficulty_champ", "spearman")),
    (
        "CHAMP difficulty Spearman (other models' pass rates): raw",
        ("metrics", "difficulty_champ", "baseline", "spearman"),
    ),
    ("SAE explained variance", ("sae", "explained_variance")),
    ("SAE dead latents (share)", ("sae", "dead_fraction")),
    ("label generation tokens/s", ("pool", "cost", "generation_tokens_per_second")),
    ("proxy vs labels: times cheaper", ("pool", "cost", "label_to_proxy_ratio")),
    ("stage seconds: SAE (collect + train)", ("timings_seconds", "SAE")),
    ("stage seconds: rollout labels", ("timings_seconds", "rollout labels")),
    ("stage seconds: total", ("timings_seconds", "total")),
]


def _get(d, keys):
    for k in keys:
        if not isinstance(d, dict) or d.get(k) is None:
            return None
        d = d[k]
    return d


def _wall_and_rss(run: Path) -> tuple[float | None, float | None]:
    path = run / "time_v.txt"
    if not path.is_file():
        return None, None
    wall = rss = None
    for line in path.read_text().splitlines():
        line = line.strip()
        if line.startswith("Elapsed (wall clock)"):
            parts = [float(p) for p in line.rsplit(" ", 1)[1].split(":")]
            wall = sum(p * 60**i for i, p in enumerate(reversed(parts)))
        elif line.startswith("Maximum resident set size"):
            rss = int(line.rsplit(" ", 1)[1]) / 1024**2
    return wall, rss


def _load(run: Path) -> str:
    parts = [(run / f"loadavg_{w}.txt") for w in ("start", "end")]
    return " / ".join(p.read_text().split()[0] if p.is_file() else "?" for p in parts)


def within_task(run: Path, report: dict) -> dict[str, float | None]:
    """Out-of-fold Spearman of the SAE-feature proxy overall and within each task (mean over tasks), and of the
    task-mean baseline, on the run's training rows."""
    import numpy as np
    import pandas as pd
    from scipy.stats import spearmanr
    from sklearn.model_selection import KFold

    from hf_saerl import DifficultyProbe

    pool = pd.read_parquet(run / "pool_saerl.parquet")
    train = pool[pool["split"] == "train"].reset_index(drop=True)
    config = report["config"]
    y = train["pass_rate"].to_numpy(np.float64)
    w = train["n_samples"].to_numpy(np.float64)
    data = {c: train[c].map(list).tolist() for c in ("sae_indices", "sae_values")}
    data["sae_n_tokens"] = train["sae_n_tokens"].tolist()
    probe = DifficultyProbe(
        report["sae"]["d_sae"], label="pass_rate", n_alphas=20, cv=config["cv"], random_state=config["seed"]
    ).fit(data, y, sample_weight=w)
    oof = probe.cv_predictions_
    task_mean = np.empty_like(y)
    tasks = train["task"].to_numpy()
    for fit_rows, test_rows in KFold(config["cv"], shuffle=True, random_state=config["seed"]).split(y):
        for task in np.unique(tasks[test_rows]):
            seen = fit_rows[tasks[fit_rows] == task]
            rows = test_rows[tasks[test_rows] == task]
            task_mean[rows] = np.average(y[seen], weights=w[seen]) if len(seen) else np.average(y, weights=w)

    def rho(a, b):
        return None if np.ptp(a) == 0 or np.ptp(b) == 0 else float(spearmanr(a, b)[0])

    per_task = [rho(y[tasks == t], oof[tasks == t]) for t in np.unique(tasks)]
    per_task = [r for r in per_task if r is not None]
    return {
        "sae_oof_spearman_refit": rho(y, oof),
        "sae_oof_spearman_within_task_mean": float(np.mean(per_task)) if per_task else None,
        "task_mean_baseline_oof_spearman": rho(y, task_mean),
    }


def main(runs: list[Path]) -> None:
    reports = {run.name: json.loads((run / "report.json").read_text()) for run in runs}
    decomposition = {run.name: within_task(run, reports[run.name]) for run in runs}
    table = {}
    for name, keys in ROWS:
        values = {seed: _get(r, keys) for seed, r in reports.items()}
        present = [float(v) for v in values.values() if v is not None]
        table[name] = {
            "per_run": values,
            "mean": statistics.fmean(present) if present else None,
            "sd": statistics.stdev(present) if len(present) > 1 else None,
        }
    for key, label in (
        ("sae_oof_spearman_refit", "re-fit SAE proxy: Spearman out of fold, all training prompts"),
        ("sae_oof_spearman_within_task_mean", "re-fit SAE proxy: Spearman out of fold within a task (mean)"),
        ("task_mean_baseline_oof_spearman", "baseline knowing only the task: Spearman out of fold"),
    ):
        values = {k: v[key] for k, v in decomposition.items()}
        present = [v for v in values.values() if v is not None]
        table[label] = {
            "per_run": values,
            "mean": statistics.fmean(present) if present else None,
            "sd": statistics.stdev(present) if len(present) > 1 else None,
        }
    extra = {run.name: dict(zip(("wall_seconds", "peak_rss_gib"), _wall_and_rss(run), strict=True)) for run in runs}
    for key in ("wall_seconds", "peak_rss_gib"):
        present = [v[key] for v in extra.values() if v[key] is not None]
        table[key] = {
            "per_run": {k: v[key] for k, v in extra.items()},
            "mean": statistics.fmean(present) if present else None,
            "sd": statistics.stdev(present) if len(present) > 1 else None,
        }
    seeds = {name: r["config"]["seed"] for name, r in reports.items()}
    out = {"runs": [str(r) for r in runs], "seeds": seeds, "load": {r.name: _load(r) for r in runs}, "table": table}
    proxies = {n: _get(r, ("pool", "proxy", "feature_set")) for n, r in reports.items()}
    out["proxy_feature_set"] = proxies
    (HERE / "summary.json").write_text(json.dumps(out, indent=2))

    def fmt(v):
        return "—" if v is None else f"{v:.3f}" if abs(v) < 10 else f"{v:.0f}"

    names = list(reports)
    lines = [
        "| metric | " + " | ".join(f"{n} (seed {seeds[n]})" for n in names) + " | mean ± sd |",
        "|---|" + "---|" * (len(names) + 1),
    ]
    for name, row in table.items():
        cells = " | ".join(fmt(row["per_run"][n]) for n in names)
        spread = "—" if row["mean"] is None else f"{fmt(row['mean'])} ± {fmt(row['sd'])}"
        lines.append(f"| {name} | {cells} | {spread} |")
    lines.append("| the curriculum's proxy reads | " + " | ".join(str(proxies[n]) for n in names) + " | |")
    lines.append("| load average (start / end) | " + " | ".join(out["load"][n] for n in names) + " | |")
    (HERE / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main([Path(p) for p in sys.argv[1:]])
