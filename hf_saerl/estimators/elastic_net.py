"""A fast cross-validated ElasticNet for wide sparse SAE features: one warm-started alpha path per fold.

:class:`ElasticNetPathCV` is what :class:`~hf_saerl.estimators.probes.DifficultyProbe` fits. It chooses
``alpha`` and ``l1_ratio`` by K-fold cross-validation like ``sklearn.linear_model.ElasticNetCV`` (same alpha grid,
same objective, sklearn's own coordinate descent), with these differences, which make a 10,000 x 16,384 top-64
fit take seconds instead of many minutes:

* **Working sets**: sklearn's sparse solver centres the columns implicitly at a cost of ``n_rows`` per column
  at every start, so a fit on 16k columns pays ``n_rows * 16k`` before its first sweep, at every alpha of every
  fold. Each fit here sees only the non-zero coefficients plus the columns the sequential strong rule cannot
  exclude; the optimality (KKT) condition is then checked on every other column and violators are added, so
  the solution is the one on all columns.
* **Warm starts, folds in lockstep, early stop**: every fold walks the same alpha grid from ``alpha_max`` down,
  each fit warm-started from the previous alpha. After each alpha the mean validation MSE over the folds is
  known; the walk stops once ``patience`` alphas in a row have not improved on the best one, so the
  small-alpha end of the grid (slow: near-interpolation when latents outnumber rows; and not chosen) is not
  computed. ``patience=None`` walks the whole grid.
* **A coarser default grid**: ``l1_ratio`` ``(0.5, 0.9)``, 25 alphas over three decades, ``tol=1e-3``.
* **Out-of-fold predictions for free** (``cv_protocol="once"``): ``alpha`` and ``l1_ratio`` are chosen once by
  the folds, and ``cv_predictions_`` are those same folds' predictions at the chosen pair. That is the minimum
  of the CV curve, so its metrics are slightly optimistic compared with nested cross-validation, which
  ``cv_protocol="nested"`` runs (the whole search again inside each outer fold's training rows; K+1 times the
  cost). ``cv_protocol_`` says which one produced ``cv_predictions_``.
* **Screening** (``min_rows``, default 1: off): latents that fire (are non-zero) in fewer than ``min_rows``
  rows are left out of the fit (coefficient 0). The kept columns are ``support_``; ``coef_`` stays full width.
  The count is label-free and made once on all rows, like the transform statistics.

The final model is refitted on all rows at the chosen pair. It is an ``ElasticNet`` solution (same objective
as sklearn: ``1/(2n) ||y - Xw - b||^2 + alpha * l1_ratio * ||w||_1 + alpha * (1 - l1_ratio) / 2 * ||w||^2``)
to the solver's tolerance. :func:`length_baseline` fits the same search on ``log1p(n_tokens)`` alone: the
baseline a difficulty proxy has to beat.

Example:
    >>> import numpy as np, scipy.sparse as sp
    >>> from hf_saerl.estimators.metrics import regression_metrics
    >>> X = sp.random(400, 300, density=0.1, random_state=0, format="csr")   # 300 latents, ~30 firing per row
    >>> signal = X[:, :4].toarray() @ np.array([2.0, -1.0, 1.5, -0.5])
    >>> y = signal + 0.01 * np.random.default_rng(0).normal(size=400)
    >>> model = ElasticNetPathCV(cv=5).fit(X, y)
    >>> model.alpha_ in model.alphas_[list(model.l1_ratios_).index(model.l1_ratio_)]
    True
    >>> regression_metrics(y, model.cv_predictions_)["r2"] > 0.99       # out of fold
    True
    >>> np.flatnonzero(np.abs(model.coef_) > 0.1).tolist()
    [0, 1, 2, 3]
"""

from __future__ import annotations

import logging
import numbers
import time
import warnings
from collections.abc import Iterable, Sequence
from typing import Any, cast

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, RegressorMixin, clone

from ..core.validation import check_choice, check_fitted
from ..errors import InvalidParameterError, NonFiniteError
from .metrics import regression_metrics

logger = logging.getLogger(__name__)

__all__ = ["PROTOCOLS", "ElasticNetPathCV", "length_baseline", "screen_latents"]

