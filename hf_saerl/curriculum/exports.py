"""The curriculum stream as Hugging Face datasets: a ``datasets.IterableDataset`` and a pre-ordered map-style
``datasets.Dataset``, one or several epochs long.

These are the bodies of ``CurriculumDataset.to_iterable_dataset`` and ``CurriculumDataset.to_ordered_dataset``;
both read the stream through its public :meth:`~hf_saerl.curriculum.CurriculumDataset.iter_epoch_batches`, as the
verl export does.

Example:
    >>> from hf_saerl.curriculum.exports import check_whole_epochs
    >>> from hf_saerl.curriculum.schedule import ScheduleParams
    >>> check_whole_epochs(0, ScheduleParams(batch_size=4), num_epochs=3)  # whole batches: fine
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..errors import InvalidParameterError
from .schedule import ScheduleParams

if TYPE_CHECKING:  # pragma: no cover
    from .dataset import CurriculumDataset

__all__ = ["check_whole_epochs", "to_iterable_dataset", "to_ordered_dataset"]

logger = logging.getLogger(__name__)


def to_iterable_dataset(curriculum: CurriculumDataset, epoch: int | None = None, num_epochs: int = 1):
    """The global stream of ``num_epochs`` epochs as a one-shard ``datasets.IterableDataset`` with the
    curriculum's features (see :meth:`CurriculumDataset.to_iterable_dataset`)."""
    import datasets

    epochs = curriculum.export_epochs(epoch, num_epochs)  # a tuple, not a list: one shard
    return datasets.IterableDataset.from_generator(
        _generate_examples, features=curriculum.features, gen_kwargs={"curriculum": curriculum, "epochs": epochs},
    )


def to_ordered_dataset(curriculum: CurriculumDataset, epoch: int | None = None, num_epochs: int = 1):
    """The global order of ``num_epochs`` epochs as a map-style ``datasets.Dataset``: an index mapping over a
    map-style source, a generated dataset over a stream (see :meth:`CurriculumDataset.to_ordered_dataset`)."""
    import datasets
    from datasets.fingerprint import generate_random_fingerprint

    epochs = curriculum.export_epochs(epoch, num_epochs)
    source = curriculum._source
    if not curriculum.streaming:
        order = [i for e in epochs for batch in curriculum.schedule(e) for i in batch]
        return source.data.select(order)
    return datasets.Dataset.from_generator(
        _generate_examples, features=curriculum.features, gen_kwargs={"curriculum": curriculum, "epochs": epochs},
        fingerprint=generate_random_fingerprint(),  # a stream has no stable identity: never reuse a cache
    )


def check_whole_epochs(remainder: int, params: ScheduleParams, num_epochs: int) -> None:
    """Epochs written one after the other must each end on a whole batch, or every batch of the next epoch is
    shifted against the trainer's fixed-size steps (mixing clusters and difficulty stages). ``remainder`` is the
    size of an epoch's short final batch; raises :class:`~hf_saerl.errors.InvalidParameterError` when it is kept."""
    if remainder and not params.drop_last:
        raise InvalidParameterError(
            f"Cannot export {num_epochs} epochs one after the other: each epoch ends with a short batch of "
            f"{remainder} row(s) (batch_size={params.batch_size}), so a trainer reading {params.batch_size} rows per "
            f"step would see every batch of the following epochs shifted by {remainder}. Pass drop_last=True to "
            "the CurriculumDataset (each epoch then drops its short batch), or export one epoch at a time "
            "(num_epochs=1)."
        )


def _generate_examples(curriculum: CurriculumDataset, epochs: tuple[int, ...]) -> Iterator[dict[str, Any]]:
    for _, _, _, rows in curriculum.iter_epoch_batches(epochs):
        yield from rows
