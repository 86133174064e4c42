"""Resident memory TRL 1.16's fused LM head (``ChunkedLogProbFunction``, torch fallback on CPU) takes on top of its
inputs, forward and backward, for the DPO batch of the ``cpu`` preset (4 pairs: 8 sequences) and for one pair.

The tiles depend only on shapes (tokens × vocabulary chunk), so random weights of SmolLM2-135M's shapes (hidden 576,
vocabulary 49,152, tied head) stand in for the real ones. ``--chunk-size`` narrows the tiles (the recipe's
``logprob_vocab_chunk``). Each phase's peak is the kernel's VmHWM, reset before it
(``/proc/self/clear_refs``: 5), minus VmRSS when the phase starts.

    OMP_NUM_THREADS=1 python docs/results/audit_then_dpo_memory/lm_head_transient.py --pairs 1 4 --out lm_head.json
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path


def status_gb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 2**20
    return float("nan")


def reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seq-len", type=int, default=335, help="tokens per sequence (the longest kept pairs)")
    parser.add_argument("--pairs", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--chunk-size", type=int, default=None, help="vocabulary entries per tile (TRL's: 32768)")
    args = parser.parse_args()
    import torch
    from trl.kernels import ChunkedLogProbFunction
    from trl.trainer.utils import _CHUNKED_LOGPROB_CHUNK_SIZE

    chunk = args.chunk_size or _CHUNKED_LOGPROB_CHUNK_SIZE

    torch.set_num_threads(1)
    torch.manual_seed(0)
    weight = torch.nn.Parameter(torch.randn(49152, 576) * 0.02)
    outputs = ("log_probs", "entropy", "mean_logits", "is_top1")  # what DPOTrainer asks of the head
    out = {"chunk_size": chunk, "seq_len": args.seq_len, "runs": []}
    for pairs in args.pairs:
        n = 2 * pairs * args.seq_len
        hidden = torch.randn(n, 576, requires_grad=True)
        targets = torch.randint(0, 49152, (n,))
        rss0 = status_gb("VmRSS")
        reset_peak()
        logp, entropy, *_ = ChunkedLogProbFunction.apply(hidden, weight, None, targets, 1.0, chunk, None, 1.0, outputs)
        fwd_peak = status_gb("VmHWM") - rss0
        rss1 = status_gb("VmRSS")
        reset_peak()
        logp.sum().backward()  # entropy is logged detached: no gradient reaches it
        bwd_peak = status_gb("VmHWM") - rss1
        row = {
            "pairs": pairs,
            "tokens": n,
            "tile_gb": n * chunk * 4 / 2**30,
            "forward_extra_gb": round(fwd_peak, 3),
            "backward_extra_gb": round(bwd_peak, 3),
            "rss_start_gb": round(rss0, 3),
        }
        print(row, flush=True)
        out["runs"].append(row)
        weight.grad = None
        del hidden, logp, entropy, targets
    out["load_avg_at_end"] = list(os.getloadavg())
    args.out.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
