"""Feature transforms on SAE codes: chainable, JSON-configured, applied to CSR without densifying.

A transform is a list of steps, each a name or a ``{"name": ..., **params}`` dict, applied in order:

=========== ============================================================================================
step        effect on each stored value ``x`` of row ``i`` / column ``j``
=========== ============================================================================================
``log1p``   ``sign(x) * log(1 + |x|)``; equals ``log1p(x)`` on the non-negative codes SAEs produce.
``binarize`` ``1`` if ``x > threshold`` else ``0`` (``threshold=0.0``): which latents fire, not how much.
``l2``      divide row ``i`` by its Euclidean norm (all-zero rows stay zero).
``length``  divide row ``i`` by ``max(n_i, 1) ** power`` (``power=0.5``), a length correction:
            ``by="nnz"`` (default) uses the row's number of non-zero values; ``by="tokens"`` uses the
            ``sae_n_tokens`` column (pooled token count). Longer texts fire more latents, and with
            ``sum`` pooling larger values; ``power=1`` turns sums into means, ``0.5`` is a middle way.
``maxabs``  divide column ``j`` by its largest ``|x|`` seen at ``fit`` (fitted; unseen columns: 1).
``std``     divide column ``j`` by its standard deviation at ``fit``, zeros included and without
            centring, so sparsity is kept (like ``StandardScaler(with_mean=False)``; 0 -> 1).
=========== ============================================================================================

Every step keeps the sparsity pattern (``binarize`` may drop entries), so an ``(n, d_sae)`` CSR
stays CSR with the same or fewer stored values, computed in float64.

Dense features (pooled raw activations) are standardised instead, in one place for the probes'
``feature_set="raw"`` / ``"both"`` and :func:`~hf_saerl.estimators.evaluation.compare_features`:
:func:`fit_standard_scale` learns each column's mean and (population) standard deviation, 0 -> 1, and
:func:`standardise` applies them.

Example:
    >>> import numpy as np, scipy.sparse as sp
    >>> from hf_saerl.estimators.transforms import FeatureTransform
    >>> X = sp.csr_matrix(np.array([[3.0, 0.0, 4.0], [0.0, 0.0, 0.0]]))
    >>> FeatureTransform(["l2"]).fit_transform(X).toarray()
    array([[0.6, 0. , 0.8],
           [0. , 0. , 0. ]])
    >>> FeatureTransform([{"name": "length", "by": "tokens", "power": 1.0}]).fit_transform(X, n_tokens=[2, 7]).toarray()
    array([[1.5, 0. , 2. ],
           [0. , 0. , 0. ]])
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..errors import BundleError, InvalidParameterError, NonFiniteError

__all__ = [
    "STEP_DEFAULTS",
    "FeatureTransform",
    "TransformSpec",
    "fit_standard_scale",
    "normalize_steps",
    "row_nnz",
    "standardise",
]

#: Step name -> its parameters and their defaults.
STEP_DEFAULTS: dict[str, dict[str, Any]] = {
    "log1p": {},
    "binarize": {"threshold": 0.0},
    "l2": {},
    "length": {"by": "nnz", "power": 0.5},
    "maxabs": {},
    "std": {},
}
_FITTED_STEPS = ("maxabs", "std")

TransformSpec = None | str | Mapping[str, Any] | Sequence[str | Mapping[str, Any]]


def normalize_steps(spec: TransformSpec) -> list[dict[str, Any]]:
    """The canonical form of a transform spec: a list of ``{"name": ..., **params}`` with defaults filled.

    ``None``, ``"none"`` and ``[]`` mean no transform.

    >>> normalize_steps(["log1p", {"name": "length", "power": 1}])
    [{'name': 'log1p'}, {'name': 'length', 'by': 'nnz', 'power': 1.0}]
    """
    if spec is None or (isinstance(spec, str) and spec.lower() == "none"):
        return []
    if isinstance(spec, (str, Mapping)):
        spec = [spec]
    if not isinstance(spec, Iterable):
        raise TypeError(f"transform must be a step name, a step dict or a list of them; got {spec!r}.")
    steps = []
    for item in spec:
        given: dict[str, Any] | None = (
            {"name": item} if isinstance(item, str) else dict(item) if isinstance(item, Mapping) else None
        )
        name = given.get("name") if given is not None else None
        if given is None or name not in STEP_DEFAULTS:
            raise InvalidParameterError(
                f"Unknown transform step {item!r}; choose from {sorted(STEP_DEFAULTS)}, "
                f"e.g. transform=['log1p', 'l2'] or [{{'name': 'length', 'by': 'tokens', 'power': 0.5}}]."
            )
        unknown = sorted(set(given) - {"name"} - set(STEP_DEFAULTS[name]))
        if unknown:
            raise InvalidParameterError(
                f"Transform step {name!r} got unknown parameter(s) {unknown}; it accepts {sorted(STEP_DEFAULTS[name])}."
            )
        step: dict[str, Any] = {"name": name, **STEP_DEFAULTS[name], **{k: v for k, v in given.items() if k != "name"}}
        if name == "length":
            if step["by"] not in ("nnz", "tokens"):
                raise InvalidParameterError(
                    f"Transform step 'length' needs by='nnz' or by='tokens'; got by={step['by']!r}."
                )
            step["power"] = float(step["power"])
        if name == "binarize":
            step["threshold"] = float(step["threshold"])
        steps.append(step)
    return steps


class FeatureTransform:
    """A chain of feature transform steps (see the module docstring) over ``(n, d_sae)`` CSR codes.

    ``fit`` learns the column statistics of ``maxabs`` / ``std`` steps (others are stateless); the
    transform then maps new rows exactly as at fit time. The configuration is :attr:`steps_` (JSON)
    and the fitted state :meth:`state_arrays` (numpy, for safetensors).

    Example:
        >>> import numpy as np, scipy.sparse as sp
        >>> t = FeatureTransform(["log1p", "maxabs"]).fit(sp.csr_matrix(np.array([[np.e - 1, 0.0], [0.0, 2.0]])))
        >>> t.transform(sp.csr_matrix(np.array([[np.e - 1, 0.0]]))).toarray()
        array([[1., 0.]])
    """

    def __init__(self, steps: TransformSpec = None) -> None:
        self.steps = steps
        self.steps_ = normalize_steps(steps)
        self.scales_: dict[int, np.ndarray] = {}

    @property
    def needs_n_tokens(self) -> bool:
        """Whether a step reads the per-row token count (``length`` with ``by="tokens"``)."""
        return any(s["name"] == "length" and s["by"] == "tokens" for s in self.steps_)

    @property
    def is_fitted(self) -> bool:
        return all(i in self.scales_ for i, s in enumerate(self.steps_) if s["name"] in _FITTED_STEPS)

    def fit(self, X: Any, n_tokens: Any = None) -> FeatureTransform:
        """Learn the column statistics of the fitted steps on ``X``."""
        self.scales_ = {}
        self._run(X, n_tokens, fit=True)
        return self

    def transform(self, X: Any, n_tokens: Any = None) -> sp.csr_matrix:
        """Apply the steps to ``X`` (sparse or 2-D array); returns a new float64 CSR matrix.

        With no steps, the input comes back unchanged in type (dense stays dense), as float64."""
        if not self.is_fitted:
            raise RuntimeError(
                "FeatureTransform with 'maxabs'/'std' steps must be fitted before transform: call "
                "fit(X) or fit_transform(X) first, or rebuild it with FeatureTransform.from_state."
            )
        return self._run(X, n_tokens, fit=False)

    def fit_transform(self, X: Any, n_tokens: Any = None) -> sp.csr_matrix:
        self.scales_ = {}
        return self._run(X, n_tokens, fit=True)

    # ------------------------------------------------------------------ state
    def state_arrays(self, prefix: str = "transform.") -> dict[str, np.ndarray]:
        """The fitted column scales, keyed ``f"{prefix}{step_index}.scale"``."""
        return {f"{prefix}{i}.scale": v for i, v in sorted(self.scales_.items())}

    @classmethod
    def from_state(
        cls, steps: TransformSpec, arrays: Mapping[str, np.ndarray], width: int, prefix: str = "transform."
    ) -> FeatureTransform:
        """Rebuild a fitted transform from :attr:`steps_` and :meth:`state_arrays` (validated)."""
        out = cls(steps)
        for i, step in enumerate(out.steps_):
            if step["name"] in _FITTED_STEPS:
                key = f"{prefix}{i}.scale"
                if key not in arrays:
                    raise BundleError(
                        f"Saved transform step {i} ({step['name']!r}) has no array {key!r}; the file is "
                        "incomplete. Save the estimator again."
                    )
                scale = np.asarray(arrays[key])
                if scale.shape != (width,):
                    raise BundleError(
                        f"Saved array {key!r} has shape {scale.shape}, expected ({width},); the file is "
                        "corrupt or was saved for another SAE width. Save the estimator again."
                    )
                if not np.isfinite(scale).all():
                    raise NonFiniteError(
                        f"Saved array {key!r} holds {int((~np.isfinite(scale)).sum())} NaN or "
                        "infinite value(s); the file is corrupt. Save the estimator again."
                    )
                out.scales_[i] = scale
        return out

    def __repr__(self) -> str:
        return f"FeatureTransform({self.steps_!r})"

    # ------------------------------------------------------------------ work
    def _run(self, X: Any, n_tokens: Any, fit: bool) -> Any:
        if not self.steps_:
            return X.astype(np.float64) if _is_scipy_sparse(X) else np.asarray(X, dtype=np.float64)
        X = sp.csr_matrix(X, dtype=np.float64, copy=True)
        X.sum_duplicates()
        n_rows = X.shape[0]
        if self.needs_n_tokens:
            if n_tokens is None:
                raise InvalidParameterError(
                    "Transform step 'length' with by='tokens' needs the token counts: keep the 'sae_n_tokens' "
                    "column in the dataset (or pass n_tokens= with a matrix), or use by='nnz'."
                )
            n_tokens = np.asarray(n_tokens, dtype=np.float64).reshape(-1)
            if n_tokens.shape[0] != n_rows:
                raise InvalidParameterError(
                    f"n_tokens has {n_tokens.shape[0]} values for {n_rows} rows; pass one token count per row."
                )
        row_len = np.diff(X.indptr)
        for i, step in enumerate(self.steps_):
            name = step["name"]
            if name == "log1p":
                X.data = np.sign(X.data) * np.log1p(np.abs(X.data))
            elif name == "binarize":
                X.data = (X.data > step["threshold"]).astype(np.float64)
                X.eliminate_zeros()
                row_len = np.diff(X.indptr)
            elif name == "l2":
                norms = np.sqrt(np.bincount(_row_ids(X), weights=X.data**2, minlength=n_rows))
                norms[norms == 0] = 1.0
                X.data /= np.repeat(norms, row_len)
            elif name == "length":
                if step["by"] == "tokens":
                    counts = n_tokens
                else:
                    counts = row_nnz(X).astype(np.float64)
                X.data /= np.repeat(np.maximum(counts, 1.0) ** step["power"], row_len)
            else:  # column scalings
                if fit:
                    self.scales_[i] = _column_scale(X, name)
                X.data /= self.scales_[i][X.indices]
        return X


def _is_scipy_sparse(X: object) -> bool:
    """Whether ``X`` is a scipy sparse array or matrix.

    ``sp.issparse`` narrows only to scipy's abstract ``SparseABC`` (which promises no ``astype`` or
    CSR conversion); every concrete scipy sparse class is a ``sparray`` or an ``spmatrix``.
    """
    return isinstance(X, (sp.sparray, sp.spmatrix))


def _row_ids(X: sp.csr_matrix) -> np.ndarray:
    """The row index of each stored value of a CSR matrix."""
    return np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))


def row_nnz(X: Any) -> np.ndarray:
    """Number of non-zero values per row of a sparse or dense matrix (explicit zeros not counted)."""
    if not _is_scipy_sparse(X):
        return np.count_nonzero(X, axis=1)
    X = sp.csr_matrix(X)
    return np.bincount(_row_ids(X)[X.data != 0], minlength=X.shape[0])


def _column_scale(X: sp.csr_matrix, name: str) -> np.ndarray:
    if name == "maxabs":
        scale = np.zeros(X.shape[1])
        np.maximum.at(scale, X.indices, np.abs(X.data))
    else:  # std, zeros included, not centred away
        n = max(X.shape[0], 1)
        mean = np.bincount(X.indices, weights=X.data, minlength=X.shape[1]) / n
        mean_sq = np.bincount(X.indices, weights=X.data**2, minlength=X.shape[1]) / n
        scale = np.sqrt(np.maximum(mean_sq - mean**2, 0.0))
    scale[scale == 0] = 1.0
    return scale


def fit_standard_scale(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(mean, scale)`` of each column of a dense ``(n, width)`` matrix: the mean and the population standard
    deviation, a constant column's 0 replaced by 1 (so it standardises to zeros rather than NaN).

    Example:
        >>> mean, scale = fit_standard_scale(np.array([[1.0, 5.0], [3.0, 5.0]]))
        >>> mean.tolist(), scale.tolist()
        ([2.0, 5.0], [1.0, 1.0])
        >>> standardise(np.array([[1.0, 5.0], [4.0, 6.0]]), mean, scale).tolist()
        [[-1.0, 0.0], [2.0, 1.0]]
    """
    X = np.asarray(X, dtype=np.float64)
    scale = X.std(axis=0)
    return X.mean(axis=0), np.where(scale > 0, scale, 1.0)


def standardise(X: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``(X - mean) / scale``, float64: dense features on the scale :func:`fit_standard_scale` learnt."""
    return (np.asarray(X, dtype=np.float64) - mean) / scale
