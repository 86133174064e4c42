"""Curated datasets on the Hub: :func:`push_curated` uploads one with the ``DatasetCard`` :func:`build_dataset_card`
writes, recording the pipeline repo, its parameters, the columns and the filtering.

The card is built by a pure function, so what it records is tested without the Hub. Every Hub call goes
through ``huggingface_hub.HfApi`` (tests replace its methods with local stand-ins); the bundle I/O helpers
``download_folder`` / ``upload_folder`` live in :mod:`hf_saerl.core.hub` and are re-exported here for the old
import path ``hf_saerl.hub``.

Example:
    >>> from hf_saerl.pipeline.curated import build_dataset_card
    >>> card = build_dataset_card(repo_id="me/curated", pipeline_repo="me/pipeline",
    ...                           columns={"text": "string", "quality": "float32"},
    ...                           filtering={"quality_threshold": 0.5, "n_rows": 10, "n_kept": 7, "n_dropped": 3})
    >>> "me/pipeline" in card.text and "quality >= 0.5" in card.text
    True
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from huggingface_hub import DatasetCard, DatasetCardData, HfApi

from ..core import columns as C
from ..core.columns import COLUMN_MEANINGS
from ..core.hub import download_folder, is_repo_id, upload_folder
from ..core.serialization import jsonable
from ..errors import InvalidParameterError

logger = logging.getLogger(__name__)

__all__ = [
    "COLUMN_MEANINGS",
    "DATASET_CARD_TEMPLATE",
    "build_dataset_card",
    "download_folder",
    "push_curated",
    "upload_folder",
]

#: The tags every curated dataset's card carries.
DATASET_CARD_TAGS = ["hf_saerl", "sparse-autoencoder", "data-curation", "sae-features"]

#: The Jinja template of a curated dataset's card (``huggingface_hub.DatasetCard.from_template``);
#: :func:`build_dataset_card` computes its variables.
DATASET_CARD_TEMPLATE = """\
---
{{ card_data }}
---

# {{ pretty_name }}

