"""A labelling run's totals (samples, tokens, seconds) and its progress bar, which advances per finished sample."""

from __future__ import annotations

import time
from typing import Any


class _RunMeter:
    """What a run has generated so far, and the tqdm bar that shows it (the tokens made and their rate).

    Example:
        >>> meter = _RunMeter()
        >>> meter.start_round(6, progress=False)
        >>> meter.finish_round(6, tokens=120, seconds=2.0)
        >>> meter.samples, meter.tokens, meter.seconds
        (6, 120, 2.0)
    """

    def __init__(self) -> None:
        self.bar: Any = None
        self.tokens = 0
        self.samples = 0
        self.seconds = 0.0
        self.step_tokens = 0
        self.bar_start = 0.0

    def reset_totals(self) -> None:
        """Start counting a new run (the bar, if any, stays)."""
        self.tokens, self.samples, self.seconds = 0, 0, 0.0

    def open(self, total: int | None) -> None:
        """A fresh bar of ``total`` samples (``None``: unknown), closing any open one."""
        from tqdm.auto import tqdm

        self.close()
        self.bar = tqdm(total=total, desc="rollout samples", unit="sample", leave=False, dynamic_ncols=True)
        self.bar_start = time.perf_counter()

    def close(self) -> None:
        """Close the bar, if one is open."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def on_step(self, tokens: int, finished: int) -> None:
        """Called by the backend as tokens are generated: the bar advances per finished sample and shows the
        tokens made so far with their rate."""
        self.step_tokens += tokens
        if self.bar is None:
            return
        made = self.tokens + self.step_tokens
        seconds = time.perf_counter() - self.bar_start
        self.bar.set_postfix_str(
            f"{made:,} tok, {made / seconds:.0f} tok/s" if seconds > 0 else f"{made:,} tok", refresh=False
        )
        self.bar.update(finished) if finished else self.bar.refresh()

    def start_round(self, n_samples: int, progress: bool) -> None:
        """Before a round of ``n_samples``: open a bar (with ``progress``, when none is open) or grow its total
        (an extra round)."""
        self.step_tokens = 0
        if progress and self.bar is None:
            self.open(None)
        elif self.bar is not None and self.bar.total is not None and self.samples + n_samples > self.bar.total:
            self.bar.total = self.samples + n_samples  # extra rounds

    def finish_round(self, n_samples: int, tokens: int, seconds: float) -> None:
        """After a round of ``n_samples`` that made ``tokens`` in ``seconds``: the bar catches up on what the
        backend's own ``on_step`` calls did not report, and the totals grow."""
        if self.bar is not None and self.step_tokens == 0:  # the backend made no progress calls
            self.on_step(tokens, 0)
        if self.bar is not None:
            finished_in_steps = self.bar.n - self.samples
            self.bar.update(n_samples - finished_in_steps)
        self.tokens += tokens
        self.samples += n_samples
        self.seconds += seconds
