"""k-means in SAE feature space (SAERL §3): ``cluster_id`` and ``cluster_distance`` columns.

The curriculum builds batches cluster-first from these ids (DESIGN §5). sklearn fits the centroids;
assignment is hf_saerl's own argmin over distances, sparse-friendly
(``||x||² − 2 x·c + ||c||²`` with ``x`` a CSR row), so a reloaded clusterer needs no private sklearn
state and assigns bit-identically.
"""

from __future__ import annotations

from typing import Any, ClassVar, cast

import numpy as np
import scipy.sparse as sp
from sklearn.cluster import KMeans, MiniBatchKMeans

from ..core.columns import CLUSTER_DISTANCE, CLUSTER_ID, SAE_INDICES, SAE_N_TOKENS, SAE_VALUES
from ..core.files import take_array
from ..core.validation import check_choice
from ..errors import BundleError, InvalidParameterError
from .base import SAEEstimator, card_template
from .inputs import read_labels, warn_empty_rows
from .metrics import cluster_agreement
from .transforms import FeatureTransform, TransformSpec, row_nnz

__all__ = ["SAEClusterer"]

#: ``algorithm="auto"`` uses ``MiniBatchKMeans`` above this many (non-empty) rows, ``KMeans`` up to it.
MINIBATCH_MIN_ROWS = 20_000

_CARD = card_template(
    "hf_saerl SAE-space clusters",
    "k-means centroids in sparse-autoencoder (SAE) feature space. Each example gets the id of its nearest "
    "centroid (`cluster_id`) and the distance to it (`cluster_distance`; cosine distance when the clustering "
    "is spherical), which the SAERL curriculum uses to build cluster-first, interleaved batches "
    "(arXiv 2605.27354).",
)


