"""Encoding settings as plain dataclasses that import nothing heavy: the encoder's output columns and token rules,
and the SAE trainer's defaults (which the command line reads without importing torch).

:class:`~hf_saerl.encoding.encoder.SAEEncoder` takes its headline knobs (``max_length``, ``pooling``, ``top_k``)
as keywords and groups the rest: ``columns=FeatureColumns(...)`` names what it writes, ``tokens=TokenPolicy(...)``
says which tokens of a text are read and pooled. Each is validated on construction, and each also takes a dict of
its fields. :meth:`SAEEncoder.config` records them flat (``indices_column``, ``on_empty``, ...), as it always has.

Example:
    >>> from hf_saerl.encoding.config import FeatureColumns, TokenPolicy
    >>> FeatureColumns(indices="ids", activations="acts").names()
    ['ids', 'sae_values', 'sae_n_tokens', 'sae_truncated', 'acts']
    >>> TokenPolicy(on_empty="zeros").to_config()["on_empty"]
    'zeros'
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..core import columns as C

__all__ = ["DEFAULT_SAE_TRAINING", "FeatureColumns", "TokenPolicy", "check_feature_options"]

#: SmolLM2-135M-Instruct, layer 15 of 30, on :func:`hf_saerl.demo.presets.champ_sae_texts` (measured on 2 CPU cores shared with other
#: jobs, load ~5.5): 46.5k tokens, 206 s collection + 167 s training, held-out explained variance 0.85,
#: L0 32, 0.6% dead latents. Unloaded, collection runs at ~700 tokens/s and training at ~1.5k/s.
DEFAULT_SAE_TRAINING: dict[str, Any] = {
    "d_sae": 1536,  # 2.67x the hidden size 576; wider SAEs train too slowly on 2 CPU cores
    "k": 32,
    "total_tokens": 250_000,
    "batch_size_tokens": 1024,
    "lr": 2e-3,
    "max_length": 256,
    "max_activation_tokens": 40_000,
    "threads": 2,
}


@dataclass(frozen=True)
class FeatureColumns:
    """The names of the columns :class:`~hf_saerl.encoding.encoder.SAEEncoder` writes (defaults shown).

    Attributes:
        indices: the kept latents' ids per row, ``List(int32)``, by value descending.
        values: their pooled values, ``List(float32)``.
        n_tokens: the tokens pooled per row, ``int32``.
        truncated: whether the text was cut to ``max_length``, ``bool``.
        activations: also write the raw hooked activations, pooled the same way, as this fixed-length float32
            column (``d_in`` wide) from the same forward pass: the dense baseline that SAE features are compared
            against (``baseline=`` of the estimators). ``None`` (default) writes no such column.

    Names must be non-empty strings, each used once (:class:`~hf_saerl.errors.InvalidParameterError` otherwise).

    Example:
        >>> FeatureColumns(activations="sae_activations").to_config()["activations_column"]
        'sae_activations'
        >>> FeatureColumns(values="sae_indices")
        Traceback (most recent call last):
        ...
        hf_saerl.errors.InvalidParameterError: Column name(s) ['sae_indices'] are used twice in FeatureColumns; give each output column its own name, e.g. FeatureColumns(values='my_values'), or leave the defaults.
    """

    indices: str = C.SAE_INDICES
    values: str = C.SAE_VALUES
    n_tokens: str = C.SAE_N_TOKENS
    truncated: str = C.SAE_TRUNCATED
    activations: str | None = None

    def __post_init__(self) -> None:
        from ..errors import InvalidParameterError, ParameterTypeError

        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if not (isinstance(value, str) and value) and not (value is None and f.name == "activations"):
                raise ParameterTypeError(
                    f"FeatureColumns.{f.name} must be a non-empty column name (str), got {value!r}. Pass a column "
                    f"name, e.g. FeatureColumns({f.name}='my_{f.name}'), or leave the default."
                )
        names = self.names()
        dupes = sorted({v for v in names if names.count(v) > 1})
        if dupes:
            later = [f.name for f in dataclasses.fields(self) if getattr(self, f.name) == dupes[0]][-1]
            raise InvalidParameterError(
                f"Column name(s) {dupes} are used twice in FeatureColumns; give each output column its own name, "
                f"e.g. FeatureColumns({later}='my_{later}'), or leave the defaults."
            )

    def names(self) -> list[str]:
        """The names of the columns written, in field order (``activations`` only when set)."""
        return [v for f in dataclasses.fields(self) if (v := getattr(self, f.name)) is not None]

    def to_config(self) -> dict[str, str | None]:
        """The names under the flat keys :meth:`SAEEncoder.config` records: ``indices_column``, ``values_column``,
        ``n_tokens_column``, ``truncated_column``, ``activations_column``."""
        return {f"{f.name}_column": getattr(self, f.name) for f in dataclasses.fields(self)}


@dataclass(frozen=True)
class TokenPolicy:
    """Which tokens of each text :class:`~hf_saerl.encoding.encoder.SAEEncoder` reads and pools (defaults shown).

    Attributes:
        on_overlong: ``"truncate"`` cuts texts longer than ``max_length`` (counted in the ``truncated`` column);
            ``"error"`` refuses them.
        on_empty: ``"error"`` refuses empty texts (``None`` or blank); ``"zeros"`` gives them no features.
        exclude_bos: leave out position 0 when it holds the tokenizer's BOS token (its norm is huge).
        pool_start: never pool positions before this one. ``None`` follows the SAE's own training
            (:func:`~hf_saerl.encoding.saes.sae_pool_start`): 1 for SAEs trained without position 0, such as those
            :func:`~hf_saerl.encoding.sae_training.train_sae` makes, else 0.

    Example:
        >>> TokenPolicy(on_overlong="error", pool_start=1)
        TokenPolicy(on_overlong='error', on_empty='error', exclude_bos=True, pool_start=1)
        >>> TokenPolicy(on_empty="skip")
        Traceback (most recent call last):
        ...
        hf_saerl.errors.InvalidParameterError: on_empty must be 'error' or 'zeros'; got 'skip'. Pass TokenPolicy(on_empty='zeros') to give empty texts no features, or filter them out first.
    """

    on_overlong: str = "truncate"
    on_empty: str = "error"
    exclude_bos: bool = True
    pool_start: int | None = None

    def __post_init__(self) -> None:
        from ..core.validation import check_bool, check_choice, check_integer

        check_choice(
            "on_overlong",
            self.on_overlong,
            ("truncate", "error"),
            "Pass TokenPolicy(on_overlong='error') to refuse texts over max_length, or raise max_length=.",
        )
        check_choice(
            "on_empty",
            self.on_empty,
            ("error", "zeros"),
            "Pass TokenPolicy(on_empty='zeros') to give empty texts no features, or filter them out first.",
        )
        check_bool(
            "exclude_bos", self.exclude_bos, "Pass TokenPolicy(exclude_bos=True) or TokenPolicy(exclude_bos=False)."
        )
        if self.pool_start is not None:
            check_integer(
                "pool_start",
                self.pool_start,
                "Pass the first token position to pool, e.g. TokenPolicy(pool_start=1), or pool_start=None to "
                "follow the SAE's own training positions.",
                minimum=0,
            )

    def to_config(self) -> dict[str, Any]:
        """The fields under the flat keys :meth:`SAEEncoder.config` records (the field names)."""
        return dataclasses.asdict(self)


def check_feature_options(*, max_length: Any, pooling: Any, top_k: Any, token_budget: Any) -> None:
    """Check the encoder's headline options; raise :class:`~hf_saerl.errors.InvalidParameterError` naming the option,
    the value and the fix.

    Example:
        >>> check_feature_options(max_length=512, pooling="mean", top_k=None, token_budget=4096)
        >>> check_feature_options(max_length=1, pooling="mean", top_k=64, token_budget=4096)
        Traceback (most recent call last):
        ...
        hf_saerl.errors.InvalidParameterError: max_length must be at least 2 tokens, got 1; the default is 512.
    """
    from ..core.validation import check_integer
    from ..errors import InvalidParameterError

    poolings = ("mean", "max", "sum", "last", "freq")  # hf_saerl.encoding.pooling.POOLINGS, without torch
    if pooling not in poolings:
        raise InvalidParameterError(f"Unknown pooling {pooling!r}; choose one of {poolings}.")
    if top_k is not None:
        check_integer(
            "top_k",
            top_k,
            "Pass a whole number of latents to keep per example, e.g. top_k=64, or "
            "top_k=None to keep every non-zero latent.",
        )
        if top_k < 1:
            raise InvalidParameterError(f"top_k must be a positive int or None (keep all non-zeros), got {top_k}.")
    for name, value, example in (("max_length", max_length, 512), ("token_budget", token_budget, 4096)):
        check_integer(name, value, f"Pass a whole number of tokens, e.g. {name}={example}.")
    if max_length < 2:
        raise InvalidParameterError(f"max_length must be at least 2 tokens, got {max_length}; the default is 512.")
    if token_budget < 1:
        raise InvalidParameterError(
            f"token_budget must be >= 1 (padded tokens per micro-batch), got {token_budget}; the default is 4096."
        )


def grouped_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Flat options, as :meth:`SAEEncoder.config` records them, as ``SAEEncoder`` arguments: the column names go
    into ``columns`` (a :class:`FeatureColumns`) and the token rules into ``tokens`` (a :class:`TokenPolicy`), on
    top of a ``columns`` / ``tokens`` entry when there is one; every other key is kept as is.

    Example:
        >>> grouped = grouped_options({"top_k": 8, "indices_column": "ids", "on_empty": "zeros"})
        >>> grouped["top_k"], grouped["columns"].indices, grouped["tokens"].on_empty
        (8, 'ids', 'zeros')
    """
    from ..core.configs import as_config

    out = {k: v for k, v in options.items() if k not in MOVED}
    groups: tuple[tuple[str, type[Any]], ...] = (("columns", FeatureColumns), ("tokens", TokenPolicy))
    for param, cls in groups:
        flat = {field: options[k] for k, (p, _, field) in MOVED.items() if p == param and k in options}
        out[param] = dataclasses.replace(as_config(cls, options.get(param), param), **flat)
    return out


#: Keyword arguments of ``SAEEncoder`` that moved into a config object: old keyword -> (parameter, class, field).
MOVED: dict[str, tuple[str, type, str]] = {
    **{f"{f.name}_column": ("columns", FeatureColumns, f.name) for f in dataclasses.fields(FeatureColumns)},
    **{f.name: ("tokens", TokenPolicy, f.name) for f in dataclasses.fields(TokenPolicy)},
}
