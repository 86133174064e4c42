"""Properties of build_schedule (DESIGN.md section 5): a pure function, every example once, exact batch sizes,
easy to hard within clusters, round-robin interleaving, exact moderate mixing, a new order per epoch; and the
vectorised implementation gives bit for bit the schedule of the loop-based reference it replaced."""

from __future__ import annotations

import math
from collections import Counter
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from hf_saerl.curriculum import build_schedule, describe_schedule, mix_count, ordering
from hf_saerl.curriculum import schedule as schedule_module
from hf_saerl.curriculum.schedule import as_schedule_arrays, check_schedule_params
from hf_saerl.errors import InvalidParameterError, NonFiniteError

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def layouts(draw, max_rows: int = 70):
    """Random cluster/difficulty layouts: sparse cluster ids, ties in difficulty, uneven cluster sizes."""
    n = draw(st.integers(0, max_rows))
    n_clusters = draw(st.integers(1, 6))
    ids = draw(st.lists(st.integers(0, n_clusters - 1), min_size=n, max_size=n))
    spread = draw(st.sampled_from([1, 3, 100]))  # non-contiguous ids
    levels = draw(st.sampled_from([2, 5, 1000]))  # few levels -> many ties
    diff = draw(st.lists(st.integers(0, levels - 1), min_size=n, max_size=n))
    return [c * spread for c in ids], [d / levels for d in diff]


params = st.fixed_dictionaries(
    {
        "batch_size": st.integers(1, 12),
        "mix_ratio": st.sampled_from([0.0, 0.1, 0.125, 0.25, 1 / 3, 0.5]) | st.floats(0, 0.5),
        "seed": st.integers(0, 2**31),
        "epoch": st.integers(0, 50),
        "drop_last": st.booleans(),
        "interleave": st.sampled_from(["round_robin", "sequential", "random"]),
        "order": st.sampled_from(["easy_to_hard", "random"]),
    }
)


def flat(schedule):
    return [i for b in schedule for i in b]


@FAST
@given(layouts(), params)
def test_every_kept_example_once_and_exact_batch_sizes(layout, p):
    clusters, diff = layout
    n, B = len(clusters), p["batch_size"]
    schedule = build_schedule(clusters, diff, **p)
    order = flat(schedule)
    assert len(order) == len(set(order))
    assert all(isinstance(i, int) for i in order)
    if p["drop_last"]:
        assert len(order) == n - n % B and set(order) <= set(range(n))
        assert all(len(b) == B for b in schedule)
    else:
        assert sorted(order) == list(range(n))
        assert all(len(b) == B for b in schedule[:-1])
        if schedule:
            assert len(schedule[-1]) == (n % B or B)


@FAST
@given(layouts(), params)
def test_pure_function_of_data_params_seed_epoch(layout, p):
    clusters, diff = layout
    first = build_schedule(clusters, diff, **p)
    assert build_schedule(clusters, diff, **p) == first
    assert build_schedule(np.asarray(clusters, dtype=np.int32), np.asarray(diff, dtype=np.float32), **p) == first
    assert build_schedule(tuple(clusters), tuple(diff), **p) == first


@FAST
@given(st.integers(2, 4), st.integers(1, 6), st.integers(0, 5), st.integers(0, 2**31), params)
def test_a_new_epoch_gives_a_new_order(n_clusters, batch_size, extra, seed, p):
    # Freedom is guaranteed: at least two clusters have a full batch in round 0, so round 0's order is seeded.
    rows = n_clusters * batch_size + extra
    clusters = [i % n_clusters for i in range(rows)]
    diff = [(i * 7919) % 13 / 13 for i in range(rows)]
    p = {**p, "batch_size": batch_size, "seed": seed, "interleave": "round_robin"}
    seen = {str(build_schedule(clusters, diff, **{**p, "epoch": e})) for e in range(20)}
    assert len(seen) > 1


def test_seed_changes_the_order():
    clusters = [i % 4 for i in range(64)]
    diff = [0.5] * 64
    assert build_schedule(clusters, diff, 4, seed=0) != build_schedule(clusters, diff, 4, seed=1)


@FAST
@given(layouts(), params)
def test_unmixed_order_within_each_cluster_is_easy_to_hard(layout, p):
    clusters, diff = layout
    p = {**p, "mix_ratio": 0.0, "order": "easy_to_hard"}
    if p["interleave"] == "random":
        p["interleave"] = "round_robin"  # "random" shuffles batches: only the within-batch order holds
    for c in set(clusters):
        seen = [diff[i] for i in flat(build_schedule(clusters, diff, **p)) if clusters[i] == c]
        assert seen == sorted(seen)


