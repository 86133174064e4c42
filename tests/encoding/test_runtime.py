"""EncoderRuntime's device placement: with_rank=True puts an in-memory model on cuda:{rank % n_gpus} (the CUDA
calls mocked: this machine has no GPU), device= wins, and without CUDA nothing moves."""

from __future__ import annotations

import pytest
import torch

from hf_saerl.encoding.runtime import EncoderRuntime
from hf_saerl.testing import tiny_llama, tiny_sae, tiny_tokenizer


@pytest.fixture
def moves(monkeypatch):
    """Record every ``model.to(...)`` target of the LlamaForCausalLM class instead of moving anything."""
    targets: list[tuple[tuple, dict]] = []
    cls = type(tiny_llama())

    def fake_to(self, *args, **kwargs):
        targets.append((args, kwargs))
        return self

    monkeypatch.setattr(cls, "to", fake_to)
    return targets


def fake_gpus(monkeypatch, count: int) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)


def runtime(**kwargs) -> EncoderRuntime:
    return EncoderRuntime(tiny_llama(), tiny_sae(), tokenizer=tiny_tokenizer(), **kwargs)


def target_of(call: tuple[tuple, dict]) -> torch.device:
    args, kwargs = call
    return torch.device(kwargs["device"] if "device" in kwargs else args[0])


@pytest.mark.parametrize(
    ("rank", "gpus", "expected"), [(0, 1, "cuda:0"), (1, 2, "cuda:1"), (3, 2, "cuda:1"), (2, 4, "cuda:2")]
)
def test_with_rank_moves_an_in_memory_model_to_its_gpu(monkeypatch, moves, rank, gpus, expected):
    fake_gpus(monkeypatch, gpus)
    rt = runtime()
    rt._place_model(rank)  # what load(rank) / encoder(batch, rank) does first
    assert [target_of(c) for c in moves] == [torch.device(expected)]
    assert all("dtype" not in kwargs for _, kwargs in moves)  # the user's dtype is kept
    assert rt.target_device(rank, torch.device("cpu")) == torch.device(expected)


def test_without_rank_an_in_memory_model_stays_where_it_is(monkeypatch, moves):
    fake_gpus(monkeypatch, 2)
    rt = runtime()
    rt._place_model(None)
    assert moves == []


def test_without_cuda_with_rank_moves_nothing(monkeypatch, moves):
    fake_gpus(monkeypatch, 0)
    rt = runtime()
    assert rt.load(rank=1) == torch.device("cpu")
    assert moves == []


def test_explicit_device_wins_over_the_rank(monkeypatch, moves):
    fake_gpus(monkeypatch, 4)
    rt = runtime(device="cuda:3")
    rt._place_model(1)
    assert [target_of(c) for c in moves] == [torch.device("cuda:3")]


def test_dtype_with_rank_moves_and_casts(monkeypatch, moves):
    fake_gpus(monkeypatch, 2)
    rt = runtime(dtype="bfloat16")
    rt._place_model(1)
    assert len(moves) == 1
    assert target_of(moves[0]) == torch.device("cuda:1") and moves[0][1]["dtype"] == torch.bfloat16


def test_load_places_once(monkeypatch, moves):
    fake_gpus(monkeypatch, 0)
    rt = runtime()
    rt.load(rank=0)
    fake_gpus(monkeypatch, 2)  # a later call does not move a placed model again
    rt.load(rank=1)
    assert moves == []


def test_encoder_call_with_rank_places_the_model_first(monkeypatch, moves):
    # The Dataset.map(encoder, batched=True, with_rank=True) path: the rank reaches the runtime before the forward
    # pass (the mocked move leaves the model on the CPU, where the batch then runs).
    from hf_saerl import SAEEncoder

    fake_gpus(monkeypatch, 2)
    encoder = SAEEncoder(tiny_llama(), tiny_sae(), tokenizer=tiny_tokenizer(), top_k=4, max_length=16, device=None)
    out = encoder({"text": ["a b c", "d e"]}, 1)
    assert [target_of(c) for c in moves] == [torch.device("cuda:1")]
    assert len(out["sae_indices"]) == 2
