"""QualityProbe and DifficultyProbe on planted synthetic SAE features, end to end through ``Dataset.map``,
plus the shared save/load (estimators.base / estimators.files) behaviour."""

from __future__ import annotations

import doctest
import json
import time
import tracemalloc
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from datasets import Dataset
from datasets.fingerprint import Hasher
from scipy.stats import spearmanr
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import KFold

import hf_saerl.core.files as files_module
import hf_saerl.estimators.base as base_module
import hf_saerl.estimators.probes as probes_module
from hf_saerl.core.serialization import jsonable
from hf_saerl.errors import BundleError, InvalidParameterError, MissingColumnError, NonFiniteError, WidthMismatchError
from hf_saerl.estimators.probes import DifficultyProbe, QualityProbe
from hf_saerl.testing import edit_arrays, edit_json

D_SAE = 2000
FAST_GRID = {"l1_ratio": (0.5, 1.0), "n_alphas": 20}  # keeps the nested ElasticNetCV quick


def planted(n=300, d_sae=D_SAE, k=30, n_signal=5, seed=0, noise=0.05):
    """~k active latents per row; the pass rate is a logistic function of a few signal latents."""
    rng = np.random.default_rng(seed)
    weights = np.array([1.0, -0.8, 0.9, -0.6, 0.7])[:n_signal]
    idx_rows, val_rows = [], []
    for _ in range(n):
        on = np.flatnonzero(rng.random(n_signal) < 0.5)
        rest = rng.choice(np.arange(n_signal, d_sae), k - len(on), replace=False)
        idx = np.concatenate([on, rest])
        val = (rng.exponential(1.0, len(idx)) + 0.1).astype(np.float32)
        order = np.argsort(-val)
        idx_rows.append(idx[order].astype(np.int32))
        val_rows.append(val[order])
    indptr = np.concatenate([[0], np.cumsum([len(r) for r in idx_rows])])
    X = sp.csr_matrix((np.concatenate(val_rows), np.concatenate(idx_rows), indptr), shape=(n, d_sae))
    z = np.log1p(X[:, :n_signal].toarray()) @ weights
    pass_rate = np.clip(1 / (1 + np.exp(-2 * (z - z.mean()))) + rng.normal(0, noise, n), 0, 1)
    return X, idx_rows, val_rows, pass_rate


def planted_dataset(n=300, seed=0, d_sae=D_SAE):
    X, idx, val, pass_rate = planted(n=n, seed=seed, d_sae=d_sae)
    rng = np.random.default_rng(seed + 100)
    ds = Dataset.from_dict(
        {
            "prompt": [f"problem {i}" for i in range(n)],
            "sae_indices": [r.tolist() for r in idx],
            "sae_values": [r.tolist() for r in val],
            "sae_n_tokens": rng.integers(5, 200, n).tolist(),
            "pass_rate": pass_rate.tolist(),
            "good": (pass_rate > np.median(pass_rate)).tolist(),
            "mean_act": rng.normal(size=(n, 8)).tolist(),  # a dense baseline that carries no signal
        }
    )
    return ds, X, pass_rate


@pytest.fixture(scope="module")
def data():
    return planted_dataset()


@pytest.fixture(scope="module")
def difficulty(data):
    ds, _, _ = data
    return DifficultyProbe(d_sae=D_SAE, **FAST_GRID).fit(ds, label_column="pass_rate")


@pytest.fixture(scope="module")
def quality(data):
    ds, _, _ = data
    return QualityProbe(d_sae=D_SAE).fit(ds, label_column="good")


# ====================================================================== DifficultyProbe
def test_difficulty_recovers_the_planted_pass_rate(difficulty):
    m = difficulty.metrics_
    assert difficulty.label_ == "pass_rate" and difficulty.clip_ is True
    assert m["spearman"] > 0.8 and m["pearson"] > 0.8 and m["r2"] > 0.5  # out of fold
    assert m["n_train"] == 300 and m["n_dropped_labels"] == 0 and m["cv_folds"] == 5
    assert m["l1_ratio"] in (0.5, 1.0) and m["alpha"] > 0 and 0 < m["n_nonzero_coef"] < D_SAE
    assert set(np.flatnonzero(difficulty.coef_)) >= set(range(5))  # the planted latents are used
    assert m["warnings"] == [] and m["weighted"] is False


def test_difficulty_map_end_to_end_and_on_new_data(difficulty):
    new, _, pass_rate = planted_dataset(n=200, seed=1)
    out = new.map(difficulty, batched=True, batch_size=64)
    assert out.features["difficulty"].dtype == "float32" and out.features["pass_rate_pred"].dtype == "float32"
    d = np.asarray(out["difficulty"], dtype=np.float32)
    p = np.asarray(out["pass_rate_pred"], dtype=np.float32)
    assert np.array_equal(d, np.float32(1) - p)  # exactly
    assert p.min() >= 0 and p.max() <= 1
    assert spearmanr(p, pass_rate)[0] > 0.8  # held-out rows
    assert difficulty.features.keys() == {"difficulty", "pass_rate_pred"}
    np.testing.assert_array_equal(difficulty.predict_difficulty(new), d)
    np.testing.assert_array_equal(difficulty.predict_pass_rate(new), p)
    raw = difficulty.predict(new)
    np.testing.assert_array_equal(p, np.clip(raw, 0, 1).astype(np.float32))


