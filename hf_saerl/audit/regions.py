"""Data regions for the audit: pairs clustered on their **symmetric** activity (chosen + rejected).

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

from ..errors import InvalidParameterError

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
