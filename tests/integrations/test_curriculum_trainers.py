"""HF Trainer on the curriculum order, and the verl Parquet export."""

from __future__ import annotations

import datasets
import pyarrow.parquet as pq
import pytest
import torch

from hf_saerl.curriculum import CurriculumDataset, build_schedule
from hf_saerl.errors import InvalidParameterError, MissingColumnError
from hf_saerl.integrations.verl import to_verl_parquet, verl_overrides

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")


def problems(n: int = 22) -> datasets.Dataset:
    return datasets.Dataset.from_dict(
        {
            "prompt": [f"What is {k}+{k}?" for k in range(n)],
            "answer": [str(2 * k) for k in range(n)],
            "source": ["toy"] * n,
            "cluster_id": [k % 3 for k in range(n)],
            "difficulty": [((k * 5) % n) / n for k in range(n)],
            "sae_indices": [[1]] * n,
        }
    )


# ---------------------------------------------------------------------------------------------- HF Trainer
def test_curriculum_trainer_sampler_matches_the_schedule(tmp_path):
    from transformers import TrainingArguments

    from hf_saerl.integrations.transformers import CurriculumTrainer, trainer_curriculum_batch_size
    from hf_saerl.testing import tiny_llama

    n = 22
    ds = problems(n).map(lambda ex, k: {"input_ids": [k + 4, 5], "labels": [k + 4, 5]}, with_indices=True)
    args = TrainingArguments(
        str(tmp_path),
        per_device_train_batch_size=2,
        gradient_accumulation_steps=2,
        use_cpu=True,
        report_to="none",
        seed=3,
    )
    assert trainer_curriculum_batch_size(args) == 4 and trainer_curriculum_batch_size(args, world_size=8) == 32

    def collate(rows):
        return {k: torch.tensor([r[k] for r in rows]) for k in ("input_ids", "labels")}

    trainer = CurriculumTrainer(model=tiny_llama(), args=args, train_dataset=ds, data_collator=collate, mix_ratio=0.25)
    loader = trainer.get_train_dataloader()  # unused columns (cluster_id, difficulty...) are removed first
    for epoch in (0, 1):
        loader.set_epoch(epoch)
        seen = [i - 4 for batch in loader for i in batch["input_ids"][:, 0].tolist()]
        schedule = build_schedule(ds["cluster_id"][:], ds["difficulty"][:], 4, mix_ratio=0.25, seed=3, epoch=epoch)
        assert seen == [i for b in schedule for i in b]


# ---------------------------------------------------------------------------------------------- verl
def test_verl_parquet_rows_in_curriculum_order(tmp_path):
    ds = problems()
    # 22 rows in batches of 4: drop_last=True so that both epochs are whole batches back to back
    curriculum = CurriculumDataset(ds, 4, seed=1, remove_columns=["sae_indices"], drop_last=True)
    path = tmp_path / "train.parquet"
    rows = to_verl_parquet(
        curriculum, path, data_source="toy/math", ability="arithmetic", num_epochs=2, extra_info_columns=["source"]
    )
    table = pq.read_table(path).to_pylist()
    assert len(table) == len(rows) == 40
    expected = [
        (e, g, i)
        for e in (0, 1)
        for g, b in enumerate(
            build_schedule(ds["cluster_id"][:], ds["difficulty"][:], 4, seed=1, epoch=e, drop_last=True)
        )
        for i in b
    ]
    assert len(expected) == 40
    first = table[0]
    assert set(first) == {"data_source", "prompt", "ability", "reward_model", "extra_info"}
    assert first["data_source"] == "toy/math" and first["ability"] == "arithmetic"
    for k, (row, (epoch, g, i)) in enumerate(zip(table, expected, strict=True)):
        assert row["prompt"] == [{"role": "user", "content": ds["prompt"][i]}]
        assert row["reward_model"] == {"style": "rule", "ground_truth": ds["answer"][i]}
        info = row["extra_info"]
        assert (info["index"], info["source_index"], info["curriculum_epoch"], info["curriculum_batch"]) == (
            k,
            i,
            epoch,
            g,
        )
        assert info["cluster_id"] == ds["cluster_id"][i] and info["source"] == "toy"
    # verl reads `train_batch_size` rows per step in file order: each full step is one curriculum batch
    steps = [[r["extra_info"]["curriculum_batch"] for r in table[s : s + 4]] for s in range(0, 20, 4)]
    assert steps == [[g] * 4 for g in range(5)]
    steps = [
        {(r["extra_info"]["curriculum_epoch"], r["extra_info"]["curriculum_batch"]) for r in table[s : s + 4]}
        for s in range(0, 40, 4)
    ]
    assert steps == [{(e, g)} for e in (0, 1) for g in range(5)]  # in the second epoch too
    with pytest.raises(InvalidParameterError, match=r"Cannot export 2 epochs .* short batch of 2 row"):
        to_verl_parquet(CurriculumDataset(ds, 4, seed=1), tmp_path / "shifted.parquet", num_epochs=2)


def test_verl_export_keeps_chat_prompts_and_streams(tmp_path):
    chat = problems(6).map(
        lambda ex: {"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": ex["prompt"]}]}
    )
    rows = to_verl_parquet(CurriculumDataset(chat, 3), tmp_path / "chat.parquet")
    assert rows[0]["prompt"][0] == {"role": "system", "content": "Be brief."}
    stream = CurriculumDataset(problems(10).to_iterable_dataset(), 3, buffer_size=6)
    to_verl_parquet(stream, tmp_path / "stream.parquet")
    table = pq.read_table(tmp_path / "stream.parquet").to_pylist()
    assert sorted(r["extra_info"]["source_index"] for r in table) == list(range(10))
    with pytest.raises(MissingColumnError, match="Missing column 'answer' holding the verl row fields"):
        to_verl_parquet(CurriculumDataset(problems(4), 2, columns=["prompt"]), tmp_path / "x.parquet")


def test_verl_overrides():
    assert verl_overrides(8, "/data/c.parquet", total_epochs=2) == [
        "data.train_files=/data/c.parquet",
        "data.shuffle=False",
        "data.train_batch_size=8",
        "data.filter_overlong_prompts=False",
        "trainer.total_epochs=2",
    ]


def test_docstring_examples_run():
    import doctest

    from hf_saerl.integrations import verl

    assert doctest.testmod(verl).failed == 0
