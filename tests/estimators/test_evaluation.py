"""compare_features (SAE latents vs raw activations, both and length, outside the estimators), the labels'
precision (sample weights against sklearn's weighted ElasticNet), and the warnings of a useless fit."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import scipy.sparse as sp
from datasets import Dataset
from sklearn.linear_model import ElasticNet
from sklearn.model_selection import KFold

from hf_saerl import DifficultyProbe, QualityProbe, SAEClusterer
from hf_saerl.errors import InvalidParameterError, NonFiniteError
from hf_saerl.estimators.elastic_net import length_baseline
from hf_saerl.estimators.evaluation import compare_features

D_SAE, N_GROUPS = 500, 4
FAST_GRID = {"l1_ratio": (0.5, 1.0), "n_alphas": 20}


def planted_dataset(n=300, seed=0, k=20, n_signal=5):
    """~k active latents per row; the pass rate is a logistic function of the first few latents; a dense noise
    column ``mean_act`` (8 wide), token counts, a good/bad split."""
    rng = np.random.default_rng(seed)
    rows = [
        np.concatenate(
            [np.flatnonzero(rng.random(n_signal) < 0.5), rng.choice(np.arange(n_signal, D_SAE), k, replace=False)]
        )
        for _ in range(n)
    ]
    vals = [(rng.exponential(1.0, len(r)) + 0.1).astype(np.float32) for r in rows]
    indptr = np.concatenate([[0], np.cumsum([len(r) for r in rows])])
    X = sp.csr_matrix((np.concatenate(vals), np.concatenate(rows), indptr), shape=(n, D_SAE))
    z = np.log1p(X[:, :n_signal].toarray()) @ np.array([1.0, -0.8, 0.9, -0.6, 0.7])[:n_signal]
    pass_rate = np.clip(1 / (1 + np.exp(-2 * (z - z.mean()))) + rng.normal(0, 0.05, n), 0, 1)
    ds = Dataset.from_dict(
        {
            "sae_indices": [r.tolist() for r in rows],
            "sae_values": [v.tolist() for v in vals],
            "sae_n_tokens": rng.integers(5, 200, n).tolist(),
            "pass_rate": pass_rate.tolist(),
            "good": (pass_rate > np.median(pass_rate)).tolist(),
            "mean_act": rng.normal(size=(n, 8)).tolist(),
        }
    )
    return ds, X, pass_rate


def clustered_dataset(n=240, seed=0, block=60):
    """Each row fires 15 latents of its group's block and 8 elsewhere; ``category`` names the group."""
    rng = np.random.default_rng(seed)
    group = rng.integers(0, N_GROUPS, n)
    rows = [
        np.concatenate(
            [
                g * block + rng.choice(block, 15, replace=False),
                rng.choice(np.arange(N_GROUPS * block, D_SAE), 8, replace=False),
            ]
        )
        for g in group
    ]
    vals = [(rng.exponential(1.0, len(r)) + 0.2).tolist() for r in rows]
    ds = Dataset.from_dict(
        {
            "sae_indices": [r.tolist() for r in rows],
            "sae_values": vals,
            "category": [f"topic {g}" for g in group],
            "mean_act": rng.normal(size=(n, 6)).tolist(),
        }
    )
    return ds, group


pytestmark = pytest.mark.filterwarnings("ignore:.*ConvergenceWarning", "ignore:Treating the labels")


@pytest.fixture(scope="module")
def data():
    return planted_dataset()


# ---------------------------------------------------------------------------------- compare_features
def test_difficulty_sides_use_the_same_folds_and_length_equals_the_hand_fitted_baseline(data):
    ds, _X, pass_rate = data
    probe = DifficultyProbe(d_sae=D_SAE, **FAST_GRID)
    report = compare_features(probe, ds, label_column="pass_rate", raw_column="mean_act")
    sides = report["sides"]
    assert list(sides) == ["sae", "raw", "both", "length"] and report["score"] == "spearman"
    assert not hasattr(probe, "coef_")  # the estimator is cloned, not fitted
    fitted = DifficultyProbe(d_sae=D_SAE, **FAST_GRID).fit(ds, label_column="pass_rate")
    assert sides["sae"]["spearman"] == fitted.metrics_["spearman"]  # the same fit, the same folds
    assert sides["raw"]["width"] == 8 and (sides["raw"]["spearman"] or 0.0) < 0.3  # noise activations
    assert sides["both"]["width"] == D_SAE + 8 and sides["both"]["spearman"] > 0.7
    expected = length_baseline(
        np.asarray(ds["sae_n_tokens"]),
        pass_rate,
        cv=KFold(5, shuffle=True, random_state=0),
        l1_ratio=[0.5, 1.0],
        n_alphas=20,
    )
    for key in ("pearson", "spearman", "r2", "mae", "alpha", "l1_ratio"):
        assert sides["length"][key] == pytest.approx(expected[key])
    assert report["best"] in ("sae", "both") and report["warnings"] == []


