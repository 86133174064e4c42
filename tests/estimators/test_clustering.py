"""SAEClusterer on planted clusters (disjoint latent groups), end to end through ``Dataset.map``."""

from __future__ import annotations

import doctest
import json
import time
import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp
from datasets import Dataset
from datasets.fingerprint import Hasher
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

import hf_saerl.estimators.clustering as clustering
from hf_saerl.errors import BundleError, InvalidParameterError, MissingColumnError, WidthMismatchError
from hf_saerl.estimators.clustering import SAEClusterer

D_SAE = 2000
N_GROUPS, GROUP_SIZE = 4, 60
TOPICS = ["algebra", "geometry", "counting", "number theory"]


def planted(n=400, d_sae=D_SAE, seed=0, own=20, noise=10):
    """Each row fires ``own`` latents of its group's disjoint block and ``noise`` latents elsewhere."""
    rng = np.random.default_rng(seed)
    group = rng.integers(0, N_GROUPS, n)
    idx_rows, val_rows = [], []
    for g in group:
        idx = np.concatenate(
            [
                g * GROUP_SIZE + rng.choice(GROUP_SIZE, own, replace=False),
                rng.choice(np.arange(N_GROUPS * GROUP_SIZE, d_sae), noise, replace=False),
            ]
        )
        val = (rng.exponential(1.0, len(idx)) + 0.2).astype(np.float32)
        idx_rows.append(idx.astype(np.int32))
        val_rows.append(val)
    indptr = np.concatenate([[0], np.cumsum([len(r) for r in idx_rows])])
    X = sp.csr_matrix((np.concatenate(val_rows), np.concatenate(idx_rows), indptr), shape=(n, d_sae))
    ds = Dataset.from_dict(
        {
            "sae_indices": [r.tolist() for r in idx_rows],
            "sae_values": [r.tolist() for r in val_rows],
            "category": [TOPICS[g] for g in group],
            "mean_act": rng.normal(size=(n, 6)).tolist(),  # dense baseline without the cluster signal
        }
    )
    return ds, X, group


@pytest.fixture(scope="module")
def data():
    return planted()


@pytest.fixture(scope="module")
def clusterer(data):
    ds, _, _ = data
    return SAEClusterer(d_sae=D_SAE, n_clusters=4).fit(ds, reference_column="category")


def _dense_space(X, spherical, transform=np.log1p):
    D = transform(X.toarray().astype(np.float64))
    if spherical:
        norms = np.linalg.norm(D, axis=1, keepdims=True)
        D = D / np.where(norms > 0, norms, 1.0)
    return D


def test_recovers_planted_clusters(clusterer):
    m = clusterer.metrics_
    assert m["nmi"] > 0.95 and m["purity"] > 0.95
    assert m["n_train"] == 400 and m["n_clusters"] == 4 and m["algorithm"] == "kmeans"
    assert sum(m["cluster_sizes"]) == 400 and min(m["cluster_sizes"]) > 50
    assert m["inertia"] > 0 and m["n_reference"] == 400 and m["n_reference_missing"] == 0
    assert clusterer.cluster_centers_.shape == (4, D_SAE)
    np.testing.assert_allclose(np.linalg.norm(clusterer.cluster_centers_, axis=1), 1.0)  # spherical


def test_metrics_equal_an_independent_computation(clusterer, data):
    from sklearn.metrics import normalized_mutual_info_score

    _ds, X, group = data
    ids = clusterer.predict(X)
    D, C = _dense_space(X, spherical=True), clusterer.cluster_centers_
    m = clusterer.metrics_
    assert m["inertia"] == pytest.approx(((D - C[ids]) ** 2).sum(), rel=1e-9)
    assert m["nmi"] == pytest.approx(normalized_mutual_info_score(group, ids))
    assert m["purity"] == pytest.approx(sum(np.bincount(group[ids == c]).max() for c in np.unique(ids)) / len(ids))
    assert m["cluster_sizes"] == np.bincount(ids, minlength=4).tolist()


def test_auto_k_finds_the_planted_number(data):
    _ds, X, group = data
    auto = SAEClusterer(d_sae=D_SAE, auto_range=(2, 8)).fit(X, group)
    assert auto.n_clusters_ == 4 and auto.metrics_["nmi"] > 0.95
    scores = auto.metrics_["silhouette_by_k"]
    assert sorted(scores, key=int) == [str(k) for k in range(2, 9)] and max(scores, key=scores.get) == "4"


