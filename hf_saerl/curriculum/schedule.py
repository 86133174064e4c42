"""SAERL curriculum batch schedules (DESIGN.md section 5) as a pure function.

:func:`build_schedule` turns per-example ``cluster_id`` and ``difficulty`` values into a list of batches of row
indices. Everything else in :mod:`hf_saerl.curriculum` (the stream, the samplers, the trainer integrations) only
replays this list, so the schedule is the single source of truth for the order.

The five steps, each of which can be switched off for ablations:

1. within each cluster, order examples easy to hard; ties broken by a seeded shuffle (``order="random"``: a seeded
   shuffle only);
2. cut each cluster's order into batches of ``batch_size`` (cluster-first); the leftovers of all clusters form
   mixed batches, sorted easy to hard, at the end of their difficulty stage (``cluster_ids=None``: one cluster);
3. interleave clusters round-robin: all clusters' j-th batches come before any (j+1)-th, in a seeded cluster order
   per round (``interleave="sequential"``: cluster after cluster; ``"random"``: batches in seeded random order);
4. moderate mixing: each pair of neighbouring batches swaps ``round(mix_ratio * batch_size)`` samples, the tail
   (hardest) of the first for the head (easiest) of the second (``mix_ratio=0``: no mixing);
5. a new ``epoch`` gives a new seeded schedule.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

INTERLEAVES = ("round_robin", "sequential", "random")
ORDERS = ("easy_to_hard", "random")


def check_schedule_params(
    batch_size: int,
    mix_ratio: float = 0.125,
    seed: int = 0,
    epoch: int = 0,
    drop_last: bool = False,
    interleave: str = "round_robin",
    order: str = "easy_to_hard",
) -> None:
    """Raise a ``ValueError``/``TypeError`` naming the first invalid schedule parameter."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}.")
    if isinstance(mix_ratio, bool) or not isinstance(mix_ratio, (int, float, np.floating, np.integer)):
        raise TypeError(f"mix_ratio must be a number in [0, 0.5], got {mix_ratio!r}.")
    if not 0.0 <= float(mix_ratio) <= 0.5:
        raise ValueError(
            f"mix_ratio must be in [0, 0.5] (the share of a batch swapped with each neighbour), got {mix_ratio!r}. "
            "Use 0 to turn mixing off."
        )
    for name, value in (("seed", seed), ("epoch", epoch)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}.")
    if not isinstance(drop_last, (bool, np.bool_)):
        raise TypeError(f"drop_last must be a bool, got {drop_last!r}.")
    if interleave not in INTERLEAVES:
        raise ValueError(f"interleave must be one of {INTERLEAVES}, got {interleave!r}.")
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}.")


