"""Stage 5, the whole recipe as one object: encoder spec + probes + centroids, saved, pushed and pulled as one bundle.

- :mod:`.pipeline`: :class:`SAERLPipeline` (compose, fit, then call on a dataset);
- :mod:`.bundle`: the saved folder (layout, writing, checks, building the parts back);
- :mod:`.card`: the pipeline's model card;
- :mod:`.hub`: curated datasets pushed to the Hub with a dataset card.
"""

from .hub import build_dataset_card, push_curated
from .pipeline import SAERLPipeline

__all__ = ["SAERLPipeline", "build_dataset_card", "push_curated"]
