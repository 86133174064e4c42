"""Turning scored candidates into a batch: a floor of untried prompts, then the best by score under a cluster cap."""

from __future__ import annotations

import math

import numpy as np


def _top(values: np.ndarray, m: int) -> np.ndarray:
    """Indices of the ``m`` largest ``values``, largest first (ties by position).

    Example:
        >>> _top(np.array([0.2, 0.9, 0.2, 0.5]), 3).tolist()
        [1, 3, 0]
    """
    if m <= 0:
        return np.zeros(0, dtype=np.int64)
    if m >= values.size:
        return np.argsort(-values, kind="stable")
    part = np.argpartition(-values, m - 1)[:m]
    return part[np.argsort(-values[part], kind="stable")]


def _take(
    cand: np.ndarray,
    score: np.ndarray,
    untried: np.ndarray,
    n: int,
    n_explore: int,
    cluster_ids: np.ndarray | None,
    max_cluster_share: float,
) -> np.ndarray:
    """Positions in ``cand`` of the batch: ``n_explore`` untried prompts (best first), then the rest by score,
    under the cluster cap (none when ``cluster_ids`` is None).

    Example:
        >>> cand, score = np.arange(4), np.array([0.1, 0.4, 0.3, 0.2])
        >>> _take(cand, score, np.array([True, False, False, False]), 2, 1, None, 0.5).tolist()
        [0, 1]
    """
    if n_explore:
        pool = np.flatnonzero(untried)
        floor = pool[_top(score[pool], n_explore)]
        rest = np.ones(len(cand), dtype=bool)
        rest[floor] = False
        others = np.flatnonzero(rest)
    else:
        floor, others = np.zeros(0, dtype=np.int64), np.arange(len(cand))
    k = n - floor.size
    if cluster_ids is None:
        return np.concatenate([floor, others[_top(score[others], k)]])
    # The cap only looks down the ranking as far as it must: the top 8n first, everything if that falls short.
    for m in (min(others.size, max(8 * n, 256)), others.size):
        order = np.concatenate([floor, others[_top(score[others], m)]])
        picked, enough = _cluster_capped(cluster_ids[cand[order]], n, max_cluster_share)
        if enough or m == others.size:
            return order[picked]
    raise AssertionError("unreachable")  # pragma: no cover


def _cluster_capped(clusters: np.ndarray, n: int, share: float) -> tuple[np.ndarray, bool]:
    """Positions of the first ``n`` of a ranking whose clusters are ``clusters``, at most ``cap`` per cluster
    (filled from the rest if that is short), and whether the cap alone found ``n``.

    Example:
        >>> picked, enough = _cluster_capped(np.array([0, 0, 0, 1, 2]), 4, 0.5)
        >>> picked.tolist(), enough
        ([0, 1, 3, 4], True)
    """
    by_cluster = np.argsort(clusters, kind="stable")
    sorted_clusters = clusters[by_cluster]
    change = np.concatenate(([True], sorted_clusters[1:] != sorted_clusters[:-1]))
    n_present = int(change.sum())
    if n_present <= 1:  # one cluster in this part of the ranking: the caller looks at all of it
        return np.arange(min(n, len(clusters))), False
    cap = max(math.ceil(share * n) if share > 0 else 0, math.ceil(n / n_present))
    starts = np.maximum.accumulate(np.where(change, np.arange(len(clusters)), 0))
    rank = np.empty(len(clusters), dtype=np.int64)
    rank[by_cluster] = np.arange(len(clusters)) - starts
    ok = rank < cap
    picked = np.flatnonzero(ok)[:n]
    if picked.size == n:
        return picked, True
    return np.sort(np.concatenate([picked, np.flatnonzero(~ok)[: n - picked.size]])), False
