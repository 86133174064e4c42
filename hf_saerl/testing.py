"""Tiny, offline stand-ins for real models and SAEs.

They build in well under a second with no download, so tests, benchmarks and the README's code blocks
(``tests/test_readme.py``) exercise the real code paths (a real ``LlamaForCausalLM``, a real fast
tokenizer, real sae-lens SAEs) without the Hub.

Example:
    >>> from hf_saerl.testing import tiny_llama, tiny_tokenizer, tiny_sae
    >>> model, tok = tiny_llama(), tiny_tokenizer()
    >>> sae = tiny_sae(d_in=model.config.hidden_size, d_sae=128, hook_name="blocks.1.hook_resid_post")
    >>> tok("ab")["input_ids"]
    [1, 14, 15]
"""

from __future__ import annotations

import string

SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<unk>"]
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}</{{ m['role'] }}>{% endfor %}"
    "{% if add_generation_prompt %}<assistant>{% endif %}"
)


def tiny_tokenizer():
    """A character-level ``PreTrainedTokenizerFast`` over printable ASCII that prepends ``<s>``."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    chars = [c for c in string.printable if c not in "\x0b\x0c"]
    vocab = {t: i for i, t in enumerate(SPECIAL_TOKENS + chars)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", vocab["<s>"])]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def tiny_llama(n_layers: int = 3, hidden_size: int = 32, seed: int = 0, vocab_size: int | None = None):
    """A randomly initialised ``LlamaForCausalLM`` (eval mode, fp32) matching :func:`tiny_tokenizer`."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    vocab_size = vocab_size or len(tiny_tokenizer())
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=n_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
        initializer_range=0.2,  # realistic residual norms (~1) rather than ~0.1
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).eval()
    return model


def tiny_sae(
    d_in: int = 32,
    d_sae: int = 128,
    hook_name: str = "blocks.1.hook_resid_post",
    architecture: str = "standard",
    k: int = 16,
    seed: int = 0,
):
    """A randomly initialised sae-lens SAE (``standard`` ReLU or ``topk``) with its hook recorded in
    ``cfg.metadata.hook_name``. Encoder biases are shifted so that a realistic share of latents fire."""
    import torch
    from sae_lens import StandardSAE, StandardSAEConfig, TopKSAE, TopKSAEConfig
    from sae_lens.saes.sae import SAEMetadata

    torch.manual_seed(seed)
    metadata = SAEMetadata(hook_name=hook_name, model_name="tiny-llama")
    if architecture == "standard":
        sae = StandardSAE(StandardSAEConfig(d_in=d_in, d_sae=d_sae, metadata=metadata))
    elif architecture == "topk":
        sae = TopKSAE(TopKSAEConfig(d_in=d_in, d_sae=d_sae, k=k, metadata=metadata))
    else:
        raise ValueError(f"architecture must be 'standard' or 'topk', got {architecture!r}")
    with torch.no_grad():
        sae.W_enc.copy_(torch.randn(d_in, d_sae) / d_in**0.5)
        sae.W_dec.copy_(sae.W_enc.T)
        sae.b_enc.copy_(-0.2 * torch.rand(d_sae))
        sae.b_dec.zero_()
    return sae.eval()


def edit_json(path, **changes) -> None:
    """Set top-level keys of a saved JSON file: tampering with a bundle, for tests of what loading refuses.

    Example:
        >>> import json, tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "config.json"
        >>> _ = path.write_text('{"format_version": 1, "d_sae": 8}')
        >>> edit_json(path, format_version=99)
        >>> json.loads(path.read_text())
        {'format_version': 99, 'd_sae': 8}
    """
    import json
    from pathlib import Path

    path = Path(path)
    state = json.loads(path.read_text())
    state.update(changes)
    path.write_text(json.dumps(state))


def edit_arrays(path, **changes) -> None:
    """Change arrays of a saved safetensors file: a value of ``None`` deletes the array, a callable maps (a copy
    of) the old one, anything else replaces it. For tests of what loading refuses.

    Example:
        >>> import numpy as np, tempfile, pathlib
        >>> from safetensors.numpy import load_file, save_file
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "probe.safetensors"
        >>> save_file({"coef": np.ones(3), "bias": np.zeros(1)}, str(path))
        >>> edit_arrays(path, coef=lambda a: a * 2, bias=None)
        >>> {k: v.tolist() for k, v in load_file(str(path)).items()}
        {'coef': [2.0, 2.0, 2.0]}
    """
    from safetensors.numpy import load_file, save_file

    arrays = load_file(str(path))
    for key, value in changes.items():
        if value is None:
            del arrays[key]
        else:
            arrays[key] = value(arrays[key].copy()) if callable(value) else value
    save_file(arrays, str(path))
