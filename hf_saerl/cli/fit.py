"""``hf-saerl fit``: encode a labelled dataset with a model read through an SAE, fit the quality probe, the
difficulty probe and/or the clusterer, and save (or push) the pipeline bundle.

Every check that needs no model (the columns, the labels, the threshold, the output folder) runs before the model
loads.

Example:
    hf-saerl fit --model embedded --sae ./my-sae --data labelled.jsonl --text-column prompt \\
        --quality-label is_good --difficulty-label pass_rate --clusters 4 --output ./my-pipeline
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UsageError
from .common import (
    add_data_args,
    add_model_args,
    add_overwrite_arg,
    add_push_args,
    at_least,
    check_columns,
    check_labels,
    check_model,
    check_output,
    check_threshold,
    finite_float,
    load_data,
    non_negative_int,
    positive_int,
    single_split,
    write_folder,
)

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
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
        epilog="example: hf-saerl fit --model embedded --sae ./my-sae --data labelled.jsonl --text-column prompt "
        "--quality-label is_good --difficulty-label pass_rate --clusters auto --output ./my-pipeline",
    )
    model = add_model_args(p.add_argument_group("model and SAE"))
    model.add_argument(
        "--sae",
        required=True,
        help="a local sae-lens SAE folder (cfg.json + sae_weights.safetensors), or a sae-lens release "
        "name / Hub repo when --sae-id is given",
    )
    model.add_argument("--sae-id", help="the SAE inside the --sae release (e.g. 'blocks.8.hook_resid_pre')")
    model.add_argument("--hook-name", help="where to read the model (default: the hook recorded by the SAE)")
    model.add_argument(
        "--model-id", help="record this id in the bundle as where the model loads from (default: --model)"
    )
    add_data_args(p)
    enc = p.add_argument_group("encoding")
    enc.add_argument("--text-column", default="text", help="the column holding the text (default: text)")
    enc.add_argument("--template", help="build the text from several columns, e.g. '{question}\\n{answer}'")
    enc.add_argument(
        "--chat-template", action="store_true", help="render the text through the tokenizer's chat template"
    )
    enc.add_argument(
        "--pooling",
        default="mean",
        choices=["mean", "max", "sum", "last", "freq"],
        help="how token activations are pooled per example (default: mean)",
    )
    enc.add_argument("--top-k", type=positive_int, default=64, help="SAE latents kept per example (default: 64)")
    enc.add_argument(
        "--max-length", type=at_least(2), default=512, help="longer texts are truncated to this many tokens"
    )
    enc.add_argument("--batch-size", type=positive_int, default=256, help="rows per encoding batch (default: 256)")
    fit = p.add_argument_group("what to fit (at least one)")
    fit.add_argument("--quality-label", metavar="COLUMN", help="fit a quality probe on this column of good/bad labels")
    fit.add_argument(
        "--difficulty-label",
        metavar="COLUMN",
        help="fit a difficulty probe on this column of pass rates (0..1) or difficulties",
    )
    fit.add_argument("--clusters", metavar="N", help="fit an SAE-space clusterer with N clusters, or 'auto'")
    fit.add_argument(
        "--cluster-reference",
        metavar="COLUMN",
        help="a column of reference labels (e.g. topic) to report cluster purity against",
    )
    fit.add_argument(
        "--cv",
        type=non_negative_int,
        default=5,
        help="cross-validation folds for the probes' metrics; 0 or 1: none (default: 5)",
    )
    fit.add_argument(
        "--quality-threshold",
        type=finite_float,
        help="record a threshold: 'augment' then keeps only rows with quality >= it",
    )
    out = p.add_argument_group("output (at least one)")
    out.add_argument("-o", "--output", type=Path, help="folder to save the pipeline to")
    add_overwrite_arg(out)
    add_push_args(out, "push the pipeline to this Hub model repo, e.g. your-name/my-pipeline")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Fit the pipeline the arguments describe; prints one line of metrics per fitted part."""
    if not (args.quality_label or args.difficulty_label or args.clusters):
        raise UsageError("nothing to fit: pass --quality-label, --difficulty-label and/or --clusters.")
    if args.output is None and args.push_to is None:
        raise UsageError("pass --output FOLDER and/or --push-to REPO_ID to keep the fitted pipeline.")
    if args.quality_threshold is not None and not args.quality_label:
        raise UsageError("--quality-threshold needs a quality probe: pass --quality-label too.")
    n_clusters = _parse_clusters(args.clusters)
    # everything that needs no model, before the model loads
    check_output(args.output, overwrite=args.overwrite, sources=args.data)
    model, gguf_file = check_model(args.model, args.gguf_file, args.revision)
    dataset = single_split(load_data(args.data, args.data_config, args.split or "train"), args.split)
    check_columns(
        dataset,
        {
            "--text-column": None if args.template else args.text_column,
            "--quality-label": args.quality_label,
            "--difficulty-label": args.difficulty_label,
            "--cluster-reference": args.cluster_reference,
        },
    )
    classes = check_labels(dataset, args.quality_label, "--quality-label")
    check_labels(dataset, args.difficulty_label, "--difficulty-label")
    check_threshold(
        args.quality_threshold,
        "--quality-threshold",
        classifier=len(classes) == 2 or any(isinstance(c, (str, bool)) for c in classes),
    )

    from ..encoding.encoder import SAEEncoder
    from ..estimators.clustering import SAEClusterer
    from ..estimators.probes import DifficultyProbe, QualityProbe
    from ..pipeline.pipeline import SAERLPipeline

    sae = (args.sae, args.sae_id) if args.sae_id else args.sae
    encoder = SAEEncoder(
        model,
        sae,
        gguf_file=gguf_file,
        revision=args.revision,
        hook_name=args.hook_name,
        text_column=None if args.template else args.text_column,
        template=args.template,
        chat_template=args.chat_template,
        pooling=args.pooling,
        top_k=args.top_k,
        max_length=args.max_length,
    )
    d = encoder.d_sae
    cv = args.cv if args.cv and args.cv >= 2 else None
    pipeline = SAERLPipeline(
        encoder,
        quality=QualityProbe(d_sae=d, cv=cv) if args.quality_label else None,
        difficulty=DifficultyProbe(d_sae=d, cv=cv) if args.difficulty_label else None,
        clusterer=SAEClusterer(d_sae=d, n_clusters=n_clusters) if n_clusters is not None else None,
        quality_threshold=args.quality_threshold,
        model_id=args.model_id,
    )
    pipeline.fit(
        dataset,
        quality_label=args.quality_label,
        difficulty_label=args.difficulty_label,
        cluster_reference=args.cluster_reference,
        batch_size=args.batch_size,
    )
    if args.quality_threshold is not None:  # the probe's kind (classifier or not) is known for sure once fitted
        check_threshold(
            args.quality_threshold, "--quality-threshold", getattr(pipeline.quality, "task_", None) == "classification"
        )
    for role, est in pipeline.estimators().items():
        shown = {k: v for k, v in est.metrics_.items() if isinstance(v, (int, float, str)) and v is not None}
        print(f"{role}: " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in shown.items()))
        for warning in est.metrics_.get("warnings") or []:
            print(f"{role}: WARNING, this fit looks useless: {warning}")
    if args.output is not None:
        write_folder(
            args.output,
            lambda folder: pipeline.save_pretrained(folder, repo_id=args.push_to),
            overwrite=args.overwrite,
            sources=args.data,
        )
        print(f"Saved the pipeline to {args.output}")
    if args.push_to:
        pipeline.push_to_hub(args.push_to, private=args.private or None, token=args.token)
        print(f"Pushed the pipeline to https://huggingface.co/{args.push_to}")
    return 0


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
