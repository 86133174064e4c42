"""The probes' feature choice (``feature_set="sae" | "raw" | "both"``, ``raw_column=``): fits checked against
independent scikit-learn fits, ``Dataset.map`` against direct calls, saving, the errors, and the default unchanged
since commit e703016 (``tests/fixtures/sae_probes_e703016``)."""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import scipy.sparse as sp
from datasets import Dataset, Features, List, Value
from sklearn.linear_model import ElasticNet, LogisticRegression, Ridge

from hf_saerl import DifficultyProbe, QualityProbe
from hf_saerl.errors import (
    BundleError,
    InvalidParameterError,
    MissingColumnError,
    NonFiniteError,
    ParameterTypeError,
    WidthMismatchError,
)
from hf_saerl.estimators.evaluation import compare_features
from hf_saerl.testing import edit_arrays

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
_spec = importlib.util.spec_from_file_location("sae_probes_e703016", FIXTURES / "sae_probes_e703016" / "make.py")
assert _spec is not None and _spec.loader is not None
fixture = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fixture)
D_SAE, N_RAW = fixture.D_SAE, fixture.N_RAW


@pytest.fixture(scope="module")
def data():
    """``(dataset, X, raw, good, pass_rate)``: 160 rows, SAE columns of width 300, 8 raw activations in ``mean_act``
    (means 1.5, scales 0.5 to 3), raw dimension 0 and latents 0-2 carrying the signal."""
    rows, X, raw = fixture.planted()
    ds = Dataset.from_dict(rows)
    return ds, X, raw, np.asarray(rows["good"]), np.asarray(rows["pass_rate"])


def by_hand(raw):
    """Standardised columns, computed independently: population standard deviation, no zero guard needed here."""
    return (raw - raw.mean(axis=0)) / raw.std(axis=0)


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


# ---------------------------------------------------------------------------------- the default is unchanged
def test_default_sae_probes_are_bit_identical_to_e703016(data):
    """Coefficients and mapped columns of the default probes equal, bit for bit, those written by the code before
    the feature choice existed (``make.py`` in the fixture folder, run at e703016)."""
    expected = np.load(FIXTURES / "sae_probes_e703016" / "expected.npz")
    got = fixture.outputs(fixture.planted()[0])
    assert sorted(got) == sorted(expected.files)
    for key in expected.files:
        np.testing.assert_array_equal(got[key], expected[key], err_msg=key)
    quality, _ = fixture.fit_default_probes(fixture.planted()[0])
    assert quality.feature_set == quality.feature_set_ == "sae" and quality.raw_column is None
    assert not hasattr(quality, "raw_mean_") and "raw_mean" not in quality._all_arrays()


def test_a_bundle_saved_before_the_feature_choice_loads_as_an_sae_probe():
    probe = QualityProbe.from_pretrained(FIXTURES / "bundles_0_1_0" / "quality_probe")
    assert probe.feature_set == probe.feature_set_ == "sae" and probe.raw_column is None
    assert probe.n_features_in_ == probe.d_sae == probe.coef_.shape[0]


