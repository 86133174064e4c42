"""CurriculumDataset: schedule order, column selection, DDP slices, DataLoader workers, exact resumption, bounded
streaming buffers, exports to datasets, and the samplers."""

from __future__ import annotations

import json

import datasets
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader

from hf_saerl.curriculum import CurriculumBatchSampler, CurriculumDataset, CurriculumSampler, build_schedule
from hf_saerl.errors import InvalidParameterError, MissingColumnError, NonFiniteError, ScheduleMismatchError

FAST = settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
SLOW = settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])

pytestmark = pytest.mark.filterwarnings("ignore:.*worker processes in total", "ignore:.set_vital. is deprecated")


def make_dataset(n: int, n_clusters: int = 3, seed: int = 0) -> datasets.Dataset:
    rng = np.random.default_rng(seed)
    return datasets.Dataset.from_dict(
        {
            "i": list(range(n)),
            "prompt": [f"q{k}" for k in range(n)],
            "cluster_id": rng.integers(0, n_clusters, n).astype(np.int32),
            "difficulty": rng.integers(0, 5, n).astype(np.float32) / 5,
            "sae_indices": [[1, 2, 3]] * n,
            "sae_values": [[0.5, 0.25, 0.125]] * n,
        }
    )


def schedule_of(ds, **kw):
    return build_schedule(ds["cluster_id"][:], ds["difficulty"][:], **kw)


def flat(lists):
    return [x for part in lists for x in part]


def ids(rows):
    return [r["i"] for r in rows]


options = st.fixed_dictionaries(
    {
        "batch_size": st.integers(1, 9),
        "mix_ratio": st.sampled_from([0.0, 0.125, 0.25, 0.5]),
        "seed": st.integers(0, 1000),
        "drop_last": st.booleans(),
        "interleave": st.sampled_from(["round_robin", "sequential", "random"]),
    }
)


# ---------------------------------------------------------------------------------------------- order and columns
@FAST
@given(st.integers(0, 60), st.integers(1, 5), options, st.integers(0, 3))
def test_stream_replays_the_schedule(n, n_clusters, kw, epoch):
    ds = make_dataset(n, n_clusters)
    schedule = schedule_of(ds, epoch=epoch, **kw)
    stream = CurriculumDataset(ds, epoch=epoch, world_size=1, rank=0, **kw)
    assert stream.schedule() == schedule
    assert ids(stream) == [i for b in schedule for i in b]
    batches = CurriculumDataset(ds, epoch=epoch, yield_batches=True, world_size=1, rank=0, **kw)
    assert [ids(b) for b in batches] == [b for b in schedule if b]
    assert len(stream) == sum(map(len, schedule)) and len(batches) == len(schedule)


def test_columns_and_remove_columns():
    ds = make_dataset(10)
    heavy = CurriculumDataset(ds, 4)
    assert set(next(iter(heavy))) == set(ds.column_names)
    light = CurriculumDataset(ds, 4, remove_columns=["sae_indices", "sae_values"])
    assert set(next(iter(light))) == {"i", "prompt", "cluster_id", "difficulty"}
    assert list(light.features) == ["i", "prompt", "cluster_id", "difficulty"]
    only = CurriculumDataset(ds, 4, columns=["prompt"])
    assert list(next(iter(only))) == ["prompt"] and ids(heavy) == [int(p["prompt"][1:]) for p in only]
    with pytest.raises(MissingColumnError, match="not in the dataset"):
        CurriculumDataset(ds, 4, columns=["nope"])
    with pytest.raises(TypeError, match="list of column names"):
        CurriculumDataset(ds, 4, remove_columns="sae_indices")


