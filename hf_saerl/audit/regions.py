"""Data regions for the audit: given ids or labels, or pairs clustered on their symmetric activity (chosen + rejected).

Clustering on the sum of both responses' features (never their difference) keeps the regions blind to
which response was preferred, so testing disparities inside them does not presuppose the answer.

Example:
    >>> import numpy as np, scipy.sparse as sp
    >>> topic = np.repeat([0, 1], 20)
    >>> X = sp.csr_matrix(np.eye(2)[topic].repeat(3, axis=1) * 0.5)
    >>> ids, names = pair_regions(X, X, n_regions=2)
    >>> len(set(ids[:20])), len(set(ids[20:])), bool(ids[0] != ids[-1])
    (1, 1, True)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..errors import InvalidParameterError, NonFiniteError, ParameterTypeError

__all__ = ["labels_to_regions", "pair_regions"]


def labels_to_regions(labels: Sequence[Any]) -> tuple[np.ndarray, list[str]]:
    """Factorize given labels (e.g. a ``category`` column) into int ids and their names."""
    values = ["<missing>" if v is None else str(v) for v in labels]
    names, ids = np.unique(np.asarray(values, dtype=object), return_inverse=True)
    return ids.astype(np.int64), [str(x) for x in names]


def pair_regions(
    chosen: Any,
    rejected: Any,
    *,
    n_regions: int | str = "auto",
    auto_range: tuple[int, int] = (2, 8),
    random_state: int | None = 0,
) -> tuple[np.ndarray, list[str]]:
    """Cluster pairs with :class:`hf_saerl.SAEClusterer` (cosine k-means on ``log1p``) on ``chosen + rejected``.

    ``n_regions=1`` puts every pair in one region. Returns ``(region id per pair, region names)``.
    """
    from ..estimators.clustering import SAEClusterer

    X = sp.csr_matrix(chosen, dtype=np.float64) + sp.csr_matrix(rejected, dtype=np.float64)
    n = X.shape[0]
    if n_regions == 1 or n < 4:
        return np.zeros(n, dtype=np.int64), ["all"]
    if n_regions != "auto" and int(n_regions) > n:
        raise InvalidParameterError(
            f"n_regions={n_regions} exceeds the {n} pairs; pass a smaller n_regions, or n_regions='auto'."
        )
    lo, hi = auto_range
    clusterer = SAEClusterer(
        X.shape[1], n_clusters=n_regions, auto_range=(lo, max(lo, min(hi, n - 1))), random_state=random_state
    )
    ids = clusterer.fit(X).predict(X).astype(np.int64)
    return ids, [f"region {k}" for k in range(clusterer.n_clusters_)]


def _region_ids(regions: Any, n: int) -> np.ndarray:
    """Given region ids as ``int64``: whole, finite, non-negative numbers, one per pair."""
    ids = np.asarray(regions)
    fix = "Pass one non-negative integer id per pair, or region_labels= for labels of any kind."
    if ids.shape != (n,):
        raise InvalidParameterError(f"regions must give one id per pair ({n}); got shape {ids.shape}. {fix}")
    if ids.dtype == bool or not np.issubdtype(ids.dtype, np.number):
        raise ParameterTypeError(f"regions must be integer ids, got dtype {ids.dtype}. {fix}")
    if not np.issubdtype(ids.dtype, np.integer):
        bad = np.flatnonzero(~np.isfinite(ids))
        if bad.size:
            raise NonFiniteError(f"regions holds {bad.size} NaN or infinite id(s) (first at pair {int(bad[0])}). {fix}")
        bad = np.flatnonzero(ids != np.round(ids))
        if bad.size:
            raise InvalidParameterError(
                f"regions must be integer ids, got {ids[bad[0]].item()!r} at pair {int(bad[0])}. {fix}"
            )
    ids = ids.astype(np.int64)
    if n and ids.min() < 0:
        raise InvalidParameterError(
            f"regions must be non-negative, got {ids.min()} at pair {int(np.argmin(ids))}. {fix}"
        )
    return ids


def _audit_regions(
    audit: Any,
    regions: Any,
    region_labels: Sequence[Any] | None,
    chosen_freq: sp.csr_matrix,
    rejected_freq: sp.csr_matrix,
) -> tuple[np.ndarray, list[str]]:
    """An audit's ``(region id per pair, region names)``: the given ``regions`` ids, else the given
    ``region_labels``, else the pairs clustered by :func:`pair_regions` on their firing frequencies (with the
    ``audit``'s ``n_regions``, ``auto_range`` and ``random_state``).

    Example:
        >>> from hf_saerl.audit import PreferenceAudit
        >>> X = sp.csr_matrix(np.ones((3, 2)))
        >>> _audit_regions(PreferenceAudit(), [0, 2, 2], None, X, X)
        (array([0, 2, 2]), ['region 0', 'region 1', 'region 2'])
    """
    n = chosen_freq.shape[0]
    if regions is not None:
        region_ids = _region_ids(regions, n)
        region_names = [f"region {k}" for k in range(int(region_ids.max()) + 1)]
    elif region_labels is not None:
        region_ids, region_names = labels_to_regions(region_labels)
    else:
        region_ids, region_names = pair_regions(
            chosen_freq,
            rejected_freq,
            n_regions=audit.n_regions,
            auto_range=audit.auto_range,
            random_state=audit.random_state,
        )
    if region_ids.shape != (n,):
        raise InvalidParameterError(f"regions must give one id per pair ({n}); got shape {region_ids.shape}.")
    return region_ids, region_names
