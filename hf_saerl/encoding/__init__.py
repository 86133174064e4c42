"""Text → SAE features: load an SAE, run the model up to the SAE's hook, pool, keep the top-k.

The model, its tokenizer and the text of each row come from :mod:`hf_saerl.models`.

- :mod:`.saes`: SAE references (a sae-lens release, a folder, an object) → SAEs, and what an SAE records;
- :mod:`.hooks`: a TransformerLens-style hook name → the Hugging Face module to read;
- :mod:`.activations`: the truncated forward pass over length-sorted micro-batches (:mod:`.batching`);
- :mod:`.pooling`: pooling over real tokens (mean, max, sum, last, freq), several at once;
- :mod:`.sparse`: top-k sparse columns ↔ ``scipy.sparse`` matrices;
- :mod:`.runtime`: the model, tokenizer and SAE of an encoder, loaded lazily, placed per rank, pickled small;
- :mod:`.encoder`: :class:`SAEEncoder`, the ``Dataset.map`` transform that composes them;
- :mod:`.config`: its grouped settings (:class:`FeatureColumns`, :class:`TokenPolicy`) and the SAE trainer's defaults;
- :mod:`.sae_training`: train an SAE with sae-lens's trainer for a model that has none.
"""

from ..core.lazy import lazy_exports

#: public name -> the module that defines it (imported on first use)
_EXPORTS = {
    "SAEEncoder": "hf_saerl.encoding.encoder",
    "FeatureColumns": "hf_saerl.encoding.config",
    "TokenPolicy": "hf_saerl.encoding.config",
    "sae_identity_of": "hf_saerl.encoding.encoder",
    "load_sae": "hf_saerl.encoding.saes",
    "sparse_matrix": "hf_saerl.encoding.sparse",
}
__getattr__, __dir__, __all__ = lazy_exports(globals(), _EXPORTS)
