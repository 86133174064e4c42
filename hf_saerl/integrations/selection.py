"""Trainer adapters for the online learnability selector: a PyTorch batch sampler, TRL's repeat structure, a TRL
``GRPOTrainer`` that feeds its own rewards back, and what verl allows (see docs/selection.md).

- :class:`SelectionBatchSampler`: ``DataLoader(dataset, batch_sampler=...)`` for any trainer. Each batch is chosen
  when the loader asks for it, so call ``selector.update(...)`` (or ``update_rewards``) with the batch's rollouts
  before the next one is drawn. A loader that prefetches (``num_workers > 0``) draws ``prefetch_factor *
  num_workers`` batches ahead: their choice misses that many updates.
- :class:`SelectionRepeatSampler`: TRL's ``RepeatSampler`` structure (each index ``mini_repeat_count`` times in a
  row, each chosen batch ``repeat_count`` times) over the selector's batches.
- :class:`SelectionGRPOTrainer`: a ``trl.GRPOTrainer`` whose prompts come from the selector and whose rewards (gathered
  from every process) update it after each generation round; it logs the selector's predicted group mean beside the
  observed one (``selection/predicted_mean``, ``selection/observed_mean``, ``selection/abs_error``) next to TRL's
  ``frac_reward_zero_std``, and saves / restores the selector with each checkpoint.

Every process holds the same selector, fed the same (gathered) rewards, so each draws the same batch: TRL and
Accelerate then split it across processes as they split ``RepeatSampler``'s.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from ..core.validation import check_integer
from ..errors import InvalidParameterError, ParameterTypeError
from ..selection import LearnabilitySelector

logger = logging.getLogger(__name__)

__all__ = [
    "ROW_ID_COLUMN",
    "SELECTOR_FILE",
    "SelectionBatchSampler",
    "SelectionGRPOTrainer",
    "SelectionRepeatSampler",
]

#: the selector's state inside a checkpoint folder
SELECTOR_FILE = "selector.safetensors"
#: the column SelectionGRPOTrainer adds so that each reward finds its prompt
ROW_ID_COLUMN = "selection_row_id"


class SelectionBatchSampler(torch.utils.data.Sampler[list[int]]):
    """``num_batches`` batches of ``batch_size`` row ids per epoch, each chosen by ``selector.select`` when asked for.

    The batches drawn in the current epoch are kept, so a resumed loader that skips the first batches of an epoch
    (as ``transformers.Trainer`` does) replays them instead of drawing new ones; :meth:`state_dict` holds them.

    Example:
        >>> from hf_saerl.selection import LearnabilitySelector
        >>> selector = LearnabilitySelector(10)
        >>> sampler = SelectionBatchSampler(selector, batch_size=3, num_batches=2)
        >>> for batch in sampler:
        ...     selector.update(batch, n_correct=[1] * 3, n_trials=[4] * 3)  # the rollouts of this batch
        >>> len(sampler), selector.step, sampler.epoch  # two draws; the next pass is epoch 1
        (2, 2, 1)
    """

    def __init__(self, selector: LearnabilitySelector, batch_size: int, num_batches: int) -> None:
        if not isinstance(selector, LearnabilitySelector):
            raise ParameterTypeError(
                f"selector must be a LearnabilitySelector, got {type(selector).__name__}. Build "
                "one with LearnabilitySelector(...) or LearnabilitySelector.from_probe(...)."
            )
        self.selector = selector
        self.batch_size = check_integer("batch_size", batch_size, "Pass the prompts per batch.", minimum=1)
        self.num_batches = check_integer("num_batches", num_batches, "Pass the batches per epoch.", minimum=1)
        if self.batch_size > selector.n_rows:
            raise InvalidParameterError(
                f"batch_size={batch_size} exceeds the pool ({selector.n_rows} prompts). Use a smaller batch."
            )
        self.epoch = 0
        self.drawn: list[list[int]] = []

    def set_epoch(self, epoch: int) -> None:
        """Start epoch ``epoch``: forget the batches recorded for the last one."""
        epoch = check_integer("epoch", epoch, "Pass a non-negative integer.", minimum=0)
        if epoch != self.epoch:
            self.epoch, self.drawn = epoch, []

    def batch(self, index: int) -> list[int]:
        """Batch ``index`` of the current epoch: the recorded one, or a new draw (the next index only)."""
        if index < len(self.drawn):
            return self.drawn[index]
        if index != len(self.drawn):
            raise InvalidParameterError(
                f"Batch {index} asked for before batch {len(self.drawn)}; the selector draws batches in order."
            )
        chosen = self.selector.select(self.batch_size).tolist()
        self.drawn.append(chosen)
        return chosen

    def __iter__(self) -> Iterator[list[int]]:
        for index in range(self.num_batches):
            yield self.batch(index)
        self.epoch, self.drawn = self.epoch + 1, []

    def __len__(self) -> int:
        return self.num_batches

    def state_dict(self) -> dict[str, Any]:
        """The epoch and the batches drawn in it (JSON-able); the selector saves its own state."""
        return {"epoch": self.epoch, "drawn": [list(b) for b in self.drawn]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.epoch, self.drawn = int(state["epoch"]), [list(map(int, b)) for b in state["drawn"]]


class SelectionRepeatSampler(torch.utils.data.Sampler[int]):
    """TRL's ``RepeatSampler`` structure over the selector's batches: each chosen batch of ``batch_size`` prompts is
    repeated ``repeat_count`` times, and each index ``mini_repeat_count`` times in a row.

    Example:
        >>> from hf_saerl.selection import LearnabilitySelector, SelectionConfig
        >>> selector = LearnabilitySelector(6, SelectionConfig(seed=1))
        >>> sampler = SelectionRepeatSampler(selector, mini_repeat_count=2, batch_size=2, repeat_count=2, num_batches=1)
        >>> out = list(sampler)
        >>> a, b = sampler.last_epoch[0]  # the batch the selector chose
        >>> out == [a, a, b, b, a, a, b, b]
        True
    """

    def __init__(
        self,
        selector: LearnabilitySelector,
        mini_repeat_count: int,
        batch_size: int,
        repeat_count: int = 1,
        num_batches: int | None = None,
    ) -> None:
        self.mini_repeat_count = check_integer(
            "mini_repeat_count", mini_repeat_count, "Pass num_generations.", minimum=1
        )
        self.repeat_count = check_integer(
            "repeat_count", repeat_count, "Pass num_iterations * steps_per_generation.", minimum=1
        )
        if num_batches is None:
            num_batches = max(1, selector.n_rows // int(batch_size))  # as RepeatSampler: whole chunks of the pool
        self.batches = SelectionBatchSampler(selector, batch_size, num_batches)
        self.last_epoch: list[list[int]] = []

    def set_epoch(self, epoch: int) -> None:
        self.batches.set_epoch(epoch)

    def __iter__(self) -> Iterator[int]:
        for index in range(len(self.batches)):
            chunk = self.batches.batch(index)
            for _ in range(self.repeat_count):
                for row in chunk:
                    for _ in range(self.mini_repeat_count):
                        yield row
        self.last_epoch = self.batches.drawn
        self.batches.epoch, self.batches.drawn = self.batches.epoch + 1, []

    def __len__(self) -> int:
        return len(self.batches) * self.batches.batch_size * self.mini_repeat_count * self.repeat_count


try:  # TRL is optional: the samplers above work without it
    from trl import GRPOTrainer as _GRPOBase

    HAS_TRL = True
except ImportError:  # pragma: no cover - exercised only without the extra
    _GRPOBase = object  # type: ignore[misc,assignment]  # a placeholder base when TRL is missing
    HAS_TRL = False


class SelectionGRPOTrainer(_GRPOBase):
    """``trl.GRPOTrainer`` whose prompts the :class:`~hf_saerl.selection.LearnabilitySelector` chooses, online.

    Takes every ``GRPOTrainer`` argument plus ``selector=`` (over the rows of ``train_dataset``, in order). The train
    sampler is :class:`SelectionRepeatSampler` with TRL's repeat structure (``num_generations``,
    ``steps_per_generation``, ``num_iterations``); one selector batch is one generation batch of
    ``generation_batch_size // num_generations`` prompts. After each generation round the weighted reward of every
    completion (gathered from all processes, as TRL computes advantages) updates the selector, one group per prompt:
    rewards in [0, 1] count as fractional successes, or set ``SelectionConfig(success_threshold=...)``.
    The selector's state is saved in each checkpoint (``selector.safetensors``) and loaded on resume.

    Example (not run here: see tests/selection/test_integration.py for a tiny CPU run)::

        selector = LearnabilitySelector.from_probe(bundle.difficulty_probe, dataset)
        trainer = SelectionGRPOTrainer(model=..., reward_funcs=accuracy, args=GRPOConfig(...),
                                       train_dataset=dataset.remove_columns(["sae_indices", "sae_values"]),
                                       selector=selector)
        trainer.train()
    """

    def __init__(
        self,
        model: Any,
        reward_funcs: Any = None,
        args: Any = None,
        train_dataset: Any = None,
        *more: Any,
        selector: LearnabilitySelector | None = None,
        **kwargs: Any,
    ) -> None:
        import datasets

        if not HAS_TRL:  # pragma: no cover - exercised only without the extra
            raise ImportError("SelectionGRPOTrainer needs TRL: pip install 'hf-saerl[trl]' (or pip install trl).")
        if not isinstance(selector, LearnabilitySelector):
            raise ParameterTypeError(
                f"selector= must be a LearnabilitySelector over train_dataset's rows; got "
                f"{type(selector).__name__}. Build one with LearnabilitySelector.from_probe(probe, "
                "train_dataset) or LearnabilitySelector(len(train_dataset))."
            )
        if not isinstance(train_dataset, datasets.Dataset):
            raise ParameterTypeError(
                f"SelectionGRPOTrainer needs a map-style datasets.Dataset (it picks rows by "
                f"index); got {type(train_dataset).__name__}. Load the pool as a Dataset."
            )
        if len(train_dataset) != selector.n_rows:
            raise InvalidParameterError(
                f"The selector covers {selector.n_rows} prompts but train_dataset has "
                f"{len(train_dataset)} rows. Build the selector over the same dataset."
            )
        if ROW_ID_COLUMN not in train_dataset.column_names:
            train_dataset = train_dataset.add_column(ROW_ID_COLUMN, np.arange(len(train_dataset)))
        self.selector = selector
        self._selection_sampler: SelectionRepeatSampler | None = None
        super().__init__(model, reward_funcs, args, train_dataset, *more, **kwargs)

    def _get_train_sampler(self, dataset: Any = None) -> torch.utils.data.Sampler:
        args: Any = self.args  # a GRPOConfig
        generations = int(self.num_generations or 1)
        self._selection_sampler = SelectionRepeatSampler(
            self.selector,
            mini_repeat_count=generations,
            batch_size=args.generation_batch_size // generations,
            repeat_count=self.num_iterations * args.steps_per_generation,
        )
        return self._selection_sampler

    def _calculate_rewards(self, inputs: Any, prompts: Any, completions: Any, completion_ids_list: Any) -> Any:
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        if getattr(self.model, "training", False):
            self._feed_selector(inputs, rewards_per_func)
        return rewards_per_func

    def _feed_selector(self, inputs: Any, rewards_per_func: torch.Tensor) -> None:
        from accelerate.utils import gather_object

        rows = np.asarray(gather_object([int(x[ROW_ID_COLUMN]) for x in inputs]), dtype=np.int64)
        weights = self.reward_weights.to(rewards_per_func.device).unsqueeze(0)
        rewards = (rewards_per_func * weights).nansum(dim=1).float().cpu().numpy()
        g = int(self.num_generations or 1)
        if rows.size != rewards.size or rows.size % g:
            raise InvalidParameterError(
                f"{rewards.size} rewards for {rows.size} row ids with num_generations={g}; "
                "the generation batch lost its group structure."
            )
        groups = rows.reshape(-1, g)
        if not (groups == groups[:, :1]).all():
            raise InvalidParameterError(
                "A reward group mixes prompts: the sampler's repeat structure was changed. "
                "Use SelectionGRPOTrainer's own sampler."
            )
        group_rows, group_rewards = groups[:, 0], rewards.reshape(-1, g)
        predicted = self.selector.predict(group_rows)
        self.selector.update_rewards(group_rows, group_rewards)
        metrics = self._metrics["train"]
        observed = group_rewards.mean(axis=1)
        metrics["selection/predicted_mean"].append(float(predicted.mean()))
        metrics["selection/observed_mean"].append(float(observed.mean()))
        metrics["selection/abs_error"].append(float(np.abs(predicted - observed).mean()))
        if self.selector.last_refit:
            metrics["selection/n_refits"].append(float(self.selector.n_refits))

    def _save_checkpoint(self, model: Any, trial: Any, *args: Any, **kwargs: Any) -> Any:
        out = super()._save_checkpoint(model, trial, *args, **kwargs)
        from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

        folder = os.path.join(self._get_output_dir(trial=trial), f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}")
        if self.args.should_save and os.path.isdir(folder):
            self.selector.save(os.path.join(folder, SELECTOR_FILE))
            if self._selection_sampler is not None:
                import json

                with open(os.path.join(folder, "selection_sampler.json"), "w", encoding="utf-8") as f:
                    json.dump(self._selection_sampler.batches.state_dict(), f)
        return out

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> Any:
        out = super()._load_from_checkpoint(resume_from_checkpoint, model)
        path = os.path.join(resume_from_checkpoint, SELECTOR_FILE)
        if os.path.isfile(path):
            self.selector.load(path)
            sampler_state = os.path.join(resume_from_checkpoint, "selection_sampler.json")
            if os.path.isfile(sampler_state):
                import json

                with open(sampler_state, encoding="utf-8") as f:
                    self._pending_sampler_state = json.load(f)
        else:
            logger.warning(
                "No %s in %s: the selector starts from its current state.", SELECTOR_FILE, resume_from_checkpoint
            )
        return out

    def get_train_dataloader(self) -> Any:
        loader = super().get_train_dataloader()
        pending = getattr(self, "_pending_sampler_state", None)
        if pending is not None and self._selection_sampler is not None:
            self._selection_sampler.batches.load_state_dict(pending)
            self._pending_sampler_state = None
        return loader
