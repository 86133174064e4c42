"""Span encoding on the tiny model, checked against an independent loop over hidden states."""

import numpy as np
import pytest
import torch

from hf_saerl import SAEEncoder
from hf_saerl.audit import encode_prompts, encode_response_spans

PROMPTS = ["Q: 2+2?", "Solve x^2=4.", "Name a prime."]
RESPONSES = ["A: 4", "x = 2 or x = -2", "7 is prime"]


@pytest.fixture(scope="module")
def encoder(model, sae, tokenizer):
    return SAEEncoder(model, sae, tokenizer=tokenizer, max_length=64, token_budget=64)


def _hand_pool(model, sae, tokenizer, prompt, response):
    p = tokenizer(prompt)["input_ids"]
    r = tokenizer(response, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        hidden = model(torch.tensor([p + r]), output_hidden_states=True).hidden_states[2][0]  # blocks.1 resid_post
        acts = sae.encode(hidden[len(p) :])
    return acts.max(0).values.numpy(), (acts > 0).float().mean(0).numpy(), len(r)


def test_response_span_pooling_equals_hand_loop(encoder, model, sae, tokenizer):
    spans = encode_response_spans(encoder, PROMPTS, RESPONSES, batch_size=2)
    for i, (p, r) in enumerate(zip(PROMPTS, RESPONSES, strict=True)):
        mx, fq, n = _hand_pool(model, sae, tokenizer, p, r)
        np.testing.assert_allclose(spans.pooled["max"][i].toarray()[0], np.maximum(mx, 0), atol=1e-5)
        np.testing.assert_allclose(spans.pooled["freq"][i].toarray()[0], fq, atol=1e-6)
        assert spans.n_tokens[i] == n == len(r)
    # the context matters: the same response after a different prompt pools differently
    other = encode_response_spans(encoder, ["zzz"] * 3, RESPONSES)
    assert abs(other.pooled["max"] - spans.pooled["max"]).sum() > 1e-3


def test_prompt_pooling_leaves_bos_out(encoder, model, sae, tokenizer):
    out = encode_prompts(encoder, PROMPTS[:1]).pooled["max"].toarray()[0]
    ids = tokenizer(PROMPTS[0])["input_ids"]
    with torch.no_grad():
        acts = sae.encode(model(torch.tensor([ids]), output_hidden_states=True).hidden_states[2][0, 1:])
    np.testing.assert_allclose(out, np.maximum(acts.max(0).values.numpy(), 0), atol=1e-5)


def test_chat_pairs_pool_the_assistant_turn(encoder, model, sae, tokenizer):
    prompt = [{"role": "user", "content": "2+2?"}]
    chosen = [{"role": "assistant", "content": "4"}]
    spans = encode_response_spans(encoder, [prompt], [chosen])
    p_text = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(prompt + chosen, tokenize=False)
    assert full[len(p_text) :] == "4</assistant>"
    p = tokenizer(p_text, add_special_tokens=False)["input_ids"]
    r = tokenizer("4</assistant>", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        acts = sae.encode(model(torch.tensor([p + r]), output_hidden_states=True).hidden_states[2][0, len(p) :])
    np.testing.assert_allclose(spans.pooled["max"].toarray()[0], np.maximum(acts.max(0).values.numpy(), 0), atol=1e-5)


def test_truncation_keeps_response_and_counts(model, sae, tokenizer, caplog):
    enc = SAEEncoder(model, sae, tokenizer=tokenizer, max_length=8)
    spans = encode_response_spans(enc, ["a long prompt here"], ["abc"])
    assert spans.truncated.tolist() == [True] and spans.n_tokens.tolist() == [3]
    assert "exceeded max_length" in caplog.text


def test_errors_name_the_problem(encoder):
    with pytest.raises(ValueError, match=r"empty 'chosen' response\(s\) at rows \[1\]"):
        encode_response_spans(encoder, ["a", "b"], ["x", "  "], column="chosen")
    with pytest.raises(ValueError, match="missing"):
        encode_response_spans(encoder, ["a"], [float("nan")])


def test_each_span_runs_one_forward_for_all_poolings(encoder, model):
    calls = []
    handle = model.model.layers[1].register_forward_hook(lambda *a: calls.append(1))
    try:
        encode_response_spans(encoder, PROMPTS, RESPONSES, poolings=("max",), batch_size=8)
        one = len(calls)
        calls.clear()
        spans = encode_response_spans(encoder, PROMPTS, RESPONSES, poolings=("max", "freq", "mean"), batch_size=8)
        assert len(calls) == one
        calls.clear()
        encode_prompts(encoder, PROMPTS, poolings=("max", "freq"))
        assert 0 < len(calls) <= one
    finally:
        handle.remove()
    assert set(spans.pooled) == {"max", "freq", "mean"}
    for m in spans.pooled.values():
        assert m.shape == (3, encoder.d_sae)
    # mean of the span equals the hand loop, too
    for i, (p, r) in enumerate(zip(PROMPTS, RESPONSES, strict=True)):
        p_ids = encoder.tokenizer(p)["input_ids"]
        r_ids = encoder.tokenizer(r, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            hidden = model(torch.tensor([p_ids + r_ids]), output_hidden_states=True).hidden_states[2][0]
            acts = encoder.sae.encode(hidden[len(p_ids) :])
        np.testing.assert_allclose(spans.pooled["mean"][i].toarray()[0], acts.mean(0).numpy(), atol=1e-5)
