"""Rollout settings as plain dataclasses (sampling, adaptive rounds, output columns) that import nothing heavy.

The command line reads the defaults and presets from here without importing torch, numpy or datasets; the
labeller validates a config when it first runs (scikit-learn's rule: constructors store, use checks).

Example:
    >>> from hf_saerl.rollouts.config import SamplingConfig
    >>> cfg = SamplingConfig(n=4, max_samples=16)
    >>> cfg.validate().adaptive, cfg.extra_round_size
    (True, 4)
    >>> SamplingConfig.preset("cpu").max_new_tokens
    64
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "DEFAULT_INSTRUCTION",
    "PRESETS",
    "LabelColumns",
    "SamplingConfig",
    "as_label_columns",
    "as_sampling_config",
]

#: Appended to each prompt unless the labeller is given another instruction (or none).
DEFAULT_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."

#: Named sampling presets. ``"gpu"`` is the default (GRPO-sized: 8 samples of up to 256 tokens at T = 1).
#: ``"cpu"`` finishes a few hundred prompts in minutes on a 2-core CPU with SmolLM2-135M: 4 samples first, up to
#: 16 where 0 of k or k of k leaves the pass rate unresolved, answers of up to 64 tokens (a sentence with a
#: number; 6 tokens cut most answers off), 64 sequences in flight. Temperature stays 1: it is part of what the
#: label measures (the policy as it samples), not a speed knob.
PRESETS: dict[str, dict[str, Any]] = {
    "gpu": {"n": 8, "max_new_tokens": 256, "batch_size": 32},
    "cpu": {"n": 4, "max_new_tokens": 64, "max_samples": 16, "round_size": 4, "batch_size": 64},
}


@dataclass
class SamplingConfig:
    """How the labeller samples: the engine settings, the adaptive rounds and the pass-rate prior.

    Attributes:
        n: samples per prompt in the first round.
        max_new_tokens: tokens per completion; a completion that reaches it is counted as cut off.
        temperature: 0 is greedy; 1 (default) samples the policy as GRPO does.
        top_p, top_k, min_p: filters (``top_p=1``, ``top_k=None`` / 0 and ``min_p=None`` turn them off).
        seed: sample ``j`` of a prompt is seeded by ``(seed, rendered prompt, j)``; labels do not depend on row
            order, ``map`` batch size or ``num_proc``.
        batch_size: sequences (prompts x samples) in flight in the transformers backend; not part of the labels.
        max_samples: the per-prompt cap of adaptive sampling. ``None`` (default): ``n``, one round. Above ``n``, a
            prompt whose samples all agree (0 of k or k of k: the rate is unresolved) gets ``round_size`` more,
            round after round, until they disagree or the cap is reached.
        round_size: samples per extra round (``None``: ``n``).
        token_budget: generated tokens the extra rounds may spend in one ``map`` (``None``: no limit; the
            first round is always drawn). Under ``num_proc`` each worker gets an equal share. Which prompts got
            extra rounds before the budget ran out depends on the order rows arrive in; every sample drawn is
            still seeded per prompt.
        prior: ``(alpha, beta)`` of the Beta prior over a prompt's pass rate, for the ``pass_rate_mean`` /
            ``pass_rate_sd`` columns (default ``(1, 1)``, uniform).
        extra: other engine keywords (``model.generate`` or ``vllm.SamplingParams``), e.g.
            ``{"repetition_penalty": 1.1}``.
    """

    n: int = 8
    max_new_tokens: int = 256
    temperature: float = 1.0
    top_p: float | None = 1.0
    top_k: int | None = None
    min_p: float | None = None
    seed: int = 0
    batch_size: int = 32
    max_samples: int | None = None
    round_size: int | None = None
    token_budget: int | None = None
    prior: tuple[float, float] = (1.0, 1.0)
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> SamplingConfig:
        """A named preset (:data:`PRESETS`: ``"cpu"`` or ``"gpu"``) with ``overrides`` on top."""
        from ..errors import InvalidParameterError

        if name not in PRESETS:
            raise InvalidParameterError(
                f"Unknown sampling preset {name!r}; use one of {sorted(PRESETS)}, or build "
                "SamplingConfig(...) yourself."
            )
        return cls(**{**PRESETS[name], **overrides})

    # ------------------------------------------------------------------ derived
    @property
    def cap(self) -> int:
        """The most samples one prompt can get (``max_samples``, or ``n``)."""
        return self.n if self.max_samples is None else max(self.max_samples, self.n)

    @property
    def adaptive(self) -> bool:
        """Whether extra rounds can happen."""
        return self.cap > self.n

    @property
    def extra_round_size(self) -> int:
        """Samples per extra round."""
        return self.n if self.round_size is None else self.round_size

    def engine_settings(self) -> dict[str, Any]:
        """The dict backends receive as ``sampling`` (``max_new_tokens``, ``temperature``, ``top_p``, ``top_k``,
        ``min_p`` when set, and the ``extra`` keywords). It is also what the fingerprint records of the engine, in the
        same shape as before the config object existed, so unchanged settings keep their cache key."""
        out: dict[str, Any] = {
            "max_new_tokens": self.max_new_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "top_k": self.top_k,
        }
        if self.min_p is not None:
            out["min_p"] = self.min_p
        return {**out, **dict(self.extra)}

    def label_settings(self) -> dict[str, Any]:
        """What decides the labels beyond the engine (for the fingerprint): the rounds, budget and prior."""
        return {
            "max_samples": self.cap,
            "round_size": self.extra_round_size if self.adaptive else None,
            "token_budget": self.token_budget if self.adaptive else None,
            "prior": list(self.prior),
        }

    # ------------------------------------------------------------------ validation (at first use)
    def validate(self) -> SamplingConfig:
        """Check every field; raise :class:`~hf_saerl.errors.InvalidParameterError` (or its siblings) naming the
        field, the value and the fix. Returns self."""
        from ..core.validation import check_integer, check_real
        from ..errors import InvalidParameterError, ParameterTypeError

        check_integer("n", self.n, "Pass the samples per prompt, e.g. SamplingConfig(n=8).", minimum=1)
        check_integer("seed", self.seed, "Pass a whole-number seed, e.g. SamplingConfig(seed=0).")
        check_integer(
            "batch_size",
            self.batch_size,
            "Pass the sequences in flight, e.g. SamplingConfig(batch_size=32).",
            minimum=1,
        )
        if self.max_samples is not None:
            check_integer(
                "max_samples",
                self.max_samples,
                "Pass a per-prompt cap >= n, e.g. max_samples=32, or None for one round.",
                minimum=1,
            )
            if self.max_samples < self.n:
                raise InvalidParameterError(
                    f"max_samples={self.max_samples} is below n={self.n}. Pass max_samples >= n "
                    "(the cap of adaptive sampling), or None for one round of n samples."
                )
        if self.round_size is not None:
            check_integer(
                "round_size",
                self.round_size,
                "Pass the samples per extra round, e.g. round_size=8, or None for n.",
                minimum=1,
            )
        if self.token_budget is not None:
            check_integer(
                "token_budget",
                self.token_budget,
                "Pass the generated tokens extra rounds may spend, e.g. token_budget=200_000, or None for no limit.",
                minimum=0,
            )
        if not isinstance(self.prior, (tuple, list)) or len(self.prior) != 2:
            raise ParameterTypeError(
                f"prior must be a pair (alpha, beta), got {self.prior!r}. Pass e.g. prior=(1, 1) "
                "(uniform) or prior=(0.5, 0.5) (Jeffreys)."
            )
        for name, value in zip(("prior alpha", "prior beta"), self.prior, strict=True):
            check_real(name, value, "Pass a positive pair, e.g. prior=(1, 1).", low=0.0, low_open=True)
        if not isinstance(self.extra, Mapping):
            raise ParameterTypeError(
                f"extra must be a dict of engine keywords, got {type(self.extra).__name__}. Pass "
                "e.g. extra={'repetition_penalty': 1.1}."
            )
        clash = sorted(set(self.extra) & {f.name for f in dataclasses.fields(self)})
        if clash:
            raise InvalidParameterError(
                f"extra holds {clash}, which SamplingConfig sets itself. Pass them as fields, "
                f"e.g. SamplingConfig({clash[0]}=...)."
            )
        from .backends import sampling_settings

        sampling_settings(self.engine_settings())  # max_new_tokens, temperature, top_p/top_k/min_p ranges
        return self

    def to_dict(self) -> dict[str, Any]:
        """The fields as JSON-able values."""
        out = dataclasses.asdict(self)
        out["prior"], out["extra"] = list(self.prior), dict(self.extra)
        return out


def as_sampling_config(sampling: Any) -> SamplingConfig:
    """``sampling`` as a :class:`SamplingConfig`: ``None`` gives the defaults, a preset name its preset, a dict its
    fields (unknown keys are refused, naming the fields), a config itself.

    Example:
        >>> as_sampling_config({"n": 2, "temperature": 0.7}).engine_settings()["temperature"]
        0.7
    """
    from ..errors import InvalidParameterError, ParameterTypeError

    if sampling is None:
        return SamplingConfig()
    if isinstance(sampling, SamplingConfig):
        return sampling
    if isinstance(sampling, str):
        return SamplingConfig.preset(sampling)
    if isinstance(sampling, Mapping):
        names = {f.name for f in dataclasses.fields(SamplingConfig)}
        unknown = sorted(set(sampling) - names)
        if unknown:
            raise InvalidParameterError(
                f"sampling holds unknown key(s) {unknown}; SamplingConfig has {sorted(names)}. Put engine keywords "
                f"under extra, e.g. sampling={{'extra': {{{unknown[0]!r}: ...}}}}, or fix the name."
            )
        return SamplingConfig(**dict(sampling))
    raise ParameterTypeError(
        f"sampling must be a SamplingConfig, a dict of its fields, a preset name or None, got "
        f"{type(sampling).__name__}. Pass e.g. sampling=SamplingConfig(n=8) or sampling='cpu'."
    )


@dataclass
class LabelColumns:
    """The names of the columns the labeller writes (defaults shown).

    ``pass_rate`` is ``n_correct / n_samples``; ``pass_rate_mean`` and ``pass_rate_sd`` are the mean and standard
    deviation of the Beta posterior (prior from :attr:`SamplingConfig.prior`); the failure kinds partition the
    samples that were not correct: ``n_truncated`` (cut off at ``max_new_tokens``), ``n_no_answer`` (ended, but the
    verifier found no answer in it; empty completions are here and also counted in ``n_empty``) and ``n_wrong``
    (an answer, not the reference). ``n_correct + n_wrong + n_no_answer + n_truncated == n_samples``.
    """

    pass_rate: str = "pass_rate"
    n_samples: str = "n_samples"
    n_correct: str = "n_correct"
    n_empty: str = "n_empty"
    pass_rate_mean: str = "pass_rate_mean"
    pass_rate_sd: str = "pass_rate_sd"
    n_wrong: str = "n_wrong"
    n_no_answer: str = "n_no_answer"
    n_truncated: str = "n_truncated"
    completions: str = "completions"
    rewards: str = "rewards"

    def names(self) -> list[str]:
        """Every column name, in field order."""
        return [getattr(self, f.name) for f in dataclasses.fields(self)]

    def validate(self) -> LabelColumns:
        """Names are non-empty strings and distinct."""
        from ..errors import InvalidParameterError

        names = self.names()
        bad = [f.name for f, v in zip(dataclasses.fields(self), names, strict=True) if not isinstance(v, str) or not v]
        if bad:
            raise InvalidParameterError(
                f"Column name(s) {bad} must be non-empty strings. Pass e.g. LabelColumns({bad[0]}={bad[0]!r})."
            )
        dupes = sorted({v for v in names if names.count(v) > 1})
        if dupes:
            raise InvalidParameterError(
                f"Column name(s) {dupes} are used twice in LabelColumns; give each output column its own name."
            )
        return self


def as_label_columns(columns: Any) -> LabelColumns:
    """``columns`` as :class:`LabelColumns`: ``None`` for the defaults, a dict of renamed fields, or the object
    (:func:`~hf_saerl.core.configs.as_config`)."""
    from ..core.configs import as_config

    return as_config(LabelColumns, columns, "columns")
