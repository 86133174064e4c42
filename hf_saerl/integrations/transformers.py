"""HF ``transformers.Trainer`` on the SAERL curriculum order.

:class:`CurriculumTrainer` replaces the random train sampler with :class:`~hf_saerl.curriculum.CurriculumSampler`
over curriculum batches of one optimizer step (:func:`trainer_curriculum_batch_size`): Accelerate hands each
process consecutive per-device batches of the global order, so every optimizer step sees exactly one curriculum
batch. Without a subclass, give ``Trainer`` ``CurriculumDataset(...).to_ordered_dataset()`` and
``TrainingArguments(train_sampling_strategy="sequential")``.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import torch
from transformers import Trainer

from ..core.columns import CLUSTER_ID, DIFFICULTY
from ..curriculum.options import CurriculumOptions
from ..curriculum.sampler import CurriculumSampler
from ..errors import RowMismatchError

logger = logging.getLogger(__name__)


def same_rows(dataset: Any, original: Any) -> Any:
    """``original``, whose schedule columns a sampler reads in place of ``dataset`` (a copy the trainer stripped of
    unused columns), after checking that both have the same number of rows: the sampler's indices are rows of
    ``original`` used on ``dataset``. A :class:`~hf_saerl.errors.RowMismatchError` otherwise.

    Example:
        >>> import datasets
        >>> from hf_saerl.integrations.transformers import same_rows
        >>> full = datasets.Dataset.from_dict({"x": [1, 2], "cluster_id": [0, 1]})
        >>> same_rows(full.remove_columns("cluster_id"), full) is full
        True
    """
    if original is None or len(dataset) != len(original):
        found = "no train_dataset" if original is None else f"{len(original)} rows"
        raise RowMismatchError(
            f"The dataset to sample has {len(dataset)} rows but lacks the curriculum's columns, and the trainer's "
            f"train_dataset (read for them instead) has {found}: the schedule's row indices would point at other "
            "rows. Keep the cluster and difficulty columns in the dataset passed to the sampler, or filter "
            "train_dataset itself before building the trainer."
        )
    return original


def trainer_curriculum_batch_size(args: Any, world_size: int | None = None) -> int:
    """Examples per optimizer step: ``per_device_train_batch_size * world_size * gradient_accumulation_steps``.

    ``world_size`` defaults to ``args.world_size``; pass it to plan a multi-process launch from one process.
    """
    world_size = args.world_size if world_size is None else world_size
    return args.per_device_train_batch_size * world_size * args.gradient_accumulation_steps


class CurriculumTrainer(Trainer):
    """``transformers.Trainer`` whose train order is the SAERL curriculum.

    Takes every ``Trainer`` argument plus keyword-only curriculum options (see :func:`build_schedule`). The seed
    is ``args.seed``, ``drop_last`` is ``args.dataloader_drop_last``, and the curriculum batch is one optimizer step.
    ``train_dataset`` must be a ``datasets.Dataset`` with the cluster and difficulty columns; they may be removed
    from the model inputs (``remove_unused_columns``), the sampler reads them from ``trainer.train_dataset`` (which
    must then have as many rows as the dataset sampled: :func:`same_rows`). The options and the columns are checked
    on construction, not at the first training step.

    Example (not run here)::

        trainer = CurriculumTrainer(model=model, args=TrainingArguments("out", per_device_train_batch_size=8),
                                    train_dataset=curated, data_collator=collator, mix_ratio=0.125)
    """

    def __init__(
        self,
        *args: Any,
        mix_ratio: float = 0.125,
        interleave: str = "round_robin",
        order: str = "easy_to_hard",
        cluster_column: str | None = CLUSTER_ID,
        difficulty_column: str | None = DIFFICULTY,
        **kwargs: Any,
    ):
        import datasets

        # The options (and, for a map-style dataset, its columns) are checked now, not at the first training step;
        # the seed and drop_last come from the TrainingArguments when the sampler is built.
        self._curriculum = options = CurriculumOptions(
            mix_ratio=mix_ratio,
            interleave=interleave,
            order=order,
            cluster_column=cluster_column,
            difficulty_column=difficulty_column,
        )
        train_dataset = kwargs.get("train_dataset", args[3] if len(args) > 3 else None)  # (model, args, collator, data)
        if isinstance(train_dataset, datasets.Dataset):
            options.schedule(train_dataset, 1)
        super().__init__(*args, **kwargs)

    def _get_train_sampler(self, train_dataset: Any = None) -> torch.utils.data.Sampler | None:
        import datasets

        dataset = self.train_dataset if train_dataset is None else train_dataset
        if not isinstance(dataset, datasets.Dataset):
            return super()._get_train_sampler(train_dataset)
        if any(c not in dataset.column_names for c, _ in self._curriculum.schedule_columns()):  # removed as unused
            dataset = same_rows(dataset, self.train_dataset)  # model inputs: read them from the trainer's dataset
        options = dataclasses.replace(self._curriculum, seed=self.args.seed, drop_last=self.args.dataloader_drop_last)
        return CurriculumSampler(dataset, trainer_curriculum_batch_size(self.args), **dataclasses.asdict(options))
