"""The resumable position of a CurriculumDataset (hf_saerl.curriculum.state): a plain DataLoader with workers is
refused a state it cannot know, torchdata's StatefulDataLoader stays exactly-once."""

from __future__ import annotations

import json

import datasets
import numpy as np
import pytest
from torch.utils.data import DataLoader

from hf_saerl.curriculum import CurriculumDataset, build_schedule
from hf_saerl.errors import HfSaerlError, UntrackedProgressError

pytestmark = pytest.mark.filterwarnings("ignore:.*worker processes in total", "ignore:.set_vital. is deprecated")


def make_dataset(n: int = 60, n_clusters: int = 3) -> datasets.Dataset:
    rng = np.random.default_rng(0)
    return datasets.Dataset.from_dict(
        {
            "i": list(range(n)),
            "cluster_id": rng.integers(0, n_clusters, n),
            "difficulty": rng.random(n).astype(np.float32),
        }
    )


def flat(batches) -> list[int]:
    return [i for b in batches for i in b]


def save_checkpoint(stream: CurriculumDataset, path) -> None:
    """What a training loop does: ask for the state, then write it."""
    state = stream.state_dict()
    path.write_text(json.dumps(state))


@pytest.mark.parametrize("yield_batches", [False, True])
def test_plain_dataloader_with_workers_is_refused_a_state(tmp_path, yield_batches):
    ds = make_dataset()
    stream = CurriculumDataset(ds, 4, columns=["i"], yield_batches=yield_batches)
    loader = DataLoader(stream, batch_size=None if yield_batches else 4, num_workers=2)
    it = iter(loader)
    for _ in range(3):
        next(it)
    target = tmp_path / "state.json"
    with pytest.raises(UntrackedProgressError) as err:
        save_checkpoint(stream, target)
    message = str(err.value)
    assert "DataLoader worker processes" in message and "repeat rows" in message  # the problem
    assert "StatefulDataLoader" in message and "num_workers=0" in message  # the two ways out
    assert isinstance(err.value, HfSaerlError) and isinstance(err.value, RuntimeError)
    assert not target.exists()  # nothing written
    del it


def test_the_refusal_lasts_until_this_process_iterates_again():
    ds = make_dataset()
    stream = CurriculumDataset(ds, 4, columns=["i"], yield_batches=True)
    assert len(list(DataLoader(stream, batch_size=None, num_workers=2))) == 15
    with pytest.raises(UntrackedProgressError):
        stream.state_dict()
    # iterating in this process again: its own position is true again, and resuming from it is exactly-once
    it = iter(stream)
    head = [next(it) for _ in range(4)]
    state = stream.state_dict()
    assert state["position"] == {"batch": 4, "offset": 0}
    resumed = CurriculumDataset(ds, 4, columns=["i"], yield_batches=True)
    resumed.load_state_dict(state)
    order = flat([[r["i"] for r in b] for b in head + list(resumed)])
    assert order == flat(build_schedule(ds["cluster_id"][:], ds["difficulty"][:], 4))


def test_zero_workers_and_unused_streams_keep_their_state():
    ds = make_dataset()
    stream = CurriculumDataset(ds, 4, columns=["i"])
    assert stream.state_dict()["position"] == {"batch": 0, "offset": 0}  # never iterated: the start, truly
    loader = DataLoader(stream, batch_size=4, num_workers=0)
    it = iter(loader)
    next(it), next(it)
    assert stream.state_dict()["position"] == {"batch": 1, "offset": 4}


@pytest.mark.parametrize("num_workers", [0, 2])
def test_stateful_dataloader_stays_exactly_once(num_workers):
    stateful = pytest.importorskip("torchdata.stateful_dataloader")
    ds = make_dataset(61)

    def make():
        return stateful.StatefulDataLoader(
            CurriculumDataset(ds, 4, columns=["i"]), batch_size=4, num_workers=num_workers
        )

    loader = make()
    it = iter(loader)
    head = [next(it)["i"].tolist() for _ in range(5)]
    state = loader.state_dict()  # the workers' own states, collected: no refusal
    del it
    resumed = make()
    resumed.load_state_dict(state)
    rest = [b["i"].tolist() for b in resumed]
    expected = flat(build_schedule(ds["cluster_id"][:], ds["difficulty"][:], 4))
    assert flat(head + rest) == expected and len(set(expected)) == 61
