import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest
import torch

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tokenizer():
    from hf_saerl.testing import tiny_tokenizer

    return tiny_tokenizer()


@pytest.fixture(scope="session")
def model():
    from hf_saerl.testing import tiny_llama

    return tiny_llama(n_layers=3, hidden_size=32)


@pytest.fixture(scope="session")
def sae():
    from hf_saerl.testing import tiny_sae

    return tiny_sae(d_in=32, d_sae=128, hook_name="blocks.1.hook_resid_post")


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory, model, tokenizer):
    path = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def sae_dir(tmp_path_factory, sae):
    path = tmp_path_factory.mktemp("tiny-sae")
    sae.save_model(path)
    return path


TEXTS = [
    "What is 2 + 2?",
    "Prove that there are infinitely many primes.",
    "x",
    "Let f(x) = x^2 + 1. Find all real roots of f.",
    "The quick brown fox jumps over the lazy dog, twice.",
    "Sum the first 100 positive integers.",
]


@pytest.fixture
def texts():
    return list(TEXTS)


def pytest_collection_modifyitems(config, items):
    """Tests marked ``slow`` are the full-size versions of end-to-end tests: they run with ``-m slow`` (or
    ``HF_SAERL_SLOW=1``); the default command, which CI runs, runs their small versions only."""
    if "slow" in (config.getoption("-m") or "") or os.environ.get("HF_SAERL_SLOW"):
        return
    skip = pytest.mark.skip(reason="full-size version: run with -m slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
