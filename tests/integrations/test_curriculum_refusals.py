"""Issue 13, "nothing silent", for the curriculum's trainer and verl integrations (moved from
tests/reliability/test_curriculum.py): the error class, a message naming the problem, and no file written or lost.
"""

from __future__ import annotations

import os

import datasets
import pytest

from hf_saerl.curriculum import CurriculumDataset
from hf_saerl.errors import InvalidParameterError, NonFiniteError, RowMismatchError

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")


def table(n: int = 12, **columns) -> datasets.Dataset:
    base = {
        "i": list(range(n)),
        "prompt": [f"q{k}" for k in range(n)],
        "answer": [str(k) for k in range(n)],
        "cluster_id": [k % 3 for k in range(n)],
        "difficulty": [(k % 5) / 5 for k in range(n)],
    }
    return datasets.Dataset.from_dict({**base, **columns})


def stream_with(n: int = 40, **columns) -> datasets.IterableDataset:
    """A streaming source of ``n`` rows (one shard), with some column values replaced."""
    return table(n, **columns).to_iterable_dataset(num_shards=1)


def test_trainer_options_are_checked_at_construction(tmp_path):
    from transformers import TrainingArguments

    from hf_saerl.integrations.transformers import CurriculumTrainer
    from hf_saerl.testing import tiny_llama

    args = TrainingArguments(str(tmp_path), per_device_train_batch_size=2, use_cpu=True, report_to="none")
    with pytest.raises(NonFiniteError, match="mix_ratio must be a finite number"):
        CurriculumTrainer(model=tiny_llama(), args=args, train_dataset=table(), mix_ratio=float("nan"))
    with pytest.raises(NonFiniteError, match=r"first: inf at row 0"):
        CurriculumTrainer(model=tiny_llama(), args=args, train_dataset=table(difficulty=[float("inf")] * 12))


def test_sampler_fallback_to_train_dataset_needs_the_same_rows(tmp_path):
    from transformers import TrainingArguments

    from hf_saerl.integrations.transformers import CurriculumTrainer
    from hf_saerl.testing import tiny_llama

    args = TrainingArguments(str(tmp_path), per_device_train_batch_size=2, use_cpu=True, report_to="none")
    trainer = CurriculumTrainer(model=tiny_llama(), args=args, train_dataset=table(12))
    stripped = table(10).remove_columns(["cluster_id", "difficulty"])  # other rows than train_dataset
    with pytest.raises(RowMismatchError, match=r"has 10 rows but lacks the curriculum's columns.*has 12 rows"):
        trainer._get_train_sampler(stripped)
    same = table(12).remove_columns(["cluster_id", "difficulty"])
    assert len(list(trainer._get_train_sampler(same))) == 12


def test_to_verl_parquet_leaves_no_partial_file_on_failure(tmp_path):
    from hf_saerl.integrations.verl import to_verl_parquet

    diff = [0.5] * 40
    diff[30] = float("nan")
    stream = CurriculumDataset(stream_with(difficulty=diff), 4, buffer_size=8)
    path = tmp_path / "train.parquet"
    with pytest.raises(Exception) as info:  # datasets wraps generator errors in a DatasetGenerationError
        to_verl_parquet(stream, path)
    assert "stream row 30" in str(info.value) + str(info.value.__cause__)
    assert os.listdir(tmp_path) == []


def test_to_verl_parquet_keeps_an_existing_file_when_the_write_fails(tmp_path, monkeypatch):
    from hf_saerl.integrations.verl import to_verl_parquet

    path = tmp_path / "train.parquet"
    path.write_bytes(b"previous file")

    def broken(self, target, *args, **kwargs):
        with open(target, "wb") as handle:
            handle.write(b"half a parq")
        raise OSError("disk full")

    monkeypatch.setattr(datasets.Dataset, "to_parquet", broken)
    with pytest.raises(OSError, match="disk full"):
        to_verl_parquet(CurriculumDataset(table(), 4), path)
    assert os.listdir(tmp_path) == ["train.parquet"] and path.read_bytes() == b"previous file"


def test_verl_overrides_refuse_a_fractional_batch_size():
    from hf_saerl.integrations.verl import verl_overrides

    with pytest.raises(InvalidParameterError, match=r"batch_size must be an integer, got 2.5"):
        verl_overrides(2.5, "train.parquet")  # int(2.5) == 2 used to write another batch size


def test_repeat_sampler_refuses_a_bool_repeat_count():
    pytest.importorskip("trl")
    from hf_saerl.integrations.trl import CurriculumRepeatSampler

    with pytest.raises(InvalidParameterError, match="mini_repeat_count must be an integer, got True"):
        CurriculumRepeatSampler(table(), mini_repeat_count=True, batch_size=2)
    with pytest.raises(InvalidParameterError, match="repeat_count must be an integer >= 1, got 0"):
        CurriculumRepeatSampler(table(), mini_repeat_count=2, batch_size=2, repeat_count=0)