def mix_count(batch_size: int, mix_ratio: float) -> int:
    """Samples swapped between two full neighbouring batches: ``round(mix_ratio * batch_size)`` (Python's
    rounding), capped at ``batch_size // 2`` so that a batch's head and tail never overlap."""
    return min(round(mix_ratio * batch_size), batch_size // 2)


def build_schedule(
    cluster_ids: Sequence[int] | np.ndarray | None,
    difficulty: Sequence[float] | np.ndarray | None,
    batch_size: int,
    mix_ratio: float = 0.125,
    seed: int = 0,
    epoch: int = 0,
    drop_last: bool = False,
    interleave: str = "round_robin",
    order: str = "easy_to_hard",
) -> list[list[int]]:
    """The SAERL curriculum: batches of row indices, cluster-first, easy to hard, interleaved, moderately mixed.

    A pure function of its arguments. Every example appears exactly once; every batch has ``batch_size`` rows
    except the last, which holds the ``n % batch_size`` remainder (dropped when ``drop_last=True``).

    Args:
        cluster_ids: one non-negative integer per example, or ``None`` for a single cluster (no clustering).
        difficulty: one number per example, 0 easy ... 1 hard (any finite scale works), or ``None`` with
            ``order="random"``.
        batch_size: rows per batch.
        mix_ratio: share of a batch swapped with each neighbour, in [0, 0.5]; 0 turns mixing off.
        seed, epoch: non-negative integers; the schedule is reseeded from both, so each epoch differs.
        drop_last: drop the final short batch.
        interleave: ``"round_robin"`` (default), ``"sequential"`` or ``"random"``.
        order: ``"easy_to_hard"`` (default) or ``"random"`` within each cluster.

    Leftovers (each cluster's last ``len % batch_size`` hardest rows) belong to the round of their cluster's last
    full batch (round 0 when it has none); they are pooled with the remainder carried from earlier rounds, sorted
    easy to hard and cut into mixed batches placed at the end of that round. What cannot fill a batch carries on.

    Example:
        >>> from hf_saerl.curriculum import build_schedule
        >>> build_schedule([0, 0, 0, 1, 1, 1], [0.9, 0.1, 0.5, 0.3, 0.2, 0.8], batch_size=3, mix_ratio=0)
        [[1, 2, 0], [4, 3, 5]]
        >>> build_schedule([0, 0, 0, 1, 1, 1], [0.9, 0.1, 0.5, 0.3, 0.2, 0.8], batch_size=3, mix_ratio=1/3)
        [[1, 2, 4], [0, 3, 5]]
    """
    check_schedule_params(batch_size, mix_ratio, seed, epoch, drop_last, interleave, order)
    clusters, key = _as_arrays(cluster_ids, difficulty, order)
    n = len(clusters)
    if n == 0:
        return []
    B = int(batch_size)
    tie_ss, round_ss, shuffle_ss = np.random.SeedSequence([int(seed), int(epoch)]).spawn(3)
    tie = np.random.default_rng(tie_ss).permutation(n)  # distinct ranks: a seeded total order for ties
    round_rng = np.random.default_rng(round_ss)

    # Step 1: easy -> hard within each cluster (cluster, then difficulty, then the seeded tie rank).
    ranked = np.lexsort((tie, key, clusters))
    uniq, starts = np.unique(clusters[ranked], return_index=True)
    members = dict(zip(uniq.tolist(), np.split(ranked, starts[1:])))
    n_full = {c: len(m) // B for c, m in members.items()}

    # Steps 2-3: stages of full cluster batches, each with the leftovers that close it.
    def full_batch(c: int, j: int) -> np.ndarray:
        return members[c][j * B : (j + 1) * B]

    def leftover(c: int) -> np.ndarray:
        return members[c][n_full[c] * B :]

    stages: list[tuple[list[np.ndarray], list[np.ndarray]]] = []
    if interleave == "sequential":
        for c in round_rng.permutation(uniq).tolist():
            stages.append(([full_batch(c, j) for j in range(n_full[c])], [leftover(c)]))
    else:
        for j in range(max(1, max(n_full.values()))):
            round_order = [c for c in round_rng.permutation(uniq).tolist() if n_full[c] > j]
            closing = [leftover(c) for c in uniq.tolist() if max(n_full[c] - 1, 0) == j]
            stages.append(([full_batch(c, j) for c in round_order], closing))

    batches: list[np.ndarray] = []
    carry = np.empty(0, dtype=np.int64)
    for full, leftovers in stages:
        batches.extend(full)
        pool = np.concatenate([carry, *leftovers])
        pool = pool[np.lexsort((tie[pool], key[pool]))]
        cut = len(pool) - len(pool) % B
        batches.extend(pool[i : i + B] for i in range(0, cut, B))
        carry = pool[cut:]
    if interleave == "random":
        batches = [batches[i] for i in np.random.default_rng(shuffle_ss).permutation(len(batches))]
    if len(carry) and not drop_last:
        batches.append(carry)  # the only short batch, always last

    # Step 4: moderate mixing between neighbours.
    batches = _mix_neighbours(batches, mix_count(B, float(mix_ratio)))
    return [b.tolist() for b in batches]


def _mix_neighbours(batches: list[np.ndarray], m: int) -> list[np.ndarray]:
    """Swap the last ``m`` rows of each batch with the first ``m`` of the next, all pairs from the unmixed
    batches, so each row moves at most one batch. Only the final batch can be short: its pair swaps
    ``min(m, len(final))``."""
    if m == 0 or len(batches) < 2:
        return batches
    swaps = [min(m, len(batches[i + 1])) for i in range(len(batches) - 1)] + [0]
    mixed = []
    for i, b in enumerate(batches):
        before = swaps[i - 1] if i else 0
        after = swaps[i]
        parts = [batches[i - 1][len(batches[i - 1]) - before :]] if before else []
        parts.append(b[before : len(b) - after])
        if after:
            parts.append(batches[i + 1][:after])
        mixed.append(np.concatenate(parts))
    return mixed


def _as_arrays(cluster_ids: Any, difficulty: Any, order: str) -> tuple[np.ndarray, np.ndarray]:
    if difficulty is None and order == "easy_to_hard":
        raise ValueError(
            "difficulty is None but order='easy_to_hard' needs it. Pass a difficulty per example (e.g. the "
            "'difficulty' column from DifficultyProbe), or order='random' to turn ordering off."
        )
    if cluster_ids is None and difficulty is None:
        raise ValueError("cluster_ids and difficulty are both None: nothing tells how many examples there are.")
    diff = None
    if difficulty is not None:
        diff = np.asarray(difficulty)
        if diff.ndim != 1:
            raise ValueError(f"difficulty must be one number per example (1-D), got shape {diff.shape}.")
        if diff.size and not (np.issubdtype(diff.dtype, np.number) or diff.dtype == bool):
            raise TypeError(f"difficulty must be numeric, got dtype {diff.dtype}.")
        diff = diff.astype(np.float64)
        bad = np.flatnonzero(np.isnan(diff))
        if bad.size:
            raise ValueError(
                f"difficulty has {bad.size} NaN value(s) (first at row {bad[0]}). Fill or filter them first, "
                "e.g. dataset.filter(lambda d: d == d, input_columns='difficulty')."
            )
    if cluster_ids is None:
        clusters = np.zeros(len(diff), dtype=np.int64)
    else:
        clusters = _as_cluster_array(cluster_ids)
    if diff is not None and len(diff) != len(clusters):
        raise ValueError(
            f"cluster_ids has {len(clusters)} values but difficulty has {len(diff)}; they must describe the same "
            "rows."
        )
    key = diff if (order == "easy_to_hard") else np.zeros(len(clusters))
    return clusters, key


def _as_cluster_array(cluster_ids: Any) -> np.ndarray:
    arr = np.asarray(cluster_ids)
    if arr.ndim != 1:
        raise ValueError(f"cluster_ids must be one integer per example (1-D), got shape {arr.shape}.")
    if arr.size == 0:
        return arr.astype(np.int64)
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.number):
        raise TypeError(f"cluster_ids must be integers, got dtype {arr.dtype}.")
    if not np.issubdtype(arr.dtype, np.integer):
        bad = np.flatnonzero(~np.isfinite(arr) | (arr != np.round(arr)))
        if bad.size:
            row = int(bad[0])
            raise ValueError(
                f"cluster_ids must be integers, got {arr[row].item()!r} at row {row}. Use the 'cluster_id' column from "
                "SAEClusterer, or cluster_ids=None for no clustering."
            )
    arr = arr.astype(np.int64)
    if arr.min() < 0:
        row = int(np.argmin(arr))
        raise ValueError(
            f"cluster_ids must be non-negative, got {arr[row]} at row {row}. Map noise labels (e.g. HDBSCAN's -1) "
            "to a cluster of their own or filter those rows first."
        )
    return arr


def describe_schedule(
    schedule: Sequence[Sequence[int]],
    cluster_ids: Sequence[int] | np.ndarray | None = None,
    difficulty: Sequence[float] | np.ndarray | None = None,
) -> dict[str, list[Any]]:
    """Per-batch summary of a schedule, as columns ready for ``datasets.Dataset.from_dict`` or a plot.

    Columns: ``batch``, ``size``, ``mean_difficulty`` (NaN without ``difficulty``), ``majority_cluster`` and
    ``majority_share`` (``-1`` and NaN without ``cluster_ids``), ``n_clusters``.

    Example:
        >>> from hf_saerl.curriculum import build_schedule, describe_schedule
        >>> c, d = [0, 0, 1, 1], [0.1, 0.3, 0.2, 0.4]
        >>> info = describe_schedule(build_schedule(c, d, batch_size=2, mix_ratio=0), c, d)
        >>> info["majority_cluster"], info["mean_difficulty"]
        ([0, 1], [0.2, 0.30000000000000004])
    """
    clusters = None if cluster_ids is None else _as_cluster_array(cluster_ids)
    diff = None if difficulty is None else np.asarray(difficulty, dtype=np.float64)
    keys = ("batch", "size", "mean_difficulty", "majority_cluster", "majority_share", "n_clusters")
    out: dict[str, list[Any]] = {k: [] for k in keys}
    for i, batch in enumerate(schedule):
        idx = np.asarray(batch, dtype=np.int64)
        out["batch"].append(i)
        out["size"].append(len(idx))
        out["mean_difficulty"].append(float(diff[idx].mean()) if diff is not None and len(idx) else math.nan)
        if clusters is not None and len(idx):
            (top, count), = Counter(clusters[idx].tolist()).most_common(1)
            out["majority_cluster"].append(int(top))
            out["majority_share"].append(count / len(idx))
            out["n_clusters"].append(len(set(clusters[idx].tolist())))
        else:
            out["majority_cluster"].append(-1)
            out["majority_share"].append(math.nan)
            out["n_clusters"].append(0 if clusters is not None else -1)
    return out
