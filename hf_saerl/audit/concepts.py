"""Group SAE latents into concepts by how they co-fire, so one idea split over several latents counts once.

Latents that fire on at least ``min_support`` responses are grouped by average-linkage agglomerative
clustering of their Jaccard distance (``1 − |A ∩ B| / |A ∪ B|`` over the sets of responses each fires
on); a cluster is cut where the average Jaccard similarity falls below ``similarity``. A latent that
co-fires with nothing stays a concept of its own. Only the ``max_grouped_latents`` most frequent latents
are clustered (the distance matrix is quadratic); rarer supported latents become single-latent concepts.

Example:
    >>> import numpy as np, scipy.sparse as sp
    >>> F = sp.csr_matrix(np.array([[1, 1, 0, 1], [1, 1, 0, 0], [0, 0, 1, 1], [1, 1, 1, 0]]))
    >>> concepts = LatentConcepts(min_support=1, similarity=0.9).fit(F)
    >>> [c.tolist() for c in concepts.concepts_]
    [[0, 1], [2], [3]]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator

from ..core.validation import check_fitted
from ..errors import InvalidParameterError

__all__ = ["LatentConcepts", "firing"]


def firing(max_pooled: Any, freq_pooled: Any, activation_threshold: float, frequency_threshold: float) -> sp.csr_matrix:
    """0/1 CSR of the latents that fire on each response: max activation > ``activation_threshold`` and
    firing frequency > ``frequency_threshold``."""
    a = sp.csr_matrix(max_pooled, dtype=np.float64)
    f = sp.csr_matrix(freq_pooled, dtype=np.float64)
    a.data = (a.data > activation_threshold).astype(np.float64)
    f.data = (f.data > frequency_threshold).astype(np.float64)
    out = sp.csr_matrix(a.multiply(f))
    out.eliminate_zeros()
    return out


class LatentConcepts(BaseEstimator):
    """Co-firing groups of SAE latents.

    Args:
        min_support: a latent must fire on at least this many responses to be in any concept.
        similarity: average-linkage Jaccard similarity at which groups are cut (0.5: on average, two
            latents of a concept fire together on at least half the responses either fires on).
        max_grouped_latents: cap on the latents clustered (the most frequent); the rest are singletons.

    Fitted attributes: ``concepts_`` (list of int arrays of latent ids, ordered by their smallest id),
    ``membership_`` (CSR ``(d_sae, n_concepts)`` 0/1), ``latent_concept_`` (``(d_sae,)`` concept id or −1),
    ``support_`` (``(d_sae,)`` responses fired on), ``n_concepts_``, ``d_sae_``.
    """

    def __init__(self, min_support: int = 3, similarity: float = 0.5, max_grouped_latents: int = 2048):
        self.min_support = min_support
        self.similarity = similarity
        self.max_grouped_latents = max_grouped_latents

    def fit(self, fires: Any) -> LatentConcepts:
        """Fit on a ``(n_responses, d_sae)`` firing matrix (non-zero = fired), sparse or dense."""
        if not 0.0 < self.similarity <= 1.0:
            raise InvalidParameterError(
                f"similarity must be in (0, 1]; got {self.similarity}. Pass e.g. 0.5 (the "
                "default), higher for tighter concepts."
            )
        if self.min_support < 1 or self.max_grouped_latents < 1:
            raise InvalidParameterError(
                f"min_support and max_grouped_latents must be positive ints; got "
                f"{self.min_support} and {self.max_grouped_latents}."
            )
        B = sp.csr_matrix(fires, dtype=np.float64)
        B.data = (B.data != 0).astype(np.float64)
        B.eliminate_zeros()
        d_sae = B.shape[1]
        support = np.asarray(B.sum(axis=0)).ravel()
        active = np.flatnonzero(support >= self.min_support)
        order = active[np.lexsort((active, -support[active]))]
        grouped, single = np.sort(order[: self.max_grouped_latents]), np.sort(order[self.max_grouped_latents :])
        labels = self._cluster(B[:, grouped], support[grouped]) if len(grouped) > 1 else np.zeros(len(grouped), int)
        groups = [grouped[labels == lab] for lab in np.unique(labels)] + [np.array([j]) for j in single]
        groups = sorted((np.sort(g).astype(np.int64) for g in groups), key=lambda g: int(g[0]))
        return self._set_groups(groups, support.astype(np.int64), d_sae)

    def _set_groups(self, groups: Sequence[np.ndarray], support: np.ndarray, d_sae: int) -> LatentConcepts:
        """Set every fitted attribute from the concepts' latent groups (by ``fit``, and by a loaded audit)."""
        rows = np.concatenate(groups) if len(groups) else np.zeros(0, np.int64)
        cols = (
            np.concatenate([np.full(len(g), c) for c, g in enumerate(groups)]) if len(groups) else np.zeros(0, np.int64)
        )
        latent_concept = np.full(d_sae, -1, dtype=np.int64)
        latent_concept[rows] = cols
        self.concepts_ = list(groups)
        self.n_concepts_ = len(groups)
        self.d_sae_ = d_sae
        self.support_ = support
        self.latent_concept_ = latent_concept
        self.membership_ = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(d_sae, len(groups)))
        return self

    def _cluster(self, B: sp.csr_matrix, support: np.ndarray) -> np.ndarray:
        from scipy.cluster.hierarchy import fcluster, linkage
        from scipy.spatial.distance import squareform

        inter = (B.T @ B).toarray()
        union = support[:, None] + support[None, :] - inter
        dist = 1.0 - np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        np.fill_diagonal(dist, 0.0)
        Z = linkage(squareform(np.clip(dist, 0.0, 1.0), checks=False), method="average")
        return fcluster(Z, t=1.0 - self.similarity + 1e-12, criterion="distance")

    def shares(self, fires: Any) -> sp.csr_matrix:
        """``(n, n_concepts)`` share of each concept's latents that fire in each row (firing = non-zero)."""
        check_fitted(self, "shares")
        B = sp.csr_matrix(fires, dtype=np.float64)
        B.data = (B.data != 0).astype(np.float64)
        sizes = np.array([len(g) for g in self.concepts_], dtype=np.float64)
        return sp.csr_matrix(B @ self.membership_ @ sp.diags(1.0 / np.maximum(sizes, 1)))

    def rates(self, fires: Any, freq: Any) -> sp.csr_matrix:
        """``(n, n_concepts)`` mean per-token firing rate of each concept's latents in each row.

        A latent contributes its firing frequency (``freq``: the share of the span's tokens where it is active) where
        it fires (``fires`` non-zero), and 0 elsewhere; the concept's rate is the mean over its latents. Unlike
        :meth:`shares` (did the latent fire anywhere in the span?), the rate does not grow with the span's length
        for text of the same kind, so it is the length-controlled score (:mod:`hf_saerl.audit.shift`).

        Example:
            >>> import numpy as np
            >>> c = LatentConcepts(min_support=1, similarity=0.9).fit(np.array([[1, 1], [1, 1]]))
            >>> c.rates(np.array([[1, 1]]), np.array([[0.5, 0.25]])).toarray().round(3).tolist()
            [[0.375]]
        """
        check_fitted(self, "rates")
        B = sp.csr_matrix(fires, dtype=np.float64)
        F = sp.csr_matrix(freq, dtype=np.float64)
        if B.shape != F.shape:
            raise InvalidParameterError(
                f"fires has shape {B.shape} but freq {F.shape}; pass the firing and the "
                "firing-frequency matrices of the same rows and SAE."
            )
        B.data = (B.data != 0).astype(np.float64)
        sizes = np.array([len(g) for g in self.concepts_], dtype=np.float64)
        return sp.csr_matrix(sp.csr_matrix(B.multiply(F)) @ self.membership_ @ sp.diags(1.0 / np.maximum(sizes, 1)))


