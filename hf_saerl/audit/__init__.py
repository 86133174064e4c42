"""Preference-data audit (Anatomy of Post-Training, arXiv 2606.12360): what will these pairs teach?

* :class:`PreferenceAudit` encodes response spans, groups latents into concepts and tests per-pair
  disparities per data region (:mod:`.spans`, :mod:`.concepts`, :mod:`.regions`, :mod:`.statistics`);
* :class:`AuditReport` is the readable result (:mod:`.report`);
* :mod:`.interventions` filters, re-weights or adds a ``concept_margin`` column, on the audited rows only
  (:mod:`.rows`);
* :func:`dpo_loss` is DPO with reward shaping (:mod:`.shaping`);
* :func:`validate_shift` closes the loop: predicted Δ vs the measured concept shift of a trained model's rollouts
  (:mod:`.shift`);
* a fitted audit is saved, loaded and pushed like the estimators (:mod:`.saving`).
"""

from .concepts import LatentConcepts
from .interventions import add_concept_margin, add_pair_weights, concept_margin, filter_pairs, pair_weights
from .preference import PreferenceAudit
from .regions import pair_regions
from .report import AuditReport
from .shaping import dpo_loss
from .spans import SpanFeatures, encode_prompts, encode_response_spans
from .shift import ShiftValidation, validate_shift
from .statistics import GLOBAL_REGION, concept_statistics

__all__ = [
    "PreferenceAudit", "AuditReport", "LatentConcepts", "concept_statistics", "GLOBAL_REGION", "pair_regions",
    "encode_response_spans", "encode_prompts", "SpanFeatures", "filter_pairs", "pair_weights", "add_pair_weights",
    "concept_margin", "add_concept_margin", "dpo_loss", "validate_shift", "ShiftValidation",
]
