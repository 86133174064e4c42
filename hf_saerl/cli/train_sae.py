"""``hf-saerl train-sae``: train a TopK SAE for a model that has none, on texts from a dataset."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .common import (
    add_data_args,
    add_model_args,
    add_overwrite_arg,
    check_columns,
    check_model,
    check_output,
    load_data,
    non_negative_int,
    positive_float,
    positive_int,
    single_split,
    write_folder,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    from ..encoding.config import DEFAULT_SAE_TRAINING as D

    p = subparsers.add_parser(
        "train-sae",
        help="train a TopK SAE on a model's activations over your texts (for models without a pretrained SAE)",
        description=(
            "Run MODEL up to the hook (default: the middle layer's residual stream) over the texts of a dataset "
            "column, train a TopK SAE on those activations with sae-lens's trainer, print its held-out explained "
            "variance, L0 and dead-latent fraction, and save it as a sae-lens folder that --sae accepts everywhere. "
            "Results are cached by configuration under $HF_SAERL_CACHE (default ~/.cache/hf_saerl)."
        ),
        epilog="example: hf-saerl train-sae --model embedded --data prompts.jsonl --text-column prompt --output ./my-sae",
    )
    g = add_model_args(p.add_argument_group("model"))
    g.add_argument(
        "--hook-name", help="where to read the model, e.g. blocks.12.hook_resid_post (default: middle layer)"
    )
    add_data_args(p)
    p.add_argument("--text-column", default="text", help="the column holding the texts (default: text)")
    t = p.add_argument_group("SAE")
    t.add_argument("--d-sae", type=positive_int, default=D["d_sae"], help=f"number of latents (default: {D['d_sae']})")
    t.add_argument("-k", type=positive_int, default=D["k"], help=f"active latents per token (default: {D['k']})")
    t.add_argument(
        "--total-tokens",
        type=positive_int,
        default=D["total_tokens"],
        help=f"training samples, several passes over the activations allowed (default: {D['total_tokens']})",
    )
    t.add_argument(
        "--max-activation-tokens",
        type=positive_int,
        default=D["max_activation_tokens"],
        help=f"activation tokens to collect (default: {D['max_activation_tokens']})",
    )
    t.add_argument(
        "--max-length", type=positive_int, default=D["max_length"], help=f"tokens per text (default: {D['max_length']})"
    )
    t.add_argument("--lr", type=positive_float, default=D["lr"], help=f"learning rate (default: {D['lr']})")
    t.add_argument("--seed", type=non_negative_int, default=0, help="seed (default: 0)")
    o = p.add_argument_group("output")
    o.add_argument("-o", "--output", type=Path, required=True, help="folder to save the SAE to (sae-lens format)")
    add_overwrite_arg(o)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Train the SAE; prints its held-out metrics."""
    check_output(args.output, overwrite=args.overwrite, sources=args.data)  # before any model loads
    model_path, gguf_file = check_model(args.model, args.gguf_file, args.revision)
    dataset = single_split(load_data(args.data, args.data_config, args.split or "train"), args.split)
    check_columns(dataset, {"--text-column": args.text_column})
    texts = [t for t in dataset[args.text_column] if t and str(t).strip()]

    from ..encoding.sae_training import train_sae
    from ..models.loading import load_model

    model, tokenizer = load_model(model_path, gguf_file=gguf_file, revision=args.revision)
    sae, stats = train_sae(
        model,
        tokenizer,
        texts,
        hook_name=args.hook_name,
        d_sae=args.d_sae,
        k=args.k,
        total_tokens=args.total_tokens,
        max_activation_tokens=args.max_activation_tokens,
        max_length=args.max_length,
        lr=args.lr,
        seed=args.seed,
    )
    write_folder(args.output, lambda folder: sae.save_model(str(folder)), overwrite=args.overwrite, sources=args.data)
    shown = {
        k: stats[k] for k in ("explained_variance", "mean_l0", "dead_fraction", "n_tokens", "cache_hit") if k in stats
    }
    print(json.dumps(shown, indent=2))
    print(f"Saved the SAE ({sae.cfg.d_in} -> {sae.cfg.d_sae}, hook {sae.cfg.metadata.hook_name}) to {args.output}")
    return 0
