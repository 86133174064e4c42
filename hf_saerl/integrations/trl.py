"""TRL ``GRPOTrainer`` on the SAERL curriculum, with each prompt's ``num_generations`` completions kept together.

Two ways, both keeping TRL's grouping intact:

1. :class:`CurriculumGRPOTrainer` (recommended): a ``GRPOTrainer`` whose train sampler is
   :class:`CurriculumRepeatSampler`, i.e. TRL's ``RepeatSampler`` structure (each index repeated
   ``num_generations`` times in a row, each generation chunk repeated ``num_iterations * steps_per_generation``
   times, the same order on every process) over curriculum batches of
   :func:`grpo_curriculum_batch_size` prompts, so one curriculum batch is one generation batch. A new epoch gives a
   new schedule.
2. A plain ``GRPOTrainer`` with ``GRPOConfig(shuffle_dataset=False)`` over
   ``CurriculumDataset(ds, grpo_curriculum_batch_size(args), drop_last=True).to_ordered_dataset(num_epochs=...)`` (or
   ``.to_iterable_dataset()`` with ``max_steps``): TRL reads rows in order and repeats them itself.

TRL and Accelerate split each generation batch across processes themselves, so what they receive is global: never
give them a per-rank slice. Heavy SAE columns are dropped, since TRL passes every column to the reward functions.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator, Sequence
from typing import Any

import torch

from ..core.columns import CLUSTER_ID, DIFFICULTY, SAE_INDICES, SAE_VALUES
from ..core.validation import check_integer
from ..curriculum import CurriculumOptions
from ..curriculum.schedule import check_epoch
from ..errors import InvalidParameterError, ParameterTypeError
from .transformers import same_rows

try:
    from trl import GRPOTrainer
except ImportError as err:  # pragma: no cover - exercised only without the extra
    raise ImportError("hf_saerl.integrations.trl needs TRL: pip install 'hf-saerl[trl]' (or pip install trl).") from err

logger = logging.getLogger(__name__)

HEAVY_COLUMNS = (SAE_INDICES, SAE_VALUES)


def grpo_curriculum_batch_size(args: Any, world_size: int | None = None) -> int:
    """Prompts per TRL generation batch: the curriculum ``batch_size`` that makes one curriculum batch one
    generation round (``generation_batch_size // num_generations``).

    ``args`` is a ``GRPOConfig``. ``world_size`` defaults to the one ``args`` was built for; pass the number of
    training processes to plan a launch from a single process (then ``generation_batch_size`` is recomputed as
    ``per_device_train_batch_size * world_size * steps_per_generation``).

    Example:
        >>> from trl import GRPOConfig
        >>> args = GRPOConfig(output_dir="out", per_device_train_batch_size=8, num_generations=4, use_cpu=True,
        ...                   bf16=False, report_to="none")
        >>> grpo_curriculum_batch_size(args), grpo_curriculum_batch_size(args, world_size=4)
        (2, 8)
    """
    if world_size is None or world_size == args.world_size:
        generation_batch = args.generation_batch_size
    else:
        generation_batch = args.per_device_train_batch_size * world_size * args.steps_per_generation
    if generation_batch % args.num_generations:
        raise InvalidParameterError(
            f"The generation batch ({generation_batch} completions) is not divisible by num_generations "
            f"({args.num_generations}); TRL would refuse this config. Adjust per_device_train_batch_size, or "
            "num_generations."
        )
    return generation_batch // args.num_generations


class CurriculumRepeatSampler(torch.utils.data.Sampler[int]):
    """TRL's ``RepeatSampler`` over curriculum batches instead of a random permutation.

    Curriculum batches of ``batch_size`` prompts (the schedule is built with ``drop_last=True``, as RepeatSampler
    drops incomplete chunks) are each repeated ``repeat_count`` times, and each index ``mini_repeat_count`` times
    in a row. The order depends only on the data, the parameters, ``seed`` and the epoch, so it is the same on
    every process. The keyword ``**options`` are those of :class:`~hf_saerl.curriculum.CurriculumOptions` but
    ``drop_last``: ``mix_ratio``, ``seed``, ``interleave``, ``order``, ``cluster_column``, ``difficulty_column``.

    Example:
        >>> from hf_saerl.integrations.trl import CurriculumRepeatSampler
        >>> data = {"cluster_id": [0, 0, 1, 1, 1], "difficulty": [0.4, 0.3, 0.2, 0.1, 0.9]}
        >>> list(CurriculumRepeatSampler(data, mini_repeat_count=2, batch_size=2, repeat_count=2, mix_ratio=0))
        [1, 1, 0, 0, 1, 1, 0, 0, 3, 3, 2, 2, 3, 3, 2, 2]
    """

    def __init__(
        self,
        data_source: Any,
        mini_repeat_count: int,
        batch_size: int = 1,
        repeat_count: int = 1,
        *,
        epoch: int = 0,
        **options: Any,
    ):
        counts = [
            check_integer(
                name,
                value,
                f"Pass e.g. {name}=1 (no repetition), or the count TRL's RepeatSampler would get.",
                minimum=1,
            )
            for name, value in (("mini_repeat_count", mini_repeat_count), ("repeat_count", repeat_count))
        ]
        self._columns = CurriculumOptions(**options, drop_last=True).schedule(data_source, batch_size)
        self.mini_repeat_count, self.repeat_count = counts
        self.epoch = check_epoch(epoch)

    def set_epoch(self, epoch: int) -> None:
        """Use the schedule of ``epoch`` (a non-negative integer; a float or a string is refused, not truncated)."""
        self.epoch = check_epoch(epoch)

    def batches(self, epoch: int | None = None) -> list[list[int]]:
        """The curriculum batches (unique prompt indices) of ``epoch`` (default: the current one)."""
        return self._columns.batches(self.epoch if epoch is None else check_epoch(epoch))

    def __iter__(self) -> Iterator[int]:
        for chunk in self.batches():
            for _ in range(self.repeat_count):
                for index in chunk:
                    for _ in range(self.mini_repeat_count):
                        yield index

    def __len__(self) -> int:
        return sum(len(b) for b in self.batches()) * self.mini_repeat_count * self.repeat_count


class CurriculumGRPOTrainer(GRPOTrainer):
    """``trl.GRPOTrainer`` that trains on the SAERL curriculum order.

    Takes every ``GRPOTrainer`` argument, plus keyword-only curriculum options (see :func:`build_schedule`); the
    seed is ``args.seed`` and the curriculum batch is one generation batch (:func:`grpo_curriculum_batch_size`).
    ``train_dataset`` must be a map-style ``datasets.Dataset`` with a ``prompt`` column and the cluster and
    difficulty columns; ``drop_columns`` (default: the heavy SAE columns) are removed so they never reach the
    reward functions. ``shuffle_dataset`` is ignored: the curriculum replaces the shuffle.

    Example (not run here: it downloads a model)::

        args = GRPOConfig(output_dir="out", per_device_train_batch_size=8, num_generations=8)
        trainer = CurriculumGRPOTrainer(model="Qwen/Qwen2.5-Math-1.5B", reward_funcs=accuracy, args=args,
                                        train_dataset=curated, mix_ratio=0.125)
        trainer.train()
    """

    def __init__(
        self,
        model: Any,
        reward_funcs: Any = None,
        args: Any = None,
        train_dataset: Any = None,
        *more: Any,
        mix_ratio: float = 0.125,
        interleave: str = "round_robin",
        order: str = "easy_to_hard",
        cluster_column: str | None = CLUSTER_ID,
        difficulty_column: str | None = DIFFICULTY,
        drop_columns: Sequence[str] = HEAVY_COLUMNS,
        **kwargs: Any,
    ):
        import datasets

        if not isinstance(train_dataset, datasets.Dataset):
            raise ParameterTypeError(
                "CurriculumGRPOTrainer needs train_dataset to be a map-style datasets.Dataset (it reorders indices), "
                f"got {type(train_dataset).__name__}. For a stream, use trl.GRPOTrainer with "
                "GRPOConfig(shuffle_dataset=False, max_steps=...) on CurriculumDataset(...).to_iterable_dataset()."
            )
        drop = [c for c in drop_columns if c in train_dataset.column_names]
        if drop:
            train_dataset = train_dataset.remove_columns(drop)
        # Validate the options and the columns now rather than at the first training step; the seed comes from the
        # GRPOConfig when the sampler is built.
        self._curriculum = CurriculumOptions(
            mix_ratio=mix_ratio,
            interleave=interleave,
            order=order,
            cluster_column=cluster_column,
            difficulty_column=difficulty_column,
            drop_last=True,
        )
        self._curriculum.schedule(train_dataset, 1)
        super().__init__(model, reward_funcs, args, train_dataset, *more, **kwargs)

    @property
    def curriculum_batch_size(self) -> int:
        """Prompts per curriculum batch = prompts per generation batch."""
        return grpo_curriculum_batch_size(self.args)

    def _get_train_sampler(self, dataset: Any = None) -> torch.utils.data.Sampler:
        dataset = self.train_dataset if dataset is None else dataset
        if any(c not in dataset.column_names for c, _ in self._curriculum.schedule_columns()):  # removed as unused
            dataset = same_rows(dataset, self.train_dataset)  # (remove_unused_columns=True): read the trainer's
        # A GRPOConfig (transformers declares self.args a TrainingArguments, and TRL declares num_generations and
        # steps_per_generation Optional until GRPOConfig.__post_init__ fills them); CurriculumRepeatSampler checks
        # both counts are positive integers.
        grpo: Any = self.args
        options = dataclasses.asdict(dataclasses.replace(self._curriculum, seed=grpo.seed))
        del options["drop_last"]  # always True: CurriculumRepeatSampler drops an incomplete chunk, as TRL's does
        return CurriculumRepeatSampler(
            dataset,
            mini_repeat_count=grpo.num_generations,
            batch_size=self.curriculum_batch_size,
            repeat_count=self.num_iterations * grpo.steps_per_generation,
            **options,
        )
