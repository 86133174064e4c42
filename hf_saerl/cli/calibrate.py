"""``hf-saerl calibrate``: a pilot that measures the policy's pass rates per reasoning-gym task config before RL.

Example:
    hf-saerl calibrate --model embedded --families gcd,products -n 6 --prompts 8 --max-new-tokens 32 \\
        --temperature 0.7 --output ./calibration
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..errors import UsageError
from .common import add_model_args, finite_float, model_spec, positive_int

#: The instruction the pilot appends by default: reasoning-gym's scorer wants the bare answer.
PILOT_INSTRUCTION = "Answer with only the final answer."


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "calibrate",
        help="pilot: the policy's pass rates per reasoning-gym task config, and which configs have graded success",
        description=(
            "Generate --prompts seeded prompts of each reasoning-gym task config, sample -n completions of each from "
            "MODEL, score them with reasoning-gym's own scorer, and print per config the mean pass rate, the share "
            "of prompts never solved, the share in the learnable band (0.1-0.9 by default), tokens and time. The "
            "configs with graded success are the ones an RL pool (and SAERL's difficulty proxy) can learn from."
        ),
        epilog="example: hf-saerl calibrate --model embedded --families gcd,products --config 'gcd:max_value=20' "
        "-n 6 --prompts 8 --max-new-tokens 32 --temperature 0.7 --output ./calibration",
    )
    add_model_args(p.add_argument_group("policy"))
    t = p.add_argument_group("task configs (at least one of --families, --config, --preset)")
    t.add_argument(
        "--families", help="comma-separated reasoning-gym families at their default configs, e.g. gcd,products"
    )
    t.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="FAMILY:KNOB=VALUE,...",
        help="one task config with its difficulty knobs, e.g. 'gcd:max_value=20' or "
        "'basic_arithmetic:max_terms=2,operators=+|-' (repeatable)",
    )
    t.add_argument(
        "--preset",
        choices=["pilot"],
        help="pilot: the 17 configs of the SmolLM2 pilot (hf_saerl.rollouts.calibration.PILOT_CONFIGS)",
    )
    t.add_argument(
        "--only",
        metavar="NAME,...",
        help="with --preset: run only these of its configs (comma-separated names), in this order",
    )
    s = p.add_argument_group("sampling")
    s.add_argument("--prompts", type=positive_int, default=8, help="prompts per config (default: 8)")
    s.add_argument("-n", type=positive_int, default=6, help="samples per prompt (default: 6)")
    s.add_argument("--max-new-tokens", type=positive_int, default=32, help="tokens per completion (default: 32)")
    s.add_argument("--temperature", type=finite_float, default=0.7, help="0 is greedy (default: 0.7)")
    s.add_argument(
        "--instruction",
        default=PILOT_INSTRUCTION,
        help=f"appended to each prompt ('{{prompt}}' makes it a template); default: {PILOT_INSTRUCTION!r}",
    )
    s.add_argument("--no-instruction", action="store_true", help="append no instruction")
    s.add_argument("--seed", type=int, default=0, help="seed of the prompts and the samples (default: 0)")
    s.add_argument("--batch-size", type=positive_int, default=32, help="sequences per generate call (default: 32)")
    s.add_argument("--device", help="e.g. cpu, cuda:0 (default: the first GPU, else CPU)")
    g = p.add_argument_group("graded success")
    g.add_argument(
        "--band",
        type=finite_float,
        nargs=2,
        default=(0.1, 0.9),
        metavar=("LOW", "HIGH"),
        help="the learnable band of pass rates (default: 0.1 0.9)",
    )
    g.add_argument(
        "--min-share-in-band",
        type=finite_float,
        default=0.25,
        help="a config is graded when its mean is in the band and this share of its prompts is (default: 0.25)",
    )
    p.add_argument(
        "-o",
        "--output",
        type=Path,
        help="folder for calibration.json (settings, table, every prompt's label) and calibration.md",
    )
    p.set_defaults(func=run)


def task_configs(args: argparse.Namespace) -> list[Any]:
    """The task configs the arguments name, in order: the preset's, then ``--families``, then each ``--config``."""
    from ..rollouts.calibration import PILOT_CONFIGS, parse_task_config

    configs: list[Any] = list(PILOT_CONFIGS) if args.preset == "pilot" else []
    if args.only:
        if not configs:
            raise UsageError("--only picks configs of a preset; add --preset pilot.")
        by_name = {t.name: t for t in configs}
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in by_name]
        if unknown:
            raise UsageError(
                f"--only names {unknown}, which the preset does not hold; its configs are {sorted(by_name)}."
            )
        configs = [by_name[n] for n in names]
    configs += [f.strip() for f in (args.families or "").split(",") if f.strip()]
    configs += list(args.config)
    if not configs:
        raise UsageError(
            "name at least one task config: --families gcd,products, --config 'gcd:max_value=20', or --preset pilot."
        )
    return [parse_task_config(c) for c in configs]


def run(args: argparse.Namespace) -> int:
    """Run the pilot as the arguments say; prints the table (and saves it with ``--output``)."""
    from ..rollouts.calibration import calibrate_pool

    configs = task_configs(args)
    model, gguf_file = model_spec(args.model, args.gguf_file)
    options = {
        "gguf_file": gguf_file,
        "revision": args.revision,
        "n": args.n,
        "max_new_tokens": args.max_new_tokens,
        "temperature": args.temperature,
        "instruction": None if args.no_instruction else args.instruction,
        "seed": args.seed,
        "batch_size": args.batch_size,
        "device": args.device,
    }

    done: list[dict[str, Any]] = []

    def progress(row: Any) -> None:
        done.append(row.to_dict(rows=True))
        if args.output is not None:  # a run stopped early keeps the configs measured so far
            args.output.mkdir(parents=True, exist_ok=True)
            (args.output / "calibration.partial.json").write_text(json.dumps({"configs": done}, indent=1) + "\n")
        print(
            f"{row.task.name}: mean pass rate {row.mean_pass_rate:.3f}, in band {row.share_in_band:.0%}, "
            f"never solved {row.share_never:.0%} ({row.seconds:.0f} s)",
            file=sys.stderr,
            flush=True,
        )

    result = calibrate_pool(
        model,
        configs,
        args.prompts,
        seed=args.seed,
        band=tuple(args.band),
        min_share_in_band=args.min_share_in_band,
        labeller_options=options,
        on_config=progress,
    )
    print(result.to_markdown())
    graded = [t.name for t in result.graded]
    print(f"\nGraded success ({len(graded)} of {len(configs)}): {', '.join(graded) or 'none'}")
    if args.output is not None:
        path = result.save(args.output)
        (args.output / "calibration.partial.json").unlink(missing_ok=True)
        print(f"Saved the table and every prompt's label to {path}")
    else:
        print(json.dumps({"graded": graded}))
    return 0
