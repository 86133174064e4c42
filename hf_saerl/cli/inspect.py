"""``hf-saerl inspect``: print a pipeline's model card and config.json (nothing is run).

Example:
    hf-saerl inspect ./my-pipeline --json
"""

from __future__ import annotations

import argparse
import json

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "inspect",
        help="print a pipeline's model card and config",
        description="Check a pipeline (a local folder or a Hub model repo) and print its README model card and its "
        "config.json (model, SAE, hook, widths, pooling, columns, versions). Nothing is run.",
        epilog="example: hf-saerl inspect your-name/my-pipeline --json",
    )
    p.add_argument("pipeline", help="the pipeline: a local folder or a Hub model repo id")
    p.add_argument("--revision", help="revision of the pipeline repo on the Hub")
    p.add_argument("--json", action="store_true", help="print only config.json (machine-readable)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the card and the config of a checked pipeline."""
    from ..pipeline.bundle import CARD_NAME, CONFIG_NAME, bundle_folder, check_bundle

    folder = bundle_folder(args.pipeline, revision=args.revision)
    config = check_bundle(folder)
    text = json.dumps(config, indent=2, sort_keys=True)
    if args.json:
        print(text)
        return 0
    card = folder / CARD_NAME
    print(card.read_text(encoding="utf-8") if card.is_file() else f"(no {CARD_NAME} in {args.pipeline})")
    print(f"\n===== {CONFIG_NAME} =====\n{text}")
    return 0
