"""The curriculum stream: a resumable, DDP- and worker-aware ``torch.utils.data.IterableDataset``.

:class:`CurriculumDataset` replays :func:`~hf_saerl.curriculum.build_schedule` over a ``datasets.Dataset`` (or, in a
bounded buffer, over a streaming ``datasets.IterableDataset``) and converts to the forms trainers consume: a
``datasets.IterableDataset`` and a pre-ordered map-style ``datasets.Dataset``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

from ..core.columns import CLUSTER_ID, DIFFICULTY
from ..core.fingerprint import Fingerprinted, stable_hash
from .columns import ColumnSchedule, ScheduleParams, check_columns, column_names, digest_arrays, read_column
from .schedule import describe_schedule

STATE_VERSION = 1
DEFAULT_BUFFER_SIZE = 10_000

Row = dict[str, Any]
# (global batch index, row positions in the batch, fetch(positions) -> rows, extra position fields)
_GlobalBatch = tuple[int, list[int], Callable[[list[int]], list[Row]], dict[str, Any]]


class CurriculumDataset(torch.utils.data.IterableDataset, Fingerprinted):
    """Examples (or whole batches) of a dataset in SAERL curriculum order, ready for any ``DataLoader``.

    Args:
        dataset: a ``datasets.Dataset`` with the schedule columns, or a streaming ``datasets.IterableDataset``
            (scheduled ``buffer_size`` rows at a time, so memory stays flat however long the stream).
        batch_size: rows per global batch (all ranks together), see :func:`build_schedule`.
        mix_ratio, seed, drop_last, interleave, order: as in :func:`build_schedule`.
        cluster_column: column of cluster ids, or ``None`` for no clustering.
        difficulty_column: column of difficulties, or ``None`` with ``order="random"``.
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
        mix_ratio: float = 0.125,
        seed: int = 0,
        drop_last: bool = False,
        interleave: str = "round_robin",
        order: str = "easy_to_hard",
        cluster_column: str | None = CLUSTER_ID,
        difficulty_column: str | None = DIFFICULTY,
        columns: Sequence[str] | None = None,
        remove_columns: Sequence[str] | None = None,
        yield_batches: bool = False,
        rank: int | None = None,
        world_size: int | None = None,
        buffer_size: int = DEFAULT_BUFFER_SIZE,
        epoch: int = 0,
    ):
        import datasets

        self.params = ScheduleParams(batch_size, mix_ratio, seed, drop_last, interleave, order)
        check_columns(cluster_column, difficulty_column, order)
        self.cluster_column = cluster_column
        self.difficulty_column = difficulty_column
        self.yield_batches = bool(yield_batches)
        self._rank, self._world_size = _check_rank(rank, world_size)
        self._epoch = torch.tensor(_check_epoch(epoch), dtype=torch.int64).share_memory_()
        self._streaming = isinstance(dataset, datasets.IterableDataset)
        if not self._streaming and not isinstance(dataset, datasets.Dataset):
            raise TypeError(
                f"CurriculumDataset wraps a datasets.Dataset or datasets.IterableDataset, got {type(dataset).__name__}."
                " Convert with datasets.Dataset.from_dict / from_list / from_pandas first."
            )
        self.output_columns = _output_columns(column_names(dataset), columns, remove_columns)
        self._remove = set(remove_columns or ())
        self._keep = None if columns is None else list(columns)
        if self._streaming:
            if isinstance(buffer_size, bool) or not isinstance(buffer_size, int) or buffer_size < batch_size:
                raise ValueError(
                    f"buffer_size must be an integer >= batch_size ({batch_size}), got {buffer_size!r}: the schedule "
                    "is built from whole buffers."
                )
            self.buffer_size = buffer_size - buffer_size % batch_size
            self._source = dataset
            self._columns: ColumnSchedule | None = None
            for name, role in ((cluster_column, "cluster"), (difficulty_column, "difficulty")):
                if name is not None and dataset.column_names is not None:
                    read_column({c: [] for c in dataset.column_names}, name, role)  # missing-column error now
        else:
            self.buffer_size = None
            self._columns = ColumnSchedule(dataset, self.params, cluster_column, difficulty_column)
            self._source = dataset.select_columns(self.output_columns)
        features = dataset.features
        self.features = None if features is None or self.output_columns is None else datasets.Features(
            {c: features[c] for c in self.output_columns}
        )
        self._position: dict[str, Any] = {"batch": 0, "offset": 0}
        self._pending: dict[str, Any] | None = None

    # ------------------------------------------------------------------ epochs and distribution
    @property
    def epoch(self) -> int:
        return int(self._epoch.item())

    def set_epoch(self, epoch: int) -> None:
        """Use the schedule of ``epoch`` from the next iteration on (shared with DataLoader workers, persistent
        or not; a streaming source's ``set_epoch`` is called too). A loaded state for another epoch is discarded."""
        if _check_epoch(epoch) != self.epoch:
            self._position = {"batch": 0, "offset": 0}
            if self._pending is not None and self._pending["epoch"] != epoch:
                self._pending = None
        self._epoch.fill_(epoch)

    @property
    def rank(self) -> int:
        return self._dist()[0]

    @property
    def world_size(self) -> int:
        return self._dist()[1]

    def _dist(self) -> tuple[int, int]:
        if self._world_size is not None:
            return self._rank, self._world_size
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return torch.distributed.get_rank(), torch.distributed.get_world_size()
        return 0, 1

    def __getstate__(self) -> dict[str, Any]:
        # Freeze the rank read from torch.distributed: spawned DataLoader workers have no process group.
        state = self.__dict__.copy()
        state["_rank"], state["_world_size"] = self._dist()
        return state

    # ------------------------------------------------------------------ the schedule
    def schedule(self, epoch: int | None = None) -> list[list[int]]:
        """The global batches of row indices for ``epoch`` (default: the current one). Map-style sources only."""
        if self._columns is None:
            raise TypeError("schedule() needs a map-style datasets.Dataset; a stream is scheduled buffer by buffer.")
        return self._columns.batches(self.epoch if epoch is None else _check_epoch(epoch))

    def describe(self, epoch: int | None = None) -> dict[str, list[Any]]:
        """Per-batch mean difficulty and majority cluster of :meth:`schedule` (see :func:`describe_schedule`)."""
        cols = self._columns
        return describe_schedule(self.schedule(epoch), None if cols is None else cols.cluster_ids,
                                 None if cols is None else cols.difficulty)

    def __len__(self) -> int:
        """Items this rank yields per epoch (examples, or non-empty batches with ``yield_batches``)."""
        if self._columns is None:
            raise TypeError("A CurriculumDataset over a streaming source has no length.")
        rank, world = self._dist()
        sizes = [len(b[rank::world]) for b in self.schedule()]
        return sum(s > 0 for s in sizes) if self.yield_batches else sum(sizes)

    def _global_batches(self, epoch: int, start: dict[str, Any]) -> Iterator[_GlobalBatch]:
        if self._columns is not None:
            fetch = self._fetch_rows
            for g, batch in enumerate(self._columns.batches(epoch)[start.get("batch", 0):], start.get("batch", 0)):
                yield g, batch, fetch, {}
        else:
            yield from self._stream_batches(epoch, start)

    def _fetch_rows(self, indices: list[int]) -> list[Row]:
        return _rows(self._source[indices], len(indices))

    def _stream_batches(self, epoch: int, start: dict[str, Any]) -> Iterator[_GlobalBatch]:
        source, size = self._source, self.buffer_size
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
            cluster_ids, difficulty = (
                None if name is None else read_column(chunk, name, role)
                for name, role in ((self.cluster_column, "cluster"), (self.difficulty_column, "difficulty"))
            )
            digest = digest_arrays(cluster_ids, difficulty)
            if buffer == start.get("buffer") and start.get("buffer_digest") not in (None, digest):
                raise ValueError(
                    f"The stream differs from the one the state was saved on: buffer {buffer} now has other cluster/"
                    "difficulty values. Resume on the same source, in the same order."
                )
            seed = self.params.seed if buffer == 0 else int(np.random.SeedSequence([self.params.seed, buffer])
                                                                .generate_state(1)[0])
            batches = self.params.build(cluster_ids, difficulty, epoch, seed=seed)
            extra = {"buffer": buffer, "batches_before": before, "source_state": state, "buffer_digest": digest}
            holder, keys = [chunk], self._stream_keys(chunk)
            fetch = (lambda idx, holder=holder, keys=keys: [{k: holder[0][k][i] for k in keys} for i in idx])
            for g, batch in enumerate(batches, before):
                if g >= start.get("batch", 0):
                    yield g, batch, fetch, extra
            holder[0] = None  # even if a caller still holds `fetch`
            buffer, before, state = buffer + 1, before + len(batches), next_state

    def _stream_keys(self, chunk: dict[str, Any]) -> list[str]:
        if self.output_columns is not None:
            return self.output_columns
        return [k for k in chunk if (self._keep is None or k in self._keep) and k not in self._remove]

    # ------------------------------------------------------------------ iteration
    def __iter__(self) -> Iterator[Row | list[Row]]:
        rank, world = self._dist()
        info = torch.utils.data.get_worker_info()
        worker, num_workers = (0, 1) if info is None else (info.id, info.num_workers)
        epoch = self.epoch
        start = self._take_pending(epoch, num_workers)
        self._position = dict(start)
        for g, batch, fetch, extra in self._global_batches(epoch, start):
            if g % num_workers != worker:
                continue
            local = batch[rank::world]
            offset = start["offset"] if g == start["batch"] else 0
            if offset >= len(local):
                continue
            rows = fetch(local[offset:])
            if self.yield_batches:
                self._position = {**extra, "batch": g + 1, "offset": 0}
                yield rows
                continue
            for k, row in enumerate(rows, offset + 1):
                self._position = {**extra, "batch": g, "offset": k}
                yield row

    def _take_pending(self, epoch: int, num_workers: int) -> dict[str, Any]:
        pending, self._pending = self._pending, None
        if pending is None or pending["epoch"] != epoch:
            return {"batch": 0, "offset": 0}
        if pending.get("num_workers", num_workers) != num_workers:
            raise ValueError(
                f"The state was saved with {pending['num_workers']} DataLoader worker(s) but this loader has "
                f"{num_workers}. Resume with the same num_workers."
            )
        return dict(pending["position"])

    # ------------------------------------------------------------------ resumption
    def _identity(self) -> dict[str, Any]:
        data = (
            {"data": "stream", "num_rows": None, "buffer_size": self.buffer_size}
            if self._columns is None
            else {"data": self._columns.digest, "num_rows": self._columns.num_rows}
        )
        return {**data, **self.params.as_dict(), "cluster_column": self.cluster_column,
                "difficulty_column": self.difficulty_column}

    @property
    def fingerprint(self) -> str:
        """A short hash of the schedule (data identity and parameters) and the yielded columns."""
        return stable_hash({**self._identity(), "columns": self.output_columns, "epoch": self.epoch,
                            "yield_batches": self.yield_batches})

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable position after the last yielded item, with the schedule's identity.

        With DataLoader workers, each worker has its own state: use torchdata's ``StatefulDataLoader``, which
        collects them; this object's own state only advances when it is iterated in this process.
        """
        if self._pending is not None:
            return dict(self._pending)
        rank, world = self._dist()
        info = torch.utils.data.get_worker_info()
        identity = self._identity()
        return {
            "version": STATE_VERSION,
            "fingerprint": stable_hash(identity),
            "schedule": identity,
            "epoch": self.epoch,
            "rank": rank,
            "world_size": world,
            "num_workers": 1 if info is None else info.num_workers,
            "position": dict(self._position),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from :meth:`state_dict` at the next iteration: the rest of that epoch, exactly.

        Raises ``ValueError`` naming what differs when the state belongs to another schedule.
        """
        if not isinstance(state, dict) or state.get("version") != STATE_VERSION or "position" not in state:
            raise ValueError(
                "Not a CurriculumDataset state (expected the dict returned by CurriculumDataset.state_dict())."
            )
        identity = self._identity()
        if state["fingerprint"] != stable_hash(identity):
            saved = state.get("schedule", {})
            diffs = [f"{k}: {saved.get(k)!r} in the state, {v!r} here" for k, v in identity.items()
                     if saved.get(k) != v]
            raise ValueError(
                "The state was saved for a different curriculum schedule (" + "; ".join(diffs or ["fingerprint"])
                + "). Rebuild the CurriculumDataset with the same data and parameters to resume."
            )
        rank, world = self._dist()
        if (state["rank"], state["world_size"]) != (rank, world):
            raise ValueError(
                f"The state was saved on rank {state['rank']} of {state['world_size']} but this is rank {rank} of "
                f"{world}. Load each rank's own state with the same world size."
            )
        self._epoch.fill_(state["epoch"])
        self._pending = dict(state)

    # ------------------------------------------------------------------ exports
    def to_iterable_dataset(self, epoch: int | None = None, num_epochs: int = 1):
        """The global stream (all ranks, unsplit) as a ``datasets.IterableDataset`` with declared features.

        Epochs ``epoch, epoch + 1, ...`` (default: the current one) follow each other, each with its own schedule;
        with ``num_epochs > 1`` each epoch must end on a whole batch (``drop_last=True``, or a row count divisible by
        ``batch_size``), else a ``ValueError`` says so, since the next epoch's batches would be shifted. It is one
        shard: iterate it with ``num_workers=0`` (TRL forces this), and let the trainer split it across ranks. It
        resumes with ``state_dict``/``load_state_dict`` like any ``datasets`` stream.

        Example:
            >>> import datasets
            >>> from hf_saerl.curriculum import CurriculumDataset
            >>> ds = datasets.Dataset.from_dict({"x": [0, 1, 2, 3], "cluster_id": [0, 0, 1, 1],
            ...                                  "difficulty": [0.4, 0.3, 0.2, 0.1]})
            >>> [r["x"] for r in CurriculumDataset(ds, 2, mix_ratio=0, columns=["x"]).to_iterable_dataset()]
            [1, 0, 3, 2]
        """
        import datasets

        return datasets.IterableDataset.from_generator(
            _generate_examples, features=self.features,
            gen_kwargs={"curriculum": self, "epochs": self._epochs(epoch, num_epochs)},  # a tuple: one shard
        )

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
        import datasets
        from datasets.fingerprint import generate_random_fingerprint

        epochs = self._epochs(epoch, num_epochs)
        if self._columns is not None:
            order = [i for e in epochs for batch in self._columns.batches(e) for i in batch]
            return self._source.select(order)
        return datasets.Dataset.from_generator(
            _generate_examples, features=self.features, gen_kwargs={"curriculum": self, "epochs": epochs},
            fingerprint=generate_random_fingerprint(),  # a stream has no stable identity: never reuse a cache
        )

    def _epochs(self, epoch: int | None, num_epochs: int) -> tuple[int, ...]:
        first = self.epoch if epoch is None else _check_epoch(epoch)
        if isinstance(num_epochs, bool) or not isinstance(num_epochs, int) or num_epochs < 1:
            raise ValueError(f"num_epochs must be an integer >= 1, got {num_epochs!r}.")
        if num_epochs > 1 and self._columns is not None:
            _check_whole_epochs(self._columns.num_rows % self.params.batch_size, self.params, num_epochs)
        return tuple(range(first, first + num_epochs))

    def _iter_epochs(self, epochs: tuple[int, ...]) -> Iterator[tuple[int, int, list[int], list[Row]]]:
        """``(epoch, global batch index, source indices, rows)`` of consecutive epochs, for the exports. A short
        final batch followed by another epoch is an error (a stream's length is only known at its end)."""
        for k, epoch in enumerate(epochs):
            short = 0
            for g, sources, rows in self.iter_global(epoch):
                short = len(sources) % self.params.batch_size
                yield epoch, g, sources, rows
            if short and k + 1 < len(epochs):
                _check_whole_epochs(short, self.params, len(epochs))

    def iter_global(self, epoch: int | None = None) -> Iterator[tuple[int, list[int], list[Row]]]:
        """``(global batch index, source row indices, rows)`` for the whole epoch, ignoring ranks and workers.

        Source indices are row indices of a map-style source, or positions in the stream of a streaming one.
        """
        epoch = self.epoch if epoch is None else _check_epoch(epoch)
        for g, batch, fetch, extra in self._global_batches(epoch, {}):
            offset = extra.get("buffer", 0) * (self.buffer_size or 0)
            yield g, [offset + i for i in batch], fetch(batch)

    def __repr__(self) -> str:
        p = self.params
        return (
            f"CurriculumDataset(batch_size={p.batch_size}, mix_ratio={p.mix_ratio}, seed={p.seed}, epoch={self.epoch}, "
            f"interleave={p.interleave!r}, order={p.order!r}, streaming={self._streaming}, "
            f"columns={self.output_columns})"
        )