Rows augmented (and possibly filtered) by an [hf_saerl](https://github.com/hf-saerl/hf_saerl) pipeline, which \
reads an LLM's internals through a sparse autoencoder (SAE) to score post-training data.

{% for line in facts -%}
- {{ line }}
{% endfor %}
## Filtering

{{ filtering_text }}

## Columns

| column | type | meaning |
|---|---|---|
{% for name, dtype, meaning in columns -%}
| `{{ name }}` | {{ dtype }} | {{ meaning }} |
{% endfor %}
## Usage

```python
from datasets import load_dataset

ds = load_dataset("{{ repo_id }}", split="train")
```
{% if pipeline_repo %}
Apply the same pipeline to new data:

```python
from hf_saerl import SAERLPipeline

pipeline = SAERLPipeline.from_pretrained("{{ pipeline_repo }}")
new = pipeline(new_dataset)
```
{% endif %}
## hf_saerl record

```json
{{ record }}
```

"""  # Jinja drops one trailing newline: the card ends with one

# pipeline config "columns" role -> the default column name whose meaning applies
_ROLE_DEFAULTS = {
    "indices": C.SAE_INDICES,
    "values": C.SAE_VALUES,
    "n_tokens": C.SAE_N_TOKENS,
    "truncated": C.SAE_TRUNCATED,
    "quality": C.QUALITY,
    "difficulty": C.DIFFICULTY,
    "pass_rate": C.PASS_RATE_PRED,
    "cluster_id": C.CLUSTER_ID,
    "cluster_distance": C.CLUSTER_DISTANCE,
}


def build_dataset_card(
    *,
    repo_id: str,
    columns: Mapping[str, str],
    pipeline_repo: str | None = None,
    pipeline_config: Mapping[str, Any] | None = None,
    filtering: Mapping[str, Any] | None = None,
    source: str | None = None,
    license: str | None = None,
    pretty_name: str | None = None,
) -> DatasetCard:
    """The card of a dataset curated by an :class:`~hf_saerl.pipeline.pipeline.SAERLPipeline` (pure, no I/O).

    Args:
        repo_id: the dataset repo the card belongs to (used in the usage snippet).
        columns: column name -> type (e.g. ``{k: str(v) for k, v in dataset.features.items()}``).
        pipeline_repo: where the pipeline that produced the columns lives (Hub id or folder).
        pipeline_config: the pipeline's ``config()`` (model, SAE, hook, pooling, top-k, template, ...).
        filtering: what was filtered, e.g. ``{"quality_threshold": 0.5, "n_rows": 100, "n_kept": 80,
            "n_dropped": 20}`` (the stats ``pipeline(dataset, return_stats=True)`` returns), or None.
        source: the dataset the rows came from.
        license, pretty_name: card metadata.

    Example:
        >>> card = build_dataset_card(repo_id="me/x", columns={"cluster_id": "int32"})
        >>> "cluster_id" in card.text
        True
    """
    config = dict(pipeline_config or {})
    data = DatasetCardData(
        license=license,
        pretty_name=pretty_name or f"{repo_id.split('/')[-1]} (curated with hf_saerl)",
        source_datasets=[source] if source else None,
        tags=list(DATASET_CARD_TAGS),
    )
    meanings = _column_meanings(config)
    record = {
        "pipeline_repo": pipeline_repo,
        "pipeline": config or None,
        "filtering": dict(filtering) if filtering else None,
        "source": source,
    }
    return DatasetCard.from_template(
        data,
        template_str=DATASET_CARD_TEMPLATE,
        pretty_name=data.pretty_name,
        repo_id=repo_id,
        facts=_facts(source, pipeline_repo, config),
        filtering_text=_describe_filtering(filtering),
        columns=[(name, dtype, meanings.get(name, "from the source dataset")) for name, dtype in columns.items()],
        pipeline_repo=pipeline_repo,
        record=json.dumps(jsonable(record), indent=2, sort_keys=True),
    )


def push_curated(
    dataset: Any,
    repo_id: str,
    *,
    pipeline: Any = None,
    pipeline_repo: str | None = None,
    filtering: Mapping[str, Any] | None = None,
    source: str | None = None,
    private: bool | None = None,
    token: str | bool | None = None,
    license: str | None = None,
    commit_message: str = "Upload curated dataset with hf_saerl",
) -> DatasetCard:
    """Push a curated dataset (``Dataset`` or ``DatasetDict``) with a card recording how it was made.

    The card is uploaded first and ``dataset.push_to_hub`` then merges its ``dataset_info`` and
    ``configs`` into it (``datasets`` keeps an existing card's body), so the result is one card with
    both. ``pipeline`` (an :class:`~hf_saerl.pipeline.pipeline.SAERLPipeline`) supplies the recorded parameters;
    ``pipeline_repo`` says where it can be loaded from.

    Returns:
        The :class:`huggingface_hub.DatasetCard` that was uploaded.

    Example:
        >>> pipeline = SAERLPipeline.from_pretrained("me/pipeline")  # doctest: +SKIP
        >>> curated, stats = pipeline(dataset, return_stats=True)  # doctest: +SKIP
        >>> push_curated(curated, "me/curated", pipeline=pipeline, pipeline_repo="me/pipeline",
        ...              filtering=stats)  # doctest: +SKIP
    """
    features = getattr(dataset, "features", None)
    if features is None and hasattr(dataset, "values"):  # DatasetDict: every split has the same columns
        features = next(iter(dataset.values())).features
    if features is None:
        raise InvalidParameterError(
            f"The {type(dataset).__name__} has no declared features, so its card cannot list "
            "the columns: cast it first (dataset.cast(features)), or materialise it as a "
            "Dataset before pushing."
        )
    if filtering is None and pipeline is not None and getattr(pipeline, "quality_threshold", None) is not None:
        filtering = {"quality_threshold": pipeline.quality_threshold}
    card = build_dataset_card(
        repo_id=repo_id,
        columns={k: _feature_type(v) for k, v in features.items()},
        pipeline_repo=pipeline_repo,
        pipeline_config=pipeline.config() if pipeline is not None else None,
        filtering=filtering,
        source=source,
        license=license,
    )
    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    api.upload_file(
        path_or_fileobj=str(card).encode("utf-8"),
        path_in_repo="README.md",
        repo_id=repo_id,
        repo_type="dataset",
        commit_message="Dataset card (hf_saerl)",
    )
    dataset.push_to_hub(repo_id, private=private, token=token, commit_message=commit_message)
    logger.info("Pushed the curated dataset to https://huggingface.co/datasets/%s", repo_id)
    return card


# ---------------------------------------------------------------------- what the card says
def _facts(source: str | None, pipeline_repo: str | None, config: Mapping[str, Any]) -> list[str]:
    facts = [f"Source dataset: `{source}`" if source else "Source dataset: not recorded"]
    if pipeline_repo:
        link = (
            f"[{pipeline_repo}](https://huggingface.co/{pipeline_repo})"
            if is_repo_id(pipeline_repo)
            else f"`{pipeline_repo}`"
        )
        facts.append(f"Pipeline: {link}")
    else:
        facts.append("Pipeline: not recorded")
    if config:
        model = config.get("model") or {}
        facts += [
            f"Model: `{model.get('id')}`" + (f" (revision `{model['revision']}`)" if model.get("revision") else ""),
            f"SAE: {_describe_sae(config.get('sae') or {})}, hook `{config.get('hook_name')}`, "
            f"d_in={config.get('d_in')}, d_sae={config.get('d_sae')}",
            f"Pooling `{config.get('pooling')}`, top-k {config.get('top_k')}, text "
            + _describe_text(config.get("text") or {}),
        ]
    return facts


def _describe_sae(sae: Mapping[str, Any]) -> str:
    if sae.get("release"):
        return f"`{sae['release']}` / `{sae.get('sae_id')}`"
    if sae.get("path"):
        return f"stored in the pipeline bundle (`{sae['path']}/`)"
    return "not recorded"


def _describe_text(text: Mapping[str, Any]) -> str:
    if text.get("template"):
        desc = f"template `{text['template']}`"
    else:
        desc = f"column `{text.get('text_column')}`"
    return desc + (" through the chat template" if text.get("chat_template") else "")


def _describe_filtering(filtering: Mapping[str, Any] | None) -> str:
    if not filtering:
        return "None: every row of the source is kept."
    parts = []
    if filtering.get("quality_threshold") is not None:
        parts.append(f"Rows kept when quality >= {filtering['quality_threshold']}.")
    if filtering.get("n_rows") is not None:
        parts.append(
            f"Kept {filtering.get('n_kept')} of {filtering['n_rows']} rows (dropped {filtering.get('n_dropped')})."
        )
    others = {k: v for k, v in filtering.items() if k not in ("quality_threshold", "n_rows", "n_kept", "n_dropped")}
    if others:
        parts.append("Other filtering: " + ", ".join(f"{k}={v}" for k, v in others.items()) + ".")
    return " ".join(parts) or "None: every row of the source is kept."


def _column_meanings(config: Mapping[str, Any]) -> dict[str, str]:
    meanings = dict(COLUMN_MEANINGS)
    for role, name in (config.get("columns") or {}).items():
        default = _ROLE_DEFAULTS.get(role)
        if name and default:
            meanings[name] = COLUMN_MEANINGS[default]
    return meanings


def _feature_type(feature: Any) -> str:
    dtype = getattr(feature, "dtype", None)
    if dtype is not None and type(feature).__name__ == "Value":
        return str(dtype)
    inner = getattr(feature, "feature", None)
    if inner is not None:
        return f"list<{_feature_type(inner)}>"
    return type(feature).__name__