def _concept_disparity(
    chosen_fires: sp.csr_matrix,
    rejected_fires: sp.csr_matrix,
    min_support: int,
    similarity: float,
    max_grouped_latents: int,
) -> tuple[LatentConcepts, sp.csr_matrix]:
    """:class:`LatentConcepts` fitted on both sides' firing, and the per-pair disparity of each concept (share of its
    latents firing on chosen minus on rejected, CSR ``(n, n_concepts)``); refused when nothing fires at all or no
    latent has the support.

    Example:
        >>> c = sp.csr_matrix(np.array([[1.0, 1.0], [1.0, 0.0]]))
        >>> r = sp.csr_matrix(np.array([[0.0, 1.0], [1.0, 0.0]]))
        >>> concepts, disparity = _concept_disparity(c, r, min_support=1, similarity=0.9, max_grouped_latents=8)
        >>> disparity.toarray().tolist()
        [[1.0, 0.0], [0.0, 0.0]]
    """
    n = chosen_fires.shape[0]
    empty = np.flatnonzero((chosen_fires.getnnz(axis=1) == 0) & (rejected_fires.getnnz(axis=1) == 0))
    if len(empty) == n:
        raise InvalidParameterError(
            "No latent fires on any response: lower activation_threshold / "
            "frequency_threshold, or check the encoder (hook, SAE) produces activations."
        )
    concepts = LatentConcepts(min_support, similarity, max_grouped_latents).fit(
        sp.vstack([chosen_fires, rejected_fires])
    )
    if concepts.n_concepts_ == 0:
        raise InvalidParameterError(
            f"No latent fires on at least min_support={min_support} responses; lower min_support or audit more pairs."
        )
    return concepts, sp.csr_matrix(concepts.shares(chosen_fires) - concepts.shares(rejected_fires))
