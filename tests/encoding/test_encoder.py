"""SAEEncoder numbers checked against independent computations on a tiny random Llama + SAE."""

import numpy as np
import pytest
import torch
from datasets import Dataset

from hf_saerl import FeatureColumns, SAEEncoder, TokenPolicy, resolve_hook, sparse_matrix
from hf_saerl.errors import InvalidParameterError
from hf_saerl.models.identity import tokenizer_identity
from hf_saerl.testing import tiny_sae


def as_lists(rows):
    return [list(map(int, r)) for r in rows]


def reference_pooled(model, tokenizer, sae, text, pooling, layer=1, site="post"):
    """One text, no padding, full forward with output_hidden_states, then a hand-written pooling loop."""
    ids = tokenizer(text)["input_ids"]
    with torch.no_grad():
        hs = model(torch.tensor([ids]), output_hidden_states=True).hidden_states
        h = hs[layer + 1 if site == "post" else layer][0]
        acts = sae.encode(h)[1:]  # drop BOS
    out = torch.zeros(acts.shape[1])
    for j in range(acts.shape[1]):
        column = [acts[t, j].item() for t in range(acts.shape[0])]
        if pooling == "mean":
            out[j] = sum(column) / len(column)
        elif pooling == "sum":
            out[j] = sum(column)
        elif pooling == "max":
            out[j] = max(column)
        elif pooling == "last":
            out[j] = column[-1]
        elif pooling == "freq":
            out[j] = sum(1 for v in column if v > 0) / len(column)
    return out.numpy(), acts.shape[0]


@pytest.mark.parametrize("layer", [0, 1, 2])
def test_truncated_forward_matches_hidden_states(model, layer):
    ids = torch.randint(4, 100, (2, 9))
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    with torch.no_grad():
        hs = model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
        pre = resolve_hook(model, f"blocks.{layer}.hook_resid_pre").capture(model, input_ids=ids, attention_mask=mask)
        post = resolve_hook(model, f"blocks.{layer}.hook_resid_post").capture(model, input_ids=ids, attention_mask=mask)
    torch.testing.assert_close(pre, hs[layer], rtol=0, atol=0)
    if layer < 2:
        torch.testing.assert_close(post, hs[layer + 1], rtol=0, atol=0)
    else:
        # HF's last hidden_states entry is after the final norm: the hook must read the layer output itself.
        assert not torch.allclose(post, hs[layer + 1])
        captured = {}
        handle = model.model.layers[layer].register_forward_hook(lambda m, a, o: captured.setdefault("h", o))
        with torch.no_grad():
            model(input_ids=ids, attention_mask=mask)
        handle.remove()
        torch.testing.assert_close(post, captured["h"], rtol=0, atol=0)
        torch.testing.assert_close(model.model.norm(post), hs[layer + 1])


def test_later_layers_and_lm_head_never_run(model, tokenizer, sae):
    calls = []
    handles = [
        model.model.layers[2].register_forward_hook(lambda *a: calls.append("layer2")),
        model.lm_head.register_forward_hook(lambda *a: calls.append("lm_head")),
        model.model.layers[1].register_forward_hook(lambda *a: calls.append("layer1")),
    ]
    try:
        SAEEncoder(model, sae, tokenizer=tokenizer).encode(["hello there"])
    finally:
        for h in handles:
            h.remove()
    assert "layer1" in calls and "layer2" not in calls and "lm_head" not in calls


@pytest.mark.parametrize("pooling", ["mean", "max", "sum", "last", "freq"])
def test_pooling_matches_hand_written_loop(model, tokenizer, sae, texts, pooling):
    enc = SAEEncoder(model, sae, tokenizer=tokenizer, pooling=pooling, top_k=None, token_budget=40)
    out = enc({"text": texts})
    X = sparse_matrix(out, enc.d_sae).toarray()
    for i, text in enumerate(texts):
        ref, n_tok = reference_pooled(model, tokenizer, sae, text, pooling)
        np.testing.assert_allclose(X[i], ref, rtol=1e-5, atol=1e-5)
        assert out["sae_n_tokens"][i] == n_tok == len(text)  # char-level tokenizer, BOS excluded


def test_resid_pre_hook(model, tokenizer):
    sae = tiny_sae(hook_name="blocks.2.hook_resid_pre", seed=3)
    X = SAEEncoder(model, sae, tokenizer=tokenizer, top_k=None).encode(["abc def"]).toarray()
    ref, _ = reference_pooled(model, tokenizer, sae, "abc def", "mean", layer=2, site="pre")
    np.testing.assert_allclose(X[0], ref, rtol=1e-5, atol=1e-5)


