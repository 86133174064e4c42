"""``PreferenceAudit``: what it fits, each number checked against an independent numpy/scipy computation, and
what it refuses (moved here from tests/reliability/test_audit.py and tests/audit/test_spans.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from datasets import Dataset
from scipy import stats
from sklearn.exceptions import NotFittedError

from hf_saerl import SAEEncoder
from hf_saerl.audit import GLOBAL_REGION, PreferenceAudit, add_concept_margin
from hf_saerl.core.validation import is_fitted
from hf_saerl.errors import (
    InvalidParameterError,
    MissingColumnError,
    NonFiniteError,
    ParameterTypeError,
    RowMismatchError,
    WidthMismatchError,
)

N, D_SAE = 60, 12
LABELS = np.array(["alg", "geo", "num"])[np.arange(N) % 3]


@pytest.fixture(scope="module")
def pooled():
    """Max and firing-frequency pooled features of N pairs; latents 0-1 co-fire (chosen-leaning in "geo")."""
    rng = np.random.default_rng(0)
    c_fire = rng.random((N, D_SAE)) < 0.4
    r_fire = rng.random((N, D_SAE)) < 0.4
    geo = LABELS == "geo"
    c_fire[:, 1] = c_fire[:, 0]
    r_fire[:, 1] = r_fire[:, 0]
    c_fire[geo, :2], r_fire[geo, :2] = True, False
    c_max = c_fire * rng.uniform(0.05, 2.0, (N, D_SAE))  # some max activations under the threshold below
    r_max = r_fire * rng.uniform(0.05, 2.0, (N, D_SAE))
    c_freq = c_fire * rng.uniform(0.05, 1.0, (N, D_SAE))
    r_freq = r_fire * rng.uniform(0.05, 1.0, (N, D_SAE))
    c_max[geo, :2], c_freq[geo, :2] = 1.5, 0.5  # the planted firings pass both thresholds
    p_max = (rng.random((N, D_SAE)) < 0.3) * rng.uniform(0.05, 2.0, (N, D_SAE))
    return c_max, c_freq, r_max, r_freq, p_max


@pytest.fixture(scope="module")
def fitted(pooled):
    c_max, c_freq, r_max, r_freq, p_max = pooled
    audit = PreferenceAudit(
        activation_threshold=0.3, frequency_threshold=0.1, min_support=2, similarity=0.5, progress=False
    )
    audit.fit_features(
        *(sp.csr_matrix(m) for m in (c_max, c_freq, r_max, r_freq)),
        prompt_max=sp.csr_matrix(p_max),
        region_labels=list(LABELS),
    )
    return audit


def hand_shares(audit, fires):
    """Dense numpy: the share of each concept's latents among the firing ones."""
    M = audit.concepts_.membership_.toarray()
    return fires.astype(float) @ M / M.sum(axis=0)


# ---------------------------------------------------------------------------------- what it fits
def test_firing_rule_and_disparity_equal_numpy(fitted, pooled):
    c_max, c_freq, r_max, r_freq, _ = pooled
    c_fires = (c_max > 0.3) & (c_freq > 0.1)
    r_fires = (r_max > 0.3) & (r_freq > 0.1)
    assert c_fires.sum() < (c_max > 0).sum()  # the thresholds removed some firings
    np.testing.assert_array_equal(fitted.chosen_fires_.toarray(), c_fires)
    np.testing.assert_array_equal(fitted.rejected_fires_.toarray(), r_fires)
    D = hand_shares(fitted, c_fires) - hand_shares(fitted, r_fires)
    np.testing.assert_allclose(fitted.disparity_.toarray(), D, atol=1e-12)
    k = fitted.concept_of(0)
    assert fitted.concept_of(1) == k and fitted.concepts_.concepts_[k].tolist() == [0, 1]
    np.testing.assert_allclose(fitted.disparity(k), D[:, k])
    np.testing.assert_allclose(fitted.disparity([k, 0]), D[:, [k, 0]])
    np.testing.assert_allclose(fitted.concept_scores(k, "chosen"), hand_shares(fitted, c_fires)[:, k])
    np.testing.assert_allclose(fitted.concept_scores([k], "rejected"), hand_shares(fitted, r_fires)[:, [k]])
    # support: responses (chosen and rejected rows) each latent fires on; min_support=2 keeps the rest out
    support = c_fires.sum(0) + r_fires.sum(0)
    np.testing.assert_array_equal(fitted.concepts_.support_, support)
    in_concepts = np.concatenate(fitted.concepts_.concepts_)
    assert set(in_concepts.tolist()) == set(np.flatnonzero(support >= 2).tolist())
    for j in np.flatnonzero(support < 2):
        assert fitted.concept_of(int(j)) == -1


