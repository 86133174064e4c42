"""The labelling budget: exact sizes, seeded and reproducible, every cluster covered when the budget allows,
shares proportional to cluster size, and clear refusals."""

from __future__ import annotations

from collections import Counter

import pytest
from datasets import Dataset
from hypothesis import given, settings
from hypothesis import strategies as st

from hf_saerl.errors import InvalidParameterError, MissingColumnError
from hf_saerl.rollouts.budget import allocate_budget, select_for_labelling, split_for_labelling


def _data(clusters):
    return Dataset.from_dict({"prompt": [f"q{i}" for i in range(len(clusters))], "cluster_id": list(clusters)})


def test_random_subset_is_seeded_sorted_and_exact():
    ds = _data([0] * 50)
    a = select_for_labelling(ds, 10, seed=1)
    assert a == sorted(a) and len(set(a)) == 10
    assert a == select_for_labelling(ds, 10, seed=1) != select_for_labelling(ds, 10, seed=2)
    assert len(select_for_labelling(ds, 0.2)) == 10  # a fraction


def test_stratified_covers_every_cluster_in_proportion():
    clusters = [0] * 60 + [1] * 30 + [2] * 8 + [3] * 2
    ds = _data(clusters)
    rows = select_for_labelling(ds, 20, strategy="stratified", seed=0)
    counts = Counter(clusters[i] for i in rows)
    assert counts == {0: 12, 1: 6, 2: 1, 3: 1}  # 20 * share, every cluster at least once
    # a random subset of the same size misses the small clusters far more often
    misses = sum(3 not in {clusters[i] for i in select_for_labelling(ds, 20, seed=s)} for s in range(50))
    assert misses > 25
    few = select_for_labelling(ds, 2, strategy="stratified")
    assert sorted(clusters[i] for i in few) == [0, 1]  # fewer rows than clusters: the largest clusters


def test_split_returns_labelled_and_rest_in_order():
    ds = _data([0, 1] * 10)
    labelled, rest = split_for_labelling(ds, 6, strategy="stratified", seed=3)
    assert len(labelled) == 6 and len(rest) == 14
    picked, others, every = list(labelled["prompt"]), list(rest["prompt"]), list(ds["prompt"])
    assert sorted(picked + others) == sorted(every)
    assert Counter(labelled["cluster_id"]) == {0: 3, 1: 3}
    assert picked == [p for p in every if p in set(picked)] and others == [p for p in every if p not in set(picked)]


def test_refusals():
    ds = _data([0] * 5)
    with pytest.raises(InvalidParameterError, match="n=6 rows requested from a dataset of 5"):
        select_for_labelling(ds, 6)
    with pytest.raises(InvalidParameterError, match="fraction"):
        select_for_labelling(ds, 1.5)
    with pytest.raises(InvalidParameterError, match="Unknown strategy"):
        select_for_labelling(ds, 2, strategy="greedy")
    with pytest.raises(MissingColumnError, match="Run SAEClusterer first"):
        select_for_labelling(Dataset.from_dict({"prompt": ["a", "b"]}), 1, strategy="stratified")


@settings(max_examples=60, deadline=None)
@given(sizes=st.lists(st.integers(1, 40), min_size=1, max_size=8), data=st.data())
def test_allocation_properties(sizes, data):
    total = sum(sizes)
    n = data.draw(st.integers(1, total))
    alloc = allocate_budget(dict(enumerate(sizes)), n)
    assert sum(alloc.values()) == n
    assert all(0 <= alloc[k] <= sizes[k] for k in alloc)
    if n >= len(sizes):
        assert all(alloc[k] >= 1 for k in alloc)
        # no cluster is more than one row (plus its floor of one) away from its proportional share
        assert all(alloc[k] - n * sizes[k] / total < 2 for k in alloc)
