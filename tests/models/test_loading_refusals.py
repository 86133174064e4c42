"""Issue 13, "nothing silent", for model loading (moved from tests/reliability/test_encoding.py): a folder with
only pickled weights is refused, and nothing is unpickled.
"""

from __future__ import annotations

import os

import pytest
import torch

from hf_saerl.errors import BundleError
from hf_saerl.models import load_model


def test_model_folder_with_only_a_pickle_is_refused(model, tokenizer, tmp_path, monkeypatch):
    folder = tmp_path / "pickled"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    os.remove(folder / "model.safetensors")
    torch.save(model.state_dict(), folder / "pytorch_model.bin")

    def no_torch_load(*args, **kwargs):
        raise AssertionError("torch.load ran")

    monkeypatch.setattr(torch, "load", no_torch_load)
    with pytest.raises(BundleError, match=r"no safetensors weights.*never unpickles, so pytorch_model\.bin"):
        load_model(folder)
