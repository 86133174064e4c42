"""Hub I/O for hf_saerl: fetching and uploading pipeline bundles, and pushing curated datasets with a card.

Every call to the Hub goes through the names imported here (``HfApi``, ``snapshot_download``), so
tests replace them with local stand-ins (``monkeypatch.setattr(HfApi, "upload_folder", fake)``,
``monkeypatch.setattr(hf_saerl.pipeline.hub, "snapshot_download", fake)``) and nothing needs the network.

The card of a curated dataset is built by a pure function, :func:`build_dataset_card`, so what it
records (the pipeline repo, its parameters, the columns, the filtering) is tested without the Hub.

Example:
    >>> from hf_saerl.pipeline.hub import build_dataset_card
    >>> card = build_dataset_card(repo_id="me/curated", pipeline_repo="me/pipeline",
    ...                           columns={"text": "string", "quality": "float32"},
    ...                           filtering={"quality_threshold": 0.5, "n_rows": 10, "n_kept": 7, "n_dropped": 3})
    >>> "me/pipeline" in card.text and "quality >= 0.5" in card.text
    True
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from huggingface_hub import DatasetCard, DatasetCardData, HfApi, snapshot_download

logger = logging.getLogger(__name__)

__all__ = ["download_folder", "upload_folder", "build_dataset_card", "push_curated", "COLUMN_MEANINGS"]

#: What each hf_saerl column holds (DESIGN §3), keyed by the default column name.
COLUMN_MEANINGS: dict[str, str] = {
    "sae_indices": "ids of the top-k pooled SAE latents of the example, by value, descending",
    "sae_values": "their pooled activations",
    "sae_n_tokens": "tokens that were pooled (after truncation)",
    "sae_truncated": "whether the text was cut to max_length tokens",
    "quality": "quality probe score; higher is better (a probability for a classifier probe)",
    "difficulty": "predicted difficulty in [0, 1] (0 easy … 1 hard)",
    "pass_rate_pred": "predicted pass rate in [0, 1]",
    "cluster_id": "nearest SAE-space centroid",
    "cluster_distance": "distance to that centroid",
}

# pipeline config "columns" role -> the default column name whose meaning applies
_ROLE_DEFAULTS = {
    "indices": "sae_indices", "values": "sae_values", "n_tokens": "sae_n_tokens", "truncated": "sae_truncated",
    "quality": "quality", "difficulty": "difficulty", "pass_rate": "pass_rate_pred",
    "cluster_id": "cluster_id", "cluster_distance": "cluster_distance",
}


# ---------------------------------------------------------------------- bundles
def download_folder(repo_id: str, *, revision: str | None = None, token: str | bool | None = None,
                    cache_dir: str | Path | None = None, force_download: bool = False,
                    local_files_only: bool = False, allow_patterns: Sequence[str] | None = None) -> Path:
    """Download (the ``allow_patterns`` files of) a model repo and return its local folder.

    Hub and connection errors become a ``FileNotFoundError`` that says what to check.
    """
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled

    from .. import __version__

    try:
        folder = snapshot_download(
            repo_id, revision=revision, token=token, cache_dir=cache_dir, force_download=force_download,
            local_files_only=local_files_only, allow_patterns=list(allow_patterns) if allow_patterns else None,
            library_name="hf_saerl", library_version=__version__,
        )
    except (HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled, OSError) as e:
        raise FileNotFoundError(
            f"Could not fetch {repo_id!r} from the Hugging Face Hub ({type(e).__name__}: {e}). Check the repo id, "
            "the revision and your token and connection (HF_HUB_OFFLINE must be unset to download), or pass the "
            "path of a local folder instead."
        ) from e
    return Path(folder)


def upload_folder(folder: str | Path, repo_id: str, *, repo_type: str = "model", private: bool | None = None,
                  token: str | bool | None = None, commit_message: str = "Upload with hf_saerl",
                  revision: str | None = None, create_pr: bool = False) -> Any:
    """Create the repo if needed (``exist_ok=True``) and upload ``folder`` as one commit.

    Returns the ``CommitInfo`` of ``HfApi.upload_folder``.
    """
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, repo_type=repo_type, exist_ok=True)
    return api.upload_folder(repo_id=repo_id, folder_path=str(folder), repo_type=repo_type,
                             commit_message=commit_message, revision=revision, create_pr=create_pr)


# ---------------------------------------------------------------------- curated datasets
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
        tags=["hf_saerl", "sparse-autoencoder", "data-curation", "sae-features"],
    )
    lines = [f"# {data.pretty_name}", ""]
    lines.append(
        "Rows augmented (and possibly filtered) by an [hf_saerl](https://github.com/hf-saerl/hf_saerl) pipeline, "
        "which reads an LLM's internals through a sparse autoencoder (SAE) to score post-training data."
    )
    lines.append("")
    lines.append(f"- Source dataset: `{source}`" if source else "- Source dataset: not recorded")
    if pipeline_repo:
        link = f"[{pipeline_repo}](https://huggingface.co/{pipeline_repo})" if _looks_like_repo_id(pipeline_repo) \
            else f"`{pipeline_repo}`"
        lines.append(f"- Pipeline: {link}")
    else:
        lines.append("- Pipeline: not recorded")
    if config:
        model = config.get("model") or {}
        sae = config.get("sae") or {}
        lines += [
            f"- Model: `{model.get('id')}`" + (f" (revision `{model['revision']}`)" if model.get("revision") else ""),
            f"- SAE: {_describe_sae(sae)}, hook `{config.get('hook_name')}`, d_in={config.get('d_in')}, "
            f"d_sae={config.get('d_sae')}",
            f"- Pooling `{config.get('pooling')}`, top-k {config.get('top_k')}, text "
            + _describe_text(config.get("text") or {}),
        ]
    lines += ["", "## Filtering", "", _describe_filtering(filtering), "", "## Columns", "",
              "| column | type | meaning |", "|---|---|---|"]
    meanings = _column_meanings(config)
    for name, dtype in columns.items():
        lines.append(f"| `{name}` | {dtype} | {meanings.get(name, 'from the source dataset')} |")
    lines += ["", "## Usage", "", "```python", "from datasets import load_dataset", "",
              f'ds = load_dataset("{repo_id}", split="train")', "```"]
    if pipeline_repo:
        lines += ["", "Apply the same pipeline to new data:", "", "```python", "from hf_saerl import SAERLPipeline", "",
                  f'pipeline = SAERLPipeline.from_pretrained("{pipeline_repo}")', "new = pipeline(new_dataset)", "```"]
    record = {"pipeline_repo": pipeline_repo, "pipeline": config or None, "filtering": dict(filtering) if filtering else None,
              "source": source}
    lines += ["", "## hf_saerl record", "", "```json", json.dumps(_jsonable(record), indent=2, sort_keys=True), "```", ""]
    return DatasetCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines))


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
        raise ValueError("The dataset has no declared features; cast it (dataset.cast(features)) before pushing.")
    if filtering is None and pipeline is not None and getattr(pipeline, "quality_threshold", None) is not None:
        filtering = {"quality_threshold": pipeline.quality_threshold}
    card = build_dataset_card(
        repo_id=repo_id, columns={k: _feature_type(v) for k, v in features.items()}, pipeline_repo=pipeline_repo,
        pipeline_config=pipeline.config() if pipeline is not None else None, filtering=filtering, source=source,
        license=license,
    )
    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    api.upload_file(path_or_fileobj=str(card).encode("utf-8"), path_in_repo="README.md", repo_id=repo_id,
                    repo_type="dataset", commit_message="Dataset card (hf_saerl)")
    dataset.push_to_hub(repo_id, private=private, token=token, commit_message=commit_message)
    logger.info("Pushed the curated dataset to https://huggingface.co/datasets/%s", repo_id)
    return card


# ---------------------------------------------------------------------- helpers
def _looks_like_repo_id(value: str) -> bool:
    return value.count("/") == 1 and not os.path.exists(value) and not value.startswith((".", "/", "~"))


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
        parts.append(f"Kept {filtering.get('n_kept')} of {filtering['n_rows']} rows (dropped {filtering.get('n_dropped')}).")
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


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if hasattr(obj, "item"):
        return obj.item()
    return obj
