"""ElasticNetPathCV (the fast DifficultyProbe fit), screen_latents and length_baseline, against sklearn by hand."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import ElasticNet, LinearRegression
from sklearn.model_selection import KFold

from hf_saerl.errors import HfSaerlError, InvalidParameterError, NonFiniteError
from hf_saerl.estimators.elastic_net import (
    PROTOCOLS,
    ElasticNetPathCV,
    length_baseline,
    screen_latents,
)
from hf_saerl.estimators.metrics import regression_metrics

TIGHT = {"tol": 1e-10, "max_iter": 100_000}


def planted(n=400, d=500, k=20, seed=0, noise=0.05):
    """``k`` latents per row with Zipf-like popularity, non-negative values; the label depends on latents 0-5
    (the most popular ones) plus noise, and on the token count."""
    rng = np.random.default_rng(seed)
    pop = 1.0 / (np.arange(d) + 3.0)
    pop /= pop.sum()
    rows = [rng.choice(d, size=k, replace=False, p=pop) for _ in range(n)]
    indptr = np.concatenate([[0], np.cumsum([len(r) for r in rows])])
    X = sp.csr_matrix((rng.exponential(1.0, indptr[-1]) + 0.1, np.concatenate(rows), indptr), shape=(n, d))
    X.sort_indices()
    n_tokens = rng.integers(10, 400, size=n)
    w = np.zeros(d)
    w[:6] = [0.5, -0.4, 0.45, -0.3, 0.35, 0.3]
    y = np.log1p(X.toarray()) @ w - 0.05 * np.log1p(n_tokens) + noise * rng.normal(size=n)
    return X, y, n_tokens, np.flatnonzero(w)


@pytest.fixture(scope="module")
def data():
    return planted()


@pytest.fixture(scope="module")
def tight_fit(data):
    X, y, _, _ = data
    return ElasticNetPathCV(cv=KFold(5, shuffle=True, random_state=0), **TIGHT).fit(X, y)


# ---------------------------------------------------------------------- agreement with sklearn
def test_matches_sklearn_elasticnet_at_the_chosen_alpha(data, tight_fit):
    X, y, _, _ = data
    m = tight_fit
    ref = ElasticNet(alpha=m.alpha_, l1_ratio=m.l1_ratio_, **TIGHT).fit(X, y)
    assert np.abs(m.coef_ - ref.coef_).max() <= 1e-6 * np.abs(ref.coef_).max()
    assert m.intercept_ == pytest.approx(ref.intercept_, rel=1e-6)
    assert np.allclose(m.predict(X), ref.predict(X), rtol=0, atol=1e-6)


def test_fixed_alpha_matches_sklearn_from_a_cold_start(data):
    """One alpha, one l1_ratio, no folds: the working-set solve from zero equals a plain ElasticNet."""
    X, y, _, _ = data
    m = ElasticNetPathCV(alphas=[2e-3], l1_ratio=0.5, cv=None, **TIGHT).fit(X, y)
    ref = ElasticNet(alpha=2e-3, l1_ratio=0.5, **TIGHT).fit(X, y)
    assert np.abs(m.coef_ - ref.coef_).max() <= 1e-6 * np.abs(ref.coef_).max()
    assert m.cv_predictions_ is None and m.cv_protocol_ is None
    assert (m.alpha_, m.l1_ratio_) == (2e-3, 0.5)


def test_dense_input_gives_the_sparse_result(data, tight_fit):
    X, y, _, _ = data
    dense = ElasticNetPathCV(cv=KFold(5, shuffle=True, random_state=0), **TIGHT).fit(X.toarray(), y)
    assert dense.alpha_ == pytest.approx(tight_fit.alpha_, rel=1e-12) and dense.l1_ratio_ == tight_fit.l1_ratio_
    assert np.allclose(dense.coef_, tight_fit.coef_, atol=1e-7)
    assert np.allclose(dense.cv_predictions_, tight_fit.cv_predictions_, atol=1e-7)


# ---------------------------------------------------------------------- the search
def test_chosen_alpha_is_the_grid_point_with_the_lowest_cv_error(tight_fit):
    m = tight_fit
    r = list(m.l1_ratios_).index(m.l1_ratio_)
    assert m.alpha_ in m.alphas_[r].tolist()
    assert m.l1_ratio_ in (0.5, 0.9) and m.alphas_.shape == (2, 25)
    mean = m.mse_path_.mean(axis=2)  # NaN where the early stop skipped an alpha
    rb, ab = np.unravel_index(np.argmin(np.where(np.isnan(mean), np.inf, mean)), mean.shape)
    assert (rb, m.alphas_[rb, ab]) == (r, m.alpha_)
    # the grid starts at alpha_max (all-zero solution) and spans eps = 1e-3
    assert m.alphas_[r, 0] / m.alphas_[r, -1] == pytest.approx(1e3)


def test_early_stop_chooses_what_the_full_grid_chooses(data):
    X, y, _, _ = data
    early = ElasticNetPathCV(patience=3).fit(X, y)
    full = ElasticNetPathCV(patience=None).fit(X, y)
    assert (early.alpha_, early.l1_ratio_) == (full.alpha_, full.l1_ratio_)
    assert not np.isnan(full.mse_path_).any()
    assert (early.n_alphas_fitted_ < 25).all() and early.n_fits_ < full.n_fits_
    assert np.allclose(early.coef_, full.coef_)


def test_out_of_fold_predictions_equal_a_hand_loop_over_the_folds(data, tight_fit):
    X, y, _, _ = data
    m = tight_fit
    assert m.cv_protocol_ == "once" and "slightly optimistic" in PROTOCOLS[m.cv_protocol_]
    hand = np.empty(len(y))
    for train, test in KFold(5, shuffle=True, random_state=0).split(X):
        ref = ElasticNet(alpha=m.alpha_, l1_ratio=m.l1_ratio_, **TIGHT).fit(X[train], y[train])
        hand[test] = ref.predict(X[test])
    assert np.allclose(m.cv_predictions_, hand, rtol=0, atol=1e-6)
    # an int cv is the same seeded, shuffled KFold; explicit (train, test) pairs work too
    folds = list(KFold(5, shuffle=True, random_state=0).split(X))
    by_int = ElasticNetPathCV(cv=5, random_state=0, **TIGHT).fit(X, y)
    by_pairs = ElasticNetPathCV(cv=folds, **TIGHT).fit(X, y)
    assert np.array_equal(by_int.cv_predictions_, m.cv_predictions_)
    assert np.array_equal(by_pairs.cv_predictions_, m.cv_predictions_)


def test_nested_protocol_repeats_the_search_inside_each_fold(data):
    X, y, _, _ = data
    outer = KFold(4, shuffle=True, random_state=1)
    m = ElasticNetPathCV(cv=outer, inner_cv=3, cv_protocol="nested").fit(X, y)
    assert m.cv_protocol_ == "nested"
    hand = np.empty(len(y))
    for train, test in outer.split(X):
        hand[test] = ElasticNetPathCV(cv=3).fit(X[train], y[train]).predict(X[test])
    assert np.array_equal(m.cv_predictions_, hand)
    once = ElasticNetPathCV(cv=outer).fit(X, y)  # same final model either way
    assert np.array_equal(m.coef_, once.coef_)


def test_fixed_alpha_with_folds_scores_them_honestly(data):
    X, y, _, _ = data
    folds = KFold(3, shuffle=True, random_state=0)
    m = ElasticNetPathCV(alphas=[1e-3], l1_ratio=0.9, cv=folds, **TIGHT).fit(X, y)
    assert m.cv_protocol_ == "fixed"
    hand = np.empty(len(y))
    for train, test in folds.split(X):
        hand[test] = ElasticNet(alpha=1e-3, l1_ratio=0.9, **TIGHT).fit(X[train], y[train]).predict(X[test])
    assert np.allclose(m.cv_predictions_, hand, atol=1e-6)


def test_planted_signal_is_recovered(data):
    X, y, _, signal = data
    m = ElasticNetPathCV().fit(X, y)
    assert regression_metrics(y, m.cv_predictions_)["spearman"] > 0.8
    top = np.argsort(-np.abs(m.coef_))[: len(signal)]
    assert set(top) == set(signal)


# ---------------------------------------------------------------------- screening
def test_screening_keeps_every_latent_that_fires_in_at_least_m_rows(data):
    X, y, _, _ = data
    counts = np.bincount(X.indices, minlength=X.shape[1])
    for m in (1, 3, 10):
        kept = screen_latents(X, m)
        assert np.array_equal(kept, np.flatnonzero(counts >= m))
    explicit_zero = sp.csr_matrix((np.array([0.0, 1.0]), np.array([0, 1]), np.array([0, 2])), shape=(1, 3))
    assert screen_latents(explicit_zero, 1).tolist() == [1]  # a stored 0 is not a firing
    assert screen_latents(X.toarray(), 3).tolist() == screen_latents(X, 3).tolist()

    fit = ElasticNetPathCV(min_rows=10).fit(X, y)
    assert np.array_equal(fit.support_, np.flatnonzero(counts >= 10))
    assert fit.coef_.shape == (X.shape[1],)
    assert not fit.coef_[np.setdiff1d(np.arange(X.shape[1]), fit.support_)].any()
    assert set(np.flatnonzero(fit.coef_)) <= set(fit.support_)


# ---------------------------------------------------------------------- the length baseline
def test_length_baseline_equals_a_hand_fitted_one_feature_regression(data):
    _, y, n_tokens, _ = data
    folds = KFold(5, shuffle=True, random_state=0)
    base = length_baseline(n_tokens, y, cv=folds, **TIGHT)
    x = np.log1p(n_tokens.astype(np.float64))[:, None]
    hand, ols = np.empty(len(y)), np.empty(len(y))
    for train, test in folds.split(x):
        ref = ElasticNet(alpha=base["alpha"], l1_ratio=base["l1_ratio"], **TIGHT).fit(x[train], y[train])
        hand[test] = ref.predict(x[test])
        ols[test] = LinearRegression().fit(x[train], y[train]).predict(x[test])
    expected = regression_metrics(y, hand)
    for key in ("pearson", "spearman", "r2", "mae"):
        assert base[key] == pytest.approx(expected[key], abs=1e-9)
    assert base["feature"] == "log1p(n_tokens)" and base["cv_protocol"] == "once"
    # the penalty hardly matters for one feature: close to ordinary least squares out of fold
    assert base["r2"] == pytest.approx(regression_metrics(y, ols)["r2"], abs=0.01)


# ---------------------------------------------------------------------- sklearn manners and errors
def test_sklearn_manners(data):
    X, y, _, _ = data
    m = ElasticNetPathCV(l1_ratio=0.9, n_alphas=10)
    assert not [k for k in vars(m) if k.endswith("_")]  # the constructor only stores
    assert clone(m).get_params() == m.get_params()
    assert m.fit(X, y) is m


def test_convergence_warnings_are_summarised_once(data):
    X, y, _, _ = data
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m = ElasticNetPathCV(max_iter=1, tol=1e-12, n_alphas=5, cv=3).fit(X, y)
    conv = [w for w in caught if issubclass(w.category, ConvergenceWarning)]
    assert len(conv) == 1 and f"of {m.n_fits_} ElasticNet fits" in str(conv[0].message)
    assert m.n_not_converged_ > 0


@pytest.mark.parametrize(
    "params, match",
    [
        ({"l1_ratio": (0.5, 2.0)}, r"l1_ratio must be a float or a non-empty list of floats in \[0, 1\]"),
        ({"l1_ratio": ()}, r"l1_ratio must be"),
        ({"l1_ratio": 0.0}, r"l1_ratio=0 \(a pure ridge penalty\) has no alpha_max"),
        ({"alphas": [1e-3, -1.0]}, r"alphas must be a non-empty list of positive"),
        ({"n_alphas": 0}, r"n_alphas must be an int >= 1"),
        ({"eps": 2.0}, r"eps must be a float in \(0, 1\)"),
        ({"patience": 0}, r"patience must be an int >= 1"),
        ({"min_rows": 0}, r"min_rows must be an int >= 1"),
        ({"tol": 0}, r"tol must be a positive float"),
        ({"cv_protocol": "inner"}, r"cv_protocol must be 'once' or 'nested'"),
        ({"cv": 1}, r"cv must be >= 2 folds"),
        ({"cv": 300}, r"cv=300 needs at least 600 rows"),
        ({"cv": "five"}, r"cv must be an int, a splitter"),
        ({"cv": None}, r"has no folds to choose alpha/l1_ratio with"),
        ({"cv": [(np.arange(10), np.arange(10, 20))]}, r"each of the 400 rows in exactly one test set"),
        ({"min_rows": 10_000}, r"No column of X is non-zero in at least min_rows=10000"),
    ],
)
def test_bad_parameters_are_refused(data, params, match):
    X, y, _, _ = data
    with pytest.raises(InvalidParameterError, match=match):
        ElasticNetPathCV(**params).fit(X, y)


def test_bad_data_is_refused(data):
    X, y, n_tokens, _ = data
    bad = X.copy()
    bad.data[0] = np.nan
    with pytest.raises(NonFiniteError, match="X holds 1 NaN or infinite value"):
        ElasticNetPathCV().fit(bad, y)
    with pytest.raises(NonFiniteError, match="y holds 1 NaN"):
        ElasticNetPathCV().fit(X, np.where(np.arange(len(y)) == 3, np.nan, y))
    with pytest.raises(InvalidParameterError, match="Got 399 labels for 400 rows"):
        ElasticNetPathCV().fit(X, y[:-1])
    with pytest.raises(InvalidParameterError, match=r"All 400 labels equal 0\.5: nothing to learn"):
        ElasticNetPathCV().fit(X, np.full(len(y), 0.5))
    with pytest.raises(NonFiniteError, match="n_tokens must be finite, non-negative token counts"):
        length_baseline(np.where(np.arange(len(y)) == 0, -1, n_tokens), y)
    with pytest.raises(InvalidParameterError, match="Got 399 token counts for 400 labels"):
        length_baseline(n_tokens[:-1], y)
    with pytest.raises(HfSaerlError):  # every refusal is the library's own
        screen_latents(X, 0)
