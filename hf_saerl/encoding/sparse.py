"""Conversions between the sparse SAE columns and ``scipy.sparse`` matrices."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from ..core.columns import SAE_INDICES, SAE_VALUES, column_names
from ..core.validation import check_finite, check_integer
from ..errors import InvalidParameterError, MissingColumnError, ParameterTypeError, WidthMismatchError

__all__ = ["check_integer_ids", "check_paired_rows", "csr_from_flat", "sparse_matrix", "topk_rows"]


def sparse_matrix(
    data: Any,
    d_sae: int,
    indices_column: str = SAE_INDICES,
    values_column: str = SAE_VALUES,
) -> sp.csr_matrix:
    """Turn the ``sae_indices`` / ``sae_values`` columns into a CSR matrix of shape ``(n, d_sae)``.

    ``data`` is a ``datasets.Dataset``, a batch dict (as ``Dataset.map(batched=True)`` passes) or
    anything indexable by column name. The Arrow columns are read without copying rows into Python
    objects when ``data`` is a ``Dataset``.

    Example:
        >>> from hf_saerl import sparse_matrix
        >>> X = sparse_matrix({"sae_indices": [[3, 0], [1]], "sae_values": [[2.0, 1.0], [5.0]]}, d_sae=4)
        >>> X.toarray()
        array([[1., 0., 0., 2.],
               [0., 5., 0., 0.]], dtype=float32)
    """
    check_integer("d_sae", d_sae, "Pass the SAE's width, e.g. d_sae=encoder.d_sae.", minimum=1)
    indices, values, indptr = _flat_columns(data, indices_column, values_column)
    return csr_from_flat(indices, values, indptr, d_sae, indices_column, values_column)


def csr_from_flat(
    indices: np.ndarray,
    values: np.ndarray,
    indptr: np.ndarray,
    d_sae: int,
    indices_column: str = SAE_INDICES,
    values_column: str = SAE_VALUES,
) -> sp.csr_matrix:
    """The ``(len(indptr) - 1, d_sae)`` float32 CSR of flat latent ids and activations whose rows start at
    ``indptr``, after checking that the values are finite and the ids lie in ``[0, d_sae)`` (errors name the
    columns they came from); duplicate ids in a row are summed and each row's ids sorted. Both
    :func:`sparse_matrix` and the Arrow reader of the estimators
    (:func:`~hf_saerl.estimators.arrow.arrow_csr`) build their matrix here. ``indices`` may be sorted in place.

    Example:
        >>> X = csr_from_flat(np.array([3, 0, 3]), np.array([2.0, 1.0, 0.5]), np.array([0, 3]), d_sae=4)
        >>> X.toarray()
        array([[1. , 0. , 0. , 2.5]], dtype=float32)
    """
    check_finite(
        values,
        f"Column {values_column!r}",
        "Re-encode these rows (SAEEncoder refuses non-finite activations), or drop them with dataset.filter(...).",
    )
    if indices.size and (indices.min() < 0 or indices.max() >= d_sae):
        raise WidthMismatchError(
            f"Column {indices_column!r} holds latent ids in [{indices.min()}, {indices.max()}], outside "
            f"[0, d_sae={d_sae}). Pass the d_sae of the SAE that produced these features."
        )
    X = sp.csr_matrix((values, indices, indptr), shape=(len(indptr) - 1, d_sae), dtype=np.float32)
    X.sum_duplicates()
    X.sort_indices()
    return X


def check_paired_rows(
    id_lengths: np.ndarray, value_lengths: np.ndarray, indices_column: str, values_column: str
) -> None:
    """Refuse id and value columns whose rows differ in length (they must pair up, one activation per id)."""
    if not np.array_equal(id_lengths, value_lengths):
        raise InvalidParameterError(
            f"Columns {indices_column!r} and {values_column!r} have rows of different "
            "lengths; they must pair up. Pass the columns one encoder wrote, or rebuild them."
        )


def _flat_columns(data: Any, indices_column: str, values_column: str):
    names = column_names(data)
    if names is not None:
        missing = [c for c in (indices_column, values_column) if c not in names]
        if missing:
            raise MissingColumnError(
                f"Missing column(s) {missing}; found {sorted(names)}. Run SAEEncoder over the dataset first "
                f"(dataset.map(encoder, batched=True)) or pass indices_column=/values_column=."
            )
    table = getattr(data, "data", None)
    if hasattr(data, "_data") and table is not None and hasattr(table, "column"):
        # datasets.Dataset: read the Arrow list arrays directly (respecting any indices mapping).
        import pyarrow as pa

        if getattr(data, "_indices", None) is not None:
            data = data.flatten_indices()
            table = data.data
        idx_col = table.column(indices_column).combine_chunks()
        val_col = table.column(values_column).combine_chunks()
        if isinstance(idx_col, pa.ChunkedArray):  # empty tables
            idx_col, val_col = idx_col.combine_chunks(), val_col.combine_chunks()
        check_integer_ids(idx_col.type.value_type, indices_column)
        idx_col = idx_col.cast(pa.large_list(pa.int64()))
        val_col = val_col.cast(pa.large_list(pa.float32()))
        indptr = np.asarray(idx_col.offsets, dtype=np.int64)
        indptr = indptr - indptr[0]
        indices = np.array(idx_col.flatten().to_numpy(zero_copy_only=False), dtype=np.int64)
        values = np.array(val_col.flatten().to_numpy(zero_copy_only=False), dtype=np.float32)
        check_paired_rows(np.diff(indptr), np.diff(np.asarray(val_col.offsets)), indices_column, values_column)
        return indices, values, indptr
    idx_rows, val_rows = data[indices_column], data[values_column]
    lengths = np.fromiter((len(r) for r in idx_rows), dtype=np.int64, count=len(idx_rows))
    check_paired_rows(lengths, np.array([len(r) for r in val_rows]), indices_column, values_column)
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    idx_arrays = [np.asarray(r) for r in idx_rows if len(r)]
    for arr in idx_arrays:
        check_integer_ids(arr.dtype, indices_column)
    indices = np.concatenate(idx_arrays).astype(np.int64) if idx_arrays else np.zeros(0, np.int64)
    values = (
        np.concatenate([np.asarray(r, dtype=np.float32) for r in val_rows])
        if len(val_rows)
        else np.zeros(0, np.float32)
    )
    return indices, values, indptr


def check_integer_ids(dtype: Any, column: str) -> None:
    """Refuse latent ids that are not integers (floats would be truncated, strings misread)."""
    import pyarrow as pa

    ok = pa.types.is_integer(dtype) if isinstance(dtype, pa.DataType) else np.issubdtype(np.dtype(dtype), np.integer)
    if not ok:
        raise ParameterTypeError(
            f"Column {column!r} holds latent ids of type {dtype}, not integers; they would be truncated or misread. "
            f"Write the ids as integers (SAEEncoder writes int32), or cast the column, e.g. "
            f"dataset.cast_column({column!r}, datasets.List(datasets.Value('int32'))) after checking they are whole."
        )


def topk_rows(pooled: np.ndarray, k: int | None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per row of a dense ``(n, d_sae)`` array, the ids and values of its top-``k`` non-zero entries,
    by value descending (ties by id). ``k=None`` keeps every non-zero entry."""
    out_idx, out_val = [], []
    for row in pooled:
        nz = np.flatnonzero(row)
        order = np.lexsort((nz, -row[nz]))
        nz = nz[order]
        if k is not None:
            nz = nz[:k]
        out_idx.append(nz.astype(np.int32))
        out_val.append(row[nz].astype(np.float32))
    return out_idx, out_val
