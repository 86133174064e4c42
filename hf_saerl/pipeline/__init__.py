"""Stage 4, the whole recipe as one object: encoder spec + probes + centroids, saved, pushed and pulled as one bundle.

- :mod:`.pipeline`: :class:`SAERLPipeline` (fit, then call on a dataset);
- :mod:`.hub`: Hub I/O, and curated datasets pushed with a dataset card.
"""

from .hub import build_dataset_card, push_curated
from .pipeline import SAERLPipeline

__all__ = ["SAERLPipeline", "build_dataset_card", "push_curated"]
