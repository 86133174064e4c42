"""Per-concept statistics of the signed pair disparity, per data region and globally.

Input: ``D`` of shape ``(n_pairs, n_concepts)``: for each pair, the share of a concept's latents firing
on the chosen response minus the share firing on the rejected one (in [−1, 1]); and a region id per
pair. For every (region, concept):

* ``delta``: mean disparity inside the region minus the mean over the rest of the data;
* ``welch_z``: ``delta / sqrt(var_in/n_in + var_out/n_out)`` (Welch's unequal-variance statistic);
* ``cohens_d``: ``delta`` over the pooled standard deviation;
* split half: the same on even rows (``delta_even``, ``z_even``) and on odd rows (``delta_odd``, ``z_odd``);
  ``consistent`` when both halves have the sign of ``delta``;
* ``rank_score``: the smaller half's ``|delta|`` when consistent, else 0 (what the table is sorted by);
* ``flagged``: consistent, ``|welch_z| >= z_threshold`` and both halves ``|z| >= half_z_threshold``.

The global view (``region == -1``) tests the mean disparity over all pairs against 0 (one-sample:
``delta`` = mean, ``welch_z`` = mean / standard error, ``cohens_d`` = mean / sd).

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> D = np.c_[rng.choice([0.0, 1.0], 200, p=[0.3, 0.7]), rng.choice([-1.0, 1.0], 200)]
    >>> table = concept_statistics(D, np.zeros(200, int))
    >>> table.loc[table.flagged, "concept"].tolist()
    [0]
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import InvalidParameterError, NonFiniteError

__all__ = ["GLOBAL_REGION", "concept_statistics"]

#: ``region`` value of the whole-dataset rows.
GLOBAL_REGION = -1


def _moments(D: sp.csr_matrix, R: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Counts ``(G,)``, sums and sums of squares ``(G, K)`` of the rows of D in each column-group of R."""
    n = np.asarray(R.sum(axis=0)).ravel()
    s = np.asarray((R.T @ D).todense())
    q = np.asarray((R.T @ D.multiply(D)).todense())
    return n, s, q


