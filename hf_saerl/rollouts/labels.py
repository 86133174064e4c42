"""The label columns a rollout run writes: per-prompt counts by failure kind, the Beta posterior, and the run's summary.

:class:`~hf_saerl.rollouts.labeller.RolloutLabeller` samples and scores; the functions here turn its samples and
rewards into columns (:func:`label_columns`, typed by :func:`label_features`) and its written columns into the
totals it reports (:func:`summarise_labels`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

from .backends import Completion
from .config import LabelColumns

logger = logging.getLogger(__name__)

__all__ = ["beta_posterior", "failure_kind", "label_columns", "label_features", "summarise_labels"]

#: share of completions cut off / of labels at 0 above which a run warns that its labels say little
_WARN_SHARE = 0.5


def beta_posterior(n_correct: int, n_samples: int, prior: tuple[float, float] = (1.0, 1.0)) -> tuple[float, float]:
    """Mean and standard deviation of the Beta posterior over a pass rate after ``n_correct`` of ``n_samples``:
    ``Beta(a + c, b + k - c)``, mean ``(a + c) / (a + b + k)``, variance ``mean (1 - mean) / (a + b + k + 1)``.

    Example:
        >>> [round(v, 4) for v in beta_posterior(0, 4) + beta_posterior(0, 32)]  # 0/4 and 0/32: not the same evidence
        [0.1667, 0.1409, 0.0294, 0.0286]
    """
    a, b = float(prior[0]) + n_correct, float(prior[1]) + n_samples - n_correct
    mean = a / (a + b)
    return mean, math.sqrt(mean * (1.0 - mean) / (a + b + 1.0))


def failure_kind(completion: Completion, correct: bool, verifier: Any) -> str:
    """``"correct"``, or why a sample failed: ``"truncated"`` (cut off at ``max_new_tokens``), ``"no_answer"``
    (it ended without an answer the verifier can read; empty ones too) or ``"wrong"`` (an answer, not the
    reference). A correct sample is correct even if it was cut off after its answer.

    Example:
        >>> from hf_saerl.rollouts import MathVerifier
        >>> [failure_kind(Completion(t, 5, cut), False, MathVerifier()) for t, cut in
        ...  [("The answer is 5", False), ("Let me think", False), ("So 2 + 3 is", True)]]
        ['wrong', 'no_answer', 'truncated']
    """
    if correct:
        return "correct"
    if completion.truncated:
        return "truncated"
    return "wrong" if verifier.has_answer(completion.text) else "no_answer"


def _count_names(c: LabelColumns) -> tuple[str, ...]:
    """The per-prompt label columns, in the order :func:`label_columns` fills them."""
    return (
        c.pass_rate,
        c.pass_rate_mean,
        c.pass_rate_sd,
        c.n_samples,
        c.n_correct,
        c.n_wrong,
        c.n_no_answer,
        c.n_truncated,
        c.n_empty,
    )


def label_features(columns: LabelColumns, *, keep_completions: bool = False) -> Any:
    """The ``datasets.Features`` of the columns :func:`label_columns` writes.

    Example:
        >>> from hf_saerl.rollouts import LabelColumns
        >>> label_features(LabelColumns())["n_correct"]
        Value('int32')
    """
    from datasets import Features, List, Value

    c = columns
    dtypes = ("float32",) * 3 + ("int32",) * 6  # the rate, the posterior's mean and sd; then the counts
    features = Features({name: Value(dtype) for name, dtype in zip(_count_names(c), dtypes, strict=True)})
    if keep_completions:
        features[c.completions] = List(Value("string"))
        features[c.rewards] = List(Value("float32"))
    return features


def label_columns(
    samples: Sequence[Sequence[Completion]],
    rewards: Sequence[Sequence[float | None]],
    verifier: Any,
    columns: LabelColumns,
    *,
    prior: tuple[float, float] = (1.0, 1.0),
    keep_completions: bool = False,
) -> dict[str, list]:
    """The label columns of a batch from each prompt's samples and their rewards: the pass rate, the Beta
    posterior's mean and sd, and the samples counted by :func:`failure_kind` (empty ones counted apart); with
    ``keep_completions`` also the texts and the rewards (``None`` as NaN).

    Example:
        >>> from hf_saerl.rollouts import LabelColumns, MathVerifier
        >>> row = [Completion("The answer is 4", 5, False), Completion("The answer is 5", 5, False)]
        >>> out = label_columns([row], [[1.0, 0.0]], MathVerifier(), LabelColumns())
        >>> out["pass_rate"], out["n_correct"], out["n_wrong"], out["n_no_answer"]
        ([0.5], [1], [1], [0])
    """
    c = columns
    names = _count_names(c)
    out: dict[str, list] = {name: [] for name in names}
    for row, scores in zip(samples, rewards, strict=True):
        kinds = [failure_kind(s, verifier.is_correct(r), verifier) for s, r in zip(row, scores, strict=True)]
        k, correct = len(row), kinds.count("correct")
        mean, sd = beta_posterior(correct, k, prior)
        values = (
            correct / k,
            mean,
            sd,
            k,
            correct,
            kinds.count("wrong"),
            kinds.count("no_answer"),
            kinds.count("truncated"),
            sum(not s.text.strip() for s in row),
        )
        for name, value in zip(names, values, strict=True):
            out[name].append(value)
    if keep_completions:
        out[c.completions] = [[s.text for s in row] for row in samples]
        out[c.rewards] = [[math.nan if r is None else r for r in row] for row in rewards]
    return out


def summarise_labels(
    out: Any,
    columns: LabelColumns,
    max_new_tokens: int,
    *,
    tokens: int = 0,
    seconds: float = 0.0,
    log: logging.Logger = logger,
) -> dict[str, Any]:
    """A run's totals from its written columns (so they hold under ``num_proc`` and on a cache hit), logged to
    ``log``, with a warning where the labels say little (empty completions; most cut off at ``max_new_tokens``;
    most prompts never solved). ``tokens`` and ``seconds`` are what this process generated and how long it took.

    Example:
        >>> import datasets
        >>> from hf_saerl.rollouts import LabelColumns
        >>> counts = {"n_samples": [4, 4], "n_correct": [0, 3], "n_wrong": [4, 1], "n_no_answer": [0, 0],
        ...           "n_truncated": [0, 0], "n_empty": [0, 0], "pass_rate": [0.0, 0.75], "pass_rate_mean": [1/6, 2/3]}
        >>> summary = summarise_labels(datasets.Dataset.from_dict(counts), LabelColumns(), 64)
        >>> summary["samples"], summary["correct"], summary["rows_never_solved"], summary["rows_in_band_0.1_0.9"]
        (8, 3, 1, 2)
    """
    import numpy as np

    c = columns
    summary: dict[str, Any] = {"rows": len(out)}
    if not len(out):
        return summary
    cols = out.with_format("numpy", columns=[name for name in _count_names(c) if name != c.pass_rate_sd])[:]
    total = int(np.sum(cols[c.n_samples]))
    summary.update(
        {
            "samples": total,
            "correct": int(np.sum(cols[c.n_correct])),
            "wrong": int(np.sum(cols[c.n_wrong])),
            "no_answer": int(np.sum(cols[c.n_no_answer])),
            "truncated": int(np.sum(cols[c.n_truncated])),
            "empty": int(np.sum(cols[c.n_empty])),
            "mean_pass_rate": float(np.mean(cols[c.pass_rate])),
            "rows_never_solved": int(np.sum(cols[c.n_correct] == 0)),
            "rows_in_band_0.1_0.9": int(np.sum((cols[c.pass_rate_mean] >= 0.1) & (cols[c.pass_rate_mean] <= 0.9))),
            "generated_tokens": tokens if seconds else None,
            "tokens_per_s": round(tokens / seconds, 1) if seconds and tokens else None,
        }
    )
    log.info(
        "RolloutLabeller: %d rows, %d samples: %d correct, %d wrong, %d without an answer, %d cut off at "
        "max_new_tokens (%d empty); mean pass rate %.3f%s.",
        len(out),
        total,
        summary["correct"],
        summary["wrong"],
        summary["no_answer"],
        summary["truncated"],
        summary["empty"],
        summary["mean_pass_rate"],
        f", {summary['tokens_per_s']} tokens/s" if summary["tokens_per_s"] else "",
    )
    if summary["empty"]:
        log.warning(
            "RolloutLabeller: %d of %d completions were empty (scored 0; see column %r). Raise "
            "max_new_tokens or check the chat template and instruction.",
            summary["empty"],
            total,
            c.n_empty,
        )
    if summary["truncated"] > _WARN_SHARE * total:
        log.warning(
            "RolloutLabeller: %d of %d completions (%.0f%%) were cut off at max_new_tokens=%d, so the "
            "labels mostly measure whether an answer fits, not difficulty. Raise max_new_tokens, or "
            "use an instruction that asks for a short answer.",
            summary["truncated"],
            total,
            100 * summary["truncated"] / total,
            max_new_tokens,
        )
    if summary["rows_never_solved"] > _WARN_SHARE * len(out):
        log.warning(
            "RolloutLabeller: %d of %d prompts (%.0f%%) were never solved (label 0): a difficulty "
            "proxy cannot rank what the labels do not separate. Pick easier task configurations "
            "(a pilot: hf_saerl.rollouts.calibration), sample more where 0 of k (max_samples=), or "
            "give answers room (max_new_tokens=).",
            summary["rows_never_solved"],
            len(out),
            100 * summary["rows_never_solved"] / len(out),
        )
    return summary
