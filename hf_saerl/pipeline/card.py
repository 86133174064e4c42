"""The model card of a saved pipeline: a ``huggingface_hub.ModelCard`` rendered from :data:`PIPELINE_CARD_TEMPLATE`.

The card is built from the pipeline's ``config()`` and its estimators' fit-time metrics by a pure function,
:func:`build_model_card`, so what it says is tested without writing files or reaching the Hub.

Example:
    >>> from hf_saerl.pipeline.card import build_model_card
    >>> config = {"d_sae": 16, "quality_threshold": None, "model": None, "columns": {"cluster_id": "cluster_id"},
    ...           "estimators": {}, "fit": None}
    >>> card = build_model_card(config, {}, repo_id="me/pipe", license="mit")
    >>> card.data.library_name, card.data.license, 'SAERLPipeline.from_pretrained("me/pipe")' in card.text
    ('hf_saerl', 'mit', True)
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from huggingface_hub import ModelCard, ModelCardData

from ..core.hub import is_repo_id

logger = logging.getLogger(__name__)

__all__ = ["CARD_TAGS", "PIPELINE_CARD_TEMPLATE", "base_model", "build_model_card"]

#: The tags every pipeline card carries (``model_card_kwargs={"tags": [...]}`` adds to them).
CARD_TAGS = ["hf_saerl", "sparse-autoencoder", "sae-probe", "data-curation"]

#: The Jinja template of the card (``huggingface_hub.ModelCard.from_template``); :func:`build_model_card`
#: computes its variables.
PIPELINE_CARD_TEMPLATE = """\
---
{{ card_data }}
---

# hf_saerl SAERL pipeline

Curates post-training data by reading an LLM's internals through a sparse autoencoder (SAE): each example is \
encoded into pooled SAE features, then scored for quality and difficulty and assigned a cluster (SAERL, arXiv \
2605.27354). Saved by hf_saerl without pickle (JSON + safetensors).

| part | value |
|---|---|
{% for name, value in parts -%}
| {{ name }} | {{ value }} |
{% endfor %}
## Metrics measured at fit time

{% if fitted_on -%}
{{ fitted_on }}

{% endif -%}
{% for part in metrics -%}
### {{ part.role }} (`{{ part.estimator }}`, in `{{ part.folder }}/`)

{{ part.table }}

{% endfor -%}
## Usage

```python
from datasets import load_dataset
from hf_saerl import SAERLPipeline

pipeline = SAERLPipeline.from_pretrained("{{ repo }}")
dataset = load_dataset("your-name/your-prompts", split="train")
curated = pipeline(dataset)  # adds {{ columns }}
```

Or from the command line:

```bash
hf-saerl augment --pipeline {{ repo }} --data your-name/your-prompts --split train --output curated/
```

"""  # Jinja drops one trailing newline: the card ends with one


def build_model_card(
    config: Mapping[str, Any], estimators: Mapping[str, Any], *, repo_id: str | None = None, **card_data: Any
) -> ModelCard:
    """The pipeline's model card (pure, no I/O).

    Args:
        config: the pipeline's ``config()`` (what ``config.json`` holds).
        estimators: role -> estimator; each one's ``metrics_`` become a table.
        repo_id: the repo the card belongs to, used in the usage snippets.
        card_data: extra metadata for the card's YAML header (``huggingface_hub.ModelCardData`` fields such as
            ``license=``, ``datasets=``, ``language=``); ``tags`` are added to :data:`CARD_TAGS`.

    Returns:
        a ``huggingface_hub.ModelCard``.
    """
    from ..estimators.metrics import metrics_markdown

    model = config.get("model") or {}
    extra_tags = list(card_data.pop("tags", None) or [])
    card_data.setdefault("library_name", "hf_saerl")
    card_data.setdefault("base_model", base_model(model.get("id")))
    data = ModelCardData(tags=CARD_TAGS + [t for t in extra_tags if t not in CARD_TAGS], **card_data)
    folders = config.get("estimators") or {}
    metrics = [
        {
            "role": role,
            "estimator": type(est).__name__,
            "folder": folders.get(role, role),
            "table": metrics_markdown(getattr(est, "metrics_", None)),
        }
        for role, est in estimators.items()
    ]
    fit = config.get("fit") or {}
    fitted_on = None
    if fit:
        labels = ", ".join(f"{k}=`{v}`" for k, v in fit.items() if k != "n_rows" and v)
        fitted_on = f"Fitted on {fit.get('n_rows')} rows" + (f" ({labels})." if labels else ".")
    return ModelCard.from_template(
        data,
        template_str=PIPELINE_CARD_TEMPLATE,
        parts=_parts(config),
        fitted_on=fitted_on,
        metrics=metrics,
        repo=repo_id or "your-name/your-pipeline",
        columns=", ".join(f"`{c}`" for c in (config.get("columns") or {}).values()),
    )


def base_model(model_id: str | None) -> str | None:
    """The card's ``base_model``: the Hub id of the pipeline's model, or None for a local folder.

    Example:
        >>> base_model("HuggingFaceTB/SmolLM2-135M-Instruct"), base_model("./my-model")
        ('HuggingFaceTB/SmolLM2-135M-Instruct', None)
    """
    from ..models.embedded import EMBEDDED_MODEL, SMOLLM2_HUB_ID

    if model_id == EMBEDDED_MODEL:
        return SMOLLM2_HUB_ID
    return model_id if model_id and is_repo_id(model_id) else None


def _parts(config: Mapping[str, Any]) -> list[tuple[str, str]]:
    if config.get("model") is None:
        parts = [("SAE features", f"precomputed, d_sae={config.get('d_sae')}")]
    else:
        model, sae, text = config["model"], config.get("sae") or {}, config.get("text") or {}
        parts = [
            ("model", f"`{model.get('id')}`" + (f" @ `{model['revision']}`" if model.get("revision") else "")),
            ("SAE", f"`{sae['release']}` / `{sae['sae_id']}`" if sae.get("release") else "`sae/` (in this repo)"),
            ("hook", f"`{config.get('hook_name')}`"),
            ("widths", f"d_in={config.get('d_in')}, d_sae={config.get('d_sae')}"),
            ("pooling / top-k", f"`{config.get('pooling')}` / {config.get('top_k')}"),
            (
                "text",
                f"template `{text.get('template')}`" if text.get("template") else f"column `{text.get('text_column')}`",
            ),
        ]
    return [*parts, ("quality threshold", str(config.get("quality_threshold")))]