def _mean_var(n: np.ndarray, s: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = n[:, None].astype(np.float64)
    mean = np.divide(s, n, out=np.full_like(s, np.nan), where=n > 0)
    var = np.divide(q - n * mean**2, n - 1, out=np.full_like(s, np.nan), where=n > 1)
    return mean, np.maximum(var, 0.0)


def _safe_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a / b, with 0/0 -> 0 and x/0 -> ±inf (a deterministic difference is infinitely significant)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = a / b
    out[(b == 0) & (a == 0)] = 0.0
    return out


def _region_stats(D: sp.csr_matrix, regions: np.ndarray, rows: np.ndarray, n_regions: int) -> dict[str, np.ndarray]:
    sub = D[rows]
    reg = regions[rows]
    R = sp.csr_matrix((np.ones(len(rows)), (np.arange(len(rows)), reg)), shape=(len(rows), n_regions))
    n_in, s_in, q_in = _moments(sub, R)
    n_all, s_all, q_all = len(rows), np.asarray(sub.sum(axis=0)), np.asarray(sub.multiply(sub).sum(axis=0))
    n_out, s_out, q_out = n_all - n_in, s_all - s_in, q_all - q_in
    m_in, v_in = _mean_var(n_in, s_in, q_in)
    m_out, v_out = _mean_var(n_out, s_out, q_out)
    delta = m_in - m_out
    se = np.sqrt(v_in / n_in[:, None] + v_out / np.maximum(n_out, 1)[:, None])
    z = _safe_div(delta, se)
    dof = (n_in + n_out - 2)[:, None].astype(np.float64)
    pooled = np.sqrt(
        np.divide(
            (n_in[:, None] - 1) * v_in + (n_out[:, None] - 1) * v_out,
            dof,
            out=np.full_like(delta, np.nan),
            where=dof > 0,
        )
    )
    d = _safe_div(delta, pooled)
    small = (n_in < 2) | (n_out < 2)
    for arr in (z, d):
        arr[small, :] = np.nan
    return {
        "delta": delta,
        "z": z,
        "d": d,
        "n_in": np.repeat(n_in[:, None], D.shape[1], 1),
        "n_out": np.repeat(n_out[:, None], D.shape[1], 1),
        "mean_in": m_in,
        "mean_out": m_out,
    }


def _global_stats(D: sp.csr_matrix, rows: np.ndarray) -> dict[str, np.ndarray]:
    sub = D[rows]
    n = np.array([len(rows)])
    mean, var = _mean_var(n, np.asarray(sub.sum(axis=0)), np.asarray(sub.multiply(sub).sum(axis=0)))
    sd = np.sqrt(var)
    z = _safe_div(mean, sd / np.sqrt(max(len(rows), 1)))
    d = _safe_div(mean, sd)
    if len(rows) < 2:
        z[:] = np.nan
        d[:] = np.nan
    zeros = np.zeros_like(mean)
    return {
        "delta": mean,
        "z": z,
        "d": d,
        "n_in": zeros + len(rows),
        "n_out": zeros,
        "mean_in": mean,
        "mean_out": zeros,
    }


def concept_statistics(
    D: Any, regions: Any, *, z_threshold: float = 3.0, half_z_threshold: float = 2.0, include_global: bool = True
) -> pd.DataFrame:
    """The statistics table (one row per region × concept, plus the global rows), sorted by ``rank_score``.

    Args:
        D: ``(n_pairs, n_concepts)`` signed disparities (dense or sparse); rows are pairs in dataset order
            (the split halves are even and odd row positions).
        regions: ``(n_pairs,)`` non-negative int region id per pair.
        z_threshold: ``|welch_z|`` needed on all rows for ``flagged``.
        half_z_threshold: ``|z|`` needed in each split half for ``flagged``.
        include_global: add the whole-dataset rows (``region == -1``).

    Columns: ``region, concept, leaning ("chosen"/"rejected"/"none"), delta, welch_z, cohens_d, n_in,
    n_out, mean_in, mean_out, delta_even, delta_odd, z_even, z_odd, consistent, rank_score, flagged``.
    """
    D = sp.csr_matrix(D, dtype=np.float64)
    n, K = D.shape
    if D.nnz and not np.all(np.isfinite(D.data)):
        raise NonFiniteError(
            "The disparity matrix holds NaN or infinite values; check the pooled features for NaN "
            "(e.g. an SAE run in fp16 that overflowed) and re-encode."
        )
    regions = np.asarray(regions)
    if regions.shape != (n,):
        raise InvalidParameterError(f"regions must have one id per pair ({n}), got shape {regions.shape}.")
    if n and (not np.issubdtype(regions.dtype, np.integer) or regions.min() < 0):
        raise InvalidParameterError(
            "regions must be non-negative integer ids (factorize labels first, e.g. "
            "np.unique(..., return_inverse=True))."
        )
    n_regions = int(regions.max()) + 1 if n else 0
    rows_all, rows_even, rows_odd = np.arange(n), np.arange(0, n, 2), np.arange(1, n, 2)
    parts = []
    views = []
    if n_regions > 1:
        views.append((np.arange(n_regions), lambda rows: _region_stats(D, regions, rows, n_regions)))
    if include_global or n_regions <= 1:
        views.append((np.array([GLOBAL_REGION]), lambda rows: _global_stats(D, rows)))
    for region_ids, stat in views:
        full, even, odd = stat(rows_all), stat(rows_even), stat(rows_odd)
        G = len(region_ids)
        frame = pd.DataFrame(
            {
                "region": np.repeat(region_ids, K).astype(np.int64),
                "concept": np.tile(np.arange(K), G).astype(np.int64),
                "delta": full["delta"].ravel(),
                "welch_z": full["z"].ravel(),
                "cohens_d": full["d"].ravel(),
                "n_in": full["n_in"].ravel().astype(np.int64),
                "n_out": full["n_out"].ravel().astype(np.int64),
                "mean_in": full["mean_in"].ravel(),
                "mean_out": full["mean_out"].ravel(),
                "delta_even": even["delta"].ravel(),
                "delta_odd": odd["delta"].ravel(),
                "z_even": even["z"].ravel(),
                "z_odd": odd["z"].ravel(),
            }
        )
        parts.append(frame)
    table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    if table.empty:
        return table
    sign = np.sign(table["delta"].fillna(0.0).to_numpy())
    consistent = (
        (sign != 0)
        & (np.sign(table["delta_even"].fillna(0.0)) == sign)
        & (np.sign(table["delta_odd"].fillna(0.0)) == sign)
    )
    table["consistent"] = consistent.to_numpy()
    table["rank_score"] = np.where(consistent, np.minimum(table["delta_even"].abs(), table["delta_odd"].abs()), 0.0)
    table["flagged"] = (
        consistent
        & (table["welch_z"].abs() >= z_threshold)
        & (table["z_even"].abs() >= half_z_threshold)
        & (table["z_odd"].abs() >= half_z_threshold)
    ).to_numpy()
    table.insert(2, "leaning", np.where(sign > 0, "chosen", np.where(sign < 0, "rejected", "none")))
    table = table.sort_values(["rank_score", "region", "concept"], ascending=[False, True, True], kind="stable")
    return table.reset_index(drop=True)
