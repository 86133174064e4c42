"""The cpu preset's memory settings train as one batch does, on the ci preset's tiny Llama: 12 pairs of different
lengths, 4 pairs per step, 3 steps, once as one batch with TRL's LM-head tiles and once as 4 accumulated
micro-batches of 1 pair with 16-entry vocabulary tiles; writes both runs' per-step losses and the largest absolute
differences of the losses and of the trained weights (the same check as the recipe's test, with the numbers kept).

    OMP_NUM_THREADS=1 python docs/results/audit_then_dpo_memory/equivalence_tiny.py --out equivalence_tiny.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import tempfile
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    load_at_start = list(os.getloadavg())
    import torch

    torch.set_num_threads(1)
    path = Path(__file__).resolve().parents[3] / "recipes" / "audit_then_dpo.py"
    spec = importlib.util.spec_from_file_location("recipe", path)
    assert spec is not None and spec.loader is not None
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)
    cfg = dict(recipe.PRESETS["ci"], batch_size=4, epochs=1)
    model, tok, _, pairs, *_ = recipe.load_ci(cfg)
    pairs = pairs.select(range(12)).map(lambda r, i: {"chosen": r["chosen"] + " ." * (i % 4)}, with_indices=True)
    pairs = recipe.to_chat(pairs)
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    runs, weights = {}, {}
    for name, micro, chunk in (("one_batch", 4, 0), ("micro_batches", 1, 16)):
        with tempfile.TemporaryDirectory() as tmp:
            settings = {**cfg, "micro_batch_size": micro, "logprob_vocab_chunk": chunk}
            policy, log = recipe.train_dpo(model, tok, pairs, settings, tmp, concept_lambda=None, seed=0, max_steps=3)
        runs[name] = {"micro_batch_size": micro, "logprob_vocab_chunk": chunk, **log}
        weights[name] = {n: p.detach().clone() for n, p in policy.named_parameters()}
    a, b = runs["one_batch"]["losses"], runs["micro_batches"]["losses"]
    out = {
        "model": f"tiny random Llama (hf_saerl.testing.tiny_llama), vocabulary {model.config.vocab_size}",
        "runs": runs,
        "max_abs_loss_difference": max(abs(x - y) for x, y in zip(a, b, strict=True)),
        "max_abs_weight_difference": max(
            float((weights["one_batch"][n] - weights["micro_batches"][n]).abs().max()) for n in start
        ),
        "max_abs_weight_change": max(float((weights["one_batch"][n] - start[n]).abs().max()) for n in start),
        "load_avg": {"start": load_at_start, "end": list(os.getloadavg())},
    }
    args.out.write_text(json.dumps(out, indent=1))
    print(json.dumps({k: v for k, v in out.items() if k != "runs"}, indent=1))


if __name__ == "__main__":
    main()
