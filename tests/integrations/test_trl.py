"""TRL GRPOTrainer on the curriculum: RepeatSampler's structure kept, batch size helper, and real 2-step runs of a
tiny random Llama on CPU whose reward function records the prompts it sees."""

from __future__ import annotations

from types import SimpleNamespace

import datasets
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("trl")
from trl import GRPOConfig, GRPOTrainer
from trl.trainer.utils import RepeatSampler

from hf_saerl.curriculum import CurriculumDataset, build_schedule
from hf_saerl.errors import InvalidParameterError, MissingColumnError
from hf_saerl.integrations.trl import (
    CurriculumGRPOTrainer,
    CurriculumRepeatSampler,
    grpo_curriculum_batch_size,
)
from hf_saerl.testing import tiny_llama, tiny_tokenizer

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")


def prompts_dataset(n: int = 16) -> datasets.Dataset:
    return datasets.Dataset.from_dict(
        {
            "prompt": [f"q{k:02d}" for k in range(n)],
            "cluster_id": [k % 3 for k in range(n)],
            "difficulty": [((k * 7) % n) / n for k in range(n)],
            "sae_indices": [[1, 2]] * n,
            "sae_values": [[0.5, 0.25]] * n,
        }
    )


def grpo_args(tmp_path, **kw) -> GRPOConfig:
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


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.integers(0, 40),
    st.integers(1, 4),
    st.integers(1, 5),
    st.integers(1, 3),
    st.integers(0, 99),
    st.sampled_from([0.0, 0.125, 0.5]),
)
def test_repeat_sampler_structure_is_trls(n, mini_repeat, batch_size, repeat, seed, mix_ratio):
    # Same as TRL's RepeatSampler with shuffle=False over the curriculum-ordered rows.
    data = {"cluster_id": [k % 4 for k in range(n)], "difficulty": [(k * 5 % 7) / 7 for k in range(n)]}
    ours = CurriculumRepeatSampler(data, mini_repeat, batch_size, repeat, seed=seed, mix_ratio=mix_ratio)
    for epoch in (0, 1):
        ours.set_epoch(epoch)
        order = [
            i
            for b in build_schedule(
                data["cluster_id"], data["difficulty"], batch_size, mix_ratio, seed, epoch, drop_last=True
            )
            for i in b
        ]
        trl_sampler = RepeatSampler(
            order, mini_repeat_count=mini_repeat, batch_size=batch_size, repeat_count=repeat, shuffle=False
        )
        assert list(ours) == [order[k] for k in trl_sampler]
        assert len(ours) == len(trl_sampler)


def test_grpo_curriculum_batch_size(tmp_path):
    args = grpo_args(tmp_path, per_device_train_batch_size=8, num_generations=4, gradient_accumulation_steps=2)
    assert args.generation_batch_size == 16
    assert grpo_curriculum_batch_size(args) == 4
    assert grpo_curriculum_batch_size(args, world_size=4) == 16
    planned_for_two = SimpleNamespace(
        world_size=2, generation_batch_size=2, per_device_train_batch_size=1, steps_per_generation=1, num_generations=2
    )
    with pytest.raises(InvalidParameterError, match="not divisible by num_generations"):
        grpo_curriculum_batch_size(planned_for_two, world_size=1)


def test_curriculum_grpo_trainer_trains_in_curriculum_order_with_groups_intact(tmp_path):
    seen: list[tuple[list[str], list[str]]] = []

    def reward(prompts, completions, **columns):
        seen.append((list(prompts), sorted(columns)))
        return [float(len(c)) for c in completions]

    ds = prompts_dataset()
    args = grpo_args(tmp_path)
    trainer = CurriculumGRPOTrainer(
        model=tiny_llama(),
        reward_funcs=reward,
        args=args,
        train_dataset=ds,
        processing_class=tiny_tokenizer(),
        mix_ratio=0.25,
    )
    assert trainer.curriculum_batch_size == grpo_curriculum_batch_size(args) == 2
    trainer.train()

    schedule = build_schedule(ds["cluster_id"][:], ds["difficulty"][:], 2, mix_ratio=0.25, seed=7, drop_last=True)
    expected = [ds["prompt"][i] for batch in schedule[:2] for i in batch for _ in range(2)]  # 2 generations each
    assert [p for prompts, _ in seen for p in prompts] == expected
    assert all(prompts[0::2] == prompts[1::2] for prompts, _ in seen)  # each group: one prompt, consecutive
    assert all("sae_indices" not in cols and "sae_values" not in cols for _, cols in seen)
    assert all({"cluster_id", "difficulty"} <= set(cols) for _, cols in seen)


def test_curriculum_sampler_survives_remove_unused_columns(tmp_path):
    # With remove_unused_columns=True, TRL hands _get_train_sampler a dataset without cluster_id/difficulty.
    ds = prompts_dataset()
    args = grpo_args(tmp_path, remove_unused_columns=True)
    trainer = CurriculumGRPOTrainer(
        model=tiny_llama(),
        reward_funcs=lambda **k: [],
        args=args,
        train_dataset=ds,
        processing_class=tiny_tokenizer(),
        mix_ratio=0.25,
    )
    stripped = trainer._remove_unused_columns(trainer.train_dataset, description="training")
    assert "cluster_id" not in stripped.column_names
    schedule = build_schedule(ds["cluster_id"][:], ds["difficulty"][:], 2, mix_ratio=0.25, seed=7, drop_last=True)
    assert list(trainer._get_train_sampler(stripped)) == [i for b in schedule for i in b for _ in range(2)]


def test_plain_grpo_trainer_on_the_exported_stream(tmp_path):
    seen: list[str] = []

    def reward(prompts, completions, **columns):
        seen.extend(prompts)
        return [0.0] * len(completions)

    ds = prompts_dataset()
    args = grpo_args(tmp_path, shuffle_dataset=False)
    stream = CurriculumDataset(
        ds, grpo_curriculum_batch_size(args), seed=args.seed, remove_columns=["sae_indices", "sae_values"]
    )
    trainer = GRPOTrainer(
        model=tiny_llama(),
        reward_funcs=reward,
        args=args,
        train_dataset=stream.to_iterable_dataset(),
        processing_class=tiny_tokenizer(),
    )
    trainer.train()
    order = [ds["prompt"][i] for batch in stream.schedule() for i in batch]
    assert seen == [p for p in order[:4] for _ in range(2)]


def test_curriculum_grpo_trainer_rejects_a_stream(tmp_path):
    stream = CurriculumDataset(prompts_dataset(), 2).to_iterable_dataset()
    with pytest.raises(TypeError, match=r"map-style datasets\.Dataset"):
        CurriculumGRPOTrainer(
            model=tiny_llama(),
            reward_funcs=lambda **k: [],
            args=grpo_args(tmp_path),
            train_dataset=stream,
            processing_class=tiny_tokenizer(),
        )
    with pytest.raises(MissingColumnError, match="Missing column 'topic' holding the cluster ids"):
        CurriculumGRPOTrainer(
            model=tiny_llama(),
            reward_funcs=lambda **k: [],
            args=grpo_args(tmp_path),
            train_dataset=prompts_dataset(),
            processing_class=tiny_tokenizer(),
            cluster_column="topic",
        )


def test_docstring_examples_run():
    import doctest

    from hf_saerl.integrations import trl as trl_integration

    assert doctest.testmod(trl_integration).failed == 0