def test_region_statistics_equal_scipy_welch_and_cohens_d(fitted, pooled):
    """One concept in one region against the rest: delta, Welch z and Cohen's d by hand (scipy / numpy)."""
    D = fitted.disparity_.toarray()
    assert fitted.region_names_ == ["alg", "geo", "num"]
    np.testing.assert_array_equal(fitted.regions_, np.searchsorted(["alg", "geo", "num"], LABELS))
    stats_ = fitted.statistics_
    for region, name in enumerate(fitted.region_names_):
        inside = name == LABELS
        for k in range(fitted.concepts_.n_concepts_):
            row = stats_[(stats_["region"] == region) & (stats_["concept"] == k)].iloc[0]
            a, b = D[inside, k], D[~inside, k]
            assert row["region_name"] == name
            assert row["delta"] == pytest.approx(a.mean() - b.mean(), abs=1e-12)
            assert (row["mean_in"], row["mean_out"]) == pytest.approx((a.mean(), b.mean()), abs=1e-12)
            assert (row["n_in"], row["n_out"]) == (20, 40)
            if a.std() + b.std() > 0:
                welch = stats.ttest_ind(a, b, equal_var=False).statistic
                pooled_sd = np.sqrt(
                    ((len(a) - 1) * a.var(ddof=1) + (len(b) - 1) * b.var(ddof=1)) / (len(a) + len(b) - 2)
                )
                assert row["welch_z"] == pytest.approx(welch, rel=1e-9)
                assert row["cohens_d"] == pytest.approx((a.mean() - b.mean()) / pooled_sd, rel=1e-9)
            # split halves: even and odd row positions of the whole data
            even, odd = np.arange(N) % 2 == 0, np.arange(N) % 2 == 1
            assert row["delta_even"] == pytest.approx(
                D[even & inside, k].mean() - D[even & ~inside, k].mean(), abs=1e-12
            )
            assert row["delta_odd"] == pytest.approx(D[odd & inside, k].mean() - D[odd & ~inside, k].mean(), abs=1e-12)
    # the planted concept: chosen-leaning in "geo" (latents 0-1 fire on every chosen and no rejected geo response)
    k = fitted.concept_of(0)
    geo = stats_[(stats_["region_name"] == "geo") & (stats_["concept"] == k)].iloc[0]
    assert geo["leaning"] == "chosen" and geo["mean_in"] == pytest.approx(1.0) and geo["flagged"]


def test_global_statistics_equal_a_one_sample_t(fitted):
    D = fitted.disparity_.toarray()
    g = fitted.statistics_[fitted.statistics_["region"] == GLOBAL_REGION].set_index("concept")
    assert set(g["region_name"]) == {"all"}
    for k in range(fitted.concepts_.n_concepts_):
        x = D[:, k]
        assert g.loc[k, "delta"] == pytest.approx(x.mean(), abs=1e-12)
        if x.std() > 0:
            assert g.loc[k, "welch_z"] == pytest.approx(stats.ttest_1samp(x, 0.0).statistic, rel=1e-9)
            assert g.loc[k, "cohens_d"] == pytest.approx(x.mean() / x.std(ddof=1), rel=1e-9)


def test_flags_ranks_and_queries_follow_their_rules(fitted):
    t = fitted.statistics_
    sign = np.sign(t["delta"])
    consistent = (sign != 0) & (np.sign(t["delta_even"]) == sign) & (np.sign(t["delta_odd"]) == sign)
    np.testing.assert_array_equal(t["consistent"], consistent)
    np.testing.assert_allclose(
        t["rank_score"], np.where(consistent, np.minimum(t["delta_even"].abs(), t["delta_odd"].abs()), 0.0)
    )
    rule = consistent & (t["welch_z"].abs() >= 3) & (t["z_even"].abs() >= 2) & (t["z_odd"].abs() >= 2)
    np.testing.assert_array_equal(t["flagged"], rule)
    assert t["rank_score"].is_monotonic_decreasing
    # the queries are filters of the table, in its order
    pd.testing.assert_frame_equal(fitted.flagged(), t[t["flagged"]])
    pd.testing.assert_frame_equal(fitted.flagged(leaning="chosen"), t[t["flagged"] & (t["leaning"] == "chosen")])
    pd.testing.assert_frame_equal(fitted.flagged(region=1, top=1), t[t["flagged"] & (t["region"] == 1)].head(1))
    with pytest.raises(InvalidParameterError):
        fitted.flagged(leaning="both")


def test_prompt_share_is_the_mean_share_firing_on_the_prompt(fitted, pooled):
    p_max = pooled[4]
    expected = hand_shares(fitted, p_max > 0.3).mean(axis=0)  # prompts: the activation threshold only
    t = fitted.statistics_
    np.testing.assert_allclose(t["prompt_share"], expected[t["concept"].to_numpy()], atol=1e-12)
    assert t["n_latents"].tolist() == [len(fitted.concepts_.concepts_[k]) for k in t["concept"]]


