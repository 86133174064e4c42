"""The validation harness: measured shifts, R² and Pearson equal hand computations; a planted shift is recovered."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from datasets import Dataset
from scipy import stats

from hf_saerl import SAEEncoder
from hf_saerl.audit import PreferenceAudit
from hf_saerl.audit.concepts import LatentConcepts
from hf_saerl.audit.shift import (
    ShiftValidation,
    audit_predictions,
    compare_regions,
    compare_shift,
    fit_metrics,
    pair_disparity,
    region_predictions,
    rollout_concept_scores,
    sample_rollouts,
    side_effects,
    validate_shift,
)
from hf_saerl.audit.spans import encode_response_spans
from hf_saerl.errors import InvalidParameterError, RowMismatchError, UsageError, WidthMismatchError
from hf_saerl.testing import tiny_llama, tiny_sae, tiny_tokenizer


# ------------------------------------------------------------------ pure metrics
def test_fit_metrics_equal_numpy_scipy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=40)
    y = 0.3 * x + rng.normal(scale=0.2, size=40)
    m = fit_metrics(x, y)
    r, p = stats.pearsonr(x, y)
    slope, intercept = np.polyfit(x, y, 1)
    ss_res = np.sum((y - (slope * x + intercept)) ** 2)
    ss_tot = np.sum((y - y.mean()) ** 2)
    assert m["pearson"] == pytest.approx(r) and m["pearson_p"] == pytest.approx(p)
    assert m["r2"] == pytest.approx(1 - ss_res / ss_tot)  # least-squares R² = r²
    assert m["r2"] == pytest.approx(r**2)
    assert m["r2_identity"] == pytest.approx(1 - np.sum((y - x) ** 2) / ss_tot)
    assert m["spearman"] == pytest.approx(stats.spearmanr(x, y)[0])
    assert (m["slope"], m["intercept"]) == pytest.approx((slope, intercept))
    assert m["sign_agreement"] == pytest.approx(np.mean(np.sign(y) == np.sign(x)))
    assert m["n"] == 40


def test_fit_metrics_degenerate_inputs_are_nan_not_errors():
    m = fit_metrics([0.1, 0.2], [0.3, 0.1])
    assert np.isnan(m["pearson"]) and np.isnan(m["r2"]) and m["n"] == 2
    m = fit_metrics([0.1, 0.2, 0.3], [0.5, 0.5, 0.5])
    assert np.isnan(m["pearson"]) and m["sign_agreement"] == 1.0
    m = fit_metrics([], [])
    assert m["n"] == 0 and np.isnan(m["sign_agreement"])
    m = fit_metrics([1.0, -1.0, 0.0], [1.0, 1.0, 5.0], sign_of=[1, -1, 0])
    assert m["sign_agreement"] == 0.5 and m["n_signed"] == 2
    with pytest.raises(InvalidParameterError, match="one of each"):
        fit_metrics([1.0, 2.0], [1.0])


def test_compare_shift_recovers_a_planted_shift_exactly():
    rng = np.random.default_rng(1)
    K, n = 30, 50
    predicted = rng.normal(scale=0.2, size=K)
    reference = rng.random((n, K))
    planted = 0.25 * predicted + 0.01  # the synthetic trained model moves every concept by a known amount
    trained = reference + planted
    flagged = np.zeros(K, bool)
    flagged[[2, 5, 7, 11]] = True
    table, metrics = compare_shift(predicted, reference, trained, flagged=flagged, predicted_z=predicted * 10, top=5)
    np.testing.assert_allclose(table["measured_shift"], planted, atol=1e-12)
    np.testing.assert_allclose(table["reference_mean"], reference.mean(axis=0))
    assert metrics["all"]["r2"] == pytest.approx(1.0)
    assert metrics["all"]["slope"] == pytest.approx(0.25) and metrics["all"]["intercept"] == pytest.approx(0.01)
    assert metrics["flagged"]["n"] == 4 and metrics["flagged"]["r2"] == pytest.approx(1.0)
    top = np.argsort(-np.abs(predicted))[:5]
    assert sorted(metrics["top"]["concepts"]) == sorted(top.tolist())
    # paired: the per-row difference is constant, so its standard error is 0 and z is infinite
    assert np.all(table["shift_se"] < 1e-12)


def test_compare_shift_r2_and_z_match_a_hand_computation_with_noise():
    rng = np.random.default_rng(2)
    K, n = 12, 40
    predicted = rng.normal(size=K)
    reference = rng.random((n, K))
    trained = reference + 0.1 * predicted + rng.normal(scale=0.3, size=(n, K))
    table, metrics = compare_shift(predicted, reference, trained)
    shift = trained.mean(0) - reference.mean(0)
    diff = trained - reference
    np.testing.assert_allclose(table["shift_z"], shift / (diff.std(0, ddof=1) / np.sqrt(n)))
    assert metrics["all"]["r2"] == pytest.approx(stats.pearsonr(predicted, shift)[0] ** 2)
    # unpaired (different rollout counts): Welch's standard error
    table, _ = compare_shift(predicted, reference, trained[:30])
    se = np.sqrt(reference.var(0, ddof=1) / n + trained[:30].var(0, ddof=1) / 30)
    np.testing.assert_allclose(table["shift_se"], se)
    with pytest.raises(RowMismatchError):
        compare_shift(predicted, reference, trained[:30], paired=True)
    with pytest.raises(InvalidParameterError, match="one column per predicted concept"):
        compare_shift(predicted, reference[:, :3], trained)


def test_side_effects_by_hand():
    out = side_effects([["1. a\n2. b", "$x^2$ is"], ["", "Step 1 go"]])
    assert out == {"n": 4, "words": (4 + 2 + 0 + 3) / 4, "numbered_steps": 0.5, "latex_rate": 0.25, "empty_rate": 0.25}


# ------------------------------------------------------------------ the region-conditioned view
def _regional_audit():
    """Two latents (two concepts, min_support=1); latent 0 is chosen-leaning in region "geo" only."""
    rng = np.random.default_rng(0)
    n = 60
    labels = np.array(["alg", "geo", "num"])[np.arange(n) % 3]
    chosen = rng.random((n, 2)) < 0.5
    rejected = rng.random((n, 2)) < 0.5
    chosen[labels == "geo", 0], rejected[labels == "geo", 0] = True, False
    c, r = sp.csr_matrix(chosen.astype(float)), sp.csr_matrix(rejected.astype(float))
    audit = PreferenceAudit(min_support=1, similarity=0.99).fit_features(c, c, r, r, region_labels=labels)
    return audit, labels, chosen.astype(float) - rejected.astype(float)


def test_region_predictions_are_each_regions_own_mean_disparity():
    audit, labels, D = _regional_audit()
    M = audit.concepts_.membership_.toarray()
    shares = D @ M / M.sum(axis=0)  # per pair, per concept: chosen share - rejected share
    table = region_predictions(audit)
    assert sorted(set(table["region_name"])) == ["alg", "geo", "num"]
    for name in ("alg", "geo", "num"):
        rows = table[table["region_name"] == name].sort_values("concept")
        np.testing.assert_allclose(rows["predicted_delta"], shares[labels == name].mean(axis=0), atol=1e-12)
        rest = shares[labels != name].mean(axis=0)
        np.testing.assert_allclose(rows["contrast_delta"], shares[labels == name].mean(axis=0) - rest, atol=1e-12)
        assert (rows["n_pairs"] == 20).all()
    geo = table[(table["region_name"] == "geo")].set_index("concept")
    k = int(np.argmax(M[0]))  # the concept holding latent 0
    assert geo.loc[k, "predicted_delta"] == pytest.approx(1.0) and geo.loc[k, "flagged"]


def test_compare_regions_recovers_planted_regional_shifts():
    pred = pd.DataFrame(
        {
            "region_name": ["a"] * 3 + ["b"] * 3 + ["c"] * 3,
            "concept": [0, 1, 2] * 3,
            "predicted_delta": [0.5, -0.2, 0.0, 0.1, 0.3, -0.4, 0.2, 0.2, 0.2],
            "flagged": [True, False, False, False, True, False, False, False, False],
        }
    )
    rng = np.random.default_rng(1)
    labels = np.array(["a", "b"] * 10)  # no rollout of region "c": it is left out
    ref = rng.random((20, 3))
    planted = {"a": np.array([0.5, -0.2, 0.0]), "b": np.array([0.1, 0.3, -0.4])}
    trained = ref + 0.3 * np.stack([planted[x] for x in labels]) + 0.01
    table, m = compare_regions(pred, ref, trained, labels, labels)
    assert list(table["region_name"]) == ["a"] * 3 + ["b"] * 3 and list(table["concept"]) == [0, 1, 2] * 2
    np.testing.assert_allclose(table["measured_shift"], 0.3 * np.r_[planted["a"], planted["b"]] + 0.01, atol=1e-12)
    hand = [(trained[labels == x] - ref[labels == x]).mean(0) for x in "ab"]  # independent: numpy means per region
    np.testing.assert_allclose(table["measured_shift"], np.concatenate(hand), atol=1e-12)
    assert m["regions"]["r2"] == pytest.approx(1.0) and m["regions"]["slope"] == pytest.approx(0.3)
    assert m["regions"]["intercept"] == pytest.approx(0.01) and m["regions_flagged"]["n"] == 2
    assert m["regions_flagged"]["sign_agreement"] == 1.0
    assert (table["n_reference"] == 10).all() and (table["n_trained"] == 10).all()
    with pytest.raises(RowMismatchError, match="one label per rollout"):
        compare_regions(pred, ref, trained, labels[:-1], labels)


# ------------------------------------------------------------------ end to end on tiny models
YES, NO = "yes yes yes!", "no."


@pytest.fixture(scope="module")
def tiny():
    enc = SAEEncoder(tiny_llama(), tiny_sae(), tokenizer=tiny_tokenizer())
    prompts = [f"{a}+{b}?" for a in range(4) for b in range(5)]
    pairs = Dataset.from_dict({"prompt": prompts, "chosen": [YES] * 20, "rejected": [NO] * 20})
    audit = PreferenceAudit(enc, n_regions=1, min_support=1, progress=False).fit(pairs)
    return enc, audit, prompts


def _hand_scores(enc, audit, prompts, texts):
    """Concept scores without the harness: pool, threshold, average the membership by hand (dense numpy)."""
    spans = encode_response_spans(enc, prompts, texts, poolings=("max", "freq"))
    mx, fq = spans.pooled["max"].toarray(), spans.pooled["freq"].toarray()
    fires = ((mx > audit.activation_threshold) & (fq > audit.frequency_threshold)).astype(float)
    M = audit.concepts_.membership_.toarray()
    return fires @ M / M.sum(axis=0)


class Echo:
    """A Generator that answers ``text_for(prompt_index)``; records the seeds it got."""

    def __init__(self, prompts, text_for):
        self.index = {p: i for i, p in enumerate(prompts)}
        self.text_for, self.seeds = text_for, None

    def generate(self, prompts, n, sampling, seeds=None):
        self.seeds = list(seeds)
        return [[self.text_for(self.index[p])] * n for p in prompts]


def test_planted_shift_recovered_end_to_end(tiny):
    enc, audit, prompts = tiny
    reference = Echo(prompts, lambda i: NO)
    trained = Echo(prompts, lambda i: YES if i % 4 == 0 else NO)  # a quarter of the prompts now say "yes"
    v = validate_shift(audit, reference, trained, prompts, n_samples=2, sampling={"max_new_tokens": 4})
    assert reference.seeds == trained.seeds  # the same per-prompt seeds: a paired comparison
    yes = _hand_scores(enc, audit, prompts, [YES] * 20)  # (prompt, concept): the prompt is context
    no = _hand_scores(enc, audit, prompts, [NO] * 20)
    switched = np.arange(20) % 4 == 0  # 5 of 20 prompts switched from the rejected to the chosen style
    expected = (yes - no)[switched].sum(axis=0) / 20
    assert np.abs(expected).max() > 0.01  # something was planted
    np.testing.assert_allclose(v.table.sort_values("concept")["measured_shift"], expected, atol=1e-9)
    predicted = (yes - no).mean(axis=0)  # every pair is (YES, NO): the audit's Δ is their mean disparity
    np.testing.assert_allclose(v.table["predicted_delta"], predicted, atol=1e-9)
    np.testing.assert_allclose(audit_predictions(audit)["predicted_delta"], predicted, atol=1e-9)
    m = v.metrics["all"]
    assert m["r2"] == pytest.approx(stats.pearsonr(predicted, expected)[0] ** 2)
    assert m["r2"] > 0.5 and m["sign_agreement"] == pytest.approx(
        np.mean(np.sign(expected[predicted != 0]) == np.sign(predicted[predicted != 0]))
    )
    assert v.info["trained"]["n_rollouts"] == 40 and v.info["trained"]["side_effects"]["n"] == 40


def test_rollout_scores_equal_hand_computation(tiny):
    enc, audit, prompts = tiny
    texts = ["yes no", "maybe 3", "!!", YES]
    scores, info = rollout_concept_scores(audit, prompts[:2], [texts[:2], texts[2:]])
    np.testing.assert_allclose(scores, _hand_scores(enc, audit, [prompts[0]] * 2 + [prompts[1]] * 2, texts))
    assert info["n_rollouts"] == 4 and info["n_empty"] == 0
    # empty completions score zero and are counted
    scores, info = rollout_concept_scores(audit, prompts[:1], [["", YES]])
    assert info["n_empty"] == 1 and not scores[0].any() and scores[1].any()


def test_validate_shift_from_given_rollouts_and_results(tiny, tmp_path):
    enc, audit, prompts = tiny
    ref = [[NO] for _ in prompts]
    tr = [[YES] if i < 10 else [NO] for i in range(len(prompts))]
    v = validate_shift(
        audit, None, None, Dataset.from_dict({"prompt": prompts}), reference_rollouts=ref, trained_rollouts=tr
    )
    assert isinstance(v, ShiftValidation) and v.settings["given_rollouts"] == ["reference", "trained"]
    yes = _hand_scores(enc, audit, prompts, [YES] * 20)
    no = _hand_scores(enc, audit, prompts, [NO] * 20)
    np.testing.assert_allclose(v.table["measured_shift"], (yes - no)[:10].sum(axis=0) / 20, atol=1e-9)
    ds = v.to_dataset()
    assert len(ds) == audit.concepts_.n_concepts_ and "measured_shift" in ds.column_names
    assert isinstance(v.to_pandas(), pd.DataFrame)
    v.save(tmp_path / "v.json")
    import json

    saved = json.loads((tmp_path / "v.json").read_text())
    assert saved["format_version"] == 1 and len(saved["table"]) == len(v.table)
    assert saved["rollouts"]["trained"][0] == [YES]
    ax = v.plot(tmp_path / "v.png")
    assert (tmp_path / "v.png").stat().st_size > 0 and ax.get_xlabel().startswith("predicted")
    assert v.concept(0)["concept"] == 0


def test_sample_rollouts_with_tiny_transformers_model_is_seeded(tiny):
    model, tok = tiny_llama(), tiny_tokenizer()
    a = sample_rollouts(model, ["1+1=", "2+2="], tokenizer=tok, sampling={"max_new_tokens": 3}, n_samples=2, seed=5)
    b = sample_rollouts(model, ["1+1=", "2+2="], tokenizer=tok, sampling={"max_new_tokens": 3}, n_samples=2, seed=5)
    assert a == b and len(a) == 2 and all(len(row) == 2 for row in a)
    chat = sample_rollouts(
        model, [[{"role": "user", "content": "1+1="}]], tokenizer=tok, sampling={"max_new_tokens": 3}
    )
    assert len(chat) == 1 and isinstance(chat[0][0], str)


def test_errors_name_the_way_out(tiny):
    _enc, audit, prompts = tiny
    with pytest.raises(InvalidParameterError, match="reference_rollouts"):
        validate_shift(audit, None, None, prompts)
    with pytest.raises(RowMismatchError, match="one list of completions per prompt"):
        rollout_concept_scores(audit, prompts, [[YES]])
    with pytest.raises(InvalidParameterError, match="one string"):
        rollout_concept_scores(audit, "a prompt", [[YES]])
    with pytest.raises(InvalidParameterError, match="no 'question' column"):
        rollout_concept_scores(audit, Dataset.from_dict({"prompt": ["a"]}), [[YES]], prompt_column="question")
    bare = PreferenceAudit(n_regions=1, min_support=1).fit_features(
        audit.chosen_max_, audit.chosen_freq_, audit.rejected_max_, audit.rejected_freq_
    )
    with pytest.raises(UsageError, match="encoder="):
        rollout_concept_scores(bare, prompts[:1], [[YES]])
    other = SAEEncoder(tiny_llama(), tiny_sae(d_sae=64), tokenizer=tiny_tokenizer())
    with pytest.raises(WidthMismatchError):
        rollout_concept_scores(audit, prompts[:1], [[YES]], encoder=other)

    class Short:
        def generate(self, prompts, n, sampling, seeds=None):
            return [["x"]]  # one row, whatever was asked

    with pytest.raises(RowMismatchError, match="returned"):
        sample_rollouts(Short(), prompts[:2])


def test_validate_shift_region_view_end_to_end(tiny, caplog):
    _enc, audit, prompts = tiny
    ref = [[NO] for _ in prompts]
    tr = [[YES] if i < 10 else [NO] for i in range(len(prompts))]
    v = validate_shift(
        audit, None, None, prompts, reference_rollouts=ref, trained_rollouts=tr, regions=audit.region_names_ * 20
    )
    # one region ("all") holding every pair and prompt: the region view is the global view
    g = v.table.sort_values("concept")
    rt = v.region_table.sort_values("concept")
    np.testing.assert_allclose(rt["measured_shift"], g["measured_shift"], atol=1e-12)
    np.testing.assert_allclose(rt["predicted_delta"], g["predicted_delta"], atol=1e-12)
    assert v.metrics["regions"]["r2"] == pytest.approx(v.metrics["all"]["r2"], nan_ok=True)
    with caplog.at_level("WARNING"):
        v = validate_shift(
            audit,
            None,
            None,
            prompts,
            reference_rollouts=ref,
            trained_rollouts=tr,
            regions=audit.region_names_ * 10 + ["elsewhere"] * 10,
        )
    assert "not regions of the audit" in caplog.text and (v.region_table["n_reference"] == 10).all()
    with pytest.raises(RowMismatchError, match="one per prompt"):
        validate_shift(audit, None, None, prompts, reference_rollouts=ref, trained_rollouts=tr, regions=["x"])


# ------------------------------------------------------------------ the length-controlled score (score="rate")
def test_rates_by_hand_on_a_tiny_case():
    # latents 0 and 1 always co-fire (one concept), latent 2 alone (another)
    concepts = LatentConcepts(min_support=1, similarity=0.9).fit(np.array([[1, 1, 0], [1, 1, 1], [0, 0, 1]]))
    assert [g.tolist() for g in concepts.concepts_] == [[0, 1], [2]]
    fires = np.array([[1, 1, 0], [1, 0, 1]])
    # per-token rates: row 0 has 8 tokens, latent 0 active on 2, latent 1 on 6; row 1: latent 0 on 1 of 4 tokens,
    # latent 1 active on 1 of 4 tokens but not firing by the audit's rule (so it counts 0), latent 2 on 4 of 4
    freq = np.array([[2 / 8, 6 / 8, 0.0], [1 / 4, 1 / 4, 4 / 4]])
    rates = concepts.rates(fires, freq).toarray()
    np.testing.assert_allclose(rates, [[(0.25 + 0.75) / 2, 0.0], [(0.25 + 0.0) / 2, 1.0]])
    # the share score of the same rows: whether each latent fired at all, whatever the span's length
    np.testing.assert_allclose(concepts.shares(fires).toarray(), [[1.0, 0.0], [0.5, 1.0]])
    # length control: the same text twice over (twice the tokens, the same latents active on the same share of
    # them) keeps its rate, while a latent active on one token of a longer answer counts fully in the share
    np.testing.assert_allclose(concepts.rates([[1, 1, 1]], [[1 / 16, 1 / 16, 1 / 16]]).toarray(), [[1 / 16, 1 / 16]])
    np.testing.assert_allclose(concepts.shares([[1, 1, 1]]).toarray(), [[1.0, 1.0]])
    with pytest.raises(InvalidParameterError, match="same rows"):
        concepts.rates(fires, freq[:1])


def _hand_token_rates(enc, audit, prompt, text):
    """Rate scores from scratch: the model's hidden state at the SAE's hook, the SAE's latents per token, the share
    of the completion's tokens where each is active, averaged over each concept's (firing) latents; dense numpy."""
    import torch

    tok = enc.tokenizer
    p = tok(prompt, add_special_tokens=True)["input_ids"]
    r = tok(text, add_special_tokens=False)["input_ids"]
    with torch.no_grad():  # blocks.1.hook_resid_post = the output of layer 1 = hidden_states[2]
        h = enc.model(torch.tensor([list(p) + list(r)]), output_hidden_states=True).hidden_states[2][0]
        a = enc.sae.encode(h).numpy()[len(p) :]
    freq, mx = (a > 0).mean(axis=0), a.max(axis=0)
    fires = (mx > audit.activation_threshold) & (freq > audit.frequency_threshold)
    M = audit.concepts_.membership_.toarray()
    return (fires * freq) @ M / M.sum(axis=0)


def test_rate_scores_equal_a_per_token_hand_computation(tiny):
    enc, audit, prompts = tiny
    texts = ["yes no", "maybe 3 maybe 3 maybe 3", "!!", YES]
    scores, info = rollout_concept_scores(audit, prompts[:2], [texts[:2], texts[2:]], score="rate")
    hand = np.stack(
        [_hand_token_rates(enc, audit, p, t) for p, t in zip([prompts[0]] * 2 + [prompts[1]] * 2, texts, strict=True)]
    )
    assert hand.max() > 0 and np.any((hand > 0) & (hand < 1))  # rates strictly between 0 and 1 were exercised
    np.testing.assert_allclose(scores, hand, atol=1e-6)
    # the share scores come along from the same encoding (and the other way round)
    np.testing.assert_allclose(info["shares"], rollout_concept_scores(audit, prompts[:2], [texts[:2], texts[2:]])[0])
    shares, info = rollout_concept_scores(audit, prompts[:2], [texts[:2], texts[2:]], score="share")
    np.testing.assert_allclose(info["rates"], scores)
    assert np.all(scores <= shares + 1e-12)  # a rate is at most 1 where a latent fires, 0 where it does not
    with pytest.raises(InvalidParameterError, match="score must be one of"):
        rollout_concept_scores(audit, prompts[:1], [[YES]], score="length")


def test_rate_predictions_equal_numpy_means_of_the_pairs():
    audit, labels, _ = _regional_audit()  # features are 0/1 "max" pooled; give them per-token rates instead
    rng = np.random.default_rng(3)
    c_max, r_max = audit.chosen_max_.toarray(), audit.rejected_max_.toarray()
    c_freq, r_freq = c_max * rng.uniform(0.1, 1, c_max.shape), r_max * rng.uniform(0.1, 1, r_max.shape)
    audit = PreferenceAudit(min_support=1, similarity=0.99).fit_features(
        sp.csr_matrix(c_max), sp.csr_matrix(c_freq), sp.csr_matrix(r_max), sp.csr_matrix(r_freq), region_labels=labels
    )
    M = audit.concepts_.membership_.toarray()
    D = (c_freq * (c_max > 0)) @ M / M.sum(0) - (r_freq * (r_max > 0)) @ M / M.sum(0)  # per pair, per concept
    np.testing.assert_allclose(pair_disparity(audit, "rate").toarray(), D, atol=1e-6)
    share, rate = audit_predictions(audit), audit_predictions(audit, score="rate")
    np.testing.assert_allclose(rate["predicted_delta"], D.mean(axis=0), atol=1e-6)
    for col in ("predicted_z", "flagged", "flagged_sign", "n_latents"):  # the views stay the audit's own
        assert rate[col].tolist() == share[col].tolist()
    table, share_table = region_predictions(audit, score="rate"), region_predictions(audit)
    for name in ("alg", "geo", "num"):
        rows = table[table["region_name"] == name].sort_values("concept")
        np.testing.assert_allclose(rows["predicted_delta"], D[labels == name].mean(axis=0), atol=1e-6)
        np.testing.assert_allclose(
            rows["contrast_delta"], D[labels == name].mean(axis=0) - D[labels != name].mean(axis=0), atol=1e-6
        )
    assert table["flagged"].tolist() == share_table["flagged"].tolist() and table["flagged"].any()
    with pytest.raises(InvalidParameterError, match="score='rate'"):
        audit_predictions(audit, score="length")


def test_validate_shift_with_the_rate_score(tiny):
    enc, audit, prompts = tiny
    ref = [[NO] for _ in prompts]
    tr = [[YES] if i < 10 else [NO] for i in range(len(prompts))]
    v = validate_shift(
        audit,
        None,
        None,
        prompts,
        reference_rollouts=ref,
        trained_rollouts=tr,
        score="rate",
        regions=audit.region_names_ * 20,
    )
    yes = np.stack([_hand_token_rates(enc, audit, p, YES) for p in prompts])
    no = np.stack([_hand_token_rates(enc, audit, p, NO) for p in prompts])
    np.testing.assert_allclose(v.table["measured_shift"], (yes - no)[:10].sum(axis=0) / 20, atol=1e-6)
    np.testing.assert_allclose(v.table["predicted_delta"], (yes - no).mean(axis=0), atol=1e-6)  # pairs: (YES, NO)
    assert v.settings["score"] == "rate" and "rates" not in v.info["trained"]
    assert v.metrics["regions"]["r2"] == pytest.approx(v.metrics["all"]["r2"], nan_ok=True)
