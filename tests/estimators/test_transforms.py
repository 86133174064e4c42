"""Feature transforms on CSR SAE codes equal a hand-written dense computation, and never densify."""

from __future__ import annotations

import json
import time
import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from hf_saerl.errors import BundleError, InvalidParameterError
from hf_saerl.estimators.transforms import FeatureTransform, normalize_steps


def _codes(n=40, d=25, density=0.3, seed=0, negative=False):
    rng = np.random.default_rng(seed)
    dense = np.where(rng.random((n, d)) < density, rng.exponential(2.0, (n, d)), 0.0)
    if negative:
        dense *= np.where(rng.random((n, d)) < 0.3, -1.0, 1.0)
    dense[3] = 0.0  # an empty row in the middle
    dense[-1] = 0.0  # and a trailing one (reduceat-style code breaks on these)
    return dense


# ---------------------------------------------------------------------- dense references
def _ref_log1p(D):
    return np.sign(D) * np.log1p(np.abs(D))


def _ref_l2(D):
    norms = np.sqrt((D**2).sum(axis=1, keepdims=True))
    return D / np.where(norms > 0, norms, 1.0)


def _ref_length(D, counts, power):
    return D / (np.maximum(counts, 1.0) ** power)[:, None]


def _ref_maxabs(D_fit, D):
    scale = np.abs(D_fit).max(axis=0)
    return D / np.where(scale > 0, scale, 1.0)


def _ref_std(D_fit, D):
    scale = D_fit.std(axis=0)
    return D / np.where(scale > 0, scale, 1.0)


@pytest.mark.parametrize(
    "steps, reference",
    [
        (["log1p"], lambda D, nt: _ref_log1p(D)),
        (["binarize"], lambda D, nt: (D > 0).astype(float)),
        ([{"name": "binarize", "threshold": 1.0}], lambda D, nt: (D > 1.0).astype(float)),
        (["l2"], lambda D, nt: _ref_l2(D)),
        (["length"], lambda D, nt: _ref_length(D, (D != 0).sum(axis=1), 0.5)),
        ([{"name": "length", "by": "tokens", "power": 1.0}], lambda D, nt: _ref_length(D, nt, 1.0)),
        (["maxabs"], lambda D, nt: _ref_maxabs(D, D)),
        (["std"], lambda D, nt: _ref_std(D, D)),
        (["log1p", "l2"], lambda D, nt: _ref_l2(_ref_log1p(D))),
        (["binarize", "length", "l2"], lambda D, nt: _ref_l2(_ref_length((D > 0) * 1.0, (D > 0).sum(axis=1), 0.5))),
        (["log1p", "std"], lambda D, nt: _ref_std(_ref_log1p(D), _ref_log1p(D))),
        (None, lambda D, nt: D),
    ],
)
@pytest.mark.parametrize("negative", [False, True])
def test_transform_equals_dense_reference(steps, reference, negative):
    D = _codes(negative=negative)
    n_tokens = np.arange(len(D)) % 7  # includes zeros: clipped to 1
    out = FeatureTransform(steps).fit_transform(sp.csr_matrix(D), n_tokens=n_tokens)
    assert sp.issparse(out)  # sparse in, sparse out (with no steps too)
    np.testing.assert_allclose(out.toarray(), reference(D, n_tokens.astype(float)), rtol=1e-12, atol=1e-12)


def test_fitted_steps_use_the_fit_time_statistics():
    train, new = _codes(seed=0), _codes(seed=1)
    t = FeatureTransform(["log1p", "maxabs"]).fit(sp.csr_matrix(train))
    np.testing.assert_allclose(
        t.transform(sp.csr_matrix(new)).toarray(), _ref_maxabs(_ref_log1p(train), _ref_log1p(new)), rtol=1e-12
    )


def test_sparsity_pattern_kept_and_input_untouched():
    D = _codes()
    X = sp.csr_matrix(D)
    before = X.copy()
    out = FeatureTransform(["log1p", "length", "std", "l2"]).fit_transform(X)
    assert out.format == "csr" and out.dtype == np.float64
    assert out.nnz == X.nnz
    assert (before != X).nnz == 0


def test_explicit_zeros_do_not_count_as_active():
    X = sp.csr_matrix((np.array([0.0, 4.0, 0.0]), np.array([0, 1, 2]), np.array([0, 3])), shape=(1, 3))
    out = FeatureTransform([{"name": "length", "power": 1.0}]).fit_transform(X)
    np.testing.assert_array_equal(out.toarray(), [[0.0, 4.0, 0.0]])  # nnz counted as 1, not 3