def test_a_raw_column_that_carries_the_signal_scores_high(data):
    """The side is really fitted on the labels, not just reported: planted latents held densely score high."""
    ds, X, pass_rate = data
    signal = np.log1p(X[:, :5].toarray()) + np.random.default_rng(3).normal(0, 0.01, (X.shape[0], 5))
    q = compare_features(QualityProbe(d_sae=D_SAE), X, np.asarray(ds["good"]), raw_column=signal)
    assert q["score"] == "auroc" and q["sides"]["raw"]["width"] == 5 and q["sides"]["raw"]["auroc"] > 0.9
    d = compare_features(
        DifficultyProbe(d_sae=D_SAE, label="pass_rate", alpha=1e-3, l1_ratio=0.5),
        X,
        pass_rate,
        raw_column=signal,
        features=["raw"],
    )
    assert list(d["sides"]) == ["raw"] and d["sides"]["raw"]["spearman"] > 0.8
    assert d["sides"]["raw"]["label"] == "pass_rate"


def test_clusterer_sides(data):
    ds, group = clustered_dataset()
    signal = np.eye(N_GROUPS)[group] + np.random.default_rng(1).normal(0, 0.05, (len(group), N_GROUPS))
    report = compare_features(
        SAEClusterer(d_sae=D_SAE, n_clusters=4), ds, label_column="category", raw_column=signal, features=["sae", "raw"]
    )
    assert report["score"] == "nmi" and report["sides"]["raw"]["nmi"] > 0.95 and report["sides"]["sae"]["nmi"] > 0.9
    noise = compare_features(
        SAEClusterer(d_sae=D_SAE, n_clusters=4), ds, label_column="category", raw_column="mean_act", features=["raw"]
    )
    assert noise["sides"]["raw"]["nmi"] < 0.2
    with pytest.raises(InvalidParameterError, match="applies to probes"):
        compare_features(SAEClusterer(d_sae=D_SAE, n_clusters=4), ds, label_column="category", features=["length"])


def test_bad_raw_features_are_refused(data):
    ds, X, _ = data
    good = np.asarray(ds["good"])
    with pytest.raises(InvalidParameterError, match=r"'mean_act' names a column, but the data is a matrix"):
        compare_features(QualityProbe(d_sae=D_SAE), X, good, raw_column="mean_act")
    ragged = ds.select(range(20)).map(lambda r, i: {"mean_act": [0.0] * (1 + i % 2)}, with_indices=True)
    with pytest.raises(InvalidParameterError, match=r"Dense feature column 'mean_act' must hold fixed-length lists"):
        compare_features(QualityProbe(d_sae=D_SAE, cv=None), ragged, label_column="good", raw_column="mean_act")
    holed = np.asarray(ds["mean_act"])
    holed[3, 2] = np.nan
    with pytest.raises(NonFiniteError, match=r"dense features in the dense feature array hold 1 NaN"):
        compare_features(QualityProbe(d_sae=D_SAE, cv=None), X, good, raw_column=holed)
    with pytest.raises(InvalidParameterError, match="needs the raw activations"):
        compare_features(QualityProbe(d_sae=D_SAE), X, good, features=["both"])


def test_not_ahead_of_length_is_warned(data, caplog):
    ds, X, _ = data
    n_tokens = np.asarray(ds["sae_n_tokens"], dtype=float)
    pass_rate = np.clip(1.2 - 0.2 * np.log1p(n_tokens), 0, 1)  # length is the whole signal
    with caplog.at_level(logging.WARNING, logger="hf_saerl.estimators.evaluation"):
        report = compare_features(
            DifficultyProbe(d_sae=D_SAE, label="pass_rate", **FAST_GRID), X, pass_rate, n_tokens=n_tokens
        )
    assert report["best"] == "length" and "not ahead of its length baseline" in report["warnings"][0]
    assert "DifficultyProbe: not ahead of its length baseline" in caplog.text