@FAST
@given(layouts(), params)
def test_round_robin_all_jth_batches_before_any_next(layout, p):
    clusters, diff = layout
    p = {**p, "mix_ratio": 0.0, "interleave": "round_robin"}
    B = p["batch_size"]
    schedule = build_schedule(clusters, diff, **p)
    rounds, count = [], Counter()
    for batch in schedule:
        owners = {clusters[i] for i in batch}
        if len(batch) == B and len(owners) == 1:  # a cluster batch (a mixed batch spans >= 2 clusters)
            (c,) = owners
            rounds.append(count[c])
            count[c] += 1
    assert rounds == sorted(rounds)
    sizes = Counter(clusters)
    assert count == Counter({c: s // B for c, s in sizes.items() if s // B})


@FAST
@given(layouts(), params)
def test_sequential_keeps_each_clusters_batches_together(layout, p):
    clusters, diff = layout
    p = {**p, "mix_ratio": 0.0, "interleave": "sequential"}
    B = p["batch_size"]
    owners = [
        next(iter({clusters[i] for i in b}))
        for b in build_schedule(clusters, diff, **p)
        if len(b) == B and len({clusters[i] for i in b}) == 1
    ]
    runs = [c for k, c in enumerate(owners) if k == 0 or owners[k - 1] != c]
    assert len(runs) == len(set(runs))


@FAST
@given(layouts(), params)
def test_random_interleave_permutes_the_round_robin_batches(layout, p):
    clusters, diff = layout
    p = {**p, "mix_ratio": 0.0}
    rr = build_schedule(clusters, diff, **{**p, "interleave": "round_robin"})
    rnd = build_schedule(clusters, diff, **{**p, "interleave": "random"})
    assert sorted(map(tuple, rr)) == sorted(map(tuple, rnd))
    if rr and len(rr[-1]) < p["batch_size"]:
        assert rnd[-1] == rr[-1]  # the short batch stays last


@FAST
@given(layouts(), params)
def test_mixing_swaps_exactly_round_mix_ratio_times_batch_size(layout, p):
    clusters, diff = layout
    B, ratio = p["batch_size"], p["mix_ratio"]
    unmixed = build_schedule(clusters, diff, **{**p, "mix_ratio": 0.0})
    mixed = build_schedule(clusters, diff, **p)
    m = mix_count(B, ratio)
    assert m == min(round(ratio * B), B // 2)
    assert [len(b) for b in mixed] == [len(b) for b in unmixed]
    for i in range(len(unmixed) - 1):
        swapped = min(m, len(unmixed[i + 1]))  # only the final batch can be short
        moved_forward = set(mixed[i + 1]) & set(unmixed[i])
        moved_back = set(mixed[i]) & set(unmixed[i + 1])
        assert moved_forward == set(unmixed[i][len(unmixed[i]) - swapped :])  # the tail (hardest) of batch i
        assert moved_back == set(unmixed[i + 1][:swapped])  # the head (easiest) of batch i + 1
    where = {i: k for k, b in enumerate(unmixed) for i in b}
    assert all(abs(where[i] - k) <= 1 for k, b in enumerate(mixed) for i in b)


def test_mixing_with_the_default_ratio():
    clusters = [i // 16 for i in range(64)]
    diff = [(i % 16) / 16 for i in range(64)]
    unmixed = build_schedule(clusters, diff, 16, mix_ratio=0)
    mixed = build_schedule(clusters, diff, 16)  # round(0.125 * 16) = 2
    assert [len(set(a) - set(b)) for a, b in zip(mixed, unmixed, strict=False)] == [2, 4, 4, 2]


@FAST
@given(layouts(), params)
def test_no_clustering_is_one_cluster(layout, p):
    _clusters, diff = layout
    assume(len(diff) > 0)
    assert build_schedule(None, diff, **p) == build_schedule([0] * len(diff), diff, **p)


@FAST
@given(layouts(), params)
def test_random_order_ignores_difficulty(layout, p):
    clusters, diff = layout
    p = {**p, "order": "random"}
    assert build_schedule(clusters, None, **p) == build_schedule(clusters, diff, **p)


def test_single_cluster_easy_to_hard_and_fully_random_ablation():
    diff = [0.9, 0.1, 0.5, 0.3, 0.7, 0.2]
    assert build_schedule(None, diff, 2, mix_ratio=0) == [[1, 5], [3, 2], [4, 0]]
    assert build_schedule(None, diff, 6, mix_ratio=0.5) == [[1, 5, 3, 2, 4, 0]]  # one batch: nothing to mix
    fully_random = build_schedule(None, diff, 2, order="random", interleave="random", mix_ratio=0)
    assert sorted(flat(fully_random)) == list(range(6))


def test_leftovers_close_their_stage_and_only_the_last_batch_is_short():
    # cluster 0: 5 rows, cluster 1: 3 rows, batch 2 -> full: c0 x2, c1 x1; leftovers: c0 (round 1), c1 (round 0)
    clusters = [0] * 5 + [1] * 3
    diff = [0.1, 0.2, 0.3, 0.4, 0.5, 0.15, 0.25, 0.35]
    schedule = build_schedule(clusters, diff, 2, mix_ratio=0, seed=3)
    assert sorted(map(len, schedule)) == [2, 2, 2, 2]
    # round 0: both clusters' first batches (seeded order), then c1's leftover waits (1 row < batch 2)
    assert {tuple(b) for b in schedule[:2]} == {(0, 1), (5, 6)}
    assert schedule[2] == [2, 3]  # round 1: c0's second batch
    assert schedule[3] == [7, 4]  # end of round 1: c1's carried leftover with c0's, easy to hard


def test_empty_and_tiny_inputs():
    assert build_schedule([], [], 4) == []
    assert build_schedule([0], [0.5], 4) == [[0]]
    assert build_schedule([0], [0.5], 4, drop_last=True) == []
    assert build_schedule([2, 2, 2], [0.3, 0.1, 0.2], 1, mix_ratio=0.5) == [[1], [2], [0]]  # round(0.5) == 0
    assert build_schedule([0] * 6, [0.0] * 6, 3, mix_ratio=0.5, seed=1) != []  # odd batch: capped at 1 swap


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"cluster_ids": [0, 1], "difficulty": [0.1]}, InvalidParameterError, "2 values but difficulty has 1"),
        ({"difficulty": [0.1, float("nan")]}, NonFiniteError, "NaN"),
        ({"batch_size": 0}, InvalidParameterError, "batch_size"),
        ({"batch_size": 2.5}, InvalidParameterError, "batch_size"),
        ({"mix_ratio": 0.6}, InvalidParameterError, r"mix_ratio must be in \[0, 0.5\]"),
        ({"mix_ratio": -0.1}, InvalidParameterError, "mix_ratio"),
        ({"cluster_ids": [0, -1]}, InvalidParameterError, "non-negative"),
        ({"cluster_ids": [0, 1.5]}, InvalidParameterError, "integers"),
        ({"cluster_ids": ["a", "b"]}, TypeError, "integers"),
        ({"cluster_ids": [[0], [1]]}, InvalidParameterError, "1-D"),
        ({"difficulty": ["x", "y"]}, TypeError, "numeric"),
        ({"difficulty": None}, InvalidParameterError, "order='random'"),
        (
            {"interleave": "zigzag"},
            InvalidParameterError,
            "interleave must be 'round_robin', 'sequential' or 'random'; got 'zigzag'",
        ),
        (
            {"order": "hard_to_easy"},
            InvalidParameterError,
            "order must be 'easy_to_hard' or 'random'; got 'hard_to_easy'",
        ),
        ({"seed": -1}, InvalidParameterError, "seed"),
        ({"epoch": 1.0}, InvalidParameterError, "epoch"),
        ({"drop_last": "yes"}, TypeError, "drop_last"),
        ({"cluster_ids": None, "difficulty": None, "order": "random"}, InvalidParameterError, "both None"),
    ],
)
def test_invalid_inputs_raise_clear_errors(kwargs, error, match):
    args = {"cluster_ids": [0, 1], "difficulty": [0.1, 0.2], "batch_size": 2, **kwargs}
    with pytest.raises(error, match=match):
        build_schedule(**args)


