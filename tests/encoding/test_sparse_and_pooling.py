import numpy as np
import pytest
import torch
from datasets import Dataset

from hf_saerl import sparse_matrix
from hf_saerl.encoding.batching import plan_microbatches
from hf_saerl.encoding.pooling import pool_tokens
from hf_saerl.encoding.sparse import topk_rows


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
