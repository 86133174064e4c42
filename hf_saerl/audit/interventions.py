"""Act on an audit: filter pairs, re-weight them, or add a ``concept_margin`` column for reward shaping.

All three read the same per-pair disparity the statistics test (:meth:`PreferenceAudit.disparity`:
share of the concept's latents firing on chosen minus on rejected), so what is removed, weighted or
shaped is exactly what the report flagged. ``concepts=None`` means every concept flagged as
chosen-leaning (in any region or globally). The dataset must be the one audited (same rows, same order;
checked by :func:`~hf_saerl.audit.rows.check_rows`), and the audit fitted or loaded.

Example:
    >>> import numpy as np, scipy.sparse as sp
    >>> from datasets import Dataset
    >>> from hf_saerl.audit import PreferenceAudit, filter_pairs, add_concept_margin
    >>> c = sp.csr_matrix(np.tile([[1.0, 1.0], [1.0, 0.0]], (20, 1)))
    >>> r = sp.csr_matrix(np.tile([[0.0, 1.0], [1.0, 0.0]], (20, 1)))
    >>> audit = PreferenceAudit(n_regions=1, min_support=1).fit_features(c, c, r, r)
    >>> ds = Dataset.from_dict({"i": list(range(40))})
    >>> kept, counts = filter_pairs(ds, audit, concepts=[audit.concept_of(0)], threshold=0.5)
    >>> counts["n_removed"], len(kept)
    (20, 20)
    >>> add_concept_margin(ds, audit, concepts=[audit.concept_of(0)])["concept_margin"][:2]
    [1.0, 0.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..core.validation import check_bool, check_choice, check_fitted, check_integer, check_real
from ..errors import InvalidParameterError
from .rows import check_rows

__all__ = [
    "add_concept_margin",
    "add_pair_weights",
    "concept_margin",
    "filter_pairs",
    "pair_weights",
    "resolve_concepts",
]


def resolve_concepts(
    audit: Any, concepts: int | Sequence[int] | None, leaning: str = "chosen", method: str = "resolve_concepts"
) -> list[int]:
    """Concept ids to act on: the given ones, or (``None``) every concept flagged with ``leaning``."""
    check_fitted(audit, method)
    if concepts is None:
        ids = sorted(set(audit.flagged(leaning=leaning)["concept"].tolist()))
        if not ids:
            raise InvalidParameterError(
                f"No concept is flagged as {leaning}-leaning; pass concepts=[...] explicitly "
                "(see audit.statistics_) or relax z_threshold / half_z_threshold."
            )
        return ids
    ids = [
        check_integer(
            "concepts",
            c,
            "Pass concept ids (ints, e.g. audit.concept_of(latent)), or concepts=None for every flagged concept.",
        )
        for c in np.atleast_1d(np.asarray(concepts, dtype=object))
    ]
    bad = [c for c in ids if not 0 <= c < audit.concepts_.n_concepts_]
    if bad:
        raise InvalidParameterError(
            f"Unknown concept id(s) {bad}; the audit has {audit.concepts_.n_concepts_} "
            "concepts. Map a latent to its concept with audit.concept_of(latent)."
        )
    return ids


def concept_margin(audit: Any, concepts: int | Sequence[int] | None = None) -> np.ndarray:
    """Per-pair concept score on chosen minus on rejected, summed over ``concepts``: ``(n,)`` float64."""
    return _margin(audit, concepts, "concept_margin")


def _margin(audit: Any, concepts: int | Sequence[int] | None, method: str) -> np.ndarray:
    return audit.disparity(resolve_concepts(audit, concepts, method=method)).sum(axis=1)


def add_concept_margin(
    dataset: Any, audit: Any, concepts: int | Sequence[int] | None = None, column: str = "concept_margin"
) -> Any:
    """``dataset`` plus a float32 ``column`` = :func:`concept_margin` (for :func:`dpo_loss` / reward shaping)."""
    check_rows(dataset, audit, "add_concept_margin")
    margin = _margin(audit, concepts, "add_concept_margin")
    return _with_column(dataset, column, margin)


def _with_column(dataset: Any, column: str, values: np.ndarray) -> Any:
    """``dataset`` with ``column`` (replaced if there) holding ``values`` as float32."""
    if column in dataset.column_names:
        dataset = dataset.remove_columns(column)
    return dataset.add_column(column, values.astype(np.float32).tolist())


def filter_pairs(
    dataset: Any,
    audit: Any,
    concepts: int | Sequence[int] | None = None,
    threshold: float = 0.5,
    leaning: str = "chosen",
) -> tuple[Any, dict[str, Any]]:
    """Drop pairs whose preference a concept explains: disparity ≥ ``threshold`` (``leaning="chosen"``) or
    ≤ −``threshold`` (``leaning="rejected"``) for any of ``concepts``.

    Returns ``(kept dataset, counts)`` with ``n_pairs``, ``n_removed``, ``n_kept`` and ``per_concept``
    (pairs each concept alone would remove).
    """
    check_choice("leaning", leaning, ("chosen", "rejected"))
    threshold = check_real(
        "threshold",
        threshold,
        "It is a disparity (share of the concept's latents): pass e.g. threshold=0.5.",
        low=0.0,
        high=1.0,
        low_open=True,
    )
    check_rows(dataset, audit, "filter_pairs")
    ids = resolve_concepts(audit, concepts, leaning, method="filter_pairs")
    D = audit.disparity(ids) * (1.0 if leaning == "chosen" else -1.0)
    hit = threshold - 1e-12 <= D
    drop = hit.any(axis=1)
    counts = {
        "n_pairs": len(drop),
        "n_removed": int(drop.sum()),
        "n_kept": int((~drop).sum()),
        "per_concept": {c: int(hit[:, j].sum()) for j, c in enumerate(ids)},
        "threshold": threshold,
    }
    return dataset.select(np.flatnonzero(~drop)), counts


def pair_weights(
    audit: Any,
    concepts: int | Sequence[int] | None = None,
    strength: float = 0.5,
    min_weight: float = 0.0,
    normalize: bool = False,
) -> np.ndarray:
    """Per-pair weights ``clip(1 − strength · margin, min_weight, ∞)`` with ``margin`` = :func:`concept_margin`.

    ``strength > 0`` down-weights pairs whose chosen response carries more of the concept (and up-weights
    those where the rejected one does), so training learns less of it; ``strength < 0`` amplifies it.
    ``normalize`` rescales the weights to mean 1.
    """
    return _weights(audit, concepts, strength, min_weight, normalize, "pair_weights")


def _weights(
    audit: Any, concepts: int | Sequence[int] | None, strength: float, min_weight: float, normalize: bool, method: str
) -> np.ndarray:
    strength = check_real(
        "strength",
        strength,
        "Pass e.g. strength=0.5 to down-weight the concept, a negative one to amplify it, or 0 for uniform weights.",
    )
    min_weight = check_real(
        "min_weight", min_weight, "Pass e.g. min_weight=0.0 (weights are clipped below at it).", low=0.0
    )
    normalize = check_bool("normalize", normalize, "Pass normalize=True for weights of mean 1, or False.")
    w = np.maximum(1.0 - strength * _margin(audit, concepts, method), min_weight)
    if normalize:
        mean = w.mean()
        if mean <= 0:
            raise InvalidParameterError("All weights are zero; lower strength or raise min_weight.")
        w = w / mean
    return w


def add_pair_weights(
    dataset: Any,
    audit: Any,
    concepts: int | Sequence[int] | None = None,
    strength: float = 0.5,
    min_weight: float = 0.0,
    normalize: bool = False,
    column: str = "weight",
) -> Any:
    """``dataset`` plus a float32 ``column`` of :func:`pair_weights`."""
    check_rows(dataset, audit, "add_pair_weights")
    return _with_column(dataset, column, _weights(audit, concepts, strength, min_weight, normalize, "add_pair_weights"))
