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

from ..core.lazy import lazy_exports

#: public name -> the module that defines it (imported on first use)
_EXPORTS = {
    "LatentConcepts": "hf_saerl.audit.concepts",
    "add_concept_margin": "hf_saerl.audit.interventions",
    "add_pair_weights": "hf_saerl.audit.interventions",
    "concept_margin": "hf_saerl.audit.interventions",
    "filter_pairs": "hf_saerl.audit.interventions",
    "pair_weights": "hf_saerl.audit.interventions",
    "PreferenceAudit": "hf_saerl.audit.preference",
    "pair_regions": "hf_saerl.audit.regions",
    "AuditReport": "hf_saerl.audit.report",
    "dpo_loss": "hf_saerl.audit.shaping",
    "SpanFeatures": "hf_saerl.audit.spans",
    "encode_prompts": "hf_saerl.audit.spans",
    "encode_response_spans": "hf_saerl.audit.spans",
    "ShiftValidation": "hf_saerl.audit.shift",
    "validate_shift": "hf_saerl.audit.shift",
    "GLOBAL_REGION": "hf_saerl.audit.statistics",
    "concept_statistics": "hf_saerl.audit.statistics",
}
__getattr__, __dir__, __all__ = lazy_exports(globals(), _EXPORTS)
