"""Length-sorted micro-batches under a token budget."""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import InvalidParameterError


def plan_microbatches(lengths: Sequence[int], token_budget: int, max_rows: int | None = None) -> list[list[int]]:
    """Group example indices into micro-batches, longest first, so that each padded micro-batch holds at
    most ``token_budget`` tokens (``rows × longest``); an example longer than the budget runs alone.

    Example:
        >>> plan_microbatches([3, 10, 4, 9], token_budget=20)
        [[1, 3], [2, 0]]
    """
    if token_budget < 1:
        raise InvalidParameterError(
            f"token_budget must be >= 1 (padded tokens per micro-batch), got {token_budget}; the default is 4096."
        )
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        longest = lengths[current[0]] if current else lengths[i]
        too_many = max_rows is not None and len(current) >= max_rows
        if current and ((len(current) + 1) * max(longest, 1) > token_budget or too_many):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches
