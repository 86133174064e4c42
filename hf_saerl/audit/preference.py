"""``PreferenceAudit``: what will this preference data teach? Concept-level disparities before DPO.

Following "Anatomy of Post-Training" (arXiv 2606.12360): each response span (its own tokens, read with
the prompt as context) is pooled with **max** and **firing-frequency** pooling; a latent *fires* on a
response when its max activation exceeds ``activation_threshold`` and its firing frequency exceeds
``frequency_threshold``. Latents are grouped into co-firing concepts (:class:`LatentConcepts`); the
per-pair signed disparity of a concept is the share of its latents firing on chosen minus on rejected.
Pairs are clustered into data regions on their symmetric activity, and
:func:`~hf_saerl.audit.statistics.concept_statistics` tests each concept per region against the rest and
globally. Everything stays sparse (CSR); no dense ``n × d_sae`` matrix is built beyond one encoding chunk.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .concepts import LatentConcepts
from .regions import labels_to_regions, pair_regions
from .spans import encode_prompts, encode_response_spans
from .statistics import GLOBAL_REGION, concept_statistics

__all__ = ["PreferenceAudit"]


def _firing(max_pooled: sp.csr_matrix, freq_pooled: sp.csr_matrix, act_thr: float, freq_thr: float) -> sp.csr_matrix:
    """0/1 CSR: max activation > act_thr and firing frequency > freq_thr."""
    a = sp.csr_matrix(max_pooled, dtype=np.float64)
    f = sp.csr_matrix(freq_pooled, dtype=np.float64)
    a.data = (a.data > act_thr).astype(np.float64)
    f.data = (f.data > freq_thr).astype(np.float64)
    out = sp.csr_matrix(a.multiply(f))
    out.eliminate_zeros()
    return out


def _check_matrix(name: str, X: Any, n: int | None, d: int | None) -> sp.csr_matrix:
    X = sp.csr_matrix(X, dtype=np.float32)
    if X.nnz and not np.all(np.isfinite(X.data)):
        raise ValueError(f"{name} holds NaN or infinite values; re-encode (e.g. the SAE in fp32) before auditing.")
    if n is not None and X.shape[0] != n:
        raise ValueError(f"{name} has {X.shape[0]} rows, expected {n} (one per pair).")
    if d is not None and X.shape[1] != d:
        raise ValueError(f"{name} has width {X.shape[1]}, expected d_sae={d}.")
    return X


class PreferenceAudit:
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
    ``region_names_``, ``statistics_`` (DataFrame), ``n_pairs_``, ``d_sae_``.

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

    def get_params(self, deep: bool = False) -> dict[str, Any]:
        """The constructor parameters (scikit-learn style)."""
        import inspect

        return {k: getattr(self, k) for k in inspect.signature(type(self).__init__).parameters if k != "self"}

    def set_params(self, **params: Any) -> "PreferenceAudit":
        valid = self.get_params()
        for key, value in params.items():
            if key not in valid:
                raise ValueError(f"Unknown parameter {key!r}; valid: {sorted(valid)}.")
            setattr(self, key, value)
        return self

    # ------------------------------------------------------------------ fitting
    def fit(self, dataset: Any, y: Any = None) -> "PreferenceAudit":
        """Encode every pair's spans with :attr:`encoder`, then :meth:`fit_features`. Returns self."""
        if self.encoder is None:
            raise ValueError("PreferenceAudit.fit needs an encoder: PreferenceAudit(SAEEncoder(...)). With features "
                             "already pooled, call fit_features(...) instead.")
        cols = [self.prompt_column, self.chosen_column, self.rejected_column]
        if self.region_column:
            cols.append(self.region_column)
        names = list(getattr(dataset, "column_names", None) or dataset.keys())
        missing = [c for c in cols if c not in names]
        if missing:
            raise KeyError(f"Missing column(s) {missing}; the dataset has {sorted(names)}. Pass prompt_column=, "
                           "chosen_column=, rejected_column= (or region_column=) naming existing columns.")
        prompts, chosen, rejected = (list(dataset[c]) for c in cols[:3])
        if not prompts:
            raise ValueError("The dataset has no pairs to audit.")
        kw = dict(poolings=("max", "freq"), top_k=self.top_k, batch_size=self.batch_size, progress=self.progress)
        c = encode_response_spans(self.encoder, prompts, chosen, column=self.chosen_column, **kw)
        r = encode_response_spans(self.encoder, prompts, rejected, column=self.rejected_column, **kw)
        p = None
        if self.encode_prompt:
            p = encode_prompts(self.encoder, prompts, top_k=self.top_k, batch_size=self.batch_size,
                               progress=self.progress).pooled["max"]
        labels = list(dataset[self.region_column]) if self.region_column else None
        self.n_tokens_ = {"chosen": c.n_tokens, "rejected": r.n_tokens}
        self.n_truncated_ = int(c.truncated.sum() + r.truncated.sum())
        return self.fit_features(c.pooled["max"], c.pooled["freq"], r.pooled["max"], r.pooled["freq"],
                                 prompt_max=p, region_labels=labels, texts=(chosen, rejected))

    def fit_features(self, chosen_max: Any, chosen_freq: Any, rejected_max: Any, rejected_freq: Any, *,
                     prompt_max: Any = None, regions: Any = None, region_labels: Sequence[Any] | None = None,
                     texts: tuple[Sequence[Any], Sequence[Any]] | None = None) -> "PreferenceAudit":
        """Fit from already pooled ``(n, d_sae)`` matrices (max and firing-frequency pooling of each side).

        ``regions`` (int ids) or ``region_labels`` (any labels) override the region clustering; ``texts``
        ``(chosen, rejected)`` are kept for the report's example snippets. Returns self.
        """
        chosen_max = _check_matrix("chosen_max", chosen_max, None, None)
        n, d = chosen_max.shape
        if n == 0:
            raise ValueError("No pairs to audit (0 rows).")
        chosen_freq = _check_matrix("chosen_freq", chosen_freq, n, d)
        rejected_max = _check_matrix("rejected_max", rejected_max, n, d)
        rejected_freq = _check_matrix("rejected_freq", rejected_freq, n, d)
        self.chosen_max_, self.chosen_freq_ = chosen_max, chosen_freq
        self.rejected_max_, self.rejected_freq_ = rejected_max, rejected_freq
        self.prompt_max_ = None if prompt_max is None else _check_matrix("prompt_max", prompt_max, n, d)
        self.n_pairs_, self.d_sae_ = n, d
        self.chosen_fires_ = _firing(chosen_max, chosen_freq, self.activation_threshold, self.frequency_threshold)
        self.rejected_fires_ = _firing(rejected_max, rejected_freq, self.activation_threshold, self.frequency_threshold)
        empty = np.flatnonzero((self.chosen_fires_.getnnz(axis=1) == 0) & (self.rejected_fires_.getnnz(axis=1) == 0))
        if len(empty) == n:
            raise ValueError("No latent fires on any response: lower activation_threshold / frequency_threshold, or "
                             "check the encoder (hook, SAE) produces activations.")
        self.concepts_ = LatentConcepts(self.min_support, self.similarity, self.max_grouped_latents).fit(
            sp.vstack([self.chosen_fires_, self.rejected_fires_]))
        if self.concepts_.n_concepts_ == 0:
            raise ValueError(f"No latent fires on at least min_support={self.min_support} responses; lower "
                             "min_support or audit more pairs.")
        self.disparity_ = sp.csr_matrix(self.concepts_.shares(self.chosen_fires_) - self.concepts_.shares(self.rejected_fires_))
        if regions is not None:
            self.regions_ = np.asarray(regions, dtype=np.int64)
            self.region_names_ = [f"region {k}" for k in range(int(self.regions_.max()) + 1)]
        elif region_labels is not None:
            self.regions_, self.region_names_ = labels_to_regions(region_labels)
        else:
            self.regions_, self.region_names_ = pair_regions(chosen_freq, rejected_freq, n_regions=self.n_regions,
                                                             auto_range=self.auto_range, random_state=self.random_state)
        if self.regions_.shape != (n,):
            raise ValueError(f"regions must give one id per pair ({n}); got shape {self.regions_.shape}.")
        stats = concept_statistics(self.disparity_, self.regions_, z_threshold=self.z_threshold,
                                   half_z_threshold=self.half_z_threshold)
        sizes = np.array([len(g) for g in self.concepts_.concepts_])
        stats["n_latents"] = sizes[stats["concept"].to_numpy()]
        stats["latents"] = [self.concepts_.concepts_[k].tolist() for k in stats["concept"]]
        names = {GLOBAL_REGION: "all", **dict(enumerate(self.region_names_))}
        stats.insert(1, "region_name", [names[r] for r in stats["region"]])
        if self.prompt_max_ is not None:
            prompt_fires = sp.csr_matrix(self.prompt_max_ > self.activation_threshold, dtype=np.float64)
            share = np.asarray(self.concepts_.shares(prompt_fires).mean(axis=0)).ravel()
            stats["prompt_share"] = share[stats["concept"].to_numpy()]
        self.statistics_ = stats
        self.texts_ = None if texts is None else (list(texts[0]), list(texts[1]))
        return self

    # ------------------------------------------------------------------ queries
    def _check_fitted(self) -> None:
        if not hasattr(self, "statistics_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError("This PreferenceAudit is not fitted yet; call fit(dataset) or fit_features(...) first.")

    def flagged(self, leaning: str | None = None, region: int | None = None, top: int | None = None) -> pd.DataFrame:
        """Flagged rows of :attr:`statistics_` (by ``rank_score``), optionally one leaning / region."""
        self._check_fitted()
        t = self.statistics_[self.statistics_["flagged"]]
        if leaning is not None:
            if leaning not in ("chosen", "rejected"):
                raise ValueError(f"leaning must be 'chosen' or 'rejected', got {leaning!r}.")
            t = t[t["leaning"] == leaning]
        if region is not None:
            t = t[t["region"] == region]
        return t.head(top) if top is not None else t

    def concept_of(self, latent: int) -> int:
        """The concept id holding ``latent`` (−1 if it is in none)."""
        self._check_fitted()
        return int(self.concepts_.latent_concept_[latent])

    def disparity(self, concepts: int | Sequence[int]) -> np.ndarray:
        """Per-pair disparity (chosen share − rejected share) of one concept ``(n,)`` or several ``(n, k)``."""
        self._check_fitted()
        single = np.isscalar(concepts)
        ids = np.atleast_1d(np.asarray(concepts, dtype=np.int64))
        if ids.size and (ids.min() < 0 or ids.max() >= self.concepts_.n_concepts_):
            raise ValueError(f"Concept ids must be in [0, {self.concepts_.n_concepts_}); got {ids.tolist()}.")
        out = self.disparity_[:, ids].toarray()
        return out[:, 0] if single else out

    def concept_scores(self, concepts: int | Sequence[int], side: str = "chosen") -> np.ndarray:
        """Per-pair concept score (share of the concept's latents firing) on ``side`` ('chosen'/'rejected')."""
        self._check_fitted()
        fires = {"chosen": self.chosen_fires_, "rejected": self.rejected_fires_}.get(side)
        if fires is None:
            raise ValueError(f"side must be 'chosen' or 'rejected', got {side!r}.")
        single = np.isscalar(concepts)
        out = self.concepts_.shares(fires)[:, np.atleast_1d(concepts)].toarray()
        return out[:, 0] if single else out

    def report(self, top: int = 10, n_examples: int = 3, labeler: Callable[..., str] | None = None,
               snippet_chars: int = 160, region: int | None = None, flagged_only: bool = False):
        """An :class:`~hf_saerl.audit.report.AuditReport` of the ``top`` chosen- and rejected-leaning concepts."""
        from .report import AuditReport

        self._check_fitted()
        return AuditReport.from_audit(self, top=top, n_examples=n_examples, labeler=labeler,
                                      snippet_chars=snippet_chars, region=region, flagged_only=flagged_only)
