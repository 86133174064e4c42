"""The online learnability selector: a Beta posterior per prompt, an SAE-proxy prior, Thompson-sampled batches.

Each prompt ``i`` has ``Beta(m_i n_i + s_i, (1 - m_i) n_i + f_i)`` over its pass rate. ``m_i`` is the proxy's
predicted pass rate (frozen at the prompt's first rollout, so its own rollouts are never counted twice; prompts never
tried follow every refit), ``n_i = m_i (1 - m_i) / var - 1`` with ``var`` the proxy's measured squared error on
prompts it has not seen, and ``s_i`` / ``f_i`` the successes and failures seen. A step draws ``p ~ Beta`` for the
candidates, scores ``p (1 - p)`` (the GRPO signal of a group), fades prompts known to be mastered or hopeless, keeps a
floor of never-tried prompts, caps any one SAE cluster's share of the batch, and returns the best ids. The draws of
step ``t`` use ``default_rng([seed, t])``: every rank that applies the same updates chooses the same batch.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..core.validation import check_integer
from ..errors import InvalidParameterError, NonFiniteError, ParameterTypeError, RowMismatchError
from .batching import _take
from .config import SelectionConfig
from .proxy import LinearProxy
from .refit import PendingRefit, fit_job
from .state import _load_state_dict, _read_state, _state_dict, _write_state

__all__ = ["LearnabilitySelector", "beta_prior"]


def beta_prior(mean: np.ndarray, residual_var: float, low: float = 1.0, high: float = 32.0) -> np.ndarray:
    """The prior strength ``n`` (pseudo-trials) of a Beta with mean ``mean`` whose variance is ``residual_var``:
    ``var = m(1 - m) / (n + 1)`` gives ``n = m(1 - m) / var - 1``, clipped to ``[low, high]``.

    Example:
        >>> beta_prior(np.array([0.5, 0.1]), residual_var=0.01).round(3).tolist()
        [24.0, 8.0]
    """
    mean = np.asarray(mean, dtype=np.float64)
    return np.clip(mean * (1.0 - mean) / float(residual_var) - 1.0, low, high)


class LearnabilitySelector:
    """Chooses which prompts to generate for next, by Thompson-sampled learnability ``p(1 - p)``.

    Args:
        n_rows: prompts in the pool (row ids ``0 .. n_rows - 1``).
        config: a :class:`SelectionConfig` (defaults otherwise).
        proxy: a :class:`LinearProxy` over the same rows (the SAE prior, refitted online), or None.
        prior_mean: fixed prior means per prompt instead of a proxy (e.g. a raw-activation probe's predictions);
            needs ``config.prior_strength`` or ``residual_var``.
        residual_var: the error of ``prior_mean`` (squared, pass-rate scale), which sets the prior's strength.
        cluster_ids: one non-negative integer per prompt (e.g. the pipeline's ``cluster_id``) for the cluster cap.

    Without a proxy or prior means every prompt starts at ``Beta(1, 1)`` (history only, as MoPPS).

    Example:
        >>> sel = LearnabilitySelector(4, SelectionConfig(seed=0, explore_fraction=0.0))
        >>> batch = sel.select(2)
        >>> len(set(batch.tolist())), sel.step
        (2, 1)
        >>> sel.update([0, 1], n_correct=[4, 2], n_trials=[4, 4])
        >>> sel.posterior_params([0, 1])
        (array([5., 3.]), array([1., 3.]))
        >>> restored = LearnabilitySelector(4).load_state_dict(sel.state_dict())
        >>> bool((restored.select(2) == sel.select(2)).all())
        True
    """

    def __init__(
        self,
        n_rows: int,
        config: SelectionConfig | None = None,
        *,
        proxy: LinearProxy | None = None,
        prior_mean: Any = None,
        residual_var: float | None = None,
        cluster_ids: Any = None,
    ) -> None:
        self.n_rows = check_integer("n_rows", n_rows, "Pass the number of prompts in the pool.", minimum=1)
        self.config = config if config is not None else SelectionConfig()
        if not isinstance(self.config, SelectionConfig):
            raise ParameterTypeError(
                f"config must be a SelectionConfig, got {type(self.config).__name__}. Build one "
                "with SelectionConfig(...)."
            )
        if proxy is not None and prior_mean is not None:
            raise InvalidParameterError("Pass a proxy (refitted online) or fixed prior_mean, not both.")
        self.proxy = proxy
        if proxy is not None and proxy.n_rows != self.n_rows:
            raise RowMismatchError(
                f"The proxy covers {proxy.n_rows} prompts but n_rows={self.n_rows}. Build the proxy from the same pool."
            )
        self._fixed_prior = None
        if prior_mean is not None:
            fixed = np.asarray(prior_mean, dtype=np.float64).reshape(-1)
            if fixed.shape[0] != self.n_rows:
                raise RowMismatchError(
                    f"prior_mean has {fixed.shape[0]} values for {self.n_rows} prompts. Pass one "
                    "predicted pass rate per prompt."
                )
            if not np.isfinite(fixed).all():
                raise NonFiniteError("prior_mean holds NaN or infinite values. Predict every prompt, or drop it.")
            if residual_var is None and self.config.prior_strength is None:
                raise InvalidParameterError(
                    "Fixed prior_mean needs its error: pass residual_var= (squared error on "
                    "unseen prompts) or SelectionConfig(prior_strength=...)."
                )
            self._fixed_prior = fixed
        self.residual_var = (
            float(residual_var) if residual_var is not None else (proxy.residual_var if proxy is not None else 0.0)
        )
        if cluster_ids is None:
            self.cluster_ids = None
        else:
            clusters = np.asarray(cluster_ids)
            if clusters.shape != (self.n_rows,) or clusters.dtype.kind not in "iu" or (clusters < 0).any():
                raise InvalidParameterError(
                    f"cluster_ids must hold one non-negative integer per prompt "
                    f"({self.n_rows}); got shape {clusters.shape}, dtype {clusters.dtype}. "
                    "Pass the pipeline's cluster_id column, or None."
                )
            self.cluster_ids = clusters.astype(np.int64)
        n = self.n_rows
        self.successes = np.zeros(n)
        self.trials = np.zeros(n)
        self.last_step = np.zeros(n, dtype=np.int64)
        self.successes_total = np.zeros(n)
        self.trials_total = np.zeros(n)
        self.prior_at_first = np.full(n, np.nan)
        self.first_refit = np.full(n, -1, dtype=np.int64)
        self.step = 0
        self.n_updates = 0
        self.n_refits = 0
        self.last_refit: dict[str, Any] = {}
        self.pending_refit: PendingRefit | None = None
        self._refresh_prior()

    # ------------------------------------------------------------------ construction helpers
    @classmethod
    def from_probe(
        cls,
        probe: Any,
        data: Any,
        config: SelectionConfig | None = None,
        *,
        cluster_column: str | None = "cluster_id",
        residual_var: float | None = None,
    ) -> LearnabilitySelector:
        """A selector over the rows of ``data`` (a ``Dataset`` or batch dict with the SAE columns) whose prior is a
        fitted pass-rate :class:`~hf_saerl.estimators.DifficultyProbe`, with clusters from ``cluster_column`` when
        ``data`` has it.

        Example:
            >>> import numpy as np
            >>> from hf_saerl.estimators import DifficultyProbe
            >>> rng = np.random.default_rng(0)
            >>> data = {"sae_indices": [[i % 5, 5 + i % 3] for i in range(60)],
            ...         "sae_values": [[1.0, 1.0]] * 60, "cluster_id": [i % 2 for i in range(60)]}
            >>> y = np.array([0.1 + 0.2 * (i % 5) for i in range(60)])
            >>> probe = DifficultyProbe(d_sae=8, label="pass_rate", transform=None).fit(data, y)
            >>> sel = LearnabilitySelector.from_probe(probe, data)
            >>> sel.prior_mean([0, 2]).round(1).tolist()
            [0.1, 0.5]
        """
        from ..core.columns import column_names, read_column

        proxy = LinearProxy.from_probe(
            probe, data, residual_var=residual_var, max_features=(config or SelectionConfig()).refit_max_features
        )
        clusters = None
        if cluster_column is not None and cluster_column in (column_names(data) or ()):
            clusters = np.asarray(read_column(data, cluster_column, "cluster ids"))
        return cls(proxy.n_rows, config, proxy=proxy, cluster_ids=clusters)

    # ------------------------------------------------------------------ the posterior
    def _refresh_prior(self, predicted: np.ndarray | None = None) -> None:
        c = self.config
        if predicted is not None:
            mean = predicted
        elif self.proxy is not None:
            mean = self.proxy.predict()
        elif self._fixed_prior is not None:
            mean = self._fixed_prior
        else:
            mean = np.full(self.n_rows, 0.5)
        self._prior_now = np.clip(mean, c.prior_clip, 1.0 - c.prior_clip)

    def _strength(self, mean: np.ndarray) -> np.ndarray:
        c = self.config
        if c.prior_strength is not None:
            return np.full(mean.shape, float(c.prior_strength))
        if self.proxy is None and self._fixed_prior is None:
            return np.full(mean.shape, 2.0)  # Beta(1, 1)
        return beta_prior(mean, self.residual_var, c.min_prior_strength, c.max_prior_strength)

    def prior_mean(self, rows: Any = None) -> np.ndarray:
        """The prior mean of ``rows`` (default all): the proxy's prediction, or the one frozen at the first rollout."""
        rows = self._all_or(rows)
        frozen = self.prior_at_first[rows]
        return np.where(np.isnan(frozen), self._prior_now[rows], frozen)

    def _decayed(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.config.decay == 1.0:
            return self.successes[rows], self.trials[rows]
        factor = self.config.decay ** (self.step - self.last_step[rows]).astype(np.float64)
        return self.successes[rows] * factor, self.trials[rows] * factor

    def posterior_params(self, rows: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """``(alpha, beta)`` of the Beta posterior of ``rows`` (default: every prompt), float64."""
        rows = self._all_or(rows)
        mean = self.prior_mean(rows)
        strength = self._strength(mean)
        s, t = self._decayed(rows)
        return mean * strength + s, (1.0 - mean) * strength + (t - s)

    def predict(self, rows: Any = None) -> np.ndarray:
        """The posterior mean pass rate of ``rows`` (default: every prompt)."""
        a, b = self.posterior_params(rows)
        return a / (a + b)

    def _all_or(self, rows: Any) -> np.ndarray:
        return np.arange(self.n_rows) if rows is None else self._check_rows(rows, "rows")

    def _check_rows(self, rows: Any, name: str) -> np.ndarray:
        arr = np.asarray(rows)
        if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
            raise InvalidParameterError(
                f"{name} must be a 1-D sequence of integer row ids; got shape {arr.shape}, "
                f"dtype {arr.dtype}. Pass the ids select() returned (or a dataset's row "
                "indices)."
            )
        arr = arr.astype(np.int64)
        bad = (arr < 0) | (arr >= self.n_rows)
        if bad.any():
            raise RowMismatchError(
                f"{name} holds {int(bad.sum())} unknown row id(s), e.g. {int(arr[bad][0])}; the "
                f"pool has rows 0..{self.n_rows - 1}. Pass ids from this pool, or build the "
                "selector over the dataset the trainer reads."
            )
        return arr

    # ------------------------------------------------------------------ choosing
    def select(self, n: int) -> np.ndarray:
        """The next ``n`` distinct row ids (int64), best first; advances the step (so the next draw differs)."""
        n = check_integer("n", n, "Pass the number of prompts the next batch needs.", minimum=1)
        if n > self.n_rows:
            raise InvalidParameterError(
                f"select(n={n}) asks for more prompts than the pool has ({self.n_rows}). Ask for fewer, or add prompts."
            )
        c = self.config
        rng = np.random.default_rng([c.seed, self.step])
        if c.n_candidates is not None and self.n_rows > max(c.n_candidates, n):
            # with replacement, then deduplicated: O(n_candidates), where choice(replace=False) costs O(n_rows)
            raw = np.sort(rng.integers(0, self.n_rows, size=max(c.n_candidates, 2 * n)))
            cand = raw[np.concatenate(([True], raw[1:] != raw[:-1]))]
            if cand.size < n:  # only when n_candidates is close to n_rows: fall back to every prompt
                cand = np.arange(self.n_rows)
        else:
            cand = np.arange(self.n_rows)
        # posterior_params(cand), with each per-prompt array read once (random reads dominate on a large pool)
        frozen = self.prior_at_first[cand]
        untried = np.isnan(frozen)
        mean = np.where(untried, self._prior_now[cand], frozen)
        strength = self._strength(mean)
        s, t = self._decayed(cand)
        a, b = mean * strength + s, (1.0 - mean) * strength + (t - s)
        theta = rng.beta(a, b)
        score = theta * (1.0 - theta)
        if c.fade_weight < 1.0:
            post = a / (a + b)
            fade = ~untried & (t >= c.fade_min_trials) & ((post < c.fade_low) | (post > c.fade_high))
            score = np.where(fade, score * c.fade_weight, score)
        # The exploration floor's untried prompts first, then everyone by score.
        n_explore = min(math.ceil(c.explore_fraction * n), int(untried.sum()))
        chosen = cand[_take(cand, score, untried, n, n_explore, self.cluster_ids, c.max_cluster_share)]
        self.step += 1
        return chosen

    # ------------------------------------------------------------------ learning
    def update(self, row_ids: Any, n_correct: Any, n_trials: Any) -> None:
        """Add the rollouts of ``row_ids``: ``n_correct`` successes out of ``n_trials`` each (counts may be
        fractional, e.g. mean rewards times group size). A row may appear more than once. Every
        ``config.refit_every`` updates, the proxy is refitted (:meth:`refit`)."""
        rows = self._check_rows(row_ids, "row_ids")
        correct = self._check_counts(n_correct, "n_correct", rows.size)
        trials = self._check_counts(n_trials, "n_trials", rows.size)
        if (trials <= 0).any():
            raise InvalidParameterError(
                f"n_trials must be > 0 for every row; {int((trials <= 0).sum())} are not. "
                "Drop rows without rollouts, or pass the group size."
            )
        if (correct > trials + 1e-9).any():
            raise InvalidParameterError(
                "n_correct exceeds n_trials for some rows. Pass successes <= trials (e.g. "
                "the number of rewards above the success threshold)."
            )
        unique = np.unique(rows)
        if self.config.decay != 1.0:
            s, t = self._decayed(unique)
            self.successes[unique], self.trials[unique] = s, t
        self.last_step[unique] = self.step
        new = unique[np.isnan(self.prior_at_first[unique])]
        self.prior_at_first[new] = self._prior_now[new]
        self.first_refit[new] = self.n_refits
        np.add.at(self.successes, rows, correct)
        np.add.at(self.trials, rows, trials)
        np.add.at(self.successes_total, rows, correct)
        np.add.at(self.trials_total, rows, trials)
        self.n_updates += 1
        if self.pending_refit is not None and self.n_updates >= self.pending_refit.due:
            self._swap_in(self.pending_refit)
        every = self.config.refit_every
        if every is not None and self.proxy is not None and self.n_updates % every == 0:
            self._refit(lag=self.config.refit_lag)

    def update_rewards(self, row_ids: Any, rewards: Any) -> None:
        """Add rollout groups: ``rewards`` is ``(len(row_ids), G)`` (one group of G rewards per row). Rewards in
        [0, 1] count as fractional successes, or ``reward > config.success_threshold`` as one success each.

        Example:
            >>> sel = LearnabilitySelector(3)
            >>> sel.update_rewards([2], [[1.0, 0.0, 1.0, 1.0]])
            >>> sel.posterior_params([2])
            (array([4.]), array([2.]))
        """
        r = np.asarray(rewards, dtype=np.float64)
        rows = np.asarray(row_ids)
        if r.ndim != 2 or r.shape[0] != rows.reshape(-1).shape[0]:
            raise InvalidParameterError(
                f"rewards must be a (len(row_ids), G) array, one group per row; got shape "
                f"{r.shape} for {rows.reshape(-1).shape[0]} row ids. Reshape the flat "
                "rewards to (-1, G), or call update() with counts."
            )
        if not np.isfinite(r).all():
            raise NonFiniteError(
                f"rewards hold {int((~np.isfinite(r)).sum())} NaN or infinite value(s). Fix the "
                "reward function, or drop those groups."
            )
        threshold = self.config.success_threshold
        if threshold is None:
            if (r < 0).any() or (r > 1).any():
                raise InvalidParameterError(
                    f"rewards lie in [{r.min():g}, {r.max():g}], outside [0, 1]. Set "
                    "SelectionConfig(success_threshold=...) to count reward > threshold as "
                    "a success, or rescale the rewards."
                )
            correct = r.sum(axis=1)
        else:
            correct = (r > threshold).sum(axis=1).astype(np.float64)
        self.update(rows, correct, np.full(r.shape[0], float(r.shape[1])))

    @staticmethod
    def _check_counts(values: Any, name: str, n: int) -> np.ndarray:
        arr = np.asarray(values, dtype=np.float64).reshape(-1) if np.ndim(values) else np.full(n, float(values))
        if arr.shape[0] != n:
            raise InvalidParameterError(f"{name} has {arr.shape[0]} values for {n} row ids. Pass one per row id.")
        if not np.isfinite(arr).all():
            raise NonFiniteError(
                f"{name} holds {int((~np.isfinite(arr)).sum())} NaN or infinite value(s). Fix the "
                "reward function, or drop those groups."
            )
        if (arr < 0).any():
            raise InvalidParameterError(f"{name} must be >= 0; got {arr.min():g}. Pass counts of rollouts.")
        return arr

    def refit(self) -> dict[str, Any]:
        """Refit the proxy now, in this thread, on every prompt seen (decayed pass rate, weighted by decayed trials),
        after measuring its error on the prompts first tried since the last refit (which it had not seen). A refit
        still pending (``refit_lag``) is swapped in first. Returns a summary."""
        return self._refit(lag=0)

    def _refit(self, lag: int) -> dict[str, Any]:
        """A refit on the counts seen so far: swapped in now (``lag=0``) or started in the background thread and
        swapped in ``lag`` updates later. Measures the prior's held-out error and counts the refit at once (prompts
        first tried from now on are held out for the next one)."""
        if self.pending_refit is not None:  # refit_lag == refit_every, or an explicit refit(): take it first
            self._swap_in(self.pending_refit)
        c = self.config
        if self.proxy is None:
            return {"refitted": False, "reason": "no proxy"}
        s, t = self._decayed(np.arange(self.n_rows)) if c.decay != 1.0 else (self.successes, self.trials)
        rows = np.flatnonzero(t > 1e-9)
        if rows.size < c.refit_min_rows:
            return {"refitted": False, "reason": f"{rows.size} prompts seen < refit_min_rows={c.refit_min_rows}"}
        info: dict[str, Any] = {"refitted": True, "step": self.step, "update": self.n_updates}
        residual_var = self.residual_var
        held = np.flatnonzero((self.first_refit == self.n_refits) & (self.trials_total >= 2))
        if held.size >= c.refit_min_rows:
            tt = self.trials_total[held]
            rate = self.successes_total[held] / tt
            err = np.average((rate - self.prior_at_first[held]) ** 2, weights=tt)
            noise = np.average(rate * (1 - rate) / (tt - 1), weights=tt)  # unbiased binomial variance of the rate
            residual_var = max(float(err - noise), 1e-4)
            info.update(held_out_rows=int(held.size), held_out_mse=float(err), residual_var=residual_var)
        self.n_refits += 1
        inputs = (rows, s[rows] / t[rows], t[rows].copy(), self.proxy.delta.copy())
        if lag:
            self.pending_refit = PendingRefit.start(self.n_updates + lag, info, residual_var, self.proxy, inputs)
            return info
        return self._swap_in(PendingRefit(self.n_updates, info, residual_var, result=fit_job(self.proxy, *inputs)))

    def _swap_in(self, job: PendingRefit) -> dict[str, Any]:
        """Use ``job``'s correction, prior error and predicted pass rates from now on (waiting for it if needed)."""
        assert self.proxy is not None
        delta, intercept, fit_info, predicted = job.result()
        self.proxy.set_correction(delta, intercept)
        self.residual_var = self.proxy.residual_var = job.residual_var
        self._refresh_prior(predicted)
        self.last_refit = {**job.info, **fit_info, "swapped_at_update": self.n_updates}
        if job is self.pending_refit:
            self.pending_refit = None
        return self.last_refit

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Plain numpy arrays and a JSON string ``"meta"``: everything :meth:`load_state_dict` needs to continue
        with the same choices (safetensors-friendly: ``{k: v for k, v in state.items() if k != "meta"}``)."""
        return _state_dict(self)

    def load_state_dict(self, state: dict[str, Any]) -> LearnabilitySelector:
        """Restore :meth:`state_dict` (the pool, proxy features and clusters stay this selector's own)."""
        _load_state_dict(self, state)
        self._refresh_prior()
        return self

    def save(self, path: Any) -> None:
        """Write :meth:`state_dict` to ``path`` (safetensors, with the JSON meta in its header)."""
        _write_state(self.state_dict(), path)

    def load(self, path: Any) -> LearnabilitySelector:
        """Read a state written by :meth:`save`."""
        return self.load_state_dict(_read_state(path))