def test_difficulty_labels_are_predicted_directly(data):
    ds, X, pass_rate = data
    probe = DifficultyProbe(d_sae=D_SAE, label="difficulty", cv=None, **FAST_GRID).fit(X, 1 - pass_rate)
    assert probe.label_ == "difficulty" and probe.clip_ is True
    cols = probe(ds[:50])
    assert list(cols) == ["difficulty"]
    assert cols["difficulty"].min() >= 0 and cols["difficulty"].max() <= 1
    assert spearmanr(cols["difficulty"], 1 - pass_rate[:50])[0] > 0.8

    scaled = DifficultyProbe(d_sae=D_SAE, cv=None, **FAST_GRID).fit(
        ds.add_column("level", (10 * (1 - pass_rate)).tolist()), label_column="level"
    )
    assert scaled.label_ == "difficulty" and scaled.clip_ is False  # labels outside [0, 1]: no clipping
    d = scaled.predict_difficulty(ds)
    assert d.max() > 1.0
    with pytest.raises(InvalidParameterError, match="needs a DifficultyProbe fitted on pass rates"):
        scaled.select_band(ds)


def test_difficulty_label_auto_detection(data):
    ds, X, pass_rate = data
    with pytest.warns(
        UserWarning, match=r"Treating the labels in 'y' \(all in \[0, 1\]\) as pass rates.*label='difficulty'"
    ):
        assert DifficultyProbe(d_sae=D_SAE, cv=None, **FAST_GRID).fit(X, pass_rate).label_ == "pass_rate"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # named columns need no guess
        hard = ds.add_column("hardness", (1 - pass_rate).tolist())
        assert (
            DifficultyProbe(d_sae=D_SAE, cv=None, **FAST_GRID).fit(hard, label_column="hardness").label_ == "difficulty"
        )
        assert DifficultyProbe(d_sae=D_SAE, cv=None, **FAST_GRID).fit(X, 5 * pass_rate).label_ == "difficulty"
    with pytest.raises(InvalidParameterError, match=r"Pass rates must lie in \[0, 1\], but 'y' ranges over \[0, 5\]"):
        DifficultyProbe(d_sae=D_SAE, label="pass_rate", cv=None).fit(X, 5 * pass_rate)


def test_select_band_keeps_the_middle_pass_rates(data, difficulty):
    ds, _, _ = data
    kept, stats = difficulty.select_band(ds, low=0.3, high=0.7, return_stats=True)
    p = difficulty.predict_pass_rate(ds)
    in_band = (p >= 0.3) & (p <= 0.7)
    assert stats == {
        "n_rows": 300,
        "n_kept": int(in_band.sum()),
        "n_dropped": int((~in_band).sum()),
        "low": 0.3,
        "high": 0.7,
    }
    assert 0 < len(kept) < 300 and kept["prompt"] == [ds["prompt"][i] for i in np.flatnonzero(in_band)]
    # without the SAE columns the existing pass_rate_pred column is used
    mapped = ds.map(difficulty, batched=True).remove_columns(["sae_indices", "sae_values"])
    assert len(difficulty.select_band(mapped, low=0.3, high=0.7)) == len(kept)
    with pytest.raises(InvalidParameterError, match="Need 0 <= low <= high <= 1"):
        difficulty.select_band(ds, low=0.8, high=0.2)


def test_fixed_alpha_fits_a_plain_elastic_net(data):
    _, X, pass_rate = data
    probe = DifficultyProbe(d_sae=D_SAE, label="pass_rate", alpha=1e-3, l1_ratio=0.5, cv=None).fit(X, pass_rate)
    assert probe.alpha_ == 1e-3 and probe.l1_ratio_ == 0.5
    assert spearmanr(probe.predict(X), pass_rate)[0] > 0.8


# ====================================================================== QualityProbe
def test_quality_classifier_separates_a_planted_split_and_not_shuffled_labels(data, quality):
    ds, X, _pass_rate = data
    assert quality.task_ == "classification" and quality.classes_.tolist() == [False, True]
    assert quality.metrics_["auroc"] > 0.9
    shuffled = np.random.default_rng(1).permutation(np.asarray(ds["good"]))
    null = QualityProbe(d_sae=D_SAE).fit(X, shuffled)
    assert 0.35 < null.metrics_["auroc"] < 0.65  # the metric can fail


