"""Reading the schedule columns of a dataset, and schedules cached per epoch (internal)."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .schedule import _as_arrays, build_schedule, check_schedule_params


@dataclass(frozen=True)
class ScheduleParams:
    """The parameters of :func:`~hf_saerl.curriculum.build_schedule`, validated once."""

    batch_size: int
    mix_ratio: float = 0.125
    seed: int = 0
    drop_last: bool = False
    interleave: str = "round_robin"
    order: str = "easy_to_hard"

    def __post_init__(self) -> None:
        check_schedule_params(self.batch_size, self.mix_ratio, self.seed, 0, self.drop_last, self.interleave,
                              self.order)

    def build(self, cluster_ids: Any, difficulty: Any, epoch: int, seed: int | None = None) -> list[list[int]]:
        return build_schedule(
            cluster_ids, difficulty, self.batch_size, mix_ratio=self.mix_ratio,
            seed=self.seed if seed is None else seed, epoch=epoch, drop_last=self.drop_last,
            interleave=self.interleave, order=self.order,
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def column_names(data: Any) -> list[str] | None:
    names = getattr(data, "column_names", None)
    if names is None and isinstance(data, dict):
        names = list(data)
    return None if names is None else list(names)


def read_column(data: Any, name: str, role: str) -> np.ndarray:
    """One column of a ``datasets.Dataset`` (read through Arrow, no Python rows) or of a batch dict, as numpy."""
    names = column_names(data)
    if names is not None and name not in names:
        hint = {
            "cluster": "Run SAEClusterer first (dataset.map(clusterer, batched=True)), pass cluster_column=<name>, "
                       "or cluster_column=None for no clustering.",
            "difficulty": "Run DifficultyProbe first (dataset.map(probe, batched=True)), pass "
                          "difficulty_column=<name>, or difficulty_column=None with order='random'.",
        }[role]
        raise KeyError(f"The {role} column {name!r} is missing; the columns are {names}. {hint}")
    if hasattr(data, "with_format") and hasattr(data, "select_columns"):  # datasets.Dataset
        return data.with_format("arrow", columns=[name])[:][name].to_numpy()
    return np.asarray(data[name])


def digest_arrays(cluster_ids: np.ndarray | None, difficulty: np.ndarray | None) -> str:
    """Identity of the schedule inputs: a short hash of the cluster and difficulty values."""
    h = hashlib.sha256()
    for arr, dtype in ((cluster_ids, np.int64), (difficulty, np.float64)):
        h.update(b"-" if arr is None else np.ascontiguousarray(arr, dtype=dtype).tobytes())
        h.update(b"|")
    return h.hexdigest()[:16]


def check_columns(cluster_column: str | None, difficulty_column: str | None, order: str) -> None:
    if cluster_column is None and difficulty_column is None:
        raise ValueError("cluster_column and difficulty_column are both None: at least one column is needed.")
    if difficulty_column is None and order == "easy_to_hard":
        raise ValueError("difficulty_column=None needs order='random' (there is nothing to order by).")


class ColumnSchedule:
    """Schedules over the cluster/difficulty columns of a map-style dataset, read once and cached per epoch."""

    def __init__(self, data: Any, params: ScheduleParams, cluster_column: str | None, difficulty_column: str | None):
        check_columns(cluster_column, difficulty_column, params.order)
        self.params = params
        self.cluster_ids = None if cluster_column is None else read_column(data, cluster_column, "cluster")
        self.difficulty = None if difficulty_column is None else read_column(data, difficulty_column, "difficulty")
        _as_arrays(self.cluster_ids, self.difficulty, params.order)  # NaN, negative ids...: fail now, not mid-epoch
        self.num_rows = len(self.cluster_ids if self.cluster_ids is not None else self.difficulty)
        self._cache: tuple[int, list[list[int]]] | None = None
        self._digest: str | None = None

    def batches(self, epoch: int) -> list[list[int]]:
        if self._cache is None or self._cache[0] != epoch:
            self._cache = (epoch, self.params.build(self.cluster_ids, self.difficulty, epoch))
        return self._cache[1]

    @property
    def digest(self) -> str:
        if self._digest is None:
            self._digest = digest_arrays(self.cluster_ids, self.difficulty)
        return self._digest
