"""Pool per-token SAE activations into one vector per example.

Tokens arrive flattened: ``acts[n_tokens, d_sae]`` with ``row_ids[n_tokens]`` saying which example
each token belongs to (padding and BOS are already left out). Pooling can be fed in chunks, so a long
micro-batch never needs its whole ``n_tokens × d_sae`` matrix at once.

``mean`` (default)  mean activation over the example's tokens
``max``             maximum activation
``sum``             sum of activations
``last``            activation at the example's last token
``freq``            firing frequency: share of tokens where the latent is active (> 0), as the
                    Anatomy-of-Post-Training audit uses

:func:`pool_microbatches` is the pooling core of :class:`hf_saerl.SAEEncoder`: every requested pooling (of SAE
codes, and of the raw activations) from one pass over the micro-batches of one forward, encoding each token once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple

import numpy as np
import torch

from ..errors import InvalidParameterError
from .activations import ActivationBatch

__all__ = ["POOLINGS", "PooledSpans", "SegmentPooler", "check_poolings", "pool_microbatches", "pool_tokens"]

POOLINGS = ("mean", "max", "sum", "last", "freq")
_CHUNK_FLOATS = 1 << 24  # encode and pool at most this many (token x width) floats at once


class SegmentPooler:
    """Accumulates pooled activations for ``n_rows`` examples over chunks of tokens."""

    def __init__(self, method: str, n_rows: int, d_sae: int, device: torch.device | str = "cpu"):
        if method not in POOLINGS:
            raise InvalidParameterError(f"Unknown pooling {method!r}; choose one of {POOLINGS}.")
        self.method = method
        self.counts = torch.zeros(n_rows, dtype=torch.float32, device=device)
        init = -torch.inf if method == "max" else 0.0
        self.acc = torch.full((n_rows, d_sae), init, dtype=torch.float32, device=device)

    def update(self, acts: torch.Tensor, row_ids: torch.Tensor, is_last: torch.Tensor | None = None) -> None:
        """Add a chunk of token activations. ``is_last`` marks each example's final token (for ``last``)."""
        acts = acts.float()
        self.counts.index_add_(0, row_ids, torch.ones_like(row_ids, dtype=torch.float32))
        if self.method in ("mean", "sum"):
            self.acc.index_add_(0, row_ids, acts)
        elif self.method == "freq":
            self.acc.index_add_(0, row_ids, (acts > 0).float())
        elif self.method == "max":
            index = row_ids[:, None].expand_as(acts)
            self.acc.scatter_reduce_(0, index, acts, reduce="amax", include_self=True)
        else:  # last
            if is_last is None:
                raise InvalidParameterError(
                    "pooling='last' needs is_last (True at each example's final token); "
                    "pass it, or use pool_tokens, which derives it from row_ids."
                )
            self.acc[row_ids[is_last]] = acts[is_last]

    def result(self) -> torch.Tensor:
        """The pooled ``(n_rows, d_sae)`` float32 matrix; examples without tokens pool to zeros."""
        empty = self.counts == 0
        out = self.acc
        if self.method in ("mean", "freq"):
            out = out / self.counts.clamp(min=1)[:, None]
        out = out.clone()
        out[empty] = 0.0
        return out


def pool_tokens(acts: torch.Tensor, row_ids: torch.Tensor, n_rows: int, method: str = "mean") -> torch.Tensor:
    """Pool ``acts[n_tokens, d]`` per example given ``row_ids[n_tokens]`` (tokens of an example in order).

    Example:
        >>> import torch
        >>> acts = torch.tensor([[1.0, 0.0], [3.0, 2.0], [5.0, 0.0]])
        >>> pool_tokens(acts, torch.tensor([0, 0, 1]), n_rows=2, method="mean")
        tensor([[2., 1.],
                [5., 0.]])
    """
    pooler = SegmentPooler(method, n_rows, acts.shape[-1], device=acts.device)
    is_last = torch.ones_like(row_ids, dtype=torch.bool)
    is_last[:-1] = row_ids[1:] != row_ids[:-1]
    pooler.update(acts, row_ids, is_last)
    return pooler.result()