def test_quality_map_end_to_end_and_filter(data, quality, caplog):
    ds, X, _ = data
    out = ds.map(quality, batched=True, batch_size=50)
    q = np.asarray(out["quality"], dtype=np.float32)
    assert out.features["quality"].dtype == "float32" and q.min() >= 0 and q.max() <= 1
    np.testing.assert_array_equal(q, quality.predict_quality(X))  # dataset path == matrix path
    np.testing.assert_allclose(quality.predict_proba(X)[:, 1], q, rtol=1e-6)
    assert (quality.predict(X) == (q >= 0.5)).all()

    with caplog.at_level("INFO", logger="hf_saerl.estimators.probes"):
        kept, stats = quality.filter(ds, drop_fraction=0.25, return_stats=True)
    assert (stats["n_rows"], stats["n_kept"], stats["n_dropped"]) == (300, 225, 75) and len(kept) == 225
    assert "QualityProbe.filter: kept 225 of 300 rows, dropped 75 (threshold=" in caplog.text
    assert np.sort(q)[75] == np.float32(stats["threshold"])
    kept = quality.filter(out, threshold=0.5)
    assert len(kept) == int((q >= 0.5).sum()) and min(kept["quality"]) >= 0.5
    with pytest.raises(InvalidParameterError, match="Pass exactly one of threshold="):
        quality.filter(ds)
    with pytest.raises(InvalidParameterError, match="Pass exactly one of threshold="):
        quality.filter(ds, threshold=0.5, drop_fraction=0.1)
    with pytest.raises(InvalidParameterError, match=r"drop_fraction must be in \[0, 1\); got 1.5"):
        quality.filter(ds, drop_fraction=1.5)


def test_quality_regression_on_real_valued_scores(data):
    ds, X, _pass_rate = data
    probe = QualityProbe(d_sae=D_SAE).fit(ds, label_column="pass_rate")
    assert probe.task_ == "regression" and probe.classes_ is None
    assert probe.metrics_["pearson"] > 0.8 and probe.metrics_["spearman"] > 0.8
    np.testing.assert_array_equal(probe.predict_quality(X), probe.predict(X).astype(np.float32))
    with pytest.raises(AttributeError, match="needs a classifier probe"):
        probe.predict_proba(X)


def test_quality_string_labels_need_the_good_class(data):
    _, X, pass_rate = data
    labels = np.where(pass_rate > np.median(pass_rate), "keep", "junk")
    with pytest.raises(
        InvalidParameterError, match=r"Cannot tell which of the classes \['junk', 'keep'\] is the good one"
    ):
        QualityProbe(d_sae=D_SAE, cv=None).fit(X, labels)
    probe = QualityProbe(d_sae=D_SAE, positive_label="keep").fit(X, labels)
    assert probe.classes_.tolist() == ["junk", "keep"] and probe.metrics_["auroc"] > 0.9
    assert set(probe.predict(X[:20])) <= {"junk", "keep"}


def _log1p(X):
    L = X.astype(np.float64)
    L.data = np.log1p(L.data)
    return L


def test_metrics_and_predictions_equal_an_independent_sklearn_computation(data, quality, difficulty):
    """The out-of-fold metrics and the fitted predictions, recomputed with plain sklearn on the full-width
    log1p(X) (no active-column trick, no hf_saerl code)."""
    from scipy.stats import pearsonr
    from sklearn.linear_model import ElasticNet, ElasticNetCV, LogisticRegression, Ridge
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    ds, X, pass_rate = data
    L, good = _log1p(X), np.asarray(ds["good"]).astype(int)
    folds, strat = KFold(5, shuffle=True, random_state=0), StratifiedKFold(5, shuffle=True, random_state=0)

    logistic = LogisticRegression(C=1.0, max_iter=1000, random_state=0)
    oof = cross_val_predict(logistic, L, good, cv=strat, method="predict_proba")[:, 1]
    assert quality.metrics_["auroc"] == pytest.approx(roc_auc_score(good, oof), rel=1e-9)
    np.testing.assert_allclose(quality.cv_predictions_, oof, rtol=1e-9)
    np.testing.assert_allclose(quality.predict_quality(X), logistic.fit(L, good).predict_proba(L)[:, 1], atol=1e-6)

    ridge_probe = QualityProbe(d_sae=D_SAE).fit(X, pass_rate)
    oof = cross_val_predict(Ridge(alpha=1.0), L, pass_rate, cv=folds)
    assert ridge_probe.metrics_["pearson"] == pytest.approx(pearsonr(pass_rate, oof)[0], rel=1e-9)
    assert ridge_probe.metrics_["spearman"] == pytest.approx(spearmanr(pass_rate, oof)[0], rel=1e-9)
    np.testing.assert_allclose(ridge_probe.predict(X), Ridge(alpha=1.0).fit(L, pass_rate).predict(L), atol=1e-9)

    # DifficultyProbe (issue 12). Default protocol: alpha / l1_ratio chosen once by the folds, the folds scored there.
    m = difficulty.metrics_
    assert m["cv_protocol"] == "once" and "slightly optimistic" in m["cv_protocol_note"]
    assert m["spearman"] == pytest.approx(spearmanr(pass_rate, difficulty.cv_predictions_)[0], rel=1e-9)
    tight = {"tol": 1e-6, "max_iter": 100_000}
    once = DifficultyProbe(d_sae=D_SAE, label="pass_rate", **FAST_GRID, **tight).fit(X, pass_rate)
    oof = np.empty(len(pass_rate))
    for train, test in folds.split(L):
        enet = ElasticNet(alpha=once.alpha_, l1_ratio=once.l1_ratio_, **tight).fit(L[train], pass_rate[train])
        oof[test] = enet.predict(L[test])
    np.testing.assert_allclose(once.cv_predictions_, oof, rtol=0, atol=1e-6)
    # cv_protocol="nested" over the whole grid is sklearn's ElasticNetCV nested in cross_val_predict
    nested = DifficultyProbe(
        d_sae=D_SAE, label="pass_rate", cv_protocol="nested", patience=None, **FAST_GRID, **tight
    ).fit(X, pass_rate)
    enet = ElasticNetCV(l1_ratio=[0.5, 1.0], alphas=20, cv=folds, random_state=0, **tight)
    oof = cross_val_predict(enet, L, pass_rate, cv=folds)  # alpha / l1_ratio chosen inside each outer fold
    np.testing.assert_allclose(nested.cv_predictions_, oof, rtol=0, atol=1e-6)
    n = nested.metrics_
    assert n["pearson"] == pytest.approx(pearsonr(pass_rate, oof)[0], rel=1e-6)
    assert n["spearman"] == pytest.approx(spearmanr(pass_rate, oof)[0], rel=1e-6)
    assert n["r2"] == pytest.approx(1 - ((pass_rate - oof) ** 2).sum() / ((pass_rate - pass_rate.mean()) ** 2).sum())
    enet.fit(L, pass_rate)
    assert (nested.alpha_, nested.l1_ratio_) == pytest.approx((enet.alpha_, enet.l1_ratio_))
    np.testing.assert_allclose(nested.predict(X), enet.predict(L), atol=1e-6)
    np.testing.assert_allclose(nested.predict_pass_rate(X), np.clip(enet.predict(L), 0, 1), atol=1e-6)


