"""Load a causal LM and its tokenizer from a Hub id, a local folder (GGUF included) or an object in memory.

Nothing here unpickles: model weights load with ``use_safetensors=True`` (a folder holding only
``pytorch_model.bin`` is refused, not ``torch.load``-ed; GGUF files are not pickles either). Every weight crosses
an edge here, so every loaded model is checked for NaN and infinity (:func:`check_weights_finite`), naming the
tensor and where it came from.
:func:`model_state` / :func:`model_from_state` ship an in-memory model to another process as class + config +
weights (the encoder's runtime and the rollout backend both use them).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ..core.validation import check_finite
from ..errors import BundleError, InvalidParameterError

__all__ = [
    "default_device", "default_dtype", "resolve_dtype", "is_model_spec", "load_config", "load_model", "load_tokenizer",
    "check_weights_finite", "model_state", "model_from_state",
]

ModelSpec = Any  # str | os.PathLike | PreTrainedModel


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
        check_weights_finite(model, f"the model {type(model).__name__}")
        return model.eval(), tokenizer
    device = torch.device(device) if device is not None else default_device()
    kwargs: dict[str, Any] = {"revision": revision}
    if gguf_file:
        kwargs["gguf_file"] = gguf_file
    if tokenizer is None or is_model_spec(tokenizer):
        tokenizer = load_tokenizer(tokenizer or model, gguf_file=gguf_file, revision=revision)
    if not gguf_file:  # never torch.load a pickle: a folder with only pytorch_model.bin is refused
        kwargs["use_safetensors"] = True
    try:
        loaded = AutoModelForCausalLM.from_pretrained(str(model), dtype=resolve_dtype(dtype, device), **kwargs)
    except OSError as err:
        if gguf_file or "safetensors" not in str(err):
            raise
        raise BundleError(
            f"The model {str(model)!r} has no safetensors weights ({err}). hf_saerl never unpickles, so "
            "pytorch_model.bin is not loaded. Convert it once where you trust the file (model.save_pretrained(folder, "
            "safe_serialization=True)), or pass a Hub id / folder that ships model.safetensors or a GGUF file."
        ) from err
    check_weights_finite(loaded, f"the model {str(model)!r}" + (f" ({gguf_file})" if gguf_file else ""))
    if gguf_file:
        _clear_dequantized_marks(loaded)
    return loaded.to(device).eval(), tokenizer


def _clear_dequantized_marks(model: Any) -> Any:
    """Make a dequantised GGUF load a plain model. transformers dequantises GGUF weights to ``dtype`` on load but
    keeps its quantizer and ``config.quantization_config``, so ``Trainer`` (and every TRL trainer) refuses to
    fine-tune it ("purely quantized"). When every weight is a float tensor, those marks are dropped; a model
    that still holds integer weights keeps them."""
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is None or any(not p.dtype.is_floating_point for p in model.parameters()):
        return model
    quantizer.remove_quantization_config(model)  # transformers' own undo: quantizer, config entry, is_quantized
    return model


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


def check_weights_finite(module: Any, where: str) -> Any:
    """``module`` unchanged if every floating-point parameter and buffer is finite, else a
    :class:`~hf_saerl.errors.NonFiniteError` naming ``where`` (e.g. ``"the SAE in './sae'"``) and the tensor.
    Checked where the weights live (one ``isfinite`` per tensor, no copy).

    Example:
        >>> import torch
        >>> layer = torch.nn.Linear(2, 2)
        >>> with torch.no_grad():
        ...     _ = layer.weight.fill_(float("nan"))
        >>> check_weights_finite(layer, "the probe")
        Traceback (most recent call last):
        ...
        hf_saerl.errors.NonFiniteError: the probe: tensor 'weight' hold 4 NaN or infinite value(s) of 4 (first in row 0). Replace or retrain the weights; a model or SAE with NaN or infinity gives NaN features and meaningless top-k ids.
    """
    tensors = list(module.named_parameters()) + list(module.named_buffers())
    for name, tensor in tensors:
        if tensor.is_floating_point() and tensor.numel() and tensor.device.type != "meta":
            check_finite(tensor.detach(), f"{where}: tensor {name!r}", "Replace or retrain the weights; a model or "
                         "SAE with NaN or infinity gives NaN features and meaningless top-k ids.")
    return module


def model_state(model: Any) -> dict[str, Any]:
    """An in-memory ``transformers`` model as plain data for pickling: class, config, generation config, dtype
    and CPU weights (not the live object: after one ``output_hidden_states=True`` call, transformers 5 leaves
    forward hooks holding ContextVars on the layers, which cannot be pickled for ``num_proc`` workers or Ray
    actors). :func:`model_from_state` rebuilds it.

    Example:
        >>> import pickle, torch
        >>> from hf_saerl.testing import tiny_llama
        >>> model = tiny_llama()
        >>> clone = model_from_state(pickle.loads(pickle.dumps(model_state(model))))
        >>> all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), clone.state_dict().values()))
        True
    """
    return {"class": type(model), "config": model.config,
            "generation_config": getattr(model, "generation_config", None),
            "dtype": next(model.parameters()).dtype,
            "weights": {k: v.detach().cpu() for k, v in model.state_dict().items()}}


def model_from_state(state: dict[str, Any]) -> Any:
    """The model :func:`model_state` described, rebuilt on CPU in eval mode (weights loaded strictly)."""
    model = state["class"](state["config"]).to(state["dtype"])
    model.load_state_dict(state["weights"], strict=True)
    if state.get("generation_config") is not None:
        model.generation_config = state["generation_config"]
    return model.eval()
