import numpy as np
import pytest
import torch
from datasets import Dataset

from hf_saerl import sparse_matrix
from hf_saerl.encoding.batching import plan_microbatches
from hf_saerl.encoding.pooling import pool_tokens
from hf_saerl.encoding.sparse import check_integer_ids, check_paired_rows, csr_from_flat, topk_rows
from hf_saerl.errors import InvalidParameterError, NonFiniteError, ParameterTypeError, WidthMismatchError


def test_sparse_matrix_from_dataset_and_batch_agree():
    rows_i = [[5, 1], [], [0, 9, 3]]
    rows_v = [[2.0, 1.0], [], [0.5, 4.0, 1.5]]
    expected = np.zeros((3, 10), np.float32)
    for r, (ii, vv) in enumerate(zip(rows_i, rows_v, strict=True)):
        for i, v in zip(ii, vv, strict=True):
            expected[r, i] = v
    batch = {"sae_indices": rows_i, "sae_values": rows_v}
    np.testing.assert_array_equal(sparse_matrix(batch, 10).toarray(), expected)
    ds = Dataset.from_dict(batch)
    np.testing.assert_array_equal(sparse_matrix(ds, 10).toarray(), expected)
    # a selected/shuffled view reads the right rows
    np.testing.assert_array_equal(sparse_matrix(ds.select([2, 0]), 10).toarray(), expected[[2, 0]])


def test_sparse_matrix_errors():
    with pytest.raises(ValueError, match=r"outside \[0, d_sae=4\)"):
        sparse_matrix({"sae_indices": [[7]], "sae_values": [[1.0]]}, 4)
    with pytest.raises(KeyError, match="Missing column"):
        sparse_matrix(Dataset.from_dict({"text": ["a"]}), 4)
    with pytest.raises(ValueError, match="different lengths"):
        sparse_matrix({"sae_indices": [[1, 2]], "sae_values": [[1.0]]}, 4)


def test_topk_rows_matches_sorting():
    rng = np.random.default_rng(0)
    dense = np.maximum(rng.normal(size=(20, 50)), 0).astype(np.float32)
    idx, val = topk_rows(dense, 7)
    for r in range(20):
        order = np.argsort(-dense[r], kind="stable")
        keep = [i for i in order if dense[r, i] > 0][:7]
        assert idx[r].tolist() == keep
        np.testing.assert_array_equal(val[r], dense[r, keep])
    all_idx, _ = topk_rows(dense, None)
    assert [len(i) for i in all_idx] == list((dense > 0).sum(1))


@pytest.mark.parametrize("method", ["mean", "max", "sum", "last", "freq"])
def test_pool_tokens_matches_loop(method):
    torch.manual_seed(0)
    acts = torch.relu(torch.randn(12, 6))
    row_ids = torch.tensor([0, 0, 0, 2, 2, 3, 3, 3, 3, 3, 4, 4])
    got = pool_tokens(acts, row_ids, 5, method)
    for r in range(5):
        tokens = [acts[t] for t in range(12) if row_ids[t] == r]
        if not tokens:
            assert torch.all(got[r] == 0)
            continue
        stack = torch.stack(tokens)
        ref = {
            "mean": stack.mean(0),
            "max": stack.max(0).values,
            "sum": stack.sum(0),
            "last": stack[-1],
            "freq": (stack > 0).float().mean(0),
        }[method]
        torch.testing.assert_close(got[r], ref)


def test_plan_microbatches_respects_budget():
    lengths = [5, 30, 12, 12, 1, 7, 40, 3]
    batches = plan_microbatches(lengths, token_budget=48)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for b in batches:
        assert len(b) == 1 or len(b) * max(lengths[i] for i in b) <= 48
    flat = [lengths[i] for b in batches for i in b]
    assert flat == sorted(flat, reverse=True)


def test_csr_from_flat_matches_a_dense_build_by_hand():
    rng = np.random.default_rng(0)
    lengths = rng.integers(0, 6, size=9)
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    ids = rng.integers(0, 7, size=indptr[-1])  # repeats within a row: summed
    vals = rng.normal(size=indptr[-1]).astype(np.float32)
    dense = np.zeros((9, 7), np.float32)
    for row in range(9):
        for k in range(indptr[row], indptr[row + 1]):
            dense[row, ids[k]] += vals[k]
    X = csr_from_flat(ids.copy(), vals, indptr, d_sae=7)
    assert X.shape == (9, 7) and X.dtype == np.float32 and X.has_sorted_indices
    np.testing.assert_allclose(X.toarray(), dense, rtol=1e-6)
    assert all(len(set(X.indices[X.indptr[r] : X.indptr[r + 1]])) == X.indptr[r + 1] - X.indptr[r] for r in range(9))


def test_csr_from_flat_and_the_column_checks_refuse_bad_input_naming_the_column():
    one = np.array([0, 1])
    with pytest.raises(WidthMismatchError, match=r"Column 'ids' holds latent ids in \[4, 4\], outside \[0, d_sae=4\)"):
        csr_from_flat(np.array([4]), np.array([1.0]), one, 4, "ids", "vals")
    with pytest.raises(NonFiniteError, match="Column 'vals'"):
        csr_from_flat(np.array([0]), np.array([np.nan]), one, 4, "ids", "vals")
    with pytest.raises(InvalidParameterError, match="Columns 'ids' and 'vals' have rows of different lengths"):
        check_paired_rows(np.array([1, 2]), np.array([1, 1]), "ids", "vals")
    check_paired_rows(np.array([1, 2]), np.array([1, 2]), "ids", "vals")
    with pytest.raises(ParameterTypeError, match="Column 'ids' holds latent ids of type float32, not integers"):
        check_integer_ids(np.dtype("float32"), "ids")
    check_integer_ids(np.dtype("int32"), "ids")
