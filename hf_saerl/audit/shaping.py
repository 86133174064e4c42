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

from ..core.validation import check_real
from ..errors import InvalidParameterError, NonFiniteError

__all__ = ["dpo_loss"]


def dpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    *,
    beta: float = 0.1,
    margin: torch.Tensor | None = None,
    lam: float = 0.0,
    reduction: str = "mean",
) -> torch.Tensor:
    """The (shaped) sigmoid DPO loss from summed sequence log-probs, shape ``(batch,)`` each.

    ``reduction``: ``"mean"``, ``"sum"`` or ``"none"`` (per pair). Refused, naming the argument: a ``beta`` that
    is not a finite number > 0, a ``lam`` that is not finite, ``lam != 0`` without a ``margin``, log-probs or a
    ``margin`` whose shapes differ (they would broadcast into a wrong loss instead of pairing rows), and a NaN or
    infinite margin.
    """
    beta = check_real("beta", beta, "Pass the DPO temperature, e.g. beta=0.1.", low=0.0, low_open=True)
    lam = check_real("lam", lam, "Pass a finite λ, e.g. lam=1.0 to suppress the concept, or lam=0.0 for vanilla DPO.")
    logps = {
        "policy_chosen_logps": policy_chosen_logps,
        "policy_rejected_logps": policy_rejected_logps,
        "ref_chosen_logps": ref_chosen_logps,
        "ref_rejected_logps": ref_rejected_logps,
    }
    shapes = {name: tuple(torch.as_tensor(value).shape) for name, value in logps.items()}
    if len(set(shapes.values())) > 1 or len(shapes["policy_chosen_logps"]) != 1:
        raise InvalidParameterError(
            f"The four log-prob tensors must each have shape (batch,), one value per pair, "
            f"got {shapes}. Pass summed sequence log-probs of the same pairs, in the same "
            "order (e.g. .sum(-1) over the token axis)."
        )
    logits = beta * ((policy_chosen_logps - ref_chosen_logps) - (policy_rejected_logps - ref_rejected_logps))
    if margin is None and lam != 0.0:
        raise InvalidParameterError(
            f"lam={lam} shapes the loss with a margin, but margin is None. Pass margin= (the "
            "batch's 'concept_margin' values), or lam=0.0 for vanilla DPO."
        )
    if margin is not None:
        margin = torch.as_tensor(margin, dtype=logits.dtype, device=logits.device)
        if margin.shape != logits.shape:
            raise InvalidParameterError(
                f"margin has shape {tuple(margin.shape)} but the batch has "
                f"{tuple(logits.shape)} pairs; pass one margin per pair."
            )
        bad = torch.nonzero(~torch.isfinite(margin)).flatten().tolist()
        if bad:
            raise NonFiniteError(
                f"margin has {len(bad)} NaN or infinite value(s) (first: {margin[bad[0]].item()} at "
                f"pair {bad[0]}). Recompute it with hf_saerl.audit.concept_margin, or drop those "
                "pairs."
            )
        if lam != 0.0:
            logits = logits + lam * margin
    losses = -F.logsigmoid(logits)
    if reduction == "none":
        return losses
    if reduction == "sum":
        return losses.sum()
    if reduction == "mean":
        return losses.mean()
    raise InvalidParameterError(f"reduction must be 'mean', 'sum' or 'none'; got {reduction!r}.")
