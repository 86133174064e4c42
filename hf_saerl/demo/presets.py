"""The worked example's presets: the reasoning-gym RL pool, the texts its SAE is trained on, and a CI-sized SAE preset."""

from __future__ import annotations

from typing import Any

#: A small preset for CI and smoke runs. Measured under the same load: 3.4k tokens, 18 s collection +
#: 12 s training, explained variance 0.58, L0 16, 9.6% dead latents (a smoke test, not a useful SAE).
CI_SAE_TRAINING: dict[str, Any] = {
    "d_sae": 512,
    "k": 16,
    "total_tokens": 25_000,
    "batch_size_tokens": 512,
    "lr": 2e-3,
    "max_length": 96,
    "max_activation_tokens": 3_000,
}


def _pilot(names: tuple[str, ...]) -> list[Any]:
    from ..rollouts.calibration import PILOT_CONFIGS

    by_name = {t.name: t for t in PILOT_CONFIGS}
    return [by_name[name] for name in names]


def champ_sae_texts(seed: int = 0, n_responses: int | None = 4000) -> list[str]:
    """CHAMP text for SAE training: the 270 problems, their reference solutions, hints and concepts, and
    ``n_responses`` randomly chosen recorded model responses (all 19,440 with ``None``), shuffled with
    ``seed``. With ``max_activation_tokens`` set, :func:`train_sae` reads them in this order until
    it has enough tokens, so the mix of kinds stays even."""
    import random

    from .champ import load_champ, load_champ_attempts, load_champ_texts

    champ = load_champ()
    responses = [r for r in load_champ_attempts()["response"] if r and r.strip()]
    rng = random.Random(seed)
    if n_responses is not None and n_responses < len(responses):
        responses = rng.sample(responses, n_responses)
    texts = list(champ["problem"]) + [s for s in champ["solution"] if s] + list(load_champ_texts()["text"]) + responses
    rng.shuffle(texts)
    return texts


#: The RL pool: reasoning-gym task configs where SmolLM2-135M-Instruct has graded success at T=0.7 with answers of
#: up to 32 tokens and :data:`ROLLOUT_INSTRUCTION`, chosen by the pilots (``hf-saerl calibrate``; tables in
#: ``docs/results/calibration/``, with DESIGN.md section 7's earlier figures at the same settings), arranged as a
#: ladder: two families at two difficulty knobs each, so the pool spans easy to hard *within* a family (what the
#: curriculum orders) as well as across families. Measured mean pass rates: 1-digit additions 0.55, 1-digit
#: products 0.52-0.63, 1-2-digit products 0.28, sums of two 1-digit numbers 0.28-0.38, sums of two 2-digit numbers
#: 0.06-0.19, gcd of numbers up to 20 0.18-0.38. The pool of the first fresh-clone run (1-digit +/-, lcm <= 12 and
#: aiw family riddles in place of the additions and the two harder knobs) spanned only 0.18-0.39 by task, too
#: narrow a range to order (issue #21). Each entry is ``(task, family, config)``, named as in
#: :data:`hf_saerl.rollouts.calibration.PILOT_CONFIGS`.
POOL_TASKS: tuple[tuple[str, str, dict[str, Any]], ...] = tuple(
    (t.name, t.family, dict(t.config))
    for t in _pilot(
        (
            "arithmetic 2x1-digit +",
            "product 1-digit",
            "product 1-2-digit",
            "sum 2x1-digit",
            "sum 2x2-digit",
            "gcd <= 20",
        )
    )
)

#: The answer format the policy is asked for, the pilot's: the short answer reasoning-gym's scorer wants, with room
#: for the sentence SmolLM2 tends to wrap it in (``DemoConfig.rollout_max_new_tokens``, 32 by default).
ROLLOUT_INSTRUCTION = "Answer with only the final answer."


def reasoning_gym_pool(per_task: int, seed: int = 0, tasks: tuple[tuple[str, str, dict[str, Any]], ...] = POOL_TASKS):
    """The demo's RL pool: ``per_task`` seeded reasoning-gym prompts of each task in ``tasks``, as one ``Dataset``
    with ``row_id``, ``task``, ``prompt`` (also as ``text``, which the encoder reads), ``answer``, ``metadata`` and
    ``source_dataset`` (what :class:`~hf_saerl.rollouts.ReasoningGymVerifier` reads)."""
    from datasets import concatenate_datasets

    from ..rollouts.tasks import reasoning_gym_dataset

    parts = []
    for t, (task, family, cfg) in enumerate(tasks):
        part = reasoning_gym_dataset(family, per_task, seed=seed * 1000 + t, **cfg)
        parts.append(part.add_column("task", [task] * len(part)))
    pool = concatenate_datasets(parts)
    pool = pool.add_column("row_id", [f"rg-{i:04d}" for i in range(len(pool))])
    pool = pool.add_column("text", list(pool["prompt"]))
    return pool.select_columns(["row_id", "task", "prompt", "text", "answer", "metadata", "source_dataset"])


def sae_texts(pool_prompts: list[str], seed: int = 0, n_responses: int | None = 4000) -> list[str]:
    """The demo SAE's training text: the RL pool's prompts first (so a token-capped collection covers them),
    then :func:`champ_sae_texts`."""
    return list(pool_prompts) + champ_sae_texts(seed, n_responses)