class SAEClusterer(SAEEstimator, tags=["sae-clustering", "kmeans"], model_card_template=_CARD):
    """k-means on SAE features; ``dataset.map(clusterer, batched=True)`` adds ``cluster_id`` (int32) and
    ``cluster_distance`` (float32).

    * ``spherical=True`` (default, i.e. cosine metric): rows are l2-normalised after ``transform``,
      k-means runs on them, and the centroids are l2-normalised; ``cluster_distance`` is the cosine
      distance ``1 − cos(x, c)`` in [0, 2]. ``spherical=False``: plain Euclidean k-means and distance.
    * ``n_clusters="auto"``: k with the best silhouette (cosine when spherical) over
      ``auto_range=(lo, hi)`` inclusive, each candidate a ``KMeans`` fitted on a seeded subsample of
      ``auto_sample_size`` rows (ties go to the smaller k). The scores are in ``metrics_["silhouette_by_k"]``.
    * ``algorithm="auto"``: ``KMeans`` up to :data:`MINIBATCH_MIN_ROWS` rows, ``MiniBatchKMeans`` above.
    * Rows with no active latent are warned about (with the count), left out of fitting the centroids
      (they would drag them to the origin), and still assigned: to cluster 0 at cosine distance 1 when
      spherical, to the centroid nearest the origin otherwise.

    Args:
        d_sae: width of the SAE.
        n_clusters: number of clusters, or ``"auto"``.
        spherical: cosine k-means (see above).
        transform: feature transform steps before clustering; default ``("log1p",)``.
        algorithm: ``"auto"``, ``"kmeans"`` or ``"minibatch"``.
        n_init, max_iter, batch_size: k-means settings (``batch_size`` for MiniBatchKMeans).
        auto_range, auto_sample_size: the search of ``n_clusters="auto"``.
        random_state: seed of k-means and of the subsample.
        indices_column, values_column, n_tokens_column: input columns.
        id_column, distance_column: output columns.

    Fitted attributes: ``cluster_centers_`` (``(n_clusters_, d_sae)``, float64), ``n_clusters_``,
    ``algorithm_``, ``transform_``, ``n_features_in_``, ``metrics_`` (``n_train``, ``inertia`` = sum of
    squared Euclidean distances in the clustering space, ``cluster_sizes``, and ``nmi`` / ``purity``
    against ``reference_column``).

    Example:
        >>> import numpy as np, scipy.sparse as sp
        >>> rng = np.random.default_rng(0)
        >>> group = rng.integers(0, 3, size=90)                # 3 topics, each firing its own latents
        >>> cols = group[:, None] * 10 + rng.integers(0, 10, size=(90, 4))
        >>> X = sp.csr_matrix((np.ones(360), cols.ravel(), np.arange(0, 361, 4)), shape=(90, 30))
        >>> clusterer = SAEClusterer(d_sae=30, n_clusters="auto").fit(X, group)
        >>> clusterer.n_clusters_, clusterer.metrics_["nmi"]
        (3, 1.0)
        >>> out = clusterer(X[:2])
        >>> out["cluster_id"].dtype, out["cluster_distance"].dtype
        (dtype('int32'), dtype('float32'))
    """

    kind = "clusters"
    _state_keys = ("n_clusters_", "algorithm_")
    _array_attributes: ClassVar[dict[str, str]] = {"cluster_centers": "cluster_centers_"}

    def __init__(
        self,
        d_sae: int,
        n_clusters: int | str = "auto",
        spherical: bool = True,
        transform: TransformSpec = ("log1p",),
        algorithm: str = "auto",
        n_init: int = 3,
        max_iter: int = 300,
        batch_size: int = 2048,
        auto_range: tuple[int, int] = (2, 16),
        auto_sample_size: int = 2000,
        random_state: int | None = 0,
        indices_column: str = SAE_INDICES,
        values_column: str = SAE_VALUES,
        n_tokens_column: str = SAE_N_TOKENS,
        id_column: str = CLUSTER_ID,
        distance_column: str = CLUSTER_DISTANCE,
    ) -> None:
        self._store_params(locals())

    def _validate_params(self) -> None:
        self._validate_common()
        k = self.n_clusters
        if k != "auto" and (isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1):
            raise InvalidParameterError(f"n_clusters must be a positive int or 'auto'; got {k!r}.")
        check_choice("algorithm", self.algorithm, ("auto", "kmeans", "minibatch"))
        lo, hi = self.auto_range
        if not 2 <= lo <= hi:
            raise InvalidParameterError(f"auto_range must be (lo, hi) with 2 <= lo <= hi; got {self.auto_range!r}.")

    # ------------------------------------------------------------------ fitting
    def fit(self, X: Any, y: Any = None, *, reference_column: str | None = None, n_tokens: Any = None) -> SAEClusterer:
        """Fit the centroids on ``X`` (a Dataset / batch dict with the SAE columns, or a matrix).

        Args:
            X: the features.
            y: optional reference labels (array-like), used only for the ``nmi`` / ``purity`` metrics;
            reference_column: or the dataset column holding them (e.g. ``"category"``).
            n_tokens: token counts per row for a ``length`` step with ``by="tokens"`` on a matrix.

        Returns:
            self
        """
        self._validate_params()
        features, n_tokens = self._read_features(X, n_tokens)
        reference = None
        if y is not None or reference_column is not None:
            reference = (read_labels(X, y, reference_column, what="reference labels"), reference_column or "y")
        n_empty = warn_empty_rows(features, "they are left out of fitting the centroids, and assigned afterwards.")
        self._fit_core(features, n_tokens, reference)
        fitted: dict[str, Any] = self.__dict__["metrics_"]  # set by _fit_core
        self.metrics_ = {"n_empty_rows": n_empty, **fitted}
        return self

    def _fit_core(self, X: Any, n_tokens: np.ndarray | None, reference: tuple[list, str] | None) -> SAEClusterer:
        space = self._space(self._fit_transform(X, n_tokens))
        train_rows = row_nnz(space) > 0
        train = space[train_rows]
        n_train = train.shape[0]
        k, silhouettes = self._choose_k(train)
        if n_train < k:
            raise InvalidParameterError(
                f"n_clusters={k} needs at least {k} rows with an active latent; got "
                f"{n_train}. Pass a smaller n_clusters or more rows."
            )
        self.algorithm_ = (
            self.algorithm if self.algorithm != "auto" else ("minibatch" if n_train > MINIBATCH_MIN_ROWS else "kmeans")
        )
        if self.algorithm_ == "kmeans":
            km = KMeans(k, n_init=self.n_init, max_iter=self.max_iter, random_state=self.random_state)
        else:
            km = MiniBatchKMeans(
                k,
                n_init=self.n_init,
                max_iter=self.max_iter,
                batch_size=self.batch_size,
                random_state=self.random_state,
            )
        centers = np.asarray(km.fit(train).cluster_centers_, dtype=np.float64)
        self.cluster_centers_ = _l2_rows(centers) if self.spherical else centers
        self.n_clusters_ = int(k)
        self.n_features_in_ = X.shape[1]

        ids, dist = self._assign(space)
        sq = 2.0 * dist[train_rows] if self.spherical else dist[train_rows] ** 2  # ||x - c||² for unit x, c
        self.metrics_ = {
            "n_train": int(n_train),
            "n_clusters": self.n_clusters_,
            "algorithm": self.algorithm_,
            "inertia": float(sq.sum()),
            "cluster_sizes": np.bincount(ids, minlength=k).tolist(),
        }
        if silhouettes:
            self.metrics_["silhouette_by_k"] = {str(key): value for key, value in silhouettes.items()}
        if reference is not None:
            self.metrics_.update(cluster_agreement(ids, *reference))
        return self

    def _choose_k(self, train: Any) -> tuple[int, dict[int, float]]:
        if self.n_clusters != "auto":
            return int(self.n_clusters), {}
        from sklearn.metrics import silhouette_score

        n = train.shape[0]
        m = min(n, self.auto_sample_size)
        sample = (
            train[np.sort(np.random.default_rng(self.random_state).choice(n, m, replace=False))] if m < n else train
        )
        lo, hi = self.auto_range
        hi = min(hi, m - 1)
        if hi < lo:
            raise InvalidParameterError(
                f"n_clusters='auto' searches k in {tuple(self.auto_range)} and needs at least "
                f"{lo + 1} rows with an active latent; got {m}. Pass an explicit n_clusters."
            )
        from threadpoolctl import threadpool_limits

        scores: dict[int, float] = {}
        # One OpenMP thread: the candidates are small (auto_sample_size rows), where thread start-up and
        # busy-waiting cost more than they give (3x faster at 10k rows on a shared 2-core machine).
        with threadpool_limits(limits=1, user_api="openmp"):
            for k in range(lo, hi + 1):
                labels = KMeans(
                    k, n_init=self.n_init, max_iter=self.max_iter, random_state=self.random_state
                ).fit_predict(sample)
                if len(np.unique(labels)) > 1:
                    scores[k] = float(
                        silhouette_score(sample, labels, metric="cosine" if self.spherical else "euclidean")
                    )
        if not scores:
            raise InvalidParameterError(
                "n_clusters='auto' found no k with two or more distinct clusters; pass an explicit n_clusters."
            )
        return max(scores, key=lambda k: (scores[k], -k)), scores

    # ------------------------------------------------------------------ assignment
    def _space(self, Xt: Any) -> Any:
        """Transformed features -> the space the centroids live in (rows l2-normalised if spherical)."""
        return _l2_rows(Xt) if self.spherical else Xt

    def _distance_matrix(self, space: Any) -> np.ndarray:
        """``(n, k)`` distances: cosine distance if spherical, else Euclidean, from one sparse product."""
        centers = self.cluster_centers_
        cross = np.asarray(space @ centers.T, dtype=np.float64)
        if self.spherical:
            return np.maximum(1.0 - cross, 0.0)
        sq_rows = np.asarray(
            cast(Any, space).multiply(space).sum(axis=1) if sp.issparse(space) else (space**2).sum(axis=1)
        )
        sq = sq_rows.reshape(-1, 1) - 2.0 * cross + (centers**2).sum(axis=1)[None, :]
        return np.sqrt(np.maximum(sq, 0.0))

    def _assign(self, space: Any) -> tuple[np.ndarray, np.ndarray]:
        dist = self._distance_matrix(space)
        ids = dist.argmin(axis=1)
        return ids.astype(np.int32), dist[np.arange(len(ids)), ids]

    def distances(self, X: Any, n_tokens: Any = None) -> np.ndarray:
        """``(n, n_clusters_)`` float64 distances of each row to every centroid."""
        return self._distance_matrix(self._space(self._features_for_predict(X, n_tokens, method="distances")))

    def predict(self, X: Any, n_tokens: Any = None) -> np.ndarray:
        """The int32 id of the nearest centroid of each row."""
        return self._predict_columns(self._features_for_predict(X, n_tokens, method="predict"))[self.id_column]

    def fit_predict(self, X: Any, y: Any = None, **fit_kwargs: Any) -> np.ndarray:
        """``fit(X, y, **fit_kwargs)`` then ``predict(X)``."""
        return self.fit(X, y, **fit_kwargs).predict(X, fit_kwargs.get("n_tokens"))

    def _predict_columns(self, Xt: Any) -> dict[str, np.ndarray]:
        ids, dist = self._assign(self._space(Xt))
        return {self.id_column: ids, self.distance_column: dist.astype(np.float32)}

    def _output_dtypes(self) -> dict[str, str]:
        return {self.id_column: "int32", self.distance_column: "float32"}

    # ------------------------------------------------------------------ state
    def _restore(self, arrays: dict[str, np.ndarray], source: str) -> None:
        k = self.n_clusters_
        if isinstance(k, bool) or not isinstance(k, int) or k < 1 or self.algorithm_ not in ("kmeans", "minibatch"):
            raise BundleError(
                f"{source}: saved n_clusters_={k!r} / algorithm_={self.algorithm_!r} are invalid; the "
                "file is corrupt. Save the clusterer again."
            )
        self.cluster_centers_ = take_array(
            arrays, "cluster_centers", (k, self.d_sae), source, dtype=np.float64, finite=True
        )


def _l2_rows(X: Any) -> Any:
    if sp.issparse(X):
        return FeatureTransform(["l2"]).transform(X)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.where(norms > 0, norms, 1.0)
