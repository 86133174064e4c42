"""SAERL curriculum: cluster-first, easy-to-hard, interleaved, moderately mixed batches (DESIGN.md section 5).

- :func:`build_schedule`: the schedule as a pure function (batches of row indices); :func:`describe_schedule`
  summarises it per batch.
- :class:`CurriculumDataset`: the resumable stream (a ``torch.utils.data.IterableDataset``) over a
  ``datasets.Dataset`` or a streaming ``datasets.IterableDataset``; exports ``to_iterable_dataset()`` and
  ``to_ordered_dataset()``.
- :class:`CurriculumSampler` / :class:`CurriculumBatchSampler`: the same order as torch samplers.

Trainer integrations live in :mod:`hf_saerl.integrations` (TRL, HF ``Trainer``, verl).
"""

from .dataset import CurriculumDataset
from .sampler import CurriculumBatchSampler, CurriculumSampler
from .schedule import build_schedule, describe_schedule, mix_count

__all__ = [
    "CurriculumBatchSampler",
    "CurriculumDataset",
    "CurriculumSampler",
    "build_schedule",
    "describe_schedule",
    "mix_count",
]