# ---------------------------------------------------------------------------------- the labels' precision
def test_sample_weights_equal_sklearns_weighted_elastic_net(data):
    ds, X, pass_rate = data
    n_samples = np.random.default_rng(7).choice([2, 4, 32], size=len(pass_rate))
    ds = ds.add_column("n_samples", n_samples.tolist())
    probe = DifficultyProbe(
        d_sae=D_SAE, label="pass_rate", transform=None, alpha=2e-3, l1_ratio=0.5, cv=None, tol=1e-10, max_iter=100_000
    )
    probe.fit(ds, label_column="pass_rate", sample_weight="n_samples")
    reference = ElasticNet(alpha=2e-3, l1_ratio=0.5, tol=1e-10, max_iter=100_000).fit(
        X.astype(np.float64), pass_rate, sample_weight=n_samples
    )
    np.testing.assert_allclose(probe.coef_, reference.coef_, atol=1e-8)
    assert probe.intercept_[0] == pytest.approx(reference.intercept_, abs=1e-8)
    unweighted = ElasticNet(alpha=2e-3, l1_ratio=0.5, tol=1e-10, max_iter=100_000).fit(X.astype(np.float64), pass_rate)
    assert np.abs(unweighted.coef_ - reference.coef_).max() > 1e-3  # the weights matter on this data
    assert probe.metrics_["weighted"] is True
    # the same weights as an array; 0/2 and 0/32 are different evidence
    again = DifficultyProbe(
        d_sae=D_SAE, label="pass_rate", transform=None, alpha=2e-3, l1_ratio=0.5, cv=None, tol=1e-10, max_iter=100_000
    ).fit(X, pass_rate, sample_weight=n_samples)
    np.testing.assert_array_equal(again.coef_, probe.coef_)


def test_weighted_search_scores_folds_by_weighted_error(data):
    _ds, X, pass_rate = data
    w = np.random.default_rng(2).integers(1, 33, len(pass_rate)).astype(float)
    probe = DifficultyProbe(d_sae=D_SAE, label="pass_rate", **FAST_GRID).fit(X, pass_rate, sample_weight=w)
    reference = ElasticNet(alpha=probe.alpha_, l1_ratio=probe.l1_ratio_, tol=1e-8, max_iter=100_000)
    reference.fit(np.log1p(X.toarray()), pass_rate, sample_weight=w)
    assert np.corrcoef(probe.coef_, reference.coef_)[0, 1] > 0.999  # the refit at the chosen pair is sklearn's
    assert probe.metrics_["spearman"] > 0.8


def test_bad_weights_are_refused(data):
    _ds, X, pass_rate = data
    probe = DifficultyProbe(d_sae=D_SAE, label="pass_rate", **FAST_GRID)
    with pytest.raises(InvalidParameterError, match="finite and non-negative"):
        probe.fit(X, pass_rate, sample_weight=-np.ones(len(pass_rate)))
    with pytest.raises(InvalidParameterError, match="for 300 rows"):
        probe.fit(X, pass_rate, sample_weight=np.ones(3))
    with pytest.raises(InvalidParameterError, match="names a column, but the data is a matrix"):
        probe.fit(X, pass_rate, sample_weight="n_samples")


# ---------------------------------------------------------------------------------- a useless fit says so
def test_a_constant_fit_is_flagged_in_metrics_log_and_card(data, caplog, tmp_path):
    _ds, X, pass_rate = data
    noise = np.random.default_rng(0).random(len(pass_rate))
    with caplog.at_level(logging.WARNING, logger="hf_saerl.estimators.probes"):
        probe = DifficultyProbe(d_sae=D_SAE, label="pass_rate", alpha=10.0, l1_ratio=0.9).fit(X, noise)
    assert not np.any(probe.coef_)
    assert probe.metrics_["warnings"][0].startswith("constant: no non-zero coefficient")
    assert "DifficultyProbe fit looks useless: constant" in caplog.text
    probe.save_pretrained(tmp_path)
    assert "Warning: this fit looks useless** (constant" in (tmp_path / "README.md").read_text()


def test_a_below_chance_fit_is_flagged(data, caplog):
    ds, X, _ = data
    good = np.asarray(ds["good"])
    assert QualityProbe(d_sae=D_SAE, cv=5).fit(X, good).metrics_["warnings"] == []  # a real signal: no warning
    rng = np.random.default_rng(0)
    with caplog.at_level(logging.WARNING, logger="hf_saerl.estimators.probes"):
        for seed in range(40):  # shuffled labels: out-of-fold AUROC around 0.5, below it for some seed
            probe = QualityProbe(d_sae=D_SAE, cv=5, random_state=seed).fit(X, rng.permutation(good))
            if probe.metrics_["auroc"] < 0.5:
                break
    assert probe.metrics_["auroc"] < 0.5
    assert any(w.startswith("below chance: out-of-fold auroc") for w in probe.metrics_["warnings"])
    assert "QualityProbe fit looks useless: below chance" in caplog.text