# ---------------------------------------------------------------------------------- against scikit-learn
def test_raw_classifier_equals_sklearn_on_the_standardised_matrix(data):
    ds, _X, raw, good, _ = data
    probe = QualityProbe(D_SAE, feature_set="raw", raw_column="mean_act").fit(ds, label_column="good")
    np.testing.assert_allclose(probe.raw_mean_, raw.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(probe.raw_scale_, raw.std(axis=0), rtol=1e-12)
    reference = LogisticRegression(C=1.0, max_iter=1000, random_state=0).fit(by_hand(raw), good)
    np.testing.assert_allclose(probe.coef_, reference.coef_.ravel(), rtol=1e-5, atol=1e-7)
    assert probe.intercept_[0] == pytest.approx(reference.intercept_[0], rel=1e-5, abs=1e-7)
    new = raw[:20] * 1.1 - 0.3  # unseen rows use the fit's mean and scale, not their own
    np.testing.assert_allclose(
        probe.predict_proba(new), reference.predict_proba((new - raw.mean(0)) / raw.std(0)), atol=1e-6
    )
    assert probe.metrics_["auroc"] > 0.8 and probe.n_features_in_ == N_RAW and probe.sae_identity_ is None


def test_raw_regression_and_difficulty_equal_ridge_and_elastic_net(data):
    ds, _X, raw, _good, pass_rate = data
    ridge = QualityProbe(D_SAE, task="regression", alpha=3.0, feature_set="raw", raw_column="mean_act", cv=None)
    ridge.fit(ds, label_column="pass_rate")
    reference = Ridge(alpha=3.0).fit(by_hand(raw), pass_rate)
    np.testing.assert_allclose(ridge.coef_, reference.coef_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ridge.predict(raw), reference.predict(by_hand(raw)), atol=1e-10)

    enet = DifficultyProbe(
        D_SAE, label="pass_rate", alpha=1e-3, l1_ratio=0.5, cv=None, tol=1e-10, max_iter=100_000, feature_set="raw"
    ).fit(raw, pass_rate)
    reference = ElasticNet(alpha=1e-3, l1_ratio=0.5, tol=1e-10, max_iter=100_000).fit(by_hand(raw), pass_rate)
    np.testing.assert_allclose(enet.coef_, reference.coef_, atol=1e-8)
    np.testing.assert_allclose(enet.predict(raw), reference.predict(by_hand(raw)), atol=1e-8)
    expected = np.clip(reference.predict(by_hand(raw)), 0, 1).astype(np.float32)
    np.testing.assert_allclose(enet.predict_pass_rate(raw), expected, atol=1e-6)


def test_both_equals_sklearn_on_the_hstack(data):
    ds, X, raw, good, pass_rate = data
    stacked = sp.hstack([sp.csr_matrix(np.log1p(X.toarray())), sp.csr_matrix(by_hand(raw))], format="csr")
    probe = QualityProbe(D_SAE, feature_set="both", raw_column="mean_act").fit(ds, label_column="good")
    reference = LogisticRegression(C=1.0, max_iter=1000, random_state=0).fit(stacked, good)
    assert probe.coef_.shape == (D_SAE + N_RAW,) and probe.n_features_in_ == D_SAE + N_RAW
    np.testing.assert_allclose(probe.coef_, reference.coef_.ravel(), atol=1e-4)
    np.testing.assert_allclose(probe.predict_proba(ds)[:, 1], reference.predict_proba(stacked)[:, 1], atol=1e-5)

    enet = DifficultyProbe(
        D_SAE, label="pass_rate", alpha=1e-3, l1_ratio=0.5, cv=None, tol=1e-10, max_iter=100_000, feature_set="both"
    ).fit((X, raw), pass_rate)
    reference = ElasticNet(alpha=1e-3, l1_ratio=0.5, tol=1e-10, max_iter=100_000).fit(stacked, pass_rate)
    np.testing.assert_allclose(enet.coef_, reference.coef_, atol=1e-6)  # two solvers, each to tol: ~3e-8 apart
    np.testing.assert_allclose(enet.predict((X, raw)), reference.predict(stacked), atol=1e-6)


# ---------------------------------------------------------------------------------- Dataset.map
@pytest.mark.parametrize("feature_set", ["raw", "both"])
def test_map_equals_direct_calls_on_every_input_form(data, feature_set):
    ds, X, raw, _good, pass_rate = data
    probe = quiet(DifficultyProbe(D_SAE, n_alphas=8, feature_set=feature_set, raw_column="mean_act").fit, ds, pass_rate)
    direct = probe.predict_difficulty(ds)  # a Dataset: read through Python lists
    mapped = ds.map(probe, batched=True, batch_size=37)  # LazyBatches: read from the Arrow buffers
    assert mapped.features["difficulty"] == Value("float32") and mapped.features["pass_rate_pred"] == Value("float32")
    np.testing.assert_array_equal(np.asarray(mapped["difficulty"]), direct)
    arrow = ds.with_format("arrow").map(probe, batched=True, batch_size=50)  # pa.Table batches
    np.testing.assert_array_equal(np.asarray(arrow["difficulty"]), direct)
    fixed = ds.cast(Features({**ds.features, "mean_act": List(Value("float32"), length=N_RAW)}))
    assert pa.types.is_fixed_size_list(fixed.data.schema.field("mean_act").type)  # as SAEEncoder writes it
    expected = probe.predict_difficulty(raw.astype(np.float32) if feature_set == "raw" else (X, raw.astype(np.float32)))
    np.testing.assert_array_equal(np.asarray(fixed.map(probe, batched=True, batch_size=37)["difficulty"]), expected)
    matrix = raw if feature_set == "raw" else (X, raw)
    np.testing.assert_allclose(probe.predict_difficulty(matrix), direct, atol=1e-6)
    fp = probe.fingerprint
    assert fp != quiet(DifficultyProbe(D_SAE, n_alphas=8).fit, ds, pass_rate).fingerprint
    assert fp != DifficultyProbe(D_SAE, feature_set=feature_set, raw_column="other").fingerprint


def test_select_and_filter_need_only_the_raw_column(data):
    ds, _X, _raw, _good, _ = data
    probe = QualityProbe(D_SAE, feature_set="raw", raw_column="mean_act").fit(ds, label_column="good")
    raw_only = ds.select_columns(["mean_act"])
    kept, stats = probe.filter(raw_only, threshold=0.5, return_stats=True)
    assert stats["n_kept"] == int((probe.predict_quality(raw_only) >= 0.5).sum()) == len(kept) > 0
    scored = ds.map(probe, batched=True).select_columns(["quality"])  # no input columns: the column is read
    assert len(probe.filter(scored, threshold=0.5)) == len(kept)


# ---------------------------------------------------------------------------------- saving
@pytest.mark.parametrize("feature_set", ["raw", "both"])
def test_save_load_round_trip_predicts_identically(data, tmp_path, feature_set):
    ds, _X, _raw, _good, _ = data
    probe = QualityProbe(D_SAE, feature_set=feature_set, raw_column="mean_act").fit(ds, label_column="good")
    probe.save_pretrained(tmp_path)
    loaded = QualityProbe.from_pretrained(tmp_path)
    assert (loaded.feature_set, loaded.raw_column, loaded.feature_set_) == (feature_set, "mean_act", feature_set)
    assert loaded.n_features_in_ == probe.n_features_in_ and loaded.fingerprint == probe.fingerprint
    np.testing.assert_array_equal(loaded.raw_mean_, probe.raw_mean_)
    np.testing.assert_array_equal(loaded.raw_scale_, probe.raw_scale_)
    np.testing.assert_array_equal(
        np.asarray(ds.map(loaded, batched=True)["quality"]), np.asarray(ds.map(probe, batched=True)["quality"])
    )
    edit_arrays(tmp_path / "quality_probe.safetensors", raw_scale=lambda a: a * 0)
    with pytest.raises(BundleError, match=r"'raw_scale' .* value\(s\) <= 0"):
        QualityProbe.from_pretrained(tmp_path)
    edit_arrays(tmp_path / "quality_probe.safetensors", raw_scale=None)
    with pytest.raises(BundleError, match="no array 'raw_scale'"):
        QualityProbe.from_pretrained(tmp_path)


# ---------------------------------------------------------------------------------- errors
def test_a_missing_raw_column_is_a_clear_error_at_fit(data):
    ds, _X, _raw, good, _ = data
    probe = QualityProbe(D_SAE, feature_set="raw")  # constructing validates nothing (sklearn manners)
    with pytest.raises(InvalidParameterError, match=r"raw_column=None\. Pass raw_column=.*or feature_set='sae'"):
        probe.fit(ds, label_column="good")
    with pytest.raises(
        MissingColumnError, match=r"Missing column 'acts'.*found \[.*'mean_act'.*FeatureColumns\(activations="
    ):
        QualityProbe(D_SAE, feature_set="both", raw_column="acts").fit(ds, label_column="good")
    with pytest.raises(InvalidParameterError, match=r"feature_set must be 'sae', 'raw' or 'both'; got 'dense'"):
        QualityProbe(D_SAE, feature_set="dense").fit(ds, label_column="good")
    with pytest.raises(ParameterTypeError, match="raw_column must be a column name"):
        QualityProbe(D_SAE, feature_set="raw", raw_column=3).fit(ds, label_column="good")
    with pytest.raises(InvalidParameterError, match=r"needs the SAE latents and the raw activations.*pair"):
        QualityProbe(D_SAE, feature_set="both").fit(np.zeros((4, D_SAE)), good[:4])
    ragged = ds.select(range(10)).map(lambda r, i: {"mean_act": [0.0] * (1 + i % 2)}, with_indices=True)
    with pytest.raises(InvalidParameterError, match=r"'mean_act' must hold fixed-length lists.*lengths \[1, 2\]"):
        QualityProbe(D_SAE, feature_set="raw", raw_column="mean_act", cv=None).fit(ragged, label_column="good")
    with pytest.raises(InvalidParameterError, match=r"lengths \[1, 2\]"):  # the Arrow reader says the same
        ragged.map(QualityProbe(D_SAE, feature_set="raw", raw_column="mean_act", cv=None).fit(ds, good), batched=True)


def test_a_raw_width_other_than_the_fitted_one_names_both_widths(data):
    ds, X, raw, _good, _ = data
    probe = QualityProbe(D_SAE, feature_set="both", raw_column="mean_act").fit(ds, label_column="good")
    wider = ds.map(lambda r: {"mean_act": r["mean_act"] + [0.0] * 8})
    message = r"column 'mean_act'\) are 16 wide, but this QualityProbe was fitted on raw activations 8 wide"
    with pytest.raises(WidthMismatchError, match=message):
        wider.map(probe, batched=True)
    with pytest.raises(WidthMismatchError, match=message):
        probe.predict_quality(wider)
    with pytest.raises(
        WidthMismatchError,
        match=r"are 4 wide, .* 8 wide\. .*\(width 8\), or fit a new QualityProbe on these \(width 4\)",
    ):
        probe.predict_quality((X, raw[:, :4]))


def test_non_finite_raw_values_are_refused_at_fit_and_predict(data):
    ds, _X, raw, good, _ = data
    holed = raw.copy()
    holed[5, 3] = np.nan
    holed[7, 0] = np.inf
    with pytest.raises(NonFiniteError, match=r"The raw activations hold 2 NaN or infinite value\(s\); re-encode"):
        QualityProbe(D_SAE, feature_set="raw").fit(holed, good)
    probe = QualityProbe(D_SAE, feature_set="raw", raw_column="mean_act").fit(ds, label_column="good")
    bad = ds.select(range(10)).map(
        lambda r, i: {"mean_act": [float("nan")] * 8 if i == 2 else r["mean_act"]}, with_indices=True
    )
    with pytest.raises(NonFiniteError, match=r"\(column 'mean_act'\) hold 8 NaN or infinite value\(s\)"):
        bad.map(probe, batched=True)


# ---------------------------------------------------------------------------------- compare_features
def test_compare_features_sides_are_the_probes_a_user_would_fit(data):
    """The raw and both sides of a comparison are exactly the probes with that feature_set (same metrics)."""
    ds, _X, _raw, _good, _ = data
    report = compare_features(QualityProbe(D_SAE), ds, label_column="good", raw_column="mean_act")
    for side in ("raw", "both"):
        probe = QualityProbe(D_SAE, feature_set=side, raw_column="mean_act").fit(ds, label_column="good")
        assert report["sides"][side]["auroc"] == probe.metrics_["auroc"]
        assert report["sides"][side]["width"] == probe.n_features_in_
    raw_probe = QualityProbe(D_SAE, feature_set="raw", raw_column="mean_act").fit(ds, label_column="good")
    again = compare_features(raw_probe, ds, label_column="good", raw_column="mean_act", features=["raw", "both"])
    assert again["sides"]["both"]["auroc"] == report["sides"]["both"]["auroc"]  # a raw probe is not the SAE side
