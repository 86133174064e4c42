"""Where a curriculum stream stands and who reads what: its resumable position (``state_dict`` /
``load_state_dict``) and the split of its global batches across DDP ranks and DataLoader workers.

:class:`StreamCursor` holds the epoch (in shared memory, so persistent DataLoader workers follow ``set_epoch``),
the position after the last yielded item, a loaded state waiting for the next iteration, and (in shared memory too)
whether DataLoader worker processes consumed the stream since this process last iterated it: then the position here
is stale, and :meth:`StreamCursor.state_dict` refuses rather than send a resume to the start of the epoch. The state format
(version :data:`STATE_VERSION`) is::

    {"version", "fingerprint", "schedule": <identity>, "epoch", "rank", "world_size", "num_workers",
     "position": {"batch", "offset", ...}}

where ``<identity>`` names the data and every schedule parameter, so a state only loads into the same schedule.

Example:
    >>> from hf_saerl.curriculum.state import StreamCursor
    >>> cursor = StreamCursor(epoch=0)
    >>> state = cursor.state_dict({"data": "abc"}, rank=0, world_size=1, num_workers=1)
    >>> state["position"], state["epoch"]
    ({'batch': 0, 'offset': 0}, 0)
    >>> StreamCursor(epoch=0).load_state_dict(state, {"data": "xyz"}, rank=0, world_size=1)
    Traceback (most recent call last):
    ...
    hf_saerl.errors.ScheduleMismatchError: The state was saved for a different curriculum schedule (data: 'abc' in the state, 'xyz' here). Rebuild the CurriculumDataset with the same data and parameters to resume, or start the epoch afresh without load_state_dict.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from ..core.fingerprint import stable_hash
from ..errors import InvalidParameterError, ScheduleMismatchError, UntrackedProgressError
from .schedule import check_epoch

__all__ = ["STATE_VERSION", "StreamCursor", "check_rank", "distributed_rank", "in_worker", "worker_share"]

logger = logging.getLogger(__name__)

STATE_VERSION = 1


def check_rank(rank: int | None, world_size: int | None) -> tuple[int | None, int | None]:
    """Check an explicit ``rank`` / ``world_size`` pair (both ``None``: read ``torch.distributed`` later).

    Example:
        >>> from hf_saerl.curriculum.state import check_rank
        >>> check_rank(1, 4), check_rank(None, None)
        ((1, 4), (None, None))
    """
    if rank is None and world_size is None:
        return None, None
    if rank is None or world_size is None:
        raise InvalidParameterError(
            f"Pass both rank and world_size, or neither (then torch.distributed is read); got rank={rank!r}, "
            f"world_size={world_size!r}."
        )

    def whole(value: Any) -> bool:
        return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))

    if not (whole(world_size) and world_size >= 1 and whole(rank) and 0 <= rank < world_size):
        raise InvalidParameterError(
            f"Need integers 0 <= rank < world_size with world_size >= 1, got rank={rank!r}, "
            f"world_size={world_size!r}. Pass this process's rank (e.g. torch.distributed.get_rank()), or leave both "
            "unset."
        )
    return int(rank), int(world_size)


def distributed_rank(rank: int | None, world_size: int | None) -> tuple[int, int]:
    """``(rank, world_size)``: the explicit pair when given, else ``torch.distributed``'s when it is initialised,
    else ``(0, 1)``."""
    if rank is not None and world_size is not None:  # check_rank: both or neither
        return rank, world_size
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def worker_share() -> tuple[int, int]:
    """``(worker id, number of workers)`` of the DataLoader worker this runs in; ``(0, 1)`` in the main process.
    Worker ``w`` of ``W`` produces the global batches ``w, w + W, ...``."""
    info = torch.utils.data.get_worker_info()
    return (0, 1) if info is None else (info.id, info.num_workers)


def in_worker() -> bool:
    """Whether this runs inside a ``torch.utils.data.DataLoader`` worker process."""
    return torch.utils.data.get_worker_info() is not None


class StreamCursor:
    """The epoch, the position in it and a pending resume point of one stream.

    ``position`` is ``{"batch": <global batch>, "offset": <items of it already yielded by this rank>}``, plus
    whatever the source needs to restart there (a streaming source adds its buffer and the source's own state).
    """

    def __init__(self, epoch: int = 0):
        self._epoch = torch.tensor(check_epoch(epoch), dtype=torch.int64).share_memory_()
        # Set by an iteration inside a DataLoader worker, cleared by one in this process: shared memory (like the
        # epoch), so a worker's flag reaches the main process's copy whether the workers were forked or spawned.
        self._in_workers = torch.zeros((), dtype=torch.bool).share_memory_()
        self.position: dict[str, Any] = {"batch": 0, "offset": 0}
        self.pending: dict[str, Any] | None = None

    @property
    def epoch(self) -> int:
        return int(self._epoch.item())

    def set_epoch(self, epoch: int) -> None:
        """Move to ``epoch`` (its beginning when it changes); a loaded state for another epoch is discarded."""
        if check_epoch(epoch) != self.epoch:
            self.position = {"batch": 0, "offset": 0}
            if self.pending is not None and self.pending["epoch"] != epoch:
                self.pending = None
        self._epoch.fill_(epoch)

    def begin(self, num_workers: int, in_worker: bool = False) -> dict[str, Any]:
        """Where an iteration of the current epoch starts: the loaded state's position (used once) when it is for
        this epoch, else the beginning. ``in_worker``: the iteration runs in a DataLoader worker process, whose
        progress the main process cannot see (recorded for :meth:`state_dict`)."""
        self._in_workers.fill_(bool(in_worker))
        pending, self.pending = self.pending, None
        start: dict[str, Any] = {"batch": 0, "offset": 0}
        if pending is not None and pending["epoch"] == self.epoch:
            if pending.get("num_workers", num_workers) != num_workers:
                raise ScheduleMismatchError(
                    f"The state was saved with {pending['num_workers']} DataLoader worker(s) but this loader has "
                    f"{num_workers}. Resume with the same num_workers, or start the epoch afresh without "
                    "load_state_dict."
                )
            start = dict(pending["position"])
        self.position = dict(start)
        return start

    def state_dict(
        self, identity: dict[str, Any], rank: int, world_size: int, num_workers: int, in_worker: bool = False
    ) -> dict[str, Any]:
        """The JSON-able state: a loaded state not used yet, else the current position with ``identity``.

        Raises :class:`~hf_saerl.errors.UntrackedProgressError` when called outside a DataLoader worker
        (``in_worker=False``) after workers consumed the stream: their positions are not here.
        """
        if not in_worker and bool(self._in_workers):
            raise UntrackedProgressError(
                "This CurriculumDataset was iterated by DataLoader worker processes (num_workers > 0): each worker "
                "holds its own position, so this object's state_dict() would say the epoch is still at "
                f"{self.position} and resuming from it would repeat rows already trained on. Checkpoint through "
                "torchdata's StatefulDataLoader (loader.state_dict() / load_state_dict(), it collects every worker's "
                "state), or iterate with num_workers=0 and call state_dict() here."
            )
        if self.pending is not None:
            return dict(self.pending)
        return {
            "version": STATE_VERSION,
            "fingerprint": stable_hash(identity),
            "schedule": identity,
            "epoch": self.epoch,
            "rank": rank,
            "world_size": world_size,
            "num_workers": num_workers,
            "position": dict(self.position),
        }

    def load_state_dict(self, state: dict[str, Any], identity: dict[str, Any], rank: int, world_size: int) -> None:
        """Check ``state`` against this stream's ``identity`` and rank, then keep it for the next iteration."""
        keys = ("fingerprint", "epoch", "rank", "world_size", "position")
        if not isinstance(state, dict) or state.get("version") != STATE_VERSION or any(k not in state for k in keys):
            raise InvalidParameterError(
                "Not a CurriculumDataset state (expected the dict returned by CurriculumDataset.state_dict()). For a "
                "DataLoader with workers, load the state into torchdata's StatefulDataLoader instead."
            )
        if state["fingerprint"] != stable_hash(identity):
            saved = state.get("schedule", {})
            diffs = [
                f"{k}: {saved.get(k)!r} in the state, {v!r} here" for k, v in identity.items() if saved.get(k) != v
            ]
            raise ScheduleMismatchError(
                "The state was saved for a different curriculum schedule ("
                + "; ".join(diffs or ["fingerprint"])
                + "). Rebuild the CurriculumDataset with the same data and parameters to resume, or start the epoch "
                "afresh without load_state_dict."
            )
        if (state["rank"], state["world_size"]) != (rank, world_size):
            raise ScheduleMismatchError(
                f"The state was saved on rank {state['rank']} of {state['world_size']} but this is rank {rank} of "
                f"{world_size}. Load each rank's own state with the same world size, or start the epoch afresh."
            )
        self._epoch.fill_(state["epoch"])
        self.pending = dict(state)
        logger.debug("Resuming epoch %d at %s.", state["epoch"], state["position"])
