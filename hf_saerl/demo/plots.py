"""Plots people would rather look at than read: cluster map, pass-rate fit, difficulty histogram, schedule.

Each function draws one figure, saves it as PNG when ``path`` is given, and returns the matplotlib
``Figure``. matplotlib is an optional extra (``pip install 'hf-saerl[plot]'``) and is imported only here,
with the non-interactive Agg backend when no backend has been chosen yet.

Example:
    >>> import numpy as np
    >>> from hf_saerl.demo.plots import plot_difficulty_histogram
    >>> fig = plot_difficulty_histogram(np.linspace(0, 1, 50))
    >>> fig.axes[0].get_xlabel()
    'predicted difficulty (0 easy … 1 hard)'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def _pyplot():
    try:
        import matplotlib
    except ImportError as err:  # pragma: no cover - exercised only without the extra
        raise ImportError("Plotting needs matplotlib: pip install 'hf-saerl[plot]'") from err
    if "matplotlib.pyplot" not in __import__("sys").modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _finish(fig: Any, path: str | Path | None) -> Any:
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


def _scatter_by_label(ax: Any, xy: np.ndarray, labels: Sequence[Any], title: str) -> None:
    label_text = np.asarray([str(v) for v in labels])
    names = sorted(set(label_text.tolist()), key=lambda s: (len(s), s))
    cmap = _pyplot().get_cmap("tab10" if len(names) <= 10 else "tab20")
    for i, name in enumerate(names):
        mask = label_text == name
        ax.scatter(xy[mask, 0], xy[mask, 1], s=14, alpha=0.8, color=cmap(i % cmap.N), label=f"{name} ({mask.sum()})")
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(fontsize=7, loc="best", frameon=False)


def project_2d(X: Any, random_state: int = 0) -> np.ndarray:
    """A 2-D view of (sparse) feature rows: l2-normalised rows, then ``TruncatedSVD`` (PCA without centring,
    which keeps a sparse matrix sparse)."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.preprocessing import normalize

    Xn = normalize(X, norm="l2")
    if min(Xn.shape) < 3:
        raise ValueError(f"A 2-D map needs at least 3 rows and 3 features; got shape {Xn.shape}.")
    return TruncatedSVD(n_components=2, random_state=random_state).fit_transform(Xn)


def plot_cluster_map(
    xy: np.ndarray, cluster_ids: Sequence[int], categories: Sequence[Any] | None = None, path: str | Path | None = None
) -> Any:
    """The examples in 2-D (see :func:`project_2d`), coloured by cluster and, side by side, by a reference
    label such as the category."""
    plt = _pyplot()
    n = 1 if categories is None else 2
    fig, axes = plt.subplots(1, n, figsize=(6 * n, 5), squeeze=False)
    _scatter_by_label(axes[0, 0], xy, [f"cluster {c}" for c in cluster_ids], "SAE-space clusters")
    if categories is not None:
        _scatter_by_label(axes[0, 1], xy, categories, "reference category")
    return _finish(fig, path)


def plot_pass_rate_fit(
    actual: Sequence[float],
    predicted: Sequence[float],
    spearman: float | None = None,
    path: str | Path | None = None,
    *,
    held_out: tuple[Sequence[float], Sequence[float]] | None = None,
    title: str = "Difficulty probe",
) -> Any:
    """Predicted against actual pass rate (use out-of-fold predictions for an honest picture); ``held_out`` adds
    ``(actual, predicted)`` of rows the probe never saw, in another colour. Pass rates over few samples take few
    values, so the points get a little horizontal jitter."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
    rng = np.random.default_rng(0)

    def jitter(x: Sequence[float]) -> np.ndarray:
        values = np.asarray(x, dtype=float)
        return values + rng.uniform(-0.015, 0.015, size=values.shape)

    ax.scatter(jitter(actual), predicted, s=14, alpha=0.7, label=f"out of fold ({len(actual)})")
    if held_out is not None and len(held_out[0]):
        ax.scatter(
            jitter(held_out[0]),
            held_out[1],
            s=18,
            alpha=0.8,
            marker="^",
            color="tab:orange",
            label=f"held out ({len(held_out[0])})",
        )
        ax.legend(fontsize=8, frameon=False, loc="upper left")
    ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--")
    ax.set_xlim(-0.04, 1.04)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("actual pass rate")
    ax.set_ylabel("predicted pass rate")
    if spearman is not None:
        title += f" — Spearman {spearman:.2f}"
    ax.set_title(title)
    return _finish(fig, path)


def plot_difficulty_histogram(difficulty: Sequence[float], path: str | Path | None = None, bins: int = 20) -> Any:
    """Histogram of predicted difficulty."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.hist(np.asarray(difficulty, dtype=float), bins=bins, range=(0, 1), color="tab:blue", alpha=0.8)
    ax.set_xlabel("predicted difficulty (0 easy … 1 hard)")
    ax.set_ylabel("examples")
    return _finish(fig, path)


def plot_schedule(info: Mapping[str, Sequence[Any]], path: str | Path | None = None) -> Any:
    """The curriculum batch by batch: mean difficulty as bars coloured by the batch's majority cluster.

    ``info`` is :func:`hf_saerl.curriculum.describe_schedule`'s output."""
    plt = _pyplot()
    batches = np.asarray(info["batch"])
    clusters = np.asarray(info["majority_cluster"])
    cmap = plt.get_cmap("tab10")
    fig, ax = plt.subplots(figsize=(max(6, min(16, len(batches) * 0.25)), 3.5))
    from matplotlib.patches import Patch
    from matplotlib.ticker import MaxNLocator

    difficulty = np.asarray(info["mean_difficulty"], dtype=float)
    ax.bar(batches, difficulty, color=[cmap(int(c) % cmap.N) for c in clusters], width=0.85)
    if len(difficulty) and np.isfinite(difficulty).any():  # the data's own range, so a trend is visible
        low, high = float(np.nanmin(difficulty)), float(np.nanmax(difficulty))
        pad = max(0.02, 0.1 * (high - low))
        ax.set_ylim(max(0.0, low - pad), min(1.0, high + pad))
    names = sorted(set(clusters.tolist()))
    ax.legend(  # beside the axes, never over the bars
        handles=[Patch(color=cmap(int(c) % cmap.N), label=f"cluster {c}") for c in names],
        title="majority cluster",
        fontsize=7,
        title_fontsize=7,
        frameon=False,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
    )
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("batch (training order)")
    ax.set_ylabel("mean predicted difficulty")
    ax.set_title("Curriculum: interleaved clusters, easy to hard")
    return _finish(fig, path)
