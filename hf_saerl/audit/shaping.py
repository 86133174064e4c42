"""DPO with concept reward shaping: ``−log σ(β·((π_c − ref_c) − (π_r − ref_r)) + λ·margin)``.

``margin`` is the per-pair concept score on chosen minus on rejected (the ``concept_margin`` column).
``λ > 0`` gives pairs whose chosen response carries the concept a head start, so the gradient that
would teach the concept shrinks (**suppress**); ``λ < 0`` handicaps them (**amplify**).

Example:
    >>> import torch
    >>> pc, pr, rc, rr = torch.tensor([-1.0]), torch.tensor([-2.0]), torch.tensor([-1.5]), torch.tensor([-1.5])
    >>> round(dpo_loss(pc, pr, rc, rr, beta=1.0).item(), 4)  # −log σ(1)
    0.3133
    >>> round(dpo_loss(pc, pr, rc, rr, beta=1.0, margin=torch.tensor([1.0]), lam=-1.0).item(), 4)  # −log σ(0)
    0.6931
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import InvalidParameterError

__all__ = ["dpo_loss"]


def dpo_loss(policy_chosen_logps: torch.Tensor, policy_rejected_logps: torch.Tensor,
             ref_chosen_logps: torch.Tensor, ref_rejected_logps: torch.Tensor, *, beta: float = 0.1,
             margin: torch.Tensor | None = None, lam: float = 0.0, reduction: str = "mean") -> torch.Tensor:
    """The (shaped) sigmoid DPO loss from summed sequence log-probs, shape ``(batch,)`` each.

    ``reduction``: ``"mean"``, ``"sum"`` or ``"none"`` (per pair).
    """
    logits = beta * ((policy_chosen_logps - ref_chosen_logps) - (policy_rejected_logps - ref_rejected_logps))
    if margin is not None and lam != 0.0:
        margin = torch.as_tensor(margin, dtype=logits.dtype, device=logits.device)
        if margin.shape != logits.shape:
            raise InvalidParameterError(f"margin has shape {tuple(margin.shape)} but the batch has "
                                        f"{tuple(logits.shape)} pairs; pass one margin per pair.")
        logits = logits + lam * margin
    losses = -F.logsigmoid(logits)
    if reduction == "none":
        return losses
    if reduction == "sum":
        return losses.sum()
    if reduction == "mean":
        return losses.mean()
    raise InvalidParameterError(f"reduction must be 'mean', 'sum' or 'none'; got {reduction!r}.")