def test_sklearn_manners(quality):
    params = quality.get_params()
    assert params["d_sae"] == D_SAE and params["transform"] == ("log1p",)
    twin = clone(quality)
    assert twin.get_params() == params and not hasattr(twin, "coef_")
    twin.set_params(C=0.5, output_column="q")
    assert twin.C == 0.5 and twin.output_column == "q"
    X, _, _, pass_rate = planted(n=40)
    assert twin.fit(X, pass_rate > 0.5) is twin
    assert list(twin(planted_dataset(n=5)[0][:5])) == ["q"]


@pytest.mark.parametrize("make", [lambda: QualityProbe(d_sae=D_SAE), lambda: DifficultyProbe(d_sae=D_SAE)])
def test_not_fitted_errors(make, data, tmp_path):
    ds, X, _ = data
    probe = make()
    name = type(probe).__name__
    with pytest.raises(
        NotFittedError,
        match=rf"This {name} is not fitted yet, so predict cannot run. Call fit\(...\) "
        rf"first, or load a fitted one with {name}.from_pretrained\(path\)",
    ):
        probe.predict(X)
    with pytest.raises(NotFittedError, match=r"so dataset.map\(estimator\) cannot run"):
        probe(ds[:4])
    with pytest.raises(NotFittedError, match="so save_pretrained cannot run"):
        probe.save_pretrained(tmp_path / "never-written")
    with pytest.raises(NotFittedError, match="so decision_function cannot run"):
        probe.decision_function(X)
    other = probe.predict_quality if isinstance(probe, QualityProbe) else probe.predict_pass_rate
    with pytest.raises(NotFittedError, match=f"so {other.__name__} cannot run"):
        other(X)
    assert not (tmp_path / "never-written" / f"{probe.kind}.json").exists()


def test_a_failed_fit_leaves_the_probe_unfitted(data):
    _, X, _pass_rate = data
    probe = QualityProbe(d_sae=D_SAE)
    with pytest.raises(InvalidParameterError, match="cv=5 needs at least 5 labelled rows of each class"):
        probe.fit(X[:6], [True, False, False, False, False, False])  # task_ is set before the cv check fails
    with pytest.raises(NotFittedError):
        probe.predict(X)


def test_refit_drops_stale_state_and_reads_the_new_transform(data):
    ds, X, pass_rate = data
    probe = QualityProbe(d_sae=D_SAE, cv=2).fit(X, pass_rate > 0.5)
    assert probe.cv_predictions_.shape == (300,)
    probe.set_params(cv=None).fit(X, pass_rate > 0.5)
    assert not hasattr(probe, "cv_predictions_")
    # the transform of the parameters decides whether the token counts are read, not the last fit's transform_
    probe.set_params(transform=["log1p", {"name": "length", "by": "tokens"}]).fit(ds, label_column="good")
    assert probe.transform_.needs_n_tokens


