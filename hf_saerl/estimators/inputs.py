"""Reading an estimator's input at the edge: matrix or dataset, labels (missing ones dropped), dense features.

Example:
    >>> import numpy as np
    >>> from hf_saerl.estimators.inputs import clean_labels
    >>> labels, keep, n_dropped = clean_labels([0.5, float("inf")], "pass_rate")
    Traceback (most recent call last):
    ...
    hf_saerl.errors.NonFiniteError: 1 label(s) in 'pass_rate' are infinite (rows [1]). Fix or drop those rows, or set them to None to have them dropped with a warning.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..core.columns import column_names, read_column
from ..core.validation import is_missing
from ..errors import InvalidParameterError, NonFiniteError
from .arrow import arrow_dense, arrow_table
from .transforms import row_nnz

__all__ = [
    "clean_labels",
    "dense_column",
    "is_matrix",
    "n_rows",
    "read_dense",
    "read_labels",
    "read_weights",
    "warn_empty_rows",
]


def is_matrix(data: Any) -> bool:
    """Whether ``data`` is a feature matrix (scipy sparse or numpy array) rather than a dataset or batch dict."""
    return sp.issparse(data) or isinstance(data, np.ndarray)


def n_rows(data: Any) -> int:
    """Rows of a matrix, a batch dict (length of its first column) or a dataset."""
    if is_matrix(data):
        return data.shape[0]
    if isinstance(data, Mapping):
        return len(next(iter(data.values()))) if data else 0
    return len(data)


def read_labels(data: Any, y: Any, label_column: str | None, what: str = "labels") -> list[Any]:
    """Labels from ``y`` (array-like) or from ``data[label_column]``; raw, missing values kept."""
    if y is not None and label_column is not None:
        raise InvalidParameterError(f"Pass the {what} either as y= or as label_column=, not both.")
    if label_column is not None:
        if is_matrix(data):
            raise InvalidParameterError(
                f"label_column={label_column!r} needs a dataset; with a feature matrix pass the {what} as y=."
            )
        values = read_column(data, label_column, what)
    elif y is not None:
        values = y.tolist() if isinstance(y, np.ndarray) else list(y)
    else:
        names = column_names(data)
        hint = f" (columns found: {sorted(names)})" if names is not None else ""
        raise InvalidParameterError(f"No {what}: pass label_column='<column>'{hint} or y=<array>.")
    if len(values) != n_rows(data):
        raise InvalidParameterError(
            f"Got {len(values)} {what} for {n_rows(data)} rows of features. Pass one per row, "
            "or select the rows that have them."
        )
    return values


def clean_labels(values: Sequence[Any], name: str) -> tuple[np.ndarray, np.ndarray, int]:
    """``(labels, keep_mask, n_dropped)``: drops missing labels (None or NaN) with a warning.

    Every label missing is an :class:`~hf_saerl.errors.InvalidParameterError`; an infinite one a
    :class:`~hf_saerl.errors.NonFiniteError` naming ``name`` (the column) and the rows.
    """
    missing = np.fromiter((is_missing(v) for v in values), dtype=bool, count=len(values))
    n_dropped = int(missing.sum())
    if n_dropped == len(values):
        raise InvalidParameterError(
            f"All {len(values)} labels in {name!r} are missing (None or NaN); nothing to fit. Check the label column "
            "and that the labelled rows were joined in."
        )
    kept = [v for v, m in zip(values, missing, strict=True) if not m]
    labels = np.asarray(kept)
    if labels.dtype.kind in "fc" and not np.isfinite(labels).all():
        rows = np.flatnonzero(~missing)[~np.isfinite(labels)]
        raise NonFiniteError(
            f"{len(rows)} label(s) in {name!r} are infinite (rows {rows[:10].tolist()}). Fix or drop "
            "those rows, or set them to None to have them dropped with a warning."
        )
    if n_dropped:
        warnings.warn(
            f"Dropped {n_dropped} of {len(values)} rows whose label {name!r} is missing (None or NaN); using the other "
            f"{len(values) - n_dropped}. Fill or filter them first to silence this warning.",
            UserWarning,
            stacklevel=3,
        )
    return labels, ~missing, n_dropped


def read_weights(data: Any, sample_weight: Any, keep: np.ndarray) -> np.ndarray | None:
    """Per-row sample weights (an array, or a dataset column such as ``n_samples``) for the rows in ``keep``, as
    float64; None when ``sample_weight`` is None. Refuses negative, non-finite or all-zero weights.

    Example:
        >>> read_weights({"n_samples": [2, 32, 8]}, "n_samples", np.array([True, True, False])).tolist()
        [2.0, 32.0]
    """
    if sample_weight is None:
        return None
    if isinstance(sample_weight, str):
        if is_matrix(data):
            raise InvalidParameterError(
                f"sample_weight={sample_weight!r} names a column, but the data is a matrix; "
                "pass the weights as an array instead."
            )
        values, where = read_column(data, sample_weight, "sample weights"), f"column {sample_weight!r}"
    else:
        values, where = sample_weight, "sample_weight"
    try:
        weights = np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"The weights in {where} must be numbers (e.g. the n_samples column).") from None
    if weights.shape[0] != len(keep):
        raise InvalidParameterError(f"Got {weights.shape[0]} sample weights for {len(keep)} rows; pass one per row.")
    weights = weights[keep]
    bad = ~np.isfinite(weights) | (weights < 0)
    if bad.any() or not weights.sum() > 0:
        raise InvalidParameterError(
            f"The weights in {where} must be finite and non-negative with a positive sum; {int(bad.sum())} are not "
            f"(rows {np.flatnonzero(bad)[:10].tolist()} of the labelled rows). Fill or drop those rows, or pass "
            "sample_weight=None."
        )
    return weights


def warn_empty_rows(X: Any, policy: str) -> int:
    """Warn (with the count) about rows with no active latent, saying ``policy`` (what happens to them); returns
    the count."""
    n_empty = int((row_nnz(X) == 0).sum())
    if n_empty:
        warnings.warn(
            f"{n_empty} of {X.shape[0]} rows have no active SAE latent (empty sae_indices); {policy} Check the "
            "encoder (empty or truncated texts, top_k) or filter these rows out first.",
            UserWarning,
            stacklevel=3,
        )
    return n_empty


def read_dense(data: Any, source: Any) -> np.ndarray:
    """Dense features (e.g. pooled raw activations) as an ``(n_rows, width)`` float64 array: a dataset column of
    fixed-length float lists, or an array of that shape. Checked finite."""
    if isinstance(source, str):
        if is_matrix(data):
            raise InvalidParameterError(
                f"{source!r} names a column, but the data is a matrix; pass the dense features as a 2-D array instead."
            )
        X, where = dense_column(data, source), f"column {source!r}"
    else:
        X, where = np.asarray(source, dtype=np.float64), "the dense feature array"
        if X.ndim != 2 or X.shape[0] != n_rows(data):
            raise InvalidParameterError(
                f"The dense feature array must have shape (n_rows={n_rows(data)}, width); got {X.shape}."
            )
    if not np.isfinite(X).all():
        raise NonFiniteError(
            f"The dense features in {where} hold {int((~np.isfinite(X)).sum())} NaN or infinite "
            "value(s); fix or drop those rows, or pass other features."
        )
    return X


def dense_column(data: Any, column: str, fix: str = "Pass the right column name.") -> np.ndarray:
    """A column of fixed-length float lists as an ``(n, width)`` float64 array (not checked finite): from the Arrow
    buffers of a ``Dataset.map`` batch or an Arrow table where it can (:func:`~.arrow.arrow_dense`), else through
    Python lists. A missing column is a :class:`~hf_saerl.errors.MissingColumnError` ending with ``fix``.

    Example:
        >>> dense_column({"act": [[1.0, 2.0], [3.0, 4.0]]}, "act").shape
        (2, 2)
    """
    table = arrow_table(data, (column,))
    if table is not None and column in table.column_names:
        return arrow_dense(table, column)
    rows = read_column(data, column, "dense features (fixed-length float lists)", fix)
    if not rows:
        return np.zeros((0, 0))
    lengths = {len(r) if isinstance(r, (list, tuple, np.ndarray)) else -1 for r in rows}
    if len(lengths) > 1 or -1 in lengths:
        raise InvalidParameterError(
            f"Dense feature column {column!r} must hold fixed-length lists of floats (e.g. a mean activation per row); "
            f"found row lengths {sorted(lengths)[:5]}."
        )
    try:
        return np.asarray(rows, dtype=np.float64).reshape(len(rows), -1)
    except (TypeError, ValueError):
        raise InvalidParameterError(
            f"Dense feature column {column!r} must hold numbers (fixed-length float lists); some values are not. "
            "Fill or drop those rows, or cast the column to floats."
        ) from None
