"""Does DPO on audited pairs move each SAE concept as the audit predicted? Audit, train, sample, compare.

Three models: the **reference** (SFT) model; **DPO** on the audited pairs (TRL's ``DPOTrainer``); and an
**intervention** on the audit's top chosen-leaning concept: ``ConceptShapedDPOTrainer`` with λ·margin
(``--intervention shape``, default) or DPO on the pairs ``filter_pairs`` keeps (``--intervention filter``).
Both trained models are sampled on held-out prompts with the reference model's seeds, and
``hf_saerl.audit.shift.validate_shift`` compares each concept's measured shift with the audit's Δ.

Presets: ``ci`` (tiny random models and synthetic pairs with a planted concept, seconds); ``cpu`` (the embedded
SmolLM2-135M-Instruct, its locally trained SAE, CHAMP preference pairs, sized for a 2-core CPU); ``gpu`` (the same
model and data, larger, in one script of about 8 minutes on one GPU; vLLM for sampling when installed).
Responses are cut to ``--response-tokens`` before the audit, so the audit, DPO and the rollouts
(``max_new_tokens`` = the same) all see spans of the same length.

    .venv/bin/python recipes/audit_then_dpo.py --preset cpu --out audit_then_dpo_cpu
    # -> OUT/results.json (every number), OUT/shift_dpo.png, OUT/shift_intervention.png, OUT/*_validation.json

A run cut short resumes: each finished stage's rollouts (``OUT/rollouts_<stage>.json``, with its training log)
are reused when the same command comes again; ``OUT/settings.json`` refuses a resume with other settings.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import logging
import os
import platform
import random
import resource
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger("audit_then_dpo")

PRESETS: dict[str, dict[str, Any]] = {
    "ci": dict(
        n_train=48,
        n_prompts=12,
        n_samples=2,
        response_tokens=12,
        max_new_tokens=12,
        epochs=2,
        lr=5e-3,
        beta=0.1,
        batch_size=8,
        micro_batch_size=8,
        logprob_vocab_chunk=0,
        concept_lambda=2.0,
        temperature=1.0,
        chat=True,
        device="cpu",
    ),
    "cpu": dict(
        n_train=96,
        n_prompts=48,
        n_samples=1,
        response_tokens=64,
        max_new_tokens=64,
        epochs=1,
        lr=5e-5,
        beta=0.1,
        batch_size=4,
        micro_batch_size=1,
        logprob_vocab_chunk=4096,
        concept_lambda=2.0,
        temperature=1.0,
        chat=True,
        device="cpu",
    ),
    "gpu": dict(
        n_train=160,
        n_prompts=110,
        n_samples=8,
        response_tokens=192,
        max_new_tokens=192,
        epochs=3,
        lr=2e-5,
        beta=0.1,
        batch_size=8,
        micro_batch_size=8,
        logprob_vocab_chunk=0,
        concept_lambda=2.0,
        temperature=1.0,
        chat=True,
        device="cuda",
    ),
}


class Clock:
    """Wall time per stage, logged as it goes."""

    def __init__(self, progress_file: Path | None = None) -> None:
        self.start = time.perf_counter()
        self.stages: dict[str, float] = {}
        self._last = self.start
        self.progress_file = progress_file

    def __call__(self, stage: str) -> None:
        now = time.perf_counter()
        self.stages[stage] = round(now - self._last, 1)
        self._last = now
        logger.info("%-28s %7.1f s  (total %.0f s)", stage, self.stages[stage], now - self.start)
        if self.progress_file is not None:  # what finished so far, should the run be cut short
            self.progress_file.write_text(json.dumps({"stages_s": self.stages, "load_avg": os.getloadavg()}))


def load_ci(cfg: dict[str, Any]) -> tuple[Any, Any, Any, Any, list[Any], list[str], dict[str, Any]]:
    """Tiny random Llama + SAE; synthetic pairs whose chosen side says ``"yes"`` (a planted concept)."""
    from datasets import Dataset

    from hf_saerl.testing import tiny_llama, tiny_sae, tiny_tokenizer

    model, tok, sae = tiny_llama(seed=0), tiny_tokenizer(), tiny_sae(seed=0)
    rng = random.Random(0)
    prompts = [f"{a}+{b}=?" for a, b in ((rng.randint(1, 9), rng.randint(1, 9)) for _ in range(cfg["n_train"]))]
    total = {p: sum(map(int, p[:-2].split("+"))) for p in prompts}
    chosen = [f"yes {total[p]}" for p in prompts]
    rejected = [f"{total[p] + 1} no" for p in prompts]
    parity = lambda p: "odd" if int(p[0]) % 2 else "even"  # noqa: E731 - two regions, for the region view
    pairs = Dataset.from_dict(
        {"prompt": prompts, "chosen": chosen, "rejected": rejected, "category": [parity(p) for p in prompts]}
    )
    held_out = [f"{a}*{b}=?" for a, b in ((rng.randint(1, 9), rng.randint(1, 9)) for _ in range(cfg["n_prompts"]))]
    info = {"sae": "tiny random (d_sae 128)", "model": "tiny random Llama"}
    return model, tok, sae, pairs, held_out, [parity(p) for p in held_out], info


def load_champ_run(cfg: dict[str, Any]) -> tuple[Any, Any, Any, Any, list[Any], list[str], dict[str, Any]]:
    """SmolLM2-135M-Instruct, the demo's SAE (cached), CHAMP pairs; held-out prompts: problems not trained on."""
    import torch

    from hf_saerl.demo.champ import CHAMP_PROMPT, champ_preference_pairs, load_champ
    from hf_saerl.demo.presets import champ_sae_texts
    from hf_saerl.encoding.sae_training import train_sae
    from hf_saerl.models.embedded import load_smollm2

    device = cfg["device"] if cfg["device"] != "cuda" or torch.cuda.is_available() else "cpu"
    model, tok = load_smollm2(device=device)
    if cfg.get("sae"):  # a sae-lens folder (e.g. a cached train_sae output), with its training.json when there
        from sae_lens import SAE

        sae = SAE.load_from_disk(cfg["sae"], device=str(device))
        meta = Path(cfg["sae"]) / "training.json"
        stats = json.loads(meta.read_text())["stats"] if meta.exists() else {}
        stats = {**stats, "hook_name": sae.cfg.metadata.hook_name, "d_sae": sae.cfg.d_sae, "folder": str(cfg["sae"])}
    else:
        sae, stats = train_sae(model, tok, champ_sae_texts(0), seed=0)  # the demo's SAE: a cache hit after the demo
    pairs = champ_preference_pairs(seed=0).shuffle(seed=0)
    pairs = pairs.select(range(min(cfg["n_train"], len(pairs))))
    trained_on = set(pairs["problem_id"])
    problems = load_champ().shuffle(seed=1)
    kept = [
        (CHAMP_PROMPT.format(problem=p), c)
        for pid, p, c in zip(problems["problem_id"], problems["problem"], problems["category"], strict=True)
        if pid not in trained_on
    ]
    held_out, categories = [p for p, _ in kept[: cfg["n_prompts"]]], [c for _, c in kept[: cfg["n_prompts"]]]
    info = {
        "model": "SmolLM2-135M-Instruct (embedded GGUF, fp32)",
        "device": str(device),
        "sae": {
            k: stats.get(k)
            for k in ("hook_name", "d_sae", "k", "explained_variance", "dead_fraction", "n_tokens", "n_texts", "folder")
            if k in stats
        },
    }
    return model, tok, sae, pairs, held_out, categories, info