# ====================================================================== bad input
def test_missing_sae_columns_list_what_was_found(data):
    ds, _, _ = data
    bare = ds.remove_columns(["sae_indices", "sae_values"])
    with pytest.raises(
        MissingColumnError, match=r"Missing column\(s\) \['sae_indices', 'sae_values'\]; found \['good', 'mean_act'"
    ):
        QualityProbe(d_sae=D_SAE).fit(bare, label_column="good")
    with pytest.raises(
        MissingColumnError, match=r"Missing column 'label' holding the labels; found \['good', 'mean_act', 'pass_rate'"
    ):
        QualityProbe(d_sae=D_SAE).fit(ds, label_column="label")
    with pytest.raises(
        InvalidParameterError, match=r"No labels: pass label_column='<column>' \(columns found: \['good'"
    ):
        QualityProbe(d_sae=D_SAE).fit(ds)
    with pytest.raises(InvalidParameterError, match="either as y= or as label_column="):
        QualityProbe(d_sae=D_SAE).fit(ds, [True] * 300, label_column="good")


def test_missing_labels_are_dropped_with_a_count(data):
    ds, _, pass_rate = data
    labels = pass_rate.tolist()
    labels[3], labels[10], labels[20] = None, float("nan"), None
    with pytest.warns(UserWarning, match=r"Dropped 3 of 300 rows whose label 'pass_rate' is missing \(None or NaN\)"):
        probe = DifficultyProbe(d_sae=D_SAE, cv=None, **FAST_GRID).fit(
            ds.remove_columns("pass_rate").add_column("pass_rate", labels), label_column="pass_rate"
        )
    assert probe.metrics_["n_dropped_labels"] == 3 and probe.metrics_["n_train"] == 297
    with pytest.raises(InvalidParameterError, match=r"All 300 labels in 'y' are missing"):
        QualityProbe(d_sae=D_SAE).fit(ds, [None] * 300)


def test_infinite_labels_name_the_column(data):
    ds, _, pass_rate = data
    labels = pass_rate.tolist()
    labels[7] = float("inf")
    with pytest.raises(NonFiniteError, match=r"1 label\(s\) in 'pass_rate' are infinite \(rows \[7\]\)"):
        DifficultyProbe(d_sae=D_SAE, cv=None, **FAST_GRID).fit(
            ds.remove_columns("pass_rate").add_column("pass_rate", labels), label_column="pass_rate"
        )


def test_label_shape_problems(data):
    _, X, _pass_rate = data
    with pytest.raises(
        InvalidParameterError, match=r"single class \(True\) among 300 labelled rows.*task='regression'"
    ):
        QualityProbe(d_sae=D_SAE).fit(X, [True] * 300)
    with pytest.raises(InvalidParameterError, match=r"binary classifier, but 'y' has 3 classes \['a', 'b', 'c'\]"):
        QualityProbe(d_sae=D_SAE).fit(X, ["a", "b", "c"] * 100)
    with pytest.raises(InvalidParameterError, match=r"All 300 labels in 'y' equal 0.5: nothing to learn"):
        DifficultyProbe(d_sae=D_SAE).fit(X, [0.5] * 300)
    with pytest.raises(InvalidParameterError, match=r"Got 10 labels for 300 rows"):
        QualityProbe(d_sae=D_SAE).fit(X, [True, False] * 5)


def test_too_few_rows_for_cv_and_cv_none_for_tiny_data():
    X, _, _, pass_rate = planted(n=30, seed=3)
    good = np.zeros(30, dtype=bool)
    good[:3] = True
    with pytest.raises(
        InvalidParameterError,
        match=r"cv=5 needs at least 5 labelled rows of each class; class True has 3 \(of 30 rows\).*cv=None",
    ):
        QualityProbe(d_sae=D_SAE).fit(X, good)
    with pytest.raises(
        InvalidParameterError, match=r"cv=5 needs at least 10 labelled rows \(2 per fold\); got 6.*cv=None"
    ):
        DifficultyProbe(d_sae=D_SAE, label="pass_rate").fit(X[:6], pass_rate[:6])
    tiny = QualityProbe(d_sae=D_SAE, cv=None).fit(X[:4], [True, False, True, False])
    assert "auroc" not in tiny.metrics_ and tiny.metrics_["n_train"] == 4
    assert (
        DifficultyProbe(d_sae=D_SAE, label="pass_rate", cv=None, **FAST_GRID)
        .fit(X[:6], pass_rate[:6])
        .metrics_["n_train"]
        == 6
    )
    with pytest.raises(
        InvalidParameterError,
        match=r"needs at least 3 labelled rows; got 2. Pass a fixed alpha= and a single l1_ratio=",
    ):
        DifficultyProbe(d_sae=D_SAE, label="pass_rate", cv=None).fit(X[:2], pass_rate[:2])


def test_empty_feature_rows_are_warned_and_kept(data):
    ds, _, _ = data
    empties = ds.map(
        lambda row, i: {
            "sae_indices": [] if i in (4, 9) else row["sae_indices"],
            "sae_values": [] if i in (4, 9) else row["sae_values"],
        },
        with_indices=True,
    )
    with pytest.warns(UserWarning, match=r"2 of 300 rows have no active SAE latent.*they are kept"):
        probe = QualityProbe(d_sae=D_SAE, cv=None).fit(empties, label_column="good")
    assert probe.metrics_["n_empty_rows"] == 2 and probe.metrics_["n_train"] == 300
    q = probe.predict_quality(empties.select([4, 9]))
    assert np.array_equal(q, np.full(2, 1 / (1 + np.exp(-probe.intercept_[0])), dtype=np.float32))


