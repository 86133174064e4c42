"""The converted-model cache: the embedded GGUF's dequantised copy is saved once as safetensors and read back with
the same weights and tokenizer; a failed save loses nothing."""

from __future__ import annotations

import logging

import torch

from hf_saerl.models import loading
from hf_saerl.models.embedded import load_converted
from hf_saerl.testing import tiny_llama, tiny_tokenizer


def test_converted_copy_is_read_back_with_the_same_weights_and_tokenizer(tmp_path):
    folder = tmp_path / "models" / "tiny"
    calls = []

    def convert():
        calls.append(1)
        return tiny_llama(n_layers=2, hidden_size=32), tiny_tokenizer()

    first, tok1 = load_converted(folder, convert)
    assert calls == [1] and (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()
    assert not list(tmp_path.glob("models/*.partial-*"))  # the temporary folder was renamed into place
    again, tok2 = load_converted(folder, convert)
    assert calls == [1], "a saved copy must be read back, not converted again"
    a, b = first.state_dict(), again.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    text = ["What is 3 + 4?", "gcd of 12 and 18"]
    assert tok1(text)["input_ids"] == tok2(text)["input_ids"]
    ids = tok1("What is 3 + 4?", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert torch.equal(first(ids).logits, again(ids).logits)


def test_a_failed_save_returns_the_converted_model_and_warns(tmp_path, caplog):
    blocker = tmp_path / "models"
    blocker.write_text("a file where the cache folder should be")  # saving under it fails
    model = tiny_llama(n_layers=2, hidden_size=32)
    with caplog.at_level(logging.WARNING):
        got, _ = load_converted(blocker / "tiny", lambda: (model, tiny_tokenizer()))
    assert got is model
    assert "Could not keep a converted copy" in caplog.text


def test_load_model_embedded_goes_through_the_cached_copy(monkeypatch):
    seen = {}

    def fake(dtype, device):
        seen.update(dtype=dtype, device=device)
        return "model", "tokenizer"

    monkeypatch.setattr("hf_saerl.models.embedded.load_smollm2", fake)
    assert loading.load_model("embedded", device="cpu") == ("model", "tokenizer")
    assert seen == {"dtype": torch.float32, "device": torch.device("cpu")}
    seen.clear()
    loading.load_model("embedded", device="cpu", dtype="bfloat16")
    assert seen["dtype"] == torch.bfloat16


def test_a_damaged_copy_is_converted_again(tmp_path, caplog):
    folder = tmp_path / "tiny"
    load_converted(folder, lambda: (tiny_llama(n_layers=2, hidden_size=32), tiny_tokenizer()))
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # truncated on disk
    fresh = tiny_llama(n_layers=2, hidden_size=32)
    with caplog.at_level(logging.WARNING):
        got, _ = load_converted(folder, lambda: (fresh, tiny_tokenizer()))
    assert got is fresh and "could not be read" in caplog.text
    again, _ = load_converted(folder, lambda: 1 / 0)  # the fresh conversion was saved in its place
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), again.state_dict().values(), strict=True))
