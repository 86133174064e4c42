"""Generation backends for the rollout labeller: the ``Generator`` protocol, transformers ``generate`` and vLLM.

A backend turns rendered prompts into ``n`` sampled completions each::

    backend.generate(prompts, n, sampling, seeds=None) -> list[list[str]]   # [prompt][sample]

``sampling`` holds ``max_new_tokens``, ``temperature`` (0: greedy), ``top_p``, ``top_k`` (0 or ``None``: off)
and ``min_p``; any other key is passed through to the engine (``model.generate`` kwargs such as
``repetition_penalty``, or ``vllm.SamplingParams`` fields). ``seeds`` holds one integer per prompt; sample
``j`` of a prompt is drawn from :func:`derive_seed` ``(seed, j)``, so a prompt's completions depend on its seed
only, never on which other prompts share its batch. A backend may expose ``tokenizer`` (for chat templates and
token counts), ``load(rank)`` (lazy loading, per-rank device placement) and ``identity()`` (a JSON-able
description of what decides its completions, which the labeller's fingerprint, hence the ``datasets`` cache,
keys on; without it, the class's code and public attributes are hashed).

Example:
    >>> from hf_saerl.rollouts.backends import TransformersBackend
    >>> from hf_saerl.testing import tiny_llama, tiny_tokenizer
    >>> backend = TransformersBackend(tiny_llama(), tiny_tokenizer())
    >>> out = backend.generate(["1+1=", "2+2="], n=3, sampling={"max_new_tokens": 4}, seeds=[0, 1])
    >>> len(out), len(out[0])
    (2, 3)
    >>> out == backend.generate(["1+1=", "2+2="], n=3, sampling={"max_new_tokens": 4}, seeds=[0, 1])
    True
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from ..core.validation import check_integer, check_real
from ..errors import InvalidParameterError, ParameterTypeError

logger = logging.getLogger(__name__)

__all__ = [
    "Completion",
    "Generator",
    "SeededSampling",
    "TransformersBackend",
    "VLLMBackend",
    "derive_seed",
    "encode_prompts",
    "make_backend",
    "sampling_settings",
]

#: The sampling keys every backend understands; others pass through to the engine.
SAMPLING_KEYS = ("max_new_tokens", "temperature", "top_p", "top_k", "min_p")
DEFAULT_SAMPLING: dict[str, Any] = {
    "max_new_tokens": 256,
    "temperature": 1.0,
    "top_p": 1.0,
    "top_k": None,
    "min_p": None,
}


@dataclass(frozen=True)
class Completion:
    """One sampled completion with what the engine knows about it.

    Attributes:
        text: the decoded text (special tokens skipped).
        n_tokens: tokens generated (the end-of-sequence token included when one ended it).
        truncated: True when it reached ``max_new_tokens`` without ending (cut off); ``None`` when the engine
            cannot tell.
    """

    text: str
    n_tokens: int
    truncated: bool | None = None


@runtime_checkable
class Generator(Protocol):
    """What the labeller needs from a generation engine (see the module docstring)."""

    def generate(
        self, prompts: Sequence[str], n: int, sampling: Mapping[str, Any], seeds: Sequence[int] | None = None
    ) -> list[list[str]]: ...  # pragma: no cover - protocol


def derive_seed(*parts: Any) -> int:
    """A 63-bit seed from any parts (the labeller's seed, a prompt, a sample index), the same in every process
    (unlike ``hash``, which Python salts per process).

    Example:
        >>> derive_seed(0, "What is 2+2?") == derive_seed(0, "What is 2+2?") != derive_seed(1, "What is 2+2?")
        True
    """
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def sampling_settings(sampling: Mapping[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(common, extra)``: the common sampling keys with defaults filled in and checked, and the rest.

    Example:
        >>> sampling_settings({"temperature": 0.7, "repetition_penalty": 1.1})[1]
        {'repetition_penalty': 1.1}
    """
    sampling = dict(sampling or {})
    common = {k: sampling.pop(k, v) for k, v in DEFAULT_SAMPLING.items()}
    check_integer("max_new_tokens", common["max_new_tokens"], "Pass e.g. max_new_tokens=256.")
    if common["max_new_tokens"] < 1:
        raise InvalidParameterError(
            f"max_new_tokens must be a positive int, got {common['max_new_tokens']!r}. Pass e.g. max_new_tokens=256."
        )
    if common["temperature"] is None:
        raise InvalidParameterError(
            "temperature must be >= 0 (0: greedy), got None. Pass e.g. temperature=1.0 for "
            "pass rates of the policy as it samples."
        )
    common["temperature"] = check_real(
        "temperature",
        common["temperature"],
        "Pass temperature >= 0 (0: greedy), e.g. temperature=1.0 for pass rates of the policy as it samples.",
        low=0.0,
    )
    if common["top_p"] is not None:
        common["top_p"] = check_real(
            "top_p", common["top_p"], "Pass top_p in (0, 1]; 1.0 turns it off.", low=0.0, high=1.0, low_open=True
        )
    if common["top_k"] is not None:
        check_integer("top_k", common["top_k"], "Pass a whole number; 0 or None turns it off.")
        if common["top_k"] < 0:
            raise InvalidParameterError(
                f"top_k must be a non-negative int, got {common['top_k']!r}; 0 or None turns it off."
            )
    if common["min_p"] is not None:
        common["min_p"] = check_real(
            "min_p", common["min_p"], "Pass min_p in [0, 1); None turns it off.", low=0.0, high=1.0, high_open=True
        )
    return common, sampling


def _checked_seeds(prompts: Sequence[str], seeds: Sequence[int] | None, n: int) -> list[int]:
    """One whole-number seed per prompt (derived from the prompt when ``seeds`` is None); prompts are strings."""
    if isinstance(prompts, str):
        raise ParameterTypeError(
            f"prompts must be a list of rendered prompt strings, got one string {prompts[:40]!r}; pass [prompt]."
        )
    bad = [i for i, p in enumerate(prompts) if not isinstance(p, str)]
    if bad:
        raise ParameterTypeError(
            f"prompts must be rendered strings; prompt {bad[0]} is {type(prompts[bad[0]]).__name__}"
            ". Render chat messages first (RolloutLabeller.render), or pass str prompts."
        )
    check_integer("n", n, "Pass the number of samples per prompt, e.g. n=8.", minimum=1)
    seeds = list(seeds) if seeds is not None else [derive_seed(0, p) for p in prompts]
    if len(seeds) != len(prompts):
        raise InvalidParameterError(f"Got {len(seeds)} seeds for {len(prompts)} prompts; pass one seed per prompt.")
    return [
        check_integer(f"seeds[{i}]", s, "Pass whole-number seeds, e.g. from derive_seed(seed, prompt).")
        for i, s in enumerate(seeds)
    ]


def encode_prompts(tokenizer: Any, prompts: Sequence[str]) -> list[list[int]]:
    """Token ids of rendered prompts. Special tokens (a BOS) are added unless the text already starts with the
    tokenizer's BOS token, as chat-rendered text does, so no prompt ever gets two.

    Example:
        >>> from hf_saerl.testing import tiny_tokenizer
        >>> encode_prompts(tiny_tokenizer(), ["ab", "<s>ab"])
        [[1, 14, 15], [1, 14, 15]]
    """
    bos = getattr(tokenizer, "bos_token", None)
    out = []
    for prompt in prompts:
        add = not (bos and prompt.startswith(bos))
        out.append(list(tokenizer(prompt, add_special_tokens=add)["input_ids"]))
    return out


class SeededSampling:
    """A ``transformers`` logits processor that samples each row from its own ``torch.Generator``.

    ``model.generate(do_sample=False, logits_processor=[SeededSampling(...)])`` then samples exactly from the
    tempered, top-k / top-p / min-p filtered distribution (transformers' own warpers, in its order), by the
    Gumbel-max trick: greedy decoding of ``log p - log E``, where ``E = -log u`` ~ Exp(1) and ``u`` is one
    ``uniform_()`` draw over the vocabulary per row and step from the row's generator (``-log E`` is Gumbel
    noise). A row's tokens therefore depend on its seed only, not on the rest of the batch.

    Example:
        >>> import torch
        >>> logits = torch.log(torch.tensor([[0.7, 0.2, 0.1]]))
        >>> draws = [int(SeededSampling([s]).__call__(None, logits.clone()).argmax()) for s in range(2000)]
        >>> [round(draws.count(t) / 2000, 1) for t in range(3)]
        [0.7, 0.2, 0.1]
    """

    def __init__(
        self,
        seeds: Sequence[int],
        temperature: float = 1.0,
        top_p: float | None = None,
        top_k: int | None = None,
        min_p: float | None = None,
        device: Any = "cpu",
    ):
        import torch
        from transformers import MinPLogitsWarper, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

        self.generators = [torch.Generator(device=device).manual_seed(int(s)) for s in seeds]
        self.warpers: list[Any] = []
        if temperature != 1.0:
            self.warpers.append(TemperatureLogitsWarper(float(temperature)))
        if top_k:
            self.warpers.append(TopKLogitsWarper(top_k=int(top_k)))
        if top_p is not None and top_p < 1.0:
            self.warpers.append(TopPLogitsWarper(top_p=float(top_p)))
        if min_p:
            self.warpers.append(MinPLogitsWarper(min_p=float(min_p)))

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        return self.noisy_scores(scores, self.generators, input_ids)

    def noisy_scores(self, scores: Any, generators: Sequence[Any], input_ids: Any = None) -> Any:
        """The warped scores plus each row's Gumbel noise from ``generators[row]`` (one draw per row and call);
        their argmax is the sample. :func:`~hf_saerl.rollouts.decoding.decode` calls this with its rows'
        generators."""
        import torch

        for warper in self.warpers:
            scores = warper(input_ids, scores)
        uniform = torch.empty(scores.shape, dtype=torch.float32, device=scores.device)
        for row, generator in enumerate(generators):  # in place: ~7x faster than exponential_ or torch.rand
            uniform[row].uniform_(generator=generator)
        # log E with E = -log u ~ Exp(1); argmax(scores - log E) = argmax(log p + Gumbel): the log-softmax's
        # per-row constant changes no argmax. u is kept off 0 (which float32 rand can return).
        log_e = uniform.clamp_(min=1e-30).log_().neg_().log_()
        return scores.float() - log_e


class CompletionBackend:
    """What the shipped backends share: :meth:`generate` (the :class:`Generator` protocol) as the texts of
    :meth:`generate_completions`, which each backend implements.

    Example:
        >>> class Echo(CompletionBackend):
        ...     def generate_completions(self, prompts, n, sampling=None, seeds=None, *, on_step=None):
        ...         return [[Completion(p + "!", 1, False)] * n for p in prompts]
        >>> Echo().generate(["hi"], n=2)
        [['hi!', 'hi!']]
    """

    # (prompts, n, sampling=None, seeds=None, *, on_step=None) -> [prompt][sample] Completions; each backend's own
    generate_completions: Callable[..., list[list[Completion]]]

    def generate(
        self,
        prompts: Sequence[str],
        n: int,
        sampling: Mapping[str, Any] | None = None,
        seeds: Sequence[int] | None = None,
    ) -> list[list[str]]:
        """``n`` completions per prompt (decoded without special tokens), ``[prompt][sample]``."""
        return [[c.text for c in row] for row in self.generate_completions(prompts, n, sampling, seeds)]


class TransformersBackend(CompletionBackend):
    """Sampling with ``transformers``' ``generate``: batched, left-padded, on CPU or GPU, seeded per prompt.

    Each prompt's ``n`` samples are separate rows of one batch (so they share its padding); rows are sorted
    by prompt length and generated ``batch_size`` at a time. Sampling is :class:`SeededSampling`, so a prompt's
    completions depend on its seed, not on batch composition, up to floating-point differences between
    batch shapes (in fp32 these almost never change a token; in bf16 they sometimes do).

    Args:
        model: a Hub id or local folder (with ``gguf_file=``), loaded lazily where it first runs, or a loaded
            ``PreTrainedModel`` (then pass ``tokenizer=``).
        tokenizer: a tokenizer, or a Hub id / folder to load it from (default: the model's).
        batch_size: sequences (prompts x samples) per ``generate`` call.
        device, dtype: default to ``cuda:{rank}`` with bf16 when a GPU exists, else CPU with fp32.

    Example:
        >>> from hf_saerl.testing import tiny_llama, tiny_tokenizer
        >>> TransformersBackend(tiny_llama(), tiny_tokenizer(), batch_size=8)
        TransformersBackend(model='LlamaForCausalLM', batch_size=8)
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any = None,
        *,
        gguf_file: str | None = None,
        revision: str | None = None,
        batch_size: int = 32,
        device: str | None = None,
        dtype: str | None = None,
    ):
        from ..models.loading import is_model_spec

        check_integer("batch_size", batch_size, "Pass a whole number of sequences per generate call, e.g. 32.")
        if batch_size < 1:
            raise InvalidParameterError(f"batch_size must be >= 1 sequence per generate call, got {batch_size}.")
        self.model_spec = str(model) if is_model_spec(model) else None
        self.tokenizer_spec = str(tokenizer) if is_model_spec(tokenizer) else None
        self.gguf_file, self.revision = gguf_file, revision
        self.batch_size, self.device, self.dtype = batch_size, device, dtype
        self._model: Any = None if self.model_spec else model  # a PreTrainedModel once loaded
        self._tokenizer: Any = None if self.tokenizer_spec else tokenizer
        self._loaded = False
        if self.model_spec is None:
            if not hasattr(model, "generate"):
                raise InvalidParameterError(
                    f"model must be a Hub id, a local folder or a loaded causal LM with .generate, got "
                    f"{type(model).__name__}. Pass e.g. 'HuggingFaceTB/SmolLM2-135M-Instruct'."
                )
            if tokenizer is None:
                raise InvalidParameterError(
                    "A loaded model needs its tokenizer: pass tokenizer=AutoTokenizer.from_pretrained(...)."
                )
            from ..models.loading import check_weights_finite

            check_weights_finite(model, f"the policy {type(model).__name__}")

    # ------------------------------------------------------------------ loading (lazy, per rank)
    def load(self, rank: int | None = None) -> TransformersBackend:
        """Load the model and tokenizer where this runs (``cuda:{rank}`` under ``map(with_rank=True)``)."""
        import torch

        from ..models.loading import default_device, load_model, load_tokenizer, resolve_dtype

        if self._loaded:
            return self
        if rank is not None and not torch.cuda.is_available():
            torch.set_num_threads(1)  # a forked map worker: one thread each, the processes are the parallelism
        device = torch.device(self.device) if self.device else default_device(rank)
        if self._model is None:
            self._model, tokenizer = load_model(
                self.model_spec,
                self.tokenizer_spec,
                gguf_file=self.gguf_file,
                revision=self.revision,
                device=device,
                dtype=self.dtype,
            )
            self._tokenizer = self._tokenizer or tokenizer
        elif self.device or self.dtype or rank is not None:
            self._model = self._model.to(device=device, dtype=resolve_dtype(self.dtype, device) if self.dtype else None)
        if self._tokenizer is None:  # a model reference whose tokenizer is named apart (an in-memory model has its own)
            assert self.tokenizer_spec is not None
            self._tokenizer = load_tokenizer(self.tokenizer_spec)
        self._model.eval()
        self._loaded = True
        return self

    @property
    def tokenizer(self) -> Any:
        """The tokenizer (loading it, and the model, on first use)."""
        if self._tokenizer is None:
            self.load()
        return self._tokenizer

    @property
    def model(self) -> Any:
        """The model (loaded on first use)."""
        self.load()
        return self._model

    def __getstate__(self) -> dict[str, Any]:
        from ..models.loading import model_state

        state = dict(self.__dict__)
        state["_loaded"] = False
        if self.model_spec is not None:
            state["_model"] = None
        elif self._model is not None:
            state["_model"] = model_state(self._model)  # class + config + weights, as the encoder ships its model
        if self.tokenizer_spec is not None:
            state["_tokenizer"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        from ..models.loading import model_from_state

        self.__dict__.update(state)
        if isinstance(self._model, dict):
            self._model = model_from_state(self._model)

    def identity(self) -> Any:
        """What the model and tokenizer are, for fingerprints (:mod:`hf_saerl.models.identity`): a Hub id and
        revision, a content sample of a folder, or a digest of in-memory weights (never every weight)."""
        from ..models.identity import model_identity, tokenizer_identity

        out: dict[str, Any] = {
            "model": model_identity(self.model_spec, self.gguf_file, self.revision, self._model),
            "dtype": self.dtype,
        }
        if self.tokenizer_spec or self.model_spec is None:  # else the model's files cover the tokenizer
            out["tokenizer"] = self.tokenizer_spec or tokenizer_identity(self._tokenizer)
        return out

    def __repr__(self) -> str:
        model = self.model_spec or type(self._model).__name__
        return f"TransformersBackend(model={model!r}, batch_size={self.batch_size})"

    # ------------------------------------------------------------------ generation
    def generate_completions(
        self,
        prompts: Sequence[str],
        n: int,
        sampling: Mapping[str, Any] | None = None,
        seeds: Sequence[int] | None = None,
        *,
        on_step: Callable[[int, int], None] | None = None,
    ) -> list[list[Completion]]:
        """``n`` :class:`Completion` objects per prompt, ``[prompt][sample]``; ``on_step(tokens, finished)`` is
        called as tokens are generated (for progress bars).

        Sampling runs on :func:`~hf_saerl.rollouts.decoding.decode` (continuous batching: rows that finish leave
        the batch and waiting rows take their place; each prompt is prefilled once for all its samples). Where
        the model or the ``sampling`` extras need logits processors it does not apply (a repetition penalty,
        banned words...), it falls back to ``model.generate`` over length-sorted batches (:meth:`generate_padded`).
        """
        from .decoding import decode, supports_decode

        common, extra = sampling_settings(sampling)
        seeds = _checked_seeds(prompts, seeds, n)
        self.load()
        model, tokenizer = self._model, self._tokenizer
        if extra or not supports_decode(model):
            return self.generate_padded(prompts, n, sampling, seeds, on_step=on_step)
        device = next(model.parameters()).device
        ids = encode_prompts(tokenizer, prompts)
        rows = [(i, derive_seed(seeds[i], j)) for i in range(len(prompts)) for j in range(n)]
        sampler = (
            None
            if common["temperature"] == 0
            else SeededSampling(
                [], common["temperature"], common["top_p"], common["top_k"], common["min_p"], device=device
            )
        )
        decoded = decode(
            model,
            ids,
            rows,
            max_new_tokens=common["max_new_tokens"],
            eos_ids=self._eos_ids(),
            max_batch=self.batch_size,
            sampler=sampler,
            on_step=on_step,
        )
        texts = tokenizer.batch_decode([t for t, _ in decoded], skip_special_tokens=True) if decoded else []
        flat = [Completion(text, len(t), cut) for text, (t, cut) in zip(texts, decoded, strict=True)]
        return [flat[i * n : (i + 1) * n] for i in range(len(prompts))]

    def _eos_ids(self) -> list[int]:
        eos = getattr(getattr(self._model, "generation_config", None), "eos_token_id", None)
        if eos is None:
            eos = self._tokenizer.eos_token_id
        if eos is None:
            raise InvalidParameterError(
                "Neither the model's generation_config nor the tokenizer names an "
                "end-of-sequence token; set model.generation_config.eos_token_id."
            )
        return [int(e) for e in (eos if isinstance(eos, (list, tuple)) else [eos])]

    def generate_padded(
        self,
        prompts: Sequence[str],
        n: int,
        sampling: Mapping[str, Any] | None = None,
        seeds: Sequence[int] | None = None,
        *,
        on_step: Callable[[int, int], None] | None = None,
    ) -> list[list[Completion]]:
        """The same samples by ``model.generate``: each prompt's ``n`` samples are rows of length-sorted,
        left-padded batches of ``batch_size`` sequences, each batch running until its longest row ends.
        ``on_step`` is called once per batch. The reference path, and the fallback of
        :meth:`generate_completions`."""
        import torch
        from transformers import LogitsProcessorList

        common, extra = sampling_settings(sampling)
        seeds = _checked_seeds(prompts, seeds, n)
        self.load()
        model, tokenizer = self._model, self._tokenizer
        device = next(model.parameters()).device
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        if pad_id is None:
            raise InvalidParameterError("The tokenizer has neither a pad nor an eos token; set tokenizer.pad_token.")
        eos = set(self._eos_ids())
        ids = encode_prompts(tokenizer, prompts)
        rows = sorted(((i, j) for i in range(len(prompts)) for j in range(n)), key=lambda r: (-len(ids[r[0]]), r))
        out: list[list[Completion]] = [[Completion("", 0)] * n for _ in prompts]
        greedy = common["temperature"] == 0
        for start in range(0, len(rows), self.batch_size):
            chunk = rows[start : start + self.batch_size]
            width = max(len(ids[i]) for i, _ in chunk)
            input_ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
            attention = torch.zeros((len(chunk), width), dtype=torch.long)
            for r, (i, _) in enumerate(chunk):  # left padding
                input_ids[r, width - len(ids[i]) :] = torch.tensor(ids[i])
                attention[r, width - len(ids[i]) :] = 1
            kwargs: dict[str, Any] = dict(extra)
            if not greedy:
                kwargs["logits_processor"] = LogitsProcessorList(
                    [
                        SeededSampling(
                            [derive_seed(seeds[i], j) for i, j in chunk],
                            common["temperature"],
                            common["top_p"],
                            common["top_k"],
                            common["min_p"],
                            device=device,
                        )
                    ]
                )
            with torch.inference_mode():
                generated = model.generate(
                    input_ids=input_ids.to(device),
                    attention_mask=attention.to(device),
                    do_sample=False,
                    max_new_tokens=common["max_new_tokens"],
                    pad_token_id=pad_id,
                    **kwargs,
                )
            new = generated[:, width:].tolist()
            kept = []
            for row in new:  # up to and including the first end-of-sequence token
                end = next((k for k, t in enumerate(row) if t in eos), None)
                kept.append(row if end is None else row[: end + 1])
            texts = tokenizer.batch_decode(kept, skip_special_tokens=True)
            for (i, j), text, row in zip(chunk, texts, kept, strict=True):
                ended = bool(row) and row[-1] in eos
                out[i][j] = Completion(text, len(row), not ended and len(row) >= common["max_new_tokens"])
            if on_step is not None:
                on_step(sum(len(r) for r in kept), len(chunk))
        return out


class VLLMBackend(CompletionBackend):
    """Sampling with vLLM (an optional extra; needs a GPU): one request per prompt with ``n`` samples and the
    prompt's seed, so results do not depend on batch composition.

    Args:
        model: a Hub id or local folder (a GGUF file: ``gguf_file=`` inside it, and pass ``tokenizer=``).
        tokenizer: a Hub id or folder for the tokenizer (default: the model's).
        llm_kwargs: passed to ``vllm.LLM`` (e.g. ``gpu_memory_utilization=0.5``, ``max_model_len=2048``).

    Under ``Dataset.map(num_proc=n_gpus, with_rank=True)`` each worker pins itself to GPU ``rank`` with
    ``CUDA_VISIBLE_DEVICES`` before starting its engine.

    Example:
        >>> backend = VLLMBackend("HuggingFaceTB/SmolLM2-135M-Instruct")  # doctest: +SKIP
        >>> backend.generate(["2+2="], n=4, sampling={"max_new_tokens": 8}, seeds=[0])  # doctest: +SKIP
    """

    def __init__(
        self,
        model: str,
        tokenizer: str | None = None,
        *,
        gguf_file: str | None = None,
        revision: str | None = None,
        dtype: str | None = None,
        **llm_kwargs: Any,
    ):
        from ..models.loading import is_model_spec

        if not is_model_spec(model):
            raise InvalidParameterError(
                f"VLLMBackend loads its own engine, so model must be a Hub id or a folder, got {type(model).__name__}. "
                "Pass the id or folder, or use backend='transformers' for a loaded model."
            )
        self.model_spec, self.tokenizer_spec = str(model), None if tokenizer is None else str(tokenizer)
        self.gguf_file, self.revision, self.dtype = gguf_file, revision, dtype
        self.llm_kwargs = llm_kwargs
        self._llm: Any = None  # a vllm.LLM once started

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_llm": None}

    def load(self, rank: int | None = None) -> VLLMBackend:
        """Start the engine (importing vLLM; a clear ImportError when it is not installed)."""
        if self._llm is not None:
            return self
        try:
            import vllm
        except ImportError as err:
            raise ImportError(
                "backend='vllm' needs vLLM and a GPU: pip install vllm (or: pip install 'hf-saerl[vllm]'). "
                "Without a GPU use backend='transformers'."
            ) from err
        if rank is not None and "CUDA_VISIBLE_DEVICES" not in os.environ:
            import torch

            count = torch.cuda.device_count() or 1
            os.environ["CUDA_VISIBLE_DEVICES"] = str(rank % count)
        model = os.path.join(self.model_spec, self.gguf_file) if self.gguf_file else self.model_spec
        kwargs = dict(self.llm_kwargs)
        if self.tokenizer_spec or self.gguf_file:
            kwargs.setdefault("tokenizer", self.tokenizer_spec or self.model_spec)
        if self.revision:
            kwargs.setdefault("revision", self.revision)
        kwargs.setdefault("dtype", self.dtype or "auto")
        self._llm = vllm.LLM(model=model, **kwargs)
        return self

    @property
    def tokenizer(self) -> Any:
        """The engine's tokenizer (starting the engine on first use)."""
        return self.load()._llm.get_tokenizer()

    def identity(self) -> Any:
        """The model reference, for fingerprints."""
        return {
            "model": {"id": self.model_spec, "revision": self.revision, "gguf_file": self.gguf_file},
            "tokenizer": self.tokenizer_spec,
            "dtype": self.dtype,
            "engine": "vllm",
        }

    def __repr__(self) -> str:
        return f"VLLMBackend(model={self.model_spec!r})"

    def generate_completions(
        self,
        prompts: Sequence[str],
        n: int,
        sampling: Mapping[str, Any] | None = None,
        seeds: Sequence[int] | None = None,
        *,
        on_step: Callable[[int, int], None] | None = None,
    ) -> list[list[Completion]]:
        """``n`` :class:`Completion` objects per prompt (vLLM's finish reason ``"length"`` is a cut-off);
        ``on_step`` is called once, when all are done."""
        common, extra = sampling_settings(sampling)
        seeds = _checked_seeds(prompts, seeds, n)
        self.load()
        from vllm import SamplingParams

        base: dict[str, Any] = {
            "n": n,
            "max_tokens": common["max_new_tokens"],
            "temperature": common["temperature"],
            "top_p": 1.0 if common["top_p"] is None else common["top_p"],
        }
        if common["top_k"]:
            base["top_k"] = common["top_k"]
        if common["min_p"]:
            base["min_p"] = common["min_p"]
        params = [SamplingParams(**base, seed=int(seed) % (2**31), **extra) for seed in seeds]
        requests = [{"prompt_token_ids": ids} for ids in encode_prompts(self.tokenizer, prompts)]
        outputs = self._llm.generate(requests, params, use_tqdm=False)
        result = [[_vllm_completion(choice) for choice in output.outputs] for output in outputs]
        if on_step is not None:
            on_step(sum(c.n_tokens for row in result for c in row), sum(len(row) for row in result))
        return result


def _vllm_completion(choice: Any) -> Completion:
    """A vLLM ``CompletionOutput`` as a :class:`Completion` (token count -1 and cut-off None where it lacks them:
    the labeller then counts with the tokenizer)."""
    ids = getattr(choice, "token_ids", None)
    reason = getattr(choice, "finish_reason", None)
    return Completion(choice.text, -1 if ids is None else len(ids), None if reason is None else reason == "length")


def make_backend(backend: Any, policy: Any, **kwargs: Any) -> Any:
    """A backend from ``"transformers"`` / ``"vllm"`` and a policy, or ``backend`` itself when it is already
    one (an object with ``generate``). ``policy="embedded"`` is the SmolLM2-135M-Instruct shipped on PyPI.

    Example:
        >>> make_backend("tpu", "gpt2")
        Traceback (most recent call last):
        ...
        hf_saerl.errors.InvalidParameterError: Unknown backend 'tpu'; use 'transformers' or 'vllm', or a Generator.
    """
    if not isinstance(backend, str):
        if not hasattr(backend, "generate"):
            raise InvalidParameterError(
                f"backend must be 'transformers', 'vllm' or an object with generate(prompts, n, sampling, seeds), "
                f"got {type(backend).__name__}."
            )
        return backend
    if backend not in ("transformers", "vllm"):
        raise InvalidParameterError(f"Unknown backend {backend!r}; use 'transformers' or 'vllm', or a Generator.")
    if policy is None:
        raise InvalidParameterError("policy is None: pass a model id, a folder, a loaded model or 'embedded'.")
    if isinstance(policy, str) and policy == "embedded":
        from ..models.embedded import default_model_spec

        spec = default_model_spec()
        policy, kwargs = spec["model"], {**kwargs, "gguf_file": kwargs.get("gguf_file") or spec["gguf_file"]}
    if backend == "vllm":
        kwargs = {k: v for k, v in kwargs.items() if k not in ("batch_size", "device")}
        return VLLMBackend(policy, **kwargs)
    return TransformersBackend(policy, **kwargs)
