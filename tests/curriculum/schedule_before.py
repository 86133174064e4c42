"""The vectorised ``build_schedule`` as it was before the int32 / sliding-window / in-place-mixing rewrite (commit
71628a3, ``hf_saerl/curriculum/schedule.py`` and ``ordering.py``), kept verbatim as the reference the current one
must equal bit for bit (``test_schedule.py``). Validation helpers are imported: they did not change."""
# ruff: noqa

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from hf_saerl.curriculum.schedule import ScheduleParams, _gc_paused, as_schedule_arrays, check_epoch, mix_count

logger = logging.getLogger(__name__)

_ROUND_BLOCK = 1 << 22
_LEXSORT_BELOW = 1 << 14


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
    """The build_schedule of commit 71628a3."""
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
    batches = source[batch_starts[:, None] + np.arange(B)]
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
    mixed batches. Returns their rows (concatenated), each batch's stage, and the final remainder."""
    empty = np.empty(0, dtype=np.int64)
    owners = np.flatnonzero(n_left)
    if not owners.size:
        return empty, empty, empty
    owners = owners[np.argsort(closes[owners], kind="stable")]
    left = ranked[_strided_ranges(left_starts[owners], n_left[owners], 1)]
    stages = closes[owners]
    firsts = np.flatnonzero(np.concatenate(([True], stages[1:] != stages[:-1])))
    ends = np.cumsum(n_left[owners])[np.append(firsts[1:], len(owners)) - 1]
    mixed, mixed_stage, carry, begin = [], [], empty, 0
    for stage, end in zip(stages[firsts].tolist(), ends.tolist()):
        pool = rows.by_difficulty(np.concatenate((carry, left[begin:end])))
        begin = end
        cut = len(pool) - len(pool) % B
        if cut:
            mixed.append(pool[:cut])
            mixed_stage.append(np.full(cut // B, stage, dtype=np.int64))
        carry = pool[cut:]
    if not mixed:
        return empty, empty, carry
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
    batches; only the final ``short`` batch can be shorter: its pair swaps ``min(m, len(short))``."""
    if m == 0 or len(batches) + (short is not None) < 2:
        return batches, short
    B = batches.shape[1]
    mixed = batches.copy()
    mixed[1:, :m] = batches[:-1, B - m :]
    mixed[:-1, B - m :] = batches[1:, :m]
    if short is not None and len(batches):
        a = min(m, len(short))
        mixed[-1, B - a :] = short[:a]
        short = np.concatenate((batches[-1, B - a :], short[a:]))
    return mixed, short


class RowOrder:
    """The RowOrder of commit 71628a3."""

    def __init__(self, clusters: np.ndarray, key: np.ndarray, tie: np.ndarray):
        """``clusters``: non-negative ``int64`` ids; ``key``: ``float64`` without NaN; ``tie``: a permutation of
        ``0..n-1`` (the seeded tie ranks)."""
        n = len(tie)
        self.key, self.tie = key, tie
        self.row_of_tie = np.empty(n, dtype=np.int64)
        self.row_of_tie[tie] = np.arange(n)
        self.tie_field = (tie.view(np.uint64), (n - 1).bit_length())
        self.key_field = _key_field(key)
        self.cluster_field = _offset_field(clusters)

    def ranked(self) -> np.ndarray:
        """All rows by (cluster, difficulty, tie rank)."""
        return self._sort([self.tie_field, self.key_field, self.cluster_field], None)

    def cluster_sizes(self, ranked: np.ndarray) -> np.ndarray:
        """The row count of each cluster, in cluster id order (the order of :meth:`ranked`)."""
        values, width = self.cluster_field
        if width <= 22:  # a small id range: count without touching the rows in their new order
            counts = np.bincount(values.view(np.int64), minlength=1)
            return counts[counts > 0]
        in_order = values[ranked]
        starts = np.flatnonzero(np.concatenate(([True], in_order[1:] != in_order[:-1])))
        return np.diff(np.append(starts, len(ranked)))

    def by_difficulty(self, rows: np.ndarray) -> np.ndarray:
        """``rows`` by (difficulty, tie rank)."""
        if len(rows) < _LEXSORT_BELOW:
            return rows[np.lexsort((self.tie[rows], self.key[rows]))]
        return self._sort([self.tie_field, self.key_field], rows)

    def _sort(self, fields: list[tuple[np.ndarray, int]], rows: np.ndarray | None) -> np.ndarray:
        fields = [fields[0]] + [f for f in fields[1:] if f[1]]
        total = sum(width for _, width in fields)
        count = len(self.tie) if rows is None else len(rows)
        if count <= 1:
            return np.arange(count) if rows is None else rows
        take = (lambda values: values) if rows is None else (lambda values: values[rows])
        packed = _digit(fields, 0, min(total, 64), take)
        packed.sort()
        packed &= _mask(fields[0][1])  # the tie rank
        order = self.row_of_tie[packed.view(np.int64)]
        low, payload_bits = 64, (count - 1).bit_length()
        while low < total:
            high = min(total, low + 64 - payload_bits)
            packed = _digit(fields, low, high, lambda values: values[order])
            packed <<= np.uint64(payload_bits)
            packed |= np.arange(count, dtype=np.uint64)  # the position in the previous order
            packed.sort()
            packed &= _mask(payload_bits)
            order = order[packed.view(np.int64)]
            low = high
        return order


def _mask(bits: int) -> np.uint64:
    return np.uint64((1 << bits) - 1)


def _digit(fields: list[tuple[np.ndarray, int]], low: int, high: int, take: Any) -> np.ndarray:
    """Bits ``low .. high - 1`` (at most 64) of the concatenated fields (the first in the lowest bits), as a new
    array. Each field's values fit in its width."""
    out = None
    offset = 0
    for values, width in fields:
        start, stop = max(low, offset), min(high, offset + width)
        if start < stop:
            part = take(values)
            fresh = part is not values  # a gathered copy may be changed in place
            if start > offset:
                part, fresh = part >> np.uint64(start - offset), True
            if stop < offset + width:  # the digit ends inside this field
                part = np.bitwise_and(part, _mask(stop - start), out=part if fresh else None)
                fresh = True
            if start > low:
                part = np.left_shift(part, np.uint64(start - low), out=part if fresh else None)
                fresh = True
            if out is None:
                out = part if fresh else part.copy()
            else:
                out |= part
        offset += width
    return out


def _offset_field(values: np.ndarray) -> tuple[np.ndarray, int]:
    """``values - min`` of signed integers as ``uint64`` (``int64`` values in wrapping ``uint64`` arithmetic, so
    any range below 2**64 fits), and the bits it needs (0 when all values are equal)."""
    low, high = int(values.min()), int(values.max())
    if values.dtype == np.int64:
        shifted = values.view(np.uint64)
        if low:
            shifted = shifted - np.uint64(low % (1 << 64))
    else:
        shifted = np.subtract(values, np.int64(low), dtype=np.int64).view(np.uint64)
    return shifted, (high - low).bit_length()


def _key_field(key: np.ndarray) -> tuple[np.ndarray, int]:
    """An unsigned integer with the order of the (non-NaN) difficulty, equal values equal."""
    with np.errstate(over="ignore"):
        narrow = key.astype(np.float32)
    if (narrow == key).all():  # float32 values (a datasets float32 column): 32 bits are enough
        narrow += np.float32(0)  # -0.0 becomes 0.0
        bits, flip = narrow.view(np.int32), np.int32(0x7FFFFFFF)
    else:
        bits, flip = (key + 0.0).view(np.int64), np.int64(0x7FFFFFFFFFFFFFFF)
    # Negative floats order backwards: flipping all but their sign bit makes signed integers that order like the
    # floats.
    signed = bits >> (8 * bits.itemsize - 1)
    signed &= flip
    signed ^= bits
    return _offset_field(signed)
