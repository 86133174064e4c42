"""Nothing silent in the rollouts stage (moved from tests/reliability): each bad input or fault raises the right
error class with a message naming the argument, value, column and row, before the policy runs; a ``map`` that
is refused leaves no cache file behind. Settings are checked at first use (``map`` or a call), not in ``__init__``."""

from __future__ import annotations

import copy
import os

import pytest
import torch
from datasets import Dataset

from hf_saerl.errors import InvalidParameterError, NonFiniteError, ParameterTypeError
from hf_saerl.rollouts import LabelColumns, RolloutLabeller, SamplingConfig
from hf_saerl.rollouts.backends import TransformersBackend, sampling_settings

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")


def files_in(path) -> list[str]:
    return sorted(os.listdir(path))


class NeverGenerates:
    """A policy that must not be called: the refusals come before any sampling."""

    def generate(self, prompts, n, sampling, seeds=None):
        raise AssertionError("generate ran although the batch should have been refused")


def _batch():
    return {"prompt": ["2+2?"], "answer": ["4"]}


def test_sampling_temperature_nan_is_non_finite():
    with pytest.raises(NonFiniteError, match="temperature must be a finite number, got nan"):
        sampling_settings({"temperature": float("nan")})


def test_sampling_top_p_infinite_is_non_finite_at_first_use():
    labeller = RolloutLabeller(backend=NeverGenerates(), sampling={"top_p": float("inf")}, progress=False)
    with pytest.raises(NonFiniteError, match="top_p must be a finite number, got inf"):
        labeller(_batch())


def test_policy_with_nan_weights_is_refused(model, tokenizer):
    bad = copy.deepcopy(model)
    with torch.no_grad():
        bad.model.embed_tokens.weight[2, 0] = float("-inf")
    with pytest.raises(NonFiniteError, match=r"the policy LlamaForCausalLM: tensor 'model\.embed_tokens\.weight'"):
        TransformersBackend(bad, tokenizer)


def test_labeller_int_prompt_names_column_and_row(tmp_path):
    ds = Dataset.from_dict({"prompt": [7, 8], "answer": ["7", "8"]})
    labeller = RolloutLabeller(backend=NeverGenerates(), sampling={"n": 2}, progress=False)
    with pytest.raises(ParameterTypeError, match=r"Column 'prompt' holds 7 \(int\) in batch row 0, which is neither"):
        labeller.map(ds, cache_file_name=str(tmp_path / "out.arrow"))
    assert files_in(tmp_path) == []


def test_labeller_list_of_strings_is_not_a_chat():
    labeller = RolloutLabeller(backend=NeverGenerates(), sampling={"n": 2}, progress=False)
    with pytest.raises(ParameterTypeError, match=r"holds a list of str in batch row 0"):
        labeller({"prompt": [["2+2?", "think"]], "answer": ["4"]})


def test_labeller_chat_without_content_is_an_empty_prompt():
    labeller = RolloutLabeller(backend=NeverGenerates(), sampling={"n": 2}, progress=False)
    with pytest.raises(InvalidParameterError, match=r"1 empty prompt\(s\) in this batch \(batch rows \[1\]\)"):
        labeller(
            {
                "prompt": [[{"role": "user", "content": "2+2?"}], [{"role": "user", "content": " "}]],
                "answer": ["4", "4"],
            }
        )


def test_labeller_template_over_none_is_an_empty_prompt():
    labeller = RolloutLabeller(
        backend=NeverGenerates(), sampling={"n": 2}, progress=False, prompt_column="q", template="{q} {c}"
    )
    with pytest.raises(InvalidParameterError, match=r"1 empty prompt\(s\) in this batch \(batch rows \[0\]\)"):
        labeller({"q": ["2+2?"], "c": [None], "answer": ["4"]})


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"sampling": {"seed": 1.5}}, InvalidParameterError, r"seed must be an integer, got 1\.5"),
        ({"sampling": {"n": True}}, InvalidParameterError, r"n must be an integer, got True"),
        ({"keep_completions": "no"}, ParameterTypeError, r"keep_completions must be a bool, got 'no'"),
        ({"sampling": {"max_new_tokens": 8.0}}, InvalidParameterError, r"max_new_tokens must be an integer, got 8\.0"),
        ({"instruction": 3}, ParameterTypeError, r"instruction must be a str or None, got 3"),
        ({"sampling": {"n": 4, "max_samples": 2}}, InvalidParameterError, r"max_samples=2 is below n=4"),
        ({"sampling": {"prior": (0, 1)}}, InvalidParameterError, r"prior alpha must be in \(0, inf\), got 0"),
        ({"sampling": {"token_budget": -1}}, InvalidParameterError, r"token_budget must be an integer >= 0, got -1"),
        ({"sampling": {"extra": {"temperature": 0.5}}}, InvalidParameterError, r"extra holds \['temperature'\]"),
        ({"columns": LabelColumns(n_wrong="pass_rate")}, InvalidParameterError, r"\['pass_rate'\] are used twice"),
    ],
)
def test_labeller_arguments_are_checked_at_first_use(kwargs, error, match):
    labeller = RolloutLabeller(backend=NeverGenerates(), **kwargs)  # storing never raises (sklearn's rule)
    with pytest.raises(error, match=match):
        labeller(_batch())


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n": 4}, r"RolloutLabeller\(n=\.\.\.\) is set through sampling=: pass sampling=SamplingConfig\(n=4"),
        ({"temperature": 0.7}, r"sampling=SamplingConfig\(temperature=0\.7"),
        ({"pass_rate_column": "p"}, r"columns=LabelColumns\(pass_rate='p'\)"),
        ({"tempreature": 0.7}, r"unexpected keyword argument 'tempreature'"),
    ],
)
def test_flat_sampling_arguments_point_to_their_one_route(kwargs, match):
    with pytest.raises(ParameterTypeError, match=match):
        RolloutLabeller(backend=NeverGenerates(), **kwargs)


def test_unknown_sampling_keys_and_presets_are_refused():
    with pytest.raises(InvalidParameterError, match=r"unknown key\(s\) \['repetition_penalty'\].*under extra"):
        RolloutLabeller(backend=NeverGenerates(), sampling={"repetition_penalty": 1.1})
    with pytest.raises(InvalidParameterError, match=r"Unknown sampling preset 'tpu'"):
        SamplingConfig.preset("tpu")


def test_backend_refuses_fractional_seeds_and_one_string(model, tokenizer):
    backend = TransformersBackend(model, tokenizer)
    with pytest.raises(InvalidParameterError, match=r"seeds\[1\] must be an integer, got 2\.5"):
        backend.generate(["a", "b"], 1, {"max_new_tokens": 2}, seeds=[1, 2.5])
    with pytest.raises(ParameterTypeError, match=r"prompts must be a list of rendered prompt strings, got one string"):
        backend.generate("abc", 1, {"max_new_tokens": 2})
    assert backend._loaded is False  # refused before the model was even placed
