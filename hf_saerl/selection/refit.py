"""The selector's proxy refit as a job: its inputs are fixed when it starts, its result is swapped in later.

With ``SelectionConfig(refit_lag=L)``, a refit started at update ``k`` (every ``refit_every`` updates) runs in a
background thread on the counts seen up to ``k`` and replaces the prior at update ``k + L``, waiting there only if it
has not finished. The choices therefore never depend on the thread's timing: every rank, and every rerun, sees a
synchronous refit delayed by ``L`` updates. :class:`PendingRefit` is that job; a selector's saved state holds it
(finished), so a resumed run swaps in the same correction at the same update.
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from .proxy import LinearProxy

_EXECUTOR: ThreadPoolExecutor | None = None
_LOCK = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    """One worker thread for every selector of the process, made on first use (refits run one at a time)."""
    global _EXECUTOR
    with _LOCK:
        if _EXECUTOR is None:
            _EXECUTOR = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hf_saerl-refit")
        return _EXECUTOR


def fit_job(
    proxy: LinearProxy, rows: np.ndarray, rate: np.ndarray, weight: np.ndarray, warm: np.ndarray
) -> tuple[np.ndarray, float, dict[str, Any], np.ndarray]:
    """The refit's work, which reads the proxy but does not change it: the correction, its summary, and the pool's
    new predicted pass rates (one sparse product over the pool, also kept off the trainer's thread)."""
    delta, intercept, info = proxy.fit_correction(rows, rate, weight, warm)
    return delta, intercept, info, proxy.predict(correction=(delta, intercept))


class PendingRefit:
    """A refit started at one update and due at a later one.

    Args:
        due: the update count (``selector.n_updates``) at which it is swapped in.
        info: what the selector measured when it started it (step, held-out error, ...).
        residual_var: the prior error it takes effect with.
        future: the running :func:`fit_job`, or None when ``result`` is given.
        result: ``(delta, intercept, fit_info, prior)`` of a finished job (a loaded state).
    """

    def __init__(
        self,
        due: int,
        info: dict[str, Any],
        residual_var: float,
        *,
        future: Future | None = None,
        result: tuple[np.ndarray, float, dict[str, Any], np.ndarray] | None = None,
    ) -> None:
        self.due, self.info, self.residual_var = int(due), dict(info), float(residual_var)
        self._future, self._result = future, result

    @classmethod
    def start(
        cls,
        due: int,
        info: dict[str, Any],
        residual_var: float,
        proxy: LinearProxy,
        inputs: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    ) -> PendingRefit:
        """Submit :func:`fit_job` on ``inputs`` ``(rows, rate, weight, warm)`` to the background thread."""
        return cls(due, info, residual_var, future=_executor().submit(fit_job, proxy, *inputs))

    def result(self) -> tuple[np.ndarray, float, dict[str, Any], np.ndarray]:
        """The job's result, waiting for it if it is still running (an error in the job is raised here)."""
        if self._result is None:
            assert self._future is not None
            self._result, self._future = self._future.result(), None
        return self._result

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The finished job as arrays and a JSON-able dict (for the selector's ``state_dict``)."""
        delta, intercept, fit_info, _ = self.result()
        meta = {"due": self.due, "info": self.info, "residual_var": self.residual_var, "fit_info": fit_info}
        return {"pending.delta": delta.copy(), "pending.intercept": np.array([intercept])}, meta

    @classmethod
    def from_state(cls, arrays: dict[str, Any], meta: dict[str, Any], proxy: LinearProxy) -> PendingRefit:
        """Rebuild a finished job from :meth:`state` (the pool's prediction is recomputed from the correction; the
        selector has already checked the proxy's width on the same state)."""
        delta = np.asarray(arrays["pending.delta"], dtype=np.float64).reshape(-1)
        intercept = float(np.asarray(arrays["pending.intercept"]).reshape(-1)[0])
        prior = proxy.predict(correction=(delta, intercept))
        result = (delta, intercept, dict(meta["fit_info"]), prior)
        return cls(meta["due"], meta["info"], meta["residual_var"], result=result)

    def __getstate__(self) -> dict[str, Any]:  # a Future does not pickle or deep-copy: keep its result instead
        self.result()
        return {**self.__dict__, "_future": None}

    def __repr__(self) -> str:
        status = "finished" if self._result is not None or (self._future and self._future.done()) else "running"
        return f"PendingRefit(due={self.due}, {status}, info={json.dumps(self.info, default=str)})"
