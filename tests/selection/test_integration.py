"""Trainer adapters of the selector: the PyTorch batch sampler, TRL's repeat structure, and a real 2-step TRL GRPO run
of a tiny random Llama on CPU whose rewards go back to the selector, with a resume from its checkpoint."""

from __future__ import annotations

import os

import datasets
import numpy as np
import pytest
import torch

from hf_saerl.errors import InvalidParameterError, ParameterTypeError
from hf_saerl.selection import LearnabilitySelector, SelectionConfig

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")


def test_batch_sampler_draws_in_order_replays_and_feeds_a_dataloader():
    from hf_saerl.integrations.selection import SelectionBatchSampler

    selector = LearnabilitySelector(12, SelectionConfig(seed=4))
    reference = LearnabilitySelector(12, SelectionConfig(seed=4))
    sampler = SelectionBatchSampler(selector, batch_size=3, num_batches=3)
    loader = torch.utils.data.DataLoader(list(range(100, 112)), batch_sampler=sampler)
    for batch in loader:
        rows = (batch - 100).numpy()
        expected = reference.select(3)  # the same draws, step by step, when fed the same updates
        assert rows.tolist() == expected.tolist()
        selector.update(rows, [1, 2, 3], 4)
        reference.update(rows, [1, 2, 3], 4)
    # a resumed loader that skips the first batch gets the recorded one back, not a new draw
    sampler.set_epoch(5)
    first = sampler.batch(0)
    state = sampler.state_dict()
    again = SelectionBatchSampler(selector, batch_size=3, num_batches=3)
    again.load_state_dict(state)
    step = selector.step
    assert again.batch(0) == first and selector.step == step
    with pytest.raises(InvalidParameterError, match="in order"):
        again.batch(2)
    with pytest.raises(ParameterTypeError):
        SelectionBatchSampler(object(), 2, 2)  # the wrong type on purpose


def test_repeat_sampler_structure_is_trls():
    pytest.importorskip("trl")
    from trl.trainer.utils import RepeatSampler

    from hf_saerl.integrations.selection import SelectionRepeatSampler

    for mini, batch, repeat in [(1, 1, 1), (2, 3, 2), (4, 2, 3)]:
        selector = LearnabilitySelector(9, SelectionConfig(seed=mini))
        ours = SelectionRepeatSampler(selector, mini, batch, repeat)
        out = list(ours)
        order = [i for b in ours.last_epoch for i in b]
        trl = RepeatSampler(order, mini_repeat_count=mini, batch_size=batch, repeat_count=repeat, shuffle=False)
        assert out == [order[k] for k in trl]
        assert len(ours) == len(trl) == len(out)


def _dataset(n: int = 12) -> datasets.Dataset:
    return datasets.Dataset.from_dict({"prompt": [f"q{k:02d}" for k in range(n)], "kind": [k % 3 for k in range(n)]})


def _args(tmp_path, **kw):
    from trl import GRPOConfig

    base = dict(
        output_dir=str(tmp_path),
        per_device_train_batch_size=4,
        num_generations=2,
        max_completion_length=4,
        max_steps=2,
        use_cpu=True,
        bf16=False,
        gradient_checkpointing=False,
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        seed=7,
        disable_tqdm=True,
    )
    return GRPOConfig(**{**base, **kw})


def _run(tmp_path, seen, *, resume=None, **kw):
    from hf_saerl.integrations.selection import SelectionGRPOTrainer
    from hf_saerl.testing import tiny_llama, tiny_tokenizer

    def reward(prompts, completions, kind, selection_row_id, **_):
        seen.append(list(selection_row_id))
        return [1.0 if (k == 0 or (k == 1 and len(c) % 2)) else 0.0 for k, c in zip(kind, completions, strict=True)]

    torch.manual_seed(0)
    selector = LearnabilitySelector(12, SelectionConfig(seed=3, explore_fraction=0.0))
    trainer = SelectionGRPOTrainer(
        model=tiny_llama(),
        reward_funcs=reward,
        args=_args(tmp_path, **kw),
        train_dataset=_dataset(),
        processing_class=tiny_tokenizer(),
        selector=selector,
    )
    trainer.train(resume_from_checkpoint=resume)
    return trainer, selector


def test_selection_grpo_trainer_feeds_rewards_back_and_resumes(tmp_path):
    pytest.importorskip("trl")
    from hf_saerl.integrations.selection import SELECTOR_FILE

    seen: list[list[int]] = []
    trainer, selector = _run(tmp_path / "a", seen, save_strategy="steps", save_steps=1)
    # two generation rounds of 2 prompts x 2 completions; each group is one prompt, consecutive
    assert len(seen) == 2 and all(len(s) == 4 and s[0::2] == s[1::2] for s in seen)
    assert selector.n_updates == 2 and selector.trials.sum() == 8
    for rows in seen:
        assert selector.trials[rows[0::2]].min() >= 2
    logged = [h for h in trainer.state.log_history if "selection/predicted_mean" in h]
    assert logged and all("frac_reward_zero_std" in h and "selection/observed_mean" in h for h in logged)
    checkpoint = tmp_path / "a" / "checkpoint-1"
    assert (checkpoint / SELECTOR_FILE).is_file()

    # resume from step 1: the second round chooses what the uninterrupted run chose
    resumed: list[list[int]] = []
    _, again = _run(tmp_path / "a", resumed, resume=str(checkpoint), save_strategy="no")
    assert resumed == seen[1:]
    assert np.array_equal(again.trials, selector.trials)
    assert os.path.isdir(checkpoint)


def test_selection_grpo_trainer_refuses_a_mismatched_selector(tmp_path):
    pytest.importorskip("trl")
    from hf_saerl.integrations.selection import SelectionGRPOTrainer
    from hf_saerl.testing import tiny_llama, tiny_tokenizer

    with pytest.raises(InvalidParameterError, match="covers 5 prompts"):
        SelectionGRPOTrainer(
            model=tiny_llama(),
            reward_funcs=lambda **k: [],
            args=_args(tmp_path),
            train_dataset=_dataset(),
            processing_class=tiny_tokenizer(),
            selector=LearnabilitySelector(5),
        )
