"""The metrics estimators record at fit time (out-of-fold scores, cluster agreement), and their Markdown table.

Example:
    >>> import numpy as np
    >>> from hf_saerl.estimators.metrics import metrics_markdown, regression_metrics
    >>> m = regression_metrics(np.array([0.0, 0.5, 1.0]), np.array([0.1, 0.5, 0.9]))
    >>> round(m["r2"], 3), round(m["mae"], 3)
    (0.96, 0.067)
    >>> print(metrics_markdown({"n_train": 3, "mae": m["mae"]}))
    | metric | SAE features |
    |---|---|
    | n_train | 3 |
    | mae | 0.06667 |
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .inputs import clean_labels

__all__ = [
    "classification_metrics",
    "cluster_agreement",
    "metrics_markdown",
    "regression_metrics",
    "useless_fit_warnings",
]


def regression_metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, Any]:
    """Pearson, Spearman (None when a side is constant), R² (None for constant ``y``) and MAE of predictions."""
    from scipy.stats import pearsonr, spearmanr

    y, pred = np.asarray(y, dtype=np.float64), np.asarray(pred, dtype=np.float64)
    varied = np.ptp(y) > 0 and np.ptp(pred) > 0
    ss_tot = float(((y - y.mean()) ** 2).sum())
    return {
        "pearson": float(pearsonr(y, pred)[0]) if varied else None,
        "spearman": float(spearmanr(y, pred)[0]) if varied else None,
        "r2": 1.0 - float(((y - pred) ** 2).sum()) / ss_tot if ss_tot > 0 else None,
        "mae": float(np.abs(y - pred).mean()),
    }


def classification_metrics(y: np.ndarray, proba: np.ndarray) -> dict[str, Any]:
    """AUROC, accuracy at 0.5 and the positive rate of 0/1 labels ``y`` scored by good-class probabilities."""
    from sklearn.metrics import roc_auc_score

    return {
        "auroc": float(roc_auc_score(y, proba)),
        "accuracy": float(((proba >= 0.5) == y).mean()),
        "positive_rate": float(y.mean()),
    }


def cluster_agreement(ids: np.ndarray, reference: list, name: str) -> dict[str, Any]:
    """NMI and purity of cluster ids against reference labels (rows with a missing label skipped, with a warning)."""
    from sklearn.metrics import normalized_mutual_info_score

    labels, keep, n_missing = clean_labels(reference, name)
    ids = ids[keep]
    _, codes = np.unique(labels, return_inverse=True)
    counts = np.zeros((int(ids.max()) + 1, int(codes.max()) + 1), dtype=np.int64)
    np.add.at(counts, (ids, codes), 1)
    return {
        "nmi": float(normalized_mutual_info_score(codes, ids)),
        "purity": float(counts.max(axis=1).sum() / len(ids)),
        "n_reference": len(ids),
        "n_reference_missing": n_missing,
    }


def useless_fit_warnings(coef: np.ndarray, metrics: Mapping[str, Any]) -> list[str]:
    """Why a fitted linear probe is useless, if it is: constant (no non-zero coefficient: every row gets the
    intercept), or below chance out of fold (AUROC under 0.5, or a negative Spearman / Pearson correlation).

    Example:
        >>> useless_fit_warnings(np.zeros(3), {"auroc": 0.3})
        ['constant: no non-zero coefficient, so every row gets the same score', 'below chance: out-of-fold auroc 0.300 < 0.5']
        >>> useless_fit_warnings(np.ones(3), {"spearman": 0.4})
        []
    """
    out = []
    if not np.any(coef):
        out.append("constant: no non-zero coefficient, so every row gets the same score")
    for key, chance in (("auroc", 0.5), ("spearman", 0.0), ("pearson", 0.0)):
        value = metrics.get(key)
        if value is not None and value < chance:
            out.append(f"below chance: out-of-fold {key} {value:.3f} < {chance:g}")
            break
    return out


def metrics_markdown(metrics: Mapping[str, Any] | None) -> str:
    """A Markdown table of the scalar metrics, with a baseline column when ``metrics["baseline"]`` exists (bundles
    saved before issue 20), followed by the fit's warnings (``metrics["warnings"]``) when there are any."""
    if not metrics:
        return "_Not fitted._"
    baseline = metrics.get("baseline") or {}
    header = "| metric | SAE features |" + (f" baseline `{baseline.get('column')}` |" if baseline else "")
    lines = [header, "|---|---|" + ("---|" if baseline else "")]
    for key, value in metrics.items():
        if key == "baseline" or isinstance(value, (Mapping, list)):
            continue
        row = f"| {key} | {_fmt(value)} |"
        if baseline:
            row += f" {_fmt(baseline.get(key))} |"
        lines.append(row)
    if metrics.get("warnings"):
        lines += ["", "**Warning: this fit looks useless** (" + "; ".join(map(str, metrics["warnings"])) + ")."]
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
