"""The transformers backend on the tiny model against independent computations: greedy against
``model.generate`` one prompt at a time; sampling against a hand-written token loop (no cache, no padding, no
batch) drawing from the same per-sample seeds; batch composition and size not changing any completion; and the
seeded Gumbel-max sampler drawing from the softmax. vLLM's parameter mapping is checked on a stand-in module."""

from __future__ import annotations

import pickle
import sys
import types

import pytest
import torch

from hf_saerl.errors import InvalidParameterError
from hf_saerl.rollouts.backends import (
    Generator,
    SeededSampling,
    TransformersBackend,
    VLLMBackend,
    derive_seed,
    encode_prompts,
    make_backend,
    sampling_settings,
)

PROMPTS = ["1+1=", "What is 2 + 2?", "x", "Sum the first 100 positive integers."]


def _hand_sample(model, tokenizer, prompt, seed, temperature, max_new_tokens):
    """One completion, one token at a time over the whole sequence: the Gumbel-max draw the backend documents."""
    generator = torch.Generator().manual_seed(seed)
    ids = encode_prompts(tokenizer, [prompt])[0]
    new: list[int] = []
    with torch.no_grad():
        for _ in range(max_new_tokens):
            logits = model(torch.tensor([ids + new])).logits[0, -1].float()
            logp = torch.log_softmax(logits / temperature, dim=-1)
            uniform = torch.empty(logp.shape[-1]).uniform_(generator=generator)
            exponential = -torch.log(uniform.clamp(min=1e-30))
            token = int(torch.argmax(logp - exponential.log()))
            new.append(token)
            if token == tokenizer.eos_token_id:
                break
    return tokenizer.decode(new, skip_special_tokens=True)


def test_sampling_matches_a_hand_loop_one_prompt_at_a_time(model, tokenizer):
    seeds = [derive_seed(7, p) for p in PROMPTS]
    backend = TransformersBackend(model, tokenizer, batch_size=16)
    sampling = {"max_new_tokens": 10, "temperature": 0.8}
    out = backend.generate(PROMPTS, 3, sampling, seeds)
    by_hand = [
        [_hand_sample(model, tokenizer, p, derive_seed(s, j), 0.8, 10) for j in range(3)]
        for p, s in zip(PROMPTS, seeds, strict=True)
    ]
    assert out == by_hand
    assert len({c for row in out for c in row}) == 12  # the samples differ from each other


def test_batch_composition_and_size_do_not_change_completions(model, tokenizer):
    seeds = [derive_seed(0, p) for p in PROMPTS]
    sampling = {"max_new_tokens": 8, "temperature": 1.0, "top_k": 20, "top_p": 0.9}
    together = TransformersBackend(model, tokenizer, batch_size=16).generate(PROMPTS, 2, sampling, seeds)
    alone = TransformersBackend(model, tokenizer, batch_size=1).generate(PROMPTS, 2, sampling, seeds)
    reversed_ = TransformersBackend(model, tokenizer, batch_size=3).generate(PROMPTS[::-1], 2, sampling, seeds[::-1])
    assert together == alone == reversed_[::-1]
    other_seeds = TransformersBackend(model, tokenizer).generate(PROMPTS, 2, sampling, [s + 1 for s in seeds])
    assert other_seeds != together