def cut_responses(pairs: Any, tok: Any, n_tokens: int) -> Any:
    """Chosen / rejected cut to their first ``n_tokens`` tokens (decoded back to text)."""

    def cut(text: str) -> str:
        ids = tok(text, add_special_tokens=False)["input_ids"][:n_tokens]
        return tok.decode(ids, skip_special_tokens=True).strip()

    return pairs.map(lambda row: {"chosen": cut(row["chosen"]), "rejected": cut(row["rejected"])})


def to_chat(pairs: Any) -> Any:
    """Conversational rows (a user prompt, assistant responses), as TRL and the audit both read them."""
    return pairs.map(
        lambda row: {
            "prompt": [{"role": "user", "content": row["prompt"]}],
            "chosen": [{"role": "assistant", "content": row["chosen"]}],
            "rejected": [{"role": "assistant", "content": row["rejected"]}],
        }
    )


def fresh_copy(model: Any) -> Any:
    """An independent copy of ``model``: a new module of its class with its weights. Not ``copy.deepcopy`` of a
    model a trainer has touched: accelerate's ``prepare_model`` replaces the instance's ``forward`` with a wrapper
    closing over the original, which deepcopy shares, so the "copy" would still run the original's weights."""
    config = copy.deepcopy(model.config)
    clone = type(model)(config).to(device=next(model.parameters()).device, dtype=next(model.parameters()).dtype)
    clone.load_state_dict(model.state_dict())
    if getattr(model, "generation_config", None) is not None:
        clone.generation_config = copy.deepcopy(model.generation_config)
    return clone


