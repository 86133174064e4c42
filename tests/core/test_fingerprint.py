"""The encoder's fingerprint: cheap, deterministic, and different whenever the output would differ."""

import copy

import torch
from datasets import Dataset, load_from_disk
from datasets.fingerprint import Hasher
from datasets.utils._dill import dumps

from hf_saerl import SAEEncoder
from hf_saerl.testing import tiny_llama, tiny_sae


def test_hashing_does_not_serialise_weights(model, tokenizer, sae):
    enc = SAEEncoder(model, sae, tokenizer=tokenizer)
    assert len(dumps(enc)) < 200  # the model alone is hundreds of KB
    assert Hasher.hash(enc) == Hasher.hash(SAEEncoder(model, sae, tokenizer=tokenizer))


def test_equal_weights_in_fresh_objects_hash_equal(tokenizer):
    a = SAEEncoder(tiny_llama(seed=1), tiny_sae(seed=1), tokenizer=tokenizer)
    b = SAEEncoder(tiny_llama(seed=1), tiny_sae(seed=1), tokenizer=tokenizer)
    assert a.fingerprint == b.fingerprint


def test_anything_that_changes_the_output_changes_the_fingerprint(model, tokenizer, sae):
    base = SAEEncoder(model, sae, tokenizer=tokenizer).fingerprint
    variants = [
        SAEEncoder(model, sae, tokenizer=tokenizer, pooling="max"),
        SAEEncoder(model, sae, tokenizer=tokenizer, top_k=8),
        SAEEncoder(model, sae, tokenizer=tokenizer, max_length=64),
        SAEEncoder(model, sae, tokenizer=tokenizer, text_column="question"),
        SAEEncoder(model, tiny_sae(seed=5), tokenizer=tokenizer),
        SAEEncoder(tiny_llama(seed=9), sae, tokenizer=tokenizer),
        SAEEncoder(model, sae, tokenizer=tokenizer, hook_name="blocks.1.hook_mlp_out"),
    ]
    prints = {v.fingerprint for v in variants}
    assert base not in prints and len(prints) == len(variants)

    tweaked = copy.deepcopy(model)
    with torch.no_grad():
        for p in tweaked.parameters():
            p.add_(1e-3)
    assert SAEEncoder(tweaked, sae, tokenizer=tokenizer).fingerprint != base


def test_token_budget_does_not_change_the_fingerprint(model, tokenizer, sae):
    a = SAEEncoder(model, sae, tokenizer=tokenizer, token_budget=64)
    b = SAEEncoder(model, sae, tokenizer=tokenizer, token_budget=4096)
    assert a.fingerprint == b.fingerprint


def test_spec_fingerprint_is_content_based(model_dir, sae_dir, tmp_path):
    import shutil

    a = SAEEncoder(str(model_dir), str(sae_dir))
    moved_model, moved_sae = tmp_path / "m", tmp_path / "s"
    shutil.copytree(model_dir, moved_model)
    shutil.copytree(sae_dir, moved_sae)
    assert SAEEncoder(str(moved_model), str(moved_sae)).fingerprint == a.fingerprint


def test_rerunning_map_hits_the_datasets_cache(model, tokenizer, sae, tmp_path, texts):
    Dataset.from_dict({"text": texts}).save_to_disk(tmp_path / "ds")
    ds = load_from_disk(tmp_path / "ds")
    calls = []

    class Counting(SAEEncoder):
        def __call__(self, batch, rank=None):
            calls.append(len(batch["text"]))
            return super().__call__(batch, rank)

    first = ds.map(Counting(model, sae, tokenizer=tokenizer), batched=True)
    n_calls = len(calls)
    again = ds.map(Counting(model, sae, tokenizer=tokenizer), batched=True)  # a fresh, equal encoder
    assert len(calls) == n_calls > 0
    assert again.cache_files == first.cache_files
    other = ds.map(Counting(model, sae, tokenizer=tokenizer, pooling="max"), batched=True)
    assert len(calls) > n_calls and other.cache_files != first.cache_files
    # the helper's explicit fingerprint is stable too
    helper_first = Counting(model, sae, tokenizer=tokenizer).map(ds)
    n_calls = len(calls)
    helper_again = Counting(model, sae, tokenizer=tokenizer).map(ds)
    assert len(calls) == n_calls and helper_again.cache_files == helper_first.cache_files
