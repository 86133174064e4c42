"""The whole recipe as one object: encoder spec + probes + centroids, saved, pushed and pulled as one bundle.

- :mod:`.pipeline`: :class:`SAERLPipeline` (compose, fit, then call on a dataset);
- :mod:`.bundle`: the saved folder (layout, writing, checks, building the parts back);
- :mod:`.card`: the pipeline's model card;
- :mod:`.hub`: curated datasets pushed to the Hub with a dataset card.
"""

from ..core.lazy import lazy_exports

#: public name -> the module that defines it (imported on first use)
_EXPORTS = {
    "build_dataset_card": "hf_saerl.pipeline.curated",
    "push_curated": "hf_saerl.pipeline.curated",
    "SAERLPipeline": "hf_saerl.pipeline.pipeline",
}
__getattr__, __dir__, __all__ = lazy_exports(globals(), _EXPORTS)
