"""The curriculum order as ``torch.utils.data`` samplers over a map-style dataset."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import torch

from .options import CurriculumOptions
from .schedule import check_epoch

__all__ = ["CurriculumBatchSampler", "CurriculumSampler"]

logger = logging.getLogger(__name__)


class CurriculumBatchSampler(torch.utils.data.Sampler[list[int]]):
    """Yields the global curriculum batches (lists of row indices) of a map-style dataset.

    ``data_source`` is a ``datasets.Dataset`` or a dict of columns holding ``cluster_column`` and
    ``difficulty_column``; ``batch_size`` and the keyword ``**options`` (``mix_ratio``, ``seed``, ``drop_last``,
    ``interleave``, ``order``, ``cluster_column``, ``difficulty_column``: see
    :class:`~hf_saerl.curriculum.CurriculumOptions`) are those of :func:`build_schedule`. Call :meth:`set_epoch`
    each epoch (HF ``Trainer`` and Accelerate do) for a new order. The batches are global: Accelerate and HF
    ``Trainer`` split them across processes; for a hand-written DDP loop use :class:`CurriculumDataset` instead.

    Example:
        >>> from torch.utils.data import DataLoader
        >>> from hf_saerl.curriculum import CurriculumBatchSampler
        >>> data = {"cluster_id": [0, 0, 1, 1], "difficulty": [0.4, 0.3, 0.2, 0.1]}
        >>> list(CurriculumBatchSampler(data, batch_size=2, mix_ratio=0))
        [[1, 0], [3, 2]]
        >>> loader = DataLoader(list("abcd"), batch_sampler=CurriculumBatchSampler(data, 2, mix_ratio=0))
        >>> list(loader)
        [['b', 'a'], ['d', 'c']]
    """

    def __init__(self, data_source: Any, batch_size: int, *, epoch: int = 0, **options: Any):
        self._columns = CurriculumOptions(**options).schedule(data_source, batch_size)
        self.epoch = check_epoch(epoch)

    @property
    def batch_size(self) -> int:
        return self._columns.params.batch_size

    def set_epoch(self, epoch: int) -> None:
        """Use the schedule of ``epoch`` (a non-negative integer; a float or a string is refused, not truncated)."""
        self.epoch = check_epoch(epoch)

    def batches(self, epoch: int | None = None) -> list[list[int]]:
        """The schedule of ``epoch`` (default: the current one)."""
        return self._columns.batches(self.epoch if epoch is None else check_epoch(epoch))

    def __iter__(self) -> Iterator[list[int]]:
        return iter([list(b) for b in self.batches()])

    def __len__(self) -> int:
        return len(self.batches())


class CurriculumSampler(torch.utils.data.Sampler[int]):
    """Yields row indices in curriculum order: the flattened batches of :class:`CurriculumBatchSampler`.

    Give the ``DataLoader`` (or ``Trainer``) a batch size equal to ``batch_size`` (per process:
    ``batch_size / world_size``) so that loader batches line up with curriculum batches.

    Example:
        >>> from hf_saerl.curriculum import CurriculumSampler
        >>> list(CurriculumSampler({"cluster_id": [0, 0, 1, 1], "difficulty": [0.4, 0.3, 0.2, 0.1]}, 2, mix_ratio=0))
        [1, 0, 3, 2]
    """

    def __init__(self, data_source: Any, batch_size: int, **options: Any):
        self.batch_sampler = CurriculumBatchSampler(data_source, batch_size, **options)

    @property
    def epoch(self) -> int:
        return self.batch_sampler.epoch

    def set_epoch(self, epoch: int) -> None:
        self.batch_sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[int]:
        return (i for batch in self.batch_sampler.batches() for i in batch)

    def __len__(self) -> int:
        return sum(len(b) for b in self.batch_sampler.batches())
