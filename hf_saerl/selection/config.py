"""The knobs of the online learnability selector, grouped in one validated dataclass (:class:`SelectionConfig`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ..core.validation import check_integer, check_real
from ..errors import InvalidParameterError

__all__ = ["SelectionConfig"]


@dataclass(frozen=True)
class SelectionConfig:
    """Settings of :class:`~hf_saerl.selection.LearnabilitySelector` (all JSON-able; validated on construction).

    The posterior: every prompt has ``Beta(m * n + s, (1 - m) * n + f)`` over its pass rate, with ``m`` the prior
    mean (the proxy's predicted pass rate, or 0.5 without a proxy), ``n`` the prior strength, and ``s`` / ``f`` the
    successes and failures seen (decayed by ``decay`` per selection step since they were seen).

    Args:
        seed: the draws of step ``t`` come from ``numpy.random.default_rng([seed, t])``: the same on every rank.
        prior_strength: a fixed prior strength ``n`` (pseudo-trials); ``None`` derives it per prompt from the
            proxy's measured error (``n = m(1-m)/var - 1``, clipped to ``[min_prior_strength, max_prior_strength]``),
            or uses ``Beta(1, 1)`` when there is no proxy.
        min_prior_strength, max_prior_strength: the clip of a derived prior strength.
        prior_clip: prior means are clipped to ``[prior_clip, 1 - prior_clip]`` (a Beta needs both shapes > 0).
        decay: multiplies past successes and trials once per selection step (1.0 keeps all history; < 1 forgets,
            so a prompt the policy has since learnt is re-scored, as in MoPPS).
        n_candidates: Thompson samples are drawn for about this many prompts, drawn uniformly (with replacement,
            deduplicated) each step; every prompt when the pool is no larger. Bounds the cost of a step on a huge
            pool (as MoPPS draws a candidate set first). ``None``: always every prompt.
        explore_fraction: share of each batch reserved for never-tried prompts (while some are left), ranked by
            their own Thompson score: the exploration floor.
        fade_low, fade_high, fade_min_trials, fade_weight: a prompt tried at least ``fade_min_trials`` (decayed)
            times whose posterior mean lies outside ``[fade_low, fade_high]`` (hopeless or mastered) has its score
            multiplied by ``fade_weight``; with ``decay < 1`` it returns once its trials decay below the threshold.
        max_cluster_share: no cluster fills more than ``ceil(max_cluster_share * n)`` of a batch of ``n`` while
            other clusters have candidates (1.0 turns the cap off; ``0`` means an even round-robin share,
            ``ceil(n / clusters)``).
        refit_every: refit the proxy after this many :meth:`update` calls (``None``: only when asked).
        refit_lag: a refit started at update ``k`` runs in a background thread on the counts seen up to ``k`` and
            replaces the prior at update ``k + refit_lag`` (waiting there only if it has not finished), so the
            trainer does not wait for it and the choices do not depend on the thread's timing: the same on every
            rank as a synchronous refit delayed by ``refit_lag`` updates. ``0`` refits inside :meth:`update`. At
            most ``refit_every``.
        refit_min_rows: a refit needs observations of at least this many prompts.
        refit_max_features: the refit adjusts the weights of at most this many features (those active in the most
            observed prompts), which bounds its cost.
        success_threshold: for :meth:`update_rewards`: ``None`` counts rewards in [0, 1] as fractional
            successes; a number counts ``reward > success_threshold`` as one success.

    Example:
        >>> SelectionConfig(decay=0.99).decay
        0.99
        >>> SelectionConfig(explore_fraction=2.0)
        Traceback (most recent call last):
        ...
        hf_saerl.errors.InvalidParameterError: explore_fraction must be in [0, 1], got 2.0. Pass a share of the batch, e.g. explore_fraction=0.125.
    """

    seed: int = 0
    prior_strength: float | None = None
    min_prior_strength: float = 1.0
    max_prior_strength: float = 32.0
    prior_clip: float = 0.02
    decay: float = 1.0
    n_candidates: int | None = 8192
    explore_fraction: float = 0.125
    fade_low: float = 0.05
    fade_high: float = 0.95
    fade_min_trials: float = 8.0
    fade_weight: float = 0.1
    max_cluster_share: float = 0.5
    refit_every: int | None = 16
    refit_lag: int = 1
    refit_min_rows: int = 16
    refit_max_features: int = 2048
    success_threshold: float | None = None

    def __post_init__(self) -> None:
        check_integer("seed", self.seed, "Pass a non-negative integer, e.g. seed=0.", minimum=0)
        if self.prior_strength is not None:
            check_real(
                "prior_strength",
                self.prior_strength,
                "Pass a positive number of pseudo-trials, or None.",
                low=0.0,
                low_open=True,
            )
        check_real("min_prior_strength", self.min_prior_strength, "Pass e.g. 1.0.", low=0.0, low_open=True)
        check_real("max_prior_strength", self.max_prior_strength, "Pass e.g. 32.0.", low=self.min_prior_strength)
        check_real(
            "prior_clip",
            self.prior_clip,
            "Pass e.g. prior_clip=0.02.",
            low=0.0,
            high=0.5,
            low_open=True,
            high_open=True,
        )
        check_real("decay", self.decay, "Pass 1.0 (keep history) or e.g. 0.99.", low=0.0, high=1.0, low_open=True)
        if self.n_candidates is not None:
            check_integer("n_candidates", self.n_candidates, "Pass e.g. 8192, or None for every prompt.", minimum=1)
        for name in ("explore_fraction", "fade_weight", "max_cluster_share"):
            check_real(name, getattr(self, name), f"Pass a share of the batch, e.g. {name}=0.125.", low=0.0, high=1.0)
        for name in ("fade_low", "fade_high"):
            check_real(name, getattr(self, name), "Pass a pass rate in [0, 1].", low=0.0, high=1.0)
        if self.fade_low >= self.fade_high:
            raise InvalidParameterError(
                f"fade_low ({self.fade_low}) must be below fade_high ({self.fade_high}). Pass "
                "e.g. fade_low=0.05, fade_high=0.95, or fade_weight=1.0 to turn fading off."
            )
        check_real("fade_min_trials", self.fade_min_trials, "Pass e.g. 8.0.", low=0.0)
        if self.refit_every is not None:
            check_integer("refit_every", self.refit_every, "Pass e.g. 16, or None to refit only on request.", minimum=1)
        check_integer("refit_lag", self.refit_lag, "Pass e.g. 1, or 0 to refit inside update().", minimum=0)
        if self.refit_every is not None and self.refit_lag > self.refit_every:
            raise InvalidParameterError(
                f"refit_lag ({self.refit_lag}) must be at most refit_every ({self.refit_every}): a refit has to be "
                "swapped in before the next one starts. Pass a smaller refit_lag, or a larger refit_every."
            )
        check_integer("refit_min_rows", self.refit_min_rows, "Pass e.g. 16.", minimum=2)
        check_integer("refit_max_features", self.refit_max_features, "Pass e.g. 2048.", minimum=1)
        if self.success_threshold is not None:
            check_real("success_threshold", self.success_threshold, "Pass e.g. 0.5, or None for rewards in [0, 1].")

    def to_dict(self) -> dict[str, Any]:
        """The settings as a JSON-able dict (``SelectionConfig(**d)`` rebuilds them)."""
        return dataclasses.asdict(self)
