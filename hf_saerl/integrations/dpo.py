"""Concept reward shaping inside TRL's ``DPOTrainer``: ``−log σ(β·((π_c − ref_c) − (π_r − ref_r)) + λ·margin)``.

:class:`ConceptShapedDPOTrainer` is a ``DPOTrainer`` that trains on exactly
:func:`hf_saerl.audit.dpo_loss` with ``lam=concept_lambda``, reading ``margin`` per pair from the dataset's
``concept_margin`` column (:func:`hf_saerl.audit.add_concept_margin`). ``λ > 0`` suppresses the concept the chosen
side carries, ``λ < 0`` amplifies it (see :mod:`hf_saerl.audit.shaping`).

How the margin reaches the loss (TRL 1.16 computes the loss inside ``_compute_loss``, with no hook):

1. The margin column is kept by TRL's tokenisation (``Dataset.map`` keeps columns) and by
   ``remove_unused_columns`` (it is added to the signature columns); the data collator is wrapped so each batch
   carries a float32 ``concept_margin`` tensor, one value per pair.
2. ``compute_loss`` pops it (the model never sees it), takes the batch's reference log-probs (precomputed ones if
   ``precompute_ref_log_probs=True``, else one reference forward through TRL's own ``compute_ref_log_probs``),
   shifts ``ref_chosen_logps`` by ``−λ·margin/β`` and hands them to TRL's loss as precomputed reference log-probs.
   For ``loss_type="sigmoid"`` and ``f_divergence_type="reverse_kl"`` this adds exactly ``λ·margin`` to the
   logit; other loss types are refused when ``λ ≠ 0``. With ``λ = 0`` the loss is vanilla DPO's.

The logged ``rewards/chosen``, ``rewards/margins`` and ``rewards/accuracies`` include the shaping term
(``rewards/chosen`` is ``β·(π_c − ref_c) + λ·margin``).

Example:
    >>> from hf_saerl.audit import add_concept_margin                          # doctest: +SKIP
    >>> shaped = add_concept_margin(pairs, audit, [k])                          # doctest: +SKIP
    >>> trainer = ConceptShapedDPOTrainer(model, args=DPOConfig(...), train_dataset=shaped,
    ...                                   processing_class=tok, concept_lambda=1.0)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ..core.validation import check_real
from ..errors import InvalidParameterError, MissingColumnError, NonFiniteError, ParameterTypeError

try:
    from trl import DPOTrainer
except ImportError as err:  # pragma: no cover - exercised only without the extra
    raise ImportError("hf_saerl.integrations.dpo needs TRL: pip install 'hf-saerl[trl]' (or pip install trl).") from err

__all__ = ["ConceptShapedDPOTrainer", "MarginCollator"]

logger = logging.getLogger(__name__)

MARGIN_COLUMN = "concept_margin"
SHAPEABLE_LOSS_TYPES = {"sigmoid", "sft"}  # "sft" ignores the reference, so sigmoid (+ sft) stays exact


def check_shaping_supported(args: Any, concept_lambda: float) -> None:
    """Raise :class:`~hf_saerl.errors.InvalidParameterError` (a ``ValueError``) if ``λ ≠ 0`` and the config's loss is
    not one the reference shift shapes exactly."""
    if concept_lambda == 0.0 or args is None:
        return
    loss_types = [args.loss_type] if isinstance(args.loss_type, str) else list(args.loss_type)
    if "sigmoid" not in loss_types or not set(loss_types) <= SHAPEABLE_LOSS_TYPES:
        raise InvalidParameterError(
            f"Concept reward shaping (concept_lambda={concept_lambda}) supports loss_type='sigmoid' (optionally with "
            f"'sft'), got {loss_types}. Set DPOConfig(loss_type='sigmoid'), or use concept_lambda=0.0 for other "
            "losses."
        )
    if args.f_divergence_type != "reverse_kl":
        raise InvalidParameterError(
            "Concept reward shaping needs f_divergence_type='reverse_kl' (the standard DPO log-ratio), got "
            f"{args.f_divergence_type!r}. Set DPOConfig(f_divergence_type='reverse_kl'), or use concept_lambda=0.0."
        )


class MarginCollator:
    """Wraps a preference collator and adds ``column`` as a float32 tensor ``(batch,)`` to each batch."""

    def __init__(self, collator: Callable[[list[dict[str, Any]]], dict[str, Any]], column: str = MARGIN_COLUMN):
        self.collator, self.column = collator, column

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        if examples and self.column not in examples[0]:
            raise MissingColumnError(
                f"The examples have no {self.column!r} column; add it with "
                "hf_saerl.audit.add_concept_margin(dataset, audit, concepts), or pass "
                "margin_column=<name> of the column that holds the margins."
            )
        margins = torch.tensor([_margin_value(e[self.column], self.column) for e in examples], dtype=torch.float32)
        bad = torch.nonzero(~torch.isfinite(margins)).flatten().tolist()
        if bad:
            raise NonFiniteError(
                f"{len(bad)} example(s) of this batch have a NaN or infinite {self.column!r} "
                f"(first: {margins[bad[0]].item()} at batch position {bad[0]}). Recompute the column "
                "with hf_saerl.audit.add_concept_margin, or drop those rows (dataset.filter)."
            )
        batch = self.collator(examples)
        batch[self.column] = margins
        return batch


def _margin_value(value: Any, column: str) -> float:
    """One margin as a float; a missing one (``None``) is NaN, a non-number a ParameterTypeError."""
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ParameterTypeError(
            f"{column!r} must hold one number per pair, got {value!r} "
            f"({type(value).__name__}). Recompute it with hf_saerl.audit.add_concept_margin, or "
            "pass margin_column=<name> of the column that holds the margins."
        )
    return float(value)


def check_margin_column(dataset: Any, column: str, name: str) -> None:
    """Refuse a map-style ``dataset`` (``name``: ``"train_dataset"`` / ``"eval_dataset"``) without ``column`` or
    with a NaN, infinite or missing margin in it, at construction rather than at the batch that holds it."""
    import datasets

    if dataset is None or isinstance(dataset, dict):
        for key, part in (dataset or {}).items():
            check_margin_column(part, column, f"{name}[{key!r}]")
        return
    columns = getattr(dataset, "column_names", None)
    if columns is None:
        return  # a stream without declared columns: MarginCollator checks each batch
    if column not in columns:
        # A ValueError, as before (MissingColumnError is a KeyError).
        raise InvalidParameterError(
            f"{name} has no {column!r} column; add it with "
            "hf_saerl.audit.add_concept_margin(dataset, audit, concepts), or pass "
            f"margin_column=<name> (found {sorted(columns)})."
        )
    if not isinstance(dataset, datasets.Dataset):
        return
    values = np.array([_margin_value(v, column) for v in dataset[column]], dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise NonFiniteError(
            f"{name}'s {column!r} column has {bad.size} NaN, infinite or missing value(s) (first: "
            f"{values[bad[0]]} at row {int(bad[0])}). Recompute it with "
            "hf_saerl.audit.add_concept_margin on the audited dataset, or drop those rows "
            "(dataset.filter)."
        )


class ConceptShapedDPOTrainer(DPOTrainer):
    """``DPOTrainer`` whose loss is ``−log σ(β·((π_c − ref_c) − (π_r − ref_r)) + concept_lambda·margin)``.

    Takes ``DPOTrainer``'s arguments plus ``concept_lambda`` (λ, fixed at construction) and ``margin_column``
    (default ``"concept_margin"``), which every train and eval row must have.
    """

    def __init__(self, *args: Any, concept_lambda: float = 0.0, margin_column: str = MARGIN_COLUMN, **kwargs: Any):
        self._concept_lambda = check_real(
            "concept_lambda",
            concept_lambda,
            "Pass a finite λ, e.g. concept_lambda=1.0 to suppress the concept, or 0.0 for vanilla DPO.",
        )
        self.margin_column = margin_column
        check_shaping_supported(kwargs.get("args", args[2] if len(args) > 2 else None), self._concept_lambda)
        # (model, ref_model, args, data_collator, train_dataset, eval_dataset, ...), as DPOTrainer takes them
        check_margin_column(
            kwargs.get("train_dataset", args[4] if len(args) > 4 else None), margin_column, "train_dataset"
        )
        check_margin_column(
            kwargs.get("eval_dataset", args[5] if len(args) > 5 else None), margin_column, "eval_dataset"
        )
        super().__init__(*args, **kwargs)
        # After super().__init__: the precompute pass (if any) ran with TRL's own collator.
        self.data_collator = MarginCollator(self.data_collator, margin_column)

    @property
    def concept_lambda(self) -> float:
        return self._concept_lambda

    def _set_signature_columns_if_needed(self):
        super()._set_signature_columns_if_needed()
        if self.margin_column not in self._signature_columns:
            self._signature_columns = [*self._signature_columns, self.margin_column]

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = dict(inputs)
        margin = inputs.pop(self.margin_column, None)
        if margin is None:
            raise MissingColumnError(
                f"The batch has no {self.margin_column!r}; was the data collator replaced after "
                "init? Wrap the new one in MarginCollator(collator, margin_column), or set it "
                "before building the trainer."
            )
        if self.precompute_ref_logps:
            ref_chosen, ref_rejected = inputs["ref_chosen_logps"], inputs["ref_rejected_logps"]
        else:
            ref_chosen, ref_rejected = self.compute_ref_log_probs(
                self.ref_model if self.ref_model is not None else self.model, inputs
            )
        margin = margin.to(device=ref_chosen.device, dtype=ref_chosen.dtype)
        inputs["ref_chosen_logps"] = ref_chosen - (self._concept_lambda / self.beta) * margin
        inputs["ref_rejected_logps"] = ref_rejected
        # TRL reads the reference log-probs from the batch only when it believes they were precomputed.
        precompute, self.precompute_ref_logps = self.precompute_ref_logps, True
        try:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        finally:
            self.precompute_ref_logps = precompute
