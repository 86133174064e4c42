"""``SAERLPipeline``: encoder + quality probe + difficulty probe + clusterer, as one object and one Hub repo.

``pipeline(dataset)`` is the one-line augmentation: it attaches the SAE feature columns and the
``quality``, ``difficulty`` and ``cluster_id`` columns (and drops the rows under
``quality_threshold`` when one is set) on a ``Dataset``, ``DatasetDict`` or ``IterableDataset``.

A saved pipeline (``save_pretrained(dir)``, ``push_to_hub(repo_id)``) is a folder::

    config.json          model id + revision (or the embedded default's name), SAE reference and hook,
                         d_in/d_sae, pooling, top-k, text template, column names, versions
    README.md            a model card with the metrics measured at fit time and a usage snippet
    sae/                 the SAE as a sae-lens folder (cfg.json + sae_weights.safetensors), unless the
                         SAE is a Hub reference (release, sae_id)
    quality/ difficulty/ clusters/   each fitted estimator, saved by its own save_pretrained

Loading (``from_pretrained(dir_or_repo_id)``) never unpickles: JSON and safetensors only, and files
it does not expect are ignored. Before anything runs it checks that the files are present and
parse, that the format version is one this hf_saerl reads, and that the SAE's width and hook and
every estimator's width agree with ``config.json``; a bundle failing any of this is refused with a
message naming the file and the fix.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping

from ..core.fingerprint import stable_hash

logger = logging.getLogger(__name__)

__all__ = ["SAERLPipeline", "check_bundle", "PIPELINE_FORMAT_VERSION"]

#: Version of the bundle layout written by :meth:`SAERLPipeline.save_pretrained`.
PIPELINE_FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
CARD_NAME = "README.md"
SAE_FOLDER = "sae"
SAE_FILES = ("cfg.json", "sae_weights.safetensors")

#: role -> (subfolder, class name, file stem). The class name is what the estimator's ``<kind>.json`` records.
ESTIMATORS: dict[str, tuple[str, str, str]] = {
    "quality": ("quality", "QualityProbe", "quality_probe"),
    "difficulty": ("difficulty", "DifficultyProbe", "difficulty_probe"),
    "clusterer": ("clusters", "SAEClusterer", "clusters"),
}

# SAEEncoder constructor arguments that its config() records and a bundle restores.
_ENCODER_KWARGS = (
    "hook_name", "text_column", "template", "chat_template", "max_length", "on_overlong", "on_empty", "pooling",
    "top_k", "exclude_bos", "pool_start", "dtype", "indices_column", "values_column", "n_tokens_column", "truncated_column",
    "activations_column",
)
_RESAVE = "Save the pipeline again with SAERLPipeline.save_pretrained(dir), or download it again (force_download=True)."


class SAERLPipeline:
    """An :class:`~hf_saerl.encoding.encoder.SAEEncoder` and fitted estimators that curate a dataset in one call.

    Args:
        encoder: the ``SAEEncoder`` that attaches ``sae_indices`` / ``sae_values``; None when the data
            already carries those columns.
        quality: a :class:`~hf_saerl.estimators.probes.QualityProbe` (adds ``quality``), or None.
        difficulty: a :class:`~hf_saerl.estimators.probes.DifficultyProbe` (adds ``difficulty``), or None.
        clusterer: a :class:`~hf_saerl.estimators.clustering.SAEClusterer` (adds ``cluster_id`` and
            ``cluster_distance``), or None.
        quality_threshold: keep only rows with ``quality >= quality_threshold`` (needs ``quality``).
        model_id: where the encoder's model can be loaded from (Hub id or folder). Required to save a
            pipeline whose encoder was given an in-memory model; otherwise the encoder's own id is used.
        tokenizer_id: likewise for the tokenizer (defaults to ``model_id``).

    Example:
        >>> import numpy as np
        >>> from datasets import Dataset
        >>> from hf_saerl import SAEEncoder
        >>> from hf_saerl.estimators.clustering import SAEClusterer
        >>> from hf_saerl.pipeline import SAERLPipeline
        >>> from hf_saerl.testing import tiny_llama, tiny_sae, tiny_tokenizer
        >>> encoder = SAEEncoder(tiny_llama(), tiny_sae(), tokenizer=tiny_tokenizer(), top_k=16)
        >>> ds = Dataset.from_dict({"text": [f"problem {i}: {'x+' * (i % 5)}1" for i in range(12)]})
        >>> pipeline = SAERLPipeline(encoder, clusterer=SAEClusterer(d_sae=encoder.d_sae, n_clusters=2),
        ...                          model_id="tiny-llama")
        >>> pipeline = pipeline.fit(ds)
        >>> out = pipeline(ds)
        >>> sorted(set(out.column_names) - {"text"})
        ['cluster_distance', 'cluster_id', 'sae_indices', 'sae_n_tokens', 'sae_truncated', 'sae_values']
    """

    def __init__(self, encoder: Any = None, quality: Any = None, difficulty: Any = None, clusterer: Any = None, *,
                 quality_threshold: float | None = None, model_id: str | None = None,
                 tokenizer_id: str | None = None) -> None:
        self.encoder = encoder
        self.quality = quality
        self.difficulty = difficulty
        self.clusterer = clusterer
        self.quality_threshold = quality_threshold
        self.model_id = None if model_id is None else str(model_id)
        self.tokenizer_id = None if tokenizer_id is None else str(tokenizer_id)
        self.fit_info_: dict[str, Any] = {}
        self._validate()

    # ------------------------------------------------------------------ validation
    def estimators(self) -> dict[str, Any]:
        """The estimators that are set, by role (``quality``, ``difficulty``, ``clusterer``)."""
        return {role: est for role in ESTIMATORS if (est := getattr(self, role)) is not None}

    @property
    def d_sae(self) -> int | None:
        """The SAE width every part works at (None for an empty pipeline)."""
        if self.encoder is not None:
            return int(self.encoder.d_sae)
        for est in self.estimators().values():
            return int(est.d_sae)
        return None

    def _validate(self) -> None:
        if self.encoder is None and not self.estimators():
            raise ValueError("An empty SAERLPipeline does nothing: pass an encoder= and/or quality=, difficulty=, "
                             "clusterer=.")
        if self.quality_threshold is not None and self.quality is None:
            raise ValueError("quality_threshold needs a quality probe: pass quality=QualityProbe(...), or drop "
                             "quality_threshold.")
        width = self.d_sae
        source = "the encoder's SAE" if self.encoder is not None else "the first estimator"
        for role, est in self.estimators().items():
            if int(est.d_sae) != width:
                raise ValueError(
                    f"SAE width mismatch: {role} ({type(est).__name__}) works at d_sae={est.d_sae}, but {source} has "
                    f"d_sae={width}. Every part of a pipeline must use the same SAE: refit the {role} on features of "
                    "this SAE."
                )
            if self.encoder is not None:
                for attr in ("indices_column", "values_column"):
                    if getattr(est, attr) != getattr(self.encoder, attr):
                        raise ValueError(
                            f"The {role} reads {attr}={getattr(est, attr)!r} but the encoder writes "
                            f"{getattr(self.encoder, attr)!r}; give them the same column name."
                        )

    def _check_fitted(self) -> None:
        from sklearn.utils.validation import check_is_fitted

        for role, est in self.estimators().items():
            try:
                check_is_fitted(est)
            except Exception:
                raise ValueError(f"The {role} ({type(est).__name__}) is not fitted: call pipeline.fit(dataset, ...) "
                                 f"or {role}.fit(...) first.") from None

    # ------------------------------------------------------------------ fitting
    def fit(self, dataset: Any, *, quality_label: str | None = None, difficulty_label: str | None = None,
            cluster_reference: str | None = None, batch_size: int = 256) -> "SAERLPipeline":
        """Encode ``dataset`` once (unless it already has the SAE columns) and fit every estimator set.

        Args:
            dataset: a ``datasets.Dataset`` with the text (or SAE feature) columns and the labels.
            quality_label: the column of quality labels (needed when ``quality`` is set).
            difficulty_label: the column of pass rates or difficulties (needed when ``difficulty`` is set).
            cluster_reference: an optional column of reference labels (e.g. a topic) for the clusterer's
                purity / NMI metrics.
            batch_size: rows per encoder ``map`` batch.

        Returns:
            self
        """
        from datasets import Dataset

        if not isinstance(dataset, Dataset):
            raise TypeError(f"fit needs a datasets.Dataset (pick one split of a DatasetDict, and materialise an "
                            f"IterableDataset with Dataset.from_generator); got {type(dataset).__name__}.")
        for role, label in (("quality", quality_label), ("difficulty", difficulty_label)):
            if getattr(self, role) is not None and label is None:
                raise ValueError(f"The {role} probe needs labels: pass {role}_label='<column>' (columns found: "
                                 f"{dataset.column_names}).")
            if label is not None and label not in dataset.column_names:
                raise KeyError(f"{role}_label={label!r} is not a column; found {dataset.column_names}.")
        encoded = self._encode(dataset, batch_size)
        if self.quality is not None:
            self.quality.fit(encoded, label_column=quality_label)
        if self.difficulty is not None:
            self.difficulty.fit(encoded, label_column=difficulty_label)
        if self.clusterer is not None:
            self.clusterer.fit(encoded, reference_column=cluster_reference)
        self.fit_info_ = {"n_rows": len(dataset), "quality_label": quality_label, "difficulty_label": difficulty_label,
                          "cluster_reference": cluster_reference}
        return self

    # ------------------------------------------------------------------ applying
    def __call__(self, dataset: Any, *, batch_size: int = 256, num_proc: int | None = None,
                 return_stats: bool = False) -> Any:
        """Attach every column (and apply ``quality_threshold``): the one-line augmentation.

        Works on ``Dataset``, ``DatasetDict``, ``IterableDataset`` and ``IterableDatasetDict``; output
        features are declared, so an ``IterableDataset`` keeps its schema. Each step shows a progress
        bar on a ``Dataset``. The number of rows dropped by the threshold is logged (INFO, logger
        ``hf_saerl.pipeline``) and, with ``return_stats=True``, returned as ``(dataset, stats)`` where
        ``stats`` holds ``n_rows``, ``n_kept``, ``n_dropped`` and ``quality_threshold`` (per split for a
        dict; counts are None for an ``IterableDataset``, which filters lazily).
        """
        from datasets import DatasetDict, IterableDatasetDict

        self._check_fitted()
        if isinstance(dataset, (DatasetDict, IterableDatasetDict)):
            results = {name: self(split, batch_size=batch_size, num_proc=num_proc, return_stats=True)
                       for name, split in dataset.items()}
            out = type(dataset)({name: ds for name, (ds, _) in results.items()})
            return (out, {name: stats for name, (_, stats) in results.items()}) if return_stats else out
        out, stats = self._apply(dataset, batch_size, num_proc)
        return (out, stats) if return_stats else out

    augment = __call__

    def _encode(self, dataset: Any, batch_size: int, num_proc: int | None = None) -> Any:
        names = dataset.column_names or []
        indices, values = self._sae_columns()
        if indices in names and values in names:
            return dataset
        if self.encoder is None:
            raise KeyError(f"The data has no {indices!r} / {values!r} columns and this pipeline has no encoder: run an "
                           f"SAEEncoder over it first, or build the pipeline with encoder=. Columns found: {names}.")
        kwargs = {"num_proc": num_proc} if num_proc and num_proc > 1 else {}
        return self.encoder.map(dataset, batch_size=batch_size, **kwargs)

    def _sae_columns(self) -> tuple[str, str]:
        part = self.encoder if self.encoder is not None else next(iter(self.estimators().values()))
        return part.indices_column, part.values_column

    def _apply(self, dataset: Any, batch_size: int, num_proc: int | None) -> tuple[Any, dict[str, Any]]:
        from datasets import Dataset

        materialised = isinstance(dataset, Dataset)
        ds = self._encode(dataset, batch_size, num_proc)
        n_rows = len(ds) if materialised else None
        stats: dict[str, Any] = {"n_rows": n_rows, "n_kept": n_rows, "n_dropped": 0 if materialised else None,
                                 "quality_threshold": self.quality_threshold}
        if self.quality is not None:
            ds = _map_estimator(ds, self.quality, "quality probe", batch_size, num_proc)
            if self.quality_threshold is not None:
                ds = _filter_quality(ds, self.quality.output_column, float(self.quality_threshold), batch_size)
                if materialised:
                    stats.update(n_kept=len(ds), n_dropped=n_rows - len(ds))
                    logger.info("SAERLPipeline: kept %d of %d rows with quality >= %s, dropped %d.", len(ds), n_rows,
                                self.quality_threshold, n_rows - len(ds))
                else:
                    logger.info("SAERLPipeline: rows with quality < %s are dropped lazily as the stream is read.",
                                self.quality_threshold)
        for role, desc in (("difficulty", "difficulty probe"), ("clusterer", "clusters")):
            est = getattr(self, role)
            if est is not None:
                ds = _map_estimator(ds, est, desc, batch_size, num_proc)
        return ds, stats

    # ------------------------------------------------------------------ identity
    def config(self, model_id: str | None = None) -> dict[str, Any]:
        """The JSON-able description written to ``config.json`` (see the module docstring).

        ``model_id`` overrides where the model is recorded to load from; an encoder holding an
        in-memory model needs it here or in the constructor.
        """
        from .. import __version__

        config: dict[str, Any] = {
            "format": "hf_saerl/pipeline",
            "format_version": PIPELINE_FORMAT_VERSION,
            "hf_saerl_version": __version__,
            "d_sae": self.d_sae,
            "quality_threshold": self.quality_threshold,
            "estimators": {role: ESTIMATORS[role][0] for role in self.estimators()},
            "columns": self._columns(),
            "fit": self.fit_info_ or None,
            "model": None, "sae": None, "hook_name": None, "sae_hook_name": None, "d_in": None,
            "pooling": None, "top_k": None, "text": None, "encoder": None,
        }
        enc = self.encoder
        if enc is not None:
            ec = enc.config()
            config.update(
                model=self._model_record(ec, model_id),
                sae=_sae_record(ec.get("sae")),
                hook_name=enc.hook_name,
                sae_hook_name=_sae_own_hook(self._sae_object()),
                d_in=int(enc.d_in),
                pooling=ec.get("pooling"),
                top_k=ec.get("top_k"),
                text={k: ec.get(k) for k in ("text_column", "template", "chat_template")},
                encoder={k: ec[k] for k in _ENCODER_KWARGS if k in ec},
            )
        return config

    def _columns(self) -> dict[str, str]:
        cols: dict[str, str] = {}
        enc = self.encoder
        if enc is not None:
            cols.update(indices=enc.indices_column, values=enc.values_column, n_tokens=enc.n_tokens_column,
                        truncated=enc.truncated_column)
        if self.quality is not None:
            cols["quality"] = self.quality.output_column
        if self.difficulty is not None:
            cols["difficulty"] = self.difficulty.difficulty_column
            if getattr(self.difficulty, "label_", "pass_rate") == "pass_rate":
                cols["pass_rate"] = self.difficulty.pass_rate_column
        if self.clusterer is not None:
            cols.update(cluster_id=self.clusterer.id_column, cluster_distance=self.clusterer.distance_column)
        return cols

    def _model_record(self, ec: Mapping[str, Any], model_id: str | None) -> dict[str, Any]:
        from ..encoding.embedded import EMBEDDED_MODEL

        model_id = model_id or self.model_id
        if model_id is not None:
            return {"id": str(model_id), "revision": ec.get("revision"), "gguf_file": ec.get("gguf_file"),
                    "tokenizer": self.tokenizer_id or ec.get("tokenizer")}
        spec = ec.get("model")
        if spec is None:
            raise ValueError(
                "The encoder holds an in-memory model, which a saved pipeline cannot record. Pass model_id='<Hub id or "
                "local folder>' (where the same model and tokenizer can be loaded from) to SAERLPipeline(...) or to "
                "save_pretrained / push_to_hub, or build the SAEEncoder from a model id."
            )
        if _is_embedded(spec, ec.get("gguf_file")):
            return {"id": EMBEDDED_MODEL, "revision": None, "gguf_file": None, "tokenizer": None}
        if os.path.isdir(spec):
            logger.warning("The pipeline records its model as the local folder %r; it loads elsewhere only if that "
                           "folder exists there. Pass model_id='<Hub id>' to record a portable reference.", spec)
        return {"id": spec, "revision": ec.get("revision"), "gguf_file": ec.get("gguf_file"),
                "tokenizer": self.tokenizer_id or ec.get("tokenizer")}

    def _sae_object(self) -> Any:
        enc = self.encoder
        sae = getattr(enc, "sae", None)
        if sae is None or not hasattr(sae, "cfg"):
            sae = getattr(enc, "_sae", None)
        if sae is None and isinstance(getattr(enc, "sae_spec", None), (str, tuple)):
            from ..encoding.loading import load_sae

            sae = load_sae(enc.sae_spec)
        return sae

    @property
    def fingerprint(self) -> str:
        """A short digest of the encoder's and estimators' fingerprints and the threshold."""
        parts = {role: est.fingerprint for role, est in self.estimators().items()}
        parts["encoder"] = self.encoder.fingerprint if self.encoder is not None else None
        parts["quality_threshold"] = self.quality_threshold
        return stable_hash(parts)

    def __repr__(self) -> str:
        parts = [f"encoder={self.encoder!r}"] + [f"{r}={type(e).__name__}" for r, e in self.estimators().items()]
        if self.quality_threshold is not None:
            parts.append(f"quality_threshold={self.quality_threshold}")
        return f"SAERLPipeline({', '.join(parts)})"

    # ------------------------------------------------------------------ saving
    def save_pretrained(self, save_directory: str | Path, *, model_id: str | None = None,
                        repo_id: str | None = None) -> Path:
        """Write the bundle (see the module docstring) into ``save_directory`` and return its path.

        ``model_id`` overrides where the model is recorded to load from; ``repo_id`` is used in the
        card's usage snippet.
        """
        self._check_fitted()
        folder = Path(save_directory)
        config = self.config(model_id)  # raises before anything is written
        folder.mkdir(parents=True, exist_ok=True)
        if self.encoder is not None and config["sae"].get("path"):
            sae = self._sae_object()
            if sae is None or not hasattr(sae, "save_model"):
                raise ValueError("Could not get the encoder's SAE to store it in the bundle; build the SAEEncoder from "
                                 "a sae-lens folder or a (release, sae_id) reference.")
            sae.save_model(str(folder / SAE_FOLDER))
        from ..estimators.base import jsonable

        for role, est in self.estimators().items():
            est.save_pretrained(folder / ESTIMATORS[role][0])
        (folder / CONFIG_NAME).write_text(json.dumps(jsonable(config), indent=2, sort_keys=True) + "\n",
                                          encoding="utf-8")
        (folder / CARD_NAME).write_text(self._model_card(config, repo_id), encoding="utf-8")
        return folder

    def push_to_hub(self, repo_id: str, *, private: bool | None = None, token: str | bool | None = None,
                    commit_message: str = "Upload SAERLPipeline", revision: str | None = None,
                    create_pr: bool = False, model_id: str | None = None) -> Any:
        """Save into a temporary folder and upload it as one commit to the model repo ``repo_id``
        (created if needed). Returns the ``CommitInfo``."""
        from .hub import upload_folder

        with tempfile.TemporaryDirectory() as tmp:
            self.save_pretrained(tmp, model_id=model_id, repo_id=repo_id)
            return upload_folder(tmp, repo_id, private=private, token=token, commit_message=commit_message,
                                 revision=revision, create_pr=create_pr)

    def generate_model_card(self, repo_id: str | None = None, model_id: str | None = None) -> str:
        """The README model card: components, fit-time metrics, usage."""
        return self._model_card(self.config(model_id), repo_id)

    def _model_card(self, config: Mapping[str, Any], repo_id: str | None) -> str:
        from huggingface_hub import ModelCardData

        from ..estimators.base import metrics_markdown

        model = config.get("model") or {}
        data = ModelCardData(library_name="hf_saerl", base_model=_base_model(model.get("id")),
                             tags=["hf_saerl", "sparse-autoencoder", "sae-probe", "data-curation"])
        repo = repo_id or "your-name/your-pipeline"
        lines = ["---", data.to_yaml(), "---", "", "# hf_saerl SAERL pipeline", "",
                 "Curates post-training data by reading an LLM's internals through a sparse autoencoder (SAE): each "
                 "example is encoded into pooled SAE features, then scored for quality and difficulty and assigned a "
                 "cluster (SAERL, arXiv 2605.27354). Saved by hf_saerl without pickle (JSON + safetensors).", "",
                 "| part | value |", "|---|---|"]
        if config.get("model") is not None:
            sae = config.get("sae") or {}
            sae_desc = f"`{sae['release']}` / `{sae['sae_id']}`" if sae.get("release") else "`sae/` (in this repo)"
            text = config.get("text") or {}
            lines += [
                f"| model | `{model.get('id')}`" + (f" @ `{model['revision']}`" if model.get("revision") else "") + " |",
                f"| SAE | {sae_desc} |",
                f"| hook | `{config.get('hook_name')}` |",
                f"| widths | d_in={config.get('d_in')}, d_sae={config.get('d_sae')} |",
                f"| pooling / top-k | `{config.get('pooling')}` / {config.get('top_k')} |",
                f"| text | " + (f"template `{text.get('template')}`" if text.get("template")
                                 else f"column `{text.get('text_column')}`") + " |",
            ]
        else:
            lines.append(f"| SAE features | precomputed, d_sae={config.get('d_sae')} |")
        lines.append(f"| quality threshold | {config.get('quality_threshold')} |")
        lines += ["", "## Metrics measured at fit time", ""]
        fit = config.get("fit") or {}
        if fit:
            labels = ", ".join(f"{k}=`{v}`" for k, v in fit.items() if k != "n_rows" and v)
            lines += [f"Fitted on {fit.get('n_rows')} rows" + (f" ({labels})." if labels else "."), ""]
        for role, est in self.estimators().items():
            lines += [f"### {role} (`{type(est).__name__}`, in `{ESTIMATORS[role][0]}/`)", "",
                      metrics_markdown(getattr(est, "metrics_", None)), ""]
        cols = ", ".join(f"`{c}`" for c in (config.get("columns") or {}).values())
        lines += ["## Usage", "", "```python", "from datasets import load_dataset", "from hf_saerl import SAERLPipeline",
                  "", f'pipeline = SAERLPipeline.from_pretrained("{repo}")',
                  'dataset = load_dataset("your-name/your-prompts", split="train")',
                  f"curated = pipeline(dataset)  # adds {cols}", "```", "", "Or from the command line:", "", "```bash",
                  f"hf-saerl augment --pipeline {repo} --data your-name/your-prompts --split train --output curated/",
                  "```", ""]
        return "\n".join(lines)

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(cls, repo_id_or_path: str | Path, *, revision: str | None = None,
                        token: str | bool | None = None, cache_dir: str | Path | None = None,
                        force_download: bool = False, local_files_only: bool = False, model: Any = None,
                        tokenizer: Any = None, **encoder_kwargs: Any) -> "SAERLPipeline":
        """Load a pipeline from a local folder or a Hub model repo (checked first, see the module docstring).

        Args:
            repo_id_or_path: a folder written by :meth:`save_pretrained`, or a Hub repo id.
            revision, token, cache_dir, force_download, local_files_only: as in ``huggingface_hub``.
            model, tokenizer: use this model (id, folder or loaded object) instead of the recorded one,
                e.g. a local copy when the Hub is out of reach.
            encoder_kwargs: runtime ``SAEEncoder`` options such as ``device=``, ``dtype=``, ``token_budget=``.
        """
        folder = _local_bundle(repo_id_or_path, revision=revision, token=token, cache_dir=cache_dir,
                               force_download=force_download, local_files_only=local_files_only)
        config = check_bundle(folder)
        estimators = _load_estimators(folder, config)
        encoder = None
        if config.get("model") is not None:
            encoder = _build_encoder(folder, config, model, tokenizer, encoder_kwargs)
        pipeline = cls(encoder, **estimators, quality_threshold=config.get("quality_threshold"),
                       model_id=(config.get("model") or {}).get("id"),
                       tokenizer_id=(config.get("model") or {}).get("tokenizer"))
        pipeline.fit_info_ = config.get("fit") or {}
        return pipeline


# ====================================================================== checking a bundle
def check_bundle(folder: str | Path) -> dict[str, Any]:
    """Validate a saved pipeline folder without running anything; return its ``config.json``.

    Checks: the config parses and has a format version this hf_saerl reads; every file the config
    names exists and parses (JSON, safetensors headers); the SAE's ``d_in``/``d_sae``/hook and each
    estimator's width agree with the config. Raises ``FileNotFoundError`` / ``ValueError`` naming the
    file and the fix.
    """
    folder = Path(folder)
    config_path = folder / CONFIG_NAME
    config = _read_json(config_path, "the pipeline")
    _check_format(config, config_path)
    d_sae = config.get("d_sae")
    if isinstance(d_sae, bool) or not isinstance(d_sae, int) or d_sae <= 0:
        raise ValueError(f"{config_path} has no valid 'd_sae' (found {d_sae!r}); the file is corrupt. {_RESAVE}")
    estimators = config.get("estimators") or {}
    unknown = sorted(set(estimators) - set(ESTIMATORS))
    if unknown:
        raise ValueError(f"{config_path} lists unknown estimator role(s) {unknown}; this hf_saerl knows "
                         f"{sorted(ESTIMATORS)}. Upgrade hf_saerl (pip install -U hf-saerl).")
    for role in estimators:
        _check_estimator_files(folder, role, d_sae)
    if config.get("model") is not None:
        _check_encoder_config(config, config_path)
        sae = config.get("sae") or {}
        if sae.get("path"):
            _check_sae_folder(folder / sae["path"], config, config_path)
    return config


def _check_format(config: Mapping[str, Any], path: Path) -> None:
    from .. import __version__

    if config.get("format") != "hf_saerl/pipeline":
        raise ValueError(f"{path} is not an hf_saerl pipeline config (its 'format' is {config.get('format')!r}, expected "
                         "'hf_saerl/pipeline'). Point from_pretrained at a folder written by SAERLPipeline.save_pretrained.")
    version = config.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise ValueError(f"{path} has no valid 'format_version' (found {version!r}); the file is corrupt. {_RESAVE}")
    if version > PIPELINE_FORMAT_VERSION:
        raise ValueError(
            f"{path} was written in pipeline format version {version} by hf_saerl {config.get('hf_saerl_version')}; this "
            f"hf_saerl {__version__} reads format versions up to {PIPELINE_FORMAT_VERSION}. Upgrade hf_saerl "
            "(pip install -U hf-saerl)."
        )


def _check_estimator_files(folder: Path, role: str, d_sae: int) -> None:
    sub, cls_name, kind = ESTIMATORS[role]
    where = folder / sub
    expected = [CONFIG_NAME, f"{kind}.json", f"{kind}.safetensors"]
    missing = [name for name in expected if not (where / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"The pipeline's {role} is incomplete: {[str(where / m) for m in missing]} missing (a saved {cls_name} holds "
            f"{expected}). {_RESAVE}"
        )
    state_path = where / f"{kind}.json"
    state = _read_json(state_path, f"the {role}")
    if state.get("estimator") != cls_name:
        raise ValueError(f"{state_path} holds a {state.get('estimator')!r}, but the pipeline's {role} must be a "
                         f"{cls_name}. {_RESAVE}")
    width = state.get("d_sae")
    if width != d_sae:
        raise ValueError(
            f"SAE width mismatch: {state_path} was fitted on SAE features of width d_sae={width}, but the pipeline's "
            f"config.json says d_sae={d_sae}. The bundle mixes parts from different SAEs: refit the {role} on this "
            "SAE's features and save the pipeline again."
        )
    _check_safetensors(where / f"{kind}.safetensors")


def _check_encoder_config(config: Mapping[str, Any], path: Path) -> None:
    model, sae, enc = config.get("model"), config.get("sae"), config.get("encoder")
    if not isinstance(model, Mapping) or not model.get("id"):
        raise ValueError(f"{path}: 'model' must record the model's id (found {model!r}); the file is corrupt. {_RESAVE}")
    if not isinstance(sae, Mapping) or not (sae.get("path") or (sae.get("release") and sae.get("sae_id"))):
        raise ValueError(f"{path}: 'sae' must hold a release and sae_id, or the path of the stored SAE (found {sae!r}); "
                         f"the file is corrupt. {_RESAVE}")
    if not isinstance(enc, Mapping) or not config.get("hook_name") or not isinstance(config.get("d_in"), int):
        raise ValueError(f"{path} lacks the encoder settings, hook_name or d_in; the file is corrupt. {_RESAVE}")


def _check_sae_folder(sae_dir: Path, config: Mapping[str, Any], config_path: Path) -> None:
    missing = [name for name in SAE_FILES if not (sae_dir / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"The pipeline's SAE is incomplete: {[str(sae_dir / m) for m in missing]} missing (a sae-lens folder holds "
            f"{list(SAE_FILES)}). {_RESAVE}"
        )
    cfg_path = sae_dir / "cfg.json"
    cfg = _read_json(cfg_path, "the SAE")
    for key in ("d_in", "d_sae"):
        if cfg.get(key) != config.get(key):
            raise ValueError(
                f"SAE width mismatch: {cfg_path} says {key}={cfg.get(key)} but {config_path} says {key}={config.get(key)}. "
                "The stored SAE is not the one the pipeline was built with: save the pipeline again from its encoder."
            )
    metadata = cfg.get("metadata") or {}
    own_hook = metadata.get("hf_hook_name") or metadata.get("hook_name") or cfg.get("hook_name")
    recorded = config.get("sae_hook_name")
    if own_hook != recorded:
        raise ValueError(
            f"SAE hook mismatch: {cfg_path} says the SAE was trained on {own_hook!r} but {config_path} records "
            f"{recorded!r}. The stored SAE is not the one the pipeline was built with: save the pipeline again."
        )
    shapes = _check_safetensors(sae_dir / "sae_weights.safetensors")
    want = {"W_enc": [config["d_in"], config["d_sae"]], "W_dec": [config["d_sae"], config["d_in"]]}
    for name, shape in want.items():
        if name in shapes and list(shapes[name]) != shape:
            raise ValueError(f"SAE width mismatch: {name} in {sae_dir / 'sae_weights.safetensors'} has shape "
                             f"{list(shapes[name])}, but config.json says {shape}. {_RESAVE}")


def _check_safetensors(path: Path) -> dict[str, list[int]]:
    """Parse the header and check the file holds every byte it announces; return the tensor shapes."""
    try:
        with open(path, "rb") as fh:
            size = path.stat().st_size
            n = int.from_bytes(fh.read(8), "little")
            if size < 8 or n <= 0 or 8 + n > size:
                raise ValueError("the header is cut short")
            header = json.loads(fh.read(n))
        end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
        if 8 + n + end != size:
            raise ValueError(f"it announces {8 + n + end} bytes but has {size}")
        return {k: v["shape"] for k, v in header.items() if k != "__metadata__"}
    except (ValueError, KeyError, TypeError, IndexError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is not a valid safetensors file ({e}); it is corrupt or truncated. {_RESAVE}") from e


def _read_json(path: Path, what: str) -> dict[str, Any]:
    if not path.is_file():
        found = sorted(p.name for p in path.parent.iterdir()) if path.parent.is_dir() else []
        raise FileNotFoundError(f"{path} is missing: {what} cannot be loaded (found {found}). Point from_pretrained at "
                                f"a folder written by SAERLPipeline.save_pretrained, or {_RESAVE[0].lower()}{_RESAVE[1:]}")
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"Could not parse {path}: {e}. The file is corrupt. {_RESAVE}") from e
    if not isinstance(obj, dict):
        raise ValueError(f"{path} should hold a JSON object, found {type(obj).__name__}; the file is corrupt. {_RESAVE}")
    return obj


# ====================================================================== loading helpers
def _local_bundle(repo_id_or_path: str | Path, **hub_kwargs: Any) -> Path:
    path = str(repo_id_or_path)
    if os.path.isdir(path):
        return Path(path)
    if os.path.isabs(path) or path.startswith((".", "~")) or path.count("/") != 1:
        raise FileNotFoundError(f"{path!r} is neither a local folder nor a Hub repo id ('owner/name'). Pass the folder "
                                "written by SAERLPipeline.save_pretrained or a Hub repo id.")
    from .hub import download_folder

    # Only the files a bundle is made of: anything else in the repo is never downloaded.
    patterns = [CONFIG_NAME, CARD_NAME, f"{SAE_FOLDER}/*.json", f"{SAE_FOLDER}/*.safetensors"]
    patterns += [f"{sub}/*.json" for sub, _, _ in ESTIMATORS.values()]
    patterns += [f"{sub}/*.safetensors" for sub, _, _ in ESTIMATORS.values()]
    return download_folder(path, allow_patterns=patterns, **hub_kwargs)


def _load_estimators(folder: Path, config: Mapping[str, Any]) -> dict[str, Any]:
    from ..estimators.clustering import SAEClusterer
    from ..estimators.probes import DifficultyProbe, QualityProbe

    classes = {"quality": QualityProbe, "difficulty": DifficultyProbe, "clusterer": SAEClusterer}
    return {role: classes[role].from_pretrained(str(folder / ESTIMATORS[role][0]))
            for role in (config.get("estimators") or {})}


def _build_encoder(folder: Path, config: Mapping[str, Any], model: Any, tokenizer: Any,
                   encoder_kwargs: Mapping[str, Any]) -> Any:
    from ..encoding.encoder import SAEEncoder
    from ..encoding.loading import load_sae

    record = config["model"]
    kwargs = dict(config["encoder"])
    kwargs.update(encoder_kwargs)
    if model is None:
        model, kwargs["gguf_file"], kwargs["revision"] = _resolve_model(record)
        if tokenizer is None and record.get("tokenizer"):
            tokenizer = record["tokenizer"]
    sae_ref = config["sae"]
    if sae_ref.get("path"):
        sae_dir = folder / sae_ref["path"]
        try:
            sae = load_sae(str(sae_dir))
        except Exception as e:  # sae-lens raises safetensors / config errors of many kinds
            raise ValueError(f"Could not load the SAE stored in {sae_dir}: {e}. {_RESAVE}") from e
    else:
        sae = (sae_ref["release"], sae_ref["sae_id"])
    encoder = SAEEncoder(model, sae, tokenizer=tokenizer, **kwargs)
    for key in ("d_in", "d_sae"):
        if int(getattr(encoder, key)) != config[key]:
            raise ValueError(f"SAE width mismatch: the SAE {sae!r} has {key}={getattr(encoder, key)}, but the pipeline's "
                             f"config.json says {key}={config[key]}. The SAE reference no longer points to the SAE the "
                             "pipeline was fitted on: pin it, or refit the pipeline.")
    return encoder


def _resolve_model(record: Mapping[str, Any]) -> tuple[str, str | None, str | None]:
    from ..encoding.embedded import EMBEDDED_MODEL, default_model_spec

    if record["id"] == EMBEDDED_MODEL:
        spec = default_model_spec()
        return spec["model"], spec["gguf_file"], None
    return record["id"], record.get("gguf_file"), record.get("revision")


def _is_embedded(spec: str, gguf_file: str | None) -> bool:
    try:
        from ..encoding.embedded import default_model_spec

        default = default_model_spec()
    except (FileNotFoundError, ImportError):
        return False
    return gguf_file == default["gguf_file"] and os.path.realpath(spec) == os.path.realpath(default["model"])


def _sae_record(spec: Any) -> dict[str, Any]:
    if isinstance(spec, (list, tuple)) and len(spec) == 2:
        return {"release": str(spec[0]), "sae_id": str(spec[1])}
    return {"path": SAE_FOLDER}


def _sae_own_hook(sae: Any) -> str | None:
    if sae is None:
        return None
    from ..encoding.loading import sae_hook_name

    return sae_hook_name(sae)


def _base_model(model_id: str | None) -> str | None:
    from ..encoding.embedded import EMBEDDED_MODEL, SMOLLM2_HUB_ID

    if model_id == EMBEDDED_MODEL:
        return SMOLLM2_HUB_ID
    if model_id and model_id.count("/") == 1 and not os.path.exists(model_id) and not model_id.startswith((".", "/")):
        return model_id
    return None


def _map_estimator(ds: Any, est: Any, desc: str, batch_size: int, num_proc: int | None) -> Any:
    from datasets import Dataset, Features

    features = Features({**ds.features, **est.features}) if ds.features is not None else None
    kwargs: dict[str, Any] = {"batched": True, "batch_size": batch_size, "features": features}
    if isinstance(ds, Dataset):
        kwargs["desc"] = desc
        if num_proc and num_proc > 1:
            kwargs["num_proc"] = num_proc
    return ds.map(est, **kwargs)


class _AtLeast:
    """``batch -> [value >= threshold]`` for ``filter(batched=True)``, with a stable fingerprint."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold

    def __call__(self, values: list[float]) -> list[bool]:
        return [v >= self.threshold for v in values]


def _filter_quality(ds: Any, column: str, threshold: float, batch_size: int) -> Any:
    from datasets import Dataset

    kwargs: dict[str, Any] = {"batched": True, "batch_size": batch_size, "input_columns": [column]}
    if isinstance(ds, Dataset):
        kwargs.update(desc=f"quality >= {threshold}",
                      new_fingerprint=stable_hash([ds._fingerprint, "quality>=", column, threshold], 32))
    return ds.filter(_AtLeast(threshold), **kwargs)
