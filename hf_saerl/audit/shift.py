"""Validate an audit by closing the loop: does training on the pairs shift each concept as the audit predicted?

Following "Anatomy of Post-Training" (arXiv 2606.12360): sample rollouts from a reference model and from the
model trained (e.g. by DPO) on the audited pairs, on the same prompts with the same per-prompt seeds; pool each
rollout through the audit's own encoder, span pooling (``max`` + ``freq``) and firing thresholds; score every
audited concept (share of its latents firing); and compare the measured change (trained mean − reference mean)
with the audit's prediction, the global chosen-minus-rejected Δ of that concept.

Two concept scores (``score=``, in every function that scores):

* ``"share"`` (default, the audit's own): the share of the concept's latents that fire anywhere in the span. It
  grows with the span's length (a longer answer gives every latent more chances to fire), so a trained model that
  answers shorter moves every concept down at once.
* ``"rate"`` (length-controlled): the mean over the concept's latents of their per-token firing rate in the span
  (the ``freq`` pooling: the share of the span's tokens where the latent is active), counted for the latents that
  fire by the audit's rule and 0 for the others (:meth:`~hf_saerl.audit.concepts.LatentConcepts.rates`). Text of
  the same kind scores the same whatever its length. The prediction is then the audit's pairs scored the same way
  (mean chosen-minus-rejected rate, globally and per region); the views (``flagged``, ``top``) keep the audit's own
  flags and z, so both scores are compared on the same concepts.

* :func:`sample_rollouts`: completions from any generation backend of :mod:`hf_saerl.rollouts.backends`
  (transformers, vLLM, or a ``Generator``), the ones the rollout labeller uses;
* :func:`rollout_concept_scores`: ``(n_rollouts, n_concepts)`` concept scores, pooled as the audit pooled;
* :func:`compare_shift`: the per-concept table and the fit metrics (a pure function of arrays);
  :func:`compare_regions` the same per (region, concept) cell;
* :func:`validate_shift`: all three; returns a :class:`ShiftValidation` (table as DataFrame / Dataset, metrics,
  scatter plot, side effects such as answer length).

Metrics, per view (``all`` concepts, the ``flagged`` ones, the ``top`` concepts by the audit's global |z|):
``r2`` is the R² of the least-squares line of measured on predicted (= Pearson r², the paper's "R² between
predicted and actual change", blind to scale since DPO moves a concept by far less than the data's Δ);
``r2_identity`` is ``1 − Σ(measured − predicted)² / Σ(measured − mean)²`` with the prediction taken at face value;
``pearson`` (and its two-sided ``pearson_p``), ``spearman``, ``slope``, ``intercept``; ``sign_agreement`` is the
share of concepts with a non-zero prediction whose measured shift has its sign (for ``flagged``: the sign of the
flagged row's Δ, which may be a region's). With ``regions=`` (one label per held-out prompt), the
region-conditioned views ``regions`` and ``regions_flagged`` compare every (region, concept) cell: the region's own
mean Δ against the shift measured on that region's prompts (:func:`compare_regions`).

Example:
    >>> import numpy as np
    >>> predicted = np.array([0.4, -0.2, 0.0, 0.1])
    >>> ref = np.zeros((4, 4)); trained = np.tile([0.2, -0.1, 0.0, 0.05], (4, 1))
    >>> table, metrics = compare_shift(predicted, ref, trained)
    >>> table["measured_shift"].round(3).tolist(), round(metrics["all"]["r2"], 6), metrics["all"]["sign_agreement"]
    ([0.2, -0.1, 0.0, 0.05], 1.0, 1.0)
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..core.serialization import jsonable, write_json
from ..core.validation import check_fitted, check_integer, is_missing
from ..errors import InvalidParameterError, RowMismatchError, UsageError
from .concepts import firing
from .spans import encode_response_spans
from .statistics import GLOBAL_REGION

logger = logging.getLogger(__name__)

__all__ = [
    "SCORES",
    "ShiftValidation",
    "audit_predictions",
    "compare_regions",
    "compare_shift",
    "fit_metrics",
    "pair_disparity",
    "region_predictions",
    "rollout_concept_scores",
    "sample_rollouts",
    "side_effects",
    "validate_shift",
]

#: The concept scores: ``share`` (of latents firing anywhere in the span) and ``rate`` (per-token firing rate).
SCORES = ("share", "rate")

#: ``format_version`` of :meth:`ShiftValidation.save`'s JSON.
SHIFT_FORMAT_VERSION = 1

_NUMBERED = re.compile(r"^\s*(\d+[.)]|Step \d)", re.M)


# ---------------------------------------------------------------------------------------------- predictions
def _check_score(score: str) -> str:
    if score not in SCORES:
        raise InvalidParameterError(
            f"score must be one of {SCORES}; got {score!r}. Pass score='share' (the audit's "
            "own score) or score='rate' (length-controlled)."
        )
    return score


def pair_disparity(audit: Any, score: str = "share") -> Any:
    """``(n_pairs, n_concepts)`` chosen-minus-rejected concept score of every audited pair, as CSR.

    ``score="share"`` is the audit's own ``disparity_``; ``score="rate"`` the difference of the per-token firing
    rates (:meth:`~hf_saerl.audit.concepts.LatentConcepts.rates`) of the chosen and rejected spans.

    Example (one latent, active on 1 of 2 chosen tokens and 1 of 4 rejected tokens, so it fires on both):
        >>> import numpy as np, scipy.sparse as sp
        >>> from hf_saerl.audit import PreferenceAudit
        >>> c_max, r_max = sp.csr_matrix(np.ones((4, 1))), sp.csr_matrix(np.ones((4, 1)))
        >>> c_freq, r_freq = sp.csr_matrix(np.full((4, 1), 0.5)), sp.csr_matrix(np.full((4, 1), 0.25))
        >>> audit = PreferenceAudit(n_regions=1, min_support=1).fit_features(c_max, c_freq, r_max, r_freq)
        >>> pair_disparity(audit).toarray().ravel().tolist(), pair_disparity(audit, "rate").toarray().ravel().tolist()
        ([0.0, 0.0, 0.0, 0.0], [0.25, 0.25, 0.25, 0.25])
    """
    import scipy.sparse as sp

    check_fitted(audit, "pair_disparity")
    if _check_score(score) == "share":
        return audit.disparity_
    concepts = audit.concepts_
    return sp.csr_matrix(
        concepts.rates(audit.chosen_fires_, audit.chosen_freq_)
        - concepts.rates(audit.rejected_fires_, audit.rejected_freq_)
    )


def audit_predictions(audit: Any, score: str = "share") -> pd.DataFrame:
    """One row per concept of a fitted audit: ``concept``, ``n_latents``, ``predicted_delta`` (global Δ: mean
    chosen-minus-rejected disparity), ``predicted_z`` (its one-sample z), ``flagged`` (in any region or globally),
    ``flagged_sign`` (sign of the best-ranked flagged row's Δ, 0 when not flagged) and ``flagged_regions``.

    With ``score="rate"``, ``predicted_delta`` is the mean chosen-minus-rejected per-token firing rate
    (:func:`pair_disparity`); ``predicted_z``, ``flagged`` and ``flagged_sign`` stay the audit's own.

    Example:
        >>> import numpy as np, scipy.sparse as sp
        >>> from hf_saerl.audit import PreferenceAudit
        >>> c = sp.csr_matrix(np.tile([[1.0, 1.0], [1.0, 1.0], [1.0, 0.0], [1.0, 0.0]], (10, 1)))
        >>> r = sp.csr_matrix(np.tile([[0.0, 1.0], [0.0, 1.0], [1.0, 0.0], [1.0, 0.0]], (10, 1)))
        >>> audit = PreferenceAudit(n_regions=1, min_support=1).fit_features(c, c, r, r)
        >>> audit_predictions(audit)[["concept", "predicted_delta", "flagged"]].values.tolist()
        [[0, 0.5, True], [1, 0.0, False]]
    """
    check_fitted(audit, "audit_predictions")
    stats = audit.statistics_
    K = int(audit.concepts_.n_concepts_)
    glob = stats[stats["region"] == GLOBAL_REGION].set_index("concept")
    delta = glob["delta"].reindex(range(K)).fillna(0.0).to_numpy(dtype=np.float64)
    z = glob["welch_z"].reindex(range(K)).to_numpy(dtype=np.float64)
    flagged_rows = stats[stats["flagged"]]  # statistics_ is sorted by rank_score: the first row per concept is best
    sign = np.zeros(K)
    regions: list[list[str]] = [[] for _ in range(K)]
    for _, row in flagged_rows.iterrows():
        k = int(row["concept"])
        if not regions[k]:
            sign[k] = np.sign(row["delta"])
        regions[k].append(str(row["region_name"]))
    if _check_score(score) == "rate":
        delta = np.asarray(pair_disparity(audit, "rate").mean(axis=0), dtype=np.float64).ravel()
    return pd.DataFrame(
        {
            "concept": np.arange(K, dtype=np.int64),
            "n_latents": np.array([len(g) for g in audit.concepts_.concepts_], dtype=np.int64),
            "predicted_delta": delta,
            "predicted_z": z,
            "flagged": np.array([bool(r) for r in regions]),
            "flagged_sign": sign,
            "flagged_regions": regions,
        }
    )


def region_predictions(audit: Any, score: str = "share") -> pd.DataFrame:
    """One row per (region, concept) of a fitted audit's regions (the global rows left out): ``region_name``,
    ``concept``, ``predicted_delta`` (the region's own mean chosen-minus-rejected disparity, what DPO on that
    region's pairs pushes toward), ``contrast_delta`` (the audit's ``delta``: the region against the rest),
    ``flagged`` and ``n_pairs``. An audit with one region has only its global rows: they are that region's.
    With ``score="rate"`` both deltas are of the per-token firing rates (:func:`pair_disparity`); ``flagged``
    stays the audit's.

    Example (one latent that fires on the chosen side of the "geo" pairs only):
        >>> import numpy as np, scipy.sparse as sp
        >>> from hf_saerl.audit import PreferenceAudit
        >>> chosen, rejected = sp.csr_matrix(np.tile([[1.0], [1.0], [0.0], [0.0]], (10, 1))), sp.csr_matrix((40, 1))
        >>> audit = PreferenceAudit(min_support=1).fit_features(chosen, chosen, rejected, rejected,
        ...                                                     region_labels=["geo", "geo", "alg", "alg"] * 10)
        >>> region_predictions(audit)[["region_name", "concept", "predicted_delta", "contrast_delta"]].values.tolist()
        [['alg', 0, 0.0, -1.0], ['geo', 0, 1.0, 1.0]]
    """
    check_fitted(audit, "region_predictions")
    stats = audit.statistics_
    if _check_score(score) == "rate":  # the same statistics of the rate disparity; the audit's flags kept
        from .statistics import concept_statistics

        flags = stats.set_index(["region", "concept"])["flagged"]
        stats = concept_statistics(pair_disparity(audit, "rate"), audit.regions_)
        names = {GLOBAL_REGION: "all", **dict(enumerate(audit.region_names_))}
        stats["region_name"] = [names[r] for r in stats["region"]]
        keys = pd.MultiIndex.from_arrays([stats["region"], stats["concept"]])
        stats["flagged"] = flags.reindex(keys).fillna(False).to_numpy(dtype=bool)
    rows = stats[stats["region"] != GLOBAL_REGION]
    if rows.empty:  # one region: the global rows are its rows
        rows = stats[stats["region"] == GLOBAL_REGION]
    table = pd.DataFrame(
        {
            "region_name": rows["region_name"].astype(str).to_numpy(),
            "concept": rows["concept"].to_numpy(dtype=np.int64),
            "predicted_delta": rows["mean_in"].to_numpy(dtype=np.float64),
            "contrast_delta": rows["delta"].to_numpy(dtype=np.float64),
            "flagged": rows["flagged"].to_numpy(dtype=bool),
            "n_pairs": rows["n_in"].to_numpy(dtype=np.int64),
        }
    )
    return table.sort_values(["region_name", "concept"], kind="stable").reset_index(drop=True)


# ---------------------------------------------------------------------------------------------- rollouts
def _prompt_list(prompts: Any, prompt_column: str) -> list[Any]:
    names = getattr(prompts, "column_names", None)
    if names is not None:
        if prompt_column not in names:
            raise InvalidParameterError(
                f"The prompt dataset has no {prompt_column!r} column (it has {sorted(names)}). "
                "Pass prompt_column=<name>, or a list of prompt strings."
            )
        prompts = prompts[prompt_column]
    if isinstance(prompts, str):
        raise InvalidParameterError("prompts must be a sequence of prompts, got one string. Wrap it: [prompt].")
    out = list(prompts)
    if not out:
        raise InvalidParameterError("No prompts to sample from; pass at least one (held-out) prompt.")
    bad = [i for i, p in enumerate(out) if is_missing(p)]
    if bad:
        raise InvalidParameterError(f"{len(bad)} missing (None/NaN) prompt(s) at rows {bad[:10]}; drop them or use ''.")
    return out


def sample_rollouts(
    policy: Any,
    prompts: Any,
    *,
    backend: str | Any = "transformers",
    tokenizer: Any = None,
    sampling: Mapping[str, Any] | None = None,
    n_samples: int = 1,
    seed: int = 0,
    batch_size: int = 16,
    prompt_column: str = "prompt",
    **backend_kwargs: Any,
) -> list[list[str]]:
    """``n_samples`` completions per prompt, ``[prompt][sample]``, from ``policy``.

    ``policy`` is a ``Generator`` (an object with ``generate``, used as is), a loaded causal LM (pass
    ``tokenizer=``), a Hub id / folder, or ``"embedded"``; ``backend`` is ``"transformers"`` or ``"vllm"``
    (see :func:`hf_saerl.rollouts.backends.make_backend`). Prompt ``i`` is seeded with
    ``derive_seed(seed, prompt)``, so two models sampled with the same ``seed`` see the same random numbers per
    prompt (a paired comparison). String prompts are passed to the backend verbatim; chat prompts (lists of
    ``{"role", "content"}`` messages) are rendered with the backend tokenizer's chat template, the assistant turn
    opened, as :func:`rollout_concept_scores` renders them again for pooling.

    Example:
        >>> from hf_saerl.testing import tiny_llama, tiny_tokenizer
        >>> out = sample_rollouts(tiny_llama(), ["1+1=", "2+2="], tokenizer=tiny_tokenizer(),
        ...                       sampling={"max_new_tokens": 3}, n_samples=2)
        >>> len(out), len(out[0])
        (2, 2)
    """
    from ..models.text import render_chat
    from ..rollouts.backends import derive_seed, make_backend

    n_samples = check_integer("n_samples", n_samples, "Pass the completions to sample per prompt, e.g. 1.", minimum=1)
    prompts = _prompt_list(prompts, prompt_column)
    if hasattr(policy, "generate") and not hasattr(policy, "config"):
        engine = policy  # a Generator backend already
    else:
        kwargs = dict(backend_kwargs)
        if tokenizer is not None:
            kwargs["tokenizer"] = tokenizer
        if backend == "transformers":
            kwargs.setdefault("batch_size", batch_size)
        engine = make_backend(backend, policy, **kwargs)
    if any(isinstance(p, (list, tuple)) for p in prompts):
        tok = getattr(engine, "tokenizer", None)
        if getattr(tok, "chat_template", None) is None:
            raise InvalidParameterError(
                "The prompts are chat messages but the backend's tokenizer has no chat "
                "template; pass plain prompt strings, or a backend whose tokenizer has one."
            )
        prompts = [
            render_chat(tok, p, add_generation_prompt=True) if isinstance(p, (list, tuple)) else str(p) for p in prompts
        ]
    else:
        prompts = [str(p) for p in prompts]
    sampling = {"max_new_tokens": 64, "temperature": 1.0, **dict(sampling or {})}
    seeds = [derive_seed(seed, p) for p in prompts]
    out = engine.generate(prompts, n_samples, sampling, seeds)
    if len(out) != len(prompts) or any(len(row) != n_samples for row in out):
        raise RowMismatchError(
            f"The backend returned {len(out)} rows for {len(prompts)} prompts (expected "
            f"{n_samples} completions each); check its generate(prompts, n, sampling, seeds)."
        )
    return [[str(c) for c in row] for row in out]


def _flatten(prompts: Sequence[Any], rollouts: Sequence[Sequence[str]]) -> tuple[list[Any], list[str]]:
    if len(rollouts) != len(prompts):
        raise RowMismatchError(
            f"Got {len(rollouts)} rollout rows for {len(prompts)} prompts; pass one list of "
            "completions per prompt ([prompt][sample]), as sample_rollouts returns."
        )
    flat_p, flat_c = [], []
    for p, row in zip(prompts, rollouts, strict=True):
        if isinstance(row, str):
            raise InvalidParameterError(
                "rollouts must be [prompt][sample] lists of completions; got a string row. "
                "Wrap single completions: [[text] for text in completions]."
            )
        for c in row:
            flat_p.append(p)
            flat_c.append(c)
    return flat_p, flat_c


def rollout_concept_scores(
    audit: Any,
    prompts: Any,
    rollouts: Sequence[Sequence[str]],
    *,
    encoder: Any = None,
    batch_size: int | None = None,
    progress: bool = False,
    prompt_column: str = "prompt",
    score: str = "share",
) -> tuple[np.ndarray, dict[str, Any]]:
    """Concept scores of rollouts as the audit scored responses: ``(n_prompts · n_samples, n_concepts)``.

    Each completion is pooled over its own tokens with its prompt as context (``max`` and ``freq``, the audit's
    ``top_k``), a latent fires above the audit's ``activation_threshold`` / ``frequency_threshold``, and a
    concept's score is the share of its latents that fire (``score="share"``), or the mean of their per-token
    firing rates (``score="rate"``, length-controlled; see the module docstring). Rows are prompt-major (prompt 0's
    samples first). ``info["rates"]`` also holds the rate scores when ``score="share"`` (and ``info["shares"]``
    the share scores when ``score="rate"``): the rollouts are encoded once for both.
    An empty (or whitespace) completion has no span: its row is all zeros and it is counted in ``n_empty``.
    ``encoder`` defaults to ``audit.encoder``; its SAE must have the audit's width. Returns ``(scores, info)``
    with ``info`` = ``n_rollouts``, ``n_empty``, ``n_truncated``, ``mean_tokens``.
    """
    check_fitted(audit, "rollout_concept_scores")
    score = _check_score(score)
    encoder = encoder if encoder is not None else getattr(audit, "encoder", None)
    if encoder is None:
        raise UsageError(
            "The audit has no encoder (fitted with fit_features or loaded); pass encoder=SAEEncoder(...) "
            "built on the model and SAE the audit read, or refit it with PreferenceAudit(encoder).fit."
        )
    if int(encoder.d_sae) != int(audit.d_sae_):
        from ..errors import WidthMismatchError

        raise WidthMismatchError(
            f"The encoder's SAE has width {encoder.d_sae}, the audit's {audit.d_sae_}. Pass the "
            "encoder the audit was fitted with (same SAE), or re-audit with this one."
        )
    flat_p, flat_c = _flatten(_prompt_list(prompts, prompt_column), rollouts)
    K = int(audit.concepts_.n_concepts_)
    both = {name: np.zeros((len(flat_c), K), dtype=np.float64) for name in SCORES}
    keep = [i for i, c in enumerate(flat_c) if str(c).strip()]
    info: dict[str, Any] = {
        "n_rollouts": len(flat_c),
        "n_empty": len(flat_c) - len(keep),
        "n_truncated": 0,
        "mean_tokens": 0.0,
    }
    if keep:
        spans = encode_response_spans(
            encoder,
            [flat_p[i] for i in keep],
            [flat_c[i] for i in keep],
            poolings=("max", "freq"),
            top_k=audit.top_k,
            batch_size=batch_size or audit.batch_size,
            progress=progress,
            column="rollout",
        )
        fires = firing(spans.pooled["max"], spans.pooled["freq"], audit.activation_threshold, audit.frequency_threshold)
        both["share"][keep] = audit.concepts_.shares(fires).toarray()
        both["rate"][keep] = audit.concepts_.rates(fires, spans.pooled["freq"]).toarray()
        info["n_truncated"] = int(spans.truncated.sum())
        info["mean_tokens"] = float(np.mean(spans.n_tokens))
    if info["n_empty"]:
        logger.warning("%d of %d rollouts are empty; they score 0 on every concept.", info["n_empty"], len(flat_c))
    info["shares" if score == "rate" else "rates"] = both["share" if score == "rate" else "rate"]
    return both[score], info


# ---------------------------------------------------------------------------------------------- comparison
def fit_metrics(predicted: Any, measured: Any, sign_of: Any = None) -> dict[str, Any]:
    """Agreement of ``measured`` with ``predicted`` (1-d, same length); see the module docstring.

    ``sign_of`` (default ``predicted``) gives the expected signs for ``sign_agreement``. With fewer than 3 points,
    or a constant side, the correlation metrics are NaN (``sign_agreement`` still counts).

    Example:
        >>> m = fit_metrics([1.0, 2.0, 3.0], [2.0, 4.0, 6.5])
        >>> round(m["pearson"], 4), round(m["slope"], 2), m["n"]
        (0.9979, 2.25, 3)
    """
    from scipy import stats

    x = np.asarray(predicted, dtype=np.float64).ravel()
    y = np.asarray(measured, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise InvalidParameterError(f"predicted has {x.size} values, measured {y.size}; pass one of each per concept.")
    s = np.sign(np.asarray(sign_of if sign_of is not None else x, dtype=np.float64).ravel())
    nz = s != 0
    out: dict[str, Any] = {
        "n": int(x.size),
        "n_signed": int(nz.sum()),
        "sign_agreement": float(np.mean(np.sign(y[nz]) == s[nz])) if nz.any() else float("nan"),
    }
    nan = float("nan")
    out.update(pearson=nan, pearson_p=nan, spearman=nan, r2=nan, r2_identity=nan, slope=nan, intercept=nan)
    if x.size >= 2:
        ss_tot = float(np.sum((y - y.mean()) ** 2))
        out["r2_identity"] = 1.0 - float(np.sum((y - x) ** 2)) / ss_tot if ss_tot > 0 else nan
    if x.size >= 3 and np.ptp(x) > 0 and np.ptp(y) > 0:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r, p = stats.pearsonr(x, y)
            rho = stats.spearmanr(x, y)[0]
        slope, intercept = np.polyfit(x, y, 1)
        out.update(
            pearson=float(r),
            pearson_p=float(p),
            spearman=float(rho),
            r2=float(r) ** 2,
            slope=float(slope),
            intercept=float(intercept),
        )
    return out


def compare_shift(
    predicted: Any,
    reference_scores: Any,
    trained_scores: Any,
    *,
    flagged: Any = None,
    flagged_sign: Any = None,
    predicted_z: Any = None,
    top: int = 10,
    paired: bool | None = None,
) -> tuple[pd.DataFrame, dict[str, dict[str, Any]]]:
    """Per-concept table and metrics from arrays.

    Args:
        predicted: ``(K,)`` predicted change per concept (the audit's global Δ).
        reference_scores, trained_scores: ``(n, K)`` concept scores of each model's rollouts.
        flagged: ``(K,)`` bools (default: none); ``flagged_sign``: their expected signs (default: ``predicted``'s).
        predicted_z: ``(K,)`` the audit's z per concept; the ``top`` view takes the ``top`` largest ``|z|``.
        paired: rows are the same prompt and seed in both (default: when the shapes match); the shift's standard
            error is then that of the per-row differences, else Welch's.

    Table columns: ``concept, predicted_delta, reference_mean, trained_mean, measured_shift, shift_se, shift_z,
    flagged`` (sorted by concept). Metrics: ``{"all": ..., "flagged": ..., "top": ...}`` of :func:`fit_metrics`.
    """
    x = np.asarray(predicted, dtype=np.float64).ravel()
    R = np.asarray(reference_scores, dtype=np.float64)
    T = np.asarray(trained_scores, dtype=np.float64)
    K = x.size
    for name, M in (("reference_scores", R), ("trained_scores", T)):
        if M.ndim != 2 or M.shape[1] != K or M.shape[0] < 1:
            raise InvalidParameterError(
                f"{name} must be (n_rollouts >= 1, {K}) (one column per predicted concept); "
                f"got shape {M.shape}. Score the rollouts with the same audit."
            )
    flagged = np.zeros(K, bool) if flagged is None else np.asarray(flagged, dtype=bool).ravel()
    sign = x if flagged_sign is None else np.asarray(flagged_sign, dtype=np.float64).ravel()
    if flagged.shape != (K,) or sign.shape != (K,):
        raise InvalidParameterError(f"flagged and flagged_sign must have one value per concept ({K}).")
    if paired is None:
        paired = R.shape == T.shape
    if paired and R.shape != T.shape:
        raise RowMismatchError(f"paired=True needs the same rollouts on both sides; got {R.shape} and {T.shape}.")
    ref_mean, tr_mean = R.mean(axis=0), T.mean(axis=0)
    shift = tr_mean - ref_mean
    if paired:
        diff = T - R
        se = diff.std(axis=0, ddof=1) / np.sqrt(len(diff)) if len(diff) > 1 else np.full(K, np.nan)
    else:
        var = lambda M: M.var(axis=0, ddof=1) / len(M) if len(M) > 1 else np.full(K, np.nan)  # noqa: E731
        se = np.sqrt(var(R) + var(T))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se > 0, shift / se, np.where(shift == 0, 0.0, np.nan))
    table = pd.DataFrame(
        {
            "concept": np.arange(K, dtype=np.int64),
            "predicted_delta": x,
            "reference_mean": ref_mean,
            "trained_mean": tr_mean,
            "measured_shift": shift,
            "shift_se": se,
            "shift_z": z,
            "flagged": flagged,
        }
    )
    metrics = {"all": fit_metrics(x, shift), "flagged": fit_metrics(x[flagged], shift[flagged], sign[flagged])}
    if predicted_z is not None:
        pz = np.nan_to_num(np.abs(np.asarray(predicted_z, dtype=np.float64).ravel()), nan=0.0, posinf=1e300)
        order = np.lexsort((np.arange(K), -pz))[: max(0, int(top))]
        metrics["top"] = {**fit_metrics(x[order], shift[order]), "concepts": [int(k) for k in order]}
    return table, metrics


def compare_regions(
    predictions: pd.DataFrame,
    reference_scores: Any,
    trained_scores: Any,
    reference_regions: Sequence[Any],
    trained_regions: Sequence[Any],
) -> tuple[pd.DataFrame, dict[str, dict[str, Any]]]:
    """The region-conditioned view: each region's predicted Δ against the shift measured on that region's prompts.

    ``predictions`` is :func:`region_predictions`' table; ``*_scores`` are ``(n, K)`` concept scores and
    ``*_regions`` the region label of each of their rows. Every region with rollouts on both sides gives one row
    per concept (:func:`compare_shift` on its rows, with its ``n_reference`` / ``n_trained`` rollout counts);
    regions without rollouts are left out. Metrics: ``{"regions": ..., "regions_flagged": ...}`` of
    :func:`fit_metrics` over all those (region, concept) cells, and over the flagged ones.

    Example:
        >>> import numpy as np, pandas as pd
        >>> pred = pd.DataFrame({"region_name": ["a", "a", "b", "b"], "concept": [0, 1, 0, 1],
        ...                      "predicted_delta": [0.4, 0.0, -0.2, 0.1], "flagged": [True, False, False, False]})
        >>> ref, tr = np.zeros((4, 2)), np.array([[0.2, 0.0], [0.2, 0.0], [-0.1, 0.05], [-0.1, 0.05]])
        >>> table, m = compare_regions(pred, ref, tr, ["a", "a", "b", "b"], ["a", "a", "b", "b"])
        >>> table["measured_shift"].round(2).tolist(), round(m["regions"]["r2"], 6)
        ([0.2, 0.0, -0.1, 0.05], 1.0)
    """
    R = np.asarray(reference_scores, dtype=np.float64)
    T = np.asarray(trained_scores, dtype=np.float64)
    ref_labels = np.asarray([str(r) for r in reference_regions], dtype=object)
    tr_labels = np.asarray([str(r) for r in trained_regions], dtype=object)
    if len(ref_labels) != len(R) or len(tr_labels) != len(T):
        raise RowMismatchError(
            f"Got {len(ref_labels)} / {len(tr_labels)} region labels for {len(R)} / {len(T)} "
            "rollouts; pass one label per rollout (or one per prompt to validate_shift)."
        )
    parts = []
    for name, pred in predictions.groupby("region_name", sort=True):
        pred = pred.sort_values("concept")
        r_rows, t_rows = ref_labels == str(name), tr_labels == str(name)
        if not r_rows.any() or not t_rows.any():
            continue
        table, _ = compare_shift(
            pred["predicted_delta"],
            R[r_rows][:, pred["concept"]],
            T[t_rows][:, pred["concept"]],
            flagged=pred["flagged"],
            paired=np.array_equal(r_rows, t_rows),
        )
        table["concept"] = pred["concept"].to_numpy()
        table.insert(0, "region_name", str(name))
        table["n_reference"], table["n_trained"] = int(r_rows.sum()), int(t_rows.sum())
        parts.append(table)
    columns = [
        "region_name",
        "concept",
        "predicted_delta",
        "reference_mean",
        "trained_mean",
        "measured_shift",
        "shift_se",
        "shift_z",
        "flagged",
        "n_reference",
        "n_trained",
    ]
    table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)
    x, y = table["predicted_delta"].to_numpy(np.float64), table["measured_shift"].to_numpy(np.float64)
    f = table["flagged"].to_numpy(bool)
    return table, {"regions": fit_metrics(x, y), "regions_flagged": fit_metrics(x[f], y[f])}


# ---------------------------------------------------------------------------------------------- side effects
def side_effects(rollouts: Sequence[Sequence[str]]) -> dict[str, float]:
    """Surface statistics of rollouts (``[prompt][sample]`` or a flat list): mean ``words``, ``numbered_steps``
    rate (a line starting with ``1.``, ``2)`` or ``Step 3``), ``latex_rate`` (a backslash or ``$``) and
    ``empty_rate``.

    Example:
        >>> side_effects([["1. add\\n2. done", "$x$"], [""]])["numbered_steps"]
        0.3333333333333333
    """
    flat = [c for row in rollouts for c in ([row] if isinstance(row, str) else row)]
    if not flat:
        return {
            "n": 0,
            "words": float("nan"),
            "numbered_steps": float("nan"),
            "latex_rate": float("nan"),
            "empty_rate": float("nan"),
        }
    return {
        "n": len(flat),
        "words": float(np.mean([len(c.split()) for c in flat])),
        "numbered_steps": float(np.mean([bool(_NUMBERED.search(c)) for c in flat])),
        "latex_rate": float(np.mean([("\\" in c) or ("$" in c) for c in flat])),
        "empty_rate": float(np.mean([not c.strip() for c in flat])),
    }


# ---------------------------------------------------------------------------------------------- result
@dataclass
class ShiftValidation:
    """Predicted vs measured concept shift: the per-concept ``table``, ``metrics`` per view, and what made them.

    ``table`` has :func:`compare_shift`'s columns plus ``n_latents``, ``predicted_z``, ``flagged_sign`` and
    ``flagged_regions``; ``region_table`` (when prompts had regions) has :func:`compare_regions`' rows;
    ``rollouts`` holds the completions (``{"reference": [[...]], "trained": [[...]]}``), ``info`` the encoding
    counts and side effects, ``settings`` the sampling settings.
    """

    table: pd.DataFrame
    metrics: dict[str, dict[str, Any]]
    prompts: list[Any] = field(default_factory=list)
    rollouts: dict[str, list[list[str]]] = field(default_factory=dict)
    scores: dict[str, np.ndarray] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    region_table: pd.DataFrame | None = None

    def to_pandas(self) -> pd.DataFrame:
        """The per-concept table (a copy)."""
        return self.table.copy()

    def to_dataset(self) -> Any:
        """The per-concept table as a ``datasets.Dataset``."""
        from datasets import Dataset

        return Dataset.from_pandas(self.table, preserve_index=False)

    def concept(self, k: int) -> dict[str, Any]:
        """The table row of concept ``k`` as a dict."""
        rows = self.table[self.table["concept"] == int(k)]
        if rows.empty:
            raise InvalidParameterError(f"No concept {k} in the table (it has {len(self.table)} concepts).")
        return {key: jsonable(v) for key, v in rows.iloc[0].to_dict().items()}

    def summary(self) -> dict[str, Any]:
        """Metrics, info and settings as a JSON-able dict (what :meth:`save` writes, without the table)."""
        return jsonable(
            {
                "format_version": SHIFT_FORMAT_VERSION,
                "metrics": self.metrics,
                "info": self.info,
                "settings": self.settings,
            }
        )

    def save(self, path: str | Path, *, with_rollouts: bool = True) -> None:
        """Write the summary, the table (records) and, optionally, prompts and rollouts as one JSON file."""
        out = self.summary()
        out["table"] = jsonable(self.table.to_dict(orient="records"))
        if self.region_table is not None:
            out["region_table"] = jsonable(self.region_table.to_dict(orient="records"))
        if with_rollouts:
            out["prompts"] = jsonable(self.prompts)
            out["rollouts"] = jsonable(self.rollouts)
        write_json(path, out)

    def plot(self, path: str | Path | None = None, ax: Any = None, title: str | None = None) -> Any:
        """Scatter of measured shift against predicted Δ (flagged concepts in red, the least-squares line, the
        R² / Pearson of all concepts in the legend); saved to ``path`` when given. Returns the matplotlib axes."""
        if ax is None:  # a pyplot-free Figure: works headless, whatever the backend
            from matplotlib.figure import Figure

            fig = Figure(figsize=(5.5, 4.5))
            ax = fig.subplots()
        else:
            fig = ax.figure
        t = self.table
        x, y, f = t["predicted_delta"].to_numpy(), t["measured_shift"].to_numpy(), t["flagged"].to_numpy(bool)
        m = self.metrics.get("all", {})
        ax.axhline(0, color="0.8", lw=0.8)
        ax.axvline(0, color="0.8", lw=0.8)
        ax.scatter(x[~f], y[~f], s=14, color="tab:blue", alpha=0.7, label=f"concepts (n={int((~f).sum())})")
        if f.any():
            ax.scatter(x[f], y[f], s=30, color="tab:red", label=f"flagged (n={int(f.sum())})")
        if np.isfinite(m.get("slope", np.nan)):
            grid = np.linspace(np.min(x), np.max(x), 2)
            ax.plot(
                grid,
                m["slope"] * grid + m["intercept"],
                color="k",
                lw=1,
                label=f"fit: R²={m['r2']:.3f}, r={m['pearson']:+.3f}",
            )
        ax.set_xlabel("predicted Δ (audit: chosen − rejected)")
        ax.set_ylabel("measured shift (trained − reference rollouts)")
        ax.set_title(title or "Audit prediction vs. measured concept shift")
        ax.legend(fontsize=8)
        if path is not None:
            fig.tight_layout()
            fig.savefig(path, dpi=120)
        return ax


def validate_shift(
    audit: Any,
    reference: Any,
    trained: Any,
    prompts: Any,
    *,
    encoder: Any = None,
    backend: str | Any = "transformers",
    tokenizer: Any = None,
    sampling: Mapping[str, Any] | None = None,
    n_samples: int = 1,
    seed: int = 0,
    batch_size: int = 16,
    top: int = 10,
    reference_rollouts: Sequence[Sequence[str]] | None = None,
    trained_rollouts: Sequence[Sequence[str]] | None = None,
    prompt_column: str = "prompt",
    regions: Sequence[Any] | None = None,
    progress: bool = False,
    score: str = "share",
) -> ShiftValidation:
    """Sample both models on ``prompts``, score the rollouts' concepts as the audit did, compare with its Δ.

    Args:
        audit: a fitted :class:`~hf_saerl.audit.PreferenceAudit`.
        reference, trained: the models before and after training, as :func:`sample_rollouts` takes them (``None``
            when the matching ``*_rollouts`` are given).
        prompts: held-out prompts: strings or chat message lists (see :func:`sample_rollouts`), or a dataset with
            ``prompt_column``.
        encoder: the encoder to pool with (default ``audit.encoder``, the one it was fitted with).
        backend, tokenizer, sampling, n_samples, seed, batch_size: generation settings (both models get the same,
            with the same per-prompt seeds); ``sampling`` defaults to 64 new tokens at temperature 1.
        top: size of the ``top`` view (concepts by the audit's |z|).
        reference_rollouts, trained_rollouts: ``[prompt][sample]`` completions already sampled (e.g. the reference
            rollouts reused for several trained models); then that model is not sampled.
        regions: one region label per prompt (e.g. the held-out problems' categories, for an audit fitted with
            ``region_column=``). Adds the region-conditioned view: ``region_table`` and the ``regions`` /
            ``regions_flagged`` metrics (:func:`compare_regions`), each region's own Δ against the shift measured
            on its prompts.
        score: the concept score, ``"share"`` (the audit's own, default) or ``"rate"`` (per-token firing rate,
            length-controlled); the prediction is the audit's pairs scored the same way (module docstring).

    Example:
        >>> import numpy as np, scipy.sparse as sp
        >>> from hf_saerl import SAEEncoder
        >>> from hf_saerl.audit import PreferenceAudit
        >>> from hf_saerl.testing import tiny_llama, tiny_sae, tiny_tokenizer
        >>> enc = SAEEncoder(tiny_llama(), tiny_sae(), tokenizer=tiny_tokenizer())
        >>> from datasets import Dataset
        >>> pairs = Dataset.from_dict({"prompt": ["a?", "b?"] * 6, "chosen": ["yes yes", "sure"] * 6,
        ...                            "rejected": ["no", "nope"] * 6})
        >>> audit = PreferenceAudit(enc, n_regions=1, progress=False).fit(pairs)
        >>> v = validate_shift(audit, None, None, ["a?", "b?"], reference_rollouts=[["no"], ["nope"]],
        ...                    trained_rollouts=[["yes yes"], ["sure"]])
        >>> len(v.table) == audit.concepts_.n_concepts_, sorted(v.metrics)
        (True, ['all', 'flagged', 'top'])
    """
    check_fitted(audit, "validate_shift")
    score = _check_score(score)
    prompt_list = _prompt_list(prompts, prompt_column)
    sampling = {"max_new_tokens": 64, "temperature": 1.0, **dict(sampling or {})}
    gen = dict(
        backend=backend, tokenizer=tokenizer, sampling=sampling, n_samples=n_samples, seed=seed, batch_size=batch_size
    )
    rollouts: dict[str, list[list[str]]] = {}
    for name, model, given in (("reference", reference, reference_rollouts), ("trained", trained, trained_rollouts)):
        if given is not None:
            rollouts[name] = [[str(c) for c in ([row] if isinstance(row, str) else row)] for row in given]
        elif model is None:
            raise InvalidParameterError(f"Pass the {name} model, or {name}_rollouts= completions already sampled.")
        else:
            rollouts[name] = sample_rollouts(model, prompt_list, **gen)
    pred = audit_predictions(audit, score)
    scores, info = {}, {}
    for name in ("reference", "trained"):
        scores[name], info[name] = rollout_concept_scores(
            audit, prompt_list, rollouts[name], encoder=encoder, batch_size=batch_size, progress=progress, score=score
        )
        for other in ("rates", "shares"):  # the other score's array: kept out of the JSON summary
            info[name].pop(other, None)
        info[name]["side_effects"] = side_effects(rollouts[name])
    table, metrics = compare_shift(
        pred["predicted_delta"],
        scores["reference"],
        scores["trained"],
        flagged=pred["flagged"],
        flagged_sign=np.where(pred["flagged"], pred["flagged_sign"], 0),
        predicted_z=pred["predicted_z"],
        top=top,
    )
    table = table.merge(pred[["concept", "n_latents", "predicted_z", "flagged_sign", "flagged_regions"]], on="concept")
    region_table = None
    if regions is not None:
        labels = [str(r) for r in regions]
        if len(labels) != len(prompt_list):
            raise RowMismatchError(
                f"Got {len(labels)} region labels for {len(prompt_list)} prompts; pass one per "
                "prompt (e.g. the held-out problems' categories), or leave regions=None."
            )
        unknown = sorted(set(labels) - {str(n) for n in audit.region_names_})
        if unknown:
            logger.warning(
                "Region labels %s are not regions of the audit (%s); their prompts are left out of the region view.",
                unknown[:5],
                list(audit.region_names_)[:10],
            )
        per_row = {name: [labels[i] for i, row in enumerate(rollouts[name]) for _ in row] for name in rollouts}
        region_table, region_metrics = compare_regions(
            region_predictions(audit, score),
            scores["reference"],
            scores["trained"],
            per_row["reference"],
            per_row["trained"],
        )
        metrics.update(region_metrics)
    settings = {
        "n_prompts": len(prompt_list),
        "n_samples": n_samples,
        "seed": seed,
        "sampling": sampling,
        "score": score,
        "backend": backend if isinstance(backend, str) else type(backend).__name__,
        "given_rollouts": [
            n for n, g in (("reference", reference_rollouts), ("trained", trained_rollouts)) if g is not None
        ],
    }
    return ShiftValidation(
        table=table,
        metrics=metrics,
        prompts=prompt_list,
        rollouts=rollouts,
        scores=scores,
        info=info,
        settings=settings,
        region_table=region_table,
    )
