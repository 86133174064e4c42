"""What identifies a model and a tokenizer in a fingerprint, without hashing every weight.

Each function returns a small JSON-able value: a Hub id with its revision, a content sample of the files on
disk (:func:`hf_saerl.core.fingerprint.path_digest`, so a copied folder gives the same value), or a strided
sample of an in-memory module's tensors (:func:`hf_saerl.core.fingerprint.module_digest`).
:class:`hf_saerl.SAEEncoder` builds its fingerprint from them, and :func:`hf_saerl.encoding.sae_training.train_sae`
its cache key; the values are part of those keys, so changing one invalidates every ``datasets`` cache entry.

Example:
    >>> from hf_saerl.models.identity import model_identity, tokenizer_identity
    >>> from hf_saerl.testing import tiny_tokenizer
    >>> model_identity("HuggingFaceTB/SmolLM2-135M-Instruct", None, "main", None)
    {'id': 'HuggingFaceTB/SmolLM2-135M-Instruct', 'revision': 'main', 'gguf_file': None}
    >>> tokenizer_identity(tiny_tokenizer()) == tokenizer_identity(tiny_tokenizer())
    True
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..core.fingerprint import module_digest, path_digest, stable_hash

__all__ = ["model_identity", "tokenizer_identity"]


def model_identity(spec: str | None, gguf_file: str | None, revision: str | None, model: Any) -> Any:
    """The model's identity: its weights' digest when it is in memory (``spec`` is None), the content digest
    of a local folder (or of the GGUF file in it), else the Hub id with ``revision`` and ``gguf_file``."""
    if spec is None:
        return module_digest(model)
    if os.path.isdir(spec):
        target = Path(spec) / gguf_file if gguf_file else Path(spec)
        return {"content": path_digest(target), "gguf_file": gguf_file}
    return {"id": spec, "revision": revision, "gguf_file": gguf_file}


def tokenizer_identity(tokenizer: Any) -> str:
    """A digest of a loaded tokenizer: its class, vocabulary, chat template and BOS / EOS / PAD ids."""
    vocab = sorted(tokenizer.get_vocab().items())
    return stable_hash(
        [
            type(tokenizer).__name__,
            vocab,
            getattr(tokenizer, "chat_template", None),
            tokenizer.bos_token_id,
            tokenizer.eos_token_id,
            tokenizer.pad_token_id,
        ]
    )
