"""Scoring a batch's completions with a verifier: empty ones score 0, unscored ones are logged, a failing row named."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..errors import HfSaerlError
from .verifiers import VerificationError, completion_text

#: the arguments TRL gives reward functions itself: a dataset column of one of these names is not passed on
_TRL_RESERVED = ("prompt", "prompts", "completion", "completions", "completion_ids")


def _score(
    verifier: Any,
    batch: Mapping[str, Sequence[Any]],
    raw: list[Any],
    texts: list[list[str]],
    tokenizer: Any,
    log: logging.Logger,
) -> list[list[float | None]]:
    """The rewards of ``texts`` (the completions of each row; none for a row not sampled this round), scored as
    TRL calls a reward function: ``prompts`` (``raw``), ``completions``, ``completion_ids`` (with a tokenizer)
    and the batch's other columns. Empty completions score 0 without the verifier; a reward of ``None`` is
    kept and counted in a warning on ``log``.

    Example:
        >>> from hf_saerl.rollouts.verifiers import MathVerifier
        >>> batch = {"prompt": ["2+2?", "2+3?"], "answer": ["4", "5"]}
        >>> _score(MathVerifier(), batch, batch["prompt"], [["4", " "], []], None, logging.getLogger(__name__))
        [[1.0, 0.0], []]
    """
    token_ids = _token_ids(texts, tokenizer)
    positions = [(i, j) for i, row in enumerate(texts) for j, t in enumerate(row) if t.strip()]
    rewards: list[list[float | None]] = [[0.0] * len(row) for row in texts]  # empty completions score 0
    if not positions:
        return rewards
    scored = _verify(verifier, batch, raw, texts, token_ids, positions)
    unscored = 0
    for (i, j), reward in zip(positions, scored, strict=True):
        rewards[i][j] = reward
        unscored += reward is None
    if unscored:
        log.warning(
            "The %s verifier could not score %d of %d completions in this batch (reward None); they "
            "count as not correct.",
            verifier.__name__,
            unscored,
            len(positions),
        )
    return rewards


def _token_ids(texts: list[list[str]], tokenizer: Any) -> list[list[list[int]]] | None:
    """The completions' token ids (what TRL passes reward functions as ``completion_ids``); None without a
    tokenizer."""
    if tokenizer is None:
        return None
    flat = [t for row in texts for t in row]
    encoded = tokenizer(flat, add_special_tokens=False)["input_ids"] if flat else []
    out, k = [], 0
    for row in texts:
        out.append([list(ids) for ids in encoded[k : k + len(row)]])
        k += len(row)
    return out


def _verify(
    verifier: Any,
    batch: Mapping[str, Sequence[Any]],
    raw: list[Any],
    texts: list[list[str]],
    token_ids: list[list[list[int]]] | None,
    positions: list[tuple[int, int]],
) -> list[float | None]:
    """One verifier call for the completions at ``positions`` ((row, sample) pairs); a verifier that raises is
    re-raised as a :class:`VerificationError` naming the first row it fails on alone."""
    columns = {k: list(v) for k, v in batch.items() if k not in _TRL_RESERVED}

    def call(pos: list[tuple[int, int]]) -> list[float | None]:
        kwargs: dict[str, Any] = {k: [v[i] for i, _ in pos] for k, v in columns.items()}
        if token_ids is not None:
            kwargs["completion_ids"] = [token_ids[i][j] for i, j in pos]
        return verifier(prompts=[raw[i] for i, _ in pos], completions=[texts[i][j] for i, j in pos], **kwargs)

    try:
        return call(positions)
    except HfSaerlError:
        raise
    except Exception as err:
        row = _failing_row(call, positions)
        excerpt = str(completion_text(raw[row]))[:60] if row is not None else None
        where = f"row {row} of this batch (prompt {excerpt!r})" if row is not None else "this batch"
        raise VerificationError(
            f"The verifier {verifier.__name__!r} raised {type(err).__name__}: {err} while scoring {where}. "
            "Fix the verifier or that row's reference answer, or filter the row out before labelling."
        ) from err


def _failing_row(call: Callable[[list[tuple[int, int]]], Any], positions: list[tuple[int, int]]) -> int | None:
    """The first row whose completions alone make ``call`` raise, or None when each row passes alone."""
    for row in dict.fromkeys(i for i, _ in positions):
        try:
            call([p for p in positions if p[0] == row])
        except Exception:  # noqa: BLE001 - finding which row a user's verifier fails on; its error is re-raised
            return row
    return None
