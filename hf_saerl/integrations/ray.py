"""Run hf_saerl's transforms on Ray Data, past one machine (``pip install 'hf-saerl[ray]'``).

The transforms (:class:`~hf_saerl.SAEEncoder`, the probes, the clusterer) are plain callables over batch
dicts, which is what ``ray.data.Dataset.map_batches`` takes. Two differences from ``Dataset.map`` are
handled here:

* Ray *replaces* each batch with what the function returns; :func:`map_batches` keeps the input columns
  and adds the new ones, as ``datasets`` does, with the Arrow types of the transform's declared
  ``features`` (so ``sae_indices`` stays ``list<int32>``, not Ray's tensor type, which ``datasets`` cannot
  read back).
* Work runs in an actor pool: each actor receives the transform once and keeps it, so a model is loaded
  once per actor, not per batch. An ``SAEEncoder`` built from a model id or folder pickles to its
  configuration only and loads the model lazily inside the actor, on ``cuda`` when the actor has a GPU
  (``num_gpus=1``), in bf16 there.

The result goes back to ``datasets`` through Parquet (``ray_ds.write_parquet(path)`` then
``load_dataset("parquet", data_dir=path)``) or ``Dataset.from_pandas(ray_ds.to_pandas())``.

Example:
    >>> import ray  # doctest: +SKIP
    >>> from hf_saerl.integrations.ray import map_batches  # doctest: +SKIP
    >>> encoder = SAEEncoder("HuggingFaceTB/SmolLM2-135M-Instruct", sae="path/to/sae")  # doctest: +SKIP
    >>> ds = map_batches(ray.data.read_parquet("prompts/"), encoder, concurrency=8, num_gpus=1)  # doctest: +SKIP
    >>> ds = map_batches(ds, quality_probe, concurrency=4)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

try:
    import ray.data  # noqa: F401
except ImportError as err:  # pragma: no cover - exercised only without the extra
    raise ImportError("Ray Data is needed here: pip install 'hf-saerl[ray]'") from err

logger = logging.getLogger(__name__)


class KeepColumns:
    """Actor-side wrapper: the Arrow batch plus the transform's new columns, typed by its ``features``."""

    def __init__(self, transform: Callable[[Mapping[str, Any]], Mapping[str, Any]]):
        import pyarrow as pa

        self.transform = transform
        features = getattr(transform, "features", None)
        self.types = {} if features is None else {f.name: f.type for f in features.arrow_schema}
        self._pa = pa

    def __call__(self, table: Any) -> Any:
        for name, values in self.transform(table.to_pydict()).items():
            column = self._pa.array(
                values.tolist() if hasattr(values, "tolist") else list(values), type=self.types.get(name)
            )
            if name in table.column_names:
                table = table.set_column(table.column_names.index(name), name, column)
            else:
                table = table.append_column(name, column)
        return table


def map_batches(
    dataset: Any,
    transform: Callable[[Mapping[str, Any]], Mapping[str, Any]],
    *,
    batch_size: int = 256,
    concurrency: int | tuple[int, int] = 1,
    num_gpus: float | None = None,
    **kwargs: Any,
) -> Any:
    """``dataset.map_batches`` with an actor pool of ``concurrency`` actors running ``transform``, keeping
    the input columns. Extra keyword arguments go to ``ray.data.Dataset.map_batches``."""
    if num_gpus is not None:
        kwargs["num_gpus"] = num_gpus
    return dataset.map_batches(
        KeepColumns,
        fn_constructor_kwargs={"transform": transform},
        batch_size=batch_size,
        batch_format="pyarrow",
        concurrency=concurrency,
        **kwargs,
    )
