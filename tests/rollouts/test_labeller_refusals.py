"""Issue 13, "nothing silent", for the rollouts stage (moved from tests/reliability/test_encoding.py): the error
class, a message naming the problem, no cache file left behind, and the policy never run.
"""

from __future__ import annotations

import copy
import os

import pytest
import torch
from datasets import Dataset

from hf_saerl.errors import InvalidParameterError, NonFiniteError, ParameterTypeError
from hf_saerl.rollouts import RolloutLabeller
from hf_saerl.rollouts.backends import TransformersBackend, sampling_settings

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")


def files_in(path) -> list[str]:
    return sorted(os.listdir(path))


class NeverGenerates:
    """A policy that must not be called: the refusals come before any sampling."""

    def generate(self, prompts, n, sampling, seeds=None):
        raise AssertionError("generate ran although the batch should have been refused")


def test_sampling_temperature_nan_is_non_finite():
    with pytest.raises(NonFiniteError, match="temperature must be a finite number, got nan"):
        sampling_settings({"temperature": float("nan")})


def test_sampling_top_p_infinite_is_non_finite():
    with pytest.raises(NonFiniteError, match="top_p must be a finite number, got inf"):
        RolloutLabeller(backend=NeverGenerates(), top_p=float("inf"))


def test_policy_with_nan_weights_is_refused(model, tokenizer):
    bad = copy.deepcopy(model)
    with torch.no_grad():
        bad.model.embed_tokens.weight[2, 0] = float("-inf")
    with pytest.raises(NonFiniteError, match=r"the policy LlamaForCausalLM: tensor 'model\.embed_tokens\.weight'"):
        TransformersBackend(bad, tokenizer)


def test_labeller_int_prompt_names_column_and_row(tmp_path):
    ds = Dataset.from_dict({"prompt": [7, 8], "answer": ["7", "8"]})
    labeller = RolloutLabeller(backend=NeverGenerates(), n=2, progress=False)
    with pytest.raises(ParameterTypeError, match=r"Column 'prompt' holds 7 \(int\) in batch row 0, which is neither"):
        labeller.map(ds, cache_file_name=str(tmp_path / "out.arrow"))
    assert files_in(tmp_path) == []


def test_labeller_list_of_strings_is_not_a_chat():
    labeller = RolloutLabeller(backend=NeverGenerates(), n=2, progress=False)
    with pytest.raises(ParameterTypeError, match=r"holds a list of str in batch row 0"):
        labeller({"prompt": [["2+2?", "think"]], "answer": ["4"]})


def test_labeller_chat_without_content_is_an_empty_prompt():
    labeller = RolloutLabeller(backend=NeverGenerates(), n=2, progress=False)
    with pytest.raises(InvalidParameterError, match=r"1 empty prompt\(s\) in this batch \(batch rows \[1\]\)"):
        labeller(
            {
                "prompt": [[{"role": "user", "content": "2+2?"}], [{"role": "user", "content": " "}]],
                "answer": ["4", "4"],
            }
        )


def test_labeller_template_over_none_is_an_empty_prompt():
    labeller = RolloutLabeller(backend=NeverGenerates(), n=2, progress=False, prompt_column="q", template="{q} {c}")
    with pytest.raises(InvalidParameterError, match=r"1 empty prompt\(s\) in this batch \(batch rows \[0\]\)"):
        labeller({"q": ["2+2?"], "c": [None], "answer": ["4"]})


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"seed": 1.5}, InvalidParameterError, r"seed must be an integer, got 1\.5"),
        ({"n": True}, InvalidParameterError, r"n must be a positive int.*got True"),
        ({"keep_completions": "no"}, ParameterTypeError, r"keep_completions must be a bool, got 'no'"),
        ({"max_new_tokens": 8.0}, InvalidParameterError, r"max_new_tokens must be an integer, got 8\.0"),
        ({"instruction": 3}, ParameterTypeError, r"instruction must be a str or None, got 3"),
    ],
)
def test_labeller_arguments_are_typed(kwargs, error, match):
    with pytest.raises(error, match=match):
        RolloutLabeller(backend=NeverGenerates(), **kwargs)


def test_backend_refuses_fractional_seeds_and_one_string(model, tokenizer):
    backend = TransformersBackend(model, tokenizer)
    with pytest.raises(InvalidParameterError, match=r"seeds\[1\] must be an integer, got 2\.5"):
        backend.generate(["a", "b"], 1, {"max_new_tokens": 2}, seeds=[1, 2.5])
    with pytest.raises(ParameterTypeError, match=r"prompts must be a list of rendered prompt strings, got one string"):
        backend.generate("abc", 1, {"max_new_tokens": 2})
    assert backend._loaded is False  # refused before the model was even placed
