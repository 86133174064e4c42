"""Verifiable RL prompt pools from reasoning-gym, as ``datasets.Dataset`` rows the labeller and its verifier read.

Example:
    >>> from hf_saerl.rollouts.tasks import reasoning_gym_dataset
    >>> ds = reasoning_gym_dataset("basic_arithmetic", size=3, seed=0, max_terms=2, max_digits=1)
    >>> ds.column_names
    ['prompt', 'answer', 'metadata', 'source_dataset']
    >>> import json; json.loads(ds[0]["metadata"])["source_dataset"]
    'basic_arithmetic'
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import InvalidParameterError

__all__ = ["reasoning_gym_dataset"]


def reasoning_gym_dataset(name: str, size: int, seed: int = 0, *, prompt_column: str = "prompt", **config: Any) -> Any:
    """``size`` procedurally generated tasks of the reasoning-gym family ``name`` (offline, seeded) as a
    ``Dataset`` with ``prompt`` (the question), ``answer``, ``metadata`` (a JSON string: task families do not
    share one Arrow type) and ``source_dataset``. ``config`` sets the family's difficulty knobs (e.g.
    ``min_terms=``, ``max_digits=`` for ``basic_arithmetic``). Score completions with
    :class:`~hf_saerl.rollouts.verifiers.ReasoningGymVerifier` (its defaults read these columns).
    """
    import reasoning_gym
    from datasets import Dataset

    try:
        tasks = reasoning_gym.create_dataset(name, size=size, seed=seed, **config)
    except (ValueError, TypeError) as err:
        raise InvalidParameterError(
            f"reasoning-gym could not build {name!r} with size={size}, seed={seed}, config={config}: {err}. Check "
            "the name (reasoning_gym.factory.DATASETS) and the family's config fields."
        ) from err
    rows: dict[str, list[Any]] = {prompt_column: [], "answer": [], "metadata": [], "source_dataset": []}
    for entry in tasks:
        metadata = dict(entry.get("metadata") or {})
        rows[prompt_column].append(entry["question"])
        rows["answer"].append(str(entry["answer"]))
        rows["metadata"].append(json.dumps(metadata, default=str, sort_keys=True))
        rows["source_dataset"].append(metadata.get("source_dataset", name))
    return Dataset.from_dict(rows)