def test_top_k_keeps_largest_by_value_descending(model, tokenizer, sae, texts):
    full = SAEEncoder(model, sae, tokenizer=tokenizer, top_k=None)({"text": texts})
    top = SAEEncoder(model, sae, tokenizer=tokenizer, top_k=5)({"text": texts})
    dense = sparse_matrix(full, 128).toarray()
    for i in range(len(texts)):
        expected = np.argsort(-dense[i], kind="stable")[:5]
        assert top["sae_indices"][i] == expected.tolist()
        np.testing.assert_array_equal(np.float32(top["sae_values"][i]), dense[i][expected].astype(np.float32))
        assert np.all(np.diff(top["sae_values"][i]) <= 0)
        assert len(full["sae_indices"][i]) == np.count_nonzero(dense[i])


def test_features_do_not_depend_on_batch_neighbours(model, tokenizer, sae, texts):
    enc = SAEEncoder(model, sae, tokenizer=tokenizer, top_k=None, token_budget=64)
    alone = np.stack([sparse_matrix(enc({"text": [t]}), 128).toarray()[0] for t in texts])
    together = sparse_matrix(enc({"text": texts[::-1]}), 128).toarray()[::-1]
    np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-5)  # fp32 round-off of other matmul shapes


def test_dataset_and_iterable_dataset_map_agree(model, tokenizer, sae, texts):
    enc = SAEEncoder(model, sae, tokenizer=tokenizer, top_k=16)
    ds = Dataset.from_dict({"text": texts, "id": list(range(len(texts)))})
    mapped = enc.map(ds, batch_size=4)
    streamed = list(enc.map(ds.to_iterable_dataset(), batch_size=4))
    assert mapped.features == enc.output_features(ds.features)
    assert enc.map(ds.to_iterable_dataset()).column_names == mapped.column_names
    for row, srow in zip(mapped, streamed, strict=True):
        assert row["id"] == srow["id"] and row["sae_indices"] == srow["sae_indices"]
        np.testing.assert_array_equal(np.float32(row["sae_values"]), np.float32(srow["sae_values"]))
    # plain Dataset.map without the helper gives the same columns
    plain = ds.map(enc, batched=True, batch_size=3)
    assert as_lists(plain["sae_indices"]) == as_lists(mapped["sae_indices"])


def test_encode_returns_csr_equal_to_map(model, tokenizer, sae, texts):
    enc = SAEEncoder(model, sae, tokenizer=tokenizer, top_k=10)
    X = enc.encode(texts, batch_size=4)
    Y = sparse_matrix(enc.map(Dataset.from_dict({"text": texts})), enc.d_sae)
    assert X.shape == (len(texts), 128)
    np.testing.assert_allclose(X.toarray(), Y.toarray(), rtol=1e-5, atol=1e-5)


def test_pooled_activations_are_the_raw_mean(model, tokenizer, sae):
    enc = SAEEncoder(model, sae, tokenizer=tokenizer)
    got = enc.pooled_activations(["abc", "hello world"])
    ids = tokenizer("hello world")["input_ids"]
    with torch.no_grad():
        h = model(torch.tensor([ids]), output_hidden_states=True).hidden_states[2][0, 1:]
    np.testing.assert_allclose(got[1], h.mean(0).numpy(), rtol=1e-5, atol=1e-6)
    acts = torch.cat(list(enc.iter_activations(["abc", "hello world"])))
    assert acts.shape == (3 + 11, 32)


def test_template_and_chat_template(model, tokenizer, sae):
    ds = Dataset.from_dict({"q": ["1+1?"], "a": ["2"]})
    enc = SAEEncoder(model, sae, tokenizer=tokenizer, text_column=None, template="Q: {q} A: {a}", top_k=None)
    direct = SAEEncoder(model, sae, tokenizer=tokenizer, top_k=None).encode(["Q: 1+1? A: 2"])
    np.testing.assert_array_equal(sparse_matrix(enc.map(ds), 128).toarray(), direct.toarray())

    chat = SAEEncoder(model, sae, tokenizer=tokenizer, chat_template=True, top_k=None)
    out = chat({"text": ["hi"]})
    rendered = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)
    assert out["sae_n_tokens"][0] == len(rendered) - len("<s>")  # BOS from the template is excluded once
    messages = chat({"text": [[{"role": "user", "content": "hi"}]]})
    assert as_lists(messages["sae_indices"]) == as_lists(out["sae_indices"])


