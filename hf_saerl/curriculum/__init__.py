"""SAERL curriculum: cluster-first, easy-to-hard, interleaved, moderately mixed batches (docs/curriculum.md).

- :func:`build_schedule`: the schedule as a pure function (batches of row indices), vectorised with numpy;
  :func:`describe_schedule` summarises it per batch.
- :class:`CurriculumOptions`: the schedule options every curriculum class (and trainer integration) takes.
- :class:`CurriculumDataset`: the resumable stream (a ``torch.utils.data.IterableDataset``) over a
  ``datasets.Dataset`` or a streaming ``datasets.IterableDataset``; exports ``to_iterable_dataset()`` and
  ``to_ordered_dataset()``, and reads epochs for other exports with ``export_epochs()`` / ``iter_epoch_batches()``.
- :class:`CurriculumSampler` / :class:`CurriculumBatchSampler`: the same order as torch samplers.

One module per job: ``schedule`` (the pure function), ``options`` (the shared options, reading the columns), ``sources``
(map-style vs streaming buffers), ``state`` (resumable position, rank and worker split), ``exports`` (to
``datasets``), ``dataset`` (the stream that assembles them), ``sampler``.

Trainer integrations live in :mod:`hf_saerl.integrations` (TRL, HF ``Trainer``, verl).
"""

from ..core.lazy import lazy_exports

#: public name -> the module that defines it (imported on first use)
_EXPORTS = {
    "CurriculumOptions": "hf_saerl.curriculum.options",
    "CurriculumDataset": "hf_saerl.curriculum.dataset",
    "CurriculumBatchSampler": "hf_saerl.curriculum.sampler",
    "CurriculumSampler": "hf_saerl.curriculum.sampler",
    "build_schedule": "hf_saerl.curriculum.schedule",
    "describe_schedule": "hf_saerl.curriculum.schedule",
    "mix_count": "hf_saerl.curriculum.schedule",
}
__getattr__, __dir__, __all__ = lazy_exports(globals(), _EXPORTS)