@pytest.mark.parametrize(
    "probe, labels",
    [
        (QualityProbe(d_sae=D_SAE, cv=2), lambda rate: rate > 0.5),
        (DifficultyProbe(d_sae=D_SAE, label="pass_rate", cv=2), lambda rate: rate),
    ],
)
def test_all_feature_rows_empty_is_a_clear_error(probe, labels, data):
    _, _, pass_rate = data
    with (
        pytest.warns(UserWarning, match="20 of 20 rows have no active SAE latent"),
        pytest.raises(InvalidParameterError, match=r"None of the 20 labelled rows has an active SAE latent"),
    ):
        clone(probe).fit(sp.csr_matrix((20, D_SAE)), labels(pass_rate[:20]))


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: QualityProbe(d_sae=0), r"d_sae must be a positive int \(the SAE width\); got 0"),
        (lambda: QualityProbe(d_sae=D_SAE, task="rank"), r"task must be 'auto', 'classification' or 'regression'"),
        (lambda: QualityProbe(d_sae=D_SAE, cv=1), r"cv must be an int >= 2 \(number of folds\) or None"),
        (lambda: QualityProbe(d_sae=D_SAE, transform=["sqrt"]), r"Unknown transform step 'sqrt'"),
        (lambda: DifficultyProbe(d_sae=D_SAE, label="rate"), r"label must be 'auto', 'pass_rate' or 'difficulty'"),
        (lambda: DifficultyProbe(d_sae=D_SAE, l1_ratio=(0.5, 2.0)), r"l1_ratio must be a float or a non-empty list"),
    ],
)
def test_bad_parameters_fail_at_fit(make, match, data):
    _, X, pass_rate = data
    with pytest.raises(InvalidParameterError, match=match):
        make().fit(X, pass_rate > 0.5)


def test_width_mismatch_names_both_widths(quality, data):
    _ds, X, _ = data
    with pytest.raises(
        WidthMismatchError, match=r"X has 3000 columns but this QualityProbe works on SAE features of width d_sae=2000"
    ):
        quality.predict(sp.hstack([X, sp.csr_matrix((300, 1000))]).tocsr())
    wide = Dataset.from_dict({"sae_indices": [[5, 2500]], "sae_values": [[1.0, 2.0]]})
    with pytest.raises(
        WidthMismatchError,
        match=r"width d_sae=2000, but the data does not fit: .*\[5, 2500\].*encode the data with that SAE",
    ):
        wide.map(quality, batched=True)


def test_non_finite_features_are_rejected(quality, data):
    _, X, pass_rate = data
    bad = X.copy()
    bad.data[5] = np.nan
    with pytest.raises(
        NonFiniteError, match=r"The SAE features hold 1 NaN or infinite value\(s\); re-encode those rows"
    ):
        QualityProbe(d_sae=D_SAE).fit(bad, pass_rate > 0.5)
    # the message is the estimator's own, or (with the encoding layer's sparse_matrix check) the column reader's
    with pytest.raises(
        NonFiniteError,
        match=r"(The SAE features \(column 'sae_values'\)|Column 'sae_values') hold 1 NaN "
        r"or infinite value",
    ):
        quality({"sae_indices": [[1, 2]], "sae_values": [[1.0, float("inf")]]})


def test_token_length_transform_reads_the_n_tokens_column(data):
    ds, X, _pass_rate = data
    spec = ["log1p", {"name": "length", "by": "tokens", "power": 0.5}]
    probe = QualityProbe(d_sae=D_SAE, transform=spec, cv=None).fit(ds, label_column="good")
    n_tokens = np.asarray(ds["sae_n_tokens"])
    np.testing.assert_array_equal(probe.predict_quality(ds), probe.predict_quality(X, n_tokens=n_tokens))
    with pytest.raises(MissingColumnError, match=r"Missing column 'sae_n_tokens' holding the token counts"):
        probe.predict_quality(ds.remove_columns("sae_n_tokens"))


# ====================================================================== save / load (estimators.base, .saving, .files)
def _fitted(kind, data):
    ds, _, _ = data
    if kind == "quality":
        return QualityProbe(d_sae=D_SAE, transform=["log1p", "std"], cv=None).fit(ds, label_column="good")
    return DifficultyProbe(d_sae=D_SAE, label="pass_rate", cv=None, **FAST_GRID).fit(ds, label_column="pass_rate")


