"""The audit's statistics layer on synthetic sparse firing matrices with planted concepts."""

import numpy as np
import pytest
import scipy.sparse as sp
from scipy import stats as scistats
from sklearn.exceptions import NotFittedError

from hf_saerl.audit import GLOBAL_REGION, LatentConcepts, PreferenceAudit, concept_statistics
from hf_saerl.errors import InvalidParameterError, NonFiniteError

N, D_SAE = 400, 64
X_LAT, W_LAT, Y_LAT, NOISE_LAT, REG_A, REG_B = [20, 21, 22], [25, 26], [30, 31], [40, 41], range(0, 6), range(6, 12)


def planted(seed=0):
    """Two topics (regions); X: chosen-leaning in topic A only (strong); W: chosen-leaning everywhere (weak);
    Y: rejected-leaning everywhere; NOISE: strong chosen effect on even rows only; background latents 50-63."""
    rng = np.random.default_rng(seed)
    topic = rng.integers(0, 2, N)
    c, r = np.zeros((N, D_SAE)), np.zeros((N, D_SAE))
    for i in range(N):
        topic_lat = list(REG_A if topic[i] == 0 else REG_B)
        c[i, topic_lat] = r[i, topic_lat] = 1.0
        if topic[i] == 0:
            c[i, X_LAT] = rng.random() < 0.6
            r[i, X_LAT] = rng.random() < 0.05
        c[i, W_LAT] = rng.random() < 0.45
        r[i, W_LAT] = rng.random() < 0.25
        c[i, Y_LAT] = rng.random() < 0.1
        r[i, Y_LAT] = rng.random() < 0.6
        if i % 2 == 0:
            c[i, NOISE_LAT] = rng.random() < 0.9
        else:  # odd rows: the noise concept fires identically on both sides
            c[i, NOISE_LAT] = r[i, NOISE_LAT] = rng.random() < 0.3
        c[i, 50:] = rng.random(14) < 0.3
        r[i, 50:] = rng.random(14) < 0.3
    c, r = sp.csr_matrix(c * 2.0), sp.csr_matrix(r * 2.0)
    return c, r, topic


@pytest.fixture(scope="module")
def audit():
    c, r, topic = planted()
    freq_c, freq_r = c * 0.25, r * 0.25  # firing frequency: same support as max
    return PreferenceAudit(n_regions=2, random_state=0).fit_features(c, freq_c, r, freq_r), topic


def test_concepts_group_cofiring_latents(audit):
    audit, _ = audit
    for planted_group in (X_LAT, W_LAT, Y_LAT, NOISE_LAT, list(REG_A), list(REG_B)):
        ids = {audit.concept_of(j) for j in planted_group}
        assert len(ids) == 1, planted_group
        assert audit.concepts_.concepts_[ids.pop()].tolist() == list(planted_group)
    background = {audit.concept_of(j) for j in range(50, 64)}
    assert len(background) == 14  # independent latents stay single-latent concepts


def test_regions_follow_symmetric_activity(audit):
    audit, topic = audit
    agree = (audit.regions_ == topic).mean()
    assert agree in (0.0, 1.0)


def test_planted_concepts_recovered_with_sign_and_rank(audit):
    audit, topic = audit
    x, w, y = audit.concept_of(X_LAT[0]), audit.concept_of(W_LAT[0]), audit.concept_of(Y_LAT[0])
    region_a = int(audit.regions_[np.flatnonzero(topic == 0)[0]])
    chosen = audit.flagged(leaning="chosen")
    top = chosen.iloc[0]
    assert (top["concept"], top["region"]) == (x, region_a)
    g = audit.statistics_[audit.statistics_["region"] == GLOBAL_REGION].set_index("concept")
    assert g.loc[w, "flagged"] and g.loc[w, "leaning"] == "chosen"
    assert g.loc[y, "flagged"] and g.loc[y, "leaning"] == "rejected"
    assert audit.flagged(leaning="rejected", region=GLOBAL_REGION).iloc[0]["concept"] == y
    # with two regions, "region B vs the rest" mirrors region A: X is the top rejected-leaning cell there
    mirror = audit.flagged(leaning="rejected").iloc[0]
    assert (mirror["concept"], mirror["region"]) == (x, 1 - region_a)
    # rank: the strong planted X ranks above the weak W among chosen-leaning concepts
    order = chosen["concept"].tolist()
    assert order.index(x) < order.index(w)
    background = {audit.concept_of(j) for j in range(50, 64)}
    assert not set(audit.flagged()["concept"]) & background