def release_memory() -> None:
    """Collect the cycles a finished trainer leaves (trainer, accelerator, optimizer states: about 1.6 GB for the
    135M model) and hand freed heap pages back to the OS, so the next stage does not start on top of them."""
    import contextlib
    import ctypes
    import gc

    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # glibc keeps freed heap pages; malloc_trim returns them
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def train_dpo(
    reference: Any,
    tok: Any,
    pairs: Any,
    cfg: dict[str, Any],
    out_dir: str,
    *,
    concept_lambda: float | None,
    seed: int = 0,
    max_steps: int = -1,
) -> tuple[Any, dict[str, Any]]:
    """A fresh copy of ``reference`` trained with DPO (``ConceptShapedDPOTrainer`` when ``concept_lambda`` is
    set); ``reference`` itself is never handed to a trainer. ``max_steps`` > 0 stops early (memory profiling).

    Memory (the ``cpu`` preset peaked at ~10 GB before; see docs/audit_validation.md, "Memory"):

    * The reference log-probs are precomputed by the policy itself before its first step (TRL's
      ``precompute_ref_log_probs`` with ``ref_model=None``): the policy is then a fresh copy of ``reference``, so
      these are the reference model's log-probs, without a third copy of the model held through training.
    * Gradient checkpointing on the CPU: each layer's activations are recomputed in the backward pass instead of
      kept (the same arithmetic, about a third more compute). Off on a GPU, where memory is not the limit.
    * The trainer (optimizer states, accelerator) is released before the policy is returned.
    * ``cfg["micro_batch_size"]`` pairs per forward and backward, their gradients accumulated over
      ``batch_size / micro_batch_size`` micro-batches: the same ``batch_size`` pairs per optimizer step and the same
      mean loss up to float rounding (TRL's DPO loss is a mean over pairs; the Trainer divides each micro-batch's by
      the number of micro-batches). The reference log-probs are precomputed ``micro_batch_size`` pairs at a time too.
      TRL's fused LM head works on tiles of (tokens × 32,768 vocabulary entries) and its CPU fallback holds several
      such tiles at once, so its memory scales with the tokens per forward; the ``cpu`` preset takes one pair.
    * ``cfg["logprob_vocab_chunk"]`` (> 0) narrows those tiles to that many vocabulary entries
      (:func:`logprob_vocab_chunk`): the same log-softmax, its running log-sum-exp folded over more tiles.
    """
    import torch
    from trl import DPOConfig, DPOTrainer

    from hf_saerl.integrations.dpo import ConceptShapedDPOTrainer

    micro, accumulation = micro_batches(cfg)
    policy = fresh_copy(reference).train()
    on_gpu = next(reference.parameters()).device.type == "cuda"
    args = DPOConfig(
        output_dir=out_dir,
        per_device_train_batch_size=micro,
        gradient_accumulation_steps=accumulation,
        num_train_epochs=cfg["epochs"],
        learning_rate=cfg["lr"],
        beta=cfg["beta"],
        max_length=None,
        precompute_ref_log_probs=True,
        use_cpu=not on_gpu,
        bf16=on_gpu,
        gradient_checkpointing=not on_gpu,
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        seed=seed,
        disable_tqdm=True,
        lr_scheduler_type="constant",
        warmup_steps=0,
        dataloader_num_workers=0,
        max_steps=max_steps,
    )
    kwargs = dict(ref_model=None, args=args, train_dataset=pairs, processing_class=tok)
    with logprob_vocab_chunk(cfg.get("logprob_vocab_chunk") or None):  # the reference pass runs in the constructor
        if concept_lambda is None:
            trainer = DPOTrainer(policy, **kwargs)
        else:
            trainer = ConceptShapedDPOTrainer(policy, concept_lambda=concept_lambda, **kwargs)
        result = trainer.train()
    logs = [h for h in trainer.state.log_history if "loss" in h]
    trainer.accelerator.free_memory()
    del trainer
    if not on_gpu:
        policy.gradient_checkpointing_disable()
    policy.eval()
    release_memory()
    torch.set_grad_enabled(True)
    return policy, {
        "steps": int(result.global_step),
        "train_loss": float(result.training_loss),
        "first_loss": logs[0]["loss"] if logs else None,
        "last_loss": logs[-1]["loss"] if logs else None,
        "last_reward_accuracy": logs[-1].get("rewards/accuracies") if logs else None,
        "last_reward_margin": logs[-1].get("rewards/margins") if logs else None,
        "losses": [h["loss"] for h in logs],
        "micro_batch_size": micro,
        "gradient_accumulation_steps": accumulation,
    }


