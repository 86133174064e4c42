"""A labelling budget: which rows get rollouts (a seeded random subset, or one stratified over SAE clusters).

Rollouts are the expensive label, so SAERL labels a small subset, fits the difficulty proxy on it and applies
the proxy to the rest. :func:`select_for_labelling` picks the subset's row indices; :func:`split_for_labelling`
returns the two datasets. ``strategy="stratified"`` spreads the budget over ``cluster_id`` (from
:class:`~hf_saerl.estimators.clustering.SAEClusterer`) so the labels cover SAE space: every cluster gets at
least one row when the budget allows, and the rest is shared in proportion to cluster size.

Example:
    >>> from datasets import Dataset
    >>> from hf_saerl.rollouts.budget import select_for_labelling, split_for_labelling
    >>> ds = Dataset.from_dict({"prompt": [f"q{i}" for i in range(10)], "cluster_id": [0] * 7 + [1] * 2 + [2]})
    >>> rows = select_for_labelling(ds, 4, strategy="stratified", seed=0)
    >>> sorted(ds.select(rows)["cluster_id"])
    [0, 0, 1, 2]
    >>> labelled, rest = split_for_labelling(ds, 0.5, seed=0)
    >>> len(labelled), len(rest)
    (5, 5)

Then label the subset and apply the proxy to the rest (needs the SAE columns from ``SAEEncoder``)::

    labelled = RolloutLabeller("embedded", sampling={"n": 8}).map(labelled)
    probe = DifficultyProbe(d_sae=encoder.d_sae, label="pass_rate").fit(labelled, label_column="pass_rate")
    rest = rest.map(probe, batched=True)
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from ..core.columns import CLUSTER_ID, read_column
from ..errors import InvalidParameterError

logger = logging.getLogger(__name__)

__all__ = ["STRATEGIES", "allocate_budget", "select_for_labelling", "split_for_labelling"]

STRATEGIES = ("random", "stratified")


def _budget_rows(n: int | float, n_rows: int) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, float, np.integer, np.floating)):
        raise InvalidParameterError(f"n must be a number of rows or a fraction in (0, 1), got {type(n).__name__}.")
    if isinstance(n, (float, np.floating)) and not float(n).is_integer():
        if not 0 < n < 1:
            raise InvalidParameterError(
                f"n={n} is neither a whole number of rows nor a fraction in (0, 1). Pass e.g. n=256 or n=0.1."
            )
        return max(1, round(n * n_rows)) if n_rows else 0
    rows = int(n)
    if rows < 1 or rows > n_rows:
        raise InvalidParameterError(
            f"n={rows} rows requested from a dataset of {n_rows}. Pass 1 <= n <= {n_rows}, or a fraction in (0, 1)."
        )
    return rows


def allocate_budget(sizes: dict[Any, int], n: int) -> dict[Any, int]:
    """Rows to label per cluster: ``n`` in all, at most each cluster's size, at least one per cluster when
    ``n`` allows (else one each for the ``n`` largest), the rest in proportion to size (largest remainders;
    ties by cluster order).

    Example:
        >>> allocate_budget({"a": 70, "b": 20, "c": 10}, 10)
        {'a': 7, 'b': 2, 'c': 1}
        >>> allocate_budget({"a": 70, "b": 20, "c": 10}, 2)
        {'a': 1, 'b': 1, 'c': 0}
    """
    keys = list(sizes)
    total = sum(sizes.values())
    if n > total:
        raise InvalidParameterError(f"n={n} rows requested from clusters holding {total}. Pass n <= {total}.")
    if n < len(keys):
        largest = sorted(keys, key=lambda k: (-sizes[k], keys.index(k)))[:n]
        return {k: int(k in largest) for k in keys}
    target = {k: n * sizes[k] / total for k in keys}
    alloc = {k: min(sizes[k], max(1, math.floor(target[k]))) for k in keys}
    while sum(alloc.values()) < n:  # add where the target is furthest ahead of the allocation
        k = max((k for k in keys if alloc[k] < sizes[k]), key=lambda k: (target[k] - alloc[k], -keys.index(k)))
        alloc[k] += 1
    while sum(alloc.values()) > n:  # (only after the at-least-one floors) take back where furthest behind
        k = max((k for k in keys if alloc[k] > 1), key=lambda k: (alloc[k] - target[k], -keys.index(k)))
        alloc[k] -= 1
    return alloc


def select_for_labelling(
    dataset: Any, n: int | float, strategy: str = "random", *, cluster_column: str = CLUSTER_ID, seed: int = 0
) -> list[int]:
    """Row indices (ascending) of the rows to label: ``n`` rows (or a fraction ``0 < n < 1`` of them).

    ``strategy="random"``: a seeded uniform subset. ``"stratified"``: per cluster of ``cluster_column``, the
    share :func:`allocate_budget` gives it, drawn at random with the seed. The same data, ``n``, strategy and
    seed always give the same rows.
    """
    if strategy not in STRATEGIES:
        raise InvalidParameterError(f"Unknown strategy {strategy!r}; use one of {STRATEGIES}.")
    n_rows = len(dataset)
    rows = _budget_rows(n, n_rows)
    rng = np.random.default_rng(seed)
    if strategy == "random":
        return sorted(int(i) for i in rng.choice(n_rows, size=rows, replace=False))
    clusters = read_column(
        dataset,
        cluster_column,
        "SAE cluster ids to stratify over",
        "Run SAEClusterer first (it adds cluster_id), pass cluster_column=, or use strategy='random'.",
    )
    groups: dict[Any, list[int]] = {}
    for i, c in enumerate(clusters):
        groups.setdefault(c, []).append(i)
    order = sorted(groups, key=lambda c: (c is None, str(type(c)), c if c is not None else 0))
    alloc = allocate_budget({c: len(groups[c]) for c in order}, rows)
    chosen: list[int] = []
    for c in order:
        members = np.asarray(groups[c])
        chosen.extend(int(i) for i in rng.permutation(members)[: alloc[c]])
    logger.info(
        "Labelling budget: %d of %d rows over %d clusters (%s).",
        rows,
        n_rows,
        len(order),
        ", ".join(f"{c}: {alloc[c]}" for c in order[:10]) + (" ..." if len(order) > 10 else ""),
    )
    return sorted(chosen)


def split_for_labelling(
    dataset: Any, n: int | float, strategy: str = "random", *, cluster_column: str = CLUSTER_ID, seed: int = 0
) -> tuple[Any, Any]:
    """``(labelled, rest)``: the rows :func:`select_for_labelling` picks, and all the others, both in the
    dataset's order (``Dataset.select``)."""
    chosen = select_for_labelling(dataset, n, strategy, cluster_column=cluster_column, seed=seed)
    picked = set(chosen)
    rest = [i for i in range(len(dataset)) if i not in picked]
    return dataset.select(chosen), dataset.select(rest)
