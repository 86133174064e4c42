"""``SAEEncoder``: a ``Dataset.map`` transform that attaches pooled, sparse SAE features.

The encoder is a composition: :class:`~hf_saerl.models.text.TextBuilder` reads the text of each row,
:class:`~hf_saerl.encoding.runtime.EncoderRuntime` holds the model, tokenizer and SAE (lazy loading, device per
rank, small pickles), :class:`~hf_saerl.encoding.activations.ActivationReader` runs the truncated forward, and
:func:`~hf_saerl.encoding.pooling.pool_microbatches` pools the SAE codes. Its fingerprint is built from
:meth:`SAEEncoder.config` and :mod:`hf_saerl.models.identity`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ..core import columns as C
from ..core.configs import as_config, refuse_moved
from ..core.fingerprint import Fingerprinted, stable_hash, transform_map_kwargs
from ..core.serialization import jsonable
from ..core.validation import check_finite
from ..errors import HookMismatchError, InvalidParameterError, ParameterTypeError, WidthMismatchError
from ..models.text import TextBuilder, check_text_values, tokenize_texts
from .activations import ActivationBatch, ActivationReader
from .config import MOVED, FeatureColumns, TokenPolicy, check_feature_options, grouped_options
from .hooks import check_hook_width
from .pooling import PooledSpans, check_poolings, pool_microbatches
from .runtime import EncoderRuntime
from .saes import sae_hook_name, sae_pool_start
from .sparse import topk_rows

logger = logging.getLogger(__name__)

__all__ = ["SAE_IDENTITY_KEY", "TRUNCATED", "PooledSpans", "SAEEncoder", "sae_identity_of", "sae_pool_start"]

#: The key of the JSON object that :attr:`SAEEncoder.features` stores as the ``id`` of the indices column's
#: ``Value`` (see :func:`sae_identity_of`).
SAE_IDENTITY_KEY = "hf_saerl.sae_columns"

TRUNCATED = C.SAE_TRUNCATED
_FORMAT_VERSION = 1
#: What :meth:`SAEEncoder.config` records of the model, tokenizer and SAE besides ``model`` and ``sae``: references
#: that say what was read, which a rebuild passes again (or replaces), not options.
_REFERENCES = ("tokenizer", "gguf_file", "revision")
_MOVED_HINT = "Output column names go in columns=FeatureColumns(...), token rules in tokens=TokenPolicy(...)."


def _delegated(name: str, doc: str, convert: Any = None) -> property:
    """A property reading ``self.runtime.<name>``; settable (through ``convert``) when ``convert`` is given."""

    def get(self: SAEEncoder) -> Any:
        return getattr(self.runtime, name)

    def set_(self: SAEEncoder, value: Any) -> None:  # takes effect when the model is next placed
        setattr(self.runtime, name, convert(value))

    return property(get, set_ if convert is not None else None, doc=doc)


def _dtype_name(dtype: Any) -> str | None:
    return None if dtype is None else str(dtype).replace("torch.", "")


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
            or refused with ``tokens=TokenPolicy(on_overlong="error")``.
        pooling: ``mean`` (default), ``max``, ``sum``, ``last`` or ``freq``.
        top_k: latents kept per example (``None`` keeps every non-zero).
        tokens: :class:`~hf_saerl.encoding.config.TokenPolicy` (or a dict of its fields): what happens to
            overlong (``on_overlong``) and empty (``on_empty``) texts, and which positions are pooled
            (``exclude_bos``, ``pool_start``; by default the SAE's own training positions).
        columns: :class:`~hf_saerl.encoding.config.FeatureColumns` (or a dict of its fields) renaming the
            output columns; ``FeatureColumns(activations=...)`` also writes the raw hooked activations, pooled
            the same way: the dense baseline that SAE features are compared against.
        token_budget: padded tokens per micro-batch; examples are length-sorted inside each map batch.
        device, dtype: default to CUDA (``cuda:{rank}`` under ``with_rank=True``) with bf16 when a GPU
            exists, else CPU with fp32.

    Besides the ``datasets`` transform (``__call__``, :meth:`map`, :attr:`features`), the encoder offers
    :meth:`encode`, :meth:`pooled_activations`, :meth:`iter_activations` and :meth:`pool_spans` (any token
    spans, several poolings from one forward), and the :attr:`model`, :attr:`tokenizer` and :attr:`sae` it reads
    through (each loaded on first use).

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

    #: Constructor options that :meth:`config` leaves out: where and how fast the model runs, never what it gives.
    RUNTIME_OPTIONS = ("token_budget", "device")

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
        pooling: str = "mean",
        top_k: int | None = 64,
        tokens: TokenPolicy | Mapping[str, Any] | None = None,
        columns: FeatureColumns | Mapping[str, Any] | None = None,
        token_budget: int = 4096,
        device: str | None = None,
        dtype: str | None = None,
        **moved: Any,
    ):
        if moved:
            refuse_moved("SAEEncoder", moved, MOVED, _MOVED_HINT)
        check_feature_options(max_length=max_length, pooling=pooling, top_k=top_k, token_budget=token_budget)
        self.tokens = as_config(TokenPolicy, tokens, "tokens")
        self.columns = as_config(FeatureColumns, columns, "columns")
        self.text = TextBuilder(text_column, template, chat_template)
        self.max_length, self.pooling, self.top_k, self.token_budget = max_length, pooling, top_k, token_budget
        self.runtime = EncoderRuntime(
            model, sae, tokenizer=tokenizer, gguf_file=gguf_file, revision=revision, device=device, dtype=dtype
        )
        sae_obj = self.runtime.sae
        self.d_in, self.d_sae = int(sae_obj.cfg.d_in), int(sae_obj.cfg.d_sae)
        #: The first position pooled: ``tokens.pool_start``, or the SAE's own (:func:`sae_pool_start`) when that is None.
        self.pool_start = sae_pool_start(sae_obj) if self.tokens.pool_start is None else int(self.tokens.pool_start)
        resolved_hook = hook_name or sae_hook_name(sae_obj)
        if not resolved_hook:
            raise HookMismatchError(
                "The SAE records no hook_name in cfg.metadata; pass hook_name= (e.g. "
                "'blocks.6.hook_resid_post'), or set sae.cfg.metadata.hook_name."
            )
        self.hook_name: str = resolved_hook
        check_hook_width(self.runtime.structure(), self.hook_name, self.d_in)

    # ------------------------------------------------------------------ what it reads through
    @property
    def model(self) -> Any:
        """The causal LM, loaded on first use (on ``device`` / ``dtype``, see :class:`EncoderRuntime`)."""
        return self.runtime.model

    @property
    def tokenizer(self) -> Any:
        """The tokenizer, loaded on first use (without loading the model)."""
        return self.runtime.tokenizer

    @property
    def sae(self) -> Any:
        """The sae-lens SAE, loaded on first use (without loading the model)."""
        return self.runtime.sae

    model_spec = _delegated("model_spec", "The model's Hub id or folder; ``None`` for an in-memory model.")
    tokenizer_spec = _delegated("tokenizer_spec", "The tokenizer's Hub id or folder, if one was given.")
    sae_spec = _delegated("sae_spec", "The SAE's ``(release, sae_id)`` or folder; ``None`` for an in-memory SAE.")
    gguf_file = _delegated("gguf_file", "The GGUF file inside the model's folder, if any.")
    revision = _delegated("revision", "The model's Hub revision, if any.")
    device = _delegated("device", "Where the model runs (``None``: the default device, per rank).", lambda v: v)
    dtype = _delegated("dtype", "The model's dtype name (``None``: bf16 on GPU, fp32 on CPU).", _dtype_name)

    # ------------------------------------------------------------------ identity
    def config(self) -> dict[str, Any]:
        """The JSON-able configuration: everything that decides the output columns.

        It holds every option except :attr:`RUNTIME_OPTIONS` (``token_budget``, ``device``), which never change the
        output, plus ``d_in`` and ``d_sae`` (the SAE's widths, not options). The references ``model``, ``tokenizer``,
        ``sae`` (a ``(release, sae_id)`` as a list), ``gguf_file`` and ``revision`` say what was read. The grouped
        options are recorded flat, under the names they had before they were grouped (``indices_column``, ...,
        ``on_empty``, ``pool_start``), so fingerprints, caches and saved pipelines stay as they were;
        :meth:`from_config` rebuilds an equal encoder from this dict.

        Example:
            >>> from hf_saerl import SAEEncoder
            >>> from hf_saerl.testing import tiny_llama, tiny_sae, tiny_tokenizer
            >>> config = SAEEncoder(tiny_llama(), tiny_sae(), tokenizer=tiny_tokenizer(), pooling="max").config()
            >>> config["pooling"], config["hook_name"], config["d_sae"], config["model"]
            ('max', 'blocks.1.hook_resid_post', 128, None)
        """
        return {
            "model": self.model_spec,
            "gguf_file": self.gguf_file,
            "revision": self.revision,
            "tokenizer": self.tokenizer_spec,
            "sae": jsonable(self.sae_spec),
            "hook_name": self.hook_name,
            "d_in": self.d_in,
            "d_sae": self.d_sae,
            **self.text.to_dict(),
            "max_length": self.max_length,
            "on_overlong": self.tokens.on_overlong,
            "on_empty": self.tokens.on_empty,
            "pooling": self.pooling,
            "top_k": self.top_k,
            "exclude_bos": self.tokens.exclude_bos,
            "pool_start": self.pool_start,
            "dtype": self.dtype,
            **self.columns.to_config(),
        }

    @classmethod
    def option_names(cls) -> frozenset[str]:
        """The flat option names :meth:`from_config` reads: the keys of :meth:`config` that are options (not
        references or widths) and the :attr:`RUNTIME_OPTIONS`. A new constructor option joins it by itself."""
        import inspect

        own = set(inspect.signature(cls.__init__).parameters) - {"self", "model", "sae", "tokens", "columns", "moved"}
        return frozenset((own - set(_REFERENCES)) | set(MOVED))

    @classmethod
    def from_config(cls, config: Mapping[str, Any], model: Any, sae: Any, **kwargs: Any) -> SAEEncoder:
        """The encoder a flat ``config`` records (as :meth:`config` returns it, or a saved pipeline's encoder options).

        The options (:meth:`option_names`) are taken, flat column names and token rules regrouped into ``columns``
        and ``tokens``; the references and widths are left out (pass ``model``, ``sae`` and ``tokenizer=``).
        ``kwargs`` (constructor arguments or flat options) override the config. Keys that are none of these are
        refused (:class:`~hf_saerl.errors.InvalidParameterError`).

        Example:
            >>> from hf_saerl import SAEEncoder
            >>> from hf_saerl.testing import tiny_llama, tiny_sae, tiny_tokenizer
            >>> model, sae, tok = tiny_llama(), tiny_sae(), tiny_tokenizer()
            >>> enc = SAEEncoder(model, sae, tokenizer=tok, top_k=8, columns={"indices": "ids"})
            >>> clone = SAEEncoder.from_config(enc.config(), model, sae, tokenizer=tok)
            >>> clone.columns.indices, clone.fingerprint == enc.fingerprint
            ('ids', True)
        """
        names = cls.option_names()
        unknown = sorted(set(config) - names - {"model", "sae", "d_in", "d_sae", *_REFERENCES})
        if unknown:
            raise InvalidParameterError(
                f"The encoder config holds unknown option(s) {unknown}; SAEEncoder takes {sorted(names)}. "
                "It was written by a newer hf_saerl: upgrade hf_saerl, or drop those keys."
            )
        options = {k: v for k, v in config.items() if k in names}
        return cls(model, sae, **grouped_options({**options, **kwargs}))

    @property
    def fingerprint(self) -> str:
        """A short digest of the configuration and the weights' identity (not of every weight)."""
        identity = {k: v for k, v in self.config().items() if k not in ("model", "tokenizer", "sae")}
        identity.update(self.runtime.identity())
        identity["format"] = _FORMAT_VERSION
        return stable_hash(identity)

    def __repr__(self) -> str:
        return (
            f"SAEEncoder(model={self.runtime.describe_model()!r}, hook_name={self.hook_name!r}, "
            f"d_sae={self.d_sae}, pooling={self.pooling!r}, top_k={self.top_k})"
        )

    # ------------------------------------------------------------------ datasets integration
    @property
    def features(self):
        """The ``datasets.Features`` of the columns this transform adds."""
        import json

        from datasets import Features, List, Value

        identity = json.dumps({SAE_IDENTITY_KEY: self.column_identity()}, sort_keys=True)
        features = Features(
            {  # the identity rides in the Value's id: it survives map, save_to_disk and Parquet
                self.columns.indices: List(Value("int32", id=identity)),
                self.columns.values: List(Value("float32")),
                self.columns.n_tokens: Value("int32"),
                self.columns.truncated: Value("bool"),
            }
        )
        if self.columns.activations:
            features[self.columns.activations] = List(Value("float32"), length=self.d_in)
        return features

    def column_identity(self) -> dict[str, Any]:
        """Which SAE made the columns: the encoder's :attr:`fingerprint`, ``d_sae``, ``d_in``, ``hook_name``,
        ``pooling``, ``top_k`` and the ``values_column`` paired with the indices. :attr:`features` stores it with
        the indices column (read it back with :func:`sae_identity_of`)."""
        return {
            "fingerprint": self.fingerprint,
            "d_sae": self.d_sae,
            "d_in": self.d_in,
            "hook_name": self.hook_name,
            "pooling": self.pooling,
            "top_k": self.top_k,
            "values_column": self.columns.values,
        }

    def output_features(self, input_features: Any, remove_columns: Sequence[str] = ()) -> Any:
        """``input_features`` (minus ``remove_columns``) plus :attr:`features`, for ``map(features=...)``."""
        from datasets import Features

        if input_features is None:
            return None
        kept = {k: v for k, v in input_features.items() if k not in set(remove_columns)}
        return Features({**kept, **self.features})

    def __call__(self, batch: Mapping[str, Sequence[Any]], rank: int | None = None) -> dict[str, list]:
        """Encode one batch (``Dataset.map(encoder, batched=True[, with_rank=True])``)."""
        self._reader(rank)  # load (and place per rank) before anything else touches the runtime
        texts = self.text.build(batch, self.tokenizer)
        token_ids, truncated = self._tokenize(texts)
        spans = self.pool_spans(token_ids, raw_poolings=(self.pooling,) if self.columns.activations else ())
        indices, values = topk_rows(spans.pooled[self.pooling], self.top_k)
        out = {  # plain lists: IterableDataset.map passes returned arrays through as numpy
            self.columns.indices: [row.tolist() for row in indices],
            self.columns.values: [row.tolist() for row in values],
            self.columns.n_tokens: spans.n_tokens.tolist(),
            self.columns.truncated: truncated,
        }
        if self.columns.activations:
            out[self.columns.activations] = spans.raw[self.pooling].tolist()
        return out

    def map(self, dataset: Any, *, batch_size: int = 256, desc: str | None = "SAE features", **map_kwargs: Any) -> Any:
        """``dataset.map(self, batched=True, ...)`` with declared features, a cheap fingerprint and a
        truncation summary; for ``Dataset``, ``IterableDataset`` and ``DatasetDict``."""
        from datasets import Dataset, DatasetDict, IterableDatasetDict

        if isinstance(dataset, (DatasetDict, IterableDatasetDict)):
            return type(dataset)(
                {k: self.map(v, batch_size=batch_size, desc=desc, **map_kwargs) for k, v in dataset.items()}
            )
        self.text.check_columns(dataset.column_names)
        kwargs = transform_map_kwargs(self, dataset, batch_size=batch_size, desc=desc, map_kwargs=map_kwargs)
        if isinstance(dataset, Dataset):
            out = dataset.map(self, **kwargs)
            n_trunc = int(np.sum(out[self.columns.truncated])) if len(out) else 0
            if n_trunc:
                logger.warning(
                    "SAEEncoder truncated %d of %d texts to max_length=%d tokens (see column %r).",
                    n_trunc,
                    len(out),
                    self.max_length,
                    self.columns.truncated,
                )
            return out
        return dataset.map(self, **kwargs)

    # ------------------------------------------------------------------ direct use
    def encode(self, texts: Sequence[Any], batch_size: int = 256, progress: bool = False):
        """Encode raw texts (strings, or chat message lists with ``chat_template=True``) to a
        ``scipy.sparse.csr_matrix`` of shape ``(len(texts), d_sae)`` holding each text's top-``k``
        pooled latents. Templates over columns apply to datasets only."""
        from .sparse import sparse_matrix

        texts = self._text_list(texts, "encode")

        def run(ids):
            return topk_rows(self.pool_spans(ids).pooled[self.pooling], self.top_k)

        out = self._batched(texts, batch_size, progress, run)
        batch = {"i": [r for idx, _ in out for r in idx], "v": [r for _, val in out for r in val]}
        return sparse_matrix(batch, self.d_sae, "i", "v")

    def pooled_activations(
        self, texts: Sequence[Any], batch_size: int = 256, pooling: str | None = None, progress: bool = False
    ) -> np.ndarray:
        """Raw hooked activations pooled per text, ``(len(texts), d_in)`` float32: the dense baseline that
        SAE features are compared against."""
        pooling = pooling or self.pooling
        texts = self._text_list(texts, "pooled_activations")

        def run(ids):
            return self.pool_spans(ids, (pooling,), through_sae=False).pooled[pooling]

        return np.concatenate(self._batched(texts, batch_size, progress, run) or [np.zeros((0, self.d_in), np.float32)])

    def iter_activations(
        self, texts: Sequence[Any], batch_size: int = 64, progress: bool = False
    ) -> Iterator[torch.Tensor]:
        """Yield the hooked activations of real tokens (padding and BOS left out) as ``(n_tokens, d_in)``
        tensors, micro-batch by micro-batch. This is what SAE training consumes."""
        reader = self._reader()
        texts = self._text_list(texts, "iter_activations")
        from tqdm.auto import tqdm

        for start in tqdm(range(0, len(texts), batch_size), desc="activations", disable=not progress):
            ids, _ = self._tokenize(self._texts(texts[start : start + batch_size]))
            for batch in reader.microbatches(ids, self._pool_from(ids, None)):
                yield batch.flat

    def pool_spans(
        self,
        token_ids: Sequence[Sequence[int]],
        poolings: Sequence[str] | None = None,
        *,
        pool_from: Sequence[int] | None = None,
        through_sae: bool = True,
        raw_poolings: Sequence[str] = (),
    ) -> PooledSpans:
        """Pool token spans every way in ``poolings`` from **one** forward and one SAE encode per token.

        Args:
            token_ids: one list of token ids per row, as the model should read them (special tokens included;
                rows are not cut, so keep them within ``max_length``). Empty rows pool to zeros.
            poolings: names from ``mean``, ``max``, ``sum``, ``last``, ``freq`` (repeats dropped, order kept);
                ``None`` is the encoder's own ``pooling``.
            pool_from: per row, the first position to pool; the positions before it are read as context only
                (e.g. a prompt before its response). The encoder's token rules (``tokens``) still apply.
            through_sae: ``False`` pools the raw hooked activations (``d_in`` wide) instead of the SAE codes.
            raw_poolings: also pool the raw activations these ways in the same pass (``PooledSpans.raw``).

        Returns:
            :class:`~hf_saerl.encoding.pooling.PooledSpans`: ``pooled`` (pooling -> ``(n, d_sae)`` float32,
            ``(n, d_in)`` with ``through_sae=False``), ``n_tokens`` (``(n,)`` int32, tokens pooled per row) and
            ``raw`` (pooling -> ``(n, d_in)`` float32). Each array equals what a single-pooling call gives.

        Example:
            >>> from hf_saerl import SAEEncoder
            >>> from hf_saerl.testing import tiny_llama, tiny_sae, tiny_tokenizer
            >>> enc = SAEEncoder(tiny_llama(), tiny_sae(), tokenizer=tiny_tokenizer())
            >>> ids = enc.tokenizer(["Q: 2+2? A: 4"])["input_ids"]  # BOS + one id per character
            >>> spans = enc.pool_spans(ids, poolings=("max", "freq"), pool_from=[1 + len("Q: 2+2? ")])
            >>> spans.pooled["max"].shape, spans.n_tokens.tolist()  # the 4 tokens of "A: 4", read after the question
            ((1, 128), [4])
        """
        poolings = check_poolings((self.pooling,) if poolings is None else poolings)
        raw_poolings = check_poolings(raw_poolings) if raw_poolings else []
        if pool_from is not None and len(pool_from) != len(token_ids):
            raise InvalidParameterError(
                f"pool_from has {len(pool_from)} entries for {len(token_ids)} rows of "
                "token_ids; pass one start position per row, or pool_from=None to pool whole "
                "rows."
            )
        reader = self._reader()
        encode = None
        if through_sae:
            sae = self.runtime.sae
            sae_dtype = next(sae.parameters()).dtype

            def encode(x: torch.Tensor) -> torch.Tensor:
                codes = sae.encode(x.to(sae_dtype))
                return check_finite(
                    codes,
                    f"The SAE codes of the activations at {self.hook_name!r}",
                    "The activations are finite, so the SAE's weights or its dtype overflow; check "
                    "the SAE (load_sae refuses non-finite weights), or run it in float32 (dtype=).",
                )

        batches = self._checked(reader.microbatches(token_ids, self._pool_from(token_ids, pool_from)))
        return pool_microbatches(
            batches,
            len(token_ids),
            poolings,
            self.d_sae if through_sae else self.d_in,
            encode=encode,
            raw_poolings=raw_poolings,
            raw_width=self.d_in,
        )

    # ------------------------------------------------------------------ internals
    def _reader(self, rank: int | None = None) -> ActivationReader:
        return self.runtime.reader(
            self.hook_name,
            max_length=self.max_length,
            token_budget=self.token_budget,
            exclude_bos=self.tokens.exclude_bos,
            rank=rank,
        )

    def _pool_from(self, token_ids: Sequence[Sequence[int]], pool_from: Sequence[int] | None) -> Sequence[int] | None:
        if not self.pool_start:
            return pool_from
        return [max(self.pool_start, p) for p in (pool_from or [0] * len(token_ids))]

    def _checked(self, batches: Iterator[ActivationBatch]) -> Iterator[ActivationBatch]:
        for batch in batches:
            if batch.flat.shape[-1] != self.d_in:
                raise WidthMismatchError(
                    f"The activation at {self.hook_name!r} has width {batch.flat.shape[-1]} but the SAE expects "
                    f"d_in={self.d_in}. Use an SAE trained on this hook of this model, or pass the hook_name= it was "
                    "trained on."
                )
            yield batch

    def _texts(self, chunk: Sequence[Any]) -> list[Any]:
        where = "texts" if self.text.template is not None else f"texts (as column {self.text.columns[0]!r})"
        return check_text_values(list(chunk), where, self.tokenizer, self.text.chat_template)

    @staticmethod
    def _text_list(texts: Any, method: str) -> Sequence[Any]:
        if isinstance(texts, (str, bytes)) or not hasattr(texts, "__len__") or not hasattr(texts, "__getitem__"):
            raise ParameterTypeError(
                f"{method} takes a sequence of texts, got {type(texts).__name__}"
                f"{' ' + repr(texts[:40]) if isinstance(texts, (str, bytes)) else ''}; a single string would be read "
                f"as one text per character. Pass a list: {method}([text]), or encoder.map(dataset) for a dataset."
            )
        return texts

    def _batched(self, texts, batch_size, progress, fn):
        """``fn(token_ids)`` over chunks of ``batch_size`` texts, tokenized as the encoder does."""
        from tqdm.auto import tqdm

        self._reader()
        chunks = range(0, len(texts), batch_size)
        return [
            fn(self._tokenize(self._texts(list(texts[s : s + batch_size])))[0])
            for s in tqdm(chunks, desc="SAE features", disable=not progress)
        ]

    def _tokenize(self, texts: Sequence[Any]) -> tuple[list[list[int]], list[bool]]:
        return tokenize_texts(
            self.tokenizer,
            texts,
            max_length=self.max_length,
            on_empty=self.tokens.on_empty,
            on_overlong=self.tokens.on_overlong,
            add_special_tokens=not self.text.chat_template,
            column=self.text.columns[0],
        )


def sae_identity_of(data: Any, indices_column: str = C.SAE_INDICES) -> dict[str, Any] | None:
    """Which SAE made the sparse columns of ``data``, as :meth:`SAEEncoder.column_identity` recorded it, or ``None``
    when the columns carry no record (written by something else, or rebuilt from plain Python lists).

    ``data`` is a ``Dataset``, an ``IterableDataset`` (with features) or a ``datasets.Features``. The record is a
    JSON object stored as the ``id`` of the indices column's inner ``Value`` (``Value("int32", id=...)``), so it
    lives in the schema: it survives ``map``, ``filter``, ``select``, ``save_to_disk`` / ``load_from_disk``,
    ``to_parquet`` / ``load_dataset("parquet")``, ``to_iterable_dataset`` and ``push_to_hub``; it is lost by
    ``to_dict`` / ``to_pandas`` round trips and by a ``map`` that rewrites the column without ``features=``.

    Example:
        >>> from datasets import Dataset
        >>> from hf_saerl import SAEEncoder
        >>> from hf_saerl.testing import tiny_llama, tiny_sae, tiny_tokenizer
        >>> enc = SAEEncoder(tiny_llama(), tiny_sae(), tokenizer=tiny_tokenizer(), top_k=8)
        >>> ds = enc.map(Dataset.from_dict({"text": ["2 + 2 = 4"]}))
        >>> identity = sae_identity_of(ds)
        >>> identity["fingerprint"] == enc.fingerprint, identity["d_sae"], identity["hook_name"]
        (True, 128, 'blocks.1.hook_resid_post')
        >>> sae_identity_of(Dataset.from_dict({"sae_indices": [[1]]})) is None
        True
    """
    import json

    features = data if isinstance(data, Mapping) and not hasattr(data, "features") else getattr(data, "features", None)
    if not features or indices_column not in features:
        return None
    inner = getattr(features[indices_column], "feature", None)
    raw = getattr(inner, "id", None)
    if not isinstance(raw, str):
        return None
    try:
        record = json.loads(raw)
    except ValueError:
        return None
    return record.get(SAE_IDENTITY_KEY) if isinstance(record, dict) else None
