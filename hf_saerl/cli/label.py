"""``hf-saerl label``: attach the policy's own pass rates (``pass_rate``, ``n_samples``, ``n_correct``) to prompts.

Example:
    hf-saerl label --model embedded --data prompts.jsonl --answer-column answer -n 8 --budget 256 \\
        --strategy stratified --output ./labelled --rest-output ./unlabelled
"""

from __future__ import annotations

import argparse
import importlib
import json
import time
from pathlib import Path
from typing import Any

from ..errors import MissingColumnError, UsageError
from .common import (
    DATA_HELP,
    add_model_args,
    add_overwrite_arg,
    check_columns,
    check_model,
    check_output,
    finite_float,
    load_data,
    positive_int,
    save_dataset,
    single_split,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    from ..rollouts.config import DEFAULT_INSTRUCTION, PRESETS, SamplingConfig

    default = SamplingConfig()

    p = subparsers.add_parser(
        "label",
        help="label prompts with the policy's pass rates: sample n completions each and verify them",
        description=(
            "Sample N completions per prompt from MODEL (the policy), score each with a verifier (math-verify by "
            "default, reasoning-gym's scorer, or your own TRL-style reward function), and save the dataset with "
            "pass_rate, its Beta posterior (pass_rate_mean, pass_rate_sd), n_samples, n_correct, why the other "
            "samples failed (n_wrong, n_no_answer, n_truncated) and n_empty (Dataset.save_to_disk). With --budget, only a "
            "subset is labelled (seeded random, or stratified over cluster_id) and the rest can be saved apart, "
            "for a difficulty probe to predict."
        ),
        epilog="example: hf-saerl label --model embedded --data gsm8k.jsonl --prompt-column question -n 8 "
        "--max-new-tokens 256 --output ./labelled",
    )
    add_model_args(p.add_argument_group("policy"))
    g = p.add_argument_group("data")
    g.add_argument("--data", required=True, nargs="+", help=DATA_HELP)
    g.add_argument("--config", dest="data_config", help="the dataset's configuration name (Hub datasets)")
    g.add_argument("--split", default="train", help="the split to label (default: train)")
    g.add_argument("--prompt-column", default="prompt", help="the column holding the prompts (default: prompt)")
    g.add_argument("--template", help="build the prompt from several columns, e.g. '{question}\\n{context}'")
    v = p.add_argument_group("verifier")
    v.add_argument(
        "--verifier",
        default="math",
        choices=["math", "reasoning-gym"],
        help="math: math-verify against --answer-column (default); reasoning-gym: the task's own scorer",
    )
    v.add_argument(
        "--answer-column", default="answer", help="the column holding the reference answers (default: answer)"
    )
    v.add_argument("--rg-dataset", help="the reasoning-gym task family (default: each row's metadata.source_dataset)")
    v.add_argument(
        "--reward-function",
        metavar="MODULE:NAME",
        help="use this TRL-style reward function f(prompts, completions, **columns) instead of --verifier",
    )
    v.add_argument("--threshold", type=finite_float, default=1.0, help="a reward counted as correct (default: 1.0)")
    s = p.add_argument_group("sampling", "flags left out take the --preset's value, else the default shown")
    s.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        help="cpu: 4 samples, up to 16 where 0 of k or k of k, <= 64 tokens, 64 in flight (a few hundred "
        "prompts in minutes on a small CPU); gpu: the defaults",
    )
    s.add_argument("-n", type=positive_int, help=f"samples per prompt in the first round (default: {default.n})")
    s.add_argument(
        "--max-new-tokens",
        type=positive_int,
        help=f"tokens per completion; longer ones count as cut off (default: {default.max_new_tokens})",
    )
    s.add_argument(
        "--max-samples",
        type=positive_int,
        help="adaptive sampling: up to this many samples for a prompt whose samples all agree (default: -n, one round)",
    )
    s.add_argument("--round-size", type=positive_int, help="samples per extra round (default: -n)")
    s.add_argument(
        "--token-budget", type=positive_int, help="generated tokens the extra rounds may spend (default: no limit)"
    )
    s.add_argument("--temperature", type=finite_float, help=f"0 is greedy (default: {default.temperature})")
    s.add_argument("--top-p", type=finite_float, help=f"nucleus sampling (default: {default.top_p}, off)")
    s.add_argument("--top-k", type=positive_int, help="top-k sampling (default: off)")
    s.add_argument("--seed", type=int, default=0, help="seed of the samples and of the budget (default: 0)")
    s.add_argument(
        "--chat-template",
        choices=["auto", "on", "off"],
        default="auto",
        help="render prompts through the tokenizer's chat template (default: auto, when it has one)",
    )
    s.add_argument(
        "--instruction",
        default=DEFAULT_INSTRUCTION,
        help=f"appended to each prompt ('{{prompt}}' makes it a template); default: {DEFAULT_INSTRUCTION!r}",
    )
    s.add_argument("--no-instruction", action="store_true", help="append no instruction")
    s.add_argument("--system-prompt", help="a system message for every prompt")
    s.add_argument(
        "--backend",
        default="transformers",
        choices=["transformers", "vllm"],
        help="transformers generate (CPU or GPU) or vLLM (GPU, pip install vllm) (default: transformers)",
    )
    s.add_argument(
        "--batch-size",
        type=positive_int,
        help=f"sequences in flight (default: {default.batch_size}; the labels do not depend on it)",
    )
    s.add_argument("--device", help="e.g. cpu, cuda:0 (default: the first GPU, else CPU)")
    s.add_argument("--dtype", help="e.g. float32, bfloat16 (default: bf16 on GPU, fp32 on CPU)")
    b = p.add_argument_group("budget")
    b.add_argument(
        "--budget",
        type=finite_float,
        metavar="N",
        help="label only N rows (or a fraction 0 < N < 1 of them); default: every row",
    )
    b.add_argument(
        "--strategy",
        default="random",
        choices=["random", "stratified"],
        help="how the budget picks rows: seeded random, or stratified over --cluster-column",
    )
    b.add_argument(
        "--cluster-column",
        default="cluster_id",
        help="the cluster column for --strategy stratified ('hf-saerl augment' with a pipeline fitted with "
        "--clusters adds cluster_id)",
    )
    o = p.add_argument_group("output")
    o.add_argument("-o", "--output", type=Path, required=True, help="folder to save the labelled rows to")
    o.add_argument("--rest-output", type=Path, help="with --budget: folder to save the unlabelled rows to")
    add_overwrite_arg(o)
    o.add_argument("--keep-completions", action="store_true", help="also save the completions and their rewards")
    p.set_defaults(func=run)  # hf_saerl.cli.main runs it under common.guard (exit codes 1 and 2)


