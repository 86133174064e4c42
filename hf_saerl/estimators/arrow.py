"""Reading an Arrow batch's SAE columns straight into a CSR matrix, and a dense column into an array (no Python lists).

``Dataset.map(estimator, batched=True)`` hands the estimator a ``datasets`` ``LazyBatch`` (the default format)
or a ``pyarrow.Table`` (after ``with_format("arrow")``). Both hold the batch's Arrow table, whose list columns
are an offsets buffer and a flat values buffer: exactly a CSR matrix's ``indptr`` and ``data``. Reading them
directly skips the conversion to Python lists that used to dominate prediction time, and gives the same
matrix, bit for bit, as :func:`~hf_saerl.encoding.sparse.sparse_matrix` on the same rows.

Chunked columns are combined, sliced arrays (offsets not starting at 0) are read from their first offset, and
a null row or a null value is refused: an SAE row with no list is not an empty row. :func:`arrow_dense` reads a
column of fixed-length float lists (e.g. the encoder's ``columns.activations``, an Arrow ``fixed_size_list``) the
same way, as the ``(n, width)`` float64 array that :func:`~hf_saerl.estimators.inputs.read_dense` returns.

Example:
    >>> import pyarrow as pa
    >>> table = pa.table({"sae_indices": [[3, 0], [1]], "sae_values": [[2.0, 1.0], [5.0]]})
    >>> arrow_csr(table, d_sae=4).toarray()
    array([[1., 0., 0., 2.],
           [0., 5., 0., 0.]], dtype=float32)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from ..core.columns import SAE_INDICES, SAE_VALUES
from ..encoding.sparse import check_integer_ids, check_paired_rows, csr_from_flat
from ..errors import InvalidParameterError, MissingColumnError, ParameterTypeError

__all__ = ["arrow_csr", "arrow_dense", "arrow_features", "arrow_numbers", "arrow_table"]


def arrow_table(data: Any, columns: tuple[str, ...]) -> Any:
    """The Arrow table behind ``data`` when ``columns`` can be read from it unconverted, else None.

    That is a ``pyarrow.Table`` / ``RecordBatch``, or a ``datasets`` ``LazyBatch`` whose ``columns`` have not
    been formatted or replaced yet (a replaced column must be read from the dict, as the caller changed it)."""
    module = type(data).__module__
    if module.startswith("pyarrow"):
        import pyarrow as pa

        return data if isinstance(data, (pa.Table, pa.RecordBatch)) else None
    table = getattr(data, "pa_table", None)
    pending = getattr(data, "keys_to_format", None)
    if table is None or pending is None or not module.startswith("datasets"):
        return None
    return table if all(c in pending for c in columns) else None


def arrow_features(data: Any) -> Any:
    """The ``datasets.Features`` of a batch, when it carries them (a ``LazyBatch``'s formatter, or the
    ``huggingface`` metadata of an Arrow table's schema), else None: where the encoder's SAE record lives."""
    formatter = getattr(data, "formatter", None)
    features = getattr(formatter, "features", None)
    if features is not None:
        return features
    schema = getattr(data, "schema", None)
    if schema is not None and schema.metadata and b"huggingface" in schema.metadata:
        from datasets import Features

        try:
            return Features.from_arrow_schema(schema)
        except Exception:  # noqa: BLE001 - a schema datasets cannot read carries no SAE record: checked elsewhere
            return None
    return None


def _column(table: Any, name: str) -> Any:
    """One column of a table or record batch as a single (unchunked) Arrow array."""
    if name not in table.column_names:
        raise MissingColumnError(
            f"Missing column {name!r}; found {sorted(table.column_names)}. Run SAEEncoder over the dataset first "
            f"(dataset.map(encoder, batched=True)) or pass indices_column=/values_column=."
        )
    column = table.column(name)
    if hasattr(column, "combine_chunks"):  # ChunkedArray (pa.Table): one contiguous array
        column = column.combine_chunks()
    return column


def _list_buffers(column: Any, name: str) -> tuple[np.ndarray, Any]:
    """``(indptr from 0, flat child values of the rows)`` of a list array, refusing nulls and non-lists."""
    import pyarrow as pa

    if not (pa.types.is_list(column.type) or pa.types.is_large_list(column.type)):
        raise ParameterTypeError(
            f"Column {name!r} must hold lists (one list per row); it holds {column.type}. "
            "Write it as a list column (SAEEncoder does), or cast it."
        )
    if column.null_count:
        rows = np.flatnonzero(np.asarray(column.is_null().to_numpy(zero_copy_only=False)))
        raise InvalidParameterError(
            f"Column {name!r} has {column.null_count} null row(s) (rows {rows[:10].tolist()} of the batch); an SAE "
            "row needs a list, possibly empty. Re-encode those rows, or drop them with "
            f"dataset.filter(lambda r: r[{name!r}] is not None)."
        )
    offsets = np.asarray(column.offsets, dtype=np.int64)
    start, stop = int(offsets[0]), int(offsets[-1])  # a sliced array's offsets start past 0
    values = column.values.slice(start, stop - start)
    if values.null_count:
        raise InvalidParameterError(
            f"Column {name!r} holds {values.null_count} null value(s) inside its lists; every latent id and "
            "activation must be a number. Re-encode those rows, or drop them."
        )
    return offsets - start, values


def arrow_csr(
    table: Any, d_sae: int, indices_column: str = SAE_INDICES, values_column: str = SAE_VALUES
) -> sp.csr_matrix:
    """The ``(n, d_sae)`` float32 CSR of the SAE list columns of an Arrow ``table`` (or record batch).

    The same matrix as :func:`~hf_saerl.encoding.sparse.sparse_matrix` on the same rows (duplicates summed,
    indices sorted), with the same checks: integer ids in ``[0, d_sae)``, finite values, paired row lengths."""
    indptr, ids = _list_buffers(_column(table, indices_column), indices_column)
    vals_indptr, vals = _list_buffers(_column(table, values_column), values_column)
    check_integer_ids(ids.type, indices_column)
    check_paired_rows(np.diff(indptr), np.diff(vals_indptr), indices_column, values_column)
    indices = np.array(ids.to_numpy(zero_copy_only=False), dtype=np.int64)  # a copy: scipy sorts in place
    values = np.array(vals.to_numpy(zero_copy_only=False), dtype=np.float32)
    return csr_from_flat(indices, values, indptr, d_sae, indices_column, values_column)


def arrow_numbers(table: Any, column: str) -> np.ndarray:
    """A numeric column of an Arrow table as float64 (nulls become NaN)."""
    array = _column(table, column)
    return np.asarray(array.to_numpy(zero_copy_only=False), dtype=np.float64).reshape(-1)


def arrow_dense(table: Any, column: str) -> np.ndarray:
    """A column of fixed-length float lists of an Arrow ``table`` (or record batch) as an ``(n, width)`` float64
    array, straight from its values buffer; rows of different lengths, nulls and non-numbers are refused (with
    the messages of :func:`~hf_saerl.estimators.inputs.read_dense`). Finiteness is the caller's check.

    Example:
        >>> import pyarrow as pa
        >>> arrow_dense(pa.table({"act": pa.array([[1.0, 2.0], [3.0, 4.0]], pa.list_(pa.float32(), 2))}), "act")
        array([[1., 2.],
               [3., 4.]])
    """
    import pyarrow as pa

    if column not in table.column_names:
        raise MissingColumnError(
            f"Missing column {column!r} holding the dense features (fixed-length float lists); found "
            f"{sorted(table.column_names)}. Encode with SAEEncoder(..., columns=FeatureColumns(activations={column!r})) to write "
            "it, "
            "or name the column that holds them."
        )
    array = _column(table, column)
    n = len(array)
    if pa.types.is_fixed_size_list(array.type):
        if array.null_count:
            raise InvalidParameterError(
                f"Dense feature column {column!r} has {array.null_count} null row(s); every row needs its "
                "activations. Re-encode those rows, or drop them."
            )
        width = array.type.list_size
        values = array.flatten()  # the child values of these rows (a slice's offset applied)
    else:
        indptr, values = _list_buffers(array, column)
        lengths = np.unique(np.diff(indptr))
        if lengths.size > 1:
            raise InvalidParameterError(
                f"Dense feature column {column!r} must hold fixed-length lists of floats (e.g. a mean activation "
                f"per row); found row lengths {lengths[:5].tolist()}."
            )
        width = int(lengths[0]) if lengths.size else 0
    if values.null_count or not (pa.types.is_floating(values.type) or pa.types.is_integer(values.type)):
        raise InvalidParameterError(
            f"Dense feature column {column!r} must hold numbers (fixed-length float lists) with no nulls; it holds "
            f"{values.type} with {values.null_count} null(s). Re-encode it, or cast it to floats."
        )
    flat = np.asarray(values.to_numpy(zero_copy_only=False), dtype=np.float64)
    return flat.reshape(n, width)