def test_truncation_is_counted(model, tokenizer, sae, caplog):
    enc = SAEEncoder(model, sae, tokenizer=tokenizer, max_length=8)
    ds = Dataset.from_dict({"text": ["short", "a much longer text than eight tokens"]})
    with caplog.at_level("WARNING", logger="hf_saerl"):
        out = enc.map(ds)
    assert out["sae_truncated"] == [False, True]
    assert out["sae_n_tokens"] == [5, 7]  # 8 tokens minus BOS
    assert "truncated 1 of 2 texts to max_length=8" in caplog.text


def test_spec_built_encoder_loads_lazily_and_pickles_small(model_dir, sae_dir, model, tokenizer, sae, texts):
    import pickle

    enc = SAEEncoder(str(model_dir), str(sae_dir), top_k=12)
    assert not enc.runtime.model_loaded
    blob = pickle.dumps(enc)
    assert len(blob) < 5_000
    clone = pickle.loads(blob)
    got = clone({"text": texts})
    ref = SAEEncoder(model, sae, tokenizer=tokenizer, top_k=12)({"text": texts})
    assert as_lists(got["sae_indices"]) == as_lists(ref["sae_indices"])
    assert clone.fingerprint == enc.fingerprint


def test_num_proc_workers_give_same_result(model_dir, sae_dir, texts):
    enc = SAEEncoder(str(model_dir), str(sae_dir), top_k=12)
    ds = Dataset.from_dict({"text": texts * 2})
    one = enc.map(ds, batch_size=3)
    two = enc.map(ds, batch_size=3, num_proc=2)
    assert as_lists(one["sae_indices"]) == as_lists(two["sae_indices"])


