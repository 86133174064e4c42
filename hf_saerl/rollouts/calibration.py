"""Pool calibration: label a few prompts per reasoning-gym task config and find the configs where the policy has graded success.

An RL pool (and SAERL's difficulty proxy, and every learnability selector) only carries signal where the policy
sometimes solves a prompt and sometimes does not. :func:`calibrate_pool` runs the pilot that checks this before
any training: ``n_prompts_per_config`` seeded prompts of each task config, each sampled ``n`` times by a
:class:`~hf_saerl.rollouts.labeller.RolloutLabeller` and scored by reasoning-gym's own scorer, summarised per
config (mean pass rate, share of prompts never solved, share in the learnable band, tokens, time). Configs whose
mean lies in the band and whose prompts spread into it are returned as *graded*.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InvalidParameterError, ParameterTypeError
from .backends import derive_seed

__all__ = [
    "LEARNABLE_BAND",
    "PILOT_CONFIGS",
    "ConfigCalibration",
    "PoolCalibration",
    "TaskConfig",
    "calibrate_pool",
    "parse_task_config",
]

#: The pass-rate band where a GRPO group of a few samples carries gradient most of the time.
LEARNABLE_BAND = (0.1, 0.9)


@dataclass(frozen=True)
class TaskConfig:
    """One task config of a pool: a reasoning-gym ``family`` with its difficulty knobs ``config``, under a
    readable ``name`` (the table's row label; default: the family and its knobs).

    Example:
        >>> TaskConfig("gcd", {"max_value": 20}).name
        'gcd:max_value=20'
    """

    family: str
    config: Mapping[str, Any] = field(default_factory=dict)
    name: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.family, str) or not self.family:
            raise ParameterTypeError(
                f"A task config's family must be a reasoning-gym dataset name, got "
                f"{self.family!r}. Pass e.g. TaskConfig('gcd'), or see reasoning_gym.factory.DATASETS."
            )
        object.__setattr__(self, "config", dict(self.config))
        if not self.name:
            knobs = ",".join(f"{k}={_format_value(v)}" for k, v in sorted(self.config.items()))
            object.__setattr__(self, "name", f"{self.family}:{knobs}" if knobs else self.family)

    def to_dict(self) -> dict[str, Any]:
        """``{"name", "family", "config"}``, JSON-able."""
        return {"name": self.name, "family": self.family, "config": dict(self.config)}


def _format_value(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "|".join(map(str, value))
    return str(value)


def _parse_value(text: str) -> Any:
    if "|" in text:
        return [_parse_value(part) for part in text.split("|")]
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_task_config(spec: Any) -> TaskConfig:
    """A :class:`TaskConfig` from a spec: a ``TaskConfig``; a string ``"family"`` or
    ``"family:knob=value,knob=value"`` (values read as JSON where they parse, ``a|b`` as a list); a mapping with
    ``family`` (and ``config``, ``name``); or a ``(name, family, config)`` tuple, as the demo's presets hold them.

    Example:
        >>> parse_task_config("basic_arithmetic:max_terms=2,operators=+|-").config
        {'max_terms': 2, 'operators': ['+', '-']}
        >>> parse_task_config(("gcd <= 20", "gcd", {"max_value": 20})).name
        'gcd <= 20'
    """
    if isinstance(spec, TaskConfig):
        return spec
    if isinstance(spec, str):
        family, _, knobs = spec.partition(":")
        config: dict[str, Any] = {}
        for item in filter(None, (k.strip() for k in knobs.split(","))):
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise InvalidParameterError(
                    f"Task config {spec!r}: {item!r} is not knob=value. Write e.g. "
                    "'gcd:max_value=20', or pass a TaskConfig('gcd', {'max_value': 20})."
                )
            config[key.strip()] = _parse_value(value.strip())
        return TaskConfig(family.strip(), config)
    if isinstance(spec, Mapping):
        if "family" not in spec:
            raise InvalidParameterError(
                f"Task config {dict(spec)!r} has no 'family'. Pass e.g. "
                "{'family': 'gcd', 'config': {'max_value': 20}}, or a string 'gcd:max_value=20'."
            )
        return TaskConfig(spec["family"], spec.get("config") or {}, spec.get("name") or "")
    if isinstance(spec, (tuple, list)) and len(spec) == 3:
        name, family, config = spec
        return TaskConfig(family, config or {}, name)
    raise ParameterTypeError(
        f"Cannot read a task config from {spec!r} ({type(spec).__name__}). Pass a string "
        "'family:knob=value', a mapping with 'family', a (name, family, config) tuple, or a TaskConfig."
    )


#: The configs the SmolLM2-135M-Instruct pilot tried (``docs/results/calibration``): DESIGN.md's candidates plus
#: easier settings of families that score 0 at their defaults. ``hf-saerl calibrate --preset pilot`` runs them.
PILOT_CONFIGS: tuple[TaskConfig, ...] = (
    TaskConfig("gcd", {"min_value": 1, "max_value": 20}, "gcd <= 20"),
    TaskConfig("products", {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1}, "product 1-digit"),
    TaskConfig("products", {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 2}, "product 1-2-digit"),
    TaskConfig("chain_sum", {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1}, "sum 2x1-digit"),
    TaskConfig("chain_sum", {"min_terms": 2, "max_terms": 2, "min_digits": 2, "max_digits": 2}, "sum 2x2-digit"),
    TaskConfig(
        "basic_arithmetic",
        {
            "min_terms": 2,
            "max_terms": 2,
            "min_digits": 1,
            "max_digits": 1,
            "operators": ["+", "-"],
            "allow_parentheses": False,
            "allow_negation": False,
        },
        "arithmetic 2x1-digit +-",
    ),
    TaskConfig(
        "basic_arithmetic",
        {
            "min_terms": 2,
            "max_terms": 2,
            "min_digits": 1,
            "max_digits": 1,
            "operators": ["+"],
            "allow_parentheses": False,
            "allow_negation": False,
        },
        "arithmetic 2x1-digit +",
    ),
    TaskConfig("lcm", {"min_value": 1, "max_value": 12}, "lcm <= 12"),
    TaskConfig("aiw", {"max_entities": 3}, "aiw <= 3 entities"),
    TaskConfig("letter_counting", {"min_words": 1, "max_words": 3}, "letter count 1-3 words"),
    TaskConfig(
        "leg_counting", {"min_animals": 1, "max_animals": 2, "min_instances": 1, "max_instances": 3}, "legs 1-2 animals"
    ),
    TaskConfig("coin_flip", {"min_trials": 3, "max_trials": 5}, "coin flip 3-5"),
    TaskConfig("count_bits", {"min_n": 1, "max_n": 16}, "bits of n <= 16"),
    TaskConfig("prime_factorization", {"min_value": 2, "max_value": 30}, "factorise <= 30"),
    TaskConfig(
        "simple_equations",
        {
            "min_terms": 2,
            "max_terms": 2,
            "min_value": 1,
            "max_value": 10,
            "operators": ["+", "-"],
            "operators_weights": [0.5, 0.5],
        },
        "equation 2 terms <= 10",
    ),
    TaskConfig("spell_backward", {"min_word_len": 3, "max_word_len": 4}, "spell backward 3-4"),
    TaskConfig("word_sequence_reversal", {"min_words": 3, "max_words": 3}, "reverse 3 words"),
)


@dataclass
class ConfigCalibration:
    """The pilot's measurements for one task config (one row of the table).

    ``pass_rates`` holds each prompt's ``n_correct / n_samples``; ``share_never`` / ``share_always`` the share of
    prompts solved in none / all of their samples; ``share_in_band`` the share with a pass rate in the band
    (inclusive); ``tokens`` the completion tokens generated (``None`` without a tokenizer) and
    ``share_truncated`` the share of completions whose text re-tokenizes to at least ``max_new_tokens`` tokens
    (an answer probably cut off; re-tokenizing decoded text can differ slightly from the generated count).
    """

    task: TaskConfig
    n_prompts: int
    n_samples: int
    mean_pass_rate: float
    share_never: float
    share_always: float
    share_in_band: float
    share_empty: float
    share_truncated: float | None
    tokens: int | None
    seconds: float
    graded: bool
    pass_rates: list[float]
    rows: list[dict[str, Any]] = field(repr=False)

    def to_dict(self, rows: bool = False) -> dict[str, Any]:
        """The row as JSON-able values (with each prompt's row when ``rows=True``)."""
        out = {**self.task.to_dict(), **{k: v for k, v in asdict(self).items() if k not in ("task", "rows")}}
        if rows:
            out["rows"] = self.rows
        return out


@dataclass
class PoolCalibration:
    """What :func:`calibrate_pool` measured: one :class:`ConfigCalibration` per task config, the settings, and
    the configs with graded success."""

    configs: list[ConfigCalibration]
    settings: dict[str, Any]

    @property
    def graded(self) -> list[TaskConfig]:
        """The task configs with graded success (see :func:`calibrate_pool`), in the order they were given."""
        return [c.task for c in self.configs if c.graded]

    def rows(self) -> list[dict[str, Any]]:
        """Every labelled prompt: ``prompt``, ``answer``, ``family``, ``config``, ``task``, ``k``, ``n_correct``,
        ``pass_rate`` (and ``metadata``)."""
        return [row for c in self.configs for row in c.rows]

    def to_dict(self, rows: bool = True) -> dict[str, Any]:
        """JSON-able: settings, the per-config table, the graded configs' names (and every prompt's row)."""
        return {
            "settings": self.settings,
            "configs": [c.to_dict(rows=rows) for c in self.configs],
            "graded": [t.name for t in self.graded],
        }

    def to_markdown(self) -> str:
        """The per-config table as Markdown."""
        lines = [
            "| config | family | prompts x samples | mean pass rate | never solved | in band | always solved "
            "| truncated | tokens | seconds | graded |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for c in self.configs:
            truncated = "n/a" if c.share_truncated is None else f"{c.share_truncated:.0%}"
            lines.append(
                f"| {c.task.name} | {c.task.family} | {c.n_prompts} x {c.n_samples} | {c.mean_pass_rate:.3f} "
                f"| {c.share_never:.0%} | {c.share_in_band:.0%} | {c.share_always:.0%} | {truncated} "
                f"| {c.tokens if c.tokens is not None else 'n/a'} | {c.seconds:.1f} | "
                f"{'yes' if c.graded else 'no'} |"
            )
        return "\n".join(lines)

    def save(self, folder: str | os.PathLike) -> Path:
        """Write ``calibration.json`` (settings, table, every prompt's row) and ``calibration.md`` into
        ``folder``; returns the JSON's path."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "calibration.json"
        path.write_text(json.dumps(self.to_dict(), indent=1, default=str) + "\n")
        (folder / "calibration.md").write_text(self.to_markdown() + "\n")
        return path


def _labeller(policy: Any, options: Mapping[str, Any]) -> Any:
    from .labeller import RolloutLabeller
    from .verifiers import ReasoningGymVerifier

    if isinstance(policy, RolloutLabeller):
        if options:
            raise InvalidParameterError(
                f"calibrate_pool got a RolloutLabeller and labeller_options {sorted(options)}; the labeller already "
                "holds its settings. Set them on the labeller, or pass the policy itself with labeller_options=."
            )
        return policy
    import dataclasses

    from .config import SamplingConfig

    sampling_keys = {f.name for f in dataclasses.fields(SamplingConfig)}
    sampling = {k: v for k, v in options.items() if k in sampling_keys}
    kwargs = {k: v for k, v in options.items() if k not in sampling_keys}
    kwargs = {"verifier": ReasoningGymVerifier(), "progress": False, **kwargs, "keep_completions": True}
    return RolloutLabeller(policy, sampling=sampling, **kwargs)


def _check_band(band: Sequence[float]) -> tuple[float, float]:
    try:
        low, high = (float(b) for b in band)
    except (TypeError, ValueError) as err:
        raise InvalidParameterError(
            f"band must be two pass rates (low, high), got {band!r}. Pass e.g. band=(0.1, 0.9)."
        ) from err
    if not 0.0 <= low < high <= 1.0:
        raise InvalidParameterError(f"band must satisfy 0 <= low < high <= 1, got {band!r}. Pass e.g. band=(0.1, 0.9).")
    return low, high


def calibrate_pool(
    policy: Any,
    configs: Iterable[Any],
    n_prompts_per_config: int = 8,
    *,
    seed: int = 0,
    band: Sequence[float] = LEARNABLE_BAND,
    min_share_in_band: float = 0.25,
    labeller_options: Mapping[str, Any] | None = None,
    on_config: Callable[[ConfigCalibration], None] | None = None,
) -> PoolCalibration:
    """Label ``n_prompts_per_config`` seeded prompts of each reasoning-gym task config with the policy's own
    rollouts, and return the per-config table and the configs with graded success.

    Args:
        policy: a :class:`~hf_saerl.rollouts.labeller.RolloutLabeller` (its verifier must score reasoning-gym
            rows, e.g. :class:`~hf_saerl.rollouts.verifiers.ReasoningGymVerifier`, and it must keep completions
            for the token and truncation counts), or a policy the labeller accepts (``"embedded"``, a Hub id, a
            loaded model), for which one is built with ``ReasoningGymVerifier()`` and ``labeller_options`` (e.g.
            ``{"n": 6, "max_new_tokens": 32, "temperature": 0.7, "instruction": "..."}``).
        configs: task configs, each anything :func:`parse_task_config` reads (``"gcd:max_value=20"``, a
            :class:`TaskConfig`, a ``(name, family, config)`` tuple).
        n_prompts_per_config: prompts generated and labelled per config.
        seed: reasoning-gym's seed for a config's prompts is derived from ``(seed, config name)``, so a config's
            prompts do not depend on which other configs are calibrated, or in which order.
        band: the learnable band of pass rates (inclusive).
        min_share_in_band: a config is *graded* when its mean pass rate lies in ``band`` and at least this share
            of its prompts has a pass rate in ``band`` (the policy solves some prompts sometimes, not all or none).
        on_config: called with each config's :class:`ConfigCalibration` as soon as it is measured (to save
            partial results of a long run).

    Example:
        >>> from hf_saerl.rollouts import RolloutLabeller, ReasoningGymVerifier
        >>> class Half:  # a stand-in policy: its first sample answers 0, its second the gcd itself
        ...     def generate(self, prompts, n, sampling, seeds=None):
        ...         import math, re
        ...         out = []
        ...         for p in prompts:
        ...             a, b = map(int, re.findall(r"\\d+", p.split("of")[-1])[:2])
        ...             out.append(["0", str(math.gcd(a, b))][:n])
        ...         return out
        >>> labeller = RolloutLabeller(backend=Half(), verifier=ReasoningGymVerifier(), sampling={"n": 2}, instruction=None,
        ...                            keep_completions=True, progress=False)
        >>> result = calibrate_pool(labeller, ["gcd:max_value=20"], n_prompts_per_config=4)
        >>> row = result.configs[0]
        >>> row.mean_pass_rate, row.share_in_band, [t.name for t in result.graded]
        (0.5, 1.0, ['gcd:max_value=20'])
    """
    from .tasks import reasoning_gym_dataset

    tasks = [parse_task_config(c) for c in configs]
    if not tasks:
        raise InvalidParameterError(
            "calibrate_pool got no task configs. Pass e.g. ['gcd:max_value=20', 'products'], or PILOT_CONFIGS."
        )
    names = [t.name for t in tasks]
    if len(set(names)) != len(names):
        duplicates = sorted({n for n in names if names.count(n) > 1})
        raise InvalidParameterError(
            f"Task config names must be unique, got {duplicates} more than once. Name them "
            "apart (TaskConfig(..., name=...)) or drop the repeats."
        )
    if not isinstance(n_prompts_per_config, int) or isinstance(n_prompts_per_config, bool) or n_prompts_per_config < 1:
        raise InvalidParameterError(
            f"n_prompts_per_config must be a positive int, got {n_prompts_per_config!r}. Pass e.g. 8."
        )
    low, high = _check_band(band)
    if not 0.0 <= float(min_share_in_band) <= 1.0:
        raise InvalidParameterError(f"min_share_in_band must be in [0, 1], got {min_share_in_band!r}. Pass e.g. 0.25.")
    labeller = _labeller(policy, labeller_options or {})
    if not labeller.keep_completions:
        raise InvalidParameterError(
            "calibrate_pool needs the labeller's completions to count tokens and cut-off "
            "answers. Build it with keep_completions=True, or pass the policy and "
            "labeller_options= instead."
        )
    max_new_tokens = labeller.sampling.max_new_tokens
    load_start = _load_average()
    results = []
    for task in tasks:
        task_seed = derive_seed(seed, task.name) % (2**31)
        data = reasoning_gym_dataset(task.family, n_prompts_per_config, seed=task_seed, **task.config)
        start = time.perf_counter()
        labelled = labeller.map(data, desc=f"calibrating {task.name}")
        seconds = time.perf_counter() - start
        result = _summarise(task, labelled, labeller, max_new_tokens, seconds, (low, high), float(min_share_in_band))
        results.append(result)
        if on_config is not None:
            on_config(result)
    settings = {
        "labeller": labeller.config(),
        "n_prompts_per_config": n_prompts_per_config,
        "seed": seed,
        "band": [low, high],
        "min_share_in_band": float(min_share_in_band),
        "tasks": [t.to_dict() for t in tasks],
        "load_average": {"start": load_start, "end": _load_average()},
        "cpu_count": os.cpu_count(),
    }
    return PoolCalibration(results, settings)


def _load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover - platforms without a load average
        return None


def _summarise(
    task: TaskConfig,
    labelled: Any,
    labeller: Any,
    max_new_tokens: Any,
    seconds: float,
    band: tuple[float, float],
    min_share: float,
) -> ConfigCalibration:
    cols = labelled[:]
    n_correct = [int(c) for c in cols[labeller.columns.n_correct]]
    n_samples = [int(s) for s in cols[labeller.columns.n_samples]]
    rates = [c / s for c, s in zip(n_correct, n_samples, strict=True)]
    completions = cols[labeller.columns.completions]
    flat = [c for row in completions for c in row]
    tokenizer = labeller.tokenizer
    tokens: int | None = None
    truncated: float | None = None
    if tokenizer is not None and flat:
        lengths = [len(ids) for ids in tokenizer(flat, add_special_tokens=False)["input_ids"]]
        tokens = int(sum(lengths))
        if isinstance(max_new_tokens, int):
            truncated = sum(n >= max_new_tokens for n in lengths) / len(lengths)
    n = len(rates)
    mean = sum(rates) / n
    in_band = sum(band[0] <= r <= band[1] for r in rates) / n
    rows = [
        {
            "task": task.name,
            "family": task.family,
            "config": dict(task.config),
            "prompt": cols["prompt"][i],
            "answer": cols["answer"][i],
            "metadata": cols["metadata"][i],
            "k": n_samples[i],
            "n_correct": n_correct[i],
            "pass_rate": rates[i],
        }
        for i in range(n)
    ]
    return ConfigCalibration(
        task=task,
        n_prompts=n,
        n_samples=max(n_samples),
        mean_pass_rate=mean,
        share_never=sum(c == 0 for c in n_correct) / n,
        share_always=sum(c == s for c, s in zip(n_correct, n_samples, strict=True)) / n,
        share_in_band=in_band,
        share_empty=sum(not c.strip() for c in flat) / max(len(flat), 1),
        share_truncated=truncated,
        tokens=tokens,
        seconds=round(seconds, 3),
        graded=bool(band[0] <= mean <= band[1] and in_band >= min_share and not math.isnan(mean)),
        pass_rates=rates,
        rows=rows,
    )