#: What ``cv_predictions_`` (and so the probe's out-of-fold metrics) mean: the values of ``cv_protocol_``.
PROTOCOLS: dict[str, str] = {
    "once": (
        "alpha and l1_ratio chosen once by the cv folds on all labelled rows; the folds are scored at that "
        "choice (the minimum of the CV curve, so slightly optimistic vs nested CV)"
    ),
    "nested": (
        "nested CV: alpha and l1_ratio chosen again inside each outer fold's training rows, then that "
        "fold is scored (honest, about cv+1 times the cost)"
    ),
    "fixed": "fixed alpha and l1_ratio (no search); the cv folds are scored at it (honest)",
}


def screen_latents(X: Any, min_rows: int) -> np.ndarray:
    """The columns of ``X`` that are non-zero in at least ``min_rows`` rows, as sorted int64 indices.

    A label-free screen: latents that almost never fire cannot be learnt from a labelled subset, and an L1 fit
    only uses them to memorise single rows. ``min_rows=1`` keeps every latent that fires at all.

    Example:
        >>> import numpy as np, scipy.sparse as sp
        >>> X = sp.csr_matrix(np.array([[1.0, 0, 2.0], [0.5, 0, 0], [3.0, 0, 0]]))
        >>> screen_latents(X, 2).tolist(), screen_latents(X, 1).tolist()
        ([0], [0, 2])
    """
    min_rows = _check_int(min_rows, "min_rows", low=1)
    if sp.issparse(X):
        csr: Any = X  # (scipy's stubs narrow issparse to an abstract type without tocsr)
        csr = csr.tocsr()
        counts = np.bincount(csr.indices[csr.data != 0], minlength=csr.shape[1])
    else:
        counts = np.count_nonzero(np.asarray(X), axis=0)
    return np.flatnonzero(counts >= min_rows).astype(np.int64)


