"""The curriculum stream as Hugging Face datasets: a ``datasets.IterableDataset`` and a pre-ordered map-style
``datasets.Dataset``, one or several epochs long.

These are the bodies of ``CurriculumDataset.to_iterable_dataset`` and ``CurriculumDataset.to_ordered_dataset``;
both read the stream through its public :meth:`~hf_saerl.curriculum.CurriculumDataset.iter_epoch_batches`, as the
verl export does.

Example:
    >>> import datasets
    >>> from hf_saerl.curriculum import CurriculumDataset
    >>> from hf_saerl.curriculum.exports import to_ordered_dataset
    >>> ds = datasets.Dataset.from_dict({"x": [0, 1, 2, 3], "cluster_id": [0, 0, 1, 1],
    ...                                  "difficulty": [0.4, 0.3, 0.2, 0.1]})
    >>> to_ordered_dataset(CurriculumDataset(ds, 2, mix_ratio=0), num_epochs=2)[:]["x"]
    [1, 0, 3, 2, 1, 0, 3, 2]
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .dataset import CurriculumDataset

__all__ = ["to_iterable_dataset", "to_ordered_dataset"]

logger = logging.getLogger(__name__)


def to_iterable_dataset(curriculum: CurriculumDataset, epoch: int | None = None, num_epochs: int = 1):
    """The global stream of ``num_epochs`` epochs as a one-shard ``datasets.IterableDataset`` with the
    curriculum's features (see :meth:`CurriculumDataset.to_iterable_dataset`)."""
    import datasets

    epochs = curriculum.export_epochs(epoch, num_epochs)  # a tuple, not a list: one shard
    return datasets.IterableDataset.from_generator(
        _generate_examples,
        features=curriculum.features,
        gen_kwargs={"curriculum": curriculum, "epochs": epochs},
    )


def to_ordered_dataset(curriculum: CurriculumDataset, epoch: int | None = None, num_epochs: int = 1):
    """The global order of ``num_epochs`` epochs as a map-style ``datasets.Dataset``: an index mapping over a
    map-style source, a generated dataset over a stream (see :meth:`CurriculumDataset.to_ordered_dataset`)."""
    import datasets
    from datasets.fingerprint import generate_random_fingerprint

    epochs = curriculum.export_epochs(epoch, num_epochs)
    if not curriculum.streaming:
        order = [i for e in epochs for batch in curriculum.schedule(e) for i in batch]
        return curriculum.source_dataset.select(order)
    return datasets.Dataset.from_generator(
        _generate_examples,
        features=curriculum.features,
        gen_kwargs={"curriculum": curriculum, "epochs": epochs},
        fingerprint=generate_random_fingerprint(),  # a stream has no stable identity: never reuse a cache
    )


def _generate_examples(curriculum: CurriculumDataset, epochs: tuple[int, ...]) -> Iterator[dict[str, Any]]:
    for _, _, _, rows in curriculum.iter_epoch_batches(epochs):
        yield from rows
