"""SAERL curriculum: cluster-first, easy-to-hard, interleaved, moderately mixed batches (DESIGN.md section 5).

- :func:`build_schedule`: the schedule as a pure function (batches of row indices), vectorised with numpy;
  :func:`describe_schedule` summarises it per batch.
- :class:`CurriculumOptions`: the schedule options every curriculum class (and trainer integration) takes.
- :class:`CurriculumDataset`: the resumable stream (a ``torch.utils.data.IterableDataset``) over a
  ``datasets.Dataset`` or a streaming ``datasets.IterableDataset``; exports ``to_iterable_dataset()`` and
  ``to_ordered_dataset()``, and reads epochs for other exports with ``export_epochs()`` / ``iter_epoch_batches()``.
- :class:`CurriculumSampler` / :class:`CurriculumBatchSampler`: the same order as torch samplers.

One module per job: ``schedule`` (the pure function), ``columns`` (options, reading the columns), ``sources``
(map-style vs streaming buffers), ``state`` (resumable position, rank and worker split), ``exports`` (to
``datasets``), ``dataset`` (the stream that assembles them), ``sampler``.

Trainer integrations live in :mod:`hf_saerl.integrations` (TRL, HF ``Trainer``, verl).
"""

from .columns import CurriculumOptions
from .dataset import CurriculumDataset
from .sampler import CurriculumBatchSampler, CurriculumSampler
from .schedule import build_schedule, describe_schedule, mix_count

__all__ = [
    "CurriculumBatchSampler",
    "CurriculumDataset",
    "CurriculumOptions",
    "CurriculumSampler",
    "build_schedule",
    "describe_schedule",
    "mix_count",
]
