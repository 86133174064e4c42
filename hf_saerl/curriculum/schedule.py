"""SAERL curriculum batch schedules (docs/curriculum.md) as a pure function, vectorised with numpy.

:func:`build_schedule` turns per-example ``cluster_id`` and ``difficulty`` values into a list of batches of row
indices. Everything else in :mod:`hf_saerl.curriculum` (the stream, the samplers, the trainer integrations) only
replays this list, so the schedule is the single source of truth for the order.

The five steps, each of which can be switched off for ablations:

1. within each cluster, order examples easy to hard; ties broken by a seeded shuffle (``order="random"``: a seeded
   shuffle only);
2. cut each cluster's order into batches of ``batch_size`` (cluster-first); the leftovers of all clusters form
   mixed batches, sorted easy to hard, at the end of their difficulty stage (``cluster_ids=None``: one cluster);
3. interleave clusters round-robin: all clusters' j-th batches come before any (j+1)-th, in a seeded cluster order
   per round (``interleave="sequential"``: cluster after cluster; ``"random"``: batches in seeded random order);
4. moderate mixing: each pair of neighbouring batches swaps ``round(mix_ratio * batch_size)`` samples, the tail
   (hardest) of the first for the head (easiest) of the second (``mix_ratio=0``: no mixing);
5. a new ``epoch`` gives a new seeded schedule.

No step loops over rows or batches in Python: the rows are sorted once (packed into ``uint64`` keys, see
:class:`~hf_saerl.curriculum.ordering.RowOrder`), full batches are slices of that order found with array
arithmetic, the rounds' seeded cluster orders are drawn in blocks, and mixing is two slice assignments on a
``(batches, batch_size)`` matrix. Only the pools of leftovers (at most one per cluster) are handled one by one.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import math
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..core.validation import check_choice
from ..errors import InvalidParameterError, NonFiniteError, ParameterTypeError
from .ordering import RowOrder

logger = logging.getLogger(__name__)

INTERLEAVES = ("round_robin", "sequential", "random")
ORDERS = ("easy_to_hard", "random")

#: Cluster orders drawn per block of rounds (rounds x clusters entries), bounding the memory they take.
_ROUND_BLOCK = 1 << 22


@dataclass(frozen=True)
class ScheduleParams:
    """The parameters of :func:`build_schedule` except the data and the epoch, validated on construction.

    Raises :class:`~hf_saerl.errors.InvalidParameterError` (a ``ValueError``) for a value out of range and
    ``TypeError`` for a value of the wrong type, naming the parameter.

    Example:
        >>> from hf_saerl.curriculum.schedule import ScheduleParams
        >>> params = ScheduleParams(batch_size=2, mix_ratio=0)
        >>> params.build([0, 0, 1, 1], [0.4, 0.3, 0.2, 0.1], epoch=0)
        [[1, 0], [3, 2]]
        >>> ScheduleParams(batch_size=0)
        Traceback (most recent call last):
        ...
        hf_saerl.errors.InvalidParameterError: batch_size must be an integer >= 1, got 0. Pass the number of rows per batch, e.g. batch_size=64 (for TRL: grpo_curriculum_batch_size(args)).
    """

    batch_size: int
    mix_ratio: float = 0.125
    seed: int = 0
    drop_last: bool = False
    interleave: str = "round_robin"
    order: str = "easy_to_hard"

    def __post_init__(self) -> None:
        batch_size, mix_ratio = self.batch_size, self.mix_ratio
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise InvalidParameterError(
                f"batch_size must be an integer >= 1, got {batch_size!r}. Pass the number of rows per batch, e.g. "
                "batch_size=64 (for TRL: grpo_curriculum_batch_size(args))."
            )
        if isinstance(mix_ratio, bool) or not isinstance(mix_ratio, (int, float, np.floating, np.integer)):
            raise ParameterTypeError(
                f"mix_ratio must be a number in [0, 0.5], got {mix_ratio!r}. Pass e.g. "
                "mix_ratio=0.125, or mix_ratio=0 to turn mixing off."
            )
        if not math.isfinite(float(mix_ratio)):
            raise NonFiniteError(
                f"mix_ratio must be a finite number in [0, 0.5], got {mix_ratio!r}. Pass e.g. "
                "mix_ratio=0.125, or mix_ratio=0 to turn mixing off."
            )
        if not 0.0 <= float(mix_ratio) <= 0.5:
            raise InvalidParameterError(
                f"mix_ratio must be in [0, 0.5] (the share of a batch swapped with each neighbour), got {mix_ratio!r}. "
                "Use the default 0.125 for moderate mixing, or 0 to turn mixing off."
            )
        check_epoch(self.seed, "seed")
        if not isinstance(self.drop_last, (bool, np.bool_)):
            raise ParameterTypeError(
                f"drop_last must be a bool, got {self.drop_last!r}. Pass drop_last=True to drop "
                "the final short batch, or drop_last=False to keep it."
            )
        check_choice(
            "interleave",
            self.interleave,
            INTERLEAVES,
            "Use 'round_robin' (the SAERL default), or 'sequential' / 'random' for the ablations.",
        )
        check_choice(
            "order",
            self.order,
            ORDERS,
            "Use 'easy_to_hard' (the default), or 'random' to turn the difficulty ordering off.",
        )

    def build(self, cluster_ids: Any, difficulty: Any, epoch: int, seed: int | None = None) -> list[list[int]]:
        """:func:`build_schedule` with these parameters (``seed`` overrides :attr:`seed`, e.g. per stream buffer)."""
        return build_schedule(
            cluster_ids,
            difficulty,
            self.batch_size,
            mix_ratio=self.mix_ratio,
            seed=self.seed if seed is None else seed,
            epoch=epoch,
            drop_last=self.drop_last,
            interleave=self.interleave,
            order=self.order,
        )

    def as_dict(self) -> dict[str, Any]:
        """The parameters as a JSON-able dict (part of a stream's identity in its ``state_dict``)."""
        return asdict(self)

    def check_whole_epochs(self, remainder: int, num_epochs: int) -> None:
        """Epochs written one after the other must each end on a whole batch, or every batch of the next epoch is
        shifted against the trainer's fixed-size steps (mixing clusters and difficulty stages). ``remainder`` is
        the size of an epoch's short final batch; raises :class:`~hf_saerl.errors.InvalidParameterError` when it
        is kept (``drop_last=False``).

        Example:
            >>> from hf_saerl.curriculum.schedule import ScheduleParams
            >>> ScheduleParams(batch_size=4).check_whole_epochs(0, num_epochs=3)  # whole batches: fine
            >>> ScheduleParams(batch_size=4, drop_last=True).check_whole_epochs(3, num_epochs=3)  # dropped: fine
            >>> ScheduleParams(batch_size=4).check_whole_epochs(3, num_epochs=2)
            Traceback (most recent call last):
            ...
            hf_saerl.errors.InvalidParameterError: Cannot export 2 epochs one after the other: each epoch ends with a short batch of 3 row(s) (batch_size=4), so a trainer reading 4 rows per step would see every batch of the following epochs shifted by 3. Pass drop_last=True to the CurriculumDataset (each epoch then drops its short batch), or export one epoch at a time (num_epochs=1).
        """
        if remainder and not self.drop_last:
            raise InvalidParameterError(
                f"Cannot export {num_epochs} epochs one after the other: each epoch ends with a short batch of "
                f"{remainder} row(s) (batch_size={self.batch_size}), so a trainer reading {self.batch_size} rows "
                f"per step would see every batch of the following epochs shifted by {remainder}. Pass "
                "drop_last=True to the CurriculumDataset (each epoch then drops its short batch), or export one "
                "epoch at a time (num_epochs=1)."
            )


def check_epoch(value: Any, name: str = "epoch") -> int:
    """``value`` as an ``int`` if it is a non-negative integer (an epoch, a seed), else an
    :class:`~hf_saerl.errors.InvalidParameterError` naming ``name``.

    Example:
        >>> from hf_saerl.curriculum.schedule import check_epoch
        >>> check_epoch(3)
        3
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise InvalidParameterError(
            f"{name} must be a non-negative integer, got {value!r}. Pass e.g. {name}=0, or int({name}) if it is a "
            "float or a tensor."
        )
    return int(value)


def check_schedule_params(
    batch_size: int,
    mix_ratio: float = 0.125,
    seed: int = 0,
    epoch: int = 0,
    drop_last: bool = False,
    interleave: str = "round_robin",
    order: str = "easy_to_hard",
) -> None:
    """Raise an :class:`~hf_saerl.errors.InvalidParameterError` (or ``TypeError``) naming the first invalid
    parameter of :func:`build_schedule`; see :class:`ScheduleParams`."""
    ScheduleParams(batch_size, mix_ratio, seed, drop_last, interleave, order)
    check_epoch(epoch)


def mix_count(batch_size: int, mix_ratio: float) -> int:
    """Samples swapped between two full neighbouring batches: ``round(mix_ratio * batch_size)`` (Python's
    rounding), capped at ``batch_size // 2`` so that a batch's head and tail never overlap.

    Example:
        >>> from hf_saerl.curriculum import mix_count
        >>> mix_count(16, 0.125), mix_count(3, 0.5)
        (2, 1)
    """
    return min(round(mix_ratio * batch_size), batch_size // 2)


def build_schedule(
    cluster_ids: Sequence[int] | np.ndarray | None,
    difficulty: Sequence[float] | np.ndarray | None,
    batch_size: int,
    mix_ratio: float = 0.125,
    seed: int = 0,
    epoch: int = 0,
    drop_last: bool = False,
    interleave: str = "round_robin",
    order: str = "easy_to_hard",
) -> list[list[int]]:
    """The SAERL curriculum: batches of row indices, cluster-first, easy to hard, interleaved, moderately mixed.

    A pure function of its arguments. Every example appears exactly once; every batch has ``batch_size`` rows
    except the last, which holds the ``n % batch_size`` remainder (dropped when ``drop_last=True``).

    Args:
        cluster_ids: one non-negative integer per example, or ``None`` for a single cluster (no clustering).
        difficulty: one number per example, 0 easy ... 1 hard (any finite scale works), or ``None`` with
            ``order="random"``.
        batch_size: rows per batch.
        mix_ratio: share of a batch swapped with each neighbour, in [0, 0.5]; 0 turns mixing off.
        seed, epoch: non-negative integers; the schedule is reseeded from both, so each epoch differs.
        drop_last: drop the final short batch.
        interleave: ``"round_robin"`` (default), ``"sequential"`` or ``"random"``.
        order: ``"easy_to_hard"`` (default) or ``"random"`` within each cluster.

    Leftovers (each cluster's last ``len % batch_size`` hardest rows) belong to the round of their cluster's last
    full batch (round 0 when it has none); they are pooled with the remainder carried from earlier rounds, sorted
    easy to hard and cut into mixed batches placed at the end of that round. What cannot fill a batch carries on.

    Vectorised: 10 million rows take about 2 s on two CPU cores (``benchmarks/bench_schedule.py``).

    Example:
        >>> from hf_saerl.curriculum import build_schedule
        >>> build_schedule([0, 0, 0, 1, 1, 1], [0.9, 0.1, 0.5, 0.3, 0.2, 0.8], batch_size=3, mix_ratio=0)
        [[1, 2, 0], [4, 3, 5]]
        >>> build_schedule([0, 0, 0, 1, 1, 1], [0.9, 0.1, 0.5, 0.3, 0.2, 0.8], batch_size=3, mix_ratio=1/3)
        [[1, 2, 4], [0, 3, 5]]
    """
    ScheduleParams(batch_size, mix_ratio, seed, drop_last, interleave, order)
    check_epoch(epoch)
    clusters, key = as_schedule_arrays(cluster_ids, difficulty, order)
    n = len(clusters)
    if n == 0:
        return []
    B = int(batch_size)
    tie_ss, round_ss, shuffle_ss = np.random.SeedSequence([int(seed), int(epoch)]).spawn(3)
    tie = np.random.default_rng(tie_ss).permutation(n)  # distinct ranks: a seeded total order for ties
    round_rng = np.random.default_rng(round_ss)

    # Step 1: easy -> hard within each cluster (cluster, then difficulty, then the seeded tie rank).
    rows = RowOrder(clusters, key, tie)
    ranked = rows.ranked()
    sizes = rows.cluster_sizes(ranked)
    starts = np.cumsum(sizes) - sizes
    n_full, n_left = np.divmod(sizes, B)

    # Steps 2-3: full cluster batches (as start offsets into `ranked`), each with the stage that holds it; every
    # cluster's leftovers close one stage.
    if interleave == "sequential":
        full_starts, full_stage, closes = _sequential(round_rng, starts, n_full, B)
    else:
        full_starts, full_stage, closes = _round_robin(round_rng, starts, n_full, B)
    mixed_rows, mixed_stage, carry = _leftover_batches(rows, ranked, starts + n_full * B, n_left, closes, B)

    # The mixed batches of a stage follow its full batches.
    source = np.concatenate((ranked, mixed_rows))
    mixed_starts = n + B * np.arange(len(mixed_stage), dtype=np.int64)
    batch_starts = np.insert(full_starts, np.searchsorted(full_stage, mixed_stage, side="right"), mixed_starts)
    if interleave == "random":
        batch_starts = batch_starts[np.random.default_rng(shuffle_ss).permutation(len(batch_starts))]
    # Each batch is a contiguous run of `source`: copy the runs from a sliding-window view, not through an
    # (batches, B) index matrix (as large as the schedule itself) and a gather.
    batches = (
        np.lib.stride_tricks.sliding_window_view(source, B)[batch_starts]
        if len(source) >= B
        else source[:0].reshape(0, B)
    )
    short = carry if len(carry) and not drop_last else None  # the only short batch, always last

    # Step 4: moderate mixing between neighbours.
    batches, short = _mix_neighbours(batches, short, mix_count(B, float(mix_ratio)))
    logger.debug(
        "Scheduled %d rows in %d batches of %d (%d clusters, %d mixed batches).",
        n,
        len(batches) + (short is not None),
        B,
        len(starts),
        len(mixed_stage),
    )
    with _gc_paused():  # ~n/B new lists: the collector would traverse them again and again, for nothing
        out = batches.tolist()
        if short is not None:
            out.append(short.tolist())
    return out


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector (lists of ints hold no cycles), restoring its state after."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _sequential(
    rng: np.random.Generator, starts: np.ndarray, n_full: np.ndarray, B: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cluster after cluster in one seeded cluster order: stage ``s`` is the ``s``-th cluster's batches, closed
    by its leftovers. Returns the full batches' starts and stages, and each cluster's closing stage."""
    K = len(starts)
    cluster_order = rng.permutation(K)  # the same draws as permuting the sorted cluster ids themselves
    counts = n_full[cluster_order]
    full_starts = _strided_ranges(starts[cluster_order], counts, B)
    full_stage = np.repeat(np.arange(K), counts)
    closes = np.empty(K, dtype=np.int64)
    closes[cluster_order] = np.arange(K)
    return full_starts, full_stage, closes


def _round_robin(
    rng: np.random.Generator, starts: np.ndarray, n_full: np.ndarray, B: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Round ``j`` holds every cluster's ``j``-th batch, in a seeded cluster order drawn for each round (all
    clusters permuted, those without a ``j``-th batch skipped). A cluster's leftovers close the round of its last
    full batch (round 0 when it has none)."""
    K = len(starts)
    n_rounds = max(1, int(n_full.max()))
    block = max(1, _ROUND_BLOCK // K)
    full_starts, full_stage = [], []
    for first in range(0, n_rounds, block):
        count = min(block, n_rounds - first)
        # Row r is the permutation of the (first + r)-th round: Generator.permuted shuffles each row in turn
        # with the draws of one Generator.permutation(K) call.
        orders = rng.permuted(np.tile(np.arange(K), (count, 1)), axis=1)
        rounds = np.arange(first, first + count)[:, None]
        has_batch = n_full[orders] > rounds
        clusters = orders[has_batch]
        stage = np.broadcast_to(rounds, orders.shape)[has_batch]
        full_starts.append(starts[clusters] + B * stage)
        full_stage.append(stage)
    return np.concatenate(full_starts), np.concatenate(full_stage), np.maximum(n_full - 1, 0)


def _leftover_batches(
    rows: RowOrder, ranked: np.ndarray, left_starts: np.ndarray, n_left: np.ndarray, closes: np.ndarray, B: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pool the leftovers closing each stage with the carried remainder, sort the pool easy to hard, cut it into
    mixed batches. Returns their rows (concatenated, of ``ranked``'s dtype), each batch's stage, and the final
    remainder."""
    empty = np.empty(0, dtype=ranked.dtype)
    owners = np.flatnonzero(n_left)
    if not owners.size:
        return empty, empty.astype(np.int64), empty
    owners = owners[np.argsort(closes[owners], kind="stable")]
    left = ranked[_strided_ranges(left_starts[owners], n_left[owners], 1)]
    stages = closes[owners]
    firsts = np.flatnonzero(np.concatenate(([True], stages[1:] != stages[:-1])))
    ends = np.cumsum(n_left[owners])[np.append(firsts[1:], len(owners)) - 1]
    mixed, mixed_stage, carry, begin = [], [], empty, 0
    for stage, end in zip(stages[firsts].tolist(), ends.tolist(), strict=True):
        pool = rows.by_difficulty(np.concatenate((carry, left[begin:end])))
        begin = end
        cut = len(pool) - len(pool) % B
        if cut:
            mixed.append(pool[:cut])
            mixed_stage.append(np.full(cut // B, stage, dtype=np.int64))
        carry = pool[cut:]
    if not mixed:
        return empty, empty.astype(np.int64), carry
    return np.concatenate(mixed), np.concatenate(mixed_stage), carry


def _strided_ranges(starts: np.ndarray, counts: np.ndarray, step: int) -> np.ndarray:
    """``concatenate([s + step * arange(c) for s, c in zip(starts, counts)])`` without the Python loop."""
    total = int(counts.sum())
    if not total:
        return np.empty(0, dtype=np.int64)
    within = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
    return np.repeat(starts, counts) + step * within


def _mix_neighbours(batches: np.ndarray, short: np.ndarray | None, m: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Swap the last ``m`` rows of each batch with the first ``m`` of the next, all pairs from the unmixed
    batches, so each row moves at most one batch. ``batches`` is the ``(count, batch_size)`` matrix of full
    batches; only the final ``short`` batch can be shorter: its pair swaps ``min(m, len(short))``. Mixes
    ``batches`` in place (only the swapped heads and tails are copied: ``m <= B // 2``, so they never overlap)."""
    if m == 0 or len(batches) + (short is not None) < 2:
        return batches, short
    B = batches.shape[1]
    heads, tails = batches[1:, :m].copy(), batches[:-1, B - m :].copy()
    batches[1:, :m] = tails
    batches[:-1, B - m :] = heads
    if short is not None and len(batches):
        a = min(m, len(short))  # the last batch's tail is still unmixed: only heads changed in the last row
        head = short[:a].copy()
        short = np.concatenate((batches[-1, B - a :], short[a:]))
        batches[-1, B - a :] = head
    return batches, short


def as_schedule_arrays(
    cluster_ids: Any, difficulty: Any, order: str, *, first_row: int = 0, row_label: str = "row"
) -> tuple[np.ndarray, np.ndarray]:
    """Check the per-example inputs of :func:`build_schedule`; return the cluster ids (``int64``) and the
    sort key (``float64`` difficulty, or zeros with ``order="random"``).

    :class:`~hf_saerl.curriculum.options.ColumnSchedule` calls it on read, so that NaN, negative ids or
    mismatched lengths fail when a stream or a sampler is built, not in the middle of an epoch; a streaming
    source calls it on each buffer before yielding anything from it, with ``first_row`` (the buffer's first
    position in the stream) and ``row_label="stream row"``, so a message names the row of the whole stream.
    Raises :class:`~hf_saerl.errors.NonFiniteError` for NaN or infinite difficulty or cluster ids,
    :class:`~hf_saerl.errors.ParameterTypeError` (a ``TypeError``) for a non-numeric column and
    :class:`~hf_saerl.errors.InvalidParameterError` for the rest.

    Example:
        >>> from hf_saerl.curriculum.schedule import as_schedule_arrays
        >>> clusters, key = as_schedule_arrays([0, 1], [0.5, 0.25], "easy_to_hard")
        >>> clusters.tolist(), key.tolist()
        ([0, 1], [0.5, 0.25])
        >>> as_schedule_arrays([0, 1], [0.5, float("inf")], "easy_to_hard", first_row=100, row_label="stream row")
        Traceback (most recent call last):
        ...
        hf_saerl.errors.NonFiniteError: difficulty has 1 missing, NaN or infinite value(s) (first: inf at stream row 101). Fill or filter them first, e.g. dataset.filter(lambda d: d == d and abs(d) != float('inf'), input_columns='difficulty'), or order='random' with difficulty=None.
    """
    if difficulty is None and order == "easy_to_hard":
        raise InvalidParameterError(
            "difficulty is None but order='easy_to_hard' needs it. Pass a difficulty per example (e.g. the "
            "'difficulty' column from DifficultyProbe), or order='random' to turn ordering off."
        )
    if cluster_ids is None and difficulty is None:
        raise InvalidParameterError(
            "cluster_ids and difficulty are both None: nothing tells how many examples there are. Pass the "
            "cluster ids (cluster_ids=None means one cluster), or a difficulty per example."
        )
    diff = None
    if difficulty is not None:
        diff = np.asarray(difficulty)
        if diff.ndim != 1:
            raise InvalidParameterError(
                f"difficulty must be one number per example (1-D), got shape {diff.shape}. Pass a column "
                "(ds['difficulty'][:]), or flatten a (n, 1) array with .ravel()."
            )
        if diff.dtype == object:  # a Python list with None (a missing value) in it
            with contextlib.suppress(TypeError, ValueError):
                diff = np.array([math.nan if v is None else v for v in diff.tolist()], dtype=np.float64)
        if diff.size and not (np.issubdtype(diff.dtype, np.number) or diff.dtype == bool):
            raise ParameterTypeError(
                f"difficulty must be numeric, got dtype {diff.dtype}. Pass numbers (e.g. the "
                "'difficulty' column from DifficultyProbe), or order='random' with "
                "difficulty=None."
            )
        diff = diff.astype(np.float64, copy=False)
        bad = np.flatnonzero(~np.isfinite(diff))
        if bad.size:
            raise NonFiniteError(
                f"difficulty has {bad.size} missing, NaN or infinite value(s) (first: {diff[bad[0]].item()!r} at "
                f"{row_label} {first_row + int(bad[0])}). Fill or filter them first, e.g. dataset.filter(lambda d: d == d and "
                "abs(d) != float('inf'), input_columns='difficulty'), or order='random' with difficulty=None."
            )
    if cluster_ids is None:
        assert diff is not None  # both None was refused above
        clusters = np.zeros(len(diff), dtype=np.int64)
    else:
        clusters = _as_cluster_array(cluster_ids, first_row, row_label)
    if diff is not None and len(diff) != len(clusters):
        raise InvalidParameterError(
            f"cluster_ids has {len(clusters)} values but difficulty has {len(diff)}; they must describe the same "
            "rows. Read both from the same dataset, or pass cluster_ids=None for no clustering."
        )
    if order == "easy_to_hard":
        assert diff is not None  # refused above without it
        return clusters, diff
    return clusters, np.zeros(len(clusters))


def _as_cluster_array(cluster_ids: Any, first_row: int = 0, row_label: str = "row") -> np.ndarray:
    arr = np.asarray(cluster_ids)
    if arr.ndim != 1:
        raise InvalidParameterError(
            f"cluster_ids must be one integer per example (1-D), got shape {arr.shape}. Pass a column "
            "(ds['cluster_id'][:]), or cluster_ids=None for no clustering."
        )
    if arr.size == 0:
        return arr.astype(np.int64)
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.number):
        raise ParameterTypeError(
            f"cluster_ids must be integers, got dtype {arr.dtype}. Use the 'cluster_id' column "
            "from SAEClusterer, or cluster_ids=None for no clustering."
        )
    fix = "Use the 'cluster_id' column from SAEClusterer, or cluster_ids=None for no clustering."
    if not np.issubdtype(arr.dtype, np.integer):
        infinite = np.flatnonzero(~np.isfinite(arr))
        if infinite.size:
            row = int(infinite[0])
            raise NonFiniteError(
                f"cluster_ids must be integers, got {arr[row].item()!r} at {row_label} "
                f"{first_row + row} ({infinite.size} NaN or infinite value(s)). {fix}"
            )
        bad = np.flatnonzero(arr != np.round(arr))
        if bad.size:
            row = int(bad[0])
            raise InvalidParameterError(
                f"cluster_ids must be integers, got {arr[row].item()!r} at {row_label} {first_row + row}. {fix}"
            )
    arr = arr.astype(np.int64, copy=False)
    if arr.min() < 0:
        row = int(np.argmin(arr))
        raise InvalidParameterError(
            f"cluster_ids must be non-negative, got {arr[row]} at {row_label} {first_row + row}. Map noise labels "
            "(e.g. HDBSCAN's -1) to a cluster of their own or filter those rows first."
        )
    return arr


def describe_schedule(
    schedule: Sequence[Sequence[int]],
    cluster_ids: Sequence[int] | np.ndarray | None = None,
    difficulty: Sequence[float] | np.ndarray | None = None,
) -> dict[str, list[Any]]:
    """Per-batch summary of a schedule, as columns ready for ``datasets.Dataset.from_dict`` or a plot.

    Columns: ``batch``, ``size``, ``mean_difficulty`` (NaN without ``difficulty``), ``majority_cluster`` and
    ``majority_share`` (``-1`` and NaN without ``cluster_ids``), ``n_clusters``.

    Example:
        >>> from hf_saerl.curriculum import build_schedule, describe_schedule
        >>> c, d = [0, 0, 1, 1], [0.1, 0.3, 0.2, 0.4]
        >>> info = describe_schedule(build_schedule(c, d, batch_size=2, mix_ratio=0), c, d)
        >>> info["majority_cluster"], info["mean_difficulty"]
        ([0, 1], [0.2, 0.30000000000000004])
    """
    clusters = None if cluster_ids is None else _as_cluster_array(cluster_ids)
    diff = None if difficulty is None else np.asarray(difficulty, dtype=np.float64)
    keys = ("batch", "size", "mean_difficulty", "majority_cluster", "majority_share", "n_clusters")
    out: dict[str, list[Any]] = {k: [] for k in keys}
    for i, batch in enumerate(schedule):
        idx = np.asarray(batch, dtype=np.int64)
        out["batch"].append(i)
        out["size"].append(len(idx))
        out["mean_difficulty"].append(float(diff[idx].mean()) if diff is not None and len(idx) else math.nan)
        if clusters is not None and len(idx):
            ((top, count),) = Counter(clusters[idx].tolist()).most_common(1)
            out["majority_cluster"].append(int(top))
            out["majority_share"].append(count / len(idx))
            out["n_clusters"].append(len(set(clusters[idx].tolist())))
        else:
            out["majority_cluster"].append(-1)
            out["majority_share"].append(math.nan)
            out["n_clusters"].append(0 if clusters is not None else -1)
    return out
