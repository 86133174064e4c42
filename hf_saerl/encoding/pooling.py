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
"""

from __future__ import annotations

import torch

POOLINGS = ("mean", "max", "sum", "last", "freq")


class SegmentPooler:
    """Accumulates pooled activations for ``n_rows`` examples over chunks of tokens."""

    def __init__(self, method: str, n_rows: int, d_sae: int, device: torch.device | str = "cpu"):
        if method not in POOLINGS:
            raise ValueError(f"Unknown pooling {method!r}; choose one of {POOLINGS}.")
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
                raise ValueError("pooling='last' needs is_last.")
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
