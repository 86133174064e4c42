"""Where a curriculum stream's global batches come from: a map-style dataset scheduled whole, or a streaming one
scheduled in bounded buffers.

Both sources give :class:`~hf_saerl.curriculum.CurriculumDataset` the same two things: ``identity()`` (the data
part of its ``state_dict``) and ``global_batches(epoch, start)``, which yields :data:`GlobalBatch` tuples from a
resume point on.

Example:
    >>> import datasets
    >>> from hf_saerl.curriculum.options import CurriculumOptions
    >>> from hf_saerl.curriculum.sources import MapSource
    >>> ds = datasets.Dataset.from_dict({"x": [0, 1, 2, 3], "cluster_id": [0, 0, 1, 1],
    ...                                  "difficulty": [0.4, 0.3, 0.2, 0.1]})
    >>> source = MapSource(ds, CurriculumOptions(mix_ratio=0).schedule(ds, batch_size=2), ["x"])
    >>> [(g, batch, fetch(batch)) for g, batch, fetch, _ in source.global_batches(epoch=0, start={})]
    [(0, [1, 0], [{'x': 1}, {'x': 0}]), (1, [3, 2], [{'x': 3}, {'x': 2}])]
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from ..errors import InvalidParameterError, ScheduleMismatchError
from .options import ColumnSchedule, CurriculumOptions, digest_arrays, read_schedule_column, require_schedule_columns
from .schedule import ScheduleParams, as_schedule_arrays

__all__ = ["BufferedSource", "GlobalBatch", "MapSource", "Row"]

logger = logging.getLogger(__name__)

Row = dict[str, Any]
#: (global batch index, row positions in the batch, fetch(positions) -> rows, extra position fields to save)
GlobalBatch = tuple[int, list[int], Callable[[list[int]], list[Row]], dict[str, Any]]


class MapSource:
    """A map-style ``datasets.Dataset``, scheduled whole from its columns (read once, see
    :class:`~hf_saerl.curriculum.options.ColumnSchedule`); rows are fetched from ``output_columns`` only."""

    buffer_size = None

    def __init__(self, dataset: Any, schedule: ColumnSchedule, output_columns: list[str]):
        self.schedule = schedule
        self.data = dataset.select_columns(output_columns)

    def identity(self) -> dict[str, Any]:
        """The data part of the stream's identity: a digest of the schedule columns and the row count."""
        return {"data": self.schedule.digest, "num_rows": self.schedule.num_rows}

    def global_batches(self, epoch: int, start: dict[str, Any]) -> Iterator[GlobalBatch]:
        """The batches of ``epoch`` from ``start["batch"]`` on (default: the first)."""
        first = start.get("batch", 0)
        for g, batch in enumerate(self.schedule.batches(epoch)[first:], first):
            yield g, batch, self.fetch, {}

    def fetch(self, indices: list[int]) -> list[Row]:
        """The rows at ``indices``, as example dicts."""
        batch = self.data[indices]
        return [{k: v[i] for k, v in batch.items()} for i in range(len(indices))]


class BufferedSource:
    """A streaming ``datasets.IterableDataset``, scheduled ``buffer_size`` rows at a time, so memory stays flat.

    ``buffer_size`` is rounded down to a multiple of the batch size, so that only the very last batch can be
    short. Buffer 0 uses the schedule's seed, the later ones seeds derived from it. A resume point records the
    buffer, the source's own state at its start and a digest of its schedule columns, which is checked when the
    buffer is read again.
    """

    def __init__(
        self,
        dataset: Any,
        params: ScheduleParams,
        options: CurriculumOptions,
        buffer_size: int,
        output_columns: list[str] | None,
        keep: list[str] | None,
        remove: set[str],
    ):
        batch_size = params.batch_size
        if isinstance(buffer_size, bool) or not isinstance(buffer_size, int) or buffer_size < batch_size:
            raise InvalidParameterError(
                f"buffer_size must be an integer >= batch_size ({batch_size}), got {buffer_size!r}: the schedule "
                f"is built from whole buffers. Pass a larger buffer_size (e.g. {max(batch_size, 10_000)}), or a "
                "smaller batch_size."
            )
        self.buffer_size = buffer_size - buffer_size % batch_size
        self.data = dataset
        self.params = params
        self.columns = options.schedule_columns()
        self.output_columns, self.keep, self.remove = output_columns, keep, remove
        if dataset.column_names is not None:
            for name, role in self.columns:
                require_schedule_columns(dataset, name, role)  # the missing-column error now, not mid-stream

    def identity(self) -> dict[str, Any]:
        """The data part of the stream's identity: a stream has none but its buffer size."""
        return {"data": "stream", "num_rows": None, "buffer_size": self.buffer_size}

    def global_batches(self, epoch: int, start: dict[str, Any]) -> Iterator[GlobalBatch]:
        """The batches of ``epoch`` from ``start`` on: the source restarts at the saved buffer (from its own
        ``state_dict``), which is checked against the saved digest of its schedule columns."""
        source, size = self.data, self.buffer_size
        if hasattr(source, "set_epoch"):
            source.set_epoch(epoch)
        buffer, before, state = start.get("buffer", 0), start.get("batches_before", 0), start.get("source_state")
        source.load_state_dict(state)  # None starts from the beginning
        chunks = source.iter(batch_size=size)  # .iter() reads the whole stream in every worker and rank
        while True:
            chunk = None  # release the previous buffer before filling the next: at most `size` rows held
            chunk = next(chunks, None)
            if chunk is None:
                return
            next_state = source.state_dict()
            values = dict.fromkeys(("cluster", "difficulty"))
            for name, role in self.columns:
                values[role] = read_schedule_column(chunk, name, role)
            # Every value of the buffer is checked before anything of it is yielded, and a bad one is named by
            # its row in the whole stream (the buffers before this one hold exactly `size` rows each).
            as_schedule_arrays(
                values["cluster"],
                values["difficulty"],
                self.params.order,
                first_row=buffer * size,
                row_label="stream row",
            )
            digest = digest_arrays(values["cluster"], values["difficulty"])
            if buffer == start.get("buffer") and start.get("buffer_digest") not in (None, digest):
                raise ScheduleMismatchError(
                    f"The stream differs from the one the state was saved on: buffer {buffer} now has other cluster/"
                    "difficulty values. Resume on the same source, in the same order, or start the epoch afresh "
                    "without load_state_dict."
                )
            seed = (
                self.params.seed
                if buffer == 0
                else int(np.random.SeedSequence([self.params.seed, buffer]).generate_state(1)[0])
            )
            batches = self.params.build(values["cluster"], values["difficulty"], epoch, seed=seed)
            extra = {"buffer": buffer, "batches_before": before, "source_state": state, "buffer_digest": digest}
            holder, keys = [chunk], self._keys(chunk)

            def fetch(idx, holder=holder, keys=keys):
                return [{k: holder[0][k][i] for k in keys} for i in idx]

            for g, batch in enumerate(batches, before):
                if g >= start.get("batch", 0):
                    yield g, batch, fetch, extra
            holder[0] = None  # even if a caller still holds `fetch`
            buffer, before, state = buffer + 1, before + len(batches), next_state

    def _keys(self, chunk: dict[str, Any]) -> list[str]:
        if self.output_columns is not None:
            return self.output_columns
        return [k for k in chunk if (self.keep is None or k in self.keep) and k not in self.remove]