def test_fit_encodes_the_spans_and_equals_fit_features(model, sae, tokenizer):
    """fit = encode_response_spans + fit_features on the same matrices; it also records what it read."""
    from hf_saerl.audit.spans import encode_prompts, encode_response_spans

    prompts, chosen, rejected = (
        ["2+2?", "3+3?", "Name a prime."] * 4,
        ["4, surely.", "6, surely.", "7."] * 4,
        ["5", "7", "9 is prime"] * 4,
    )
    ds = Dataset.from_dict({"prompt": prompts, "chosen": chosen, "rejected": rejected})
    encoder = SAEEncoder(model, sae, tokenizer=tokenizer, max_length=64)
    audit = PreferenceAudit(encoder, n_regions=1, min_support=1, progress=False).fit(ds)
    c = encode_response_spans(encoder, prompts, chosen, poolings=("max", "freq"))
    r = encode_response_spans(encoder, prompts, rejected, poolings=("max", "freq"))
    p = encode_prompts(encoder, prompts).pooled["max"]
    ref = PreferenceAudit(n_regions=1, min_support=1, progress=False).fit_features(
        c.pooled["max"], c.pooled["freq"], r.pooled["max"], r.pooled["freq"], prompt_max=p
    )
    np.testing.assert_allclose(audit.disparity_.toarray(), ref.disparity_.toarray())
    pd.testing.assert_frame_equal(audit.statistics_, ref.statistics_)
    assert audit.n_pairs_ == 12 and audit.d_sae_ == encoder.d_sae and audit.n_truncated_ == 0
    np.testing.assert_array_equal(audit.n_tokens_["chosen"], c.n_tokens)
    assert audit.texts_ == (chosen, rejected) and audit.encoder_config_["d_sae"] == encoder.d_sae
    assert len(audit.pair_digests_) == 12 and ref.pair_digests_ is None


def test_audit_on_champ_pairs(model, sae, tokenizer):
    from hf_saerl.demo.champ import champ_preference_pairs

    encoder = SAEEncoder(model, sae, tokenizer=tokenizer, max_length=64)
    pairs = champ_preference_pairs(seed=0).select(range(6))
    pairs = pairs.map(
        lambda r: {"prompt": r["prompt"][:120], "chosen": r["chosen"][:80], "rejected": r["rejected"][:80]}
    )
    audit = PreferenceAudit(encoder, n_regions=2, min_support=2, progress=False).fit(pairs)
    assert audit.chosen_max_.shape == (6, encoder.d_sae) and audit.prompt_max_ is not None
    assert audit.statistics_["region"].isin([-1, 0, 1]).all() and len(audit.statistics_) > 0
    # the disparity of every concept is exactly chosen share minus rejected share
    k = int(audit.statistics_.iloc[0]["concept"])
    np.testing.assert_allclose(
        audit.disparity(k), audit.concept_scores(k, "chosen") - audit.concept_scores(k, "rejected")
    )
    report = audit.report(top=3, labeler=lambda latents, snippets: f"L{latents[0]}")
    md = report.to_markdown()
    assert md.startswith("# Preference-data audit") and "6 pairs" in md
    assert report.to_dataset().num_rows == len(report.to_pandas())


# ---------------------------------------------------------------------------------- what it refuses
@pytest.fixture(scope="module")
def features():
    rng = np.random.default_rng(0)
    c = (rng.random((40, 10)) < 0.4).astype(float)
    r = (rng.random((40, 10)) < 0.4).astype(float)
    c[:, :2] = 1.0
    return sp.csr_matrix(c), sp.csr_matrix(r)


def concept(audit):
    return int(audit.statistics_.iloc[0]["concept"])


@pytest.mark.parametrize(
    "param, value, error, match",
    [
        ("z_threshold", float("nan"), NonFiniteError, "z_threshold must be a finite number, got nan"),
        ("activation_threshold", float("inf"), NonFiniteError, "activation_threshold must be a finite number"),
        ("batch_size", 2.0, InvalidParameterError, r"batch_size must be an integer, got 2.0"),
        ("top_k", True, InvalidParameterError, "top_k must be an integer, got True"),
    ],
)
def test_audit_parameters_are_checked_before_fitting(features, param, value, error, match):
    c, r = features
    audit = PreferenceAudit(n_regions=1, min_support=1, progress=False).set_params(**{param: value})
    with pytest.raises(error, match=match):
        audit.fit_features(c, c, r, r)
    assert not is_fitted(audit)  # nothing half-fitted