@contextlib.contextmanager
def logprob_vocab_chunk(size: int | None) -> Iterator[None]:
    """Within the block, TRL's fused LM head projects ``size`` vocabulary entries per tile instead of its 32,768.

    TRL 1.16 (``trl.trainer.utils._CHUNKED_LOGPROB_CHUNK_SIZE``, read at each forward) computes the per-token
    log-probabilities tile by tile with a running log-sum-exp, and on a CPU holds about nine (tokens × tile) float32
    arrays at once in its backward. A narrower tile computes the same log-softmax (up to float rounding) in less
    memory. ``None`` leaves TRL's default; a TRL without that constant is left alone, with a warning.

    Example:
        >>> import trl.trainer.utils as trl_utils
        >>> with logprob_vocab_chunk(8192):
        ...     trl_utils._CHUNKED_LOGPROB_CHUNK_SIZE
        8192
        >>> trl_utils._CHUNKED_LOGPROB_CHUNK_SIZE
        32768
    """
    import trl.trainer.utils as trl_utils

    name = "_CHUNKED_LOGPROB_CHUNK_SIZE"
    if size is None or not hasattr(trl_utils, name):
        if size is not None:
            logger.warning("This TRL has no %s: the LM head keeps its own tile width (more memory).", name)
        yield
        return
    if size < 1:
        from hf_saerl.errors import InvalidParameterError

        raise InvalidParameterError(
            f"logprob_vocab_chunk={size} must be a positive number of vocabulary entries per tile, e.g. 8192; "
            "or pass 0 / None for TRL's default."
        )
    before = getattr(trl_utils, name)
    setattr(trl_utils, name, int(size))
    try:
        yield
    finally:
        setattr(trl_utils, name, before)


def micro_batches(cfg: dict[str, Any]) -> tuple[int, int]:
    """``(micro_batch_size, gradient_accumulation_steps)`` for ``cfg``: micro-batches of ``micro_batch_size`` pairs
    (default: ``batch_size``, no accumulation) whose product with the accumulation steps is ``batch_size``.

    Example:
        >>> micro_batches({"batch_size": 4, "micro_batch_size": 1})
        (1, 4)
        >>> micro_batches({"batch_size": 8})
        (8, 1)
    """
    from hf_saerl.errors import InvalidParameterError

    batch = int(cfg["batch_size"])
    micro = batch if cfg.get("micro_batch_size") is None else int(cfg["micro_batch_size"])
    if batch < 1 or micro < 1 or batch % micro:
        raise InvalidParameterError(
            f"micro_batch_size={micro} must be a positive divisor of batch_size={batch} (the pairs per optimizer "
            f"step). Pass --micro-batch-size {1 if batch >= 1 else 'N'} (one pair per forward), or "
            f"--micro-batch-size {batch} (no gradient accumulation)."
        )
    return micro, batch // micro


def intervention_effect(dpo: Any, intervened: Any, concept: int) -> dict[str, Any]:
    """The target concept's shift under DPO and under the intervention, against the other concepts' as control."""
    a = dpo.table.set_index("concept")
    b = intervened.table.set_index("concept")
    change = b["measured_shift"] - a["measured_shift"]
    others = change.drop(index=concept)
    sd = float(others.std(ddof=1)) if len(others) > 1 else float("nan")
    return {
        "concept": int(concept),
        "shift_dpo": float(a.loc[concept, "measured_shift"]),
        "shift_dpo_z": float(a.loc[concept, "shift_z"]),
        "shift_intervention": float(b.loc[concept, "measured_shift"]),
        "shift_intervention_z": float(b.loc[concept, "shift_z"]),
        "change": float(change.loc[concept]),
        "control_mean_change": float(others.mean()),
        "control_sd_change": sd,
        "control_mean_abs_shift_dpo": float(a["measured_shift"].drop(index=concept).abs().mean()),
        "control_mean_abs_shift_intervention": float(b["measured_shift"].drop(index=concept).abs().mean()),
        "change_z_vs_control": float((change.loc[concept] - others.mean()) / sd) if sd > 0 else float("nan"),
        "change_rank_of_all": int((change <= change.loc[concept]).sum()),
        "n_concepts": len(change),
    }


