"""Arrow-native prediction: ``Dataset.map(estimator)`` reads the list buffers straight into CSR, and its outputs
equal the Python-list path bit for bit (chunked, sliced and shuffled tables included); nulls are refused."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import scipy.sparse as sp
from datasets import Dataset, Features, concatenate_datasets
from datasets.formatting.formatting import LazyBatch, PythonFormatter

from hf_saerl import DifficultyProbe, QualityProbe, SAEClusterer
from hf_saerl.encoding.sparse import sparse_matrix
from hf_saerl.errors import InvalidParameterError, ParameterTypeError, WidthMismatchError
from hf_saerl.estimators.arrow import arrow_csr, arrow_table

D = 300
pytestmark = pytest.mark.filterwarnings("ignore:.*no active SAE latent:UserWarning")


def _rows(n, seed):
    rng = np.random.default_rng(seed)
    idx, val = [], []
    for i in range(n):
        k = 0 if i % 17 == 5 else int(rng.integers(1, 20))  # some empty rows
        ids = rng.choice(D, k, replace=False).astype(np.int32)
        if k > 3 and i % 7 == 0:
            ids[1] = ids[0]  # a duplicated id: summed, on both paths
        idx.append(ids.tolist())
        val.append(rng.lognormal(0, 1, k).astype(np.float32).tolist())
    return idx, val


def _dataset(n=120, seed=0):
    idx, val = _rows(n, seed)
    rng = np.random.default_rng(seed + 1)
    return Dataset.from_dict(
        {
            "sae_indices": idx,
            "sae_values": val,
            "sae_n_tokens": rng.integers(3, 90, n).astype(np.int32).tolist(),
            "label": rng.random(n).tolist(),
            "good": (rng.random(n) > 0.5).tolist(),
        }
    )


@pytest.fixture(scope="module")
def estimators():
    ds = _dataset(200, seed=3)
    X = sparse_matrix(ds, D)
    good, label = np.asarray(ds["good"]), np.asarray(ds["label"])
    return [
        QualityProbe(D, cv=None).fit(X, good),
        QualityProbe(D, cv=None, transform=["log1p", {"name": "length", "by": "tokens"}, "std"]).fit(ds, good),
        DifficultyProbe(D, label="pass_rate", cv=3, n_alphas=5).fit(X, label),
        SAEClusterer(D, n_clusters=4).fit(X),
    ]


def _list_path(est, ds):
    """The reference: the batch as Python lists (a plain dict), as ``Dataset.map`` passed it before."""
    return est(dict(ds[:]))


def _variants(ds):
    shuffled = ds.shuffle(seed=1)  # an indices mapping: gathered (possibly sliced, chunked) tables
    return {
        "plain": ds,
        "chunked": concatenate_datasets([ds.select(range(50)), ds.select(range(50, len(ds)))]),
        "sliced": ds.select(range(13, 101)),
        "shuffled": shuffled,
        "flattened": shuffled.flatten_indices(),
    }


@pytest.mark.parametrize("variant", ["plain", "chunked", "sliced", "shuffled", "flattened"])
def test_map_equals_the_list_path_bit_for_bit(estimators, variant):
    ds = _variants(_dataset())[variant]
    for est in estimators:
        reference = _list_path(est, ds)
        features = Features({**ds.features, **est.features})  # the declared dtypes, as SAERLPipeline maps
        for batch_size in (7, 1000):
            kwargs = {"batched": True, "batch_size": batch_size, "features": features}
            fast = ds.map(est, **kwargs)
            # with_format("arrow"): datasets keeps only the returned columns
            arrow = ds.with_format("arrow").map(est, **{**kwargs, "features": est.features})
            for column, expected in reference.items():
                for out in (fast, arrow):
                    stored = out.data.column(column).to_numpy()  # as written, no formatter's cast
                    assert stored.dtype == expected.dtype
                    assert stored.tobytes() == expected.tobytes(), (type(est).__name__, column)


def test_the_fast_path_is_taken_and_reads_no_python_lists(estimators, monkeypatch):
    import hf_saerl.estimators.base as base

    calls = []
    monkeypatch.setattr(base, "sparse_matrix", lambda *a, **k: calls.append(1))  # the list path would fail
    ds = _dataset(30)
    ds.map(estimators[0], batched=True)
    ds.with_format("arrow").map(estimators[0], batched=True)
    assert calls == []


def test_fingerprints_do_not_change(estimators):
    ds = _dataset(40)
    est = estimators[0]
    before = est.fingerprint
    first = ds.map(est, batched=True)._fingerprint
    assert est.fingerprint == before
    assert ds.map(est, batched=True)._fingerprint == first


def test_a_column_replaced_in_the_batch_is_read_from_the_dict(estimators):
    est = estimators[0]
    table = _dataset(10).data.table
    batch = LazyBatch(table, PythonFormatter(lazy=True))
    assert arrow_table(batch, ("sae_indices", "sae_values")) is table
    batch["sae_values"] = [[2.0 * v for v in row] for row in table.column("sae_values").to_pylist()]
    assert arrow_table(batch, ("sae_indices", "sae_values")) is None
    doubled = {"sae_indices": table.column("sae_indices").to_pylist(), "sae_values": batch["sae_values"]}
    assert np.array_equal(est(batch)["quality"], est(doubled)["quality"])


def _list_array(rows, kind=None):
    return pa.array(rows, pa.list_(pa.int32()) if kind is None else kind)


def test_arrow_csr_on_sliced_and_chunked_columns_equals_sparse_matrix():
    idx, val = _rows(40, seed=5)
    ids = _list_array(idx)
    vals = _list_array(val, pa.list_(pa.float32()))
    sliced = pa.table({"sae_indices": ids.slice(7, 20), "sae_values": vals.slice(7, 20)})
    assert sliced.column("sae_indices").chunk(0).offsets[0].as_py() > 0  # a real slice
    expected = sparse_matrix({"sae_indices": idx[7:27], "sae_values": val[7:27]}, D)
    got = arrow_csr(sliced, D)
    assert (got != expected).nnz == 0 and got.dtype == expected.dtype
    assert np.array_equal(got.indptr, expected.indptr) and np.array_equal(got.indices, expected.indices)
    chunked = pa.table(
        {
            "sae_indices": pa.chunked_array([ids.slice(0, 10), ids.slice(10)]),
            "sae_values": pa.chunked_array([vals.slice(0, 25), vals.slice(25)]),
        }
    )  # chunks misaligned
    full = arrow_csr(chunked, D)
    assert (full != sparse_matrix({"sae_indices": idx, "sae_values": val}, D)).nnz == 0
    large = pa.table(
        {"sae_indices": ids.cast(pa.large_list(pa.int64())), "sae_values": vals.cast(pa.large_list(pa.float64()))}
    )
    assert (arrow_csr(large.to_batches()[0], D) != full).nnz == 0  # record batches and large lists too


def test_null_rows_and_values_are_refused():
    ok = _list_array([[1.0], [2.0]], pa.list_(pa.float32()))
    with pytest.raises(InvalidParameterError, match=r"'sae_indices' has 1 null row\(s\) \(rows \[1\]"):
        arrow_csr(pa.table({"sae_indices": _list_array([[1], None]), "sae_values": ok}), D)
    with pytest.raises(InvalidParameterError, match="null value"):
        arrow_csr(pa.table({"sae_indices": _list_array([[1], [None]]), "sae_values": ok}), D)
    ds = Dataset.from_dict({"sae_indices": [[1], None], "sae_values": [[1.0], [2.0]]})
    probe = QualityProbe(D, cv=None).fit(
        sp.random(20, D, density=0.1, format="csr", random_state=0), np.arange(20) % 2 == 0
    )
    with pytest.raises(InvalidParameterError, match="null row"):
        ds.map(probe, batched=True)


def test_bad_arrow_columns_are_refused_like_the_list_path():
    vals = _list_array([[1.0, 2.0]], pa.list_(pa.float32()))
    with pytest.raises(WidthMismatchError, match=r"outside \[0, d_sae=300\)"):
        arrow_csr(pa.table({"sae_indices": _list_array([[1, 300]]), "sae_values": vals}), D)
    with pytest.raises(ParameterTypeError, match="not integers"):
        arrow_csr(pa.table({"sae_indices": _list_array([[1.0, 2.0]], pa.list_(pa.float32())), "sae_values": vals}), D)
    with pytest.raises(InvalidParameterError, match="different lengths"):
        arrow_csr(pa.table({"sae_indices": _list_array([[1]]), "sae_values": vals}), D)
    with pytest.raises(ParameterTypeError, match="must hold lists"):
        arrow_csr(pa.table({"sae_indices": pa.array([1]), "sae_values": vals}), D)