@pytest.mark.parametrize("kind", ["quality", "difficulty"])
def test_save_load_round_trip_is_bit_identical(kind, data, tmp_path):
    probe = _fitted(kind, data)
    probe.save_pretrained(tmp_path)
    stem = probe.kind
    assert {p.name for p in tmp_path.iterdir()} == {"config.json", "README.md", f"{stem}.json", f"{stem}.safetensors"}
    card = (tmp_path / "README.md").read_text()
    assert (
        "library_name: hf_saerl" in card and f"hf_saerl.{type(probe).__name__}" in card and "| n_train | 300 |" in card
    )
    state = json.loads((tmp_path / f"{stem}.json").read_text())
    assert state["format_version"] == 1 and state["d_sae"] == D_SAE and state["hf_saerl_version"]

    (tmp_path / "junk.bin").write_bytes(b"\x80\x04 not a pickle")  # unexpected files are ignored
    loaded = type(probe).from_pretrained(tmp_path)
    assert jsonable(loaded.get_params()) == jsonable(probe.get_params())
    assert np.array_equal(loaded.coef_, probe.coef_) and np.array_equal(loaded.intercept_, probe.intercept_)
    new, X_new, _ = planted_dataset(n=120, seed=7)
    a, b = probe(new[:]), loaded(new[:])
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert np.array_equal(probe.predict(X_new), loaded.predict(X_new))
    assert loaded.metrics_ == json.loads(json.dumps(probe.metrics_))
    assert Hasher.hash(loaded) == Hasher.hash(probe) and loaded.fingerprint == probe.fingerprint


def test_set_params_is_saved_and_kwargs_override(data, tmp_path):
    probe = _fitted("quality", data).set_params(output_column="q")
    probe.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["output_column"] == "q"
    loaded = QualityProbe.from_pretrained(tmp_path, output_column="quality_v2")
    assert list(loaded(data[0][:3])) == ["quality_v2"]


def test_subfolder_and_hub_repo_loading(data, tmp_path, monkeypatch):
    import huggingface_hub.hub_mixin

    probe = _fitted("difficulty", data)
    probe._save_pretrained(tmp_path / "repo" / "difficulty")  # as a pipeline bundle would
    local = DifficultyProbe._from_pretrained(model_id=str(tmp_path / "repo"), subfolder="difficulty")
    assert np.array_equal(local.coef_, probe.coef_)

    calls = []

    def fake_download(repo_id, filename, *, subfolder=None, **kwargs):
        calls.append((repo_id, subfolder, filename))
        path = tmp_path / "repo" / (subfolder or "") / filename
        if not path.exists():
            import httpx2
            from huggingface_hub.errors import RemoteEntryNotFoundError

            response = httpx2.Response(404, request=httpx2.Request("GET", f"https://huggingface.co/{repo_id}"))
            raise RemoteEntryNotFoundError(f"404 {filename}", response=response)
        return str(path)

    monkeypatch.setattr(files_module, "hf_hub_download", fake_download)
    monkeypatch.setattr(huggingface_hub.hub_mixin, "hf_hub_download", fake_download)  # nothing downloads past files
    remote = DifficultyProbe._from_pretrained(model_id="someone/probes", subfolder="difficulty", revision="main")
    assert np.array_equal(remote.coef_, probe.coef_)
    assert ("someone/probes", "difficulty", "difficulty_probe.safetensors") in calls
    with pytest.raises(
        FileNotFoundError,
        match=r"config.json is missing from Hub repo 'someone/probes'. A saved "
        r"DifficultyProbe holds \['config.json', 'difficulty_probe.json'",
    ):
        DifficultyProbe.from_pretrained("someone/probes")  # the probe sits in a subfolder


@pytest.mark.parametrize(
    "damage, error, match",
    [
        (
            lambda d: (d / "quality_probe.safetensors").unlink(),
            FileNotFoundError,
            r"quality_probe.safetensors is missing. A saved QualityProbe folder holds .*found \['README.md', 'config.json', 'quality_probe.json'\]",
        ),
        (lambda d: (d / "config.json").unlink(), FileNotFoundError, r"config.json is missing"),
        (
            lambda d: (d / "quality_probe.safetensors").write_bytes(
                (d / "quality_probe.safetensors").read_bytes()[:100]
            ),
            BundleError,
            r"Could not read .*quality_probe.safetensors.*corrupt or truncated",
        ),
        (
            lambda d: (d / "quality_probe.json").write_text("{not json"),
            BundleError,
            r"Could not parse .*quality_probe.json",
        ),
        (lambda d: (d / "config.json").write_text("[1, 2]"), BundleError, r"config.json .*should hold a JSON object"),
        (lambda d: (d / "config.json").write_text('{"C": NaN}'), BundleError, r"Could not parse .*config.json"),
        (
            lambda d: _edit_state(d, format_version=99, hf_saerl_version="9.0"),
            BundleError,
            r"written in format version 99 by hf_saerl 9.0; this hf_saerl .* reads format versions up to 1. Upgrade hf_saerl",
        ),
        (lambda d: _edit_state(d, format_version="1"), BundleError, r"has no valid 'format_version' \(found '1'\)"),
        (
            lambda d: _edit_state(d, estimator="DifficultyProbe"),
            BundleError,
            r"holds a 'DifficultyProbe', not a QualityProbe: load it with DifficultyProbe.from_pretrained",
        ),
        (
            lambda d: _edit_state(d, fitted={"task_": "classification"}),
            BundleError,
            r"lacks the fitted value\(s\) \['classes_'\]",
        ),
        (
            lambda d: _edit_state(d, fitted={"task_": "ranking", "classes_": None}),
            BundleError,
            r"saved task_='ranking'",
        ),
        (lambda d: _edit_state(d, transform=[{"name": "sqrt"}]), BundleError, r"the saved transform is invalid"),
        (
            lambda d: _edit_arrays(d, coef=np.zeros(3)),
            BundleError,
            r"Array 'coef' in .* has shape \(3,\), expected \(2000,\)",
        ),
        (lambda d: _edit_arrays(d, coef=None), BundleError, r"has no array 'coef'"),
        (
            lambda d: _edit_arrays(d, **{"transform.1.scale": np.ones(5)}),
            BundleError,
            r"Saved array 'transform.1.scale' has shape \(5,\), expected \(2000,\)",
        ),
    ],
)
def test_damaged_saves_are_clear_errors(damage, error, match, data, tmp_path):
    _fitted("quality", data).save_pretrained(tmp_path)
    damage(tmp_path)
    with pytest.raises(error, match=match):
        QualityProbe.from_pretrained(tmp_path)