def test_missing_schedule_columns_and_bad_arguments():
    ds = make_dataset(6).remove_columns(["cluster_id"])
    with pytest.raises(
        MissingColumnError, match=r"Missing column 'cluster_id' holding the cluster ids.*cluster_column=None"
    ):
        CurriculumDataset(ds, 2)
    assert len(ids(CurriculumDataset(ds, 2, cluster_column=None))) == 6
    with pytest.raises(
        MissingColumnError, match=r"Missing column 'level' holding the difficulty scores.*DifficultyProbe"
    ):
        CurriculumDataset(make_dataset(6), 2, difficulty_column="level")
    with pytest.raises(InvalidParameterError, match="order='random'"):
        CurriculumDataset(make_dataset(6), 2, difficulty_column=None)
    with pytest.raises(TypeError, match=r"datasets\.Dataset"):
        CurriculumDataset({"cluster_id": [0]}, 2)
    with pytest.raises(InvalidParameterError, match="mix_ratio"):
        CurriculumDataset(make_dataset(6), 2, mix_ratio=0.9)
    with pytest.raises(InvalidParameterError, match="rank and world_size"):
        CurriculumDataset(make_dataset(6), 2, world_size=2)
    with pytest.raises(InvalidParameterError, match="rank < world_size"):
        CurriculumDataset(make_dataset(6), 2, rank=2, world_size=2)
    with pytest.raises(NonFiniteError, match="NaN"):
        CurriculumDataset(datasets.Dataset.from_dict({"cluster_id": [0, 1], "difficulty": [0.1, None]}), 2)
    with pytest.raises(TypeError, match="unexpected keyword argument 'mix'"):
        CurriculumDataset(make_dataset(6), 2, mix=0.1)  # a misspelt schedule option


def test_set_epoch_gives_a_new_order_and_describe():
    ds = make_dataset(48, 4)
    stream = CurriculumDataset(ds, 4)
    first = ids(stream)
    stream.set_epoch(1)
    assert stream.epoch == 1 and ids(stream) != first and sorted(ids(stream)) == sorted(first)
    info = stream.describe()
    assert info["size"] == [len(b) for b in stream.schedule()]
    assert len(info["majority_cluster"]) == len(stream.schedule())


# ---------------------------------------------------------------------------------------------- DDP
@FAST
@given(st.integers(0, 50), options, st.integers(1, 8), st.booleans())
def test_ddp_slices_union_to_the_global_batches(n, kw, world_size, yield_batches):
    ds = make_dataset(n)
    schedule = schedule_of(ds, **kw)
    per_rank = []
    for rank in range(world_size):
        stream = CurriculumDataset(ds, rank=rank, world_size=world_size, yield_batches=yield_batches, **kw)
        items = list(stream)
        assert len(items) == len(stream)
        per_rank.append([ids(b) for b in items] if yield_batches else ids(items))
    everything = [i for r in per_rank for i in (flat(r) if yield_batches else r)]
    assert sorted(everything) == sorted(i for b in schedule for i in b)  # no duplicate, nothing dropped
    for _g, batch in enumerate(schedule):
        slices = [batch[r::world_size] for r in range(world_size)]
        assert sorted(flat(slices)) == sorted(batch)
        assert max(map(len, slices)) - min(map(len, slices)) <= 1
    for rank in range(world_size):  # each rank walks the global batches in order
        expected = [batch[rank::world_size] for batch in schedule]
        got = per_rank[rank]
        assert got == ([e for e in expected if e] if yield_batches else flat(expected))


def test_ddp_reads_torch_distributed_when_initialised(tmp_path):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path}/pg", rank=0, world_size=1)
    try:
        stream = CurriculumDataset(make_dataset(12), 4)
        assert (stream.rank, stream.world_size) == (0, 1)
        assert ids(stream) == ids(CurriculumDataset(make_dataset(12), 4, rank=0, world_size=1))
        assert stream.__getstate__()["_world_size"] == 1  # frozen for spawned workers
    finally:
        dist.destroy_process_group()


# ---------------------------------------------------------------------------------------------- DataLoader workers
@pytest.mark.parametrize("num_workers", [0, 1, 2, 3, 4])
def test_workers_keep_every_batch_once_and_in_order(num_workers):
    ds = make_dataset(83, 4)
    schedule = schedule_of(ds, batch_size=6)
    batches = CurriculumDataset(ds, 6, yield_batches=True, columns=["i"])
    loader = DataLoader(batches, batch_size=None, num_workers=num_workers)
    assert [ids(b) for b in loader] == schedule
    examples = CurriculumDataset(ds, 6, columns=["i"])
    loader = DataLoader(examples, batch_size=6, num_workers=num_workers)
    assert [b["i"].tolist() for b in loader] == schedule