def test_pool_start_follows_the_saes_training_positions(model, tokenizer, texts):
    """An SAE trained without the first positions (sae-lens ``seqpos_slice``) is not asked to pool them:
    for a tokenizer without BOS, position 0 is an attention sink with a huge norm."""
    import torch

    from hf_saerl.testing import tiny_sae

    sae = tiny_sae(d_in=32, d_sae=128, hook_name="blocks.1.hook_resid_post")
    sae.cfg.metadata.seqpos_slice = (3, None)
    enc = SAEEncoder(model, sae, tokenizer=tokenizer, top_k=None, tokens=TokenPolicy(exclude_bos=False))
    assert enc.pool_start == 3 and enc.config()["pool_start"] == 3
    out = enc({"text": texts})
    got = sparse_matrix(out, 128).toarray()
    for i, text in enumerate(texts):
        ids = tokenizer(text, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            hidden = model(ids, output_hidden_states=True).hidden_states[2][0]  # blocks.1 output
            expected = sae.encode(hidden[3:]).mean(0).numpy() if ids.shape[1] > 3 else np.zeros(128)
        assert out["sae_n_tokens"][i] == max(0, ids.shape[1] - 3)
        np.testing.assert_allclose(got[i], expected, rtol=1e-5, atol=1e-6)
    # an explicit pool_start overrides the SAE's, and a plain SAE pools from position 0 (BOS rules apply)
    assert SAEEncoder(model, sae, tokenizer=tokenizer, tokens={"pool_start": 0}).pool_start == 0
    assert SAEEncoder(model, tiny_sae(d_in=32, d_sae=128), tokenizer=tokenizer).pool_start == 0
    with pytest.raises(ValueError, match="pool_start"):
        SAEEncoder(model, sae, tokenizer=tokenizer, tokens=TokenPolicy(pool_start=-1))


def test_activations_column_is_the_raw_baseline_from_the_same_pass(model, tokenizer, sae, texts):
    import torch

    enc = SAEEncoder(model, sae, tokenizer=tokenizer, top_k=8, columns=FeatureColumns(activations="mean_act"))
    ds = enc.map(Dataset.from_dict({"text": texts}), batch_size=4)
    assert ds.features["mean_act"].length == 32
    got = np.asarray(ds["mean_act"], dtype=np.float32)
    np.testing.assert_allclose(got, enc.pooled_activations(texts), rtol=1e-5, atol=1e-6)
    for i, text in enumerate(texts):
        ids = tokenizer(text, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            hidden = model(ids, output_hidden_states=True).hidden_states[2][0, 1:]  # BOS left out
        np.testing.assert_allclose(got[i], hidden.mean(0).numpy(), rtol=1e-5, atol=1e-6)
    # the SAE columns are unchanged by the extra column
    plain = SAEEncoder(model, sae, tokenizer=tokenizer, top_k=8)({"text": texts})
    assert plain["sae_indices"] == ds["sae_indices"]
    assert enc.fingerprint != SAEEncoder(model, sae, tokenizer=tokenizer, top_k=8).fingerprint


ALL_POOLINGS = ["mean", "max", "sum", "last", "freq"]


def _count_layer1_calls(model):
    calls = []
    return calls, model.model.layers[1].register_forward_hook(lambda *a: calls.append(1))


@pytest.mark.parametrize("through_sae", [True, False])
def test_pool_spans_equals_one_call_per_pooling_in_one_pass(model, tokenizer, sae, texts, through_sae):
    enc = SAEEncoder(model, sae, tokenizer=tokenizer, top_k=None, token_budget=40)
    ids = enc.tokenizer(texts)["input_ids"]
    pool_from = [0, 3, 1, 5, 10, 2]  # mask a prefix of each text, as span encoding does
    width = enc.d_sae if through_sae else enc.d_in
    raw_poolings = ("mean", "max")
    calls, handle = _count_layer1_calls(model)
    try:
        many = enc.pool_spans(
            ids, [*ALL_POOLINGS, "max"], pool_from=pool_from, through_sae=through_sae, raw_poolings=raw_poolings
        )
        n_passes = len(calls)
        calls.clear()
        for pooling in ALL_POOLINGS:
            one = enc.pool_spans(
                ids,
                (pooling,),
                pool_from=pool_from,
                through_sae=through_sae,
                raw_poolings=(pooling,) if pooling in raw_poolings else (),
            )
            assert one.pooled[pooling].shape == many.pooled[pooling].shape == (len(ids), width)
            np.testing.assert_allclose(many.pooled[pooling], one.pooled[pooling], rtol=1e-6, atol=1e-6)
            np.testing.assert_array_equal(many.n_tokens, one.n_tokens)
            if pooling in raw_poolings:
                assert many.raw[pooling].shape == (len(ids), enc.d_in)
                np.testing.assert_allclose(many.raw[pooling], one.raw[pooling], rtol=1e-6, atol=1e-6)
    finally:
        handle.remove()
    assert list(many.pooled) == ALL_POOLINGS  # repeats dropped, order kept
    assert list(many.raw) == list(raw_poolings)
    assert n_passes * len(ALL_POOLINGS) == len(calls)  # one forward for all five poolings
    assert many.n_tokens.tolist() == [
        len(t) + 1 - max(p, 1) for t, p in zip(texts, pool_from, strict=True)
    ]  # BOS + char ids
    # the default pooling is the encoder's, and whole rows equal what the datasets transform pools
    whole = enc.pool_spans(ids)
    assert list(whole.pooled) == ["mean"] and whole.raw == {}
    np.testing.assert_allclose(
        whole.pooled["mean"], sparse_matrix(enc({"text": texts}), enc.d_sae).toarray(), rtol=1e-6, atol=1e-6
    )
    with pytest.raises(InvalidParameterError, match="Unknown pooling"):
        enc.pool_spans(ids, ["max", "median"])
    with pytest.raises(InvalidParameterError, match="at least one"):
        enc.pool_spans(ids, [])
    with pytest.raises(InvalidParameterError, match="pool_from has 2 entries for 6 rows"):
        enc.pool_spans(ids, pool_from=[0, 1])


def test_public_model_tokenizer_and_sae_load_lazily_one_at_a_time(model_dir, sae_dir, tokenizer):
    enc = SAEEncoder(str(model_dir), str(sae_dir))
    assert enc.sae.cfg.d_sae == enc.d_sae and not enc.runtime.model_loaded
    assert enc.tokenizer.get_vocab() == tokenizer.get_vocab() and not enc.runtime.model_loaded
    assert type(enc.model).__name__ == "LlamaForCausalLM" and enc.runtime.model_loaded
    assert enc.model is enc.model and enc.tokenizer is enc.tokenizer
    assert enc.sae_spec == str(sae_dir) and enc.model_spec == str(model_dir) and enc.tokenizer_spec is None


def test_config_holds_every_option_a_saved_pipeline_restores(model, tokenizer, sae):
    """config() records every option but the runtime ones, flat, so from_config rebuilds an equal encoder."""
    enc = SAEEncoder(
        model,
        sae,
        tokenizer=tokenizer,
        pooling="max",
        top_k=7,
        max_length=33,
        dtype="float32",
        text_column=None,
        template="{q} {a}",
        chat_template=True,
        tokens=TokenPolicy(on_overlong="error", on_empty="zeros", exclude_bos=False, pool_start=2),
        columns=FeatureColumns(indices="i", values="v", n_tokens="n", truncated="t", activations="act"),
        token_budget=128,
    )
    config = enc.config()
    assert SAEEncoder.option_names() - set(SAEEncoder.RUNTIME_OPTIONS) <= set(config)
    expected = {
        "on_overlong": "error",
        "on_empty": "zeros",
        "exclude_bos": False,
        "pool_start": 2,
        "indices_column": "i",
        "values_column": "v",
        "n_tokens_column": "n",
        "truncated_column": "t",
        "activations_column": "act",
    }
    assert {k: config[k] for k in expected} == expected
    rebuilt = SAEEncoder.from_config(config, model, sae, tokenizer=tokenizer)
    assert rebuilt.config() == config and rebuilt.fingerprint == enc.fingerprint
    assert rebuilt.columns == enc.columns and rebuilt.tokens == enc.tokens
    # keyword arguments override the config; unknown keys are refused
    assert SAEEncoder.from_config(config, model, sae, tokenizer=tokenizer, on_empty="error").tokens.on_empty == "error"
    with pytest.raises(InvalidParameterError, match=r"unknown option\(s\) \['warp_speed'\].*newer hf_saerl"):
        SAEEncoder.from_config({**config, "warp_speed": 9}, model, sae, tokenizer=tokenizer)


#: ``SAEEncoder(...).fingerprint`` of ``tiny_llama()``, ``tiny_sae()``, ``tiny_tokenizer()`` at commit 3deef8a (before
#: the column names and token rules were grouped), computed once from a scratch checkout of that commit
#: (``git archive 3deef8a hf_saerl | tar -x``) with the flat keywords shown in the comments.
FINGERPRINTS_3DEEF8A = {
    "default": "70d6854167eba983",  # SAEEncoder(m, s, tokenizer=t)
    # + indices_column="ids", values_column="vals", n_tokens_column="ntok", truncated_column="cut",
    #   activations_column="acts"
    "custom_columns": "fc6447432a7f7490",
    # + the columns above and top_k=8, max_length=64, pooling="max", on_overlong="error", on_empty="zeros",
    #   exclude_bos=False, pool_start=2
    "custom_all": "e88b60ae44daf36e",
}
CUSTOM_COLUMNS = {"indices": "ids", "values": "vals", "n_tokens": "ntok", "truncated": "cut", "activations": "acts"}


@pytest.mark.parametrize(
    "case, kwargs",
    [
        ("default", {}),
        ("custom_columns", {"columns": FeatureColumns(**CUSTOM_COLUMNS)}),
        (
            "custom_all",
            {
                "columns": CUSTOM_COLUMNS,
                "top_k": 8,
                "max_length": 64,
                "pooling": "max",
                "tokens": {"on_overlong": "error", "on_empty": "zeros", "exclude_bos": False, "pool_start": 2},
            },
        ),
    ],
)
def test_fingerprints_are_those_of_the_flat_keywords_before_grouping(case, kwargs):
    """Grouping the keywords changed no cache key: the fingerprints equal those computed at commit 3deef8a."""
    from hf_saerl.testing import tiny_llama, tiny_tokenizer

    enc = SAEEncoder(tiny_llama(), tiny_sae(), tokenizer=tiny_tokenizer(), **kwargs)
    assert enc.fingerprint == FINGERPRINTS_3DEEF8A[case]


def test_an_old_style_flat_config_builds_the_encoder_it_records(model, tokenizer, sae):
    """A saved pipeline's encoder options (written before the grouping, flat) rebuild the encoder as the bundle
    loader does, with every column name and token rule where it was."""
    old = {  # the "encoder" entry of a config.json written at commit 3deef8a, with custom columns
        "activations_column": "acts",
        "chat_template": False,
        "dtype": None,
        "exclude_bos": False,
        "hook_name": "blocks.1.hook_resid_post",
        "indices_column": "ids",
        "max_length": 64,
        "n_tokens_column": "ntok",
        "on_empty": "zeros",
        "on_overlong": "truncate",
        "pool_start": 1,
        "pooling": "max",
        "template": None,
        "text_column": "prompt",
        "top_k": 8,
        "truncated_column": "cut",
        "values_column": "vals",
    }
    enc = SAEEncoder.from_config(old, model, sae, tokenizer=tokenizer)
    assert enc.columns == FeatureColumns(**CUSTOM_COLUMNS)
    assert enc.tokens == TokenPolicy(on_overlong="truncate", on_empty="zeros", exclude_bos=False, pool_start=1)
    assert {k: v for k, v in enc.config().items() if k in old} == old
    out = enc({"prompt": ["2 + 2 = 4", ""]})
    assert set(out) == {"ids", "vals", "ntok", "cut", "acts"}
    assert out["ntok"] == [len("2 + 2 = 4") + 1 - 1, 0]  # one token per character plus BOS, from position 1


@pytest.mark.parametrize(
    "keyword, value, route",
    [
        ("indices_column", "ids", r"columns=FeatureColumns\(indices='ids'\) or columns=\{'indices': 'ids'\}"),
        ("values_column", "v", r"columns=FeatureColumns\(values='v'\)"),
        ("n_tokens_column", "n", r"columns=FeatureColumns\(n_tokens='n'\)"),
        ("truncated_column", "t", r"columns=FeatureColumns\(truncated='t'\)"),
        ("activations_column", "a", r"columns=FeatureColumns\(activations='a'\)"),
        ("on_empty", "zeros", r"tokens=TokenPolicy\(on_empty='zeros'\) or tokens=\{'on_empty': 'zeros'\}"),
        ("on_overlong", "error", r"tokens=TokenPolicy\(on_overlong='error'\)"),
        ("exclude_bos", False, r"tokens=TokenPolicy\(exclude_bos=False\)"),
        ("pool_start", 1, r"tokens=TokenPolicy\(pool_start=1\)"),
    ],
)
def test_a_moved_keyword_says_where_it_went(model, tokenizer, sae, keyword, value, route):
    from hf_saerl.errors import ParameterTypeError

    with pytest.raises(ParameterTypeError, match=rf"SAEEncoder\({keyword}=\.\.\.\) is set through .*{route}"):
        SAEEncoder(model, sae, tokenizer=tokenizer, **{keyword: value})


def test_an_unknown_keyword_is_a_type_error_naming_it(model, tokenizer, sae):
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'topk'.*columns=FeatureColumns"):
        SAEEncoder(model, sae, tokenizer=tokenizer, topk=8)


def test_in_memory_model_pickles_after_output_hidden_states(tokenizer, sae):
    """transformers 5 leaves unpicklable ContextVar hooks on a model after output_hidden_states=True; an
    encoder holding such a model still travels to num_proc workers and Ray actors (as config + weights)."""
    import pickle

    from hf_saerl.testing import tiny_llama

    model = tiny_llama(n_layers=3, hidden_size=32, seed=5)
    with torch.no_grad():
        model(torch.tensor([[1, 2, 3]]), output_hidden_states=True)
    with pytest.raises(Exception):  # noqa: B017 - whatever pickle raises on them: its output-capturing hooks: local functions holding ContextVars
        pickle.dumps(model)  # the transformers behaviour this guards against; if it goes away, so can this test
    enc = SAEEncoder(model, sae, tokenizer=tokenizer, top_k=8)
    texts = ["abc", "hello world"]
    clone = pickle.loads(pickle.dumps(enc))
    assert clone.fingerprint == enc.fingerprint
    a, b = enc({"text": texts}), clone({"text": texts})
    assert a["sae_indices"] == b["sae_indices"]
    np.testing.assert_allclose(np.concatenate(a["sae_values"]), np.concatenate(b["sae_values"]), rtol=1e-6)


def test_a_tokenizer_object_with_a_model_reference_is_used_and_fingerprinted(model_dir, sae_dir, texts):
    import pickle

    from hf_saerl.testing import tiny_tokenizer

    own = SAEEncoder(str(model_dir), str(sae_dir), top_k=12)
    custom = tiny_tokenizer()
    custom.chat_template = "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}"
    enc = SAEEncoder(str(model_dir), str(sae_dir), tokenizer=custom, top_k=12)
    assert enc.tokenizer is custom and enc.fingerprint != own.fingerprint  # not silently the folder's own
    assert enc.runtime.identity()["tokenizer"] == tokenizer_identity(custom)
    clone = pickle.loads(pickle.dumps(enc))  # what num_proc workers and Ray actors receive
    assert clone.tokenizer.chat_template == custom.chat_template and clone.fingerprint == enc.fingerprint
    assert as_lists(clone({"text": texts})["sae_indices"]) == as_lists(own({"text": texts})["sae_indices"])
