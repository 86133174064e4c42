"""``PreferenceAudit``: what will this preference data teach? Concept-level disparities before DPO.

Following "Anatomy of Post-Training" (arXiv 2606.12360): each response span (its own tokens, read with
the prompt as context) is pooled with **max** and **firing-frequency** pooling; a latent *fires* on a
response when its max activation exceeds ``activation_threshold`` and its firing frequency exceeds
``frequency_threshold``. Latents are grouped into co-firing concepts (:class:`LatentConcepts`); the
per-pair signed disparity of a concept is the share of its latents firing on chosen minus on rejected.
Pairs are clustered into data regions on their symmetric activity, and
:func:`~hf_saerl.audit.statistics.concept_statistics` tests each concept per region against the rest and
globally. Everything stays sparse (CSR); no dense ``n × d_sae`` matrix is built beyond one encoding chunk.

A fitted audit is saved and shared like the estimators (``save_pretrained`` / ``from_pretrained`` /
``push_to_hub``, safetensors + JSON, see :mod:`.saving`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from huggingface_hub import ModelHubMixin
from sklearn.base import BaseEstimator

from ..core.columns import column_names
from ..core.hub import HubLoadMixin
from ..core.validation import check_choice, check_fitted, check_integer, check_real
from ..errors import (
    InvalidParameterError,
    MissingColumnError,
    NonFiniteError,
    WidthMismatchError,
)
from .concepts import LatentConcepts, _concept_disparity, firing
from .regions import _audit_regions
from .rows import _digests_of_pairs, pair_digests
from .saving import AUDIT_CARD, _card_values, load_audit, save_audit
from .spans import SpanFeatures, encode_prompts, encode_response_spans
from .statistics import GLOBAL_REGION, concept_statistics

__all__ = ["PreferenceAudit"]


def _check_matrix(name: str, X: Any, n: int | None, d: int | None) -> sp.csr_matrix:
    X = sp.csr_matrix(X, dtype=np.float32)
    if X.nnz and not np.all(np.isfinite(X.data)):
        raise NonFiniteError(
            f"{name} holds NaN or infinite values; re-encode (e.g. the SAE in fp32) before auditing, "
            "or drop those pairs."
        )
    if n is not None and X.shape[0] != n:
        raise InvalidParameterError(
            f"{name} has {X.shape[0]} rows, expected {n} (one per pair). Pass the matrices of "
            "the same pairs, in the same order."
        )
    if d is not None and X.shape[1] != d:
        raise WidthMismatchError(
            f"{name} has width {X.shape[1]}, expected d_sae={d}. Pool every side with the same SAE."
        )
    return X


def _concept_table(
    audit: Any,
    concepts: LatentConcepts,
    disparity: sp.csr_matrix,
    regions: np.ndarray,
    region_names: list[str],
    prompt_max: sp.csr_matrix | None,
) -> pd.DataFrame:
    """:func:`concept_statistics` with each concept's latents, its region's name and (with the prompts) the share
    of its latents firing on the prompt alone."""
    stats = concept_statistics(
        disparity, regions, z_threshold=audit.z_threshold, half_z_threshold=audit.half_z_threshold
    )
    sizes = np.array([len(g) for g in concepts.concepts_])
    stats["n_latents"] = sizes[stats["concept"].to_numpy()]
    stats["latents"] = [concepts.concepts_[k].tolist() for k in stats["concept"]]
    names = {GLOBAL_REGION: "all", **dict(enumerate(region_names))}
    stats.insert(1, "region_name", [names[r] for r in stats["region"]])
    if prompt_max is not None:
        prompt_fires = sp.csr_matrix(prompt_max > audit.activation_threshold, dtype=np.float64)
        share = np.asarray(concepts.shares(prompt_fires).mean(axis=0)).ravel()
        stats["prompt_share"] = share[stats["concept"].to_numpy()]
    return stats


class PreferenceAudit(
    HubLoadMixin,
    ModelHubMixin,
    BaseEstimator,
    library_name="hf_saerl",
    tags=["hf_saerl", "sparse-autoencoder", "preference-audit"],
    model_card_template=AUDIT_CARD,
):
    """Audit a preference dataset (prompt / chosen / rejected) at the level of SAE concepts.

    Args:
        encoder: an :class:`hf_saerl.SAEEncoder` (needed by :meth:`fit`; not by :meth:`fit_features`).
        prompt_column, chosen_column, rejected_column: column names (strings or chat message lists).
        activation_threshold: a latent fires on a span when its max-pooled activation exceeds this ...
        frequency_threshold: ... and its firing frequency (share of span tokens active) exceeds this.
        min_support, similarity, max_grouped_latents: concept grouping (see :class:`LatentConcepts`).
        n_regions: data regions (``"auto"``: best silhouette in ``auto_range``; ``1``: global view only).
        region_column: use this column's labels as the regions instead of clustering.
        z_threshold, half_z_threshold: flagging thresholds (see :func:`concept_statistics`).
        encode_prompt: also pool the prompt span on its own (``prompt_share`` in the table).
        top_k: keep only each span's top-k latents per pooling (``None``: every non-zero).
        batch_size: pairs per forward chunk. progress: tqdm bars. random_state: seed of the region clustering.

    Fitted attributes: ``chosen_max_``, ``chosen_freq_``, ``rejected_max_``, ``rejected_freq_``, ``prompt_max_``
    (CSR ``(n, d_sae)``), ``chosen_fires_``, ``rejected_fires_`` (0/1 CSR), ``concepts_``
    (:class:`LatentConcepts`), ``disparity_`` (CSR ``(n, n_concepts)``), ``regions_`` (int per pair),
    ``region_names_``, ``statistics_`` (DataFrame), ``n_pairs_``, ``d_sae_``, ``texts_`` (chosen / rejected, for
    the report's snippets), and what :meth:`fit` records (``None`` / 0 after :meth:`fit_features`):
    ``pair_digests_`` (a digest per pair, see :mod:`.rows`), ``n_tokens_``, ``n_truncated_``, ``encoder_config_``
    (``encoder.config()``).

    Example:
        >>> from datasets import Dataset
        >>> from hf_saerl import SAEEncoder
        >>> from hf_saerl.audit import PreferenceAudit
        >>> from hf_saerl.testing import tiny_llama, tiny_sae, tiny_tokenizer
        >>> enc = SAEEncoder(tiny_llama(), tiny_sae(), tokenizer=tiny_tokenizer())
        >>> pairs = Dataset.from_dict({"prompt": ["2+2?", "3+3?"] * 4, "chosen": ["4, surely.", "6, surely."] * 4,
        ...                            "rejected": ["5", "7"] * 4})
        >>> audit = PreferenceAudit(enc, n_regions=1, progress=False).fit(pairs)
        >>> audit.disparity_.shape[0], list(audit.statistics_.columns[:4])
        (8, ['region', 'region_name', 'concept', 'leaning'])
    """

    #: What to call before the queries (named by their ``NotFittedError``).
    fit_hint = "fit(dataset) or fit_features(...)"

    def __init__(
        self,
        encoder: Any = None,
        *,
        prompt_column: str = "prompt",
        chosen_column: str = "chosen",
        rejected_column: str = "rejected",
        activation_threshold: float = 0.0,
        frequency_threshold: float = 0.0,
        min_support: int = 3,
        similarity: float = 0.5,
        max_grouped_latents: int = 2048,
        n_regions: int | str = "auto",
        auto_range: tuple[int, int] = (2, 8),
        region_column: str | None = None,
        z_threshold: float = 3.0,
        half_z_threshold: float = 2.0,
        encode_prompt: bool = True,
        top_k: int | None = None,
        batch_size: int = 32,
        progress: bool = True,
        random_state: int | None = 0,
    ):
        self.encoder = encoder
        self.prompt_column, self.chosen_column, self.rejected_column = prompt_column, chosen_column, rejected_column
        self.activation_threshold, self.frequency_threshold = activation_threshold, frequency_threshold
        self.min_support, self.similarity, self.max_grouped_latents = min_support, similarity, max_grouped_latents
        self.n_regions, self.auto_range, self.region_column = n_regions, auto_range, region_column
        self.z_threshold, self.half_z_threshold = z_threshold, half_z_threshold
        self.encode_prompt, self.top_k, self.batch_size = encode_prompt, top_k, batch_size
        self.progress, self.random_state = progress, random_state

    def set_params(self, **params: Any) -> PreferenceAudit:
        """Set constructor parameters (scikit-learn style); an unknown name is an InvalidParameterError."""
        valid = self.get_params(deep=False)
        unknown = sorted(set(params) - set(valid))
        if unknown:
            raise InvalidParameterError(f"Unknown parameter(s) {unknown}; valid: {sorted(valid)}.")
        return super().set_params(**params)

    def __sklearn_is_fitted__(self) -> bool:
        """Fitted once :attr:`statistics_` is set, which ``fit_features`` (and ``from_pretrained``) does last."""
        return hasattr(self, "statistics_")

    # ------------------------------------------------------------------ fitting
    def fit(self, dataset: Any, y: Any = None) -> PreferenceAudit:
        """Encode every pair's spans with :attr:`encoder`, then fit as :meth:`fit_features` does. Returns self."""
        if self.encoder is None:
            raise InvalidParameterError(
                "PreferenceAudit.fit needs an encoder: PreferenceAudit(SAEEncoder(...)). With "
                "features already pooled, call fit_features(...) instead."
            )
        cols = [self.prompt_column, self.chosen_column, self.rejected_column]
        if self.region_column:
            cols.append(self.region_column)
        names = column_names(dataset) or []
        missing = [c for c in cols if c not in names]
        if missing:
            raise MissingColumnError(
                f"Missing column(s) {missing}; the dataset has {sorted(names)}. Pass "
                "prompt_column=, chosen_column=, rejected_column= (or region_column=) naming "
                "existing columns."
            )
        prompts, chosen, rejected = (list(dataset[c]) for c in cols[:3])
        if not prompts:
            raise InvalidParameterError("The dataset has no pairs to audit; pass a dataset with at least one row.")

        def spans(responses: list[Any], column: str) -> SpanFeatures:
            return encode_response_spans(
                self.encoder,
                prompts,
                responses,
                poolings=("max", "freq"),
                top_k=self.top_k,
                batch_size=self.batch_size,
                progress=self.progress,
                column=column,
            )

        c, r = spans(chosen, self.chosen_column), spans(rejected, self.rejected_column)
        p = None
        if self.encode_prompt:
            p = encode_prompts(
                self.encoder, prompts, top_k=self.top_k, batch_size=self.batch_size, progress=self.progress
            ).pooled["max"]
        labels = list(dataset[self.region_column]) if self.region_column else None
        return self._fit(
            c.pooled["max"],
            c.pooled["freq"],
            r.pooled["max"],
            r.pooled["freq"],
            prompt_max=p,
            region_labels=labels,
            texts=(chosen, rejected),
            digests=pair_digests(prompts, chosen, rejected),
            n_tokens={"chosen": c.n_tokens, "rejected": r.n_tokens},
            n_truncated=int(c.truncated.sum() + r.truncated.sum()),
            encoder_config=self.encoder.config() if hasattr(self.encoder, "config") else None,
        )

    def fit_features(
        self,
        chosen_max: Any,
        chosen_freq: Any,
        rejected_max: Any,
        rejected_freq: Any,
        *,
        prompt_max: Any = None,
        regions: Any = None,
        region_labels: Sequence[Any] | None = None,
        texts: tuple[Sequence[Any], Sequence[Any]] | None = None,
        pairs: Any = None,
    ) -> PreferenceAudit:
        """Fit from already pooled ``(n, d_sae)`` matrices (max and firing-frequency pooling of each side).

        ``regions`` (int ids) or ``region_labels`` (any labels) override the region clustering; ``texts``
        ``(chosen, rejected)`` are kept for the report's example snippets. ``pairs`` (the dataset the features were
        pooled from, with the prompt / chosen / rejected columns, or a ``(prompts, chosen, rejected)`` tuple) keeps
        a digest of each pair, as :meth:`fit` does, so the interventions refuse a reordered or edited copy; without
        it only the number of rows is checked. Returns self.
        """
        digests = None
        if pairs is not None:
            columns = (self.prompt_column, self.chosen_column, self.rejected_column)
            digests = _digests_of_pairs(pairs, columns, chosen_max)
        return self._fit(
            chosen_max,
            chosen_freq,
            rejected_max,
            rejected_freq,
            prompt_max=prompt_max,
            regions=regions,
            region_labels=region_labels,
            texts=texts,
            digests=digests,
        )

    def _fit(
        self,
        chosen_max: Any,
        chosen_freq: Any,
        rejected_max: Any,
        rejected_freq: Any,
        *,
        prompt_max: Any = None,
        regions: Any = None,
        region_labels: Sequence[Any] | None = None,
        texts: tuple[Sequence[Any], Sequence[Any]] | None = None,
        digests: np.ndarray | None = None,
        n_tokens: dict[str, np.ndarray] | None = None,
        n_truncated: int = 0,
        encoder_config: dict[str, Any] | None = None,
    ) -> PreferenceAudit:
        """Everything is computed first and set at the end, so a fit that fails leaves no partial state."""
        self._check_params()
        chosen_max = _check_matrix("chosen_max", chosen_max, None, None)
        n, d = chosen_max.shape
        if n == 0:
            raise InvalidParameterError("No pairs to audit (0 rows); pass matrices with one row per pair.")
        chosen_freq = _check_matrix("chosen_freq", chosen_freq, n, d)
        rejected_max = _check_matrix("rejected_max", rejected_max, n, d)
        rejected_freq = _check_matrix("rejected_freq", rejected_freq, n, d)
        prompt_max = None if prompt_max is None else _check_matrix("prompt_max", prompt_max, n, d)
        chosen_fires = firing(chosen_max, chosen_freq, self.activation_threshold, self.frequency_threshold)
        rejected_fires = firing(rejected_max, rejected_freq, self.activation_threshold, self.frequency_threshold)
        concepts, disparity = _concept_disparity(
            chosen_fires, rejected_fires, self.min_support, self.similarity, self.max_grouped_latents
        )
        if texts is not None and (len(texts) != 2 or any(len(side) != n for side in texts)):
            raise InvalidParameterError(
                f"texts must be (chosen, rejected) with one text per pair ({n}) each; got "
                f"lengths {[len(side) for side in texts]}. Pass the texts of the pooled pairs, "
                "in the same order, or texts=None."
            )
        region_ids, region_names = _audit_regions(self, regions, region_labels, chosen_freq, rejected_freq)
        stats = _concept_table(self, concepts, disparity, region_ids, region_names, prompt_max)

        self.chosen_max_, self.chosen_freq_ = chosen_max, chosen_freq
        self.rejected_max_, self.rejected_freq_ = rejected_max, rejected_freq
        self.prompt_max_ = prompt_max
        self.n_pairs_, self.d_sae_ = n, d
        self.chosen_fires_, self.rejected_fires_ = chosen_fires, rejected_fires
        self.concepts_, self.disparity_ = concepts, disparity
        self.regions_, self.region_names_ = region_ids, region_names
        self.texts_ = None if texts is None else (list(texts[0]), list(texts[1]))
        self.pair_digests_, self.n_tokens_, self.n_truncated_ = digests, n_tokens, int(n_truncated)
        self.encoder_config_ = encoder_config
        self.statistics_ = stats  # last: the audit counts as fitted from here on
        return self

    def _check_params(self) -> None:
        """Refuse (naming the parameter) a NaN or infinite threshold, or a count that is not a whole number, before
        any work: a NaN ``z_threshold`` would silently flag nothing."""
        for name, low in (
            ("activation_threshold", None),
            ("frequency_threshold", None),
            ("z_threshold", 0.0),
            ("half_z_threshold", 0.0),
        ):
            check_real(
                name,
                getattr(self, name),
                f"Pass a finite {name} (the default is {PreferenceAudit().get_params()[name]}).",
                low=low,
            )
        for name in ("min_support", "max_grouped_latents", "batch_size"):
            check_integer(
                name,
                getattr(self, name),
                f"Pass a whole number, e.g. {name}={PreferenceAudit().get_params()[name]}.",
                minimum=1,
            )
        if self.top_k is not None:
            check_integer(
                "top_k",
                self.top_k,
                "Pass the latents to keep per span, e.g. top_k=64, or top_k=None for every non-zero one.",
                minimum=1,
            )
        if self.n_regions != "auto":
            check_integer(
                "n_regions",
                self.n_regions,
                "Pass the number of data regions, e.g. n_regions=4, "
                "n_regions=1 for the global view only, or n_regions='auto'.",
                minimum=1,
            )

    # ------------------------------------------------------------------ queries
    def flagged(self, leaning: str | None = None, region: int | None = None, top: int | None = None) -> pd.DataFrame:
        """Flagged rows of :attr:`statistics_` (by ``rank_score``), optionally one leaning / region."""
        check_fitted(self, "flagged")
        t = self.statistics_[self.statistics_["flagged"]]
        if leaning is not None:
            t = t[t["leaning"] == check_choice("leaning", leaning, ("chosen", "rejected"))]
        if region is not None:
            t = t[t["region"] == region]
        return t.head(top) if top is not None else t

    def concept_of(self, latent: int) -> int:
        """The concept id holding ``latent`` (−1 if it is in none)."""
        check_fitted(self, "concept_of")
        if not 0 <= int(latent) < self.d_sae_:
            raise InvalidParameterError(f"latent must be an SAE latent id in [0, {self.d_sae_}); got {latent}.")
        return int(self.concepts_.latent_concept_[latent])

    def disparity(self, concepts: int | Sequence[int]) -> np.ndarray:
        """Per-pair disparity (chosen share − rejected share) of one concept ``(n,)`` or several ``(n, k)``."""
        check_fitted(self, "disparity")
        return self._concept_columns(self.disparity_, concepts)

    def concept_scores(self, concepts: int | Sequence[int], side: str = "chosen") -> np.ndarray:
        """Per-pair concept score (share of the concept's latents firing) on ``side`` ('chosen'/'rejected')."""
        check_fitted(self, "concept_scores")
        fires = {"chosen": self.chosen_fires_, "rejected": self.rejected_fires_}[
            check_choice("side", side, ("chosen", "rejected"))
        ]
        return self._concept_columns(self.concepts_.shares(fires), concepts)

    def _concept_columns(self, per_concept: sp.csr_matrix, concepts: int | Sequence[int]) -> np.ndarray:
        """Columns ``concepts`` of an ``(n, n_concepts)`` matrix: ``(n,)`` for one id, ``(n, k)`` for several."""
        ids = np.atleast_1d(np.asarray(concepts, dtype=np.int64))
        n_concepts = self.concepts_.n_concepts_
        if ids.size and (ids.min() < 0 or ids.max() >= n_concepts):
            raise InvalidParameterError(
                f"Concept ids must be in [0, {n_concepts}); got {ids.tolist()}. Map a latent "
                "to its concept with concept_of(latent)."
            )
        out = per_concept[:, ids].toarray()
        return out[:, 0] if np.isscalar(concepts) else out

    def report(
        self,
        top: int = 10,
        n_examples: int = 3,
        labeler: Callable[..., str] | None = None,
        snippet_chars: int = 160,
        region: int | None = None,
        flagged_only: bool = False,
    ):
        """An :class:`~hf_saerl.audit.report.AuditReport` of the ``top`` chosen- and rejected-leaning concepts."""
        from .report import AuditReport

        check_fitted(self, "report")
        return AuditReport.from_audit(
            self,
            top=top,
            n_examples=n_examples,
            labeler=labeler,
            snippet_chars=snippet_chars,
            region=region,
            flagged_only=flagged_only,
        )

    # ------------------------------------------------------------------ saving (huggingface_hub ModelHubMixin)
    def _save_pretrained(self, save_directory: Path) -> None:
        """Write the audit into ``save_directory`` (see :mod:`.saving`); ``save_pretrained`` adds the card."""
        check_fitted(self, "save_pretrained")
        save_audit(self, Path(save_directory))

    def generate_model_card(self, *args: Any, **kwargs: Any):
        check_fitted(self, "generate_model_card")
        values = {**_card_values(self), **kwargs}
        return super().generate_model_card(*args, **values)

    @classmethod
    def _load_pretrained(
        cls,
        model_id: str,
        hub: dict[str, Any],
        *,
        encoder: Any = None,
        subfolder: str | None = None,
        **params: Any,
    ) -> PreferenceAudit:
        """What ``from_pretrained`` (:class:`~hf_saerl.core.hub.HubLoadMixin`) does: load a saved audit from a
        folder or a Hub repo id (optionally a ``subfolder`` of it; ``hub``: the ``huggingface_hub`` options); see
        :func:`.saving.load_audit`.

        The encoder is not saved (only its ``config()``): pass ``encoder=`` to :meth:`fit` again later; its SAE
        width and hook are checked against the saved ones. ``params`` override constructor parameters that did
        not decide the fitted state (column names, ``batch_size``, ``progress``).
        """
        return load_audit(cls, model_id, encoder=encoder, subfolder=subfolder, params=params, **hub)
