"""Continuous batching (:mod:`hf_saerl.rollouts.decoding`) against ``model.generate`` on the tiny model: the same
tokens as the padded ``generate`` path for every batch size and row order (bit identity of tokens; the logits
differ only by the float sums of other batch shapes, which on these shapes change no token), the cut-off flag
by hand, greedy decoding against one ``generate`` call per prompt, and the fallback where logits processors are
needed."""

from __future__ import annotations

import pytest
import torch

from hf_saerl.rollouts.backends import SeededSampling, TransformersBackend, derive_seed, encode_prompts
from hf_saerl.rollouts.decoding import decode, supports_decode

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")

PROMPTS = ["1+1=", "a much longer prompt: 2+2=", "3+3", "x"]


@pytest.mark.parametrize(
    "sampling",
    [{"max_new_tokens": 10, "temperature": 1.0}, {"max_new_tokens": 7, "temperature": 0.7, "top_k": 20, "top_p": 0.9}],
)
def test_continuous_batching_samples_what_padded_generate_samples(model, tokenizer, sampling):
    seeds = [5, 6, 7, 8]
    reference = TransformersBackend(model, tokenizer, batch_size=16).generate_padded(PROMPTS, 3, sampling, seeds)
    for batch_size in (1, 2, 5, 16):
        ours = TransformersBackend(model, tokenizer, batch_size=batch_size).generate_completions(
            PROMPTS, 3, sampling, seeds
        )
        assert ours == reference, batch_size  # text, token count and cut-off flag of every sample
    reversed_ = TransformersBackend(model, tokenizer, batch_size=3).generate_completions(
        PROMPTS[::-1], 3, sampling, seeds[::-1]
    )
    assert reversed_[::-1] == reference


def test_cut_off_flags_and_token_counts_by_hand(model, tokenizer):
    rows = [(i, derive_seed(s, 0)) for i, s in enumerate([1, 2, 3, 4])]
    ids = encode_prompts(tokenizer, PROMPTS)
    out = decode(
        model,
        ids,
        rows,
        max_new_tokens=6,
        eos_ids=[tokenizer.eos_token_id],
        max_batch=2,
        sampler=SeededSampling([], 1.0),
    )
    for tokens, cut in out:
        ended = bool(tokens) and tokens[-1] == tokenizer.eos_token_id
        assert cut == (not ended) and (len(tokens) == 6 if cut else len(tokens) <= 6)
        assert tokenizer.eos_token_id not in tokens[:-1]  # nothing after the end


def test_early_stopped_rows_leave_the_batch(model, tokenizer):
    """The row seeded 1 must end at its first token; the others must not end. After the first step only two rows
    are carried (``on_step`` reports the tokens each step made), and the finished row's waiting neighbour (seed 4)
    takes its slot."""
    eos = tokenizer.eos_token_id

    class Scripted(SeededSampling):
        def noisy_scores(self, scores, generators, input_ids=None):
            out = super().noisy_scores(scores, generators, input_ids)
            for row, generator in enumerate(generators):
                if generator.initial_seed() == 1:
                    out[row] = -float("inf")
                    out[row, eos] = 0.0
                else:
                    out[row, eos] = -float("inf")
            return out

    steps = []
    ids = encode_prompts(tokenizer, ["ab", "cd"])
    rows = [(0, 1), (1, 2), (1, 3), (0, 4)]
    out = decode(
        model,
        ids,
        rows,
        max_new_tokens=5,
        eos_ids=[eos],
        max_batch=3,
        sampler=Scripted([], 1.0),
        on_step=lambda tokens, done: steps.append((tokens, done)),
    )
    assert out[0] == ([eos], False)
    assert [len(t) for t, _ in out[1:]] == [5, 5, 5] and all(cut for _, cut in out[1:])
    # step 1: prefill of 3 rows, one ends; step 2: the waiting row is prefilled into the free slot (1 token);
    # then 3 rows decode until all reach 5 tokens
    assert steps[0] == (3, 1) and steps[1] == (1, 0)
    assert sum(t for t, _ in steps) == 1 + 3 * 5 and max(t for t, _ in steps) == 3


def test_greedy_matches_one_generate_call_per_prompt(model, tokenizer):
    out = TransformersBackend(model, tokenizer, batch_size=3).generate(
        PROMPTS, 2, {"max_new_tokens": 6, "temperature": 0}
    )
    for prompt, row in zip(PROMPTS, out, strict=True):
        ids = tokenizer(prompt, return_tensors="pt")
        with torch.inference_mode():
            single = model.generate(**ids, do_sample=False, max_new_tokens=6, pad_token_id=tokenizer.pad_token_id)
        expected = tokenizer.decode(single[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)
        assert row == [expected, expected]


def test_models_that_need_logits_processors_fall_back_to_generate(model, tokenizer):
    assert supports_decode(model)
    model.generation_config.repetition_penalty = 1.3
    try:
        assert not supports_decode(model)
        backend = TransformersBackend(model, tokenizer, batch_size=4)
        sampling = {"max_new_tokens": 5}
        assert backend.generate_completions(PROMPTS, 2, sampling, [1, 2, 3, 4]) == backend.generate_padded(
            PROMPTS, 2, sampling, [1, 2, 3, 4]
        )
    finally:
        model.generation_config.repetition_penalty = 1.0