def test_unknown_parameters_and_bad_matrices_are_refused(features):
    c, r = features
    with pytest.raises(InvalidParameterError, match=r"Unknown parameter\(s\) \['n_region'\]"):
        PreferenceAudit().set_params(n_region=2)
    bad = c.toarray()
    bad[3, 2] = np.nan
    audit = PreferenceAudit(n_regions=1, min_support=1, progress=False)
    with pytest.raises(NonFiniteError, match="chosen_max holds NaN"):
        audit.fit_features(bad, c, r, r)
    with pytest.raises(InvalidParameterError, match="rejected_max has 39 rows, expected 40"):
        audit.fit_features(c, c, r[:39], r)
    with pytest.raises(WidthMismatchError, match="width 9, expected d_sae=10"):
        audit.fit_features(c, c, r, r[:, :9])
    with pytest.raises(InvalidParameterError, match="No latent fires on any response"):
        audit.fit_features(c * 0, c * 0, r * 0, r * 0)
    with pytest.raises(InvalidParameterError, match="min_support=100"):
        audit.set_params(min_support=100).fit_features(c, c, r, r)
    assert not is_fitted(audit)


def test_fit_needs_an_encoder_and_the_columns(model, sae, tokenizer):
    ds = Dataset.from_dict({"question": ["a"], "chosen": ["b"], "rejected": ["c"]})
    with pytest.raises(InvalidParameterError, match="needs an encoder"):
        PreferenceAudit().fit(ds)
    encoder = SAEEncoder(model, sae, tokenizer=tokenizer, max_length=64)
    with pytest.raises(MissingColumnError, match=r"Missing column\(s\) \['prompt'\].*prompt_column="):
        PreferenceAudit(encoder).fit(ds)


def test_region_ids_with_fractions_are_refused(features):
    c, r = features
    regions = np.zeros(40)
    regions[3] = 0.5
    with pytest.raises(InvalidParameterError, match=r"regions must be integer ids, got 0.5 at pair 3"):
        PreferenceAudit(min_support=1, progress=False).fit_features(c, c, r, r, regions=regions)
    with pytest.raises(ParameterTypeError, match="regions must be integer ids, got dtype"):
        PreferenceAudit(min_support=1, progress=False).fit_features(c, c, r, r, regions=["a"] * 40)


def test_texts_of_other_pairs_are_refused(features):
    c, r = features
    with pytest.raises(InvalidParameterError, match=r"one text per pair \(40\) each; got lengths \[40, 39\]"):
        PreferenceAudit(n_regions=1, min_support=1, progress=False).fit_features(
            c, c, r, r, texts=(["c"] * 40, ["r"] * 39)
        )


def test_an_audit_fitted_from_features_with_pairs_refuses_a_shuffled_copy(features):
    c, r = features
    data = Dataset.from_dict(
        {
            "prompt": [f"p{k}" for k in range(40)],
            "chosen": [f"c{k}" for k in range(40)],
            "rejected": [f"r{k}" for k in range(40)],
        }
    )
    audit = PreferenceAudit(n_regions=1, min_support=1, progress=False).fit_features(c, c, r, r, pairs=data)
    with pytest.raises(RowMismatchError, match=r"rows differ from the audited pairs"):
        add_concept_margin(data.shuffle(seed=0), audit, [concept(audit)])
    assert len(add_concept_margin(data, audit, [concept(audit)])) == 40
    with pytest.raises(
        RowMismatchError,
        match=r"pairs has \[39, 39, 39\] prompts/chosen/rejected but the features "
        r"have 40 rows",
    ):
        PreferenceAudit(n_regions=1, min_support=1, progress=False).fit_features(
            c, c, r, r, pairs=data.select(range(39))
        )


@pytest.mark.parametrize(
    "method, call",
    [
        ("report", lambda audit: audit.report()),
        ("flagged", lambda audit: audit.flagged()),
        ("concept_of", lambda audit: audit.concept_of(0)),
        ("disparity", lambda audit: audit.disparity(0)),
        ("concept_scores", lambda audit: audit.concept_scores(0)),
    ],
)
def test_unfitted_audit_names_the_method_and_what_to_call(method, call):
    with pytest.raises(
        NotFittedError,
        match=rf"This PreferenceAudit is not fitted yet, so {method} cannot run. Call "
        r"fit\(dataset\) or fit_features\(...\) first",
    ):
        call(PreferenceAudit())


def test_queries_refuse_ids_out_of_range(fitted):
    with pytest.raises(InvalidParameterError, match=r"latent must be an SAE latent id in \[0, 12\)"):
        fitted.concept_of(12)
    with pytest.raises(InvalidParameterError, match="Concept ids must be in"):
        fitted.disparity(fitted.concepts_.n_concepts_)
    with pytest.raises(InvalidParameterError):
        fitted.concept_scores(0, side="both")
