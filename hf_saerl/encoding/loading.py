"""Load the two things an encoder reads through: a causal LM (+ tokenizer) and a sae-lens SAE.

Both accept a Hub id, a local folder, or an already loaded object. sae-lens is imported only when
an SAE has to be loaded, since it pulls in TransformerLens (several seconds of import time).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

ModelSpec = Any  # str | os.PathLike | PreTrainedModel
SAESpec = Any  # (release, sae_id) | str | os.PathLike | sae_lens.SAE


def default_device(rank: int | None = None) -> torch.device:
    """``cuda:{rank % n_gpus}`` when CUDA is available, else CPU."""
    if torch.cuda.is_available():
        return torch.device(f"cuda:{(rank or 0) % torch.cuda.device_count()}")
    return torch.device("cpu")


def default_dtype(device: torch.device | str) -> torch.dtype:
    """bf16 on CUDA, fp32 elsewhere."""
    return torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device | str) -> torch.dtype:
    if dtype is None or dtype == "auto":
        return default_dtype(device)
    if isinstance(dtype, torch.dtype):
        return dtype
    resolved = getattr(torch, str(dtype).replace("torch.", ""), None)
    if not isinstance(resolved, torch.dtype):
        raise ValueError(f"Unknown dtype {dtype!r}; use e.g. 'float32', 'bfloat16' or 'float16'.")
    return resolved


def is_model_spec(model: Any) -> bool:
    return isinstance(model, (str, os.PathLike))


def load_config(model: str | os.PathLike, gguf_file: str | None = None, revision: str | None = None):
    """The model's ``PretrainedConfig`` without loading weights."""
    from transformers import AutoConfig

    kwargs = {"gguf_file": gguf_file} if gguf_file else {}
    return AutoConfig.from_pretrained(str(model), revision=revision, **kwargs)


def load_model(
    model: ModelSpec,
    tokenizer: Any = None,
    *,
    gguf_file: str | None = None,
    revision: str | None = None,
    device: torch.device | str | None = None,
    dtype: str | torch.dtype | None = None,
) -> tuple[Any, Any]:
    """Load a causal LM and its tokenizer, in eval mode.

    ``model`` is a Hub id, a local folder (with ``gguf_file=`` for a GGUF checkpoint inside it), or a
    loaded ``PreTrainedModel``; a loaded model needs ``tokenizer=``. ``device`` defaults to the first
    GPU if any, and ``dtype`` to bf16 on GPU and fp32 on CPU.

    Example:
        >>> model, tok = load_model("HuggingFaceTB/SmolLM2-135M-Instruct")  # doctest: +SKIP
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not is_model_spec(model):
        if tokenizer is None:
            raise ValueError(
                "A loaded model needs its tokenizer: pass tokenizer=AutoTokenizer.from_pretrained(...)."
            )
        if device is not None or dtype is not None:
            device = torch.device(device) if device is not None else next(model.parameters()).device
            model = model.to(device=device, dtype=resolve_dtype(dtype, device) if dtype else None)
        return model.eval(), tokenizer
    device = torch.device(device) if device is not None else default_device()
    kwargs: dict[str, Any] = {"revision": revision}
    if gguf_file:
        kwargs["gguf_file"] = gguf_file
    if tokenizer is None or is_model_spec(tokenizer):
        tokenizer = AutoTokenizer.from_pretrained(str(tokenizer or model), **kwargs)
    loaded = AutoModelForCausalLM.from_pretrained(str(model), dtype=resolve_dtype(dtype, device), **kwargs)
    return loaded.to(device).eval(), tokenizer


def load_sae(sae: SAESpec, device: torch.device | str = "cpu") -> Any:
    """Load a sae-lens SAE from ``(release, sae_id)`` (a sae-lens release name or a Hub repo id with
    the SAE's folder), from a local folder written by ``SAE.save_model``, or pass an ``SAE`` through.

    Example:
        >>> sae = load_sae(("gpt2-small-res-jb", "blocks.8.hook_resid_pre"))  # doctest: +SKIP
    """
    if isinstance(sae, tuple):
        if len(sae) != 2:
            raise ValueError(f"An SAE reference is (release, sae_id); got a tuple of {len(sae)} items.")
        from sae_lens import SAE

        return SAE.from_pretrained(sae[0], sae[1], device=str(device)).eval()
    if is_model_spec(sae):
        path = Path(sae)
        if not (path / "cfg.json").is_file():
            raise FileNotFoundError(
                f"{path} is not a sae-lens SAE folder (no cfg.json). Pass a folder written by "
                "SAE.save_model(...), a (release, sae_id) tuple, or an SAE object."
            )
        from sae_lens import SAE

        return SAE.load_from_disk(str(path), device=str(device)).eval()
    if not (hasattr(sae, "encode") and hasattr(sae, "cfg")):
        raise TypeError(
            f"sae must be a (release, sae_id) tuple, a sae-lens folder or a sae_lens.SAE, got {type(sae).__name__}."
        )
    return sae.eval() if hasattr(sae, "eval") else sae


def sae_hook_name(sae: Any) -> str | None:
    """The hook the SAE was trained on: ``cfg.metadata.hf_hook_name`` if set, else ``hook_name``."""
    metadata = getattr(sae.cfg, "metadata", None)
    if metadata is None:
        return getattr(sae.cfg, "hook_name", None)
    return metadata.get("hf_hook_name") or metadata.get("hook_name")
