"""``SAERLPipeline``: encoder + quality probe + difficulty probe + clusterer, as one object and one Hub repo.

``pipeline(dataset)`` is the one-line augmentation: it attaches the SAE feature columns and the
``quality``, ``difficulty`` and ``cluster_id`` columns (and drops the rows under
``quality_threshold`` when one is set) on a ``Dataset``, ``DatasetDict`` or ``IterableDataset``.

The pipeline composes: this module holds what the parts do together (validation, ``fit``, ``__call__``,
``config()`` and the fingerprint). Saving and loading speak ``huggingface_hub.ModelHubMixin``'s dialect
(``save_pretrained``, ``push_to_hub``, ``from_pretrained``, ``generate_model_card``) and hand the work to
:mod:`.bundle` (the folder: layout, writing, checks, building the parts back) and :mod:`.card` (the model
card); the bundle never holds a pickle.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from huggingface_hub import ModelCard, ModelHubMixin
from sklearn.base import BaseEstimator

from .._version import __version__
from ..core.fingerprint import stable_hash
from ..core.hub import HubLoadMixin
from ..core.validation import check_real, is_fitted
from ..errors import InvalidParameterError, MissingColumnError, NonFiniteError, ParameterTypeError, WidthMismatchError
from ..estimators.selection import check_probability_threshold
from .bundle import (
    ENCODER_KEYS,
    PIPELINE_FORMAT,
    PIPELINE_FORMAT_VERSION,
    build_encoder,
    bundle_folder,
    check_bundle,
    column_record,
    encoder_record,
    estimator_classes,
    estimator_folder,
    load_estimators,
    write_bundle,
)

if TYPE_CHECKING:
    # the mixin hands its own record of the constructor arguments (a dict or a dataclass) back as config=;
    # _refuse_config lets that through and refuses any other value
    from _typeshed import DataclassInstance

logger = logging.getLogger(__name__)

__all__ = ["PIPELINE_FORMAT_VERSION", "SAERLPipeline", "check_bundle"]


class SAERLPipeline(
    BaseEstimator,
    HubLoadMixin,
    ModelHubMixin,
    library_name="hf_saerl",
    tags=["hf_saerl", "sparse-autoencoder", "saerl"],
):
    """An :class:`~hf_saerl.encoding.encoder.SAEEncoder` and fitted estimators that curate a dataset in one call.

    A scikit-learn estimator in its manners: the constructor stores its arguments (``get_params`` /
    ``set_params`` see them), :meth:`fit` returns self, and ``check_is_fitted`` tells a pipeline that can run.

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

    Attributes:
        fit_info_: what :meth:`fit` was given (rows, label columns); set by :meth:`fit` and by loading.

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

    def __init__(
        self,
        encoder: Any = None,
        quality: Any = None,
        difficulty: Any = None,
        clusterer: Any = None,
        *,
        quality_threshold: float | None = None,
        model_id: str | None = None,
        tokenizer_id: str | None = None,
    ) -> None:
        self.encoder = encoder
        self.quality = quality
        self.difficulty = difficulty
        self.clusterer = clusterer
        self.quality_threshold = quality_threshold
        self.model_id = model_id
        self.tokenizer_id = tokenizer_id

    # ------------------------------------------------------------------ validation
    def estimators(self) -> dict[str, Any]:
        """The estimators that are set, by role (``quality``, ``difficulty``, ``clusterer``)."""
        return {role: est for role in estimator_classes() if (est := getattr(self, role)) is not None}

    @property
    def d_sae(self) -> int | None:
        """The SAE width every part works at (None for an empty pipeline)."""
        if self.encoder is not None:
            return int(self.encoder.d_sae)
        for est in self.estimators().values():
            return int(est.d_sae)
        return None

    def _validate(self) -> None:
        """The parts fit together; checked at first use (fit, a call, saving), as scikit-learn estimators do."""
        if self.encoder is None and not self.estimators():
            raise InvalidParameterError(
                "An empty SAERLPipeline does nothing: pass an encoder= and/or quality=, difficulty=, clusterer=."
            )
        if self.quality_threshold is not None and self.quality is None:
            raise InvalidParameterError(
                "quality_threshold needs a quality probe: pass quality=QualityProbe(...), or drop quality_threshold."
            )
        _check_threshold(self.quality_threshold, self.quality)
        width = self.d_sae
        source = "the encoder's SAE" if self.encoder is not None else "the first estimator"
        for role, est in self.estimators().items():
            if int(est.d_sae) != width:
                raise WidthMismatchError(
                    f"SAE width mismatch: {role} ({type(est).__name__}) works at d_sae={est.d_sae}, but {source} has "
                    f"d_sae={width}. Every part of a pipeline must use the same SAE: refit the {role} on features of "
                    "this SAE, or build the pipeline with the encoder of the SAE it was fitted on."
                )
            if self.encoder is not None:
                for attr in ("indices", "values"):
                    reads, writes = getattr(est, f"{attr}_column"), getattr(self.encoder.columns, attr)
                    if reads != writes:
                        raise InvalidParameterError(
                            f"The {role} reads {attr}_column={reads!r} but the encoder writes {writes!r}; give them "
                            f"the same column name (the encoder's columns=FeatureColumns({attr}=...))."
                        )

    def __sklearn_is_fitted__(self) -> bool:
        """Fitted once :meth:`fit` ran or the pipeline was loaded, or when every estimator it holds is fitted
        (a pipeline composed of fitted parts); what ``sklearn.utils.validation.check_is_fitted`` asks."""
        if hasattr(self, "fit_info_"):
            return True
        estimators = self.estimators()
        return bool(estimators) and all(is_fitted(est) for est in estimators.values())

    def _check_fitted(self, method: str) -> None:
        from sklearn.exceptions import NotFittedError

        for role, est in self.estimators().items():
            if not is_fitted(est):
                raise NotFittedError(
                    f"The {role} ({type(est).__name__}) is not fitted, so {method} cannot run: call "
                    f"pipeline.fit(dataset, ...) or {role}.fit(...) first."
                )

    # ------------------------------------------------------------------ fitting
    def fit(
        self,
        dataset: Any,
        *,
        quality_label: str | None = None,
        difficulty_label: str | None = None,
        cluster_reference: str | None = None,
        batch_size: int = 256,
    ) -> SAERLPipeline:
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

        self._validate()
        if not isinstance(dataset, Dataset):
            raise TypeError(
                f"fit needs a datasets.Dataset (pick one split of a DatasetDict, and materialise an "
                f"IterableDataset with Dataset.from_generator); got {type(dataset).__name__}."
            )
        for role, label in (("quality", quality_label), ("difficulty", difficulty_label)):
            if getattr(self, role) is not None and label is None:
                raise InvalidParameterError(
                    f"The {role} probe needs labels: pass {role}_label='<column>' (columns "
                    f"found: {dataset.column_names}), or build the pipeline without {role}=."
                )
            if label is not None and label not in dataset.column_names:
                raise MissingColumnError(
                    f"{role}_label={label!r} is not a column; found {dataset.column_names}. "
                    "Pass the name of the column holding the labels."
                )
        encoded = self._encode(dataset, batch_size)
        if self.quality is not None:
            self.quality.fit(encoded, label_column=quality_label)
        if self.difficulty is not None:
            self.difficulty.fit(encoded, label_column=difficulty_label)
        if self.clusterer is not None:
            self.clusterer.fit(encoded, reference_column=cluster_reference)
        self.fit_info_ = {
            "n_rows": len(dataset),
            "quality_label": quality_label,
            "difficulty_label": difficulty_label,
            "cluster_reference": cluster_reference,
        }
        return self

    # ------------------------------------------------------------------ applying
    def __call__(
        self, dataset: Any, *, batch_size: int = 256, num_proc: int | None = None, return_stats: bool = False
    ) -> Any:
        """Attach every column (and apply ``quality_threshold``): the one-line augmentation.

        Works on ``Dataset``, ``DatasetDict``, ``IterableDataset`` and ``IterableDatasetDict``; output
        features are declared, so an ``IterableDataset`` keeps its schema. Each step shows a progress
        bar on a ``Dataset``. The number of rows dropped by the threshold is logged (INFO, logger
        ``hf_saerl.pipeline``) and, with ``return_stats=True``, returned as ``(dataset, stats)`` where
        ``stats`` holds ``n_rows``, ``n_kept``, ``n_dropped`` and ``quality_threshold`` (per split for a
        dict; counts are None for an ``IterableDataset``, which filters lazily). An estimator that is not
        fitted is a ``sklearn.exceptions.NotFittedError``.
        """
        from datasets import DatasetDict, IterableDatasetDict

        self._validate()
        self._check_fitted("pipeline(dataset)")
        if isinstance(dataset, (DatasetDict, IterableDatasetDict)):
            results = {
                name: self(split, batch_size=batch_size, num_proc=num_proc, return_stats=True)
                for name, split in dataset.items()
            }
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
            raise MissingColumnError(
                f"The data has no {indices!r} / {values!r} columns and this pipeline has no encoder: run an "
                f"SAEEncoder over it first, or build the pipeline with encoder=. Columns found: {names}."
            )
        kwargs = {"num_proc": num_proc} if num_proc and num_proc > 1 else {}
        return self.encoder.map(dataset, batch_size=batch_size, **kwargs)

    def _sae_columns(self) -> tuple[str, str]:
        if self.encoder is not None:
            return self.encoder.columns.indices, self.encoder.columns.values
        part = next(iter(self.estimators().values()))
        return part.indices_column, part.values_column

    def _apply(self, dataset: Any, batch_size: int, num_proc: int | None) -> tuple[Any, dict[str, Any]]:
        from datasets import Dataset

        materialised = isinstance(dataset, Dataset)
        ds = self._encode(dataset, batch_size, num_proc)
        n_rows = len(ds) if materialised else None
        stats: dict[str, Any] = {
            "n_rows": n_rows,
            "n_kept": n_rows,
            "n_dropped": 0 if materialised else None,
            "quality_threshold": self.quality_threshold,
        }
        if self.quality is not None:
            ds = _map_estimator(ds, self.quality, "quality probe", batch_size, num_proc)
            if self.quality_threshold is not None:
                ds = _filter_quality(ds, self.quality.output_column, float(self.quality_threshold), batch_size)
                if n_rows is not None:  # a materialised Dataset: its length is known
                    stats.update(n_kept=len(ds), n_dropped=n_rows - len(ds))
                    logger.info(
                        "SAERLPipeline: kept %d of %d rows with quality >= %s, dropped %d.",
                        len(ds),
                        n_rows,
                        self.quality_threshold,
                        n_rows - len(ds),
                    )
                else:
                    logger.info(
                        "SAERLPipeline: rows with quality < %s are dropped lazily as the stream is read.",
                        self.quality_threshold,
                    )
        for role, desc in (("difficulty", "difficulty probe"), ("clusterer", "clusters")):
            est = getattr(self, role)
            if est is not None:
                ds = _map_estimator(ds, est, desc, batch_size, num_proc)
        return ds, stats

    # ------------------------------------------------------------------ identity
    def config(self, model_id: str | None = None) -> dict[str, Any]:
        """The JSON-able description written to ``config.json`` (see :mod:`hf_saerl.pipeline.bundle`).

        ``model_id`` overrides where the model is recorded to load from; an encoder holding an
        in-memory model needs one (here or in the constructor). What is recorded of the encoder is
        :func:`~hf_saerl.pipeline.bundle.encoder_record`'s.
        """
        config: dict[str, Any] = {
            "format": PIPELINE_FORMAT,
            "format_version": PIPELINE_FORMAT_VERSION,
            "hf_saerl_version": __version__,
            "d_sae": self.d_sae,
            "quality_threshold": self.quality_threshold,
            "estimators": {role: estimator_folder(role) for role in self.estimators()},
            "columns": column_record(self.encoder, self.estimators()),
            "fit": getattr(self, "fit_info_", None) or None,
            **dict.fromkeys(ENCODER_KEYS),
        }
        if self.encoder is not None:
            model_id = model_id or self.model_id
            config.update(
                encoder_record(
                    self.encoder,
                    model_id=None if model_id is None else str(model_id),
                    tokenizer_id=None if self.tokenizer_id is None else str(self.tokenizer_id),
                )
            )
        return config

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

    # ------------------------------------------------------------------ saving (huggingface_hub's ModelHubMixin)
    def save_pretrained(
        self,
        save_directory: str | Path,
        *,
        config: Mapping[str, Any] | DataclassInstance | None = None,
        repo_id: str | None = None,
        push_to_hub: bool = False,
        model_card_kwargs: Mapping[str, Any] | None = None,
        **push_to_hub_kwargs: Any,
    ) -> str | None:
        """``ModelHubMixin.save_pretrained``, checked first: nothing is written when the pipeline cannot be saved
        (an estimator is not fitted: ``NotFittedError``; an in-memory model without ``model_id``).

        ``config=`` is refused (a pipeline's ``config.json`` is derived from its parts, see :meth:`config`);
        ``repo_id`` is named in the card's usage snippet and is where ``push_to_hub=True`` pushes.
        """
        _refuse_config(self, config)
        self._validate()
        self._check_fitted("save_pretrained")
        self.config()  # an in-memory model without model_id raises here, before the folder exists
        card_kwargs = {"repo_id": repo_id, **dict(model_card_kwargs or {})}
        return super().save_pretrained(
            save_directory,
            repo_id=repo_id,
            push_to_hub=push_to_hub,
            model_card_kwargs=card_kwargs,
            **push_to_hub_kwargs,
        )

    def push_to_hub(
        self,
        repo_id: str,
        *,
        config: Mapping[str, Any] | DataclassInstance | None = None,
        model_card_kwargs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> str:
        """``ModelHubMixin.push_to_hub`` (one commit; ``branch``, ``create_pr``, ``allow_patterns``,
        ``ignore_patterns``, ``delete_patterns`` as there), with ``repo_id`` named in the card's usage snippet."""
        _refuse_config(self, config)
        card_kwargs = {"repo_id": repo_id, **dict(model_card_kwargs or {})}
        return super().push_to_hub(repo_id, model_card_kwargs=card_kwargs, **kwargs)

    def _save_pretrained(self, save_directory: Path) -> None:
        """Write the bundle (see :mod:`hf_saerl.pipeline.bundle`); the mixin then writes the card."""
        bundle_config = self.config()
        sae = None
        if self.encoder is not None and bundle_config["sae"].get("path"):
            sae = self.encoder.sae
            if sae is None or not hasattr(sae, "save_model"):
                raise InvalidParameterError(
                    "Could not get the encoder's SAE to store it in the bundle; build the "
                    "SAEEncoder from a sae-lens folder or a (release, sae_id) reference."
                )
        (Path(save_directory) / "README.md").unlink(missing_ok=True)  # the mixin writes a card only where none is
        write_bundle(save_directory, bundle_config, estimators=self.estimators(), sae=sae)

    def generate_model_card(self, repo_id: str | None = None, **card_data: Any) -> ModelCard:
        """The README model card (components, fit-time metrics, usage) as a ``huggingface_hub.ModelCard``.

        ``card_data`` are extra ``ModelCardData`` fields for its YAML header (``license=``, ``datasets=``,
        ``tags=`` added to hf_saerl's, ...); ``repo_id`` is named in the usage snippets.
        """
        from .card import build_model_card

        return build_model_card(self.config(), self.estimators(), repo_id=repo_id, **card_data)

    # ------------------------------------------------------------------ loading
    _check_pretrained_source = False  # bundle_folder says what is wrong with a source that is neither

    @classmethod
    def _load_pretrained(
        cls,
        model_id: str,
        hub: dict[str, Any],
        *,
        proxies: dict | None = None,
        resume_download: bool | None = None,
        model: Any = None,
        tokenizer: Any = None,
        **encoder_kwargs: Any,
    ) -> SAERLPipeline:
        """What ``from_pretrained`` (:class:`~hf_saerl.core.hub.HubLoadMixin`) does: load a pipeline from a local
        folder or a Hub model repo, checked first by :func:`~hf_saerl.pipeline.bundle.check_bundle`, with its
        parts built back.

        Args:
            model_id: a folder written by :meth:`save_pretrained`, or a Hub repo id.
            hub: ``force_download``, ``token``, ``cache_dir``, ``local_files_only``, ``revision``, as in
                ``huggingface_hub`` (``proxies`` and ``resume_download``, which it passes too, are not used).
            model, tokenizer: use this model (id, folder or loaded object) instead of the recorded one,
                e.g. a local copy when the Hub is out of reach.
            encoder_kwargs: runtime ``SAEEncoder`` options such as ``device=``, ``dtype=``, ``token_budget=``.
        """
        folder = bundle_folder(model_id, **hub)
        config = check_bundle(folder)
        estimators = load_estimators(folder, config)
        encoder = None
        if config.get("model") is not None:
            encoder = build_encoder(folder, config, model, tokenizer, encoder_kwargs)
        pipeline = cls(
            encoder,
            **estimators,
            quality_threshold=config.get("quality_threshold"),
            model_id=(config.get("model") or {}).get("id"),
            tokenizer_id=(config.get("model") or {}).get("tokenizer"),
        )
        try:
            pipeline._validate()
        except (InvalidParameterError, NonFiniteError, ParameterTypeError) as e:  # a value config.json holds
            raise type(e)(f"{Path(folder) / 'config.json'}: {e}") from e
        pipeline.fit_info_ = config.get("fit") or {}
        return pipeline


# ====================================================================== helpers
def _refuse_config(pipeline: SAERLPipeline, config: Any) -> None:
    """A ``config=`` from the caller is refused; the mixin's own record of the constructor's JSON-able arguments,
    which it hands from ``save_pretrained`` to ``push_to_hub`` and back, is not the caller's and is let through."""
    if config is not None and config is not getattr(pipeline, "_hub_mixin_config", None):
        raise InvalidParameterError(
            "SAERLPipeline.save_pretrained / push_to_hub take no config=: the bundle's config.json is derived from "
            "the pipeline's parts. Set model_id= (SAERLPipeline(..., model_id=...) or pipeline.set_params(model_id="
            "...)) to change where the model is recorded, or change the parts (encoder, estimators, "
            "quality_threshold) before saving."
        )


def _check_threshold(threshold: Any, quality: Any) -> None:
    """``quality_threshold`` is None or a finite number, and inside [0, 1] for a fitted classifier probe (its scores
    are probabilities: a threshold outside would keep every row or none)."""
    if threshold is None:
        return
    check_real("quality_threshold", threshold, "Pass a finite quality_threshold (e.g. 0.5), or None to keep every row.")
    if getattr(quality, "task_", None) == "classification":
        check_probability_threshold("quality_threshold", float(threshold), "the quality probe")


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
        kwargs.update(
            desc=f"quality >= {threshold}",
            new_fingerprint=stable_hash([ds._fingerprint, "quality>=", column, threshold], 32),
        )
    return ds.filter(_AtLeast(threshold), **kwargs)
