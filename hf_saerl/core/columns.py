"""The columns hf_saerl adds (the contract between its steps), what each means, and reading columns from data.

Every transform takes its column names as parameters; the constants here are the defaults, and
:data:`COLUMN_MEANINGS` is the one description of each, used by model and dataset cards.

Example:
    >>> from hf_saerl.core.columns import read_column
    >>> read_column({"difficulty": [0.1, 0.9]}, "difficulty", "difficulty scores")
    [0.1, 0.9]
    >>> read_column({"q": [1]}, "difficulty", "difficulty scores")
    Traceback (most recent call last):
    ...
    hf_saerl.errors.MissingColumnError: Missing column 'difficulty' holding the difficulty scores; found ['q']. Pass the right column name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import MissingColumnError

SAE_INDICES = "sae_indices"  #: list<int32>, top-k pooled latent ids, by value descending
SAE_VALUES = "sae_values"  #: list<float32>, their pooled activations
SAE_N_TOKENS = "sae_n_tokens"  #: int32, tokens that were pooled (after truncation)
SAE_TRUNCATED = "sae_truncated"  #: bool, whether the text was cut to max_length tokens
QUALITY = "quality"  #: float32, probe score, higher is better
DIFFICULTY = "difficulty"  #: float32 in [0, 1], 0 easy ... 1 hard
PASS_RATE_PRED = "pass_rate_pred"  #: float32, raw predicted pass rate (difficulty probe on pass rates)
CLUSTER_ID = "cluster_id"  #: int32, nearest centroid
CLUSTER_DISTANCE = "cluster_distance"  #: float32, distance to it
PASS_RATE = "pass_rate"  #: float32, share of the policy's sampled completions the verifier accepted
N_SAMPLES = "n_samples"  #: int32, completions sampled for the row
N_CORRECT = "n_correct"  #: int32, completions whose reward reached the verifier's threshold
N_EMPTY = "n_empty"  #: int32, completions that were empty (scored 0, not passed to the verifier)
COMPLETIONS = "completions"  #: list<string>, the sampled completions (kept on request only)
REWARDS = "rewards"  #: list<float32>, their rewards (NaN: the verifier could not score it)

#: What each hf_saerl column holds, keyed by its default name.
COLUMN_MEANINGS: dict[str, str] = {
    SAE_INDICES: "ids of the top-k pooled SAE latents of the example, by value, descending",
    SAE_VALUES: "their pooled activations",
    SAE_N_TOKENS: "tokens that were pooled (after truncation)",
    SAE_TRUNCATED: "whether the text was cut to max_length tokens",
    QUALITY: "quality probe score; higher is better (a probability for a classifier probe)",
    DIFFICULTY: "predicted difficulty in [0, 1] (0 easy … 1 hard)",
    PASS_RATE_PRED: "predicted pass rate in [0, 1]",
    CLUSTER_ID: "nearest SAE-space centroid",
    CLUSTER_DISTANCE: "distance to that centroid",
    PASS_RATE: "share of the policy's sampled completions that the verifier accepted",
    N_SAMPLES: "completions sampled from the policy for the row",
    N_CORRECT: "completions whose reward reached the verifier's threshold",
    N_EMPTY: "completions that were empty (scored 0)",
    COMPLETIONS: "the sampled completions",
    REWARDS: "their rewards (NaN: the verifier could not score it)",
}


def column_names(data: Any) -> list[str] | None:
    """The column names of a ``datasets.Dataset`` / ``IterableDataset``, a pandas frame or a batch dict; ``None``
    for anything without columns (a matrix, a list)."""
    names = getattr(data, "column_names", None)
    if names is not None and not isinstance(names, Mapping):
        return list(names)
    if isinstance(data, Mapping):
        return list(data.keys())
    return None


def require_columns(
    data: Any, columns: list[str] | tuple[str, ...], what: str, fix: str = "Pass the right column name."
) -> None:
    """Raise :class:`~hf_saerl.errors.MissingColumnError` naming the missing ``columns`` (holding ``what``), the
    columns found and ``fix``."""
    names = column_names(data)
    missing = [c for c in columns if names is None or c not in names]
    if missing:
        found = sorted(names) if names is not None else f"a {type(data).__name__}, not a dataset"
        label = f"column {missing[0]!r}" if len(missing) == 1 else f"columns {missing}"
        raise MissingColumnError(f"Missing {label} holding the {what}; found {found}. {fix}")


def read_column(data: Any, column: str, what: str, fix: str = "Pass the right column name.") -> list[Any]:
    """The values of ``column`` as a list, or a :class:`~hf_saerl.errors.MissingColumnError` listing the columns
    found. A ``datasets.Dataset`` column is read through Arrow, without building Python rows."""
    require_columns(data, [column], what, fix)
    if hasattr(data, "with_format") and hasattr(data, "select_columns") and hasattr(data, "num_rows"):
        return data.with_format("arrow", columns=[column])[:][column].to_pylist()
    values = data[column]
    return values.tolist() if hasattr(values, "tolist") else list(values)
