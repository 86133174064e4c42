"""Keeping the rows of a dataset by an estimator's scores: above a threshold, all but the lowest share, or in a band.

The probes' ``filter`` / ``select_band`` are these steps in a row: check the arguments, score the dataset
(:func:`column_scores`), build a keep mask (:func:`threshold_mask`, :func:`band_mask`), then
:func:`select_rows`, which logs the counts and returns the kept rows (and the counts).

Example:
    >>> import numpy as np
    >>> from datasets import Dataset
    >>> from hf_saerl.estimators.selection import select_rows, threshold_mask
    >>> ds = Dataset.from_dict({"quality": [0.9, 0.1, 0.6, 0.4]})
    >>> keep, threshold = threshold_mask(np.asarray(ds["quality"]), drop_fraction=0.5)
    >>> kept, stats = select_rows(ds, keep, {"threshold": threshold}, what="example", return_stats=True)
    >>> list(kept["quality"]), stats["n_dropped"], stats["threshold"]
    ([0.9, 0.6], 2, 0.6)
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..core.columns import column_names
from ..core.validation import check_real
from ..errors import InvalidParameterError

logger = logging.getLogger(__name__)

__all__ = [
    "PREDICT_CHUNK_ROWS",
    "band_mask",
    "check_band",
    "check_probability_threshold",
    "check_threshold_args",
    "column_scores",
    "select_rows",
    "threshold_mask",
]

#: Rows scored per call of the estimator in :func:`column_scores` (bounded memory on any dataset).
PREDICT_CHUNK_ROWS = 65_536


def column_scores(estimator: Any, dataset: Any, column: str) -> np.ndarray:
    """``column`` of ``estimator(batch)`` over a ``datasets.Dataset``, scored in contiguous chunks, as float64.

    A dataset without the estimator's input columns (the SAE ``indices_column`` / ``values_column``, or a probe's
    ``raw_column``) but with ``column`` already there (mapped earlier) is read as is.
    """
    names = column_names(dataset) or []
    if any(c not in names for c in estimator._input_columns()) and column in names:
        return np.asarray(list(dataset[column]), dtype=np.float64)
    if not hasattr(dataset, "select"):
        raise TypeError(f"Expected a datasets.Dataset; got {type(dataset).__name__}.")
    parts = [
        estimator(dataset.select(range(start, min(start + PREDICT_CHUNK_ROWS, len(dataset)))))[column]
        for start in range(0, len(dataset), PREDICT_CHUNK_ROWS)
    ]
    return np.concatenate(parts).astype(np.float64) if parts else np.zeros(0)


def check_threshold_args(threshold: float | None, drop_fraction: float | None) -> None:
    """Exactly one of ``threshold`` / ``drop_fraction``, the latter in [0, 1); else an InvalidParameterError."""
    if (threshold is None) == (drop_fraction is None):
        raise InvalidParameterError(
            "Pass exactly one of threshold= (keep quality >= threshold) or drop_fraction= "
            "(drop that share of the lowest-quality rows)."
        )
    if threshold is not None:
        check_real(
            "threshold",
            threshold,
            "NaN compares false with every score and inf is beyond all of them: "
            "pass a finite threshold, e.g. threshold=0.5, or drop_fraction= instead.",
        )
    if drop_fraction is not None and not 0.0 <= drop_fraction < 1.0:
        raise InvalidParameterError(
            f"drop_fraction must be in [0, 1); got {drop_fraction!r}. Pass e.g. "
            "drop_fraction=0.2, or a threshold= instead."
        )


def check_probability_threshold(name: str, threshold: float, what: str) -> None:
    """A classifier's ``threshold`` inside [0, 1] (its scores are probabilities); else an InvalidParameterError."""
    if not 0.0 <= threshold <= 1.0:
        keeps = "every" if threshold < 0 else "no"
        raise InvalidParameterError(
            f"{name}={threshold!r} is outside [0, 1], but {what} is a classifier whose quality is a probability, so "
            f"it would keep {keeps} row. Pass a threshold in [0, 1] (e.g. 0.5), or drop_fraction= to drop a share."
        )


def threshold_mask(
    scores: np.ndarray, threshold: float | None = None, drop_fraction: float | None = None
) -> tuple[np.ndarray, float | None]:
    """``(keep, threshold)``: ``scores >= threshold``, or all but the ``round(drop_fraction * n)`` lowest scores
    (ties broken by row order; ``threshold`` is then the lowest kept score, None when nothing is kept)."""
    check_threshold_args(threshold, drop_fraction)
    if drop_fraction is None:
        return scores >= threshold, threshold
    n_drop = round(drop_fraction * len(scores))
    order = np.argsort(scores, kind="stable")
    keep = np.ones(len(scores), dtype=bool)
    keep[order[:n_drop]] = False
    return keep, (float(scores[order[n_drop]]) if n_drop < len(scores) else None)


def check_band(low: float, high: float) -> None:
    """``0 <= low <= high <= 1``, else an InvalidParameterError."""
    if not 0.0 <= low <= high <= 1.0:
        raise InvalidParameterError(
            f"Need 0 <= low <= high <= 1; got low={low}, high={high}. Swap them, or pass values inside [0, 1]."
        )


def band_mask(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """``low <= values <= high``."""
    check_band(low, high)
    return (values >= low) & (values <= high)


def select_rows(
    dataset: Any,
    keep: np.ndarray,
    criteria: Mapping[str, Any],
    *,
    what: str,
    return_stats: bool = False,
    log: logging.Logger = logger,
) -> Any:
    """The rows of ``dataset`` where ``keep`` is True; with ``return_stats``, ``(rows, stats)``.

    ``stats`` holds ``n_rows``, ``n_kept``, ``n_dropped`` and the ``criteria``; the counts are logged at INFO
    level on ``log`` (the estimator module's logger), as ``"<what>: kept k of n rows, dropped d (<criteria>)."``.
    """
    stats = {"n_rows": len(keep), "n_kept": int(keep.sum()), "n_dropped": int((~keep).sum()), **criteria}
    log.info(
        "%s: kept %d of %d rows, dropped %d (%s).",
        what,
        stats["n_kept"],
        stats["n_rows"],
        stats["n_dropped"],
        ", ".join(f"{k}={v}" for k, v in criteria.items()),
    )
    kept = dataset.select(np.flatnonzero(keep))
    return (kept, stats) if return_stats else kept