def _generate_examples(curriculum: CurriculumDataset, epochs: tuple[int, ...]) -> Iterator[Row]:
    for _, _, _, rows in curriculum._iter_epochs(epochs):
        yield from rows


def _check_whole_epochs(remainder: int, params: Any, num_epochs: int) -> None:
    """Epochs written one after the other must each end on a whole batch, or every batch of the next epoch is
    shifted against the trainer's fixed-size steps (mixing clusters and difficulty stages)."""
    if remainder and not params.drop_last:
        raise ValueError(
            f"Cannot export {num_epochs} epochs one after the other: each epoch ends with a short batch of "
            f"{remainder} row(s) (batch_size={params.batch_size}), so a trainer reading {params.batch_size} rows per "
            f"step would see every batch of the following epochs shifted by {remainder}. Pass drop_last=True to "
            "the CurriculumDataset (each epoch then drops its short batch), or export one epoch at a time "
            "(num_epochs=1)."
        )


def _rows(batch: dict[str, Any], n: int) -> list[Row]:
    return [{k: v[i] for k, v in batch.items()} for i in range(n)]


def _output_columns(
    names: list[str] | None, columns: Sequence[str] | None, remove_columns: Sequence[str] | None
) -> list[str] | None:
    for arg, value in (("columns", columns), ("remove_columns", remove_columns)):
        if isinstance(value, str):
            raise TypeError(f"{arg} must be a list of column names, got the string {value!r}; wrap it in a list.")
    if names is None:
        return None
    missing = [c for c in list(columns or ()) + list(remove_columns or ()) if c not in names]
    if missing:
        raise KeyError(f"Column(s) {missing} not in the dataset; its columns are {names}.")
    kept = [c for c in (names if columns is None else columns) if c not in set(remove_columns or ())]
    if not kept:
        warnings.warn("CurriculumDataset keeps no column: every yielded example will be empty.", stacklevel=3)
    return kept


def _check_epoch(epoch: int) -> int:
    if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
        raise ValueError(f"epoch must be a non-negative integer, got {epoch!r}.")
    return int(epoch)


def _check_rank(rank: int | None, world_size: int | None) -> tuple[int | None, int | None]:
    if rank is None and world_size is None:
        return None, None
    if rank is None or world_size is None:
        raise ValueError("Pass both rank and world_size, or neither (then torch.distributed is read).")
    if not (isinstance(world_size, int) and world_size >= 1 and isinstance(rank, int) and 0 <= rank < world_size):
        raise ValueError(f"Need 0 <= rank < world_size with world_size >= 1, got rank={rank}, world_size={world_size}.")
    return rank, world_size