@SLOW
@given(st.integers(1, 40), options, st.integers(0, 4), st.integers(1, 4))
def test_workers_and_ranks_together(n, kw, num_workers, world_size):
    ds = make_dataset(n)
    schedule = schedule_of(ds, **kw)
    rank = world_size - 1
    stream = CurriculumDataset(ds, rank=rank, world_size=world_size, yield_batches=True, columns=["i"], **kw)
    got = [ids(b) for b in DataLoader(stream, batch_size=None, num_workers=num_workers)]
    assert got == [b[rank::world_size] for b in schedule if b[rank::world_size]]


def test_persistent_workers_follow_set_epoch():
    ds = make_dataset(40, 4)
    stream = CurriculumDataset(ds, 4, yield_batches=True, columns=["i"])
    loader = DataLoader(stream, batch_size=None, num_workers=2, persistent_workers=True)
    for epoch in (0, 1):
        stream.set_epoch(epoch)
        assert [ids(b) for b in loader] == schedule_of(ds, batch_size=4, epoch=epoch)


# ---------------------------------------------------------------------------------------------- resumption
@FAST
@given(st.integers(0, 50), options, st.integers(1, 4), st.booleans(), st.data())
def test_resume_yields_exactly_the_rest_of_the_epoch(n, kw, world_size, yield_batches, data):
    ds = make_dataset(n)
    rank = data.draw(st.integers(0, world_size - 1))

    def make():
        return CurriculumDataset(ds, rank=rank, world_size=world_size, yield_batches=yield_batches, epoch=2, **kw)

    full = list(make())
    cut = data.draw(st.integers(0, len(full)))
    stream = make()
    it = iter(stream)
    head = [next(it) for _ in range(cut)]
    state = json.loads(json.dumps(stream.state_dict()))  # JSON-serialisable
    resumed = make()
    resumed.set_epoch(0)
    resumed.load_state_dict(state)
    assert resumed.epoch == 2
    assert resumed.state_dict() == state
    rest = list(resumed)
    assert head + rest == full
    assert list(resumed) == full  # the loaded state is used once; the next pass is the whole epoch


def test_resume_twice_and_at_the_ends():
    ds = make_dataset(30)
    full = ids(CurriculumDataset(ds, 4))
    stream = CurriculumDataset(ds, 4)
    assert stream.state_dict()["position"] == {"batch": 0, "offset": 0}
    it = iter(stream)
    got = [next(it)["i"] for _ in range(5)]
    for step in (7, 11):
        again = CurriculumDataset(ds, 4)
        again.load_state_dict(stream.state_dict())
        it = iter(again)
        got += [next(it)["i"] for _ in range(step)]
        stream = again
    end = CurriculumDataset(ds, 4)
    end.load_state_dict(stream.state_dict())
    got += ids(end)
    assert got == full
    done = CurriculumDataset(ds, 4)
    done.load_state_dict(end.state_dict())
    assert list(done) == []
    end.set_epoch(1)  # a checkpoint taken between epochs resumes at the start of the next one
    next_epoch = CurriculumDataset(ds, 4)
    next_epoch.load_state_dict(end.state_dict())
    assert ids(next_epoch) == ids(CurriculumDataset(ds, 4, epoch=1))


