"""Encode the spans of preference pairs: each response with its prompt as context, and the prompt alone.

A response span is pooled over **its own tokens only**: the model reads ``prompt + response`` (so the
response is seen in context) and every position before the first response token is masked out of the
pooling (:meth:`hf_saerl.SAEEncoder.pool_spans` with ``pool_from=``, which gives every requested pooling
from one forward pass and one SAE encode per span; prompts alone go through the same loop). Prompt and
response are tokenized separately and their ids concatenated, so the span boundary is exact for any tokenizer.

Rows may be plain strings, or chat messages (TRL's conversational format: ``prompt`` a list of
messages, ``chosen`` / ``rejected`` a list holding the assistant turn). Chat rows are rendered through
the tokenizer's chat template; the response is what the full conversation adds to the prompt rendered
with ``add_generation_prompt=True``.

Example:
    >>> from hf_saerl import SAEEncoder
    >>> from hf_saerl.audit.spans import encode_response_spans
    >>> from hf_saerl.testing import tiny_llama, tiny_sae, tiny_tokenizer
    >>> enc = SAEEncoder(tiny_llama(), tiny_sae(), tokenizer=tiny_tokenizer())
    >>> spans = encode_response_spans(enc, ["Q: 2+2?"], ["A: 4"], poolings=("max", "freq"))
    >>> spans.pooled["max"].shape, int(spans.n_tokens[0])
    ((1, 128), 4)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..core.validation import is_missing
from ..errors import InvalidParameterError
from ..models.text import render_chat

logger = logging.getLogger(__name__)

__all__ = ["SpanFeatures", "encode_prompts", "encode_response_spans", "render_pairs"]


@dataclass
class SpanFeatures:
    """Pooled SAE features of one span per row.

    ``pooled``: pooling name -> CSR ``(n, d_sae)`` float32; ``n_tokens``: tokens pooled per row;
    ``truncated``: whether the row was cut to the encoder's ``max_length``.
    """

    pooled: dict[str, sp.csr_matrix]
    n_tokens: np.ndarray
    truncated: np.ndarray


def _message_text(messages: Any) -> str:
    return "".join(str(m.get("content", "")) for m in messages if isinstance(m, dict))


def render_pairs(
    tokenizer: Any,
    prompts: Sequence[Any],
    responses: Sequence[Any],
    *,
    chat_template: bool = False,
    column: str = "response",
) -> tuple[list[str], list[str], bool]:
    """Turn rows into ``(prompt_texts, response_texts, rendered)``.

    ``rendered`` is True when the chat template was applied (the prompt text then carries its own
    special tokens). Raises an :class:`~hf_saerl.errors.InvalidParameterError` (a ``ValueError``) naming the
    rows for missing (None / NaN) or empty responses.
    """
    if len(prompts) != len(responses):
        raise InvalidParameterError(
            f"Got {len(prompts)} prompts but {len(responses)} {column} responses; they must "
            "pair up. Pass one response per prompt, or select the rows that have both."
        )
    bad = [i for i, r in enumerate(responses) if is_missing(r)]
    if bad:
        raise InvalidParameterError(
            f"{len(bad)} missing (None/NaN) {column!r} response(s) at rows {bad[:10]}. Drop "
            f"these pairs first, e.g. dataset.filter(lambda r: r[{column!r}] is not None)."
        )
    bad = [i for i, p in enumerate(prompts) if is_missing(p)]
    if bad:
        raise InvalidParameterError(
            f"{len(bad)} missing (None/NaN) prompt(s) at rows {bad[:10]}. Use '' for no prompt, or drop them."
        )
    is_chat = any(isinstance(x, (list, tuple)) for x in list(prompts) + list(responses))
    if not (is_chat or chat_template):
        empty = [i for i, r in enumerate(responses) if not str(r).strip()]
        if empty:
            raise InvalidParameterError(
                f"{len(empty)} empty {column!r} response(s) at rows {empty[:10]}: an empty "
                "span has no features to compare. Drop these pairs first, e.g. "
                f"dataset.filter(lambda r: bool(str(r[{column!r}]).strip()))."
            )
        return [str(p) for p in prompts], [str(r) for r in responses], False
    if getattr(tokenizer, "chat_template", None) is None:
        raise InvalidParameterError(
            "The rows hold chat messages (or chat_template=True), but the tokenizer has no "
            "chat template. Set tokenizer.chat_template or pass plain strings."
        )
    prompt_texts, response_texts, empty = [], [], []
    for i, (p, r) in enumerate(zip(prompts, responses, strict=True)):
        p_msgs = [{"role": "user", "content": p}] if isinstance(p, str) else list(p)
        r_msgs = [{"role": "assistant", "content": r}] if isinstance(r, str) else list(r)
        if not _message_text(r_msgs).strip():
            empty.append(i)
            continue
        p_text = tokenizer.apply_chat_template(p_msgs, tokenize=False, add_generation_prompt=True)
        full = tokenizer.apply_chat_template(p_msgs + r_msgs, tokenize=False, add_generation_prompt=False)
        if not full.startswith(p_text):
            raise InvalidParameterError(
                f"Row {i}: the chat template renders the conversation so that it does not start with the rendered "
                "prompt (add_generation_prompt=True), so the response span cannot be located. Pass plain strings "
                "(prompt / response text) instead."
            )
        prompt_texts.append(p_text)
        response_texts.append(full[len(p_text) :])
    if empty:
        raise InvalidParameterError(
            f"{len(empty)} empty {column!r} response(s) at rows {empty[:10]}: an empty span "
            "has no features to compare. Drop these pairs first, or fill in the responses."
        )
    return prompt_texts, response_texts, True


def _span_ids(
    tokenizer: Any, prompt_texts: list[str], response_texts: list[str], rendered: bool, max_length: int
) -> tuple[list[list[int]], list[int], list[bool]]:
    p_ids = tokenizer(prompt_texts, add_special_tokens=not rendered, truncation=False)["input_ids"]
    r_ids = tokenizer(response_texts, add_special_tokens=False, truncation=False)["input_ids"]
    ids, starts, truncated = [], [], []
    for p, r in zip(p_ids, r_ids, strict=True):
        p, r = list(p), list(r)
        cut = len(p) + len(r) > max_length
        if cut:  # keep the response; cut the prompt from the left (its first token, usually BOS, stays)
            keep_p = min(len(p), max(max_length - len(r), 1))
            p = p[:keep_p] if keep_p <= 1 else p[:1] + p[len(p) - (keep_p - 1) :]
            r = r[: max_length - len(p)]
        ids.append(p + r)
        starts.append(len(p))
        truncated.append(cut)
    return ids, starts, truncated


def _to_csr(dense: np.ndarray, top_k: int | None) -> sp.csr_matrix:
    if top_k is not None and dense.shape[1] > top_k:
        part = np.argpartition(-dense, top_k - 1, axis=1)[:, top_k:]
        dense = dense.copy()
        np.put_along_axis(dense, part, 0.0, axis=1)
    return sp.csr_matrix(dense, dtype=np.float32)


def _pool_rows(
    encoder: Any,
    ids: list[list[int]],
    starts: list[int] | None,
    poolings: Sequence[str],
    top_k: int | None,
    batch_size: int,
    progress: bool,
    desc: str,
) -> tuple[dict[str, sp.csr_matrix], np.ndarray]:
    """Pool ``ids`` (from ``starts`` when given) ``batch_size`` rows at a time, one forward per row for every
    pooling; each chunk is densified to ``(batch_size, d_sae)``, cut to ``top_k`` and stacked as CSR."""
    from tqdm.auto import tqdm

    blocks: dict[str, list[sp.csr_matrix]] = {p: [] for p in poolings}
    n_tokens = np.zeros(len(ids), dtype=np.int32)
    chunks = range(0, len(ids), batch_size)
    for s in tqdm(chunks, desc=desc, disable=not progress, total=len(chunks)):
        spans = encoder.pool_spans(
            ids[s : s + batch_size], poolings, pool_from=None if starts is None else starts[s : s + batch_size]
        )
        for pooling in blocks:
            blocks[pooling].append(_to_csr(spans.pooled[pooling], top_k))
        n_tokens[s : s + batch_size] = spans.n_tokens
    empty = sp.csr_matrix(np.zeros((0, int(encoder.d_sae)), dtype=np.float32))
    out = {p: (sp.vstack(b, format="csr") if b else empty.copy()) for p, b in blocks.items()}
    return out, n_tokens


def encode_response_spans(
    encoder: Any,
    prompts: Sequence[Any],
    responses: Sequence[Any],
    *,
    poolings: Sequence[str] = ("max", "freq"),
    top_k: int | None = None,
    batch_size: int = 32,
    progress: bool = False,
    column: str = "response",
) -> SpanFeatures:
    """Pool each response's SAE latents over its own tokens, with its prompt as context.

    Args:
        encoder: an :class:`hf_saerl.SAEEncoder` (its ``max_length`` caps prompt + response; the prompt is cut
            from the left first, and truncated rows are counted and logged).
        prompts, responses: strings or chat message lists (see module docs).
        poolings: pooling names of ``SAEEncoder`` (``max``, ``freq``, ``mean``, ``sum``, ``last``).
        top_k: keep only the top-k latents per row and pooling (``None``: every non-zero).
        batch_size: rows per forward chunk (each chunk is densified to ``(batch_size, d_sae)`` then made sparse).
        progress: show a tqdm bar.
        column: name used in error messages.
    """
    tok = encoder.tokenizer
    p_texts, r_texts, rendered = render_pairs(
        tok, prompts, responses, chat_template=encoder.text.chat_template, column=column
    )
    ids, starts, truncated = _span_ids(tok, p_texts, r_texts, rendered, encoder.max_length)
    out, n_tokens = _pool_rows(encoder, ids, starts, poolings, top_k, batch_size, progress, f"{column} spans")
    n_trunc = int(np.sum(truncated))
    if n_trunc:
        logger.warning(
            "%d of %d %s spans exceeded max_length=%d tokens with their prompt; prompts were cut from the "
            "left (then responses from the right).",
            n_trunc,
            len(ids),
            column,
            encoder.max_length,
        )
    return SpanFeatures(out, n_tokens, np.asarray(truncated, dtype=bool))


def encode_prompts(
    encoder: Any,
    prompts: Sequence[Any],
    *,
    poolings: Sequence[str] = ("max",),
    top_k: int | None = None,
    batch_size: int = 32,
    progress: bool = False,
) -> SpanFeatures:
    """Pool each prompt on its own (BOS left out as the encoder does). Empty prompts give empty rows."""
    tok = encoder.tokenizer
    ids, truncated = [], []
    for i, p in enumerate(prompts):
        if is_missing(p):
            raise InvalidParameterError(
                f"Prompt at row {i} is missing (None/NaN). Use '' for no prompt, or drop the row."
            )
        rendered = isinstance(p, (list, tuple)) or encoder.text.chat_template
        text = render_chat(tok, p, add_generation_prompt=True) if rendered else str(p)
        row = tok(text, add_special_tokens=not rendered, truncation=False)["input_ids"]
        truncated.append(len(row) > encoder.max_length)
        ids.append(list(row)[: encoder.max_length])
    out, n_tokens = _pool_rows(encoder, ids, None, poolings, top_k, batch_size, progress, "prompts")
    return SpanFeatures(out, n_tokens, np.asarray(truncated, dtype=bool))
