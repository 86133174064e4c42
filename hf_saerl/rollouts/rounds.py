"""Sampling in rounds: one round of completions from any backend, and which rows earn another under the budget."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ..errors import InvalidParameterError
from .backends import Completion
from .config import SamplingConfig
from .verifiers import completion_text


def _generate_round(
    backend: Any,
    prompts: list[str],
    n: int,
    sampling: SamplingConfig,
    seeds: list[int],
    tokenizer: Any,
    on_step: Callable[[int, int], None],
) -> tuple[list[list[Completion]], float]:
    """``n`` completions per prompt from ``backend``, as :class:`Completion` objects (token counts and cut-offs
    from the engine where it reports them, else from the tokenizer), checked for shape; and the seconds the
    backend took.

    Example:
        >>> class Echo:  # a plain Generator: texts only
        ...     def generate(self, prompts, n, sampling, seeds=None):
        ...         return [[p + "!"] * n for p in prompts]
        >>> out, _ = _generate_round(Echo(), ["hi"], 2, SamplingConfig(), [0], None, lambda t, f: None)
        >>> out[0][0]
        Completion(text='hi!', n_tokens=0, truncated=None)
    """
    start = time.perf_counter()
    engine = sampling.engine_settings()
    if callable(getattr(backend, "generate_completions", None)):
        generated: Any = backend.generate_completions(prompts, n, engine, seeds=seeds, on_step=on_step)
    else:
        generated = backend.generate(prompts, n, engine, seeds=seeds)
    seconds = time.perf_counter() - start
    if len(generated) != len(prompts) or any(len(row) != n for row in generated):
        shapes = [len(row) for row in generated][:10]
        raise InvalidParameterError(
            f"The backend {type(backend).__name__} returned {len(generated)} rows with {shapes} samples for "
            f"{len(prompts)} prompts x n={n}. Its generate(prompts, n, ...) must return n strings per prompt."
        )
    out = [
        [c if isinstance(c, Completion) else Completion(completion_text(c), -1, None) for c in row] for row in generated
    ]
    unknown = [(i, j) for i, row in enumerate(out) for j, c in enumerate(row) if c.n_tokens < 0 or c.truncated is None]
    if unknown:  # a plain Generator: count tokens with the tokenizer; cut off when they fill max_new_tokens
        texts = [out[i][j].text for i, j in unknown]
        counts = (
            [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]
            if tokenizer is not None
            else [0] * len(texts)
        )
        for (i, j), count in zip(unknown, counts, strict=True):
            known = out[i][j]
            count = known.n_tokens if known.n_tokens >= 0 else count
            cut = (
                known.truncated
                if known.truncated is not None
                else (None if tokenizer is None else count >= sampling.max_new_tokens)
            )
            out[i][j] = Completion(known.text, count, cut)
    return out, seconds


def _next_round(
    todo: list[int],
    samples: list[list[Completion]],
    rewards: list[list[float | None]],
    seeds: list[int],
    sampling: SamplingConfig,
    verifier: Any,
    budget_left: int | None,
) -> list[int]:
    """The rows of ``todo`` that get another round: all their samples agree (0 of k or k of k), the cap leaves
    room, and the token budget (``budget_left``; ``None``: no budget) covers their expected cost. When the
    budget covers only some, the rows with the smallest prompt seeds go first (a property of the prompt, not of
    its position in the batch).

    Example:
        >>> from hf_saerl.rollouts.verifiers import MathVerifier
        >>> samples = [[Completion("4", 10, False)] * 2, [Completion("4", 10, False), Completion("5", 10, False)]]
        >>> cfg = SamplingConfig(n=2, round_size=2, max_samples=4)
        >>> _next_round([0, 1], samples, [[1.0, 1.0], [1.0, 0.0]], [7, 3], cfg, MathVerifier(), None)
        [0]
    """
    if not sampling.adaptive:
        return []
    unresolved = []
    for i in todo:
        k = len(samples[i])
        correct = sum(verifier.is_correct(r) for r in rewards[i])
        if k < sampling.cap and correct in (0, k):
            unresolved.append(i)
    if budget_left is None or not unresolved:
        return unresolved
    kept = []
    left = budget_left
    for i in sorted(unresolved, key=lambda i: seeds[i]):
        per_sample = max(1.0, sum(c.n_tokens for c in samples[i]) / len(samples[i]))
        cost = per_sample * min(sampling.extra_round_size, sampling.cap - len(samples[i]))
        if cost > left:
            continue
        left -= int(cost)
        kept.append(i)
    return sorted(kept)
