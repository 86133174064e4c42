"""Evaluating an estimator against other features: SAE latents beside raw activations, both, and prompt length.

Estimators estimate; comparisons live here, in the manner of scikit-learn's ``cross_validate``: each feature
set gets a fresh ``clone`` of the estimator, fitted on the same labelled rows with the same seeded folds, and
its out-of-fold metrics are returned side by side. A probe's ``"raw"`` / ``"both"`` side is the clone with that
``feature_set`` (the probe a user can fit and map), so the comparison scores exactly what would be used. The
feature sets (``features=``):

============ ==============================================================================================
``"sae"``    the SAE columns, with the estimator's own transform (always fitted: the others are its yardstick)
``"raw"``    a column of pooled raw activations (fixed-length float lists, e.g. ``SAEEncoder(..., columns=
             FeatureColumns(activations="sae_activations"))``), standardised
``"both"``   the transformed SAE latents and the standardised raw activations side by side
``"length"`` ``log1p(n_tokens)`` alone (probes only): the baseline a probe has to beat
============ ==============================================================================================

A probe that is not ahead of its length baseline is logged as a warning and listed in ``report["warnings"]``
(Kantamneni et al., ICML 2025, found SAE probes often do not beat raw activations; check before relying on one).

Example:
    >>> import numpy as np, scipy.sparse as sp
    >>> from hf_saerl import DifficultyProbe
    >>> rng = np.random.default_rng(0)
    >>> X = sp.random(200, 60, density=0.2, random_state=0, format="csr")
    >>> n_tokens = rng.integers(10, 400, 200)
    >>> pass_rate = np.clip(1.3 - 0.2 * np.log1p(n_tokens) + 0.3 * X[:, 0].toarray().ravel(), 0, 1)
    >>> data = {"sae_indices": [X[i].indices.tolist() for i in range(200)],
    ...         "sae_values": [X[i].data.tolist() for i in range(200)],
    ...         "sae_n_tokens": n_tokens.tolist(), "pass_rate": pass_rate.tolist()}
    >>> report = compare_features(DifficultyProbe(60, n_alphas=8), data, label_column="pass_rate")
    >>> sorted(report["sides"]), report["score"]
    (['length', 'sae'], 'spearman')
    >>> report["sides"]["length"]["spearman"] > 0.5          # length carries most of the signal here
    True
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.base import clone

from ..core.columns import column_names, read_column
from ..core.validation import check_choice, is_fitted
from ..errors import InvalidParameterError
from .inputs import is_matrix, read_dense, read_labels
from .transforms import FeatureTransform, fit_standard_scale, standardise

logger = logging.getLogger(__name__)

__all__ = ["FEATURE_SETS", "compare_features", "primary_score"]

#: The feature sets :func:`compare_features` can fit, and what each one is.
FEATURE_SETS: dict[str, str] = {
    "sae": "SAE latents (the estimator's transform)",
    "raw": "pooled raw activations (standardised)",
    "both": "SAE latents and raw activations side by side",
    "length": "log1p(n_tokens) alone",
}


def primary_score(metrics: dict[str, Any]) -> str | None:
    """The metric an estimator's comparison is ranked by: ``auroc`` (classifier), ``spearman`` (regression) or
    ``nmi`` (clusterer with reference labels); None when ``metrics`` hold none of them."""
    for key in ("auroc", "spearman", "nmi"):
        if metrics.get(key) is not None:
            return key
    return None


def compare_features(
    estimator: Any,
    data: Any,
    y: Any = None,
    *,
    label_column: str | None = None,
    raw_column: Any = None,
    features: Sequence[str] | None = None,
    n_tokens: Any = None,
    sample_weight: Any = None,
) -> dict[str, Any]:
    """Fit a clone of ``estimator`` on each feature set and return their fit-time metrics side by side.

    Args:
        estimator: a ``QualityProbe``, ``DifficultyProbe`` or ``SAEClusterer`` (fitted or not; it is cloned and
            left unchanged). Its ``cv`` and ``random_state`` give every feature set the same folds. When it is
            fitted and ``"sae"`` is not asked for, it stands for the SAE side (its label kind, cluster count and
            metrics are reused: fit it on the same rows), so the SAE model is not fitted twice.
        data: a Dataset / batch dict with the SAE columns (and the label, raw and token columns), or an
            ``(n, d_sae)`` matrix.
        y, label_column: the labels (reference labels for a clusterer), as the estimator's ``fit`` takes them.
        raw_column: the pooled raw activations: a column name, or an ``(n, width)`` array.
        features: which of :data:`FEATURE_SETS` to fit; default: ``"sae"``, plus ``"raw"`` and ``"both"`` when
            ``raw_column`` is given, plus ``"length"`` for a probe when token counts exist (``n_tokens=``, or the
            estimator's ``n_tokens_column``).
        n_tokens: token counts per row, for ``"length"`` (a dataset supplies its ``sae_n_tokens`` column).
        sample_weight: per-row weights, passed to every fit (``DifficultyProbe`` only).

    Returns:
        ``{"sides": {name: {"features": ..., "width": ..., **metrics}}, "score": the metric compared,
        "best": the side with the highest score, "warnings": [...]}``.
    """
    sides = _choose_sides(estimator, data, raw_column, features, n_tokens)
    is_probe = hasattr(estimator, "decision_function")
    target = "label_column" if is_probe else "reference_column"
    labels = read_labels(data, y, label_column, what="labels")
    weights = {} if sample_weight is None else {"sample_weight": sample_weight}
    as_sae = {"feature_set": "sae"} if is_probe else {}  # a probe fitted on raw activations is cloned back to SAE
    if "sae" in sides or not is_fitted(estimator) or getattr(estimator, "feature_set_", "sae") != "sae":
        # The SAE side first, on the data itself (so a label column's name can tell pass rates from difficulties).
        sae = clone(estimator).set_params(**as_sae)
        sae.fit(data, **({"y": y} if label_column is None else {target: label_column}), n_tokens=n_tokens, **weights)
    else:  # a fitted estimator stands for the SAE side: its label kind and cluster count are reused, not refitted
        sae = estimator
    overrides = {"label": sae.label_} if hasattr(sae, "label_") else {}  # the others need no re-detection
    if hasattr(sae, "n_clusters_"):
        overrides["n_clusters"] = sae.n_clusters_
    report: dict[str, Any] = {"sides": {}}
    if "sae" in sides:
        report["sides"]["sae"] = _side("sae", sae.n_features_in_, sae.metrics_)
    matrices: dict[str, Any] = {}
    if "raw" in sides or "both" in sides:
        raw = read_dense(data, raw_column)  # a column or an array, checked once for both sides
        if is_probe:  # the probe's own feature_set: it standardises the raw activations itself
            matrices["raw"] = raw
        else:
            mean, scale = fit_standard_scale(raw)
            matrices["raw"] = standardise(raw, mean, scale)
        if "both" in sides:
            X, tokens = clone(estimator).set_params(**as_sae)._read_features(data, n_tokens)
            if is_probe:
                matrices["both"] = (X, raw, tokens)
            else:
                Xt = FeatureTransform(estimator.transform).fit_transform(X, tokens)
                matrices["both"] = sp.hstack([sp.csr_matrix(Xt), sp.csr_matrix(matrices["raw"])], format="csr")
    if "length" in sides:
        matrices["length"] = np.log1p(_token_counts(estimator, data, n_tokens))[:, None]
    for name in ("raw", "both", "length"):
        if name not in matrices:
            continue
        side = clone(estimator).set_params(**overrides)
        if is_probe and name != "length":  # the raw / both probe a user would fit: feature_set=name
            side.set_params(feature_set=name, raw_column=None)
            if name == "raw":
                side.fit(matrices["raw"], labels, **weights)
            else:
                X, raw, tokens = matrices["both"]
                side.fit((X, raw), labels, n_tokens=tokens, **weights)
        else:
            X = matrices[name]
            side.set_params(d_sae=X.shape[1], transform=None, **as_sae).fit(X, labels, **weights)
        report["sides"][name] = _side(name, side.n_features_in_, side.metrics_)
    score = primary_score(report["sides"].get("sae", sae.metrics_))
    report["score"] = score
    scored = {k: v.get(score) for k, v in report["sides"].items() if score and v.get(score) is not None}
    report["best"] = max(scored, key=lambda k: scored[k]) if scored else None
    report["warnings"] = _warnings(type(estimator).__name__, report["sides"], sae.metrics_, score)
    return report


def _choose_sides(
    estimator: Any, data: Any, raw_column: Any, features: Sequence[str] | None, n_tokens: Any
) -> list[str]:
    is_probe = hasattr(estimator, "decision_function")
    if features is None:
        chosen = ["sae"] + (["raw", "both"] if raw_column is not None else [])
        has_tokens = n_tokens is not None or (
            not is_matrix(data) and estimator.n_tokens_column in (column_names(data) or ())
        )
        if is_probe and has_tokens:
            chosen.append("length")
        return chosen
    chosen = [features] if isinstance(features, str) else list(features)
    for name in chosen:
        check_choice("features", name, tuple(FEATURE_SETS))
    if raw_column is None and {"raw", "both"} & set(chosen):
        raise InvalidParameterError(
            f"features={chosen} needs the raw activations: pass raw_column='<column>' (e.g. "
            "the column SAEEncoder(columns=FeatureColumns(activations=...)) writes) or an (n, width) array."
        )
    if "length" in chosen and not is_probe:
        raise InvalidParameterError(f"features='length' applies to probes, not a {type(estimator).__name__}; drop it.")
    return chosen


def _side(name: str, width: int, metrics: dict[str, Any]) -> dict[str, Any]:
    return {"features": FEATURE_SETS[name], "width": int(width), **metrics}


def _token_counts(estimator: Any, data: Any, n_tokens: Any) -> np.ndarray:
    if n_tokens is None:
        n_tokens = read_column(data, estimator.n_tokens_column, "token counts (for the length baseline)")
    counts = np.asarray(n_tokens, dtype=np.float64).reshape(-1)
    bad = ~(np.isfinite(counts) & (counts >= 0))
    if bad.any():
        raise InvalidParameterError(
            f"The length baseline needs finite, non-negative token counts; {int(bad.sum())} "
            "are missing, negative or not finite. Fill them, or pass features= without "
            "'length'."
        )
    return counts


def _warnings(name: str, sides: dict[str, Any], sae_metrics: dict[str, Any], score: str | None) -> list[str]:
    out: list[str] = []
    length, sae_score = sides.get("length", {}).get(score or ""), sae_metrics.get(score or "")
    if score and length is not None and sae_score is not None and not sae_score > length:
        out.append(
            f"not ahead of its length baseline: out-of-fold {score} {sae_score:.3f} on SAE features vs "
            f"{length:.3f} on log1p(n_tokens) alone"
        )
    for message in out:
        logger.warning("%s: %s. Label more rows or check the labels before using it.", name, message)
    return out