def test_load_width_override_and_bad_paths(data, tmp_path):
    _fitted("quality", data).save_pretrained(tmp_path)
    with pytest.raises(WidthMismatchError, match=r"saved for SAE width d_sae=2000, but d_sae=4000 was requested"):
        QualityProbe.from_pretrained(tmp_path, d_sae=4000)
    loaded = QualityProbe.from_pretrained(tmp_path)
    with pytest.raises(
        WidthMismatchError, match=r"width d_sae=2000, but the data does not fit: .*encode the data with that SAE"
    ):
        loaded({"sae_indices": [[3, 2999]], "sae_values": [[1.0, 1.0]]})  # features of a wider SAE
    with pytest.raises(
        WidthMismatchError, match=r"X has 4096 columns but this QualityProbe works on SAE features of width d_sae=2000"
    ):
        loaded.predict(sp.csr_matrix((2, 4096)))
    with pytest.raises(FileNotFoundError, match=r"Directory '/nonexistent/probe' does not exist"):
        QualityProbe.from_pretrained("/nonexistent/probe")
    with pytest.raises(
        FileNotFoundError, match=r"Directory 'not a/valid repo' does not exist \(and it is not a Hub repo id"
    ):
        QualityProbe.from_pretrained("not a/valid repo")
    with pytest.raises(FileNotFoundError, match=r"config.json' is a file; pass the folder written by save_pretrained"):
        QualityProbe.from_pretrained(tmp_path / "config.json")
    (tmp_path / "empty").mkdir()
    with pytest.raises(
        FileNotFoundError, match=r"config.json is missing. A saved QualityProbe folder holds .*; found \[\]"
    ):
        QualityProbe.from_pretrained(tmp_path / "empty")


def _edit_state(directory, **changes):
    edit_json(directory / "quality_probe.json", **changes)


def _edit_arrays(directory, **changes):
    edit_arrays(directory / "quality_probe.safetensors", **changes)


# ====================================================================== scale, fingerprint, docs
def test_wide_sae_never_densifies():
    d_sae, n = 200_000, 2000
    ds, _, _pass_rate = planted_dataset(n=n, d_sae=d_sae)
    tracemalloc.start()
    start = time.perf_counter()
    q = QualityProbe(d_sae=d_sae, cv=2).fit(ds, label_column="good")
    d = DifficultyProbe(d_sae=d_sae, label="pass_rate", alpha=1e-3, l1_ratio=0.5, cv=2).fit(
        ds, label_column="pass_rate"
    )
    out = q(ds[:500])
    elapsed = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 150e6, f"peak {peak / 1e6:.0f} MB; a dense X would be {n * d_sae * 8 / 1e9:.1f} GB"
    assert elapsed < 30
    assert q.metrics_["auroc"] > 0.9 and d.metrics_["spearman"] > 0.8 and len(out["quality"]) == 500


def test_fingerprint_is_deterministic_and_tracks_weights(data):
    _ds, X, pass_rate = data
    a = QualityProbe(d_sae=D_SAE, cv=None).fit(X, pass_rate > 0.5)
    b = QualityProbe(d_sae=D_SAE, cv=None).fit(X, pass_rate > 0.5)
    c = QualityProbe(d_sae=D_SAE, cv=None).fit(X, pass_rate > 0.6)
    assert Hasher.hash(a) == Hasher.hash(b) != Hasher.hash(c)
    assert QualityProbe(d_sae=D_SAE).fingerprint != QualityProbe(d_sae=D_SAE, C=2.0).fingerprint  # unfitted works too


def test_docstring_examples_run():
    assert doctest.testmod(probes_module, optionflags=doctest.ELLIPSIS).failed == 0
    assert doctest.testmod(base_module).failed == 0
    assert doctest.testmod(files_module).failed == 0
