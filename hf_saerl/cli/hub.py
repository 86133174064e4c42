"""``hf-saerl fit | augment | push | inspect``: build, apply, share and look inside SAERL pipelines.

* ``fit``: encode a labelled dataset with a model read through an SAE, fit the quality probe, the
  difficulty probe and/or the clusterer, and save (or push) the pipeline bundle.
* ``augment``: run a saved pipeline (a folder or a Hub repo) over a dataset and save the result to
  disk or push it, with a dataset card, to the Hub.
* ``push``: upload a saved pipeline folder to a Hub model repo (it is checked first).
* ``inspect``: print a pipeline's model card and config.json.

Exit codes: 0 success, 1 the job failed (bad data, a refused bundle, no network, ...), 2 usage.

Example:
    hf-saerl fit --model ./tiny-llama --sae ./tiny-sae --data prompts.jsonl --quality-label good \\
        --difficulty-label pass_rate --clusters 4 --output ./my-pipeline
    hf-saerl augment --pipeline ./my-pipeline --data new_prompts.jsonl --output ./curated
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..errors import InvalidParameterError, UsageError
from .common import (
    add_data_args,
    add_model_args,
    add_push_args,
    at_least,
    finite_float,
    hub_repo_id,
    load_data,
    save_dataset,
    model_spec,
    non_negative_int,
    positive_int,
    single_split,
)

__all__ = ["register", "run_fit", "run_augment", "run_push", "run_inspect", "UsageError", "add_model_args",
           "model_spec", "load_data"]


def register(subparsers: argparse._SubParsersAction) -> None:
    _register_fit(subparsers)
    _register_augment(subparsers)
    _register_push(subparsers)
    _register_inspect(subparsers)


# ---------------------------------------------------------------------- parsers
def _register_fit(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "fit",
        help="fit a pipeline (quality / difficulty / clusters) on a labelled dataset and save it",
        description=(
            "Encode every row of a labelled dataset with MODEL read through SAE, then fit the parts you ask for: "
            "a quality probe (--quality-label, a column of good/bad labels), a difficulty probe (--difficulty-label, "
            "a column of pass rates or difficulties) and an SAE-space clusterer (--clusters). The fitted pipeline "
            "is saved to --output (a folder you can load with SAERLPipeline.from_pretrained or 'hf-saerl augment') "
            "and/or pushed to the Hub with --push-to."
        ),
        epilog="example: hf-saerl fit --model HuggingFaceTB/SmolLM2-135M-Instruct --sae ./my-sae --data labelled.jsonl "
               "--quality-label is_good --difficulty-label pass_rate --clusters auto --output ./my-pipeline",
    )
    model = add_model_args(p.add_argument_group("model and SAE"))
    model.add_argument("--sae", required=True,
                       help="a local sae-lens SAE folder (cfg.json + sae_weights.safetensors), or a sae-lens release "
                            "name / Hub repo when --sae-id is given")
    model.add_argument("--sae-id", help="the SAE inside the --sae release (e.g. 'blocks.8.hook_resid_pre')")
    model.add_argument("--hook-name", help="where to read the model (default: the hook recorded by the SAE)")
    model.add_argument("--model-id", help="record this id in the bundle as where the model loads from (default: --model)")
    add_data_args(p)
    enc = p.add_argument_group("encoding")
    enc.add_argument("--text-column", default="text", help="the column holding the text (default: text)")
    enc.add_argument("--template", help="build the text from several columns, e.g. '{question}\\n{answer}'")
    enc.add_argument("--chat-template", action="store_true", help="render the text through the tokenizer's chat template")
    enc.add_argument("--pooling", default="mean", choices=["mean", "max", "sum", "last", "freq"],
                     help="how token activations are pooled per example (default: mean)")
    enc.add_argument("--top-k", type=positive_int, default=64, help="SAE latents kept per example (default: 64)")
    enc.add_argument("--max-length", type=at_least(2), default=512, help="longer texts are truncated to this many tokens")
    enc.add_argument("--batch-size", type=positive_int, default=256, help="rows per encoding batch (default: 256)")
    fit = p.add_argument_group("what to fit (at least one)")
    fit.add_argument("--quality-label", metavar="COLUMN", help="fit a quality probe on this column of good/bad labels")
    fit.add_argument("--difficulty-label", metavar="COLUMN",
                     help="fit a difficulty probe on this column of pass rates (0..1) or difficulties")
    fit.add_argument("--clusters", metavar="N", help="fit an SAE-space clusterer with N clusters, or 'auto'")
    fit.add_argument("--cluster-reference", metavar="COLUMN",
                     help="a column of reference labels (e.g. topic) to report cluster purity against")
    fit.add_argument("--cv", type=non_negative_int, default=5,
                     help="cross-validation folds for the probes' metrics; 0 or 1: none (default: 5)")
    fit.add_argument("--quality-threshold", type=finite_float,
                     help="record a threshold: 'augment' then keeps only rows with quality >= it")
    out = p.add_argument_group("output (at least one)")
    out.add_argument("-o", "--output", type=Path, help="folder to save the pipeline to")
    add_push_args(out, "push the pipeline to this Hub model repo, e.g. your-name/my-pipeline")
    p.set_defaults(func=run_fit)


def _register_augment(subparsers: argparse._SubParsersAction) -> None:
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
    p.add_argument("--model", help="load the model from here instead of the id recorded in the pipeline "
                                   "(e.g. a local copy when the Hub is out of reach)")
    add_data_args(p)
    p.add_argument("--quality-threshold", type=finite_float,
                   help="keep only rows with quality >= this (overrides the pipeline's own threshold)")
    p.add_argument("--no-filter", action="store_true", help="keep every row, ignoring the pipeline's threshold")
    p.add_argument("--batch-size", type=positive_int, default=256, help="rows per batch (default: 256)")
    p.add_argument("--num-proc", type=positive_int, help="worker processes for the encoding")
    out = p.add_argument_group("output (at least one)")
    out.add_argument("-o", "--output", type=Path, help="folder to save the augmented dataset to (Dataset.save_to_disk)")
    add_push_args(out, "push the augmented dataset to this Hub dataset repo, e.g. your-name/my-curated-data")
    p.set_defaults(func=run_augment)


def _register_push(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "push",
        help="upload a saved pipeline folder to the Hub",
        description="Check a pipeline folder (files, widths, hooks, format version) and upload it, as one commit, "
                    "to a Hub model repo (created if needed). Log in first with 'hf auth login' or pass --token.",
        epilog="example: hf-saerl push ./my-pipeline your-name/my-pipeline --private",
    )
    p.add_argument("folder", type=Path, help="the pipeline folder (written by 'hf-saerl fit' or save_pretrained)")
    p.add_argument("repo_id", type=hub_repo_id, help="the Hub model repo, e.g. your-name/my-pipeline")
    p.add_argument("--private", action="store_true", help="create the repo as private")
    p.add_argument("--token", help="a Hugging Face token (default: the saved login or HF_TOKEN)")
    p.add_argument("--commit-message", default="Upload SAERLPipeline", help="the commit message")
    p.set_defaults(func=run_push)


def _register_inspect(subparsers: argparse._SubParsersAction) -> None:
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
    p.set_defaults(func=run_inspect)


# ---------------------------------------------------------------------- commands
def run_fit(args: argparse.Namespace) -> int:
    from ..encoding.encoder import SAEEncoder
    from ..estimators.clustering import SAEClusterer
    from ..estimators.probes import DifficultyProbe, QualityProbe
    from ..pipeline.pipeline import SAERLPipeline

    if not (args.quality_label or args.difficulty_label or args.clusters):
        raise UsageError("nothing to fit: pass --quality-label, --difficulty-label and/or --clusters.")
    if args.output is None and args.push_to is None:
        raise UsageError("pass --output FOLDER and/or --push-to REPO_ID to keep the fitted pipeline.")
    if args.quality_threshold is not None and not args.quality_label:
        raise UsageError("--quality-threshold needs a quality probe: pass --quality-label too.")
    n_clusters = _parse_clusters(args.clusters)
    dataset = single_split(load_data(args.data, args.data_config, args.split or "train"), args.split)

    model, gguf_file = model_spec(args.model, args.gguf_file)
    sae = (args.sae, args.sae_id) if args.sae_id else args.sae
    encoder = SAEEncoder(model, sae, gguf_file=gguf_file, revision=args.revision, hook_name=args.hook_name,
                         text_column=None if args.template else args.text_column, template=args.template,
                         chat_template=args.chat_template, pooling=args.pooling, top_k=args.top_k,
                         max_length=args.max_length)
    d = encoder.d_sae
    cv = args.cv if args.cv and args.cv >= 2 else None
    pipeline = SAERLPipeline(
        encoder,
        quality=QualityProbe(d_sae=d, cv=cv) if args.quality_label else None,
        difficulty=DifficultyProbe(d_sae=d, cv=cv) if args.difficulty_label else None,
        clusterer=SAEClusterer(d_sae=d, n_clusters=n_clusters) if n_clusters is not None else None,
        quality_threshold=args.quality_threshold, model_id=args.model_id,
    )
    pipeline.fit(dataset, quality_label=args.quality_label, difficulty_label=args.difficulty_label,
                 cluster_reference=args.cluster_reference, batch_size=args.batch_size)
    if args.quality_threshold is not None:  # the probe's kind (classifier or not) is known once it is fitted
        _check_threshold_argument(pipeline, args.quality_threshold)
    for role, est in pipeline.estimators().items():
        shown = {k: v for k, v in est.metrics_.items() if isinstance(v, (int, float, str)) and v is not None}
        print(f"{role}: " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in shown.items()))
        for warning in est.metrics_.get("warnings") or []:
            print(f"{role}: WARNING, this fit looks useless: {warning}")
    if args.output is not None:
        pipeline.save_pretrained(args.output, repo_id=args.push_to)
        print(f"Saved the pipeline to {args.output}")
    if args.push_to:
        pipeline.push_to_hub(args.push_to, private=args.private or None, token=args.token)
        print(f"Pushed the pipeline to https://huggingface.co/{args.push_to}")
    return 0


def run_augment(args: argparse.Namespace) -> int:
    from ..pipeline.curated import push_curated
    from ..pipeline.pipeline import SAERLPipeline

    if args.output is None and args.push_to is None:
        raise UsageError("pass --output FOLDER and/or --push-to REPO_ID to keep the augmented dataset.")
    if args.no_filter and args.quality_threshold is not None:
        raise UsageError("--no-filter and --quality-threshold contradict each other; pass one.")
    pipeline = SAERLPipeline.from_pretrained(args.pipeline, revision=args.pipeline_revision,
                                             **({"model": args.model} if args.model else {}))
    if args.no_filter:
        pipeline.quality_threshold = None
    elif args.quality_threshold is not None:
        if pipeline.quality is None:
            raise UsageError(f"--quality-threshold needs a pipeline with a quality probe; {args.pipeline} has none.")
        _check_threshold_argument(pipeline, args.quality_threshold)
        pipeline.quality_threshold = args.quality_threshold
    dataset = load_data(args.data, args.data_config, args.split)
    out, stats = pipeline(dataset, batch_size=args.batch_size, num_proc=args.num_proc, return_stats=True)
    for split, s in (stats.items() if "n_rows" not in stats else [("data", stats)]):
        dropped = f", dropped {s['n_dropped']} with quality < {s['quality_threshold']}" if s["quality_threshold"] is not None else ""
        print(f"{split}: {s['n_kept']} rows{dropped}")
    if args.output is not None:
        save_dataset(out, args.output, sources=args.data)
        print(f"Saved the augmented dataset to {args.output}")
    if args.push_to:
        filtering = stats if "n_rows" in stats else _merge_stats(stats)
        push_curated(out, args.push_to, pipeline=pipeline, pipeline_repo=str(args.pipeline), filtering=filtering,
                     source=" ".join(args.data), private=args.private or None, token=args.token)
        print(f"Pushed the augmented dataset to https://huggingface.co/datasets/{args.push_to}")
    return 0


def run_push(args: argparse.Namespace) -> int:
    from ..core.hub import upload_folder
    from ..pipeline.bundle import check_bundle

    if not args.folder.is_dir():
        raise FileNotFoundError(f"{args.folder} is not a folder. Pass the folder written by 'hf-saerl fit --output' or "
                                "SAERLPipeline.save_pretrained.")
    check_bundle(args.folder)
    upload_folder(args.folder, args.repo_id, private=args.private or None, token=args.token,
                  commit_message=args.commit_message)
    print(f"Pushed {args.folder} to https://huggingface.co/{args.repo_id}")
    return 0


def run_inspect(args: argparse.Namespace) -> int:
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


def _check_threshold_argument(pipeline: Any, threshold: float) -> None:
    """``--quality-threshold`` inside [0, 1] when the quality probe is a classifier (a usage error otherwise)."""
    from ..estimators.selection import check_probability_threshold

    if getattr(pipeline.quality, "task_", None) == "classification":
        try:
            check_probability_threshold("--quality-threshold", threshold, "the pipeline's quality probe")
        except InvalidParameterError as e:
            raise UsageError(str(e)) from None


def _parse_clusters(value: str | None) -> int | str | None:
    if value is None:
        return None
    if value == "auto":
        return "auto"
    try:
        n = int(value)
    except ValueError:
        raise UsageError(f"--clusters takes a number of clusters or 'auto', got {value!r}.") from None
    if n < 1:
        raise UsageError(f"--clusters must be at least 1, got {n}.")
    return n


def _merge_stats(stats: dict[str, dict[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {"quality_threshold": next(iter(stats.values()))["quality_threshold"]}
    for key in ("n_rows", "n_kept", "n_dropped"):
        values = [s[key] for s in stats.values()]
        merged[key] = None if None in values else sum(values)
    merged["splits"] = {name: {k: s[k] for k in ("n_rows", "n_kept", "n_dropped")} for name, s in stats.items()}
    return merged
