"""Load the two things an encoder reads through: a causal LM (+ tokenizer) and a sae-lens SAE.

Both accept a Hub id, a local folder, or an already loaded object. sae-lens is imported only when
an SAE has to be loaded, since it pulls in TransformerLens (several seconds of import time).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ..errors import InvalidParameterError

__all__ = [
    "default_device", "default_dtype", "resolve_dtype", "is_model_spec", "sae_reference", "load_config", "load_model",
    "load_tokenizer", "load_sae", "sae_hook_name", "sae_pool_start",
]

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
    """``dtype`` as a ``torch.dtype``: a name (``"bfloat16"``, ``"torch.float16"``) or a dtype; ``None`` and
    ``"auto"`` give :func:`default_dtype` of ``device``.

    Example:
        >>> resolve_dtype("bfloat16", "cpu"), resolve_dtype(None, "cpu")
        (torch.bfloat16, torch.float32)
    """
    if dtype is None or dtype == "auto":
        return default_dtype(device)
    if isinstance(dtype, torch.dtype):
        return dtype
    resolved = getattr(torch, str(dtype).replace("torch.", ""), None)
    if not isinstance(resolved, torch.dtype):
        raise InvalidParameterError(f"Unknown dtype {dtype!r}; use e.g. 'float32', 'bfloat16' or 'float16', or leave "
                                    "dtype=None for bf16 on GPU and fp32 on CPU.")
    return resolved


def is_model_spec(model: Any) -> bool:
    """Whether ``model`` is a reference to load (a Hub id or a path) rather than a loaded object."""
    return isinstance(model, (str, os.PathLike))


def sae_reference(sae: Any) -> tuple[str, str] | str | None:
    """The reference an SAE can be loaded again from: ``(release, sae_id)`` as a tuple of str, a local folder
    as a str, or ``None`` for an in-memory SAE (which then travels as config + weights).

    Example:
        >>> sae_reference(("gpt2-small-res-jb", "blocks.8.hook_resid_pre")), sae_reference(object())
        (('gpt2-small-res-jb', 'blocks.8.hook_resid_pre'), None)
    """
    if isinstance(sae, tuple):
        return (str(sae[0]), str(sae[1])) if len(sae) == 2 else sae
    if is_model_spec(sae):
        return str(Path(sae))
    return None


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
    from transformers import AutoModelForCausalLM

    if not is_model_spec(model):
        if tokenizer is None:
            raise InvalidParameterError(
                "A loaded model needs its tokenizer: pass tokenizer=AutoTokenizer.from_pretrained(...), or pass the "
                "model as a Hub id or folder so that its own tokenizer is loaded with it."
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
        tokenizer = load_tokenizer(tokenizer or model, gguf_file=gguf_file, revision=revision)
    loaded = AutoModelForCausalLM.from_pretrained(str(model), dtype=resolve_dtype(dtype, device), **kwargs)
    return loaded.to(device).eval(), tokenizer


def load_tokenizer(tokenizer: str | os.PathLike, *, gguf_file: str | None = None, revision: str | None = None) -> Any:
    """``AutoTokenizer.from_pretrained`` of a Hub id or folder (with ``gguf_file=`` for a GGUF checkpoint in it).

    Example:
        >>> tok = load_tokenizer("HuggingFaceTB/SmolLM2-135M-Instruct")  # doctest: +SKIP
    """
    from transformers import AutoTokenizer

    kwargs: dict[str, Any] = {"revision": revision}
    if gguf_file:
        kwargs["gguf_file"] = gguf_file
    return AutoTokenizer.from_pretrained(str(tokenizer), **kwargs)


def load_sae(sae: SAESpec, device: torch.device | str = "cpu") -> Any:
    """Load a sae-lens SAE from ``(release, sae_id)`` (a sae-lens release name or a Hub repo id with
    the SAE's folder), from a local folder written by ``SAE.save_model``, or pass an ``SAE`` through.

    Example:
        >>> sae = load_sae(("gpt2-small-res-jb", "blocks.8.hook_resid_pre"))  # doctest: +SKIP
    """
    if isinstance(sae, tuple):
        if len(sae) != 2:
            raise InvalidParameterError(f"An SAE reference is (release, sae_id); got a tuple of {len(sae)} items. Pass "
                                        "both parts, or a local sae-lens folder, or a sae_lens.SAE object.")
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


def sae_pool_start(sae: Any) -> int:
    """The first token position the SAE was trained on: the start of ``cfg.metadata.seqpos_slice``
    (sae-lens records it; 0 when absent). SAEs trained without position 0 have never seen the
    attention-sink activation there, whose norm can be 100x the others' (e.g. SmolLM2, whose
    tokenizer adds no BOS), so it is not pooled either.

    Example:
        >>> from hf_saerl.testing import tiny_sae
        >>> sae = tiny_sae()
        >>> sae_pool_start(sae)
        0
        >>> sae.cfg.metadata.seqpos_slice = (1, None)
        >>> sae_pool_start(sae)
        1
    """
    metadata = getattr(sae.cfg, "metadata", None)
    seqpos = metadata.get("seqpos_slice") if metadata is not None and hasattr(metadata, "get") else None
    start = seqpos[0] if seqpos else None
    return int(start) if isinstance(start, int) and start > 0 else 0