class ElasticNetPathCV(RegressorMixin, BaseEstimator):
    """ElasticNet with ``alpha`` / ``l1_ratio`` chosen by warm-started, early-stopped K-fold paths.

    See the module docstring for the method. sklearn manners: the constructor only stores, ``fit`` returns
    self, fitted state ends in ``_``.

    Args:
        l1_ratio: a float or a grid of floats in (0, 1] (0 is allowed with explicit ``alphas``).
        n_alphas: alphas per ``l1_ratio``, log-spaced from ``alpha_max`` (the smallest alpha with an all-zero
            solution) down to ``eps * alpha_max``.
        eps: the bottom of the grid relative to its top.
        alphas: an explicit grid instead (sorted high to low; one value with one ``l1_ratio`` means a fixed
            model: no search, and the folds only score it).
        cv: the folds: an int (``KFold(cv, shuffle=True, random_state)``), a splitter with ``split``, an
            iterable of ``(train, test)`` index pairs, or None (no folds: needs a fixed model).
        patience: stop walking down a grid after this many alphas without a new best mean validation MSE;
            None walks every alpha.
        min_rows: screen out latents non-zero in fewer rows (see :func:`screen_latents`).
        cv_protocol: ``"once"`` or ``"nested"`` (what ``cv_predictions_`` are; see :data:`PROTOCOLS`).
        inner_cv: folds of the inner search under ``cv_protocol="nested"`` (default: ``cv`` as an int, else 5).
        tol, max_iter: the coordinate-descent tolerance (relative duality gap) and iteration cap per fit.
        random_state: seed of the folds when ``cv`` is an int.

    Fitted attributes: ``coef_`` (full width), ``intercept_``, ``alpha_``, ``l1_ratio_``, ``l1_ratios_``,
    ``alphas_`` (one grid per ratio, ``(n_ratios, n_alphas)``), ``mse_path_`` (``(n_ratios, n_alphas, n_folds)``
    mean squared validation error, NaN where the early stop skipped it), ``n_alphas_fitted_`` (per ratio),
    ``cv_predictions_`` (one per row, or None without folds), ``cv_protocol_`` (a key of :data:`PROTOCOLS`, or
    None), ``support_`` (the screened columns), ``n_features_in_``, ``n_iter_`` (coordinate-descent sweeps in
    all fits), ``n_fits_``, ``n_not_converged_``, ``fit_seconds_``.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> X = rng.normal(size=(200, 5)); y = X[:, 0] - 2 * X[:, 1] + 0.1 * rng.normal(size=200)
        >>> m = ElasticNetPathCV(l1_ratio=0.9, cv=4).fit(X, y)
        >>> np.round(m.coef_[:2], 1).tolist(), m.cv_protocol_
        ([1.0, -2.0], 'once')
    """

    def __init__(
        self,
        l1_ratio: float | Sequence[float] = (0.5, 0.9),
        n_alphas: int = 25,
        eps: float = 1e-3,
        alphas: Sequence[float] | None = None,
        cv: Any = 5,
        patience: int | None = 3,
        min_rows: int = 1,
        cv_protocol: str = "once",
        inner_cv: Any = None,
        tol: float = 1e-3,
        max_iter: int = 2000,
        random_state: int | None = 0,
    ) -> None:
        self.l1_ratio = l1_ratio
        self.n_alphas = n_alphas
        self.eps = eps
        self.alphas = alphas
        self.cv = cv
        self.patience = patience
        self.min_rows = min_rows
        self.cv_protocol = cv_protocol
        self.inner_cv = inner_cv
        self.tol = tol
        self.max_iter = max_iter
        self.random_state = random_state

    # ------------------------------------------------------------------ fitting
    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> ElasticNetPathCV:
        """Choose ``alpha`` / ``l1_ratio`` on the folds, score the folds, refit on all rows; returns self.

        ``sample_weight`` (non-negative, one per row) weighs each row's squared error as sklearn's ``ElasticNet``
        does (rescaled to sum to the number of rows of each fit), and the folds' validation errors alike."""
        start = time.perf_counter()
        ratios, alphas = self._check_params()
        X, y = _check_xy(X, y)
        weights = _check_weights(sample_weight, len(y))
        fixed = alphas is not None and len(alphas) == 1 and len(ratios) == 1
        folds = self._folds(X.shape[0])
        if folds is None and not fixed:
            raise InvalidParameterError(
                f"ElasticNetPathCV(cv=None) has no folds to choose alpha/l1_ratio with (l1_ratio={self.l1_ratio!r}, "
                f"alphas={self.alphas!r}). Pass cv=<int> folds, or fix one alpha= and one l1_ratio=."
            )
        support = screen_latents(X, self.min_rows)
        if support.size == 0:
            raise InvalidParameterError(
                f"No column of X is non-zero in at least min_rows={self.min_rows} of its {X.shape[0]} rows, so there "
                "is nothing to fit. Lower min_rows, or check that the features are not all zero."
            )
        Xs = _columns(X, support)
        counters = _Counters()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            search = _search(
                Xs,
                y,
                weights,
                ratios,
                alphas,
                folds,
                self.n_alphas,
                self.eps,
                self.patience,
                self.tol,
                self.max_iter,
                counters,
            )
            best_ratio, best_alpha = search["l1_ratio"], search["alpha"]
            final = _refit(
                Xs, y, weights, best_ratio, search["grid"], search["index"], self.tol, self.max_iter, counters
            )
        _report_convergence(caught, counters)

        self.l1_ratios_ = np.asarray(ratios, dtype=np.float64)
        self.alphas_ = search["alphas"]
        self.mse_path_ = search["mse_path"]
        self.n_alphas_fitted_ = search["n_fitted"]
        self.alpha_, self.l1_ratio_ = float(best_alpha), float(best_ratio)
        self.coef_ = np.zeros(X.shape[1], dtype=np.float64)
        self.coef_[support] = final.coef
        self.intercept_ = float(final.intercept)
        self.support_ = support
        self.n_features_in_ = X.shape[1]
        if folds is None:
            self.cv_predictions_, self.cv_protocol_ = None, None
        elif fixed:
            self.cv_predictions_, self.cv_protocol_ = search["oof"], "fixed"
        elif self.cv_protocol == "nested":
            self.cv_predictions_, self.cv_protocol_ = self._nested(X, y, weights, folds, counters), "nested"
        else:
            self.cv_predictions_, self.cv_protocol_ = search["oof"], "once"
        self.n_iter_, self.n_fits_, self.n_not_converged_ = counters.n_iter, counters.n_fits, counters.n_not_converged
        self.fit_seconds_ = time.perf_counter() - start
        logger.info(
            "ElasticNetPathCV: %d rows x %d columns (%d screened in), alpha=%.3g l1_ratio=%.2f, %d fits, %.1f s.",
            X.shape[0],
            X.shape[1],
            support.size,
            self.alpha_,
            self.l1_ratio_,
            self.n_fits_,
            self.fit_seconds_,
        )
        return self

    def _nested(
        self,
        X: Any,
        y: np.ndarray,
        weights: np.ndarray | None,
        folds: list[tuple[np.ndarray, np.ndarray]],
        counters: _Counters,
    ) -> np.ndarray:
        """Out-of-fold predictions of the whole search run again inside each outer fold's training rows."""
        inner = self.inner_cv
        if inner is None:
            inner = self.cv if isinstance(self.cv, numbers.Integral) else 5
        oof = np.empty(len(y), dtype=np.float64)
        for train, test in folds:
            model = clone(self).set_params(cv_protocol="once", cv=inner)
            model.fit(X[train], y[train], None if weights is None else weights[train])
            oof[test] = model.predict(X[test])
            counters.add(model)
        return oof

    def predict(self, X: Any) -> np.ndarray:
        """``X @ coef_ + intercept_`` (float64)."""
        check_fitted(self, "predict")
        return np.asarray(X @ self.coef_, dtype=np.float64).reshape(-1) + self.intercept_

    # ------------------------------------------------------------------ validation
    def _check_params(self) -> tuple[list[float], np.ndarray | None]:
        ratios = None if isinstance(self.l1_ratio, str) else np.atleast_1d(np.asarray(self.l1_ratio, dtype=np.float64))
        if (
            ratios is None
            or ratios.ndim != 1
            or ratios.size == 0
            or not np.isfinite(ratios).all()
            or ((ratios < 0) | (ratios > 1)).any()
        ):
            raise InvalidParameterError(
                f"l1_ratio must be a float or a non-empty list of floats in [0, 1]; got "
                f"{self.l1_ratio!r}. Use e.g. l1_ratio=0.9 or l1_ratio=(0.5, 0.9)."
            )
        alphas = None
        if self.alphas is not None:
            alphas = np.atleast_1d(np.asarray(self.alphas, dtype=np.float64))
            if alphas.ndim != 1 or alphas.size == 0 or not np.isfinite(alphas).all() or (alphas <= 0).any():
                raise InvalidParameterError(
                    f"alphas must be a non-empty list of positive, finite floats; got "
                    f"{self.alphas!r}. Pass alphas=None for an automatic grid, or e.g. "
                    "alphas=[1e-3]."
                )
            alphas = np.sort(alphas)[::-1]
        elif (ratios == 0).any():
            raise InvalidParameterError(
                f"l1_ratio=0 (a pure ridge penalty) has no alpha_max, so no automatic alpha grid; got l1_ratio="
                f"{self.l1_ratio!r}. Use l1_ratio > 0 (e.g. 0.1), or pass an explicit alphas= grid."
            )
        else:
            _check_int(self.n_alphas, "n_alphas", low=1)
            if not (isinstance(self.eps, numbers.Real) and 0 < self.eps < 1):
                raise InvalidParameterError(
                    f"eps must be a float in (0, 1) (the bottom of the alpha grid relative to "
                    f"its top); got {self.eps!r}. Use e.g. eps=1e-3."
                )
        if self.patience is not None:
            _check_int(self.patience, "patience", low=1)
        _check_int(self.min_rows, "min_rows", low=1)
        _check_int(self.max_iter, "max_iter", low=1)
        if not (isinstance(self.tol, numbers.Real) and self.tol > 0 and np.isfinite(self.tol)):
            raise InvalidParameterError(
                f"tol must be a positive float; got {self.tol!r}. Use e.g. tol=1e-3 (fast) or tol=1e-6 (tight)."
            )
        check_choice(
            "cv_protocol",
            self.cv_protocol,
            ("once", "nested"),
            "'once' scores the folds at the alpha they chose (fast), 'nested' repeats the search per fold.",
        )
        return [float(r) for r in ratios], alphas

    def _folds(self, n_rows: int) -> list[tuple[np.ndarray, np.ndarray]] | None:
        cv = self.cv
        if cv is None:
            return None
        if isinstance(cv, numbers.Integral) and not isinstance(cv, bool):
            if cv < 2:
                raise InvalidParameterError(
                    f"cv must be >= 2 folds (or None, or a splitter); got cv={cv}. Use e.g. cv=5."
                )
            if n_rows < 2 * int(cv):
                raise InvalidParameterError(
                    f"cv={cv} needs at least {2 * cv} rows (2 per fold); got {n_rows}. Label more rows, or lower cv "
                    f"(e.g. cv={max(2, n_rows // 2)})."
                )
            from sklearn.model_selection import KFold

            cv = KFold(int(cv), shuffle=True, random_state=self.random_state)
        folds = None
        if isinstance(cv, (str, bytes)):
            pass
        elif hasattr(cv, "split"):
            folds = list(cv.split(np.zeros((n_rows, 1))))
        elif isinstance(cv, Iterable):
            folds = list(cv)
        if folds is None:
            raise InvalidParameterError(
                f"cv must be an int, a splitter with split(), an iterable of (train, test) "
                f"index pairs, or None; got {cv!r}."
            )
        checked, seen = [], np.zeros(n_rows, dtype=np.int64)
        for train, test in folds:
            train, test = np.asarray(train, dtype=np.int64), np.asarray(test, dtype=np.int64)
            if (
                train.size == 0
                or test.size == 0
                or train.min() < 0
                or test.min() < 0
                or max(train.max(), test.max()) >= n_rows
            ):
                raise InvalidParameterError(
                    f"Every fold needs non-empty train and test indices in [0, {n_rows}); got "
                    "a fold outside that. Pass folds from a splitter over these rows."
                )
            seen[test] += 1
            checked.append((train, test))
        if len(checked) < 2 or (seen != 1).any():
            raise InvalidParameterError(
                f"The folds must put each of the {n_rows} rows in exactly one test set (got {len(checked)} folds, "
                f"{int((seen == 0).sum())} rows never tested, {int((seen > 1).sum())} tested more than once), so that "
                "every row gets one out-of-fold prediction. Use a KFold-style splitter, or cv=<int>."
            )
        return checked


