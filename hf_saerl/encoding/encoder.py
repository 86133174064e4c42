"""``SAEEncoder``: a ``Dataset.map`` transform that attaches pooled, sparse SAE features."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import torch

from ..core import columns as C
from .activations import ActivationReader
from ..core.fingerprint import Fingerprinted, module_digest, path_digest, stable_hash
from .hooks import ResolvedHook, resolve_hook
from .loading import default_device, is_model_spec, load_config, load_model, load_sae, resolve_dtype, sae_hook_name
from .pooling import POOLINGS, SegmentPooler
from .sparse import topk_rows
from .text import TextBuilder

logger = logging.getLogger("hf_saerl")

TRUNCATED = "sae_truncated"
_FORMAT_VERSION = 1
_SAE_CHUNK_FLOATS = 1 << 24  # SAE-encode at most this many (token × latent) floats at once


class SAEEncoder(Fingerprinted):
    """Encode text with an LLM read through an SAE; a callable for ``Dataset.map(batched=True)``.

    Each example's tokens run through the model **up to the SAE's hook only** (later layers and the LM
    head never run), are encoded by the SAE, pooled over real tokens (padding and BOS left out), and
    stored sparsely as the top-``k`` latents: ``sae_indices`` (int32 ids, by value descending),
    ``sae_values`` (float32), ``sae_n_tokens`` (tokens pooled) and ``sae_truncated`` (whether the text
    was cut to ``max_length``).

    Args:
        model: a Hub id or local folder (with ``gguf_file=`` for a GGUF file in it), loaded lazily in
            whichever process first encodes; or a loaded ``PreTrainedModel`` (then pass ``tokenizer=``).
        sae: a sae-lens ``(release, sae_id)``, a local sae-lens folder, or a ``sae_lens.SAE``.
        hook_name: where to read the model; defaults to the SAE's own ``cfg.metadata.hook_name``.
            ``blocks.{L}.hook_resid_pre|resid_post|mlp_out|attn_out`` or an HF module path.
        text_column / template / chat_template: what to read from each row (see :class:`TextBuilder`).
        max_length: longer texts are truncated to this many tokens (counted in ``sae_truncated``),
            or refused with ``on_overlong="error"``.
        on_empty: ``"error"`` (default) refuses empty texts; ``"zeros"`` gives them no features.
        pooling: ``mean`` (default), ``max``, ``sum``, ``last`` or ``freq``.
        top_k: latents kept per example (``None`` keeps every non-zero).
        exclude_bos: leave out position 0 when it holds the tokenizer's BOS token.
        pool_start: never pool positions before this one. ``None`` (default) follows the SAE's own
            training (:func:`sae_pool_start`): 1 for SAEs trained without position 0, such as those
            :func:`hf_saerl.encoding.sae_training.train_sae` makes, else 0.
        activations_column: also write the raw hooked activations, pooled the same way, as this
            fixed-length float32 column (``d_in`` wide) from the same forward pass: the dense baseline
            that SAE features are compared against (``baseline=`` of the estimators).
        token_budget: padded tokens per micro-batch; examples are length-sorted inside each map batch.
        device, dtype: default to CUDA (``cuda:{rank}`` under ``with_rank=True``) with bf16 when a GPU
            exists, else CPU with fp32.

    Example:
        >>> from datasets import Dataset
        >>> from hf_saerl import SAEEncoder
        >>> from hf_saerl.testing import tiny_llama, tiny_sae, tiny_tokenizer
        >>> enc = SAEEncoder(tiny_llama(), tiny_sae(hook_name="blocks.1.hook_resid_post"),
        ...                  tokenizer=tiny_tokenizer(), top_k=8)
        >>> ds = Dataset.from_dict({"text": ["2 + 2 = 4", "The sky is blue."]})
        >>> ds = enc.map(ds)
        >>> len(ds[0]["sae_indices"]), ds[0]["sae_n_tokens"]
        (8, 9)
    """

    def __init__(
        self,
        model: Any,
        sae: Any,
        *,
        tokenizer: Any = None,
        gguf_file: str | None = None,
        revision: str | None = None,
        hook_name: str | None = None,
        text_column: str | None = "text",
        template: str | None = None,
        chat_template: bool = False,
        max_length: int = 512,
        on_overlong: str = "truncate",
        on_empty: str = "error",
        pooling: str = "mean",
        top_k: int | None = 64,
        exclude_bos: bool = True,
        pool_start: int | None = None,
        token_budget: int = 4096,
        device: str | None = None,
        dtype: str | None = None,
        indices_column: str = C.SAE_INDICES,
        values_column: str = C.SAE_VALUES,
        n_tokens_column: str = C.SAE_N_TOKENS,
        truncated_column: str = TRUNCATED,
        activations_column: str | None = None,
    ):
        if pooling not in POOLINGS:
            raise ValueError(f"Unknown pooling {pooling!r}; choose one of {POOLINGS}.")
        if top_k is not None and top_k < 1:
            raise ValueError(f"top_k must be a positive int or None (keep all non-zeros), got {top_k}.")
        if max_length < 2:
            raise ValueError(f"max_length must be at least 2 tokens, got {max_length}.")
        if on_overlong not in ("truncate", "error"):
            raise ValueError(f"on_overlong must be 'truncate' or 'error', got {on_overlong!r}.")
        if on_empty not in ("error", "zeros"):
            raise ValueError(f"on_empty must be 'error' or 'zeros', got {on_empty!r}.")
        self.text = TextBuilder(text_column, template, chat_template)
        self.max_length, self.on_overlong, self.on_empty = max_length, on_overlong, on_empty
        self.pooling, self.top_k, self.exclude_bos, self.token_budget = pooling, top_k, exclude_bos, token_budget
        self.device, self.dtype = device, None if dtype is None else str(dtype).replace("torch.", "")
        self.indices_column, self.values_column = indices_column, values_column
        self.n_tokens_column, self.truncated_column = n_tokens_column, truncated_column
        self.activations_column = activations_column

        self.model_spec = str(model) if is_model_spec(model) else None
        self.gguf_file, self.revision = gguf_file, revision
        self.tokenizer_spec = str(tokenizer) if is_model_spec(tokenizer) else None
        self.sae_spec = _sae_spec(sae)
        self._clear_runtime()
        if self.model_spec is None:
            if tokenizer is None:
                raise ValueError("A loaded model needs its tokenizer: pass tokenizer=AutoTokenizer.from_pretrained(...).")
            self._model, self._tokenizer = model.eval(), tokenizer if self.tokenizer_spec is None else None
        self._sae = load_sae(sae)
        self.d_in, self.d_sae = int(self._sae.cfg.d_in), int(self._sae.cfg.d_sae)
        self.pool_start = sae_pool_start(self._sae) if pool_start is None else int(pool_start)
        if self.pool_start < 0:
            raise ValueError(f"pool_start must be >= 0 (the first token position to pool), got {pool_start}.")
        self.hook_name = hook_name or sae_hook_name(self._sae)
        if not self.hook_name:
            raise ValueError("The SAE records no hook_name in cfg.metadata; pass hook_name= (e.g. 'blocks.6.hook_resid_post').")
        self._validate_against_model()

    # ------------------------------------------------------------------ construction-time checks
    def _validate_against_model(self) -> None:
        if self._model is not None:
            model, config = self._model, self._model.config
        else:
            from transformers import AutoModelForCausalLM

            config = load_config(self.model_spec, self.gguf_file, self.revision)
            with torch.device("meta"):
                model = AutoModelForCausalLM.from_config(config)
        hook = resolve_hook(model, self.hook_name)
        hidden = getattr(config, "hidden_size", None) or getattr(config, "n_embd", None)
        if hidden is not None and _reads_residual_width(hook, model) and hidden != self.d_in:
            raise ValueError(
                f"SAE width mismatch: the SAE expects d_in={self.d_in} activations, but {self.hook_name!r} of "
                f"this model has hidden size {hidden}. Use an SAE trained on this model (same layer type and width)."
            )
        self._n_layers = getattr(config, "num_hidden_layers", None)

    # ------------------------------------------------------------------ runtime (never pickled)
    def _clear_runtime(self) -> None:
        self._model = self._tokenizer = self._sae = None
        self._reader: ActivationReader | None = None
        self._device_used: torch.device | None = None

    def _ensure_loaded(self, rank: int | None = None) -> None:
        if rank is not None and self._reader is None and not torch.cuda.is_available():
            # A `map(num_proc=n)` worker forked from a parent that already ran torch: OpenMP's thread
            # pool does not survive fork and the first parallel op would hang. One thread per worker
            # (as torch's DataLoader workers do); the processes are the parallelism.
            torch.set_num_threads(1)
        if self._model is None:
            device = torch.device(self.device) if self.device else default_device(rank)
            self._model, self._tokenizer = load_model(
                self.model_spec, self.tokenizer_spec, gguf_file=self.gguf_file, revision=self.revision,
                device=device, dtype=self.dtype,
            )
        elif self._device_used is None and (self.device or self.dtype):
            device = torch.device(self.device) if self.device else next(self._model.parameters()).device
            self._model = self._model.to(device=device, dtype=resolve_dtype(self.dtype, device))
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(self.tokenizer_spec)
        if self._sae is None:
            self._sae = load_sae(self.sae_spec)
        if self._reader is None:
            self._reader = ActivationReader(
                self._model, self._tokenizer, self.hook_name, max_length=self.max_length,
                token_budget=self.token_budget, exclude_bos=self.exclude_bos,
            )
            self._device_used = self._reader.device
            self._sae = self._sae.to(self._device_used)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        for key in ("_reader", "_device_used"):
            state[key] = None
        if self.model_spec is not None:
            state["_model"] = state["_tokenizer"] = None
        elif self._model is not None:
            # Class + config + weights, not the live object: after one output_hidden_states=True call,
            # transformers 5 leaves forward hooks holding ContextVars on the layers, which cannot be pickled
            # (num_proc workers, Ray actors). Rebuilding costs an init; an encoder built from a model id or
            # folder ships its configuration only.
            state["_model"] = {"class": type(self._model), "config": self._model.config,
                               "dtype": next(self._model.parameters()).dtype,
                               "weights": {k: v.cpu() for k, v in self._model.state_dict().items()}}
        if self.tokenizer_spec is not None:
            state["_tokenizer"] = None
        if self.sae_spec is not None:
            state["_sae"] = None
        elif hasattr(self._sae.cfg, "to_dict"):  # sae-lens SAEs hold lambdas: ship config + weights
            state["_sae"] = {"cfg": self._sae.cfg.to_dict(), "weights": {k: v.cpu() for k, v in self._sae.state_dict().items()}}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if isinstance(self._model, dict):
            shipped = self._model
            model = shipped["class"](shipped["config"]).to(shipped["dtype"])
            model.load_state_dict(shipped["weights"], strict=True)
            self._model = model.eval()
        if isinstance(self._sae, dict):
            from sae_lens import SAE

            sae = SAE.from_dict(self._sae["cfg"])
            sae.load_state_dict(self._sae["weights"])
            self._sae = sae.eval()

    # ------------------------------------------------------------------ identity
    def config(self) -> dict[str, Any]:
        """The JSON-able configuration (everything that decides the output columns)."""
        return {
            "model": self.model_spec, "gguf_file": self.gguf_file, "revision": self.revision,
            "tokenizer": self.tokenizer_spec, "sae": _jsonable_spec(self.sae_spec), "hook_name": self.hook_name,
            "d_in": self.d_in, "d_sae": self.d_sae, **self.text.to_dict(), "max_length": self.max_length,
            "on_overlong": self.on_overlong, "on_empty": self.on_empty, "pooling": self.pooling, "top_k": self.top_k,
            "exclude_bos": self.exclude_bos, "pool_start": self.pool_start, "dtype": self.dtype, "indices_column": self.indices_column,
            "values_column": self.values_column, "n_tokens_column": self.n_tokens_column,
            "truncated_column": self.truncated_column, "activations_column": self.activations_column,
        }

    @property
    def fingerprint(self) -> str:
        """A short digest of the configuration and the weights' identity (not of every weight)."""
        identity = {k: v for k, v in self.config().items() if k not in ("model", "tokenizer", "sae")}
        identity["model"] = _model_identity(self.model_spec, self.gguf_file, self.revision, self._model)
        if self.tokenizer_spec or self.model_spec is None:  # else the model's files cover the tokenizer
            identity["tokenizer"] = self.tokenizer_spec or _tokenizer_identity(self._tokenizer)
        identity["sae"] = _sae_identity(self.sae_spec, self._sae)
        identity["format"] = _FORMAT_VERSION
        return stable_hash(identity)

    def __repr__(self) -> str:
        model = self.model_spec or type(self._model).__name__
        return (f"SAEEncoder(model={model!r}, hook_name={self.hook_name!r}, d_sae={self.d_sae}, "
                f"pooling={self.pooling!r}, top_k={self.top_k})")

    # ------------------------------------------------------------------ datasets integration
    @property
    def features(self):
        """The ``datasets.Features`` of the columns this transform adds."""
        from datasets import Features, List, Value

        features = Features({
            self.indices_column: List(Value("int32")),
            self.values_column: List(Value("float32")),
            self.n_tokens_column: Value("int32"),
            self.truncated_column: Value("bool"),
        })
        if self.activations_column:
            features[self.activations_column] = List(Value("float32"), length=self.d_in)
        return features

    def output_features(self, input_features: Any, remove_columns: Sequence[str] = ()) -> Any:
        """``input_features`` (minus ``remove_columns``) plus :attr:`features`, for ``map(features=...)``."""
        from datasets import Features

        if input_features is None:
            return None
        kept = {k: v for k, v in input_features.items() if k not in set(remove_columns)}
        return Features({**kept, **self.features})

    def __call__(self, batch: Mapping[str, Sequence[Any]], rank: int | None = None) -> dict[str, list]:
        """Encode one batch (``Dataset.map(encoder, batched=True[, with_rank=True])``)."""
        self._ensure_loaded(rank)
        texts = self.text.build(batch, self._tokenizer)
        token_ids, truncated = self._tokenize(texts)
        raw = np.zeros((len(token_ids), self.d_in), np.float32) if self.activations_column else None
        pooled, n_tokens = self._pool(token_ids, raw=raw)
        indices, values = topk_rows(pooled, self.top_k)
        out = {  # plain lists: IterableDataset.map passes returned arrays through as numpy
            self.indices_column: [row.tolist() for row in indices],
            self.values_column: [row.tolist() for row in values],
            self.n_tokens_column: n_tokens.tolist(),
            self.truncated_column: truncated,
        }
        if raw is not None:
            out[self.activations_column] = raw.tolist()
        return out

    def map(self, dataset: Any, *, batch_size: int = 256, desc: str | None = "SAE features", **map_kwargs: Any) -> Any:
        """``dataset.map(self, batched=True, ...)`` with declared features, a cheap fingerprint and a
        truncation summary; for ``Dataset``, ``IterableDataset`` and ``DatasetDict``."""
        from datasets import Dataset, DatasetDict, IterableDatasetDict

        if isinstance(dataset, (DatasetDict, IterableDatasetDict)):
            return type(dataset)({k: self.map(v, batch_size=batch_size, desc=desc, **map_kwargs) for k, v in dataset.items()})
        self.text.check_columns(dataset.column_names)
        features = self.output_features(dataset.features, map_kwargs.get("remove_columns") or ())
        kwargs = dict(batched=True, batch_size=batch_size, features=features, **map_kwargs)
        if isinstance(dataset, Dataset):
            kwargs.setdefault("desc", desc)
            kwargs.setdefault("new_fingerprint", stable_hash([dataset._fingerprint, self.fingerprint, _jsonable(map_kwargs), batch_size], 32))
            if kwargs.get("num_proc", 1) and kwargs.get("num_proc", 1) > 1:
                kwargs.setdefault("with_rank", True)
            out = dataset.map(self, **kwargs)
            n_trunc = int(np.sum(out[self.truncated_column])) if len(out) else 0
            if n_trunc:
                logger.warning("SAEEncoder truncated %d of %d texts to max_length=%d tokens (see column %r).",
                               n_trunc, len(out), self.max_length, self.truncated_column)
            return out
        return dataset.map(self, **kwargs)

    # ------------------------------------------------------------------ direct use
    def encode(self, texts: Sequence[Any], batch_size: int = 256, progress: bool = False):
        """Encode raw texts (strings, or chat message lists with ``chat_template=True``) to a
        ``scipy.sparse.csr_matrix`` of shape ``(len(texts), d_sae)`` holding each text's top-``k``
        pooled latents. Templates over columns apply to datasets only."""
        from .sparse import sparse_matrix

        def run(chunk):
            ids, _ = self._tokenize(self._texts(chunk))
            return topk_rows(self._pool(ids)[0], self.top_k)

        out = self._batched(texts, batch_size, progress, run)
        batch = {"i": [r for idx, _ in out for r in idx], "v": [r for _, val in out for r in val]}
        return sparse_matrix(batch, self.d_sae, "i", "v")

    def pooled_activations(self, texts: Sequence[Any], batch_size: int = 256, pooling: str | None = None,
                           progress: bool = False) -> np.ndarray:
        """Raw hooked activations pooled per text, ``(len(texts), d_in)`` float32: the dense baseline that
        SAE features are compared against."""
        def run(chunk):
            ids, _ = self._tokenize(self._texts(chunk))
            return self._pool(ids, through_sae=False, pooling=pooling)[0]

        return np.concatenate(self._batched(texts, batch_size, progress, run) or [np.zeros((0, self.d_in), np.float32)])

    def iter_activations(self, texts: Sequence[Any], batch_size: int = 64, progress: bool = False) -> Iterator[torch.Tensor]:
        """Yield the hooked activations of real tokens (padding and BOS left out) as ``(n_tokens, d_in)``
        tensors, micro-batch by micro-batch. This is what SAE training consumes."""
        self._ensure_loaded()
        from tqdm.auto import tqdm

        for start in tqdm(range(0, len(texts), batch_size), desc="activations", disable=not progress):
            ids, _ = self._tokenize(self._texts(texts[start:start + batch_size]))
            for _, flat, _, _ in self._forward(ids):
                yield flat

    def _texts(self, chunk: Sequence[Any]) -> list[Any]:
        texts = list(chunk)
        if self.text.chat_template:
            from .text import render_chat

            texts = [render_chat(self._tokenizer, t) for t in texts]
        return texts

    def _batched(self, texts, batch_size, progress, fn):
        from tqdm.auto import tqdm

        self._ensure_loaded()
        chunks = range(0, len(texts), batch_size)
        return [fn(list(texts[s:s + batch_size])) for s in tqdm(chunks, desc="SAE features", disable=not progress)]

    # ------------------------------------------------------------------ core
    def _tokenize(self, texts: Sequence[Any]) -> tuple[list[list[int]], list[bool]]:
        empty = [i for i, t in enumerate(texts) if t is None or not str(t).strip()]
        if empty and self.on_empty == "error":
            raise ValueError(
                f"{len(empty)} empty text(s) in this batch (batch rows {empty[:10]}). Filter them first, e.g. "
                f"dataset.filter(lambda r: bool(r[{self.text.columns[0]!r}] and r[{self.text.columns[0]!r}].strip())), "
                "or pass on_empty='zeros' to give them no features (sae_n_tokens=0)."
            )
        add_special = not self.text.chat_template
        encoded = self._tokenizer([t if i not in empty else "" for i, t in enumerate(texts)],
                                  add_special_tokens=add_special, truncation=False)["input_ids"]
        truncated = [len(ids) > self.max_length for ids in encoded]
        if any(truncated) and self.on_overlong == "error":
            rows = [i for i, t in enumerate(truncated) if t]
            longest = max(len(encoded[i]) for i in rows)
            raise ValueError(
                f"{len(rows)} text(s) exceed max_length={self.max_length} tokens (batch rows {rows[:10]}, longest "
                f"{longest}). Raise max_length=, shorten the texts, or pass on_overlong='truncate'."
            )
        token_ids = [ids[: self.max_length] if i not in empty else [] for i, ids in enumerate(encoded)]
        return token_ids, truncated

    def _forward(self, token_ids: list[list[int]], pool_from: Sequence[int] | None = None):
        """Yield ``(rows, flat, row_ids, is_last)`` per micro-batch (see :class:`ActivationReader`)."""
        if self.pool_start:
            pool_from = [max(self.pool_start, p) for p in (pool_from or [0] * len(token_ids))]
        return self._reader.microbatches(token_ids, pool_from)

    def _pool(self, token_ids: list[list[int]], through_sae: bool = True, pooling: str | None = None,
              pool_from: Sequence[int] | None = None, raw: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Pooled SAE codes (or raw activations with ``through_sae=False``) and pooled-token counts per text.
        ``raw``, an ``(n, d_in)`` array, is filled in the same pass with the raw activations pooled alike."""
        pooling = pooling or self.pooling
        pooled, n_tokens = self._pool_many(token_ids, (pooling,), pool_from, through_sae=through_sae,
                                           raw=None if raw is None else {pooling: raw})
        return pooled[pooling], n_tokens

    def _pool_many(self, token_ids: list[list[int]], poolings: Sequence[str], pool_from: Sequence[int] | None = None,
                   *, through_sae: bool = True, raw: Mapping[str, np.ndarray] | None = None,
                   ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Several poolings from **one** forward and one SAE encode per token: ``({pooling: (n, width)
        float32}, pooled-token counts)``, each array equal to what ``_pool(..., pooling=p)`` gives.
        ``raw`` maps a pooling to an ``(n, d_in)`` array to fill with the raw activations pooled that way."""
        poolings = list(dict.fromkeys(poolings))  # drop repeats, keep order
        if not poolings:
            raise ValueError(f"poolings must name at least one of {POOLINGS}.")
        bad = [p for p in poolings if p not in POOLINGS]
        if bad:
            raise ValueError(f"Unknown pooling(s) {bad}; choose from {POOLINGS}.")
        raw = dict(raw or {})
        width = self.d_sae if through_sae else self.d_in
        pooled = {p: np.zeros((len(token_ids), width), dtype=np.float32) for p in poolings}
        n_tokens = np.zeros(len(token_ids), dtype=np.int32)
        sae_dtype = next(self._sae.parameters()).dtype
        for rows, flat, row_ids, is_last in self._forward(token_ids, pool_from):
            with torch.inference_mode():
                if flat.shape[-1] != self.d_in:
                    raise ValueError(
                        f"The activation at {self.hook_name!r} has width {flat.shape[-1]} but the SAE expects "
                        f"d_in={self.d_in}. Use an SAE trained on this hook of this model."
                    )
                poolers = {p: SegmentPooler(p, len(rows), width, device=flat.device) for p in poolings}
                raw_poolers = {p: SegmentPooler(p, len(rows), self.d_in, device=flat.device) for p in raw}
                chunk = max(1, _SAE_CHUNK_FLOATS // width)
                for s in range(0, flat.shape[0], chunk):
                    x, seg, last = flat[s:s + chunk], row_ids[s:s + chunk], is_last[s:s + chunk]
                    acts = (self._sae.encode(x.to(sae_dtype)) if through_sae else x).float()
                    for pooler in poolers.values():
                        pooler.update(acts, seg, last)
                    if raw_poolers:
                        xf = x.float()
                        for raw_pooler in raw_poolers.values():
                            raw_pooler.update(xf, seg, last)
                for p, pooler in poolers.items():
                    pooled[p][rows] = pooler.result().cpu().numpy()
                for p, raw_pooler in raw_poolers.items():
                    raw[p][rows] = raw_pooler.result().cpu().numpy()
                n_tokens[rows] = poolers[poolings[0]].counts.cpu().numpy().astype(np.int32)
        return pooled, n_tokens


# ---------------------------------------------------------------------- helpers
def sae_pool_start(sae: Any) -> int:
    """The first token position the SAE was trained on: the start of ``cfg.metadata.seqpos_slice``
    (sae-lens records it; 0 when absent). SAEs trained without position 0 have never seen the
    attention-sink activation there, whose norm can be 100x the others' (e.g. SmolLM2, whose
    tokenizer adds no BOS), so it is not pooled either."""
    metadata = getattr(sae.cfg, "metadata", None)
    seqpos = metadata.get("seqpos_slice") if metadata is not None and hasattr(metadata, "get") else None
    start = seqpos[0] if seqpos else None
    return int(start) if isinstance(start, int) and start > 0 else 0


def _sae_spec(sae: Any) -> tuple[str, str] | str | None:
    if isinstance(sae, tuple):
        return (str(sae[0]), str(sae[1])) if len(sae) == 2 else sae
    if is_model_spec(sae):
        return str(Path(sae))
    return None


def _jsonable_spec(spec: Any) -> Any:
    return list(spec) if isinstance(spec, tuple) else spec


def _jsonable(obj: Any) -> Any:
    return {k: (v if isinstance(v, (str, int, float, bool, type(None), list, tuple)) else repr(v)) for k, v in obj.items()}


def _reads_residual_width(hook: ResolvedHook, model: Any) -> bool:
    if hook.layer is None:
        return False
    return hook.hook_name.startswith("blocks.") or hook.module_path.rsplit(".", 1)[-1].isdigit()


def _model_identity(spec: str | None, gguf_file: str | None, revision: str | None, model: Any) -> Any:
    if spec is None:
        return module_digest(model)
    if os.path.isdir(spec):
        target = Path(spec) / gguf_file if gguf_file else Path(spec)
        return {"content": path_digest(target), "gguf_file": gguf_file}
    return {"id": spec, "revision": revision, "gguf_file": gguf_file}


def _tokenizer_identity(tokenizer: Any) -> str:
    vocab = sorted(tokenizer.get_vocab().items())
    return stable_hash([type(tokenizer).__name__, vocab, getattr(tokenizer, "chat_template", None),
                        tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id])


def _sae_identity(spec: Any, sae: Any) -> Any:
    if isinstance(spec, tuple):
        return list(spec)
    if isinstance(spec, str):
        return path_digest(spec)
    return module_digest(sae)