@pytest.mark.parametrize("spherical", [True, False])
def test_map_matches_brute_force_argmin(data, spherical):
    ds, X, group = data
    est = SAEClusterer(d_sae=D_SAE, n_clusters=4, spherical=spherical).fit(X[:300])
    out = ds.map(est, batched=True, batch_size=64)  # includes 100 rows not seen at fit
    assert out.features["cluster_id"].dtype == "int32" and out.features["cluster_distance"].dtype == "float32"
    ids = np.asarray(out["cluster_id"])
    dist = np.asarray(out["cluster_distance"], dtype=np.float32)

    D, C = _dense_space(X, spherical), est.cluster_centers_
    brute = ((D[:, None, :] - C[None, :, :]) ** 2).sum(-1)
    np.testing.assert_array_equal(ids, brute.argmin(axis=1))
    expected = 1.0 - (D * C[ids]).sum(axis=1) if spherical else np.sqrt(brute[np.arange(len(D)), ids])
    np.testing.assert_allclose(dist, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(est.predict(X), ids)
    np.testing.assert_allclose(est.distances(X)[np.arange(len(ids)), ids], dist, rtol=1e-6)
    if spherical:  # (Euclidean k-means++ in high dimension needs more n_init to avoid local optima)
        majority = {c: np.bincount(group[ids == c]).argmax() for c in np.unique(ids)}
        assert np.mean([majority[i] == g for i, g in zip(ids, group, strict=True)]) > 0.95


def test_minibatch_and_the_auto_switch(data, monkeypatch):
    _, X, group = data
    # MiniBatchKMeans runs once from the best of n_init seedings, so it needs more of them than KMeans
    mb = SAEClusterer(d_sae=D_SAE, n_clusters=4, algorithm="minibatch", batch_size=128, n_init=10).fit(X, group)
    assert mb.algorithm_ == "minibatch" and mb.metrics_["nmi"] > 0.9
    monkeypatch.setattr(clustering, "MINIBATCH_MIN_ROWS", 100)
    assert SAEClusterer(d_sae=D_SAE, n_clusters=4).fit(X).algorithm_ == "minibatch"


def test_seeded_fits_are_reproducible(data):
    _, X, _ = data
    a = SAEClusterer(d_sae=D_SAE, n_clusters=4, random_state=3).fit(X)
    b = SAEClusterer(d_sae=D_SAE, n_clusters=4, random_state=3).fit(X)
    assert np.array_equal(a.cluster_centers_, b.cluster_centers_)
    assert Hasher.hash(a) == Hasher.hash(b)
    np.testing.assert_array_equal(a.fit_predict(X), a.predict(X))


def test_reference_labels_with_missing_values(data):
    ds, _X, group = data
    reference = [TOPICS[g] for g in group]
    reference[0] = reference[5] = None
    with pytest.warns(UserWarning, match=r"Dropped 2 of 400 rows whose label 'category' is missing"):
        est = SAEClusterer(d_sae=D_SAE, n_clusters=4).fit(
            ds.remove_columns("category").add_column("category", reference), reference_column="category"
        )
    assert est.metrics_["n_reference"] == 398 and est.metrics_["n_reference_missing"] == 2
    assert est.metrics_["n_train"] == 400  # reference labels never drop rows from the clustering


def test_empty_rows_are_warned_left_out_and_assigned(data):
    ds, X, _ = data
    X = X.tolil()
    X[7, :] = 0
    X[8, :] = 0
    X = X.tocsr()
    X.eliminate_zeros()
    with pytest.warns(UserWarning, match=r"2 of 400 rows have no active SAE latent.*left out of fitting the centroids"):
        est = SAEClusterer(d_sae=D_SAE, n_clusters=4).fit(X)
    assert est.metrics_["n_empty_rows"] == 2 and est.metrics_["n_train"] == 398
    out = est(ds.select([7, 8]).map(lambda r: {"sae_indices": [], "sae_values": []})[:])
    assert out["cluster_id"].tolist() == [0, 0] and out["cluster_distance"].tolist() == [1.0, 1.0]
    with pytest.warns(UserWarning, match="no active SAE latent"):
        euclid = SAEClusterer(d_sae=D_SAE, n_clusters=4, spherical=False).fit(X)
    nearest_origin = np.linalg.norm(euclid.cluster_centers_, axis=1).argmin()
    assert euclid.predict(X[7:9]).tolist() == [nearest_origin] * 2


def test_save_load_round_trip_is_bit_identical(clusterer, data, tmp_path):
    clusterer.save_pretrained(tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {"config.json", "README.md", "clusters.json", "clusters.safetensors"}
    card = (tmp_path / "README.md").read_text()
    assert "hf_saerl.SAEClusterer" in card and "| nmi |" in card
    (tmp_path / "extra.pkl").write_bytes(b"never unpickled")
    loaded = SAEClusterer.from_pretrained(tmp_path)
    assert np.array_equal(loaded.cluster_centers_, clusterer.cluster_centers_) and loaded.n_clusters_ == 4
    new, _, _ = planted(n=150, seed=9)
    a, b = clusterer(new[:]), loaded(new[:])
    assert np.array_equal(a["cluster_id"], b["cluster_id"]) and np.array_equal(
        a["cluster_distance"], b["cluster_distance"]
    )
    assert loaded.fingerprint == clusterer.fingerprint
    assert loaded.metrics_ == json.loads(json.dumps(clusterer.metrics_))


def test_damaged_centroids_are_a_clear_error(clusterer, tmp_path):
    from safetensors.numpy import save_file

    clusterer.save_pretrained(tmp_path)
    save_file({"cluster_centers": np.zeros((3, D_SAE))}, str(tmp_path / "clusters.safetensors"))
    with pytest.raises(BundleError, match=r"Array 'cluster_centers' in .* has shape \(3, 2000\), expected \(4, 2000\)"):
        SAEClusterer.from_pretrained(tmp_path)
    state = json.loads((tmp_path / "clusters.json").read_text())
    state["fitted"]["n_clusters_"] = "four"
    del state["checksum"]  # a deliberate edit: the checksum would refuse it first
    (tmp_path / "clusters.json").write_text(json.dumps(state))
    with pytest.raises(BundleError, match=r"saved n_clusters_='four' / algorithm_='kmeans' are invalid"):
        SAEClusterer.from_pretrained(tmp_path)


def test_sklearn_manners_and_not_fitted(data):
    ds, X, _ = data
    est = SAEClusterer(d_sae=D_SAE, n_clusters=3, spherical=False)
    assert clone(est).get_params() == est.get_params()
    with pytest.raises(NotFittedError, match=r"This SAEClusterer is not fitted yet, so predict cannot run"):
        est.predict(X)
    with pytest.raises(NotFittedError, match="so distances cannot run"):
        est.distances(X)
    with pytest.raises(NotFittedError):
        est(ds[:3])
    assert est.fit(X) is est and est.set_params(id_column="topic") is est
    assert list(est(ds[:3])) == ["topic", "cluster_distance"]


@pytest.mark.parametrize(
    "params, match",
    [
        ({"n_clusters": 0}, r"n_clusters must be a positive int or 'auto'; got 0"),
        ({"n_clusters": "many"}, r"n_clusters must be a positive int or 'auto'; got 'many'"),
        ({"algorithm": "dbscan"}, r"algorithm must be 'auto', 'kmeans' or 'minibatch'"),
        ({"auto_range": (1, 5)}, r"auto_range must be \(lo, hi\) with 2 <= lo <= hi"),
        ({"n_clusters": 50}, r"n_clusters=50 needs at least 50 rows with an active latent; got 20"),
        (
            {"auto_range": (30, 40)},
            r"searches k in \(30, 40\) and needs at least 31 rows with an active latent; got 20",
        ),
    ],
)
def test_bad_parameters_and_too_little_data(params, match, data):
    _, X, _ = data
    with pytest.raises(InvalidParameterError, match=match):
        SAEClusterer(d_sae=D_SAE, **params).fit(X[:20])


def test_missing_columns_and_width_mismatch(clusterer, data):
    ds, X, _ = data
    with pytest.raises(
        MissingColumnError,
        match=r"Missing column\(s\) \['sae_indices', 'sae_values'\]; found \['category', 'mean_act'\]",
    ):
        SAEClusterer(d_sae=D_SAE, n_clusters=2).fit(ds.remove_columns(["sae_indices", "sae_values"]))
    with pytest.raises(
        MissingColumnError, match=r"Missing column 'topic' holding the reference labels; found \['category'"
    ):
        SAEClusterer(d_sae=D_SAE, n_clusters=2).fit(ds, reference_column="topic")
    with pytest.raises(
        WidthMismatchError, match=r"X has 1000 columns but this SAEClusterer works on SAE features of width d_sae=2000"
    ):
        clusterer.predict(X[:, :1000])
    with pytest.raises(WidthMismatchError, match=r"width d_sae=2000, but the data does not fit"):
        clusterer({"sae_indices": [[1, 4000]], "sae_values": [[1.0, 1.0]]})


def test_wide_sae_never_densifies():
    d_sae, n = 200_000, 2000
    ds, _, _group = planted(n=n, d_sae=d_sae)
    tracemalloc.start()
    start = time.perf_counter()
    est = SAEClusterer(d_sae=d_sae, n_clusters=4).fit(ds, reference_column="category")
    out = est(ds[:500])
    elapsed = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 150e6, f"peak {peak / 1e6:.0f} MB; a dense X would be {n * d_sae * 8 / 1e9:.1f} GB"
    assert elapsed < 30
    assert est.metrics_["nmi"] > 0.95 and len(out["cluster_id"]) == 500


def test_docstring_examples_run():
    assert doctest.testmod(clustering).failed == 0
