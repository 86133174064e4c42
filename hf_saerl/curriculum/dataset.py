"""The curriculum stream: a resumable, DDP- and worker-aware ``torch.utils.data.IterableDataset``.

:class:`CurriculumDataset` replays :func:`~hf_saerl.curriculum.build_schedule` over a ``datasets.Dataset`` (or, in a
bounded buffer, over a streaming ``datasets.IterableDataset``) and converts to the forms trainers consume: a
``datasets.IterableDataset`` and a pre-ordered map-style ``datasets.Dataset``. It is assembled from one part per
job: the schedule options (:mod:`~hf_saerl.curriculum.options`), where the batches come from
(:mod:`~hf_saerl.curriculum.sources`), the resumable position and the rank/worker split
(:mod:`~hf_saerl.curriculum.state`), and the exports (:mod:`~hf_saerl.curriculum.exports`).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from ..core.columns import column_names
from ..core.fingerprint import Fingerprinted, stable_hash
from ..core.validation import check_bool
from ..errors import InvalidParameterError, MissingColumnError, ParameterTypeError
from . import exports
from .options import ColumnSchedule, CurriculumOptions
from .schedule import check_epoch, describe_schedule
from .sources import BufferedSource, MapSource, Row
from .state import STATE_VERSION, StreamCursor, check_rank, distributed_rank, in_worker, worker_share

__all__ = ["DEFAULT_BUFFER_SIZE", "STATE_VERSION", "CurriculumDataset"]

logger = logging.getLogger(__name__)

DEFAULT_BUFFER_SIZE = 10_000


class CurriculumDataset(torch.utils.data.IterableDataset, Fingerprinted):
    """Examples (or whole batches) of a dataset in SAERL curriculum order, ready for any ``DataLoader``.

    Args:
        dataset: a ``datasets.Dataset`` with the schedule columns, or a streaming ``datasets.IterableDataset``
            (scheduled ``buffer_size`` rows at a time, so memory stays flat however long the stream). A map-style
            dataset's columns are checked on construction; a stream's, buffer by buffer: a bad value (NaN or
            missing difficulty, a fractional cluster id) raises before anything of its buffer is yielded, naming its
            row in the whole stream.
        batch_size: rows per global batch (all ranks together), see :func:`build_schedule`.
        columns: keep only these columns in the yielded examples (default: all).
        remove_columns: drop these columns, e.g. the heavy ``["sae_indices", "sae_values"]`` before they reach
            reward functions.
        yield_batches: yield each (local) batch as a list of example dicts instead of single examples.
        rank, world_size: this process's slice of every global batch. Default: read from ``torch.distributed``
            when it is initialised, else ``0, 1``. Rank ``r`` gets ``batch[r::world_size]``, so ranks see a
            similar difficulty spread. When ``batch_size % world_size != 0`` the first ranks get one example more
            per batch; nothing is duplicated or dropped. Inside HF ``Trainer``, TRL or Accelerate, which split
            batches themselves, pass ``world_size=1`` (the exports below are always global).
        buffer_size: rows scheduled together over a streaming source, rounded down to a multiple of
            ``batch_size``. Ignored for a map-style ``Dataset``, which is scheduled whole.
        epoch: the starting epoch (see :meth:`set_epoch`).
        **options: the schedule options of :class:`~hf_saerl.curriculum.options.CurriculumOptions`:
            ``mix_ratio``, ``seed``, ``drop_last``, ``interleave``, ``order`` (as in :func:`build_schedule`),
            ``cluster_column`` (``None`` for no clustering) and ``difficulty_column`` (``None`` with
            ``order="random"``).

    With DataLoader workers, worker ``w`` of ``W`` produces global batches ``w, w + W, ...``; torch's DataLoader
    takes one item from each worker in turn, so the order is kept exactly when each item is a whole batch:
    ``DataLoader(ds_with_yield_batches, batch_size=None, num_workers=W)``, or in example mode a DataLoader
    ``batch_size`` equal to the local batch size with ``drop_last=True`` schedules. Checkpoint a multi-worker
    loader with ``torchdata.stateful_dataloader.StatefulDataLoader``, which saves each worker's state.

    Example:
        >>> import datasets
        >>> from hf_saerl.curriculum import CurriculumDataset
        >>> ds = datasets.Dataset.from_dict({"text": list("abcdef"), "cluster_id": [0, 0, 0, 1, 1, 1],
        ...                                  "difficulty": [0.9, 0.1, 0.5, 0.3, 0.2, 0.8]})
        >>> stream = CurriculumDataset(ds, batch_size=3, mix_ratio=0, columns=["text"])
        >>> [ex["text"] for ex in stream]
        ['b', 'c', 'a', 'e', 'd', 'f']
        >>> [[ex["text"] for ex in batch] for batch in CurriculumDataset(ds, 3, mix_ratio=0, yield_batches=True)]
        [['b', 'c', 'a'], ['e', 'd', 'f']]
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int,
        *,
        columns: Sequence[str] | None = None,
        remove_columns: Sequence[str] | None = None,
        yield_batches: bool = False,
        rank: int | None = None,
        world_size: int | None = None,
        buffer_size: int = DEFAULT_BUFFER_SIZE,
        epoch: int = 0,
        **options: Any,
    ):
        import datasets

        self.options = CurriculumOptions(**options)
        self.params = self.options.params(batch_size)
        self.cluster_column = self.options.cluster_column
        self.difficulty_column = self.options.difficulty_column
        self.yield_batches = check_bool(
            "yield_batches",
            yield_batches,
            "Pass yield_batches=True for whole batches, or yield_batches=False for single examples.",
        )
        self._rank, self._world_size = check_rank(rank, world_size)
        self._cursor = StreamCursor(epoch)
        streaming = isinstance(dataset, datasets.IterableDataset)
        if not streaming and not isinstance(dataset, datasets.Dataset):
            raise ParameterTypeError(
                f"CurriculumDataset wraps a datasets.Dataset or datasets.IterableDataset, got {type(dataset).__name__}."
                " Convert with datasets.Dataset.from_dict / from_list / from_pandas first."
            )
        self.output_columns = _output_columns(column_names(dataset), columns, remove_columns)
        self._source: MapSource | BufferedSource
        if streaming:
            self._source = BufferedSource(
                dataset,
                self.params,
                self.options,
                buffer_size,
                self.output_columns,
                None if columns is None else list(columns),
                set(remove_columns or ()),
            )
        else:
            assert self.output_columns is not None  # a map-style dataset always knows its columns
            self._source = MapSource(dataset, self.options.schedule(dataset, batch_size), self.output_columns)
        self.buffer_size = self._source.buffer_size
        features = dataset.features
        self.features = (
            None
            if features is None or self.output_columns is None
            else datasets.Features({c: features[c] for c in self.output_columns})
        )

    # ------------------------------------------------------------------ epochs and distribution
    @property
    def epoch(self) -> int:
        return self._cursor.epoch

    def set_epoch(self, epoch: int) -> None:
        """Use the schedule of ``epoch`` from the next iteration on (shared with DataLoader workers, persistent
        or not; a streaming source's ``set_epoch`` is called too). A loaded state for another epoch is discarded."""
        self._cursor.set_epoch(epoch)

    @property
    def source_dataset(self) -> Any:
        """The data this stream reads: a map-style source's ``datasets.Dataset`` (its yielded columns only, in the
        original row order: index it with :meth:`schedule`'s row indices), or the streaming
        ``datasets.IterableDataset`` as given.

        Example:
            >>> import datasets
            >>> from hf_saerl.curriculum import CurriculumDataset
            >>> ds = datasets.Dataset.from_dict({"x": [0, 1], "y": [2, 3], "cluster_id": [0, 1],
            ...                                  "difficulty": [0.5, 0.5]})
            >>> CurriculumDataset(ds, 2, columns=["x"]).source_dataset.column_names
            ['x']
        """
        return self._source.data

    @property
    def streaming(self) -> bool:
        """Whether the source is a streaming ``datasets.IterableDataset`` (scheduled buffer by buffer)."""
        return isinstance(self._source, BufferedSource)

    @property
    def rank(self) -> int:
        return self._dist()[0]

    @property
    def world_size(self) -> int:
        return self._dist()[1]

    def _dist(self) -> tuple[int, int]:
        return distributed_rank(self._rank, self._world_size)

    def __getstate__(self) -> dict[str, Any]:
        # Freeze the rank read from torch.distributed: spawned DataLoader workers have no process group.
        state = self.__dict__.copy()
        state["_rank"], state["_world_size"] = self._dist()
        return state

    # ------------------------------------------------------------------ the schedule
    def _columns(self) -> ColumnSchedule:
        """The schedule columns of a map-style source."""
        assert isinstance(self._source, MapSource), "a streaming source is scheduled buffer by buffer"
        return self._source.schedule

    def schedule(self, epoch: int | None = None) -> list[list[int]]:
        """The global batches of row indices for ``epoch`` (default: the current one). Map-style sources only."""
        if self.streaming:
            raise TypeError(
                "schedule() needs a map-style datasets.Dataset; a stream is scheduled buffer by buffer. "
                "Iterate it (iter_global()), or materialise it with to_ordered_dataset()."
            )
        return self._columns().batches(self.epoch if epoch is None else check_epoch(epoch))

    def describe(self, epoch: int | None = None) -> dict[str, list[Any]]:
        """Per-batch mean difficulty and majority cluster of :meth:`schedule` (see :func:`describe_schedule`)."""
        columns = self._columns() if not self.streaming else None
        return describe_schedule(
            self.schedule(epoch),
            None if columns is None else columns.cluster_ids,
            None if columns is None else columns.difficulty,
        )

    def __len__(self) -> int:
        """Items this rank yields per epoch (examples, or non-empty batches with ``yield_batches``)."""
        if self.streaming:
            raise TypeError("A CurriculumDataset over a streaming source has no length.")
        rank, world = self._dist()
        sizes = [len(b[rank::world]) for b in self.schedule()]
        return sum(s > 0 for s in sizes) if self.yield_batches else sum(sizes)

    # ------------------------------------------------------------------ iteration
    def __iter__(self) -> Iterator[Row | list[Row]]:
        rank, world = self._dist()
        worker, num_workers = worker_share()
        epoch = self.epoch
        cursor = self._cursor
        start = cursor.begin(num_workers, in_worker=in_worker())
        for g, batch, fetch, extra in self._source.global_batches(epoch, start):
            if g % num_workers != worker:
                continue
            local = batch[rank::world]
            offset = start["offset"] if g == start["batch"] else 0
            if offset >= len(local):
                continue
            rows = fetch(local[offset:])
            if self.yield_batches:
                cursor.position = {**extra, "batch": g + 1, "offset": 0}
                yield rows
                continue
            for k, row in enumerate(rows, offset + 1):
                cursor.position = {**extra, "batch": g, "offset": k}
                yield row

    def iter_global(self, epoch: int | None = None) -> Iterator[tuple[int, list[int], list[Row]]]:
        """``(global batch index, source row indices, rows)`` for the whole epoch, ignoring ranks and workers.

        Source indices are row indices of a map-style source, or positions in the stream of a streaming one.

        Example:
            >>> import datasets
            >>> from hf_saerl.curriculum import CurriculumDataset
            >>> ds = datasets.Dataset.from_dict({"x": [0, 1, 2, 3], "cluster_id": [0, 0, 1, 1],
            ...                                  "difficulty": [0.4, 0.3, 0.2, 0.1]})
            >>> [(g, sources) for g, sources, _ in CurriculumDataset(ds, 2, mix_ratio=0).iter_global()]
            [(0, [1, 0]), (1, [3, 2])]
        """
        epoch = self.epoch if epoch is None else check_epoch(epoch)
        for g, batch, fetch, extra in self._source.global_batches(epoch, {}):
            offset = extra.get("buffer", 0) * (self.buffer_size or 0)
            yield g, [offset + i for i in batch], fetch(batch)

    def export_epochs(self, epoch: int | None = None, num_epochs: int = 1) -> tuple[int, ...]:
        """The epochs ``epoch, epoch + 1, ...`` (default: from the current one) that an export of ``num_epochs``
        epochs covers, checked now: ``num_epochs >= 1``, and with ``num_epochs > 1`` each epoch of a map-style
        source must end on a whole batch (:class:`~hf_saerl.errors.InvalidParameterError` otherwise; a stream's
        length is only known at its end, so :meth:`iter_epoch_batches` checks it there).

        Example:
            >>> import datasets
            >>> from hf_saerl.curriculum import CurriculumDataset
            >>> ds = datasets.Dataset.from_dict({"cluster_id": [0, 0, 1, 1], "difficulty": [0.4, 0.3, 0.2, 0.1]})
            >>> CurriculumDataset(ds, 2, epoch=1).export_epochs(num_epochs=3)
            (1, 2, 3)
        """
        first = self.epoch if epoch is None else check_epoch(epoch)
        if isinstance(num_epochs, bool) or not isinstance(num_epochs, (int, np.integer)) or num_epochs < 1:
            raise InvalidParameterError(
                f"num_epochs must be an integer >= 1, got {num_epochs!r}. Pass num_epochs=1 "
                "for one epoch, or the number of epochs to write one after the other."
            )
        if num_epochs > 1 and not self.streaming:
            self.params.check_whole_epochs(self._columns().num_rows % self.params.batch_size, num_epochs)
        return tuple(range(first, first + num_epochs))

    def iter_epoch_batches(self, epochs: Sequence[int]) -> Iterator[tuple[int, int, list[int], list[Row]]]:
        """``(epoch, global batch index, source indices, rows)`` of consecutive ``epochs`` (from
        :meth:`export_epochs`), ignoring ranks and workers: what every export writes. A short final batch followed
        by another epoch raises :class:`~hf_saerl.errors.InvalidParameterError` when it is reached.

        Example:
            >>> import datasets
            >>> from hf_saerl.curriculum import CurriculumDataset
            >>> ds = datasets.Dataset.from_dict({"x": [0, 1, 2, 3], "cluster_id": [0, 0, 1, 1],
            ...                                  "difficulty": [0.4, 0.3, 0.2, 0.1]})
            >>> stream = CurriculumDataset(ds, 2, mix_ratio=0, columns=["x"])
            >>> [(e, g, sources) for e, g, sources, _ in stream.iter_epoch_batches(stream.export_epochs(num_epochs=2))]
            [(0, 0, [1, 0]), (0, 1, [3, 2]), (1, 0, [1, 0]), (1, 1, [3, 2])]
        """
        epochs = tuple(epochs)
        for k, epoch in enumerate(epochs):
            short = 0
            for g, sources, rows in self.iter_global(epoch):
                short = len(sources) % self.params.batch_size
                yield epoch, g, sources, rows
            if short and k + 1 < len(epochs):
                self.params.check_whole_epochs(short, len(epochs))

    # ------------------------------------------------------------------ resumption
    def _identity(self) -> dict[str, Any]:
        return {
            **self._source.identity(),
            **self.params.as_dict(),
            "cluster_column": self.cluster_column,
            "difficulty_column": self.difficulty_column,
        }

    @property
    def fingerprint(self) -> str:
        """A short hash of the schedule (data identity and parameters) and the yielded columns."""
        return stable_hash(
            {
                **self._identity(),
                "columns": self.output_columns,
                "epoch": self.epoch,
                "yield_batches": self.yield_batches,
            }
        )

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable position after the last yielded item, with the schedule's identity.

        With DataLoader workers, each worker has its own state: use torchdata's ``StatefulDataLoader``, which
        collects them. This object's own state only advances when it is iterated in this process, so after DataLoader
        workers iterated it (and until this process iterates it again) this raises
        :class:`~hf_saerl.errors.UntrackedProgressError` instead of returning a stale position.
        """
        rank, world = self._dist()
        return self._cursor.state_dict(self._identity(), rank, world, worker_share()[1], in_worker=in_worker())

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from :meth:`state_dict` at the next iteration: the rest of that epoch, exactly.

        Raises :class:`~hf_saerl.errors.ScheduleMismatchError` naming what differs when the state belongs to
        another schedule (other data or parameters, another rank), and
        :class:`~hf_saerl.errors.InvalidParameterError` when it is not a state of this class.
        """
        rank, world = self._dist()
        self._cursor.load_state_dict(state, self._identity(), rank, world)

    # ------------------------------------------------------------------ exports
    def to_iterable_dataset(self, epoch: int | None = None, num_epochs: int = 1):
        """The global stream (all ranks, unsplit) as a ``datasets.IterableDataset`` with declared features.

        Epochs ``epoch, epoch + 1, ...`` (default: the current one) follow each other, each with its own schedule;
        with ``num_epochs > 1`` each epoch must end on a whole batch (``drop_last=True``, or a row count divisible by
        ``batch_size``), else an :class:`~hf_saerl.errors.InvalidParameterError` says so, since the next epoch's
        batches would be shifted. It is one shard: iterate it with ``num_workers=0`` (TRL forces this), and let the
        trainer split it across ranks. It resumes with ``state_dict``/``load_state_dict`` like any ``datasets``
        stream.

        Example:
            >>> import datasets
            >>> from hf_saerl.curriculum import CurriculumDataset
            >>> ds = datasets.Dataset.from_dict({"x": [0, 1, 2, 3], "cluster_id": [0, 0, 1, 1],
            ...                                  "difficulty": [0.4, 0.3, 0.2, 0.1]})
            >>> [r["x"] for r in CurriculumDataset(ds, 2, mix_ratio=0, columns=["x"]).to_iterable_dataset()]
            [1, 0, 3, 2]
        """
        return exports.to_iterable_dataset(self, epoch, num_epochs)

    def to_ordered_dataset(self, epoch: int | None = None, num_epochs: int = 1):
        """A map-style ``datasets.Dataset`` in global curriculum order, for trainers that read by index
        (HF ``Trainer`` with ``train_sampling_strategy="sequential"``, TRL with ``shuffle_dataset=False``, verl,
        OpenRLHF). Over a map-style source it is an index mapping (no copy). Several epochs follow each other as in
        :meth:`to_iterable_dataset` (each must end on a whole batch).

        Example:
            >>> import datasets
            >>> from hf_saerl.curriculum import CurriculumDataset
            >>> ds = datasets.Dataset.from_dict({"x": [0, 1, 2, 3], "cluster_id": [0, 0, 1, 1],
            ...                                  "difficulty": [0.4, 0.3, 0.2, 0.1]})
            >>> CurriculumDataset(ds, 2, mix_ratio=0).to_ordered_dataset()[:]["x"]
            [1, 0, 3, 2]
        """
        return exports.to_ordered_dataset(self, epoch, num_epochs)

    def __repr__(self) -> str:
        p = self.params
        return (
            f"CurriculumDataset(batch_size={p.batch_size}, mix_ratio={p.mix_ratio}, seed={p.seed}, epoch={self.epoch}, "
            f"interleave={p.interleave!r}, order={p.order!r}, streaming={self.streaming}, "
            f"columns={self.output_columns})"
        )


def _output_columns(
    names: list[str] | None, columns: Sequence[str] | None, remove_columns: Sequence[str] | None
) -> list[str] | None:
    for arg, value in (("columns", columns), ("remove_columns", remove_columns)):
        if isinstance(value, str):
            raise ParameterTypeError(
                f"{arg} must be a list of column names, got the string {value!r}; wrap it in a "
                f"list ({arg}=[{value!r}])."
            )
    if names is None:
        return None
    missing = [c for c in list(columns or ()) + list(remove_columns or ()) if c not in names]
    if missing:
        raise MissingColumnError(
            f"Column(s) {missing} not in the dataset; its columns are {names}. Fix the names in "
            "columns= / remove_columns=, or leave them out to keep every column."
        )
    kept = [c for c in (names if columns is None else columns) if c not in set(remove_columns or ())]
    if not kept:
        warnings.warn("CurriculumDataset keeps no column: every yielded example will be empty.", stacklevel=3)
    return kept
