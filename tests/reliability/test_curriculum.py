"""Issue 13, "nothing silent", for the curriculum and its trainer integrations: one test per bad input or fault.

Each case asserts the error class and that the message names the problem (the argument, the value or the row);
where data is involved, also that nothing was yielded from a bad buffer, and that no file was written or lost.
"""

from __future__ import annotations

import os

import datasets
import numpy as np
import pytest

from hf_saerl.curriculum import CurriculumBatchSampler, CurriculumDataset, CurriculumSampler, build_schedule
from hf_saerl.errors import (InvalidParameterError, NonFiniteError, ParameterTypeError, RowMismatchError,
                             ScheduleMismatchError)

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")


def table(n: int = 12, **columns) -> datasets.Dataset:
    base = {"i": list(range(n)), "prompt": [f"q{k}" for k in range(n)], "answer": [str(k) for k in range(n)],
            "cluster_id": [k % 3 for k in range(n)], "difficulty": [(k % 5) / 5 for k in range(n)]}
    return datasets.Dataset.from_dict({**base, **columns})


def stream_with(n: int = 40, **columns) -> datasets.IterableDataset:
    """A streaming source of ``n`` rows (one shard), with some column values replaced."""
    return table(n, **columns).to_iterable_dataset(num_shards=1)


# ---------------------------------------------------------------------------------- non-finite numbers (family 1)
def test_mix_ratio_nan_is_non_finite():
    with pytest.raises(NonFiniteError, match=r"mix_ratio must be a finite number in \[0, 0.5\], got nan"):
        CurriculumDataset(table(), 4, mix_ratio=float("nan"))


def test_mix_ratio_infinite_is_non_finite():
    with pytest.raises(NonFiniteError, match="mix_ratio must be a finite number.*got inf"):
        build_schedule([0, 1], [0.1, 0.2], 2, mix_ratio=float("inf"))


def test_infinite_difficulty_is_refused_naming_the_row():
    diff = [0.1] * 12
    diff[7] = float("inf")
    with pytest.raises(NonFiniteError,
                       match=r"difficulty has 1 missing, NaN or infinite value\(s\) \(first: inf at row 7\)"):
        CurriculumDataset(table(difficulty=diff), 4)


def test_missing_difficulty_is_refused_naming_the_row():
    diff = [0.1] * 12
    diff[3] = None
    with pytest.raises(NonFiniteError, match=r"first: nan at row 3"):
        CurriculumSampler(table(difficulty=diff), 4)


def test_fractional_cluster_ids_are_refused_naming_the_row():
    clusters = [0.0] * 12
    clusters[5] = 1.5
    with pytest.raises(InvalidParameterError, match=r"cluster_ids must be integers, got 1.5 at row 5"):
        CurriculumDataset(table(cluster_id=clusters), 4)


def test_nan_cluster_ids_are_non_finite():
    clusters = [0.0] * 12
    clusters[2] = float("nan")
    with pytest.raises(NonFiniteError, match=r"cluster_ids must be integers, got nan at row 2"):
        CurriculumBatchSampler(table(cluster_id=clusters), 4)


# ---------------------------------------------------------------------------------- types at the edge (family 4)
@pytest.mark.parametrize("batch_size", [2.0, True, "4"])
def test_batch_size_must_be_a_whole_number(batch_size):
    with pytest.raises(InvalidParameterError, match=rf"batch_size must be an integer >= 1, got {batch_size!r}"):
        CurriculumDataset(table(), batch_size)


def test_seed_as_a_string_is_refused():
    with pytest.raises(InvalidParameterError, match=r"seed must be a non-negative integer, got '0'"):
        CurriculumDataset(table(), 4, seed="0")


def test_mix_ratio_as_a_string_is_a_type_error():
    with pytest.raises(ParameterTypeError, match=r"mix_ratio must be a number in \[0, 0.5\], got '0.1'"):
        CurriculumDataset(table(), 4, mix_ratio="0.1")


def test_drop_last_must_be_a_bool():
    with pytest.raises(ParameterTypeError, match="drop_last must be a bool, got 'no'"):
        CurriculumDataset(table(), 4, drop_last="no")


def test_yield_batches_must_be_a_bool():
    # bool("no") is True: it used to switch batch mode on silently
    with pytest.raises(ParameterTypeError, match="yield_batches must be a bool, got 'no'"):
        CurriculumDataset(table(), 4, yield_batches="no")


@pytest.mark.parametrize("rank, world_size", [(0, True), (False, 2), (0.0, 2)])
def test_rank_and_world_size_must_be_integers(rank, world_size):
    with pytest.raises(InvalidParameterError, match=rf"Need integers 0 <= rank < world_size .*rank={rank!r}, "
                                                    rf"world_size={world_size!r}"):
        CurriculumDataset(table(), 4, rank=rank, world_size=world_size)