# ---------------------------------------------------------------------- the length baseline
def length_baseline(n_tokens: Any, y: Any, *, cv: Any = 5, **search: Any) -> dict[str, Any]:
    """Out-of-fold metrics of the same ElasticNet search on ``log1p(n_tokens)`` alone (one feature).

    A difficulty proxy that does not beat prompt length is not worth its SAE. ``cv`` should be the probe's
    folds (a splitter or ``(train, test)`` pairs), so both are scored on the same rows; ``search`` takes the
    other :class:`ElasticNetPathCV` parameters (``l1_ratio``, ``n_alphas``, ``cv_protocol``, ...).

    Returns:
        ``pearson``, ``spearman``, ``r2``, ``mae`` of the out-of-fold predictions, plus ``feature``,
        ``alpha``, ``l1_ratio``, ``cv_protocol`` and ``coef`` / ``intercept`` of the fit on all rows.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> n_tokens = rng.integers(10, 500, size=300)
        >>> pass_rate = np.clip(1.2 - 0.2 * np.log1p(n_tokens) + 0.05 * rng.normal(size=300), 0, 1)
        >>> base = length_baseline(n_tokens, pass_rate)
        >>> round(base["spearman"], 2), base["coef"] < 0      # longer prompts are solved less often
        (0.9, True)
    """
    n_tokens = np.asarray(n_tokens, dtype=np.float64).reshape(-1)
    n_bad, n_negative = int((~np.isfinite(n_tokens)).sum()), int((n_tokens < 0).sum())
    if n_bad or n_negative:
        raise NonFiniteError(
            f"n_tokens must be finite, non-negative token counts; got {n_bad} non-finite and "
            f"{n_negative} negative value(s). Pass the sae_n_tokens column, or drop the rows "
            "without a count."
        )
    if n_tokens.shape[0] != np.shape(y)[0]:
        raise InvalidParameterError(
            f"Got {n_tokens.shape[0]} token counts for {np.shape(y)[0]} labels; pass one count "
            "per labelled row (the sae_n_tokens column of the same rows)."
        )
    x = np.log1p(n_tokens)[:, None]
    search.setdefault("min_rows", 1)
    model = ElasticNetPathCV(cv=cv, **search).fit(x, y)
    metrics = {} if model.cv_predictions_ is None else regression_metrics(y, model.cv_predictions_)
    return {
        "feature": "log1p(n_tokens)",
        **metrics,
        "alpha": model.alpha_,
        "l1_ratio": model.l1_ratio_,
        "cv_protocol": model.cv_protocol_,
        "coef": float(model.coef_[0]),
        "intercept": model.intercept_,
    }