def _reward_function(spec: str) -> Any:
    module, _, name = spec.partition(":")
    if not module or not name:
        raise UsageError(f"--reward-function {spec!r} must be MODULE:NAME, e.g. my_rewards:accuracy.")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as err:
        raise UsageError(
            f"cannot load --reward-function {spec!r}: {err}. Check that the module is importable "
            "(on PYTHONPATH) and defines that name."
        ) from err


def _verifier(args: argparse.Namespace) -> Any:
    from ..rollouts.verifiers import MathVerifier, ReasoningGymVerifier, RewardFunctionVerifier

    if args.reward_function:
        return RewardFunctionVerifier(_reward_function(args.reward_function), threshold=args.threshold)
    if args.verifier == "reasoning-gym":
        return ReasoningGymVerifier(args.rg_dataset, answer_column=args.answer_column, threshold=args.threshold)
    return MathVerifier(args.answer_column, threshold=args.threshold)


def _budget(value: float | None) -> int | float | None:
    if value is None:
        return None
    if value <= 0 or (value >= 1 and not float(value).is_integer()):
        raise UsageError(f"--budget {value} must be a whole number of rows or a fraction between 0 and 1.")
    return int(value) if value >= 1 else value


def _template_columns(template: str) -> list[str]:
    import string

    return [field.split(".")[0].split("[")[0] for _, field, _, _ in string.Formatter().parse(template) if field]


def _sampling(args: argparse.Namespace) -> Any:
    """The SamplingConfig of the flags given, on top of --preset (or the defaults)."""
    from ..rollouts.config import SamplingConfig

    flags = {
        "n": args.n,
        "max_new_tokens": args.max_new_tokens,
        "max_samples": args.max_samples,
        "round_size": args.round_size,
        "token_budget": args.token_budget,
        "temperature": args.temperature,
        "top_p": args.top_p,
        "top_k": args.top_k,
        "batch_size": args.batch_size,
    }
    given = {k: v for k, v in flags.items() if v is not None}
    config = (
        SamplingConfig.preset(args.preset, seed=args.seed, **given)
        if args.preset
        else SamplingConfig(seed=args.seed, **given)
    )
    if config.max_samples is not None and config.max_samples < config.n:
        raise UsageError(f"--max-samples {config.max_samples} is below -n {config.n}; pass --max-samples >= -n.")
    return config


