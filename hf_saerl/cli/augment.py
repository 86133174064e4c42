"""``hf-saerl augment``: run a saved pipeline (a folder or a Hub repo) over a dataset and save the result to disk or
push it, with a dataset card, to the Hub.

Example:
    hf-saerl augment --pipeline ./my-pipeline --data new_prompts.jsonl --output ./curated
    hf-saerl augment --pipeline ./my-pipeline --model embedded --data new_prompts.jsonl --no-filter -o ./all
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, TypedDict

from ..errors import InvalidParameterError, UsageError
from .common import (
    add_data_args,
    add_overwrite_arg,
    add_push_args,
    check_model,
    check_output,
    check_threshold,
    finite_float,
    load_data,
    positive_int,
    save_dataset,
)

__all__ = ["register", "run"]


class _ModelOverride(TypedDict, total=False):
    """The ``--model`` / ``--gguf-file`` keywords passed on to ``SAERLPipeline.from_pretrained``."""

    model: str
    gguf_file: str


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "augment",
        help="run a saved pipeline over a dataset (adds SAE features, quality, difficulty, clusters)",
        description=(
            "Load a pipeline (a folder or a Hub repo written by 'hf-saerl fit' or SAERLPipeline.save_pretrained), "
            "run it over a dataset, and save the augmented (and, with a quality threshold, filtered) dataset to "
            "--output with Dataset.save_to_disk, and/or push it to a Hub dataset repo with a card that records "
            "the pipeline and the filtering."
        ),
        epilog="example: hf-saerl augment --pipeline your-name/my-pipeline --data openai/gsm8k --config main "
        "--split train --output ./gsm8k-curated",
    )
    p.add_argument("--pipeline", required=True, help="the pipeline: a local folder or a Hub model repo id")
    p.add_argument("--pipeline-revision", help="revision of the pipeline repo on the Hub")
    p.add_argument(
        "--model",
        help="load the model from here instead of the id recorded in the pipeline: a folder, "
        "a Hub id, or 'embedded' (e.g. a local copy when the Hub is out of reach)",
    )
    p.add_argument("--gguf-file", help="a GGUF checkpoint inside the --model folder (set for 'embedded')")
    add_data_args(p)
    p.add_argument(
        "--quality-threshold",
        type=finite_float,
        help="keep only rows with quality >= this (overrides the pipeline's own threshold)",
    )
    p.add_argument("--no-filter", action="store_true", help="keep every row, ignoring the pipeline's threshold")
    p.add_argument("--batch-size", type=positive_int, default=256, help="rows per batch (default: 256)")
    p.add_argument("--num-proc", type=positive_int, help="worker processes for the encoding")
    out = p.add_argument_group("output (at least one)")
    out.add_argument("-o", "--output", type=Path, help="folder to save the augmented dataset to (Dataset.save_to_disk)")
    add_overwrite_arg(out)
    add_push_args(out, "push the augmented dataset to this Hub dataset repo, e.g. your-name/my-curated-data")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Augment (and filter) the dataset with the pipeline; prints the rows kept per split."""
    from ..pipeline.pipeline import SAERLPipeline

    if args.output is None and args.push_to is None:
        raise UsageError("pass --output FOLDER and/or --push-to REPO_ID to keep the augmented dataset.")
    if args.no_filter and args.quality_threshold is not None:
        raise UsageError("--no-filter and --quality-threshold contradict each other; pass one.")
    if args.gguf_file and not args.model:
        raise UsageError("--gguf-file names a file inside the --model folder: pass --model too.")
    check_output(args.output, overwrite=args.overwrite, sources=args.data)
    model: _ModelOverride = {}
    if args.model:
        folder, gguf_file = check_model(args.model, args.gguf_file)
        model = {"model": folder}
        if gguf_file:
            model["gguf_file"] = gguf_file
    dataset = load_data(args.data, args.data_config, args.split)
    pipeline = SAERLPipeline.from_pretrained(args.pipeline, revision=args.pipeline_revision, **model)
    if args.no_filter:
        pipeline.quality_threshold = None
    elif args.quality_threshold is not None:
        if pipeline.quality is None:
            raise UsageError(f"--quality-threshold needs a pipeline with a quality probe; {args.pipeline} has none.")
        check_threshold(
            args.quality_threshold, "--quality-threshold", getattr(pipeline.quality, "task_", None) == "classification"
        )
        pipeline.quality_threshold = args.quality_threshold
    out, stats = pipeline(dataset, batch_size=args.batch_size, num_proc=args.num_proc, return_stats=True)
    per_split = stats.items() if "n_rows" not in stats else [("data", stats)]
    for split, s in per_split:
        dropped = (
            f", dropped {s['n_dropped']} with quality < {s['quality_threshold']}"
            if s["quality_threshold"] is not None
            else ""
        )
        print(f"{split}: {s['n_kept']} rows{dropped}")
    kept = [s["n_kept"] for _, s in per_split]
    if kept and all(k == 0 for k in kept):
        threshold = next(iter(per_split))[1]["quality_threshold"]
        raise InvalidParameterError(
            f"quality >= {threshold} keeps no row of {sum(s['n_rows'] or 0 for _, s in per_split)}; "
            "nothing was written. Lower --quality-threshold, or pass --no-filter."
        )
    if args.output is not None:
        save_dataset(out, args.output, sources=args.data, overwrite=args.overwrite)
        print(f"Saved the augmented dataset to {args.output}")
    if args.push_to:
        from ..pipeline.curated import push_curated

        filtering = stats if "n_rows" in stats else _merge_stats(stats)
        push_curated(
            out,
            args.push_to,
            pipeline=pipeline,
            pipeline_repo=str(args.pipeline),
            filtering=filtering,
            source=" ".join(args.data),
            private=args.private or None,
            token=args.token,
        )
        print(f"Pushed the augmented dataset to https://huggingface.co/datasets/{args.push_to}")
    return 0


def _merge_stats(stats: dict[str, dict[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {"quality_threshold": next(iter(stats.values()))["quality_threshold"]}
    for key in ("n_rows", "n_kept", "n_dropped"):
        values = [s[key] for s in stats.values()]
        merged[key] = None if None in values else sum(values)
    merged["splits"] = {name: {k: s[k] for k in ("n_rows", "n_kept", "n_dropped")} for name, s in stats.items()}
    return merged