def resumable(out: Path, name: str, make: Any) -> tuple[list[list[str]], dict[str, Any]]:
    """Stage ``name``'s rollouts and training log: read back from ``out`` when an earlier run of the same settings
    saved them (a run cut short resumes there), else ``make()``-d and saved at once."""
    rollouts, log = out / f"rollouts_{name}.json", out / f"training_{name}.json"
    if rollouts.is_file():
        logger.info("%s: rollouts reused from %s", name, rollouts)
        kept = json.loads(log.read_text()) if log.is_file() else {"log": "not kept by the earlier run"}
        return json.loads(rollouts.read_text()), {**kept, "resumed": True}
    made, training = make()
    rollouts.write_text(json.dumps(made))
    log.write_text(json.dumps(training, default=str))
    return made, training


def check_resume(out: Path, settings: dict[str, Any]) -> None:
    """Refuse to mix stages of other settings: ``out/settings.json`` must match when ``out`` holds rollouts."""
    stamp, have = out / "settings.json", sorted(p.name for p in out.glob("rollouts_*.json"))
    settings = json.loads(json.dumps(settings, default=str))
    if have and stamp.is_file() and json.loads(stamp.read_text()) != settings:
        raise SystemExit(
            f"{out} holds {', '.join(have)} from other settings (see {stamp}). Pass another --out, "
            "or delete those files to start over."
        )
    if have:
        logger.warning(
            "Resuming in %s: %s are reused%s.",
            out,
            ", ".join(have),
            "" if stamp.is_file() else " (no settings.json: their settings cannot be checked)",
        )
    stamp.write_text(json.dumps(settings, indent=1))


