"""HF Trainer on the curriculum order, the verl Parquet export, and what these integrations refuse."""

from __future__ import annotations

import os

import datasets
import pyarrow.parquet as pq
import pytest
import torch

from hf_saerl.curriculum import CurriculumDataset, build_schedule
from hf_saerl.errors import InvalidParameterError, MissingColumnError, NonFiniteError, RowMismatchError
from hf_saerl.integrations.verl import to_verl_parquet, verl_overrides

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")


def problems(n: int = 22, **columns) -> datasets.Dataset:
    """``n`` toy problems with their curriculum columns, some of them replaced by ``columns``."""
    base = {
        "prompt": [f"What is {k}+{k}?" for k in range(n)],
        "answer": [str(2 * k) for k in range(n)],
        "source": ["toy"] * n,
        "cluster_id": [k % 3 for k in range(n)],
        "difficulty": [((k * 5) % n) / n for k in range(n)],
        "sae_indices": [[1]] * n,
    }
    return datasets.Dataset.from_dict({**base, **columns})


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


# ---------------------------------------------------------------------------------------------- refusals
# Issue 13, "nothing silent", for the trainer, verl and trl integrations (moved from tests/reliability, then from
# tests/integrations/test_curriculum_refusals.py): the error class, a message naming the problem, and no file
# written or lost. The curriculum's own refusals are in tests/curriculum/test_refusals.py.
def test_trainer_options_are_checked_at_construction(tmp_path):
    from transformers import TrainingArguments

    from hf_saerl.integrations.transformers import CurriculumTrainer
    from hf_saerl.testing import tiny_llama

    args = TrainingArguments(str(tmp_path), per_device_train_batch_size=2, use_cpu=True, report_to="none")
    with pytest.raises(NonFiniteError, match="mix_ratio must be a finite number"):
        CurriculumTrainer(model=tiny_llama(), args=args, train_dataset=problems(12), mix_ratio=float("nan"))
    with pytest.raises(NonFiniteError, match=r"first: inf at row 0"):
        CurriculumTrainer(model=tiny_llama(), args=args, train_dataset=problems(12, difficulty=[float("inf")] * 12))


def test_sampler_fallback_to_train_dataset_needs_the_same_rows(tmp_path):
    from transformers import TrainingArguments

    from hf_saerl.integrations.transformers import CurriculumTrainer
    from hf_saerl.testing import tiny_llama

    args = TrainingArguments(str(tmp_path), per_device_train_batch_size=2, use_cpu=True, report_to="none")
    trainer = CurriculumTrainer(model=tiny_llama(), args=args, train_dataset=problems(12))
    stripped = problems(10).remove_columns(["cluster_id", "difficulty"])  # other rows than train_dataset
    with pytest.raises(RowMismatchError, match=r"has 10 rows but lacks the curriculum's columns.*has 12 rows"):
        trainer._get_train_sampler(stripped)
    same = problems(12).remove_columns(["cluster_id", "difficulty"])
    assert len(list(trainer._get_train_sampler(same))) == 12


def test_to_verl_parquet_leaves_no_partial_file_on_failure(tmp_path):
    diff = [0.5] * 40
    diff[30] = float("nan")
    stream = CurriculumDataset(problems(40, difficulty=diff).to_iterable_dataset(num_shards=1), 4, buffer_size=8)
    path = tmp_path / "train.parquet"
    with pytest.raises(Exception) as info:  # datasets wraps generator errors in a DatasetGenerationError
        to_verl_parquet(stream, path)
    assert "stream row 30" in str(info.value) + str(info.value.__cause__)
    assert os.listdir(tmp_path) == []


def test_to_verl_parquet_keeps_an_existing_file_when_the_write_fails(tmp_path, monkeypatch):
    path = tmp_path / "train.parquet"
    path.write_bytes(b"previous file")

    def broken(self, target, *args, **kwargs):
        with open(target, "wb") as handle:
            handle.write(b"half a parq")
        raise OSError("disk full")

    monkeypatch.setattr(datasets.Dataset, "to_parquet", broken)
    with pytest.raises(OSError, match="disk full"):
        to_verl_parquet(CurriculumDataset(problems(12), 4), path)
    assert os.listdir(tmp_path) == ["train.parquet"] and path.read_bytes() == b"previous file"


def test_verl_overrides_refuse_a_fractional_batch_size():
    with pytest.raises(InvalidParameterError, match=r"batch_size must be an integer, got 2.5"):
        verl_overrides(2.5, "train.parquet")  # int(2.5) == 2 used to write another batch size


def test_repeat_sampler_refuses_a_bool_repeat_count():
    pytest.importorskip("trl")
    from hf_saerl.integrations.trl import CurriculumRepeatSampler

    with pytest.raises(InvalidParameterError, match="mini_repeat_count must be an integer, got True"):
        CurriculumRepeatSampler(problems(12), mini_repeat_count=True, batch_size=2)
    with pytest.raises(InvalidParameterError, match="repeat_count must be an integer >= 1, got 0"):
        CurriculumRepeatSampler(problems(12), mini_repeat_count=2, batch_size=2, repeat_count=0)