def test_greedy_matches_model_generate_per_prompt(model, tokenizer):
    out = TransformersBackend(model, tokenizer, batch_size=8).generate(
        PROMPTS, 2, {"max_new_tokens": 6, "temperature": 0}
    )
    for prompt, row in zip(PROMPTS, out, strict=True):
        ids = tokenizer(prompt, return_tensors="pt")
        with torch.inference_mode():
            single = model.generate(**ids, do_sample=False, max_new_tokens=6, pad_token_id=tokenizer.pad_token_id)
        expected = tokenizer.decode(single[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)
        assert row == [expected, expected]  # left padding inside the batch changes nothing


def test_seeded_sampling_draws_from_the_softmax():
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    logits = torch.log(probs)[None] + 3.0  # an offset changes nothing
    draws = torch.tensor([int(SeededSampling([s])(None, logits.clone()).argmax()) for s in range(4000)])
    freq = torch.bincount(draws, minlength=4).float() / len(draws)
    assert torch.allclose(freq, probs, atol=0.03), freq
    hot = SeededSampling(list(range(4000)), temperature=2.0)(None, logits.repeat(4000, 1)).argmax(-1)
    tempered = torch.softmax(torch.log(probs) / 2.0, -1)
    assert torch.allclose(torch.bincount(hot, minlength=4).float() / 4000, tempered, atol=0.03)
    top2 = SeededSampling(list(range(500)), top_k=2)(None, logits.repeat(500, 1)).argmax(-1)
    assert set(top2.tolist()) == {0, 1}


def test_prompt_encoding_never_doubles_bos(tokenizer):
    chat = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    ids = encode_prompts(tokenizer, ["hi", chat])
    assert ids[0][:1] == [tokenizer.bos_token_id] and ids[0][1] != tokenizer.bos_token_id
    assert ids[1][0] == tokenizer.bos_token_id and ids[1][1] != tokenizer.bos_token_id


def test_backend_pickles_and_reloads(model, tokenizer):
    backend = TransformersBackend(model, tokenizer)
    sampling = {"max_new_tokens": 5}
    first = backend.generate(PROMPTS[:2], 2, sampling, [1, 2])
    shipped = pickle.loads(pickle.dumps(backend))
    assert shipped.generate(PROMPTS[:2], 2, sampling, [1, 2]) == first
    assert shipped.identity() == backend.identity()
    assert isinstance(backend, Generator)


def test_backend_from_a_folder_loads_lazily(model_dir):
    backend = TransformersBackend(str(model_dir))
    assert backend._model is None  # nothing loaded at construction
    identity = backend.identity()
    assert identity["model"]["content"] and backend._model is None
    out = backend.generate(["2+2="], 2, {"max_new_tokens": 3}, [0])
    assert len(out[0]) == 2 and backend._model is not None
    assert pickle.loads(pickle.dumps(backend))._model is None  # a folder ships as its path


def test_sampling_settings_and_errors(model, tokenizer):
    common, extra = sampling_settings({"temperature": 0.5, "repetition_penalty": 1.2})
    assert common["temperature"] == 0.5 and common["max_new_tokens"] == 256 and extra == {"repetition_penalty": 1.2}
    for bad, match in [
        ({"temperature": -1}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"max_new_tokens": 0}, "max_new"),
        ({"top_k": -3}, "top_k"),
        ({"min_p": 1.5}, "min_p"),
    ]:
        with pytest.raises(InvalidParameterError, match=match):
            sampling_settings(bad)
    with pytest.raises(InvalidParameterError, match="tokenizer"):
        TransformersBackend(model)
    with pytest.raises(InvalidParameterError, match="one seed per prompt"):
        TransformersBackend(model, tokenizer).generate(["a", "b"], 1, {}, seeds=[1])
    with pytest.raises(InvalidParameterError, match="Unknown backend 'tpu'"):
        make_backend("tpu", "gpt2")
    with pytest.raises(InvalidParameterError, match="generate"):
        make_backend(object(), None)
    # extra keys reach model.generate
    out = TransformersBackend(model, tokenizer).generate(
        ["ab"], 1, {"max_new_tokens": 4, "repetition_penalty": 5.0, "temperature": 0}
    )
    assert len(out[0][0].split()) <= 4


def test_vllm_backend_maps_sampling_to_requests(monkeypatch, tokenizer):
    calls = {}

    class SamplingParams:
        def __init__(self, **kwargs):
            self.kwargs = kwargs

    class LLM:
        def __init__(self, **kwargs):
            calls["llm"] = kwargs

        def get_tokenizer(self):
            return tokenizer

        def generate(self, requests, params, use_tqdm=True):
            calls["requests"], calls["params"] = requests, [p.kwargs for p in params]
            choice = types.SimpleNamespace
            return [
                types.SimpleNamespace(outputs=[choice(text=f"{i}-{j}") for j in range(p.kwargs["n"])])
                for i, p in enumerate(params)
            ]

    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(LLM=LLM, SamplingParams=SamplingParams))
    backend = VLLMBackend("some/model", gpu_memory_utilization=0.3)
    out = backend.generate(
        ["ab", "<s>cd"],
        2,
        {"max_new_tokens": 7, "temperature": 0.6, "top_k": 5, "presence_penalty": 0.1},
        seeds=[11, 12],
    )
    assert out == [["0-0", "0-1"], ["1-0", "1-1"]]
    assert calls["llm"] == {"model": "some/model", "gpu_memory_utilization": 0.3, "dtype": "auto"}
    assert calls["params"][0] == {
        "n": 2,
        "max_tokens": 7,
        "temperature": 0.6,
        "top_p": 1.0,
        "top_k": 5,
        "seed": 11,
        "presence_penalty": 0.1,
    }
    assert calls["requests"][1] == {"prompt_token_ids": encode_prompts(tokenizer, ["<s>cd"])[0]}
    assert pickle.loads(pickle.dumps(backend))._llm is None


def test_vllm_missing_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm -> ImportError
    with pytest.raises(ImportError, match="pip install vllm"):
        VLLMBackend("some/model").load()
    with pytest.raises(InvalidParameterError, match="Hub id or a folder"):
        VLLMBackend(object())
