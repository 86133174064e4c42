"""Benchmark: encoding preference-pair spans with one forward per span vs one forward per pooling.

A preference audit pools each response span (prompt as context, response tokens only) with both ``max``
and ``freq`` pooling, and each prompt with ``max``. Old way: one single-pooling pass per pooling, so every
response span runs the truncated model forward and the SAE twice (5 forwards per pair). New way:
``SAEEncoder.pool_spans`` gives every pooling from one forward and one SAE encode (3 per pair).

Both variants run the same ``encode_response_spans`` / ``encode_prompts`` code in the same process on
the same pairs; the old one only has ``pool_spans`` replaced by a loop of single-pooling ``pool_spans``
calls. One untimed full run warms up first (both variants see the same micro-batch shapes),
then both are timed ``--repeats`` times, alternating, and each one's best run is reported. The two
outputs are checked to agree before any time is reported.

    python benchmarks/bench_audit_spans.py                  # a random 8-layer Llama, hidden 256
    python benchmarks/bench_audit_spans.py --model smollm2  # the embedded SmolLM2-135M-Instruct

    python benchmarks/bench_audit_spans.py --n-pairs 2 --max-length 32   # smallest: proves it runs

Prints seconds, pooled tokens/s and the speed-up ratio old / new.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from contextlib import contextmanager

import numpy as np
from bench_encoder import load  # the same models and SAE as the encoder benchmark (this folder is on sys.path)

RESPONSE_POOLINGS = ("max", "freq")
PROMPT_POOLINGS = ("max",)


def pairs(n: int) -> tuple[list[str], list[str], list[str], str]:
    try:
        from hf_saerl.demo.champ import champ_preference_pairs

        ds = champ_preference_pairs(seed=0)
        rows = [ds[i % len(ds)] for i in range(n)]
        return [r["prompt"] for r in rows], [r["chosen"] for r in rows], [r["rejected"] for r in rows], "champ"
    except Exception as exc:  # noqa: BLE001 - CHAMP missing or unreadable, however: synthetic pairs, said on stderr
        print(f"champ pairs unavailable ({type(exc).__name__}: {exc}); using synthetic text", file=sys.stderr)
        prompts = [("Find all integers n such that n^2 + 1 divides n^3 + 7. " * (1 + i % 4)).strip() for i in range(n)]
        chosen = [
            ("We have n^3 + 7 = n(n^2 + 1) - n + 7, so n^2 + 1 divides 7 - n. " * (1 + i % 5)).strip() for i in range(n)
        ]
        rejected = [("Try n = 1, 2, 3 and guess that only n = 2 works. " * (1 + i % 6)).strip() for i in range(n)]
        return prompts, chosen, rejected, "synthetic"


@contextmanager
def one_pool_call_per_pooling(enc):
    """The old way: ``enc.pool_spans`` replaced by one single-pooling ``pool_spans`` call (one forward + SAE
    encode) per pooling. The class's method is called directly, as the instance attribute shadows it."""
    one_pass = type(enc).pool_spans

    def pool_spans(token_ids, poolings=None, **kw):
        spans = None
        pooled = {}
        for pooling in dict.fromkeys(poolings or (enc.pooling,)):
            spans = one_pass(enc, token_ids, (pooling,), **kw)
            pooled[pooling] = spans.pooled[pooling]
        return spans._replace(pooled=pooled)

    enc.pool_spans = pool_spans  # instance attribute shadows the method
    try:
        yield
    finally:
        del enc.pool_spans


def encode_pairs(enc, prompts, chosen, rejected, batch_size):
    from hf_saerl.audit.spans import encode_prompts, encode_response_spans

    kw = dict(poolings=RESPONSE_POOLINGS, top_k=None, batch_size=batch_size)
    c = encode_response_spans(enc, prompts, chosen, column="chosen", **kw)
    r = encode_response_spans(enc, prompts, rejected, column="rejected", **kw)
    p = encode_prompts(enc, prompts, poolings=PROMPT_POOLINGS, top_k=None, batch_size=batch_size)
    pooled = {
        f"{side}/{k}": v.toarray()
        for side, s in (("chosen", c), ("rejected", r), ("prompt", p))
        for k, v in s.pooled.items()
    }
    n_tokens = int(c.n_tokens.sum() + r.n_tokens.sum() + p.n_tokens.sum())
    return pooled, n_tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=["smollm2", "tiny"], default="tiny")
    parser.add_argument("--n-pairs", type=int, default=64)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()

    import logging

    import torch

    from hf_saerl import SAEEncoder

    logging.getLogger("hf_saerl").setLevel(logging.ERROR)  # the truncation warning repeats on every run
    torch.set_num_threads(args.threads)
    model, tok, sae, _ = load(args.model)
    prompts, chosen, rejected, source = pairs(args.n_pairs)
    enc = SAEEncoder(model, sae, tokenizer=tok, top_k=None, max_length=args.max_length)

    def run_old():
        with one_pool_call_per_pooling(enc):
            return encode_pairs(enc, prompts, chosen, rejected, args.batch_size)

    def run_new():
        return encode_pairs(enc, prompts, chosen, rejected, args.batch_size)

    # Warm-up: one full untimed run. The first pass over each new micro-batch shape is several times slower
    # than later ones on CPU (kernel set-up), and both variants see exactly the same micro-batch shapes.
    run_new()
    results = {}
    for _ in range(args.repeats):  # alternate the variants; keep each one's best time
        for name, fn in (("old", run_old), ("new", run_new)):
            start = time.perf_counter()
            pooled, n_tokens = fn()
            seconds = time.perf_counter() - start
            best = min(seconds, results.get(name, {}).get("seconds", float("inf")))
            results[name] = {"seconds": best, "n_tokens": n_tokens, "pooled": pooled}

    old, new = results["old"], results["new"]
    assert old["n_tokens"] == new["n_tokens"], (old["n_tokens"], new["n_tokens"])
    assert old["pooled"].keys() == new["pooled"].keys()
    diff = max(float(np.abs(old["pooled"][k] - new["pooled"][k]).max()) for k in old["pooled"])
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch threads {args.threads}"
    )
    print(
        f"model: {args.model} (hook {enc.hook_name}, d_sae {enc.d_sae}), {args.n_pairs} {source} pairs, "
        f"max_length {args.max_length}, {new['n_tokens']} tokens pooled (chosen + rejected + prompt spans)"
    )
    print(f"forwards per pair: old {2 * len(RESPONSE_POOLINGS) + len(PROMPT_POOLINGS)}, new 3")
    print(f"outputs agree: max absolute difference {diff:.1e}")
    print(f"{'variant':<8} {'seconds':>8} {'tokens/s':>10}")
    for name, r in (("old", old), ("new", new)):
        print(f"{name:<8} {r['seconds']:>8.2f} {r['n_tokens'] / r['seconds']:>10.0f}")
    print(f"speed-up old/new: {old['seconds'] / new['seconds']:.2f}x")
    if diff > 1e-6:
        sys.exit(f"outputs disagree (max absolute difference {diff:.2e}); the timing above is not comparable")


if __name__ == "__main__":
    main()