def test_integral_float_cluster_ids_are_accepted():
    assert build_schedule([0.0, 1.0], [0.1, 0.2], 1) == build_schedule([0, 1], [0.1, 0.2], 1)


def test_describe_schedule():
    clusters = [0, 0, 0, 1, 1, 1]
    diff = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    schedule = [[0, 1, 3], [2, 4, 5]]
    info = describe_schedule(schedule, clusters, diff)
    assert info["batch"] == [0, 1] and info["size"] == [3, 3]
    assert info["majority_cluster"] == [0, 1]
    assert info["majority_share"] == pytest.approx([2 / 3, 2 / 3])
    assert info["mean_difficulty"] == pytest.approx([0.8 / 3, 2.2 / 3])
    assert info["n_clusters"] == [2, 2]
    bare = describe_schedule(schedule)
    assert bare["majority_cluster"] == [-1, -1] and math.isnan(bare["mean_difficulty"][0])


def test_docstring_examples_run():
    import doctest

    from hf_saerl.curriculum import dataset, exports, options, ordering, sampler, schedule, sources, state

    for module in (schedule, sampler, dataset, options, sources, state, exports, ordering):
        assert doctest.testmod(module).failed == 0, module.__name__


# ---------------------------------------------------------------------------------------------- the reference
def reference_build_schedule(
    cluster_ids,
    difficulty,
    batch_size,
    mix_ratio=0.125,
    seed=0,
    epoch=0,
    drop_last=False,
    interleave="round_robin",
    order="easy_to_hard",
):
    """build_schedule as it was before it was vectorised (issue 16): a Python loop over rounds and batches. It
    defines the schedule; the library's must stay equal to it, bit for bit."""
    check_schedule_params(batch_size, mix_ratio, seed, epoch, drop_last, interleave, order)
    clusters, key = as_schedule_arrays(cluster_ids, difficulty, order)
    n = len(clusters)
    if n == 0:
        return []
    B = int(batch_size)
    tie_ss, round_ss, shuffle_ss = np.random.SeedSequence([int(seed), int(epoch)]).spawn(3)
    tie = np.random.default_rng(tie_ss).permutation(n)
    round_rng = np.random.default_rng(round_ss)

    ranked = np.lexsort((tie, key, clusters))
    uniq, starts = np.unique(clusters[ranked], return_index=True)
    members = dict(zip(uniq.tolist(), np.split(ranked, starts[1:]), strict=False))
    n_full = {c: len(m) // B for c, m in members.items()}

    def full_batch(c, j):
        return members[c][j * B : (j + 1) * B]

    def leftover(c):
        return members[c][n_full[c] * B :]

    stages = []
    if interleave == "sequential":
        for c in round_rng.permutation(uniq).tolist():
            stages.append(([full_batch(c, j) for j in range(n_full[c])], [leftover(c)]))
    else:
        for j in range(max(1, max(n_full.values()))):
            round_order = [c for c in round_rng.permutation(uniq).tolist() if n_full[c] > j]
            closing = [leftover(c) for c in uniq.tolist() if max(n_full[c] - 1, 0) == j]
            stages.append(([full_batch(c, j) for c in round_order], closing))

    batches = []
    carry = np.empty(0, dtype=np.int64)
    for full, leftovers in stages:
        batches.extend(full)
        pool = np.concatenate([carry, *leftovers])
        pool = pool[np.lexsort((tie[pool], key[pool]))]
        cut = len(pool) - len(pool) % B
        batches.extend(pool[i : i + B] for i in range(0, cut, B))
        carry = pool[cut:]
    if interleave == "random":
        batches = [batches[i] for i in np.random.default_rng(shuffle_ss).permutation(len(batches))]
    if len(carry) and not drop_last:
        batches.append(carry)

    m = mix_count(B, float(mix_ratio))
    if m and len(batches) >= 2:
        swaps = [min(m, len(batches[i + 1])) for i in range(len(batches) - 1)] + [0]
        mixed = []
        for i, b in enumerate(batches):
            before = swaps[i - 1] if i else 0
            after = swaps[i]
            parts = [batches[i - 1][len(batches[i - 1]) - before :]] if before else []
            parts.append(b[before : len(b) - after])
            if after:
                parts.append(batches[i + 1][:after])
            mixed.append(np.concatenate(parts))
        batches = mixed
    return [b.tolist() for b in batches]


@st.composite
def wide_layouts(draw, max_rows: int = 300):
    """Layouts that reach every branch of the vectorised sort: float32 and float64 difficulty, -0.0 next to 0.0,
    the largest finite values (infinities are refused since issue 13), huge and negative values, few and many
    levels, cluster ids up to 10**15."""
    n = draw(st.integers(0, max_rows))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n_clusters = draw(st.integers(1, 40))
    spread = draw(st.sampled_from([1, 7, 10**6, 10**15]))
    clusters = rng.integers(0, n_clusters, n) * spread + draw(st.sampled_from([0, 5]))
    kind = draw(st.sampled_from(["levels", "float32", "float64", "signed_zero_extreme", "huge"]))
    if kind == "levels":
        diff = rng.integers(0, draw(st.sampled_from([1, 2, 5, 1000])), n) / 7
    elif kind == "float32":
        diff = rng.random(n).astype(np.float32)
    elif kind == "float64":
        diff = rng.random(n)
    elif kind == "signed_zero_extreme":
        top = np.finfo(np.float64).max
        diff = rng.choice([-0.0, 0.0, -1.5, 2.0, top, -top], n)
    else:
        diff = rng.normal(size=n) * 1e300
    return clusters, diff


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(wide_layouts(), params, st.booleans(), st.sampled_from([1, 2, 3, 1 << 22]))
def test_vectorised_schedule_equals_the_reference(layout, p, packed_pools, round_block):
    clusters, diff = layout
    # packed_pools: sort every leftover pool with the packed radix sort (normally only pools of >= 16384 rows);
    # round_block: draw the rounds' cluster orders a few rounds at a time (normally 4M entries at a time).
    with (
        mock.patch.object(ordering, "_LEXSORT_BELOW", 0 if packed_pools else 1 << 14),
        mock.patch.object(schedule_module, "_ROUND_BLOCK", round_block),
    ):
        assert build_schedule(clusters, diff, **p) == reference_build_schedule(clusters, diff, **p)


def test_vectorised_schedule_equals_the_reference_on_large_inputs():
    # Large pools (4000 small clusters leave one pool of 60000 leftover rows), float64 keys (a second sort pass).
    rng = np.random.default_rng(0)
    n = 60_000
    for clusters, diff, batch_size in [
        (rng.integers(0, 4_000, n), rng.random(n), 32),
        (rng.integers(0, 16, n), rng.random(n).astype(np.float32), 64),
        (rng.integers(0, 3, n) * 10**12, rng.integers(0, 4, n) / 4, 7),
    ]:
        for interleave in ("round_robin", "sequential", "random"):
            kw = dict(batch_size=batch_size, mix_ratio=0.125, seed=3, epoch=1, interleave=interleave)
            assert build_schedule(clusters, diff, **kw) == reference_build_schedule(clusters, diff, **kw)


# ---------------------------------------------------------------------------------------------- the rewrite (#23)
def _schedule_before():
    """``tests/curriculum/schedule_before.py``: the vectorised build_schedule before the int32 / sliding-window /
    in-place mixing rewrite, verbatim (loaded by path: the tests run with --import-mode=importlib)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).with_name("schedule_before.py")
    spec = importlib.util.spec_from_file_location("schedule_before", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SCHEDULE_BEFORE = _schedule_before()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(wide_layouts(), params, st.booleans(), st.booleans())
def test_schedule_is_bit_identical_to_the_one_before_the_rewrite(layout, p, packed_pools, wide_indices):
    # wide_indices: int64 row indices, as beyond 2**31 rows (normally int32)
    clusters, diff = layout
    wide = (lambda n: np.int64) if wide_indices else ordering.index_dtype
    with (
        mock.patch.object(ordering, "_LEXSORT_BELOW", 0 if packed_pools else 1 << 14),
        mock.patch.object(SCHEDULE_BEFORE, "_LEXSORT_BELOW", 0 if packed_pools else 1 << 14),
        mock.patch.object(ordering, "index_dtype", wide),
    ):
        new, old = build_schedule(clusters, diff, **p), SCHEDULE_BEFORE.build_schedule(clusters, diff, **p)
    assert new == old
    assert all(type(i) is int for batch in new for i in batch)  # Python ints, whatever the index dtype inside


@pytest.mark.parametrize("interleave", ["round_robin", "sequential", "random"])
def test_schedule_is_bit_identical_to_the_one_before_on_300k_rows(interleave):
    rng = np.random.default_rng(7)
    n = 300_001
    for clusters, diff, batch_size, mix_ratio in [
        (rng.integers(0, 16, n), rng.random(n).astype(np.float32), 64, 0.125),
        (rng.integers(0, 2_000, n), rng.random(n), 33, 0.5),  # float64: a second sort pass; big leftover pools
        (None, rng.integers(0, 3, n) / 3, 8, 0.25),  # one cluster, many ties
    ]:
        kw = dict(batch_size=batch_size, mix_ratio=mix_ratio, seed=5, epoch=2, interleave=interleave)
        assert build_schedule(clusters, diff, **kw) == SCHEDULE_BEFORE.build_schedule(clusters, diff, **kw)
