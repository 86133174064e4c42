"""Issue 13, "nothing silent", for the curriculum: one test per bad input or fault (moved from
tests/reliability/test_curriculum.py; the trainer, verl and trl cases are in tests/integrations/test_curriculum_trainers.py).

Each case asserts the error class and that the message names the problem (the argument, the value or the row);
where data is involved, also that nothing was yielded from a bad buffer.
"""

from __future__ import annotations

import datasets
import pytest

from hf_saerl.curriculum import CurriculumBatchSampler, CurriculumDataset, CurriculumSampler, build_schedule
from hf_saerl.errors import InvalidParameterError, NonFiniteError, ParameterTypeError, ScheduleMismatchError

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


def test_mix_ratio_nan_is_non_finite():
    with pytest.raises(NonFiniteError, match=r"mix_ratio must be a finite number in \[0, 0.5\], got nan"):
        CurriculumDataset(table(), 4, mix_ratio=float("nan"))


def test_mix_ratio_infinite_is_non_finite():
    with pytest.raises(NonFiniteError, match=r"mix_ratio must be a finite number.*got inf"):
        build_schedule([0, 1], [0.1, 0.2], 2, mix_ratio=float("inf"))


def test_infinite_difficulty_is_refused_naming_the_row():
    diff = [0.1] * 12
    diff[7] = float("inf")
    with pytest.raises(
        NonFiniteError, match=r"difficulty has 1 missing, NaN or infinite value\(s\) \(first: inf at row 7\)"
    ):
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
    with pytest.raises(
        InvalidParameterError,
        match=rf"Need integers 0 <= rank < world_size .*rank={rank!r}, "
        rf"world_size={world_size!r}",
    ):
        CurriculumDataset(table(), 4, rank=rank, world_size=world_size)


def test_sampler_epoch_is_not_truncated():
    sampler = CurriculumSampler(table(), 4)
    with pytest.raises(InvalidParameterError, match=r"epoch must be a non-negative integer, got 1.5"):
        sampler.set_epoch(1.5)
    assert sampler.epoch == 0  # unchanged
    with pytest.raises(InvalidParameterError, match="epoch must be a non-negative integer, got -1"):
        CurriculumBatchSampler(table(), 4, epoch=-1)


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