def target_in_region(dpo: Any, intervened: Any, target: dict[str, Any]) -> dict[str, Any] | None:
    """The target concept on its own region's held-out prompts: predicted Δ, and the shift under DPO and under the
    intervention (None without a region view, or when no held-out prompt is from that region)."""
    rows = {}
    for name, v in (("dpo", dpo), ("intervention", intervened)):
        t = v.region_table
        if t is None:
            return None
        hit = t[(t["region_name"] == target["region"]) & (t["concept"] == target["concept"])]
        if hit.empty:
            return None
        rows[name] = hit.iloc[0]
    return {
        "region": target["region"],
        "n_rollouts": int(rows["dpo"]["n_reference"]),
        "predicted_delta": float(rows["dpo"]["predicted_delta"]),
        **{f"shift_{n}": float(r["measured_shift"]) for n, r in rows.items()},
        **{f"shift_{n}_z": float(r["shift_z"]) for n, r in rows.items()},
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Audit, sample the reference, train DPO and the intervention, sample both, compare; writes ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: audit_then_dpo_<preset>)")
    parser.add_argument("--intervention", choices=("shape", "filter"), default="shape")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--sae",
        type=str,
        default=None,
        help="a sae-lens SAE folder (default: train the demo's, or take it from the cache)",
    )
    parser.add_argument(
        "--max-steps",
        type=int,
        default=-1,
        help="stop each training after this many steps (a "
        "bounded run, e.g. to measure peak memory; -1: the preset's epochs)",
    )
    parser.add_argument(
        "--backend",
        choices=("transformers", "vllm"),
        default="transformers",
        help="generation engine (vllm: GPU only, each model saved to a folder first)",
    )
    for key, value in PRESETS["cpu"].items():
        if not isinstance(value, bool):
            parser.add_argument("--" + key.replace("_", "-"), type=type(value), default=None)
    args = parser.parse_args(argv)
    cfg = dict(PRESETS[args.preset])
    cfg.update({k: v for k, v in vars(args).items() if k in cfg and v is not None})
    cfg["sae"] = args.sae
    out = args.out or Path(f"audit_then_dpo_{args.preset}")
    out.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    check_resume(
        out,
        {
            "preset": args.preset,
            "config": cfg,
            "seed": args.seed,
            "intervention": args.intervention,
            "backend": args.backend,
            **({"max_steps": args.max_steps} if args.max_steps > 0 else {}),
        },
    )
    for noisy in ("httpx", "datasets", "transformers"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    import torch

    from hf_saerl import SAEEncoder
    from hf_saerl.audit import PreferenceAudit, add_concept_margin, filter_pairs
    from hf_saerl.audit.shift import audit_predictions, sample_rollouts, side_effects, validate_shift
    from hf_saerl.rollouts.backends import TransformersBackend

    torch.manual_seed(args.seed)
    clock = Clock(out / "progress.json")
    loader = load_ci if args.preset == "ci" else load_champ_run
    reference, tok, sae, pairs, held_out, held_out_regions, info = loader(cfg)
    reference.eval()
    clock("load model + SAE + data")

    pairs = cut_responses(pairs, tok, cfg["response_tokens"])
    pairs = pairs.filter(lambda r: bool(r["chosen"]) and bool(r["rejected"]))
    if cfg["chat"]:
        pairs, held_out = to_chat(pairs), [[{"role": "user", "content": p}] for p in held_out]
    encoder = SAEEncoder(reference, sae, tokenizer=tok, max_length=512)
    region = "category" if len(set(pairs["category"])) > 1 else None
    audit = PreferenceAudit(
        encoder, region_column=region, n_regions=1 if region is None else "auto", progress=False
    ).fit(pairs)
    pred = audit_predictions(audit)
    clock("audit")

    # The intervention's target: the best-ranked flagged chosen-leaning concept, else the best-ranked chosen-leaning
    # one (said so in the results): fixed by the audit before any model is trained.
    flagged = audit.flagged(leaning="chosen")
    ranked = audit.statistics_[(audit.statistics_["leaning"] == "chosen") & (audit.statistics_["rank_score"] > 0)]
    row = flagged.iloc[0] if len(flagged) else ranked.iloc[0]
    target: dict[str, Any] = {
        "concept": int(row["concept"]),
        "region": str(row["region_name"]),
        "delta": float(row["delta"]),
        "welch_z": float(row["welch_z"]),
        "flagged": bool(row["flagged"]),
        "global_delta": float(pred["predicted_delta"].to_numpy()[int(row["concept"])]),
        "n_latents": int(pred["n_latents"].to_numpy()[int(row["concept"])]),
    }
    logger.info("intervention target: %s", target)

    sampling = {"max_new_tokens": cfg["max_new_tokens"], "temperature": cfg["temperature"]}
    gen: dict[str, Any] = dict(sampling=sampling, n_samples=cfg["n_samples"], seed=args.seed)
    use_vllm = args.backend == "vllm"
    folders = tempfile.TemporaryDirectory()

    def backend_for(model: Any) -> Any:
        """transformers on the loaded model; vLLM on a saved copy (a fresh engine per model)."""
        if not use_vllm:
            return TransformersBackend(model, tok, batch_size=64 if args.preset == "gpu" else 16)
        from hf_saerl.rollouts.backends import VLLMBackend

        folder = tempfile.mkdtemp(dir=folders.name)
        model.save_pretrained(folder)
        tok.save_pretrained(folder)
        return VLLMBackend(folder, gpu_memory_utilization=0.25, max_model_len=1024, enforce_eager=True)

    def sample(model: Any) -> list[list[str]]:
        return sample_rollouts(backend_for(model), held_out, **gen)

    ref_rollouts, _ = resumable(out, "reference", lambda: (sample(reference), {}))
    clock("sample reference")

    def train_and_sample(train_pairs: Any, concept_lambda: float | None) -> tuple[list[list[str]], dict[str, Any]]:
        with tempfile.TemporaryDirectory() as tmp:
            model, log = train_dpo(
                reference,
                tok,
                train_pairs,
                cfg,
                tmp,
                concept_lambda=concept_lambda,
                seed=args.seed,
                max_steps=args.max_steps,
            )
        rollouts = sample(model)
        del model
        release_memory()
        return rollouts, log

    dpo_rollouts, dpo_train = resumable(out, "dpo", lambda: train_and_sample(pairs, None))
    clock("train + sample DPO")

    if args.intervention == "shape":
        int_pairs = add_concept_margin(pairs, audit, concepts=[target["concept"]])
        int_info = {
            "kind": "ConceptShapedDPOTrainer",
            "concept_lambda": cfg["concept_lambda"],
            "margin_mean": float(np.mean(int_pairs["concept_margin"])),
            "margin_nonzero": int(np.count_nonzero(int_pairs["concept_margin"])),
        }
        int_lambda = cfg["concept_lambda"]
    else:
        int_pairs, counts = filter_pairs(pairs, audit, concepts=[target["concept"]], threshold=0.5)
        int_info = {"kind": "filter_pairs", **{k: v for k, v in counts.items() if k != "per_concept"}}
        int_lambda = None
    int_rollouts, int_train = resumable(out, "intervention", lambda: train_and_sample(int_pairs, int_lambda))
    clock(f"train + sample intervention ({args.intervention})")

    # regions: the held-out problems' categories, for the region-conditioned view (each region's own Δ)
    common: dict[str, Any] = dict(
        reference_rollouts=ref_rollouts, batch_size=16, regions=held_out_regions if region else None
    )
    dpo = validate_shift(audit, None, None, held_out, trained_rollouts=dpo_rollouts, **common, **gen)
    inter = validate_shift(audit, None, None, held_out, trained_rollouts=int_rollouts, **common, **gen)
    clock("encode rollouts + compare")
    dpo.save(out / "dpo_validation.json")
    inter.save(out / "intervention_validation.json")
    dpo.plot(out / "shift_dpo.png", title="DPO: predicted Δ vs measured shift")
    inter.plot(out / "shift_intervention.png", title=f"{args.intervention}: predicted Δ vs measured shift")

    n_flag = int(pred["flagged"].sum())
    results = {
        "preset": args.preset,
        "config": cfg,
        "intervention": args.intervention,
        "seed": args.seed,
        "data": {
            "n_pairs": len(pairs),
            "n_prompts": len(held_out),
            "n_rollouts_per_model": len(held_out) * cfg["n_samples"],
            "pair_side_effects": {
                "chosen": side_effects([[m[0]["content"] if cfg["chat"] else m for m in pairs["chosen"]]]),
                "rejected": side_effects([[m[0]["content"] if cfg["chat"] else m for m in pairs["rejected"]]]),
            },
        },
        "models": info,
        "audit": {
            "n_concepts": int(audit.concepts_.n_concepts_),
            "n_flagged_concepts": n_flag,
            "n_flagged_cells": int(audit.statistics_["flagged"].sum()),
            "regions": audit.region_names_,
            "n_truncated": int(audit.n_truncated_),
        },
        "target": target,
        "training": {"dpo": dpo_train, "intervention": {**int_train, **int_info}},
        "validation": {"dpo": dpo.summary(), "intervention": inter.summary()},
        "side_effects": {
            "reference": side_effects(ref_rollouts),
            "dpo": side_effects(dpo_rollouts),
            "intervention": side_effects(int_rollouts),
        },
        "intervention_effect": intervention_effect(dpo, inter, target["concept"]),
        "target_in_its_region": target_in_region(dpo, inter, target),
        "timing_s": clock.stages,
        "total_s": round(time.perf_counter() - clock.start, 1),
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
            "load_avg_at_end": list(os.getloadavg()),
            "backend": args.backend,
            "max_steps": args.max_steps,
            "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        },
    }
    from hf_saerl.core.serialization import write_json

    write_json(out / "results.json", results)
    m, mi = dpo.metrics, inter.metrics
    print(
        json.dumps(
            {
                "dpo_all": {k: m["all"][k] for k in ("n", "r2", "pearson", "sign_agreement")},
                **{
                    f"dpo_{view}": {k: m[view][k] for k in ("n", "r2", "pearson", "sign_agreement")}
                    for view in ("regions", "regions_flagged")
                    if view in m
                },
                "dpo_flagged": {k: m["flagged"][k] for k in ("n", "r2", "pearson", "sign_agreement")},
                "intervention_all": {k: mi["all"][k] for k in ("n", "r2", "pearson")},
                "intervention_effect": results["intervention_effect"],
                "total_s": results["total_s"],
            },
            indent=1,
            default=str,
        )
    )
    folders.cleanup()
    print(f"Wrote {out}/results.json")
    return results


if __name__ == "__main__":
    main()