def test_sampler_epoch_is_not_truncated():
    sampler = CurriculumSampler(table(), 4)
    with pytest.raises(InvalidParameterError, match=r"epoch must be a non-negative integer, got 1.5"):
        sampler.set_epoch(1.5)
    assert sampler.epoch == 0  # unchanged
    with pytest.raises(InvalidParameterError, match="epoch must be a non-negative integer, got -1"):
        CurriculumBatchSampler(table(), 4, epoch=-1)


# ---------------------------------------------------------------------------------- late errors (family 6)
def test_nan_in_a_later_buffer_names_the_stream_row_and_yields_nothing_of_that_buffer():
    diff = [0.5] * 40
    diff[21] = float("nan")  # buffer 2 (rows 16-23) of buffers of 8 rows
    stream = CurriculumDataset(stream_with(difficulty=diff), 4, buffer_size=8, columns=["i"])
    seen = []
    with pytest.raises(NonFiniteError, match=r"first: nan at stream row 21\)"):
        for row in stream:
            seen.append(row["i"])
    assert sorted(seen) == list(range(16))  # the two good buffers, and nothing of the bad one


def test_fractional_cluster_id_in_a_later_buffer_names_the_stream_row():
    clusters = [0.0] * 40
    clusters[33] = 0.5
    stream = CurriculumDataset(stream_with(cluster_id=clusters), 4, buffer_size=8, yield_batches=True, columns=["i"])
    seen = []
    with pytest.raises(InvalidParameterError, match=r"cluster_ids must be integers, got 0.5 at stream row 33"):
        for batch in stream:
            seen.extend(row["i"] for row in batch)
    assert sorted(seen) == list(range(32))


def test_trainer_options_are_checked_at_construction(tmp_path):
    from transformers import TrainingArguments

    from hf_saerl.integrations.transformers import CurriculumTrainer
    from hf_saerl.testing import tiny_llama

    args = TrainingArguments(str(tmp_path), per_device_train_batch_size=2, use_cpu=True, report_to="none")
    with pytest.raises(NonFiniteError, match="mix_ratio must be a finite number"):
        CurriculumTrainer(model=tiny_llama(), args=args, train_dataset=table(), mix_ratio=float("nan"))
    with pytest.raises(NonFiniteError, match=r"first: inf at row 0"):
        CurriculumTrainer(model=tiny_llama(), args=args, train_dataset=table(difficulty=[float("inf")] * 12))


# ---------------------------------------------------------------------------------- row identity (family 3)
def test_resuming_over_a_shuffled_dataset_is_refused():
    ds = table(40)
    stream = CurriculumDataset(ds, 4)
    it = iter(stream)
    for _ in range(6):
        next(it)
    state = stream.state_dict()
    resumed = CurriculumDataset(ds.shuffle(seed=3), 4)
    with pytest.raises(ScheduleMismatchError, match=r"data: '\w+' in the state, '\w+' here"):
        resumed.load_state_dict(state)


def test_resuming_a_stream_over_edited_data_is_refused():
    stream = CurriculumDataset(stream_with(), 4, buffer_size=8)
    it = iter(stream)
    for _ in range(10):  # into buffer 1
        next(it)
    state = stream.state_dict()
    diff = [(k % 5) / 5 for k in range(40)]
    diff[9] = 0.99  # an edited row in the buffer the state resumes
    resumed = CurriculumDataset(stream_with(difficulty=diff), 4, buffer_size=8)
    resumed.load_state_dict(state)
    with pytest.raises(ScheduleMismatchError, match="buffer 1 now has other cluster/difficulty values"):
        next(iter(resumed))


def test_a_truncated_state_is_not_a_state():
    stream = CurriculumDataset(table(), 4)
    state = stream.state_dict()
    del state["fingerprint"]
    with pytest.raises(InvalidParameterError, match="Not a CurriculumDataset state"):
        stream.load_state_dict(state)


def test_sampler_fallback_to_train_dataset_needs_the_same_rows(tmp_path):
    from transformers import TrainingArguments

    from hf_saerl.integrations.transformers import CurriculumTrainer
    from hf_saerl.testing import tiny_llama

    args = TrainingArguments(str(tmp_path), per_device_train_batch_size=2, use_cpu=True, report_to="none")
    trainer = CurriculumTrainer(model=tiny_llama(), args=args, train_dataset=table(12))
    stripped = table(10).remove_columns(["cluster_id", "difficulty"])  # other rows than train_dataset
    with pytest.raises(RowMismatchError, match="has 10 rows but lacks the curriculum's columns.*has 12 rows"):
        trainer._get_train_sampler(stripped)
    same = table(12).remove_columns(["cluster_id", "difficulty"])
    assert len(list(trainer._get_train_sampler(same))) == 12


# ---------------------------------------------------------------------------------- exports write nothing on failure
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
