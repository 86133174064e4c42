"""Linear probes on SAE features: a quality probe and an ElasticNet difficulty proxy (SAERL §1, 2).

Both are fit-then-map estimators: ``fit`` on a labelled dataset (or a CSR matrix and labels), then
``dataset.map(probe, batched=True)`` adds their columns. They share one linear form,
``score = transform(X) @ coef_ + intercept_``, computed by hf_saerl itself (not by a stored sklearn
object), so a reloaded probe predicts bit-identically.

Metrics in ``metrics_`` are computed on out-of-fold predictions (shuffled, seeded folds). The quality
probe's come from ``cross_val_predict``. The difficulty probe's come from the fit itself
(:class:`~hf_saerl.estimators.elastic_net.ElasticNetPathCV`): by default alpha and l1_ratio are chosen once
by the folds, and the folds are scored at that choice. That is slightly optimistic, and ``metrics_["cv_protocol"]``
says so; ``cv_protocol="nested"`` repeats the search inside each fold. Label-free transform statistics
(``maxabs``/``std`` steps) are learnt once on all rows before the folds. ``metrics_["warnings"]`` says when a
fit looks useless (constant, or below chance out of fold); it is also logged and shown on the model card.

The features are the user's choice (``feature_set=``): ``"sae"`` (the default) reads the SAE columns;
``"raw"`` reads a dense column of pooled raw activations (``raw_column=``, e.g. the encoder's
``columns=FeatureColumns(activations=...)``) and standardises it with the mean and scale learnt at fit (``raw_mean_``,
``raw_scale_``, saved with the probe); ``"both"`` puts the transformed SAE latents and the standardised raw
activations side by side, ``coef_`` holding the ``d_sae`` SAE weights first, then the raw ones. Every choice
predicts through ``dataset.map(probe, batched=True)`` with the same output columns. To see which choice is
worth it, :func:`~hf_saerl.estimators.evaluation.compare_features` fits them (and a prompt-length baseline)
side by side on the same folds.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from typing import Any, ClassVar, cast

import numpy as np
import scipy.sparse as sp
from scipy.special import expit
from sklearn.base import clone
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict

from ..core.columns import DIFFICULTY, PASS_RATE_PRED, QUALITY, SAE_INDICES, SAE_N_TOKENS, SAE_VALUES
from ..core.files import take_array
from ..core.validation import check_choice, check_fitted, check_real, is_fitted
from ..errors import BundleError, InvalidParameterError, NonFiniteError, ParameterTypeError, WidthMismatchError
from .base import SAEEstimator, card_template
from .elastic_net import PROTOCOLS, ElasticNetPathCV
from .inputs import clean_labels, dense_column, is_matrix, read_labels, read_weights, warn_empty_rows
from .metrics import classification_metrics, regression_metrics, useless_fit_warnings
from .selection import (
    band_mask,
    check_band,
    check_probability_threshold,
    check_threshold_args,
    column_scores,
    select_rows,
    threshold_mask,
)
from .transforms import FeatureTransform, TransformSpec, fit_standard_scale, standardise

logger = logging.getLogger(__name__)

__all__ = ["FEATURE_SETS", "DifficultyProbe", "QualityProbe"]

#: What a probe can fit on (``feature_set=``), and what each choice reads.
FEATURE_SETS: dict[str, str] = {
    "sae": "the SAE latents (indices_column / values_column), with the probe's transform",
    "raw": "the pooled raw activations of raw_column, standardised",
    "both": "the transformed SAE latents and the standardised raw activations side by side",
}
_RAW_FIX = (
    "Encode the dataset with SAEEncoder(..., columns=FeatureColumns(activations=<column>)) to write the pooled raw "
    "activations, "
    "or pass raw_column= naming the column that holds them."
)

_PASS_RATE_WORDS = ("pass", "solve", "success", "accuracy")
_DIFFICULTY_WORDS = ("difficult", "hard", "level")


class _LinearProbe(SAEEstimator):
    """Shared fitting, cross-validation, prediction and state of the two probes."""

    _array_attributes: ClassVar[dict[str, str]] = {"coef": "coef_", "intercept": "intercept_"}
    feature_set: str
    raw_column: str | None

    def fit(
        self, X: Any, y: Any = None, *, label_column: str | None = None, n_tokens: Any = None, sample_weight: Any = None
    ) -> _LinearProbe:
        """Fit on ``X`` (a Dataset / batch dict with the input columns, or a matrix) and labels.

        What ``X`` may be depends on ``feature_set``: with ``"sae"``, a dataset with the SAE columns or an
        ``(n, d_sae)`` matrix; with ``"raw"``, a dataset with ``raw_column`` or the ``(n, width)`` matrix of raw
        activations itself; with ``"both"``, a dataset with both, or a pair ``(sae_matrix, raw_matrix)``.
        Comparing feature sets (and prompt length) is :func:`~hf_saerl.estimators.evaluation.compare_features`.

        Args:
            X: the features.
            y: labels as an array-like (with a matrix), or
            label_column: the dataset column holding the labels. Rows whose label is None/NaN are
                dropped with a warning (counted in ``metrics_["n_dropped_labels"]``).
            n_tokens: token counts per row, for a ``length`` step with ``by="tokens"`` on a matrix
                (a dataset supplies its ``sae_n_tokens`` column).
            sample_weight: how much evidence each label carries: an array (one non-negative weight per row), or
                a dataset column, e.g. ``"n_samples"`` (the completions a pass rate was measured on: 0 of 32
                weighs 16 times 0 of 2). Used by the fit and its out-of-fold scoring.

        Returns:
            self
        """
        self._validate_params()
        features, raw, n_tokens = self._read_inputs(X, n_tokens, fitted=False)
        self.__dict__.pop("cv_predictions_", None)  # set only when cv is: a refit must not keep the last fit's
        name = label_column or "y"
        rows = X[0] if _is_pair(X) else X  # a pair's rows are its SAE matrix's
        labels, keep, n_dropped = clean_labels(read_labels(rows, y, label_column), name)
        weights = read_weights(rows, sample_weight, keep)
        if n_dropped:
            features = None if features is None else features[keep]
            raw = None if raw is None else raw[keep]
            n_tokens = None if n_tokens is None else n_tokens[keep]
        policy = "they are kept, and the probe scores them by its intercept alone."
        n_empty = warn_empty_rows(features, policy) if raw is None else 0
        y_fit = self._encode_target(labels, name)
        self._check_cv_size(y_fit)
        Xt = self._fit_features(features, raw, n_tokens)
        if raw is not None:  # rows with no feature at all (no latent and every raw value at its mean)
            n_empty = warn_empty_rows(Xt, policy)
        # Latents that never fire in the training rows get a zero coefficient under any of these penalties,
        # so the models are fitted on the active columns only (much faster for wide SAEs, same solution).
        active = np.unique(cast(Any, Xt).indices) if sp.issparse(Xt) else np.arange(Xt.shape[1])
        if active.size == 0:
            raise InvalidParameterError(
                f"None of the {len(y_fit)} labelled rows has an active SAE latent (after the transform "
                f"{self.transform_.steps_}), so there is nothing to fit on. Check the encoder output (empty "
                "sae_indices: empty or truncated texts, top_k) or a 'binarize' threshold that removes every value."
            )
        width = Xt.shape[1]  # the SAE latents, the raw activations, or both side by side
        Xt = Xt[:, active]
        fit_params = {} if weights is None else {"sample_weight": weights}
        model = self._make_model().fit(Xt, y_fit, **fit_params)
        self.coef_ = np.zeros(width, dtype=np.float64)
        self.coef_[active] = np.asarray(model.coef_, dtype=np.float64).reshape(-1)
        self.intercept_ = np.asarray(model.intercept_, dtype=np.float64).reshape(1)
        self.n_features_in_ = width
        self.metrics_ = {
            "n_dropped_labels": n_dropped,
            "n_empty_rows": n_empty,
            "n_train": len(y_fit),
            "weighted": weights is not None,
            **self._fitted_metrics(model),
        }
        if self.cv is not None:
            self.metrics_.update(self._cv_metrics(model, Xt, y_fit, fit_params))
        self.metrics_["warnings"] = useless_fit_warnings(self.coef_, self.metrics_)
        for message in self.metrics_["warnings"]:
            logger.warning(
                "%s fit looks useless: %s. Check the labels and features (compare_features shows raw "
                "activations and length side by side) before using it.",
                type(self).__name__,
                message,
            )
        return self

    # ------------------------------------------------------------------ the feature sets
    def _read_inputs(
        self, data: Any, n_tokens: Any, *, fitted: bool
    ) -> tuple[Any, np.ndarray | None, np.ndarray | None]:
        """``(sae, raw, n_tokens)`` for the feature set (the fitted one with ``fitted=True``): the SAE CSR (None for
        ``"raw"``), the raw activations as float64 (None for ``"sae"``), both validated."""
        feature_set = getattr(self, "feature_set_", "sae") if fitted else self.feature_set
        if feature_set == "sae":
            X, n_tokens = self._read_features(data, n_tokens, fitted=fitted)
            return X, None, n_tokens
        name = type(self).__name__
        if feature_set == "raw":
            if _is_pair(data):
                raise InvalidParameterError(
                    f"This {name} has feature_set='raw': it reads the raw activations alone, not a pair of matrices. "
                    "Pass the (n, width) raw activation matrix (or a dataset with raw_column), or use "
                    "feature_set='both'."
                )
            if not fitted:
                self.sae_identity_ = None  # no SAE columns are read, so no SAE is recorded
            return None, self._read_raw(data, fitted), n_tokens
        if _is_pair(data):
            sae_data, raw_data = data
        elif is_matrix(data):
            raise InvalidParameterError(
                f"This {name} has feature_set='both': it needs the SAE latents and the raw activations, but got one "
                f"matrix of shape {data.shape}. Pass a dataset (or batch dict) with the SAE columns and raw_column, "
                "or a pair (sae_matrix, raw_matrix)."
            )
        else:
            sae_data = raw_data = data
        X, n_tokens = self._read_features(sae_data, n_tokens, fitted=fitted)
        raw = self._read_raw(raw_data, fitted)
        if raw.shape[0] != X.shape[0]:
            raise InvalidParameterError(
                f"The SAE matrix has {X.shape[0]} rows but the raw activation matrix {raw.shape[0]}; pass the same "
                "rows in both (one per example, in the same order)."
            )
        return X, raw, n_tokens

    def _read_raw(self, data: Any, fitted: bool) -> np.ndarray:
        """The raw activations of a dataset's ``raw_column`` (Arrow-native in ``Dataset.map``) or of a matrix, as
        float64; checked 2-D, finite and (once fitted) as wide as at fit."""
        name = type(self).__name__
        if is_matrix(data):
            raw = np.asarray(cast(Any, data).toarray() if sp.issparse(data) else data)
            where = "The raw activations"
            if raw.ndim != 2:
                raise InvalidParameterError(
                    f"{name} needs a 2-D raw activation matrix (n_rows, width); got shape {raw.shape}. Pass one "
                    "pooled activation vector per row."
                )
            raw = raw.astype(np.float64)
        else:
            if self.raw_column is None:
                raise InvalidParameterError(
                    f"{name}(feature_set={self.feature_set!r}) reads the raw activations from a dataset column, but "
                    "raw_column=None. Pass raw_column='<column>' naming the column of pooled raw activations (e.g. "
                    "the column SAEEncoder(columns=FeatureColumns(activations=...)) writes), or feature_set='sae' to fit on the SAE latents alone."
                )
            raw = dense_column(data, self.raw_column, _RAW_FIX)
            where = f"The raw activations (column {self.raw_column!r})"
        if fitted:
            width = self.raw_mean_.shape[0]
            if raw.shape[0] == 0:
                raw = raw.reshape(0, width)
            if raw.shape[1] != width:
                raise WidthMismatchError(
                    f"{where} are {raw.shape[1]} wide, but this {name} was fitted on raw activations {width} wide. "
                    f"Use the activations of the model and hook it was fitted on (width {width}), or fit a new "
                    f"{name} on these (width {raw.shape[1]})."
                )
        elif raw.shape[1] == 0:
            raise InvalidParameterError(
                f"{where} have no columns (width 0); there is nothing to fit on. Pass the pooled activations, or "
                "feature_set='sae'."
            )
        finite = np.isfinite(raw)
        if not finite.all():
            raise NonFiniteError(
                f"{where} hold {int((~finite).sum())} NaN or infinite value(s); re-encode those rows "
                f"(check the model's dtype for overflow) or drop them before using this {name}."
            )
        return raw

    def _fit_features(self, features: Any, raw: np.ndarray | None, n_tokens: np.ndarray | None) -> Any:
        """Fit the feature set's transform (and the raw standardisation) and return the training matrix: the
        transformed SAE CSR, the standardised raw activations (dense), or both side by side (CSR)."""
        self.feature_set_ = self.feature_set
        for attribute in ("raw_mean_", "raw_scale_"):
            self.__dict__.pop(attribute, None)
        if raw is None:
            return self._fit_transform(features, n_tokens)
        self.raw_mean_, self.raw_scale_ = fit_standard_scale(raw)
        standardised = standardise(raw, self.raw_mean_, self.raw_scale_)
        if features is None:
            self.transform_ = FeatureTransform(None)  # the SAE transform has no latents to act on
            return standardised
        Xt = self._fit_transform(features, n_tokens)
        return sp.hstack([sp.csr_matrix(Xt), sp.csr_matrix(standardised)], format="csr")

    def _features_for_predict(self, data: Any, n_tokens: Any = None, method: str = "predict") -> Any:
        """Fitted check (naming ``method``) + read + transform: the SAE CSR, the standardised raw matrix, or the
        pair of them (``"both"``; :meth:`_linear` splits ``coef_`` instead of stacking)."""
        check_fitted(self, method)
        features, raw, n_tokens = self._read_inputs(data, n_tokens, fitted=True)
        if raw is None:
            return self.transform_.transform(features, n_tokens)
        standardised = standardise(raw, self.raw_mean_, self.raw_scale_)
        if features is None:
            return standardised
        return self.transform_.transform(features, n_tokens), standardised

    def _input_columns(self) -> tuple[str, ...]:
        feature_set = getattr(self, "feature_set_", self.feature_set)
        sae = (self.indices_column, self.values_column) if feature_set != "raw" else ()
        return sae + ((self.raw_column,) if feature_set != "sae" and self.raw_column else ())

    def _input_width(self) -> int:
        return int(self.coef_.shape[0])

    # ------------------------------------------------------------------ subclass hooks
    def _validate_params(self) -> None:
        self._validate_common()
        check_choice(
            "feature_set",
            self.feature_set,
            tuple(FEATURE_SETS),
            "'sae' fits on the SAE latents (the default), 'raw' on the raw activations of raw_column, 'both' on "
            "the two side by side.",
        )
        if self.raw_column is not None and not (isinstance(self.raw_column, str) and self.raw_column):
            raise ParameterTypeError(
                f"raw_column must be a column name (a non-empty str) or None; got {self.raw_column!r}. Pass the "
                "name of the column of pooled raw activations, or None with feature_set='sae'."
            )
        cv = self.cv
        if cv is not None and (isinstance(cv, bool) or not isinstance(cv, (int, np.integer)) or cv < 2):
            raise InvalidParameterError(
                f"cv must be an int >= 2 (number of folds) or None (skip the cross-validated metrics); got {cv!r}."
            )

    def _is_classifier(self) -> bool:
        return False

    def _encode_target(self, labels: np.ndarray, name: str) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _make_model(self) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def _fitted_metrics(self, model: Any) -> dict[str, Any]:
        return {}

    # ------------------------------------------------------------------ cross-validation
    def _splitter(self) -> Any:
        kind = StratifiedKFold if self._is_classifier() else KFold
        return kind(self.cv, shuffle=True, random_state=self.random_state)

    def _check_cv_size(self, y: np.ndarray) -> None:
        cv = self.cv
        if cv is None:
            return
        if self._is_classifier():
            values, counts = np.unique(y, return_counts=True)
            if counts.min() < cv:
                smallest = self.classes_.tolist()[values[counts.argmin()]]
                raise InvalidParameterError(
                    f"cv={cv} needs at least {cv} labelled rows of each class; class {smallest!r} has "
                    f"{counts.min()} (of {len(y)} rows). Label more rows, lower cv (e.g. cv={max(2, counts.min())}), "
                    "or pass cv=None to skip the cross-validated metrics."
                )
        elif len(y) < 2 * cv:
            raise InvalidParameterError(
                f"cv={cv} needs at least {2 * cv} labelled rows (2 per fold); got {len(y)}. Label more rows, lower cv "
                f"(e.g. cv={max(2, len(y) // 2)}), or pass cv=None to skip the cross-validated metrics."
            )

    def _cv_metrics(self, model: Any, Xt: Any, y: np.ndarray, fit_params: dict[str, Any]) -> dict[str, Any]:
        """Out-of-fold metrics; the predictions (probability of the good class for a classifier) are kept as
        ``cv_predictions_`` (label scale, in the order of the labelled rows) for plots and audits."""
        method = "predict_proba" if self._is_classifier() else "predict"
        oof = cross_val_predict(clone(model), Xt, y, cv=self._splitter(), method=method, params=fit_params)
        self.cv_predictions_ = np.asarray(oof[:, 1] if oof.ndim == 2 else oof, dtype=np.float64)
        scores = classification_metrics if self._is_classifier() else regression_metrics
        return {"cv_folds": int(self.cv), **scores(y, self.cv_predictions_)}

    # ------------------------------------------------------------------ prediction
    def decision_function(self, X: Any, n_tokens: Any = None) -> np.ndarray:
        """The linear score ``transform(X) @ coef_ + intercept_`` (float64)."""
        return self._score(X, n_tokens, "decision_function")

    def _score(self, X: Any, n_tokens: Any, method: str) -> np.ndarray:
        return self._linear(self._features_for_predict(X, n_tokens, method=method))

    def _columns(self, X: Any, n_tokens: Any, method: str) -> dict[str, np.ndarray]:
        return self._predict_columns(self._features_for_predict(X, n_tokens, method=method))

    def _linear(self, Xt: Any) -> np.ndarray:
        if isinstance(Xt, tuple):  # feature_set="both": SAE weights first, then the raw ones
            sae, raw = Xt
            width = sae.shape[1]
            split = np.asarray(sae @ self.coef_[:width], dtype=np.float64).reshape(-1) + raw @ self.coef_[width:]
            return split + self.intercept_[0]
        return np.asarray(Xt @ self.coef_, dtype=np.float64).reshape(-1) + self.intercept_[0]

    # ------------------------------------------------------------------ state
    def _all_arrays(self) -> dict[str, np.ndarray]:
        arrays = super()._all_arrays()
        if getattr(self, "feature_set_", "sae") != "sae":
            arrays.update(raw_mean=self.raw_mean_, raw_scale=self.raw_scale_)
        return arrays

    def _restore(self, arrays: dict[str, np.ndarray], source: str) -> None:
        if self.feature_set not in FEATURE_SETS:
            raise BundleError(
                f"{source}: saved feature_set={self.feature_set!r} is not one of {list(FEATURE_SETS)}; the "
                "config is corrupt. Save the probe again."
            )
        self.feature_set_ = self.feature_set  # a bundle without one (saved before 0.2) is an SAE probe
        width = self.d_sae
        if self.feature_set != "sae":
            mean = take_array(arrays, "raw_mean", None, source, dtype=np.float64, finite=True)
            if mean.ndim != 1 or mean.size == 0:
                raise BundleError(
                    f"Array 'raw_mean' in {source} has shape {mean.shape}, expected (width,) with width > 0; the "
                    "file is corrupt. Save the probe again."
                )
            scale = take_array(arrays, "raw_scale", mean.shape, source, dtype=np.float64, finite=True)
            if not (scale > 0).all():
                raise BundleError(
                    f"Array 'raw_scale' in {source} holds {int((scale <= 0).sum())} value(s) <= 0; a standard "
                    "deviation scale is positive, so the file is corrupt. Save the probe again."
                )
            self.raw_mean_, self.raw_scale_ = mean, scale
            width = mean.size + (self.d_sae if self.feature_set == "both" else 0)
        self.coef_ = take_array(arrays, "coef", (width,), source, dtype=np.float64, finite=True)
        self.intercept_ = take_array(arrays, "intercept", (1,), source, dtype=np.float64, finite=True)


def _is_pair(data: Any) -> bool:
    """Whether ``data`` is a ``(sae_matrix, raw_matrix)`` pair (a probe with ``feature_set="both"``)."""
    return isinstance(data, tuple) and len(data) == 2 and all(is_matrix(part) for part in data)


# ====================================================================== QualityProbe
_QUALITY_CARD = card_template(
    "hf_saerl quality probe",
    "A linear probe on sparse-autoencoder (SAE) features that scores post-training examples; higher is "
    "better. Fitted on binary good/bad labels it is a logistic regression and `quality` is the probability "
    "of the good class; fitted on real-valued scores it is a ridge regression and `quality` is the predicted "
    "score. Use it to filter noisy or off-distribution prompts (SAERL, arXiv 2605.27354).",
)


class QualityProbe(_LinearProbe, tags=["quality-probe"], model_card_template=_QUALITY_CARD):
    """A linear quality probe on SAE features: adds a float32 ``quality`` column (higher is better).

    ``task="auto"`` picks the model from the labels: booleans, strings, or exactly two distinct values
    mean **classification** (``LogisticRegression(C)``, ``quality`` = probability of the good class);
    other numbers mean **regression** (``Ridge(alpha)``, ``quality`` = predicted score). The good class is
    ``True`` / ``1`` for boolean or 0/1 labels; name it with ``positive_label=`` otherwise.

    Args:
        d_sae: width of the SAE (number of latents).
        task: ``"auto"``, ``"classification"`` or ``"regression"``.
        transform: feature transform steps (see :mod:`hf_saerl.estimators.transforms`); default ``("log1p",)``
            compresses the heavy-tailed activations and keeps each latent's value independent of the others.
        C: inverse L2 strength of the logistic regression.
        alpha: L2 strength of the ridge regression.
        class_weight: passed to ``LogisticRegression`` (e.g. ``"balanced"``).
        positive_label: the label of the good class, when it cannot be inferred.
        cv: folds for the out-of-fold metrics (AUROC, or Pearson/Spearman/R²); ``None`` skips them.
        max_iter, random_state: solver iterations; seed of the folds.
        indices_column, values_column, n_tokens_column: input columns.
        output_column: the column written by ``probe(batch)``.
        feature_set: what the probe fits on: ``"sae"`` (default: the SAE latents), ``"raw"`` (the pooled raw
            activations of ``raw_column``, standardised; ``transform`` is then unused) or ``"both"`` (side by
            side). See the module docstring.
        raw_column: the dense column of pooled raw activations (e.g. the encoder's ``columns.activations``),
            needed by ``"raw"`` / ``"both"`` on a dataset; no default is guessed.

    Fitted attributes: ``coef_``, ``intercept_``, ``task_``, ``classes_`` (``[bad, good]``, classifier
    only), ``transform_``, ``n_features_in_``, ``metrics_``, ``feature_set_``, ``raw_mean_`` and ``raw_scale_``
    (the raw standardisation; ``"raw"`` / ``"both"`` only), and ``cv_predictions_`` (the out-of-fold
    predictions behind the metrics, one per labelled row; when ``cv`` is set; not saved by ``save_pretrained``).

    Example:
        >>> import numpy as np, scipy.sparse as sp
        >>> from datasets import Dataset
        >>> X = sp.random(200, 50, density=0.2, random_state=0, format="csr", dtype=np.float32)
        >>> X.data += 1.0                                 # activations of the firing latents
        >>> good = X[:, :3].sum(axis=1).A1 > 0           # rows firing latents 0-2 are "good"
        >>> probe = QualityProbe(d_sae=50).fit(X, good)
        >>> probe.metrics_["auroc"] > 0.9
        True
        >>> ds = Dataset.from_dict({"sae_indices": [[0, 7], [9]], "sae_values": [[2.0, 1.0], [1.0]]})
        >>> scores = ds.map(probe, batched=True)["quality"]
        >>> scores[0] > 0.5 > scores[1]
        True
        >>> len(probe.filter(ds, threshold=0.5))
        1

        On raw activations instead (a dense column, standardised with the mean and scale learnt at fit):

        >>> acts = np.random.default_rng(0).normal(size=(200, 16))
        >>> acts[:, 0] += 2.0 * good                      # one direction of the residual stream carries it
        >>> train = Dataset.from_dict({"mean_act": acts.tolist(), "good": good.tolist()})
        >>> raw_probe = QualityProbe(d_sae=50, feature_set="raw", raw_column="mean_act").fit(train, label_column="good")
        >>> raw_probe.metrics_["auroc"] > 0.8, raw_probe.coef_.shape, raw_probe.raw_mean_.shape
        (True, (16,), (16,))
        >>> mapped = train.map(raw_probe, batched=True)["quality"]
        >>> bool(np.allclose(mapped, raw_probe.predict_quality(acts)))  # a direct call takes the matrix itself
        True
    """

    kind = "quality_probe"
    _state_keys = ("task_", "classes_")

    def __init__(
        self,
        d_sae: int,
        task: str = "auto",
        transform: TransformSpec = ("log1p",),
        C: float = 1.0,
        alpha: float = 1.0,
        class_weight: Any = None,
        positive_label: Any = None,
        cv: int | None = 5,
        max_iter: int = 1000,
        random_state: int | None = 0,
        indices_column: str = SAE_INDICES,
        values_column: str = SAE_VALUES,
        n_tokens_column: str = SAE_N_TOKENS,
        output_column: str = QUALITY,
        feature_set: str = "sae",
        raw_column: str | None = None,
    ) -> None:
        self._store_params(locals())

    def _validate_params(self) -> None:
        super()._validate_params()
        check_choice("task", self.task, ("auto", "classification", "regression"))
        for name in ("C", "alpha"):
            check_real(
                name, getattr(self, name), f"Pass a positive, finite {name}, e.g. {name}=1.0.", low=0.0, low_open=True
            )

    def _is_classifier(self) -> bool:
        return self.task_ == "classification"

    def _encode_target(self, labels: np.ndarray, name: str) -> np.ndarray:
        values = np.unique(labels)
        task = self.task
        if task == "auto":
            task = "classification" if labels.dtype.kind in "bOUS" or len(values) == 2 else "regression"
        self.task_ = task
        if task == "regression":
            if labels.dtype.kind not in "iuf":
                raise InvalidParameterError(
                    f"task='regression' needs numeric labels; {name!r} holds {labels.dtype} "
                    "values. Map them to numbers, or use task='classification'."
                )
            if len(values) < 2:
                raise InvalidParameterError(
                    f"All {len(labels)} labels in {name!r} equal {values.tolist()[0]!r}: "
                    "nothing to learn. Provide rows with different scores."
                )
            self.classes_ = None
            return labels.astype(np.float64)
        if len(values) < 2:
            raise InvalidParameterError(
                f"Label column {name!r} has a single class ({values.tolist()[0]!r}) among {len(labels)} labelled rows; "
                "a quality classifier needs both good and bad examples. Add rows of the other class, or fit "
                "real-valued scores with task='regression'."
            )
        if len(values) > 2:
            raise InvalidParameterError(
                f"QualityProbe is a binary classifier, but {name!r} has {len(values)} classes {values.tolist()[:10]}. "
                "Map the labels to good/bad first, or fit numeric scores with task='regression'."
            )
        if self.positive_label is not None:
            if self.positive_label not in values.tolist():
                raise InvalidParameterError(
                    f"positive_label={self.positive_label!r} is not among the labels "
                    f"{values.tolist()}; pass one of them, or None for 0/1 or boolean labels."
                )
            good = self.positive_label
        elif labels.dtype.kind == "b" or set(values.tolist()) <= {0, 1}:
            good = values[1]
        else:
            raise InvalidParameterError(
                f"Cannot tell which of the classes {values.tolist()} is the good one; pass "
                "positive_label=, or task='regression' if these are scores."
            )
        bad = values[0] if values[1] == good else values[1]
        self.classes_ = np.array([bad, good])
        return (labels == good).astype(np.int64)

    def _make_model(self) -> Any:
        from sklearn.linear_model import LogisticRegression, Ridge

        if self.task_ == "classification":
            return LogisticRegression(
                C=self.C, class_weight=self.class_weight, max_iter=self.max_iter, random_state=self.random_state
            )
        return Ridge(alpha=self.alpha)

    # ------------------------------------------------------------------ prediction
    def predict_quality(self, X: Any, n_tokens: Any = None) -> np.ndarray:
        """The float32 ``quality`` of each row of ``X`` (dataset, batch dict or matrix)."""
        return self._columns(X, n_tokens, "predict_quality")[self.output_column]

    def predict_proba(self, X: Any, n_tokens: Any = None) -> np.ndarray:
        """``(n, 2)`` probabilities of ``classes_`` = ``[bad, good]`` (classifier only), float64."""
        check_fitted(self, "predict_proba")
        if self.task_ != "classification":
            raise AttributeError(
                "predict_proba needs a classifier probe; this QualityProbe was fitted as a "
                "regression. Use predict_quality, or fit on good/bad labels."
            )
        p = expit(self._score(X, n_tokens, "predict_proba"))
        return np.stack([1.0 - p, p], axis=1)

    def predict(self, X: Any, n_tokens: Any = None) -> np.ndarray:
        """Class labels (classifier, good when probability >= 0.5) or predicted scores (regression)."""
        z = self._score(X, n_tokens, "predict")
        return cast(Any, self.classes_)[(z >= 0).astype(int)] if self.task_ == "classification" else z

    def _predict_columns(self, Xt: Any) -> dict[str, np.ndarray]:
        z = self._linear(Xt)
        quality = expit(z) if self.task_ == "classification" else z
        return {self.output_column: quality.astype(np.float32)}

    def _output_dtypes(self) -> dict[str, str]:
        return {self.output_column: "float32"}

    def filter(
        self,
        dataset: Any,
        threshold: float | None = None,
        drop_fraction: float | None = None,
        *,
        return_stats: bool = False,
    ) -> Any:
        """Keep the rows with ``quality >= threshold``, or drop the ``drop_fraction`` lowest-quality rows.

        Exactly one of ``threshold`` / ``drop_fraction`` is required. With ``drop_fraction`` exactly
        ``round(drop_fraction * n)`` rows are dropped (ties broken by row order). Quality is computed
        from the SAE columns (or read from ``output_column`` when the SAE columns are gone).

        Returns:
            The filtered ``Dataset``; with ``return_stats=True``, ``(dataset, stats)`` where ``stats``
            holds ``n_rows``, ``n_kept``, ``n_dropped`` and the ``threshold`` applied. The counts are
            also logged at INFO level by the ``hf_saerl.estimators.probes`` logger.
        """
        check_threshold_args(threshold, drop_fraction)
        if threshold is not None and getattr(self, "task_", None) == "classification":
            check_probability_threshold("threshold", threshold, "this QualityProbe")
        keep, threshold = threshold_mask(column_scores(self, dataset, self.output_column), threshold, drop_fraction)
        return select_rows(
            dataset, keep, {"threshold": threshold}, what="QualityProbe.filter", return_stats=return_stats, log=logger
        )

    def _restore(self, arrays: dict[str, np.ndarray], source: str) -> None:
        super()._restore(arrays, source)
        if self.task_ not in ("classification", "regression"):
            raise BundleError(
                f"{source}: saved task_={self.task_!r} is not 'classification' or 'regression'; the file "
                "is corrupt. Save the probe again."
            )
        if self.task_ == "classification":
            if not isinstance(self.classes_, list) or len(self.classes_) != 2:
                raise BundleError(
                    f"{source}: a classifier probe needs two saved classes_; found {self.classes_!r}. "
                    "The file is corrupt: save the probe again."
                )
            self.classes_ = np.asarray(self.classes_)


# ====================================================================== DifficultyProbe
_DIFFICULTY_CARD = card_template(
    "hf_saerl difficulty probe",
    "An ElasticNet regression from sparse-autoencoder (SAE) features to example difficulty, trained on a "
    "small labelled subset. Trained on pass rates it outputs `difficulty` = 1 − predicted pass rate in "
    "[0, 1] and the predicted pass rate `pass_rate_pred`, so prompts can be ordered easy to hard or "
    "selected around a 50% pass rate (SAERL, arXiv 2605.27354).",
)


class DifficultyProbe(_LinearProbe, tags=["difficulty-probe"], model_card_template=_DIFFICULTY_CARD):
    """An ElasticNet difficulty proxy on SAE features (adds ``difficulty``, and ``pass_rate_pred``).

    What the label means (``label=``):

    * ``"pass_rate"``: labels are pass rates in [0, 1]. ``pass_rate_pred`` is the prediction clipped
      to [0, 1] and ``difficulty = 1 - pass_rate_pred`` exactly (both float32).
      :meth:`select_band` keeps the rows whose predicted pass rate lies in a band (e.g. near 50%).
    * ``"difficulty"``: labels are difficulties; ``difficulty`` is the prediction, clipped to [0, 1]
      only when every label was in [0, 1]. No ``pass_rate_pred`` column.
    * ``"auto"`` (default): a label column whose name mentions pass/solve/success/accuracy is a
      pass rate, one mentioning difficult/hard/level a difficulty; otherwise labels all in [0, 1]
      are taken as pass rates (with a warning, as the SAERL paper trains on pass rates) and others
      as difficulties.

    ``alpha`` and ``l1_ratio`` are chosen by cross-validation with
    :class:`~hf_saerl.estimators.elastic_net.ElasticNetPathCV` (``n_alphas`` alphas per ``l1_ratio`` in the
    grid, ``cv`` shuffled folds, or 3 folds when ``cv=None``): one warm-started alpha path per fold, stopped
    ``patience`` alphas after the best one, on the latents that fire in at least ``min_rows`` labelled rows.
    10,000 rows of 16,384-wide top-64 codes fit in seconds. With the default ``cv_protocol="once"`` the
    out-of-fold metrics are the folds' predictions at the pair they chose (slightly optimistic; recorded in
    ``metrics_["cv_protocol"]``); ``"nested"`` repeats the search inside each fold (honest, about ``cv + 1``
    times the cost). Fix ``alpha`` and a single ``l1_ratio`` to fit a plain ``ElasticNet`` (the folds then
    only score it).

    A pass rate measured on 2 samples is weaker evidence than one measured on 32: ``fit(...,
    sample_weight="n_samples")`` weighs each row's squared error by its sample count (sklearn's weighted
    ``ElasticNet`` objective), in the fit, the alpha search and its validation error.

    Args:
        d_sae: width of the SAE.
        label: ``"auto"``, ``"pass_rate"`` or ``"difficulty"``.
        transform: feature transform steps; default ``("log1p",)``.
        alpha: fixed ElasticNet alpha, or None to search it.
        l1_ratio: a float, or a grid to search (default ``(0.5, 0.9)``).
        n_alphas: length of the alpha path searched per l1_ratio (log-spaced over three decades below
            the smallest alpha that zeroes every coefficient).
        cv: folds for the alpha search and the out-of-fold metrics; None skips the metrics.
        cv_protocol: ``"once"`` (default) or ``"nested"``: what the out-of-fold metrics are (see above).
        patience: stop an alpha path after this many alphas without a better validation error; None
            walks the whole grid.
        min_rows: fit only the latents that fire in at least this many labelled rows (the others get a
            zero coefficient); 1 keeps every latent that fires.
        max_iter, tol, random_state: ElasticNet solver and fold settings.
        n_jobs: kept for compatibility; the path search runs in one process.
        indices_column, values_column, n_tokens_column: input columns.
        difficulty_column, pass_rate_column: output columns.
        feature_set: ``"sae"`` (default), ``"raw"`` or ``"both"``; ``raw_column``: the dense column of pooled
            raw activations the last two read (as for :class:`QualityProbe`).

    Fitted attributes: ``coef_``, ``intercept_``, ``label_``, ``clip_``, ``alpha_``, ``l1_ratio_``,
    ``transform_``, ``n_features_in_``, ``metrics_`` (out-of-fold ``pearson``, ``spearman``, ``r2``,
    ``mae`` on the label scale, plus ``alpha``, ``l1_ratio``, ``n_nonzero_coef``, ``n_latents_fitted``,
    ``cv_protocol``, ``cv_protocol_note`` and ``warnings``), and ``cv_predictions_`` (the out-of-fold
    predictions behind them, one per labelled row; when ``cv`` is set; not saved), and with ``feature_set="raw"``
    / ``"both"`` ``feature_set_``, ``raw_mean_``, ``raw_scale_``. Which features are worth it (and the length
    baseline) is measured by :func:`~hf_saerl.estimators.evaluation.compare_features`.

    Example:
        >>> import numpy as np, scipy.sparse as sp
        >>> X = sp.random(300, 100, density=0.2, random_state=0, format="csr")
        >>> pass_rate = np.clip(0.5 + 0.5 * X[:, 0].toarray().ravel() - 0.5 * X[:, 1].toarray().ravel(), 0, 1)
        >>> probe = DifficultyProbe(d_sae=100, label="pass_rate", transform=None).fit(X, pass_rate)
        >>> probe.metrics_["spearman"] > 0.8, probe.metrics_["cv_protocol"]
        (True, 'once')
        >>> n_samples = np.random.default_rng(0).integers(2, 33, size=300)  # how many completions each rate saw
        >>> probe.fit(X, pass_rate, sample_weight=n_samples).metrics_["weighted"]
        True
        >>> cols = probe(X[:3])
        >>> bool(np.array_equal(cols["difficulty"], 1 - cols["pass_rate_pred"]))
        True
        >>> acts = np.random.default_rng(1).normal(size=(300, 8))   # pooled raw activations, one row each
        >>> both = DifficultyProbe(d_sae=100, label="pass_rate", transform=None, feature_set="both").fit((X, acts), pass_rate)
        >>> both.coef_.shape                                          # d_sae SAE weights, then 8 raw ones
        (108,)
        >>> both.predict_difficulty((X[:2], acts[:2])).shape
        (2,)
    """

    kind = "difficulty_probe"
    _state_keys = ("label_", "clip_", "alpha_", "l1_ratio_")

    def __init__(
        self,
        d_sae: int,
        label: str = "auto",
        transform: TransformSpec = ("log1p",),
        alpha: float | None = None,
        l1_ratio: float | Sequence[float] = (0.5, 0.9),
        n_alphas: int = 25,
        cv: int | None = 5,
        cv_protocol: str = "once",
        patience: int | None = 3,
        min_rows: int = 1,
        max_iter: int = 2000,
        tol: float = 1e-3,
        random_state: int | None = 0,
        n_jobs: int | None = None,
        indices_column: str = SAE_INDICES,
        values_column: str = SAE_VALUES,
        n_tokens_column: str = SAE_N_TOKENS,
        difficulty_column: str = DIFFICULTY,
        pass_rate_column: str = PASS_RATE_PRED,
        feature_set: str = "sae",
        raw_column: str | None = None,
    ) -> None:
        self._store_params(locals())

    def _validate_params(self) -> None:
        super()._validate_params()
        check_choice("label", self.label, ("auto", "pass_rate", "difficulty"))
        check_choice(
            "cv_protocol",
            self.cv_protocol,
            tuple(k for k in PROTOCOLS if k != "fixed"),
            "'once' scores the folds at the alpha they chose (fast), 'nested' repeats the search per fold.",
        )
        ratios = np.atleast_1d(np.asarray(self.l1_ratio, dtype=np.float64))
        if ratios.size == 0 or ((ratios < 0) | (ratios > 1)).any():
            raise InvalidParameterError(
                f"l1_ratio must be a float or a non-empty list of floats in [0, 1]; got {self.l1_ratio!r}."
            )

    def _encode_target(self, labels: np.ndarray, name: str) -> np.ndarray:
        if labels.dtype.kind not in "iufb":
            raise InvalidParameterError(
                f"DifficultyProbe needs numeric labels (pass rates or difficulties); {name!r} "
                f"holds {labels.dtype} values. Map them to numbers, or pick the right column."
            )
        y = labels.astype(np.float64)
        if np.ptp(y) == 0:
            raise InvalidParameterError(
                f"All {len(y)} labels in {name!r} equal {y[0]:g}: nothing to learn. Provide "
                "rows of different difficulty."
            )
        in_unit = bool(y.min() >= 0.0 and y.max() <= 1.0)
        label, lowered = self.label, name.lower()
        if label == "auto":
            if any(w in lowered for w in _PASS_RATE_WORDS):
                label = "pass_rate"
            elif any(w in lowered for w in _DIFFICULTY_WORDS):
                label = "difficulty"
            elif in_unit:
                label = "pass_rate"
                warnings.warn(
                    f"Treating the labels in {name!r} (all in [0, 1]) as pass rates: difficulty = 1 - predicted pass "
                    "rate. Pass label='difficulty' if they already are difficulties (or label='pass_rate' to "
                    "silence this warning).",
                    UserWarning,
                    stacklevel=4,
                )
            else:
                label = "difficulty"
        if label == "pass_rate" and not in_unit:
            raise InvalidParameterError(
                f"Pass rates must lie in [0, 1], but {name!r} ranges over [{y.min():g}, "
                f"{y.max():g}]. Pass label='difficulty' if these are difficulty scores."
            )
        self.label_ = label
        self.clip_ = in_unit
        return y

    def _l1_ratios(self) -> list[float]:
        return [float(r) for r in np.atleast_1d(np.asarray(self.l1_ratio, dtype=np.float64))]

    def _search_params(self) -> dict[str, Any]:
        """The ElasticNetPathCV settings of the probe (all but the folds)."""
        ratios = self._l1_ratios()
        inner = KFold(self.cv or 3, shuffle=True, random_state=self.random_state)  # nested: as before issue 12
        return {
            "l1_ratio": ratios if len(ratios) > 1 else ratios[0],
            "n_alphas": self.n_alphas,
            "alphas": None if self.alpha is None else [self.alpha],
            "patience": self.patience,
            "cv_protocol": self.cv_protocol,
            "inner_cv": inner,
            "tol": self.tol,
            "max_iter": self.max_iter,
            "random_state": self.random_state,
        }

    def _make_model(self) -> Any:
        searching = self.alpha is None or len(self._l1_ratios()) > 1
        if self.cv is not None:
            folds = self._splitter()  # the alpha search and the out-of-fold metrics share these folds
        else:
            folds = KFold(3, shuffle=True, random_state=self.random_state) if searching else None
        return ElasticNetPathCV(cv=folds, min_rows=self.min_rows, **self._search_params())

    def _cv_metrics(self, model: Any, Xt: Any, y: np.ndarray, fit_params: dict[str, Any]) -> dict[str, Any]:
        """The out-of-fold metrics of the folds the search already fitted (no refit)."""
        self.cv_predictions_ = np.asarray(model.cv_predictions_, dtype=np.float64)
        return {
            "cv_folds": int(self.cv),
            **regression_metrics(y, self.cv_predictions_),
            "cv_protocol": model.cv_protocol_,
            "cv_protocol_note": PROTOCOLS[model.cv_protocol_],
        }

    def _check_cv_size(self, y: np.ndarray) -> None:
        super()._check_cv_size(y)
        searching = self.alpha is None or len(self._l1_ratios()) > 1
        if self.cv is None and searching and len(y) < 3:
            raise InvalidParameterError(
                f"Choosing alpha/l1_ratio by cross-validation needs at least 3 labelled rows; "
                f"got {len(y)}. Pass a fixed alpha= and a single l1_ratio=."
            )

    def _fitted_metrics(self, model: Any) -> dict[str, Any]:
        self.alpha_ = float(model.alpha_ if hasattr(model, "alpha_") else model.alpha)
        self.l1_ratio_ = float(model.l1_ratio_ if hasattr(model, "l1_ratio_") else model.l1_ratio)
        return {
            "label": self.label_,
            "alpha": self.alpha_,
            "l1_ratio": self.l1_ratio_,
            "n_nonzero_coef": int(np.count_nonzero(model.coef_)),
            "n_latents_fitted": int(model.support_.size),
        }

    # ------------------------------------------------------------------ prediction
    def predict(self, X: Any, n_tokens: Any = None) -> np.ndarray:
        """The unclipped regression output on the label's scale (pass rate or difficulty), float64."""
        return self._score(X, n_tokens, "predict")

    def predict_difficulty(self, X: Any, n_tokens: Any = None) -> np.ndarray:
        """The float32 ``difficulty`` column for the rows of ``X``."""
        return self._columns(X, n_tokens, "predict_difficulty")[self.difficulty_column]

    def predict_pass_rate(self, X: Any, n_tokens: Any = None) -> np.ndarray:
        """The float32 predicted pass rate in [0, 1] (probes fitted on pass rates only)."""
        check_fitted(self, "predict_pass_rate")
        self._require_pass_rate("predict_pass_rate")
        return self._columns(X, n_tokens, "predict_pass_rate")[self.pass_rate_column]

    def _require_pass_rate(self, what: str) -> None:
        """A fitted probe must predict pass rates (an unfitted one is checked where it predicts)."""
        if is_fitted(self) and self.label_ != "pass_rate":
            raise InvalidParameterError(
                f"{what} needs a DifficultyProbe fitted on pass rates; this one predicts "
                f"difficulty labels directly. Use the {self.difficulty_column!r} column "
                "instead, or fit it with label='pass_rate'."
            )

    def _predict_columns(self, Xt: Any) -> dict[str, np.ndarray]:
        raw = self._linear(Xt)
        if self.label_ == "pass_rate":
            pass_rate = np.clip(raw, 0.0, 1.0).astype(np.float32)
            return {self.difficulty_column: np.float32(1.0) - pass_rate, self.pass_rate_column: pass_rate}
        difficulty = np.clip(raw, 0.0, 1.0) if self.clip_ else raw
        return {self.difficulty_column: difficulty.astype(np.float32)}

    def _output_dtypes(self) -> dict[str, str]:
        """The columns ``probe(batch)`` adds; before fitting, those of a probe on pass rates (the default)."""
        columns = {self.difficulty_column: "float32"}
        if not is_fitted(self) or self.label_ == "pass_rate":
            columns[self.pass_rate_column] = "float32"
        return columns

    def select_band(self, dataset: Any, low: float = 0.25, high: float = 0.75, *, return_stats: bool = False) -> Any:
        """Keep the rows whose predicted pass rate lies in ``[low, high]`` (the learnable ~50% band).

        Returns the filtered ``Dataset``, or ``(dataset, stats)`` with ``return_stats=True``
        (``n_rows``, ``n_kept``, ``n_dropped``, ``low``, ``high``; also logged at INFO level).
        """
        self._require_pass_rate("select_band")
        check_band(low, high)
        keep = band_mask(column_scores(self, dataset, self.pass_rate_column), low, high)
        return select_rows(
            dataset,
            keep,
            {"low": low, "high": high},
            what="DifficultyProbe.select_band",
            return_stats=return_stats,
            log=logger,
        )

    def _restore(self, arrays: dict[str, np.ndarray], source: str) -> None:
        super()._restore(arrays, source)
        if self.label_ not in ("pass_rate", "difficulty") or not isinstance(self.clip_, bool):
            raise BundleError(
                f"{source}: saved label_={self.label_!r} / clip_={self.clip_!r} are invalid; the file is "
                "corrupt. Save the probe again."
            )
