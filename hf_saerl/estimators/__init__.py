"""Fit-then-map estimators over SAE features, with scikit-learn manners and pickle-free Hub files.

- :mod:`.base`: :class:`SAEEstimator`, the shared fit/map/save/load machinery;
- :mod:`.inputs`: reading features, labels and sample weights at the edge (:mod:`.arrow`: straight from Arrow
  buffers in ``Dataset.map``);
- :mod:`.transforms`: feature transforms fitted with the estimator (log1p, l2 normalisation, ...);
- :mod:`.probes`: :class:`QualityProbe` (filter) and :class:`DifficultyProbe` (order easy → hard);
- :mod:`.clustering`: :class:`SAEClusterer` (group in SAE space);
- :mod:`.selection`: keeping dataset rows by a probe's scores (``filter``, ``select_band``);
- :mod:`.metrics`: the fit-time metrics and their Markdown table;
- :mod:`.evaluation`: :func:`compare_features`, SAE latents against raw activations, both, and prompt length;
- :mod:`.files`: the saved files (safetensors arrays, per-file Hub download), shared with the audit.
"""

from ..core.lazy import lazy_exports

#: public name -> the module that defines it (imported on first use)
_EXPORTS = {
    "SAEClusterer": "hf_saerl.estimators.clustering",
    "compare_features": "hf_saerl.estimators.evaluation",
    "UnverifiedSAEWarning": "hf_saerl.estimators.base",
    "DifficultyProbe": "hf_saerl.estimators.probes",
    "QualityProbe": "hf_saerl.estimators.probes",
}
__getattr__, __dir__, __all__ = lazy_exports(globals(), _EXPORTS)
