"""Same seed, same rollouts (moved from tests/reliability): seeded CPU runs of the backend and the labeller agree
bit for bit across backend objects and batch sizes, and another seed gives another result."""

from __future__ import annotations

import pytest
from datasets import Dataset

from hf_saerl.rollouts import RolloutLabeller
from hf_saerl.rollouts.backends import TransformersBackend

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")


def test_rollouts_same_seed_same_completions(model, tokenizer):
    backend = TransformersBackend(model, tokenizer, batch_size=4)
    sampling = {"max_new_tokens": 6, "temperature": 1.0}
    first = backend.generate(["1+1=", "2+2=", "3+3="], 3, sampling, seeds=[0, 1, 2])
    again = TransformersBackend(model, tokenizer, batch_size=7).generate(
        ["1+1=", "2+2=", "3+3="], 3, sampling, seeds=[0, 1, 2]
    )
    other = backend.generate(["1+1=", "2+2=", "3+3="], 3, sampling, seeds=[10, 11, 12])
    assert first == again  # another batch size, another backend object: the same samples
    assert first != other


def test_labeller_same_seed_same_labels(model, tokenizer):
    ds = Dataset.from_dict({"prompt": ["1+1?", "2+2?", "3+3?"], "answer": ["2", "4", "6"]})

    def label(seed: int) -> dict:
        labeller = RolloutLabeller(
            model,
            tokenizer=tokenizer,
            sampling={"n": 3, "max_new_tokens": 5, "seed": seed},
            instruction=None,
            chat_template=False,
            keep_completions=True,
            progress=False,
        )
        return labeller.map(ds)[:]

    first, again, other = label(0), label(0), label(1)
    assert first["completions"] == again["completions"] and first["pass_rate"] == again["pass_rate"]
    assert first["completions"] != other["completions"]
