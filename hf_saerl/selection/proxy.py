"""The pass-rate proxy behind the selector's prior: a fitted linear probe over a fixed pool, refitted online.

:class:`LinearProxy` predicts each prompt's pass rate as ``X_t @ (coef + delta) + (intercept + delta0)``, where
``X_t`` are the pool's transformed features, ``coef`` / ``intercept`` the offline fit (a
:class:`~hf_saerl.estimators.DifficultyProbe` on pass rates) and ``delta`` a correction refitted on the policy's own
rollouts. The refit is an ElasticNet on the residuals ``observed rate - offline prediction`` weighted by trials,
warm-started from the last correction and using the probe's own ``alpha_`` / ``l1_ratio_``: the penalty shrinks the
correction towards zero, so features no rollout has touched keep their offline weight. (``DifficultyProbe.fit``
takes no ``sample_weight`` and re-runs its alpha search, so the refit calls sklearn's ``ElasticNet`` directly.)
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..core.columns import column_names, read_column
from ..core.validation import check_real
from ..encoding.sparse import sparse_matrix
from ..errors import InvalidParameterError, RowMismatchError

__all__ = ["LinearProxy"]


class LinearProxy:
    """A linear pass-rate predictor over a fixed pool of prompts, with an online weighted refit.

    Args:
        features: ``(n_rows, width)`` matrix (sparse or dense) of the pool, already transformed as the
            coefficients expect.
        coef, intercept: the offline linear fit on the pass-rate scale.
        alpha, l1_ratio: the ElasticNet penalty of the refit (a probe's chosen ``alpha_`` / ``l1_ratio_``).
        residual_var: the offline fit's squared error on unseen prompts (pass-rate scale), which sets the prior's
            strength.
        max_features: the refit adjusts at most this many features (those active in the most observed rows).

    Example:
        >>> import numpy as np
        >>> X = np.eye(4)
        >>> proxy = LinearProxy(X, coef=np.array([0.1, 0.2, 0.3, 0.4]), intercept=0.1, alpha=1e-4, l1_ratio=0.5,
        ...                     residual_var=0.01)
        >>> proxy.predict().round(2).tolist()
        [0.2, 0.3, 0.4, 0.5]
        >>> info = proxy.refit(np.array([0, 1, 2, 3]), np.array([0.9, 0.3, 0.4, 0.5]), np.array([8.0, 8, 8, 8]))
        >>> bool(proxy.predict()[0] > 0.6), info["n_rows"]
        (True, 4)
    """

    def __init__(
        self,
        features: Any,
        coef: Any,
        intercept: float,
        *,
        alpha: float,
        l1_ratio: float,
        residual_var: float,
        max_features: int = 2048,
    ) -> None:
        sparse = sp.issparse(features)  # kept in a name: mypy would narrow features to an abstract sparse type
        self.features: Any = (
            sp.csr_matrix(features, dtype=np.float64) if sparse else np.asarray(features, dtype=np.float64)
        )
        if self.features.ndim != 2:
            raise InvalidParameterError(
                f"features must be a 2-D (n_rows, width) matrix; got shape "
                f"{self.features.shape}. Pass one row per prompt of the pool."
            )
        self.coef = np.asarray(coef, dtype=np.float64).reshape(-1)
        if self.coef.shape[0] != self.features.shape[1]:
            raise RowMismatchError(
                f"coef has {self.coef.shape[0]} weights but the features have "
                f"{self.features.shape[1]} columns. Pass the features the coefficients were "
                "fitted on, or the matching coef."
            )
        self.intercept = check_real("intercept", intercept, "Pass the fit's finite intercept.")
        self.alpha = check_real("alpha", alpha, "Pass the probe's alpha_.", low=0.0, low_open=True)
        self.l1_ratio = check_real("l1_ratio", l1_ratio, "Pass the probe's l1_ratio_.", low=0.0, high=1.0)
        self.residual_var = check_real(
            "residual_var", residual_var, "Pass the fit's out-of-fold squared error.", low=0.0, low_open=True
        )
        self.max_features = int(max_features)
        self.delta = np.zeros_like(self.coef)
        self.delta_intercept = 0.0
        self._base = np.asarray(self.features @ self.coef, dtype=np.float64).reshape(-1) + self.intercept

    @property
    def n_rows(self) -> int:
        """Prompts in the pool."""
        return int(self.features.shape[0])

    @classmethod
    def from_probe(
        cls, probe: Any, data: Any, *, residual_var: float | None = None, max_features: int = 2048
    ) -> LinearProxy:
        """A proxy from a fitted :class:`~hf_saerl.estimators.DifficultyProbe` (``label_ == "pass_rate"``) and the
        pool's SAE columns (a ``Dataset`` or a batch dict with ``sae_indices`` / ``sae_values``, or a CSR matrix).

        ``residual_var`` defaults to the probe's out-of-fold error: ``(pi / 2) * mae**2`` from ``metrics_["mae"]``
        (exact for normal residuals; it includes the labels' own binomial noise, so it errs towards a weaker prior).

        Example:
            >>> import numpy as np, scipy.sparse as sp
            >>> from hf_saerl.estimators import DifficultyProbe
            >>> X = sp.random(200, 30, density=0.2, random_state=0, format="csr")
            >>> y = np.clip(0.5 + 0.5 * X[:, 0].toarray().ravel() - 0.5 * X[:, 1].toarray().ravel(), 0, 1)
            >>> probe = DifficultyProbe(d_sae=30, label="pass_rate", transform=None).fit(X, y)
            >>> proxy = LinearProxy.from_probe(probe, X)
            >>> bool(np.allclose(np.clip(proxy.predict(), 0, 1), probe.predict_pass_rate(X), atol=1e-6))
            True
        """
        if getattr(probe, "label_", None) != "pass_rate":
            raise InvalidParameterError(
                f"The selector's prior needs a DifficultyProbe fitted on pass rates (label_='pass_rate'); got "
                f"{type(probe).__name__} with label_={getattr(probe, 'label_', None)!r}. Fit it with "
                "label='pass_rate' on measured pass rates, or build the selector without a prior."
            )
        X: Any
        is_matrix = sp.issparse(data) or isinstance(data, np.ndarray)
        if is_matrix:
            X = sp.csr_matrix(data)
            n_tokens = None
        else:
            X = sparse_matrix(data, probe.d_sae, indices_column=probe.indices_column, values_column=probe.values_column)
            n_tokens = None
            if probe.transform_.needs_n_tokens and probe.n_tokens_column in (column_names(data) or ()):
                n_tokens = read_column(data, probe.n_tokens_column, "token counts (for the 'length' step)")
        Xt = probe.transform_.transform(X, n_tokens)
        if residual_var is None:
            mae = (probe.metrics_ or {}).get("mae")
            if mae is None:
                raise InvalidParameterError(
                    "The probe has no out-of-fold error (metrics_['mae']; it was fitted with cv=None), so the "
                    "prior's strength is unknown. Fit it with cv=5, or pass residual_var= (or the selector's "
                    "prior_strength=)."
                )
            residual_var = max(math.pi / 2 * float(mae) ** 2, 1e-6)
        return cls(
            Xt,
            probe.coef_,
            float(probe.intercept_[0]),
            alpha=float(probe.alpha_),
            l1_ratio=float(probe.l1_ratio_),
            residual_var=float(residual_var),
            max_features=max_features,
        )

    def predict(self, rows: np.ndarray | None = None, correction: tuple[np.ndarray, float] | None = None) -> np.ndarray:
        """The predicted pass rate (unclipped, float64) of ``rows`` (default: every prompt), with the current
        correction or the ``(delta, intercept)`` given."""
        delta, intercept = (self.delta, self.delta_intercept) if correction is None else correction
        part = self.features if rows is None else self.features[rows]
        base = self._base if rows is None else self._base[rows]
        return base + (np.asarray(part @ delta).reshape(-1) if delta.any() else 0.0) + intercept

    def refit(self, rows: np.ndarray, rate: np.ndarray, weight: np.ndarray) -> dict[str, Any]:
        """Refit the correction on observed pass rates ``rate`` of prompts ``rows`` with sample weights ``weight``
        (trials), warm-started from the current correction. Returns what it did (rows, features, training MSE)."""
        delta, intercept, info = self.fit_correction(rows, rate, weight)
        self.set_correction(delta, intercept)
        return info

    def fit_correction(
        self, rows: np.ndarray, rate: np.ndarray, weight: np.ndarray, warm: np.ndarray | None = None
    ) -> tuple[np.ndarray, float, dict[str, Any]]:
        """What :meth:`refit` fits, without changing the proxy (so it may run in another thread while the proxy
        serves predictions): the correction ``(delta, delta_intercept)``, warm-started from ``warm`` (default: the
        current correction), and a summary."""
        from sklearn.linear_model import ElasticNet

        rows = np.asarray(rows, dtype=np.int64)
        X: Any = self.features[rows]
        target = np.asarray(rate, dtype=np.float64) - self._base[rows]
        weight = np.asarray(weight, dtype=np.float64)
        warm = self.delta if warm is None else warm
        if not isinstance(X, np.ndarray):
            counts = np.bincount(X.indices, minlength=X.shape[1])
        else:
            counts = np.count_nonzero(X, axis=0)
        active = np.flatnonzero(counts)
        if active.size > self.max_features:
            active = np.sort(active[np.argsort(-counts[active], kind="stable")[: self.max_features]])
        delta = np.zeros_like(self.delta)
        if active.size:
            model = ElasticNet(
                alpha=self.alpha, l1_ratio=self.l1_ratio, warm_start=True, max_iter=300, tol=1e-3, selection="cyclic"
            )
            model.coef_ = np.asfortranarray(warm[active])  # warm start from the last correction
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a warm start that stops at max_iter is still a better correction
                model.fit(X[:, active], target, sample_weight=weight)
            delta[active] = model.coef_
            intercept = float(model.intercept_)
        else:
            intercept = float(np.average(target, weights=weight))
        fitted = self.predict(rows, (delta, intercept))
        mse = float(np.average((np.asarray(rate) - fitted) ** 2, weights=weight))
        return (
            delta,
            intercept,
            {
                "n_rows": int(rows.size),
                "n_features": int(active.size),
                "n_nonzero": int(np.count_nonzero(delta)),
                "train_mse": mse,
            },
        )

    def set_correction(self, delta: np.ndarray, intercept: float) -> None:
        """Use the correction ``(delta, intercept)`` (from :meth:`fit_correction`) from now on."""
        self.delta, self.delta_intercept = np.asarray(delta, dtype=np.float64), float(intercept)

    def state_arrays(self) -> dict[str, np.ndarray]:
        """The refitted correction (what differs from the offline fit), as arrays."""
        return {
            "proxy.delta": self.delta.copy(),
            "proxy.delta_intercept": np.array([self.delta_intercept]),
            "proxy.residual_var": np.array([self.residual_var]),
        }

    def load_state_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore :meth:`state_arrays`."""
        delta = np.asarray(arrays["proxy.delta"], dtype=np.float64)
        if delta.shape != self.delta.shape:
            raise RowMismatchError(
                f"The saved proxy correction has {delta.shape[0]} weights, this proxy "
                f"{self.delta.shape[0]}. Load a state saved with the same features, or start "
                "a new selector."
            )
        self.delta = delta.copy()
        self.delta_intercept = float(np.asarray(arrays["proxy.delta_intercept"]).reshape(-1)[0])
        self.residual_var = float(np.asarray(arrays["proxy.residual_var"]).reshape(-1)[0])
