"""LearnabilitySelector against independent computations: posteriors by hand, Thompson choice probabilities by
numerical integration, resume = uninterrupted, identical choices on two selectors ("ranks"), and input errors."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
from scipy import integrate, stats

from hf_saerl.errors import InvalidParameterError, NonFiniteError, ParameterTypeError, RowMismatchError
from hf_saerl.selection import LearnabilitySelector, LinearProxy, SelectionConfig, beta_prior

QUIET = dict(explore_fraction=0.0, fade_weight=1.0, refit_every=None)


# ---------------------------------------------------------------------------- posterior by hand
def test_history_only_posterior_is_beta_one_one_plus_counts():
    sel = LearnabilitySelector(5, SelectionConfig(**QUIET))
    sel.update([0, 3, 0], n_correct=[2, 0, 1], n_trials=[4, 8, 4])  # row 0 twice: 3 of 8
    a, b = sel.posterior_params()
    assert a.tolist() == [4.0, 1.0, 1.0, 1.0, 1.0]
    assert b.tolist() == [6.0, 1.0, 1.0, 9.0, 1.0]
    assert sel.predict([0])[0] == pytest.approx(4 / 10)


def test_prior_from_mean_and_error_then_counts():
    m = np.array([0.2, 0.5, 0.9])
    var = 0.01
    sel = LearnabilitySelector(3, SelectionConfig(**QUIET, max_prior_strength=1000), prior_mean=m, residual_var=var)
    n = m * (1 - m) / var - 1  # by hand: 15, 24, 8
    assert n.tolist() == pytest.approx([15.0, 24.0, 8.0])
    sel.update([1], [3], [4])
    a, b = sel.posterior_params()
    assert a.tolist() == pytest.approx([0.2 * 15, 0.5 * 24 + 3, 0.9 * 8])
    assert b.tolist() == pytest.approx([0.8 * 15, 0.5 * 24 + 1, 0.1 * 8])
    # the Beta with that mean and strength has the measured variance
    a0, b0 = m * n, (1 - m) * n
    assert (a0 * b0 / ((a0 + b0) ** 2 * (a0 + b0 + 1))).tolist() == pytest.approx([var] * 3)
    assert beta_prior(np.array([0.5]), 0.2).tolist() == [1.0]  # clipped below
    assert beta_prior(np.array([0.5]), 1e-6, high=32).tolist() == [32.0]  # clipped above


def test_decay_multiplies_history_per_step():
    sel = LearnabilitySelector(4, SelectionConfig(**QUIET, decay=0.5))
    sel.update([1], [4], [4])  # at step 0
    for _ in range(2):
        sel.select(1)
    a, b = sel.posterior_params([1])
    assert (a[0], b[0]) == pytest.approx((1 + 4 * 0.25, 1 + 0))
    sel.update([1], [0], [2])  # decayed history 1 of 1, plus 0 of 2
    a, b = sel.posterior_params([1])
    assert (a[0], b[0]) == pytest.approx((2.0, 3.0))


def test_update_rewards_counts_fractional_or_thresholded():
    sel = LearnabilitySelector(3, SelectionConfig(**QUIET))
    sel.update_rewards([0, 2], [[1.0, 0.5, 0.0, 0.0], [1, 1, 1, 0]])
    assert sel.posterior_params()[0].tolist() == [2.5, 1.0, 4.0]
    thr = LearnabilitySelector(2, SelectionConfig(**QUIET, success_threshold=0.0))
    thr.update_rewards([1], [[-1.0, 2.0, 3.0]])
    assert thr.posterior_params()[0].tolist() == [1.0, 3.0]
    assert thr.posterior_params()[1].tolist() == [1.0, 2.0]


# ---------------------------------------------------------------------------- the Thompson choice
def _p_best(params: list[tuple[float, float]], i: int) -> float:
    """P(theta_i (1 - theta_i) is the largest), theta_j ~ Beta(a_j, b_j) independent, by numerical integration."""

    def below(j: int, c: float) -> float:  # P(theta_j (1 - theta_j) < c)
        if c >= 0.25:
            return 1.0
        r = math.sqrt(1 - 4 * c)
        lo, hi = (1 - r) / 2, (1 + r) / 2
        dist = stats.beta(*params[j])
        return dist.cdf(lo) + dist.sf(hi)

    def integrand(theta: float) -> float:
        c = theta * (1 - theta)
        out = stats.beta(*params[i]).pdf(theta)
        for j in range(len(params)):
            if j != i:
                out *= below(j, c)
        return out

    return integrate.quad(integrand, 0, 1, limit=200)[0]


def test_thompson_choice_matches_analytic_probabilities():
    params = [(2.0, 6.0), (5.0, 5.0), (1.0, 1.0)]
    sel = LearnabilitySelector(3, SelectionConfig(**QUIET, seed=7))
    sel.update([0, 1], [1, 4], [6, 8])  # Beta(1,1) prior + counts = params above
    a, b = sel.posterior_params()
    assert list(zip(a.tolist(), b.tolist(), strict=True)) == params
    draws = 4000
    counts = np.bincount([int(sel.select(1)[0]) for _ in range(draws)], minlength=3)
    expected = np.array([_p_best(params, i) for i in range(3)])
    assert expected.sum() == pytest.approx(1.0, abs=1e-6)
    se = np.sqrt(expected * (1 - expected) / draws)
    assert np.all(np.abs(counts / draws - expected) < 4 * se), (counts / draws, expected)


def test_same_seed_same_draws_different_seed_differs():
    def run(seed: int) -> list[list[int]]:
        sel = LearnabilitySelector(50, SelectionConfig(seed=seed))
        out = []
        for _ in range(5):
            batch = sel.select(4)
            sel.update(batch, [1, 2, 3, 0], 4)
            out.append(batch.tolist())
        return out

    assert run(1) == run(1)  # two "ranks" with the same updates choose the same ids
    assert run(1) != run(2)


# ---------------------------------------------------------------------------- batch composition
def test_cluster_cap_keeps_other_clusters_in_the_batch():
    clusters = np.array([0] * 10 + [1] * 10)
    sel = LearnabilitySelector(20, SelectionConfig(**QUIET, max_cluster_share=0.5), cluster_ids=clusters)
    sel.update(np.arange(10), [4] * 10, [8] * 10)  # cluster 0 at p = 0.5: all score higher
    sel.update(np.arange(10, 20), [0] * 10, [40] * 10)  # cluster 1 hopeless
    for _ in range(20):
        batch = sel.select(6)
        assert len(set(batch.tolist())) == 6
        assert (clusters[batch] == 0).sum() == 3  # ceil(0.5 * 6) from the better cluster, the rest from the other
    uncapped = LearnabilitySelector(20, SelectionConfig(**QUIET, max_cluster_share=1.0), cluster_ids=clusters)
    uncapped.update(np.arange(10), [4] * 10, [8] * 10)
    uncapped.update(np.arange(10, 20), [0] * 10, [40] * 10)
    assert all((clusters[uncapped.select(6)] == 0).all() for _ in range(5))
    rr = LearnabilitySelector(20, SelectionConfig(**QUIET, max_cluster_share=0.0), cluster_ids=np.arange(20) % 4)
    assert np.bincount(np.arange(20)[rr.select(8)] % 4).tolist() == [2, 2, 2, 2]  # round-robin share


def test_exploration_floor_and_fading():
    sel = LearnabilitySelector(10, SelectionConfig(explore_fraction=0.25, fade_weight=1.0, refit_every=None))
    sel.update(np.arange(6), [4] * 6, [8] * 6)  # six prompts known to be at p = 0.5
    for _ in range(10):
        batch = sel.select(4)
        assert (batch >= 6).sum() >= 1  # ceil(0.25 * 4) = 1 never-tried prompt each batch
    faded = LearnabilitySelector(
        3, SelectionConfig(explore_fraction=0.0, fade_weight=0.0, fade_min_trials=8, refit_every=None)
    )
    faded.update([0, 1, 2], [20, 0, 2], [20, 20, 4])  # mastered, hopeless, learnable
    assert all(faded.select(1)[0] == 2 for _ in range(50))
    assert sorted(faded.select(3).tolist()) == [0, 1, 2]  # faded prompts still fill a batch that needs them


# ---------------------------------------------------------------------------- the proxy and its refit
def _pool(n: int = 200, d: int = 12, seed: int = 0):
    rng = np.random.default_rng(seed)
    X: Any = sp.random(n, d, density=0.3, random_state=seed, format="csr")
    X.data[:] = 1.0
    true_coef = rng.normal(0, 0.15, d)
    return X, true_coef, rng


def test_refit_matches_a_weighted_elastic_net_fitted_from_scratch():
    from sklearn.linear_model import ElasticNet

    X, coef, rng = _pool()
    base = np.zeros(X.shape[1])
    proxy = LinearProxy(X, base, 0.3, alpha=1e-3, l1_ratio=0.5, residual_var=0.02)
    rows = np.arange(0, 200, 2)
    rate = np.clip(0.3 + X[rows] @ coef + rng.normal(0, 0.05, rows.size), 0, 1)
    weight = rng.integers(1, 9, rows.size).astype(float)
    proxy.refit(rows[:50], rate[:50], weight[:50])  # a first refit, so the second is warm-started
    proxy.refit(rows, rate, weight)
    ref = ElasticNet(alpha=1e-3, l1_ratio=0.5, tol=1e-8, max_iter=100_000).fit(
        X[rows], rate - 0.3, sample_weight=weight
    )
    assert np.abs(proxy.delta - ref.coef_).max() < 5e-3
    assert proxy.predict(rows) == pytest.approx(ref.predict(X[rows]) + 0.3, abs=5e-3)


def test_refit_moves_untried_priors_and_keeps_tried_ones():
    n = 120
    X = sp.csr_matrix(np.eye(2)[np.arange(n) % 2])  # two kinds of prompts, one feature each
    proxy = LinearProxy(X, np.zeros(2), 0.2, alpha=1e-4, l1_ratio=0.5, residual_var=0.02)
    sel = LearnabilitySelector(n, SelectionConfig(**QUIET, refit_min_rows=4), proxy=proxy)
    tried = np.arange(0, 40)  # kind 0 truly at 0.8, kind 1 at 0.2 (the proxy says 0.2 for both)
    sel.update(tried, np.where(tried % 2 == 0, 8, 2), 10)
    info = sel.refit()
    assert info["refitted"] and info["n_rows"] == 40
    untried_kind0 = np.arange(40, n, 2)
    assert sel.prior_mean(untried_kind0).min() > 0.6  # unseen prompts follow the policy
    assert sel.prior_mean(tried).tolist() == pytest.approx([0.2] * 40)  # tried ones keep the prior they had
    # the error measured before the refit, on prompts the proxy had not seen, by hand
    rate = np.where(tried % 2 == 0, 0.8, 0.2)
    mse = np.mean((rate - 0.2) ** 2)
    noise = np.mean(rate * (1 - rate) / 9)
    assert info["residual_var"] == pytest.approx(mse - noise)
    assert sel.residual_var == pytest.approx(mse - noise)


def test_from_probe_prior_is_the_probe_prediction():
    from hf_saerl.estimators import DifficultyProbe

    X, coef, _ = _pool(300, 20, seed=1)
    y = np.clip(0.4 + X @ coef, 0, 1)
    probe = DifficultyProbe(d_sae=20, label="pass_rate", transform=("log1p",)).fit(X, y)
    data = {
        "sae_indices": [X[i].indices.tolist() for i in range(300)],
        "sae_values": [X[i].data.tolist() for i in range(300)],
        "cluster_id": (np.arange(300) % 3).tolist(),
    }
    sel = LearnabilitySelector.from_probe(probe, data, SelectionConfig(prior_clip=0.02))
    expected = np.clip(probe.predict_pass_rate(X).astype(np.float64), 0.02, 0.98)
    assert sel.prior_mean() == pytest.approx(expected, abs=1e-6)
    assert sel.residual_var == pytest.approx(math.pi / 2 * probe.metrics_["mae"] ** 2)
    assert sel.cluster_ids.tolist() == (np.arange(300) % 3).tolist()
    with pytest.raises(InvalidParameterError, match="pass rates"):
        LinearProxy.from_probe(DifficultyProbe(d_sae=20, label="difficulty").fit(X, 1 - y), X)


# ---------------------------------------------------------------------------- resume
def _simulate(sel: LearnabilitySelector, true_p: np.ndarray, steps: range, seed: int) -> list[list[int]]:
    out = []
    for t in steps:
        batch = sel.select(6)
        wins = np.random.default_rng([seed, t]).binomial(4, true_p[batch])
        sel.update(batch, wins, 4)
        out.append(batch.tolist())
    return out


def _fresh(X: Any, coef: np.ndarray, **config: Any) -> LearnabilitySelector:
    proxy = LinearProxy(X, coef * 0.5, 0.3, alpha=1e-3, l1_ratio=0.5, residual_var=0.03)
    config = {"seed": 3, "refit_every": 4, "refit_min_rows": 8, "n_candidates": 64, **config}
    return LearnabilitySelector(X.shape[0], SelectionConfig(**config), proxy=proxy, cluster_ids=np.arange(150) % 4)


@pytest.mark.parametrize(("decay", "lag"), [(1.0, 0), (0.9, 0), (1.0, 3)])
def test_resume_mid_run_gives_the_uninterrupted_choices(tmp_path, decay, lag):
    X, coef, _ = _pool(150, 10, seed=2)
    true_p = np.clip(0.3 + X @ coef, 0.01, 0.99)

    def fresh() -> LearnabilitySelector:
        return _fresh(X, coef, decay=decay, refit_lag=lag)

    whole = fresh()
    straight = _simulate(whole, true_p, range(30), seed=9)
    first = fresh()
    head = _simulate(first, true_p, range(14), seed=9)
    # with lag 3, the refit started at update 12 is still pending (due at 15): the state must carry it
    assert (first.pending_refit is not None) == (lag == 3)
    first.save(tmp_path / "selector.safetensors")
    resumed = fresh().load(tmp_path / "selector.safetensors")
    assert resumed.n_refits == first.n_refits > 0
    tail = _simulate(resumed, true_p, range(14, 30), seed=9)
    assert head + tail == straight
    assert np.array_equal(resumed.posterior_params()[0], whole.posterior_params()[0])


# ---------------------------------------------------------------------------- the refit in the background
def test_refit_lag_swaps_in_at_k_plus_lag_the_refit_a_synchronous_one_makes_at_k():
    X, coef, _ = _pool(150, 10, seed=4)
    true_p = np.clip(0.3 + X @ coef, 0.01, 0.99)
    lagged = _fresh(X, coef, refit_lag=3)
    _simulate(lagged, true_p, range(4), seed=1)  # update 4 starts a refit, due at update 7
    assert lagged.pending_refit is not None and lagged.pending_refit.due == 7
    reference = _fresh(X, coef, refit_every=None).load_state_dict(lagged.state_dict())
    reference.pending_refit = None  # the state carried the job: drop it and refit synchronously at update 4
    reference.n_refits -= 1  # ... as the first refit, which the lagged selector has already counted
    info = reference.refit()
    untried = np.flatnonzero(lagged.trials_total == 0)
    before = lagged.prior_mean(untried)
    for t in range(4, 6):  # updates 5 and 6: the old prior still serves
        _simulate(lagged, true_p, range(t, t + 1), seed=1)
        assert lagged.proxy.delta.tolist() == [0.0] * 10
    assert lagged.prior_mean(untried) == pytest.approx(before)  # untried prompts still follow the old proxy
    _simulate(lagged, true_p, range(6, 7), seed=1)  # update 7: swapped in
    assert lagged.pending_refit is None
    assert np.array_equal(lagged.proxy.delta, reference.proxy.delta) and lagged.proxy.delta.any()
    still = untried[lagged.trials_total[untried] == 0]
    assert np.array_equal(lagged.prior_mean(still), reference.prior_mean(still))
    assert lagged.last_refit["update"] == 4 and lagged.last_refit["swapped_at_update"] == 7
    assert lagged.last_refit["train_mse"] == pytest.approx(info["train_mse"])


def test_choices_do_not_depend_on_how_long_the_background_refit_takes(monkeypatch):
    import time

    from hf_saerl.selection import refit as refit_module

    X, coef, _ = _pool(150, 10, seed=5)
    true_p = np.clip(0.3 + X @ coef, 0.01, 0.99)
    fast = _simulate(_fresh(X, coef, refit_lag=2), true_p, range(25), seed=2)
    real_job = refit_module.fit_job

    def slow_job(*args: Any) -> Any:
        time.sleep(0.3)  # longer than the updates in between take: the swap has to wait for it
        return real_job(*args)

    monkeypatch.setattr(refit_module, "fit_job", slow_job)
    slow_selector = _fresh(X, coef, refit_lag=2)
    slow = _simulate(slow_selector, true_p, range(25), seed=2)
    assert slow == fast and slow_selector.n_refits == 6
    # and a selector with a refit in flight still copies and pickles (the job's result travels, not the thread)
    import copy
    import pickle

    in_flight = _fresh(X, coef, refit_lag=2)
    _simulate(in_flight, true_p, range(4), seed=2)
    assert in_flight.pending_refit is not None
    clone = pickle.loads(pickle.dumps(copy.deepcopy(in_flight)))
    assert _simulate(clone, true_p, range(4, 12), seed=2) == fast[4:12]


def test_refit_lag_is_refused_past_refit_every():
    with pytest.raises(InvalidParameterError, match=r"refit_lag \(5\) must be at most refit_every \(4\)"):
        SelectionConfig(refit_every=4, refit_lag=5)
    assert SelectionConfig(refit_every=None, refit_lag=5).refit_lag == 5


# ---------------------------------------------------------------------------- errors
def test_bad_inputs_are_refused_with_the_value_named():
    sel = LearnabilitySelector(4, SelectionConfig(**QUIET))
    with pytest.raises(NonFiniteError):
        sel.update_rewards([0], [[1.0, float("nan")]])
    with pytest.raises(NonFiniteError):
        sel.update([0], [float("inf")], [4])
    with pytest.raises(RowMismatchError, match="unknown row id"):
        sel.update([4], [1], [4])
    with pytest.raises(RowMismatchError, match="unknown row id"):
        sel.update([-1], [1], [4])
    with pytest.raises(InvalidParameterError, match="2 values for 1 row ids"):
        sel.update([0], [1, 2], [4])
    with pytest.raises(InvalidParameterError, match="exceeds"):
        sel.update([0], [5], [4])
    with pytest.raises(InvalidParameterError, match="n_trials must be > 0"):
        sel.update([0], [0], [0])
    with pytest.raises(InvalidParameterError, match="integer row ids"):
        sel.update([0.5], [0], [1])
    with pytest.raises(InvalidParameterError, match="outside"):
        sel.update_rewards([0], [[2.0, 0.0]])
    with pytest.raises(InvalidParameterError, match="one group per row"):
        sel.update_rewards([0, 1], [[1.0, 0.0]])
    with pytest.raises(InvalidParameterError, match="more prompts than the pool"):
        sel.select(5)
    with pytest.raises(ParameterTypeError):
        LearnabilitySelector(4, config={"seed": 0})  # the wrong type on purpose
    with pytest.raises(InvalidParameterError, match="residual_var"):
        LearnabilitySelector(2, prior_mean=[0.1, 0.2])
    with pytest.raises(RowMismatchError):
        LearnabilitySelector(3, prior_mean=[0.1, 0.2], residual_var=0.01)
    with pytest.raises(InvalidParameterError, match="cluster_ids"):
        LearnabilitySelector(3, cluster_ids=[0, -1, 2])
    with pytest.raises(RowMismatchError, match="pool of 4"):
        LearnabilitySelector(5).load_state_dict(sel.state_dict())
    assert sel.posterior_params()[0].tolist() == [1.0] * 4  # nothing was applied by the refused calls


def test_cluster_capped_batch_matches_a_slow_greedy_reference():
    # 2,000 prompts: the top 256 scores all come from cluster 0, so the cap must look further down the ranking
    n_rows, n = 2000, 6
    clusters = np.where(np.arange(n_rows) < 1000, 0, 1 + np.arange(n_rows) % 3)
    config = SelectionConfig(**QUIET, seed=5, max_cluster_share=0.5)
    sel = LearnabilitySelector(n_rows, config, cluster_ids=clusters)
    sel.update(np.arange(1000), [20] * 1000, [40] * 1000)  # cluster 0 near p = 0.5: the best scores
    sel.update(np.arange(1000, n_rows), [0] * 1000, [30] * 1000)  # the rest nearly hopeless
    for _ in range(3):
        a, b = sel.posterior_params()
        score = (lambda th: th * (1 - th))(np.random.default_rng([5, sel.step]).beta(a, b))
        cap = math.ceil(0.5 * n)
        taken: list[int] = []
        per: dict[int, int] = {}
        for i in np.argsort(-score, kind="stable"):  # the obvious greedy walk
            if per.get(int(clusters[i]), 0) < cap:
                taken.append(int(i))
                per[int(clusters[i])] = per.get(int(clusters[i]), 0) + 1
            if len(taken) == n:
                break
        assert sel.select(n).tolist() == taken
