"""The options every curriculum class shares, reading the schedule columns of a dataset, and schedules cached per
epoch.

:class:`CurriculumOptions` is the one place the schedule options (``mix_ratio``, ``seed``, ``drop_last``,
``interleave``, ``order`` and the two column names) are declared, defaulted and validated:
:class:`~hf_saerl.curriculum.CurriculumDataset`, the samplers and the trainer integrations take them as keyword
arguments and hand them over. :class:`ColumnSchedule` reads the columns of a map-style dataset once and builds the
schedule of each epoch from them.

Example:
    >>> from hf_saerl.curriculum.options import CurriculumOptions
    >>> schedule = CurriculumOptions(mix_ratio=0).schedule({"cluster_id": [0, 0, 1, 1],
    ...                                                     "difficulty": [0.4, 0.3, 0.2, 0.1]}, batch_size=2)
    >>> schedule.batches(epoch=0), schedule.num_rows
    ([[1, 0], [3, 2]], 4)
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.columns import CLUSTER_ID, DIFFICULTY, require_columns
from ..errors import InvalidParameterError
from .schedule import ScheduleParams, as_schedule_arrays

__all__ = [
    "ColumnSchedule",
    "CurriculumOptions",
    "ScheduleParams",
    "check_columns",
    "digest_arrays",
    "read_schedule_column",
    "require_schedule_columns",
]

logger = logging.getLogger(__name__)

#: What each schedule column holds, and how to get it, by role.
_ROLES = {
    "cluster": (
        "cluster ids",
        "Run SAEClusterer first (dataset.map(clusterer, batched=True)), pass "
        "cluster_column=<name>, or cluster_column=None for no clustering.",
    ),
    "difficulty": (
        "difficulty scores",
        "Run DifficultyProbe first (dataset.map(probe, batched=True)), pass "
        "difficulty_column=<name>, or difficulty_column=None with order='random'.",
    ),
}


@dataclass(frozen=True)
class CurriculumOptions:
    """The schedule options of the curriculum classes (everything but the data and ``batch_size``), validated on
    construction.

    Args:
        mix_ratio, seed, drop_last, interleave, order: as in :func:`~hf_saerl.curriculum.build_schedule`.
        cluster_column: column of cluster ids, or ``None`` for no clustering.
        difficulty_column: column of difficulties, or ``None`` with ``order="random"``.

    Raises :class:`~hf_saerl.errors.InvalidParameterError` (``TypeError`` for a value of the wrong type) naming
    the option; an unknown keyword is a ``TypeError``, as for any function.

    Example:
        >>> from hf_saerl.curriculum.options import CurriculumOptions
        >>> CurriculumOptions(seed=3).params(batch_size=8).as_dict()["seed"]
        3
    """

    mix_ratio: float = 0.125
    seed: int = 0
    drop_last: bool = False
    interleave: str = "round_robin"
    order: str = "easy_to_hard"
    cluster_column: str | None = CLUSTER_ID
    difficulty_column: str | None = DIFFICULTY

    def __post_init__(self) -> None:
        self.params(1)
        check_columns(self.cluster_column, self.difficulty_column, self.order)

    def params(self, batch_size: int) -> ScheduleParams:
        """The :class:`~hf_saerl.curriculum.schedule.ScheduleParams` of these options at ``batch_size``."""
        return ScheduleParams(batch_size, self.mix_ratio, self.seed, self.drop_last, self.interleave, self.order)

    def schedule(self, data: Any, batch_size: int) -> ColumnSchedule:
        """The :class:`ColumnSchedule` of ``data`` (a ``datasets.Dataset`` or a dict of columns) at ``batch_size``."""
        return ColumnSchedule(data, self.params(batch_size), self.cluster_column, self.difficulty_column)

    def schedule_columns(self) -> list[tuple[str, str]]:
        """``(column, role)`` of the schedule columns in use (``role`` is ``"cluster"`` or ``"difficulty"``)."""
        return [
            (name, role)
            for name, role in ((self.cluster_column, "cluster"), (self.difficulty_column, "difficulty"))
            if name is not None
        ]


def check_columns(cluster_column: str | None, difficulty_column: str | None, order: str) -> None:
    """Raise :class:`~hf_saerl.errors.InvalidParameterError` when the column choice leaves nothing to schedule by.

    Example:
        >>> from hf_saerl.curriculum.options import check_columns
        >>> check_columns("cluster_id", None, "random")  # no difficulty: fine with a random order
    """
    if cluster_column is None and difficulty_column is None:
        raise InvalidParameterError(
            "cluster_column and difficulty_column are both None: at least one column is needed. Name the cluster "
            "column (cluster_column='cluster_id'), or the difficulty column (difficulty_column='difficulty')."
        )
    if difficulty_column is None and order == "easy_to_hard":
        raise InvalidParameterError(
            "difficulty_column=None needs order='random' (there is nothing to order by). Pass order='random', or "
            "difficulty_column=<name> of a difficulty column."
        )


def require_schedule_columns(data: Any, name: str, role: str) -> None:
    """Raise :class:`~hf_saerl.errors.MissingColumnError` when ``data`` lacks the ``role`` column ``name``,
    with the hint of how to get it (``role`` is ``"cluster"`` or ``"difficulty"``).

    Example:
        >>> from hf_saerl.curriculum.options import require_schedule_columns
        >>> require_schedule_columns({"q": [1]}, "cluster_id", "cluster")
        Traceback (most recent call last):
        ...
        hf_saerl.errors.MissingColumnError: Missing column 'cluster_id' holding the cluster ids; found ['q']. Run SAEClusterer first (dataset.map(clusterer, batched=True)), pass cluster_column=<name>, or cluster_column=None for no clustering.
    """
    what, fix = _ROLES[role]
    require_columns(data, [name], what, fix)


def read_schedule_column(data: Any, name: str, role: str) -> np.ndarray:
    """One schedule column of a ``datasets.Dataset`` (read through Arrow, no Python rows) or of a batch dict, as
    numpy; a :class:`~hf_saerl.errors.MissingColumnError` with the role's hint when it is missing.

    Example:
        >>> from hf_saerl.curriculum.options import read_schedule_column
        >>> read_schedule_column({"difficulty": [0.5, 0.25]}, "difficulty", "difficulty")
        array([0.5 , 0.25])
    """
    require_schedule_columns(data, name, role)
    if hasattr(data, "with_format") and hasattr(data, "select_columns"):  # datasets.Dataset
        return data.with_format("arrow", columns=[name])[:][name].to_numpy()
    return np.asarray(data[name])


def digest_arrays(cluster_ids: np.ndarray | None, difficulty: np.ndarray | None) -> str:
    """Identity of the schedule inputs: a short hash of the cluster and difficulty values.

    Example:
        >>> import numpy as np
        >>> from hf_saerl.curriculum.options import digest_arrays
        >>> digest_arrays(np.array([0, 1]), None) == digest_arrays([0, 1], None)
        True
    """
    h = hashlib.sha256()
    for arr, dtype in ((cluster_ids, np.int64), (difficulty, np.float64)):
        h.update(b"-" if arr is None else np.ascontiguousarray(arr, dtype=dtype).tobytes())
        h.update(b"|")
    return h.hexdigest()[:16]


class ColumnSchedule:
    """Schedules over the cluster/difficulty columns of a map-style dataset, read once and cached per epoch.

    Args:
        data: a ``datasets.Dataset`` or a dict of columns.
        params: the schedule parameters.
        cluster_column, difficulty_column: as in :class:`CurriculumOptions`.

    The columns are checked on construction (missing columns, NaN, negative ids, lengths), not at the first
    batch. Attributes: ``params``, ``cluster_ids`` and ``difficulty`` (numpy arrays or ``None``), ``num_rows``.
    """

    def __init__(self, data: Any, params: ScheduleParams, cluster_column: str | None, difficulty_column: str | None):
        check_columns(cluster_column, difficulty_column, params.order)
        self.params = params
        self.cluster_ids = None if cluster_column is None else read_schedule_column(data, cluster_column, "cluster")
        self.difficulty = (
            None if difficulty_column is None else read_schedule_column(data, difficulty_column, "difficulty")
        )
        as_schedule_arrays(self.cluster_ids, self.difficulty, params.order)  # NaN, negative ids...: fail now
        column = self.cluster_ids if self.cluster_ids is not None else self.difficulty
        assert column is not None  # check_columns refused two None columns
        self.num_rows = len(column)
        self._cache: tuple[int, list[list[int]]] | None = None
        self._digest: str | None = None

    def batches(self, epoch: int) -> list[list[int]]:
        """The schedule of ``epoch`` (the last one asked for is cached)."""
        if self._cache is None or self._cache[0] != epoch:
            self._cache = (epoch, self.params.build(self.cluster_ids, self.difficulty, epoch))
        return self._cache[1]

    @property
    def digest(self) -> str:
        """:func:`digest_arrays` of the columns (the data part of a stream's identity)."""
        if self._digest is None:
            self._digest = digest_arrays(self.cluster_ids, self.difficulty)
        return self._digest