# ---------------------------------------------------------------------- internals
class _Counters:
    def __init__(self) -> None:
        self.n_iter = self.n_fits = self.n_not_converged = 0

    def fitted(self, model: Any) -> None:
        self.n_fits += 1
        self.n_iter += int(np.sum(model.n_iter_))

    def add(self, other: ElasticNetPathCV) -> None:
        self.n_iter += other.n_iter_
        self.n_fits += other.n_fits_
        self.n_not_converged += other.n_not_converged_


def _check_int(value: Any, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise InvalidParameterError(f"{name} must be an int >= {low}; got {value!r}.")
    return int(value)


def _check_xy(X: Any, y: Any) -> tuple[Any, np.ndarray]:
    if sp.issparse(X):
        X = cast(Any, X).tocsr().astype(np.float64)  # (scipy's stubs narrow issparse to an abstract type)
        values = X.data
    else:
        X = np.asarray(X, dtype=np.float64)
        values = X
    if X.ndim != 2:
        raise InvalidParameterError(
            f"X must be a 2-D (n_rows, n_features) matrix; got shape {X.shape}. Reshape a "
            "single feature with x[:, None]."
        )
    if not np.isfinite(values).all():
        raise NonFiniteError(
            f"X holds {int((~np.isfinite(values)).sum())} NaN or infinite value(s); re-encode those "
            "rows or drop them before fitting."
        )
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if y.shape[0] != X.shape[0]:
        raise InvalidParameterError(f"Got {y.shape[0]} labels for {X.shape[0]} rows of X; pass one label per row.")
    if not np.isfinite(y).all():
        raise NonFiniteError(f"y holds {int((~np.isfinite(y)).sum())} NaN or infinite label(s); drop those rows first.")
    if np.ptp(y) == 0:
        raise InvalidParameterError(
            f"All {len(y)} labels equal {y[0]:g}: nothing to learn. Provide rows with different labels."
        )
    return X, y


def _columns(X: Any, support: np.ndarray) -> Any:
    """The screened columns in the layout sklearn's coordinate descent reads without copying."""
    if sp.issparse(X):
        Xs = cast(Any, X)[:, support].tocsc()
        Xs.sort_indices()
        Xs.indices = Xs.indices.astype(np.int32, copy=False)
        Xs.indptr = Xs.indptr.astype(np.int32, copy=False)
        return Xs
    return np.asfortranarray(X[:, support])


def _rows(X: Any, rows: np.ndarray) -> Any:
    """Rows of the screened matrix, in the same solver-ready layout (CSC, int32 indices; or Fortran order)."""
    if sp.issparse(X):
        Xr = sp.csc_matrix(cast(Any, X)[rows])
        Xr.sort_indices()
        Xr.indices = Xr.indices.astype(np.int32, copy=False)
        Xr.indptr = Xr.indptr.astype(np.int32, copy=False)
        return Xr
    return np.asfortranarray(X[rows])


def _check_weights(sample_weight: Any, n_rows: int) -> np.ndarray | None:
    if sample_weight is None:
        return None
    w = np.asarray(sample_weight, dtype=np.float64).reshape(-1)
    if w.shape[0] != n_rows or not np.isfinite(w).all() or (w < 0).any() or not w.sum() > 0:
        raise InvalidParameterError(
            f"sample_weight must hold {n_rows} finite, non-negative weights with a positive "
            f"sum; got {w.shape[0]} values (min {w.min() if w.size else None}). Fix the "
            "weights, or pass sample_weight=None."
        )
    return w


def _unit_weights(w: np.ndarray | None, n_rows: int) -> np.ndarray:
    """Weights rescaled to sum to ``n_rows`` (sklearn's ElasticNet rescales them so); ones without weights."""
    return np.ones(n_rows) if w is None else w * (n_rows / w.sum())


def _alpha_max(X: Any, y: np.ndarray, ratio: float, w: np.ndarray | None = None) -> float:
    """The smallest alpha with an all-zero solution: ``max |X_c^T W y_c| / (n * l1_ratio)`` (sklearn's grid top),
    ``W`` the weights rescaled to sum to ``n``."""
    w = _unit_weights(w, X.shape[0])
    yc = w * (y - np.average(y, weights=w))
    Xty = np.asarray(X.T @ yc).reshape(-1)  # the column means drop out: sum(W y_c) = 0
    return float(np.abs(Xty).max()) / (X.shape[0] * ratio)


def _grid(
    X: Any, y: np.ndarray, w: np.ndarray | None, ratio: float, alphas: np.ndarray | None, n_alphas: int, eps: float
) -> np.ndarray:
    if alphas is not None:
        return alphas
    top = _alpha_max(X, y, ratio, w)
    if not top > 0:
        return np.full(1, np.finfo(np.float64).eps)
    return np.geomspace(top, top * eps, n_alphas)


def _enet(ratio: float, tol: float, max_iter: int) -> Any:
    from sklearn.linear_model import ElasticNet

    return ElasticNet(
        alpha=1.0,
        l1_ratio=ratio,
        tol=tol,
        max_iter=max_iter,
        warm_start=True,
        copy_X=True,
        precompute=False,
        selection="cyclic",
    )


class _WarmPath:
    """One ElasticNet walked down an alpha grid on fixed rows, solved on a working set of columns.

    sklearn's sparse coordinate descent centres the columns implicitly, at a cost of ``n_rows`` per column
    at every start, so a cold fit on 16k columns pays ``n_rows * 16k`` before its first sweep. Here each fit
    sees only the working set: the non-zero coefficients plus the columns the sequential strong rule
    (Tibshirani et al. 2012) cannot exclude at the new alpha; afterwards the optimality (KKT) condition
    ``|x_j^T r| <= n * alpha * l1_ratio`` is checked on every column left out, and violators join the set
    and the fit is repeated. The result is the ElasticNet solution on all columns, to the solver's tolerance.
    """

    _MAX_ROUNDS = 20

    def __init__(
        self, X: Any, y: np.ndarray, w: np.ndarray | None, ratio: float, tol: float, max_iter: int, counters: _Counters
    ) -> None:
        self.X, self.y, self.ratio, self.counters = X, y, ratio, counters
        self.w = _unit_weights(w, X.shape[0])  # the KKT gradient is X^T W r, as in sklearn's weighted objective
        self.fit_params = {} if w is None else {"sample_weight": w}
        self.sparse = sp.issparse(X)
        self.model = _enet(ratio, tol, max_iter)
        self.coef = np.zeros(X.shape[1], dtype=np.float64)
        self.intercept = float(np.average(y, weights=self.w))
        self.grad = np.asarray(X.T @ (self.w * (y - self.intercept)), dtype=np.float64).reshape(-1)
        self.alpha: float | None = None

    def step(self, alpha: float) -> _WarmPath:
        n = self.X.shape[0]
        bound = n * alpha * self.ratio
        if not self.sparse:
            work = np.arange(self.X.shape[1])
        else:
            strong = n * self.ratio * (2 * alpha - self.alpha) if self.alpha is not None else bound
            work = np.flatnonzero((self.coef != 0) | (np.abs(self.grad) >= strong))
        for round_ in range(self._MAX_ROUNDS):
            self._fit(work, alpha)
            if work.size == self.X.shape[1]:
                break
            outside = np.ones(self.X.shape[1], dtype=bool)
            outside[work] = False
            violators = np.flatnonzero(outside & (np.abs(self.grad) > bound))
            if violators.size == 0:
                break
            # the last round takes every column, so the loop always ends at an optimum
            work = np.union1d(work, violators) if round_ < self._MAX_ROUNDS - 2 else np.arange(self.X.shape[1])
        self.alpha = float(alpha)
        return self

    def _fit(self, work: np.ndarray, alpha: float) -> None:
        coef = np.zeros(self.X.shape[1], dtype=np.float64)
        if work.size:
            Xw = self.X[:, work] if self.sparse else self.X
            self.model.coef_ = np.asfortranarray(self.coef[work])  # warm start (ElasticNet(warm_start=True))
            self.model.set_params(alpha=float(alpha))
            self.model.fit(Xw, self.y, check_input=False, **self.fit_params)
            self.counters.fitted(self.model)
            coef[work] = self.model.coef_
            intercept = float(self.model.intercept_)
        else:
            intercept = float(np.average(self.y, weights=self.w))
        self.coef, self.intercept = coef, intercept
        residual = self.y - np.asarray(self.X @ coef).reshape(-1) - intercept  # W r sums to 0: exact intercept
        self.grad = np.asarray(self.X.T @ (self.w * residual), dtype=np.float64).reshape(-1)

    def predict(self, X: Any) -> np.ndarray:
        return np.asarray(X @ self.coef, dtype=np.float64).reshape(-1) + self.intercept


def _search(
    Xs: Any,
    y: np.ndarray,
    w: np.ndarray | None,
    ratios: list[float],
    alphas: np.ndarray | None,
    folds: list[tuple[np.ndarray, np.ndarray]] | None,
    n_alphas: int,
    eps: float,
    patience: int | None,
    tol: float,
    max_iter: int,
    counters: _Counters,
) -> dict[str, Any]:
    """Walk each ratio's alpha grid with every fold in lockstep; the best (ratio, alpha) by mean validation MSE."""
    grids = [_grid(Xs, y, w, r, alphas, n_alphas, eps) for r in ratios]
    width = max(len(g) for g in grids)
    n_folds = len(folds) if folds else 0
    mse_path = np.full((len(ratios), width, n_folds), np.nan)
    alphas_out = np.full((len(ratios), width), np.nan)
    n_fitted = np.zeros(len(ratios), dtype=np.int64)
    if not folds:  # a fixed model: nothing to choose
        alphas_out[0, : len(grids[0])] = grids[0]
        return {
            "alphas": alphas_out,
            "mse_path": mse_path,
            "n_fitted": n_fitted,
            "l1_ratio": ratios[0],
            "alpha": float(grids[0][0]),
            "grid": grids[0],
            "index": 0,
            "oof": None,
        }
    parts = [(_rows(Xs, train), y[train], _rows(Xs, test), y[test], test) for train, test in folds]
    fold_w = [(None, np.ones(len(test))) if w is None else (w[train], w[test]) for train, test in folds]
    best = (np.inf, 0, 0)  # (mean mse, ratio index, alpha index)
    best_oof = None
    for r, (ratio, grid) in enumerate(zip(ratios, grids, strict=True)):
        alphas_out[r, : len(grid)] = grid
        paths = [
            _WarmPath(Xtr, ytr, wtr, ratio, tol, max_iter, counters)
            for (Xtr, ytr, *_), (wtr, _) in zip(parts, fold_w, strict=True)
        ]
        ratio_best, since = np.inf, 0
        for a, alpha in enumerate(grid):
            preds = []
            for f, (path, (_, _, Xte, yte, _), (_, wte)) in enumerate(zip(paths, parts, fold_w, strict=True)):
                pred = path.step(alpha).predict(Xte)
                mse_path[r, a, f] = float(np.average((yte - pred) ** 2, weights=wte)) if wte.sum() > 0 else 0.0
                preds.append(pred)
            n_fitted[r] = a + 1
            mean = float(mse_path[r, a].mean())
            if mean < best[0]:
                best = (mean, r, a)
                best_oof = np.empty(len(y), dtype=np.float64)
                for (_, _, _, _, test), pred in zip(parts, preds, strict=True):
                    best_oof[test] = pred
            if mean < ratio_best:
                ratio_best, since = mean, 0
            else:
                since += 1
                if patience is not None and since >= patience:
                    logger.debug("l1_ratio=%g: early stop after %d of %d alphas.", ratio, a + 1, len(grid))
                    break
    _, r, a = best
    return {
        "alphas": alphas_out,
        "mse_path": mse_path,
        "n_fitted": n_fitted,
        "l1_ratio": ratios[r],
        "alpha": float(grids[r][a]),
        "grid": grids[r],
        "index": a,
        "oof": best_oof,
    }


def _refit(
    Xs: Any,
    y: np.ndarray,
    w: np.ndarray | None,
    ratio: float,
    grid: np.ndarray,
    index: int,
    tol: float,
    max_iter: int,
    counters: _Counters,
) -> _WarmPath:
    """The model on all rows at ``grid[index]``, warm-started down the grid (cheaper than a cold start)."""
    path = _WarmPath(Xs, y, w, ratio, tol, max_iter, counters)
    for alpha in grid[: index + 1]:
        path.step(alpha)
    return path


def _report_convergence(caught: list[warnings.WarningMessage], counters: _Counters) -> None:
    from sklearn.exceptions import ConvergenceWarning

    other = [w for w in caught if not issubclass(w.category, ConvergenceWarning)]
    counters.n_not_converged += len(caught) - len(other)
    for w in other:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if counters.n_not_converged:
        warnings.warn(
            f"{counters.n_not_converged} of {counters.n_fits} ElasticNet fits on the alpha paths stopped at max_iter "
            "before reaching tol. Raise max_iter, loosen tol, or raise min_rows (fewer rare latents).",
            ConvergenceWarning,
            stacklevel=3,
        )