def check_poolings(poolings: Sequence[str]) -> list[str]:
    """``poolings`` without repeats, in their order; unknown names and an empty list are refused.

    Example:
        >>> check_poolings(["max", "freq", "max"])
        ['max', 'freq']
    """
    if isinstance(poolings, str):
        poolings = [poolings]
    poolings = list(dict.fromkeys(poolings))
    if not poolings:
        raise InvalidParameterError(
            f"poolings must name at least one of {POOLINGS}; pass e.g. poolings=('max',), "
            "or leave it unset for the encoder's own pooling."
        )
    bad = [p for p in poolings if p not in POOLINGS]
    if bad:
        raise InvalidParameterError(f"Unknown pooling(s) {bad}; choose from {POOLINGS}.")
    return poolings


class PooledSpans(NamedTuple):
    """Pooled activations of ``n`` token spans: ``pooled`` maps each pooling to an ``(n, width)`` float32 array,
    ``n_tokens`` (``(n,)`` int32) counts the tokens pooled per span, and ``raw`` maps each raw pooling to an
    ``(n, d_in)`` float32 array of the raw activations pooled that way (empty unless asked for)."""

    pooled: dict[str, np.ndarray]
    n_tokens: np.ndarray
    raw: dict[str, np.ndarray]


def pool_microbatches(
    batches: Iterable[ActivationBatch],
    n_rows: int,
    poolings: Sequence[str],
    width: int,
    *,
    encode: Callable[[torch.Tensor], torch.Tensor] | None = None,
    raw_poolings: Sequence[str] = (),
    raw_width: int | None = None,
) -> PooledSpans:
    """Pool the token activations of ``batches`` (from :meth:`ActivationReader.microbatches` over ``n_rows``
    texts) every way in ``poolings`` at once: ``encode`` (e.g. an SAE's ``encode``; ``None`` keeps the
    activations) runs once per token, in chunks of at most 2**24 floats, and every pooler reads the same codes.
    ``raw_poolings`` also pools the activations themselves (``raw_width`` wide) in the same pass. Rows without
    tokens pool to zeros.

    Example:
        >>> from hf_saerl.encoding.activations import ActivationBatch
        >>> batch = ActivationBatch([1, 0], torch.tensor([[1.0, 0.0], [3.0, 2.0], [5.0, 0.0]]),
        ...                         torch.tensor([0, 0, 1]), torch.tensor([False, True, True]))
        >>> out = pool_microbatches([batch], 2, ["mean", "max"], 2)
        >>> out.pooled["mean"].tolist(), out.pooled["max"].tolist(), out.n_tokens.tolist()
        ([[5.0, 0.0], [2.0, 1.0]], [[5.0, 0.0], [3.0, 2.0]], [1, 2])
    """
    poolings = check_poolings(poolings)
    raw_poolings = check_poolings(raw_poolings) if raw_poolings else []
    if raw_poolings and raw_width is None:
        raise InvalidParameterError(
            "raw_poolings needs raw_width= (the width of the activations, d_in); pass it, or drop raw_poolings."
        )
    # Only read when raw_poolings is non-empty, which the check above ties to a given raw_width.
    raw_d = raw_width if raw_width is not None else 0
    pooled = {p: np.zeros((n_rows, width), dtype=np.float32) for p in poolings}
    raw = {p: np.zeros((n_rows, raw_d), dtype=np.float32) for p in raw_poolings}
    n_tokens = np.zeros(n_rows, dtype=np.int32)
    for rows, flat, row_ids, is_last in batches:
        with torch.inference_mode():
            poolers = {p: SegmentPooler(p, len(rows), width, device=flat.device) for p in poolings}
            raw_poolers = {p: SegmentPooler(p, len(rows), raw_d, device=flat.device) for p in raw_poolings}
            chunk = max(1, _CHUNK_FLOATS // width)
            for s in range(0, flat.shape[0], chunk):
                x, seg, last = flat[s : s + chunk], row_ids[s : s + chunk], is_last[s : s + chunk]
                acts = (encode(x) if encode is not None else x).float()
                for pooler in poolers.values():
                    pooler.update(acts, seg, last)
                if raw_poolers:
                    xf = x.float()
                    for raw_pooler in raw_poolers.values():
                        raw_pooler.update(xf, seg, last)
            for p, pooler in poolers.items():
                pooled[p][rows] = pooler.result().cpu().numpy()
            for p, raw_pooler in raw_poolers.items():
                raw[p][rows] = raw_pooler.result().cpu().numpy()
            n_tokens[rows] = poolers[poolings[0]].counts.cpu().numpy().astype(np.int32)
    return PooledSpans(pooled, n_tokens, raw)