def test_loading_another_schedules_state_names_what_differs():
    ds = make_dataset(20)
    state = CurriculumDataset(ds, 4, seed=1).state_dict()
    with pytest.raises(ScheduleMismatchError, match=r"batch_size: 4 in the state, 5 here"):
        CurriculumDataset(ds, 5, seed=1).load_state_dict(state)
    with pytest.raises(ScheduleMismatchError, match=r"seed: 1 in the state, 2 here"):
        CurriculumDataset(ds, 4, seed=2).load_state_dict(state)
    with pytest.raises(ScheduleMismatchError, match=r"num_rows: 20 in the state, 21 here"):
        CurriculumDataset(make_dataset(21), 4, seed=1).load_state_dict(state)
    with pytest.raises(ScheduleMismatchError, match=r"data: '\w+' in the state, '\w+' here"):
        CurriculumDataset(make_dataset(20, seed=5), 4, seed=1).load_state_dict(state)
    with pytest.raises(ScheduleMismatchError, match="rank 0 of 1 but this is rank 1 of 2"):
        CurriculumDataset(ds, 4, seed=1, rank=1, world_size=2).load_state_dict(state)
    with pytest.raises(InvalidParameterError, match="Not a CurriculumDataset state"):
        CurriculumDataset(ds, 4).load_state_dict({"examples_iterable": {}, "epoch": 0})
    # other columns or yield mode do not change the schedule: the state loads
    CurriculumDataset(ds, 4, seed=1, columns=["i"], yield_batches=True).load_state_dict(state)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_stateful_dataloader_resume(num_workers):
    stateful = pytest.importorskip("torchdata.stateful_dataloader")
    ds = make_dataset(61, 3)

    def make():
        return stateful.StatefulDataLoader(
            CurriculumDataset(ds, 4, yield_batches=True, columns=["i"]), batch_size=None, num_workers=num_workers
        )

    full = [ids(b) for b in make()]
    loader = make()
    it = iter(loader)
    head = [ids(next(it)) for _ in range(5)]
    state = loader.state_dict()
    del it
    resumed = make()
    resumed.load_state_dict(state)
    assert head + [ids(b) for b in resumed] == full == schedule_of(ds, batch_size=4)


@SLOW
@given(st.integers(1, 40), options, st.integers(0, 4), st.integers(1, 8), st.booleans(), st.data())
def test_workers_ranks_and_resume_points_together(n, kw, num_workers, world_size, yield_batches, data):
    # A StatefulDataLoader with 0-4 workers, on one rank of 1-8, checkpointed at any point: the loader's batches are
    # the rank's slices of the global batches, in order, each example once, and resuming gives exactly the rest.
    stateful = pytest.importorskip("torchdata.stateful_dataloader")
    ds = make_dataset(n)
    rank = data.draw(st.integers(0, world_size - 1))
    local = len(range(rank, kw["batch_size"], world_size))  # this rank's share of a full batch
    assume(yield_batches or local > 0)

    def make():
        return stateful.StatefulDataLoader(
            CurriculumDataset(ds, rank=rank, world_size=world_size, yield_batches=yield_batches, columns=["i"], **kw),
            batch_size=None if yield_batches else local,
            num_workers=num_workers,
        )

    def read(batches):
        return [ids(b) if yield_batches else b["i"].tolist() for b in batches]

    full = read(make())
    assert full == [s for b in schedule_of(ds, **kw) if (s := b[rank::world_size])]
    cut = data.draw(st.integers(0, len(full)))
    loader = make()
    it = iter(loader)
    head = read(next(it) for _ in range(cut))
    state = loader.state_dict()
    del it
    resumed = make()
    resumed.load_state_dict(state)
    assert head + read(resumed) == full


# ---------------------------------------------------------------------------------------------- streaming sources
def counting_stream(n: int, n_clusters: int = 3, seed: int = 0):
    """A streaming source that counts how many rows it has produced."""
    base = make_dataset(n, n_clusters, seed).remove_columns(["sae_indices", "sae_values"])
    produced = [0]

    def gen():
        for row in base:
            produced[0] += 1
            yield row

    return datasets.IterableDataset.from_generator(gen, features=base.features), produced, base


@pytest.mark.parametrize(("buffer_size", "batch_size"), [(10, 3), (16, 4), (7, 7), (1000, 5)])
def test_streaming_buffer_stays_bounded(buffer_size, batch_size):
    source, produced, _base = counting_stream(101)
    stream = CurriculumDataset(source, batch_size, buffer_size=buffer_size)
    held = buffer_size - buffer_size % batch_size
    assert stream.buffer_size == held
    out = 0
    for _ in stream:
        out += 1
        assert produced[0] - out < held + 1  # rows read but not yet yielded: at most one buffer
    assert out == 101 == produced[0]