def test_split_half_rejects_planted_noise_concept(audit):
    audit, _ = audit
    noise = audit.concept_of(NOISE_LAT[0])
    rows = audit.statistics_[(audit.statistics_["concept"] == noise) & (audit.statistics_["region"] == GLOBAL_REGION)]
    row = rows.iloc[0]
    assert abs(row["welch_z"]) > 10  # pooled over all rows it looks highly significant ...
    assert row["delta_odd"] == 0 and not row["consistent"] and not row["flagged"]  # ... but one half has nothing
    assert row["rank_score"] == 0
    assert noise not in set(audit.flagged()["concept"])


def test_statistics_match_scipy_and_hand_computation():
    rng = np.random.default_rng(1)
    D = rng.normal(0.1, 1.0, (101, 3)) * (rng.random((101, 3)) < 0.7)
    regions = rng.integers(0, 3, 101)
    t = concept_statistics(sp.csr_matrix(D), regions, z_threshold=1.0).set_index(["region", "concept"])
    for g in range(3):
        for k in range(3):
            a, b = D[regions == g, k], D[regions != g, k]
            row = t.loc[(g, k)]
            assert row["delta"] == pytest.approx(a.mean() - b.mean())
            assert row["welch_z"] == pytest.approx(scistats.ttest_ind(a, b, equal_var=False).statistic)
            pooled = np.sqrt(((len(a) - 1) * a.var(ddof=1) + (len(b) - 1) * b.var(ddof=1)) / (len(a) + len(b) - 2))
            assert row["cohens_d"] == pytest.approx((a.mean() - b.mean()) / pooled)
            even = np.arange(101) % 2 == 0
            assert row["delta_even"] == pytest.approx(
                D[even & (regions == g), k].mean() - D[even & (regions != g), k].mean()
            )
            assert row["delta_odd"] == pytest.approx(
                D[~even & (regions == g), k].mean() - D[~even & (regions != g), k].mean()
            )
            if row["consistent"]:
                assert row["rank_score"] == pytest.approx(min(abs(row["delta_even"]), abs(row["delta_odd"])))
        glob = t.loc[(GLOBAL_REGION, g)]
        assert glob["welch_z"] == pytest.approx(scistats.ttest_1samp(D[:, g], 0.0).statistic)
    assert list(t["rank_score"]) == sorted(t["rank_score"], reverse=True)


def test_statistics_errors():
    with pytest.raises(NonFiniteError, match="NaN"):
        concept_statistics(np.array([[np.nan], [1.0]]), np.array([0, 0]))
    with pytest.raises(InvalidParameterError, match="one id per pair"):
        concept_statistics(np.ones((3, 1)), np.array([0, 1]))
    with pytest.raises(InvalidParameterError, match="non-negative integer ids"):
        concept_statistics(np.ones((2, 1)), np.array([0, -1]))
    with pytest.raises(NonFiniteError, match="NaN"):
        PreferenceAudit(n_regions=1).fit_features(sp.csr_matrix([[np.nan]]), [[1.0]], [[1.0]], [[1.0]])


def test_latent_concepts_jaccard_cut():
    F = np.zeros((10, 3))
    F[:6, 0] = 1
    F[:5, 1] = 1  # Jaccard(0, 1) = 5/6
    F[4:, 2] = 1  # Jaccard(0, 2) = 2/10
    assert [g.tolist() for g in LatentConcepts(min_support=1, similarity=0.8).fit(F).concepts_] == [[0, 1], [2]]
    assert [g.tolist() for g in LatentConcepts(min_support=1, similarity=0.9).fit(F).concepts_] == [[0], [1], [2]]
    assert LatentConcepts(min_support=6).fit(F).concepts_[0].tolist() == [0]  # latents 1 (5) and 2 (6): 2 kept
    with pytest.raises(InvalidParameterError, match=r"similarity must be in \(0, 1\]; got 0"):
        LatentConcepts(similarity=0).fit(F)
    with pytest.raises(NotFittedError, match="This LatentConcepts is not fitted yet, so shares cannot run"):
        LatentConcepts().shares(F)