def run(args: argparse.Namespace) -> int:
    """Label the dataset as the arguments say; prints a JSON summary."""
    from ..rollouts.budget import split_for_labelling
    from ..rollouts.labeller import RolloutLabeller

    budget = _budget(args.budget)
    if args.rest_output is not None and budget is None:
        raise UsageError("--rest-output needs --budget (without a budget every row is labelled).")
    # everything that needs no model, before the model loads: outputs, the model's name, the data and its columns
    check_output(args.output, overwrite=args.overwrite, sources=args.data)
    check_output(args.rest_output, "--rest-output", overwrite=args.overwrite, sources=args.data)
    if args.rest_output is not None and args.rest_output.resolve() == args.output.resolve():
        raise UsageError("--rest-output and --output are the same folder; pass two folders.")
    model, gguf_file = check_model(args.model, args.gguf_file, args.revision)
    dataset = single_split(load_data(args.data, args.data_config, args.split), args.split)
    columns: dict[str, str | None] = (
        {f"--template ({{{c}}})": c for c in _template_columns(args.template)}
        if args.template
        else {"--prompt-column": args.prompt_column}
    )
    if not args.reward_function and args.verifier == "math":
        columns["--answer-column"] = args.answer_column
    if budget is not None and args.strategy == "stratified" and args.cluster_column not in dataset.column_names:
        raise MissingColumnError(
            f"--strategy stratified needs the cluster column {args.cluster_column!r}, which the data lacks (it has "
            f"{dataset.column_names}). Add it with 'hf-saerl augment --pipeline PIPELINE' (a pipeline fitted with "
            "--clusters adds cluster_id), name another with --cluster-column, or use --strategy random."
        )
    check_columns(dataset, columns)
    labeller = RolloutLabeller(
        model,
        _verifier(args),
        gguf_file=gguf_file,
        revision=args.revision,
        backend=args.backend,
        sampling=_sampling(args),
        prompt_column=args.prompt_column,
        template=args.template,
        chat_template={"auto": None, "on": True, "off": False}[args.chat_template],
        instruction=None if args.no_instruction else args.instruction,
        system_prompt=args.system_prompt,
        keep_completions=args.keep_completions,
        device=args.device,
        dtype=args.dtype,
    )
    labeller.check_columns(dataset)  # before choosing rows or loading the model
    rest = None
    if budget is not None:
        dataset, rest = split_for_labelling(
            dataset, budget, args.strategy, cluster_column=args.cluster_column, seed=args.seed
        )
    start = time.perf_counter()
    labelled = labeller.map(dataset)
    seconds = time.perf_counter() - start
    save_dataset(labelled, args.output, sources=args.data, overwrite=args.overwrite)
    if rest is not None and args.rest_output is not None:
        save_dataset(rest, args.rest_output, sources=args.data, flag="--rest-output", overwrite=args.overwrite)
    totals = getattr(labeller, "summary_", {})
    summary = {
        "rows_labelled": len(labelled),
        "rows_unlabelled": 0 if rest is None else len(rest),
        "completions": totals.get("samples", 0),
        "correct": totals.get("correct", 0),
        "wrong_answer": totals.get("wrong", 0),
        "no_answer": totals.get("no_answer", 0),
        "cut_off_at_max_new_tokens": totals.get("truncated", 0),
        "empty_completions": totals.get("empty", 0),
        "rows_never_solved": totals.get("rows_never_solved", 0),
        "rows_in_band_0.1_0.9": totals.get("rows_in_band_0.1_0.9", 0),
        "mean_pass_rate": round(float(totals.get("mean_pass_rate", 0.0)), 4),
        "generated_tokens": totals.get("generated_tokens"),
        "tokens_per_s": totals.get("tokens_per_s"),
        "seconds": round(seconds, 2),
    }
    print(json.dumps(summary, indent=2))
    print(
        f"Saved {len(labelled)} labelled rows to {args.output}"
        + (f" and {len(rest)} unlabelled rows to {args.rest_output}" if rest is not None and args.rest_output else "")
    )
    return 0