def test_wide_matrix_is_never_densified():
    n, d, k = 3000, 1_000_000, 30
    rng = np.random.default_rng(0)
    indices = rng.integers(0, d, size=n * k)
    X = sp.csr_matrix((rng.exponential(1.0, n * k), indices, np.arange(0, n * k + 1, k)), shape=(n, d))
    tracemalloc.start()
    start = time.perf_counter()
    t = FeatureTransform(["log1p", "binarize", "length", "maxabs", "std", "l2"])
    out = t.fit_transform(X)
    elapsed = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert out.shape == (n, d)
    assert peak < 100e6, f"peak {peak / 1e6:.0f} MB; a dense copy would be {n * d * 8 / 1e9:.0f} GB"
    assert elapsed < 5


def test_spec_forms_are_normalised_and_json_able():
    assert normalize_steps(None) == normalize_steps("none") == normalize_steps([]) == []
    assert normalize_steps("l2") == normalize_steps(["l2"]) == normalize_steps({"name": "l2"}) == [{"name": "l2"}]
    steps = normalize_steps(("log1p", {"name": "length", "by": "tokens"}, {"name": "binarize", "threshold": 1}))
    assert steps == [
        {"name": "log1p"},
        {"name": "length", "by": "tokens", "power": 0.5},
        {"name": "binarize", "threshold": 1.0},
    ]
    assert json.loads(json.dumps(steps)) == steps


@pytest.mark.parametrize(
    "spec, match",
    [
        (["log1p", "sqrt"], r"Unknown transform step 'sqrt'; choose from \['binarize', 'l2', 'length', 'log1p'"),
        (
            [{"name": "length", "pow": 1}],
            r"'length' got unknown parameter\(s\) \['pow'\]; it accepts \['by', 'power'\]",
        ),
        ([{"name": "length", "by": "chars"}], r"by='nnz' or by='tokens'"),
        ([{"power": 1}], r"Unknown transform step"),
    ],
)
def test_bad_specs_are_clear_errors(spec, match):
    with pytest.raises(InvalidParameterError, match=match):
        FeatureTransform(spec)


def test_token_length_step_needs_token_counts():
    X = sp.csr_matrix(_codes())
    t = FeatureTransform([{"name": "length", "by": "tokens"}])
    assert t.needs_n_tokens
    with pytest.raises(InvalidParameterError, match=r"needs the token counts: keep the 'sae_n_tokens' column"):
        t.fit_transform(X)
    with pytest.raises(InvalidParameterError, match=r"n_tokens has 3 values for 40 rows"):
        t.fit_transform(X, n_tokens=[1, 2, 3])


def test_unfitted_scaling_step_refuses_to_transform():
    with pytest.raises(RuntimeError, match="must be fitted"):
        FeatureTransform(["maxabs"]).transform(sp.csr_matrix(_codes()))


def test_state_round_trip_is_exact():
    X = sp.csr_matrix(_codes())
    t = FeatureTransform(["log1p", "std", "l2", "maxabs"]).fit(X)
    arrays = t.state_arrays()
    assert sorted(arrays) == ["transform.1.scale", "transform.3.scale"]
    restored = FeatureTransform.from_state(json.loads(json.dumps(t.steps_)), arrays, width=X.shape[1])
    assert (restored.transform(X) != t.transform(X)).nnz == 0
    with pytest.raises(BundleError, match=r"has shape \(25,\), expected \(30,\)"):
        FeatureTransform.from_state(t.steps_, arrays, width=30)
    with pytest.raises(BundleError, match=r"no array 'transform.3.scale'"):
        FeatureTransform.from_state(t.steps_, {"transform.1.scale": arrays["transform.1.scale"]}, width=25)


@settings(max_examples=40, deadline=None)
@given(
    data=st.lists(st.lists(st.floats(-5, 50, allow_nan=False), min_size=6, max_size=6), min_size=1, max_size=8),
    steps=st.lists(st.sampled_from(["log1p", "binarize", "l2", "length", "maxabs", "std"]), max_size=4),
)
def test_any_chain_matches_dense(data, steps):
    D = np.array(data)
    D[np.abs(D) < 1] = 0.0  # sparsify
    reference = D.copy()
    for step in steps:
        reference = {
            "log1p": _ref_log1p,
            "binarize": lambda A: (A > 0).astype(float),
            "l2": _ref_l2,
            "length": lambda A: _ref_length(A, (A != 0).sum(axis=1), 0.5),
            "maxabs": lambda A: _ref_maxabs(A, A),
            "std": lambda A: _ref_std(A, A),
        }[step](reference)
    out = FeatureTransform(steps).fit_transform(sp.csr_matrix(D))
    dense_out = out.toarray() if sp.issparse(out) else out
    np.testing.assert_allclose(dense_out, reference, rtol=1e-9, atol=1e-12)