@FAST
@given(st.integers(0, 80), options, st.integers(1, 40))
def test_streaming_exactly_once_and_batches_exact(n, kw, buffer_size):
    source, _, _base = counting_stream(n)
    buffer_size = max(buffer_size, kw["batch_size"])
    stream = CurriculumDataset(source, buffer_size=buffer_size, yield_batches=True, **kw)
    batches = [ids(b) for b in stream]
    order = flat(batches)
    assert len(order) == len(set(order))
    B = kw["batch_size"]
    if kw["drop_last"]:
        assert all(len(b) == B for b in batches) and len(order) == n - n % B
    else:
        assert sorted(order) == list(range(n)) and all(len(b) == B for b in batches[:-1])
    held = stream.buffer_size
    for _k, b in enumerate(batches):  # each batch comes from one buffer
        assert len({i // held for i in b}) == 1


def test_streaming_with_one_big_buffer_equals_the_map_style_order():
    source, _, base = counting_stream(57)
    assert ids(CurriculumDataset(source, 5, buffer_size=100)) == ids(CurriculumDataset(base, 5))


@SLOW
@given(st.integers(1, 60), options, st.integers(1, 3), st.data())
def test_streaming_resume(n, kw, world_size, data):
    source, _, _ = counting_stream(n)
    rank = data.draw(st.integers(0, world_size - 1))
    buffer_size = kw["batch_size"] * data.draw(st.integers(1, 4))

    def make():
        return CurriculumDataset(source, buffer_size=buffer_size, rank=rank, world_size=world_size, **kw)

    full = ids(make())
    cut = data.draw(st.integers(0, len(full)))
    stream = make()
    it = iter(stream)
    head = [next(it)["i"] for _ in range(cut)]
    state = json.loads(json.dumps(stream.state_dict()))
    resumed = make()
    resumed.load_state_dict(state)
    assert head + ids(resumed) == full


def test_streaming_resume_on_a_different_stream_is_an_error():
    source, _, _ = counting_stream(40, seed=0)
    stream = CurriculumDataset(source, 4, buffer_size=8)
    it = iter(stream)
    for _ in range(10):
        next(it)
    state = stream.state_dict()
    other, _, _ = counting_stream(40, seed=1)
    resumed = CurriculumDataset(other, 4, buffer_size=8)
    resumed.load_state_dict(state)
    with pytest.raises(ScheduleMismatchError, match="stream differs"):
        list(resumed)
    with pytest.raises(ScheduleMismatchError, match="buffer_size: 8 in the state, 12 here"):
        CurriculumDataset(other, 4, buffer_size=12).load_state_dict(state)


@pytest.mark.parametrize("num_workers", [0, 2, 3])
def test_streaming_over_workers(num_workers):
    source = make_dataset(70).to_iterable_dataset(num_shards=3)
    stream = CurriculumDataset(source, 4, buffer_size=20, yield_batches=True, columns=["i"])
    expected = [ids(b) for b in stream]
    assert [ids(b) for b in DataLoader(stream, batch_size=None, num_workers=num_workers)] == expected
    assert sorted(flat(expected)) == list(range(70))


def test_streaming_has_no_length_nor_global_schedule():
    source, _, _ = counting_stream(5)
    stream = CurriculumDataset(source, 2, buffer_size=4)
    with pytest.raises(TypeError):
        len(stream)
    with pytest.raises(TypeError, match="map-style"):
        stream.schedule()
    with pytest.raises(InvalidParameterError, match="buffer_size"):
        CurriculumDataset(source, 8, buffer_size=4)


# ---------------------------------------------------------------------------------------------- exports
def test_to_iterable_dataset_is_global_typed_and_resumable():
    ds = make_dataset(37)
    stream = CurriculumDataset(
        ds, 4, rank=1, world_size=2, remove_columns=["sae_indices", "sae_values"], drop_last=True
    )  # several epochs in a row need whole batches (see below)
    exported = stream.to_iterable_dataset(num_epochs=2)
    assert isinstance(exported, datasets.IterableDataset)
    assert exported.features == stream.features and "sae_values" not in exported.features
    order = ids(exported)
    assert order == [i for e in (0, 1) for b in schedule_of(ds, batch_size=4, epoch=e, drop_last=True) for i in b]
    assert len(order) == 72
    it = iter(exported)
    head = [next(it)["i"] for _ in range(41)]
    state = exported.state_dict()
    exported.load_state_dict(state)
    assert head + ids(exported) == order


def test_to_ordered_dataset():
    ds = make_dataset(29)
    stream = CurriculumDataset(ds, 4, columns=["i", "prompt"])
    ordered = stream.to_ordered_dataset(epoch=3)
    assert isinstance(ordered, datasets.Dataset) and ordered.column_names == ["i", "prompt"]
    assert ordered["i"][:] == [i for b in schedule_of(ds, batch_size=4, epoch=3) for i in b]
    whole = CurriculumDataset(ds, 4, columns=["i", "prompt"], drop_last=True).to_ordered_dataset(num_epochs=3)
    assert whole["i"][:] == [
        i for e in (0, 1, 2) for b in schedule_of(ds, batch_size=4, epoch=e, drop_last=True) for i in b
    ]
    assert len(whole) == 84
    with pytest.raises(InvalidParameterError, match="num_epochs"):
        stream.to_ordered_dataset(num_epochs=0)
    source, _, _ = counting_stream(29)
    from_stream = CurriculumDataset(source, 4, buffer_size=8).to_ordered_dataset()
    assert from_stream["i"][:] == ids(CurriculumDataset(source, 4, buffer_size=8))


@pytest.mark.parametrize("export", ["to_ordered_dataset", "to_iterable_dataset"])
def test_several_epochs_in_a_row_need_whole_batches(export):
    # 29 rows in batches of 4 leave a short batch of 1: written back to back, every batch of the next epoch would
    # be shifted by one row against a trainer's fixed-size steps.
    ds = make_dataset(29)
    with pytest.raises(
        InvalidParameterError,
        match=r"Cannot export 2 epochs .* short batch of 1 row\(s\) "
        r"\(batch_size=4\).*drop_last=True",
    ):
        getattr(CurriculumDataset(ds, 4), export)(num_epochs=2)
    assert len(list(getattr(CurriculumDataset(ds, 4), export)(num_epochs=1))) == 29  # one epoch: all rows
    assert len(list(getattr(CurriculumDataset(make_dataset(28), 4), export)(num_epochs=2))) == 56  # whole batches
    source, _, _ = counting_stream(29)  # a stream's length is known only at its end: the error comes then
    with pytest.raises(Exception) as info:  # datasets wraps it in a DatasetGenerationError for Dataset.from_generator
        list(getattr(CurriculumDataset(source, 4, buffer_size=8), export)(num_epochs=2))
    assert "short batch of 1 row" in str(info.value) + str(info.value.__cause__)
    assert len(list(getattr(CurriculumDataset(source, 4, buffer_size=8, drop_last=True), export)(num_epochs=2))) == 56


def test_datasets_hashes_the_curriculum_cheaply():
    from datasets.fingerprint import Hasher

    stream = CurriculumDataset(make_dataset(20), 4)
    assert Hasher.hash(stream) == Hasher.hash(CurriculumDataset(make_dataset(20), 4))
    assert Hasher.hash(stream) != Hasher.hash(CurriculumDataset(make_dataset(20), 5))


# ---------------------------------------------------------------------------------------------- samplers
def test_samplers_follow_the_schedule_and_epochs():
    ds = make_dataset(45)
    schedule = schedule_of(ds, batch_size=4)
    batch_sampler = CurriculumBatchSampler(ds, 4)
    assert list(batch_sampler) == schedule and len(batch_sampler) == len(schedule)
    sampler = CurriculumSampler(ds, 4)
    assert list(sampler) == flat(schedule) and len(sampler) == 45
    sampler.set_epoch(1)
    assert list(sampler) == flat(schedule_of(ds, batch_size=4, epoch=1))
    loader = DataLoader(ds.select_columns(["i"]), batch_sampler=CurriculumBatchSampler(ds, 4), num_workers=2)
    assert [b["i"].tolist() for b in loader] == schedule
    columns = {"cluster_id": ds["cluster_id"][:], "difficulty": ds["difficulty"][:]}
    assert list(CurriculumSampler(columns, 4)) == flat(schedule)


# ---------------------------------------------------------------------------------------------- public seams
def test_state_dict_format_is_unchanged():
    # Checkpoints written before the stream was split into parts must still load: the same keys, the same identity.
    from hf_saerl.core.fingerprint import stable_hash
    from hf_saerl.curriculum.options import digest_arrays

    ds = make_dataset(20)
    stream = CurriculumDataset(ds, 4, seed=1)
    it = iter(stream)
    next(it)
    state = stream.state_dict()
    identity = {
        "data": digest_arrays(np.asarray(ds["cluster_id"][:]), np.asarray(ds["difficulty"][:])),
        "num_rows": 20,
        "batch_size": 4,
        "mix_ratio": 0.125,
        "seed": 1,
        "drop_last": False,
        "interleave": "round_robin",
        "order": "easy_to_hard",
        "cluster_column": "cluster_id",
        "difficulty_column": "difficulty",
    }
    assert state == {
        "version": 1,
        "fingerprint": stable_hash(identity),
        "schedule": identity,
        "epoch": 0,
        "rank": 0,
        "world_size": 1,
        "num_workers": 1,
        "position": {"batch": 0, "offset": 1},
    }
    source, _, _ = counting_stream(20)
    streamed = CurriculumDataset(source, 4, buffer_size=8)
    it = iter(streamed)
    next(it)
    position = streamed.state_dict()["position"]
    assert set(position) == {"buffer", "batches_before", "source_state", "buffer_digest", "batch", "offset"}
    assert streamed.state_dict()["schedule"]["data"] == "stream"


def test_epoch_batches_are_public_and_checked_up_front():
    ds = make_dataset(29)
    stream = CurriculumDataset(ds, 4, columns=["i"], drop_last=True)
    epochs = stream.export_epochs(epoch=2, num_epochs=2)
    assert epochs == (2, 3)
    got = [(e, g, sources, ids(rows)) for e, g, sources, rows in stream.iter_epoch_batches(epochs)]
    expected = [
        (e, g, b, b) for e in epochs for g, b in enumerate(schedule_of(ds, batch_size=4, epoch=e, drop_last=True))
    ]
    assert got == expected
    with pytest.raises(InvalidParameterError, match="Cannot export 2 epochs"):
        CurriculumDataset(ds, 4).export_epochs(num_epochs=2)  # a short batch of 1 row: refused before any row
    with pytest.raises(InvalidParameterError, match="num_epochs"):
        stream.export_epochs(num_epochs=True)


def test_one_set_of_options_serves_every_curriculum_class():
    from hf_saerl.curriculum.options import CurriculumOptions

    ds = make_dataset(30)
    options = dict(mix_ratio=0.25, seed=4, interleave="sequential", order="random", difficulty_column=None)
    expected = CurriculumOptions(**options).schedule(ds, 4).batches(0)
    assert expected == build_schedule(
        ds["cluster_id"][:], None, 4, mix_ratio=0.25, seed=4, interleave="sequential", order="random"
    )
    assert CurriculumDataset(ds, 4, **options).schedule() == expected
    assert list(CurriculumBatchSampler(ds, 4, **options)) == expected
    assert list(CurriculumSampler(ds, 4, **options)) == flat(expected)
    for bad, error in (
        ({"order": "sideways"}, InvalidParameterError),
        ({"drop_last": 1}, TypeError),
        ({"cluster_column": None, "difficulty_column": None}, InvalidParameterError),
    ):
        for make in (lambda kw: CurriculumDataset(ds, 4, **kw), lambda kw: CurriculumBatchSampler(ds, 4, **kw)):
            with pytest.raises(error):
                make(bad)
