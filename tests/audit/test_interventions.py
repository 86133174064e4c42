"""Filter / weights / concept_margin columns equal what the statistics read; DPO loss by hand."""

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from datasets import Dataset

from hf_saerl.audit import (PreferenceAudit, add_concept_margin, add_pair_weights, concept_margin, dpo_loss,
                            filter_pairs, pair_weights)
from hf_saerl.errors import InvalidParameterError, RowMismatchError


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(3)
    n = 200
    c = (rng.random((n, 12)) < 0.3).astype(float)
    r = (rng.random((n, 12)) < 0.3).astype(float)
    c[:, [0, 1, 2]] = (rng.random(n) < 0.8)[:, None]  # planted chosen concept over latents 0-2, partly firing
    c[: n // 2, 2] = 0.0
    r[:, [0, 1, 2]] = (rng.random(n) < 0.2)[:, None]
    audit = PreferenceAudit(n_regions=1, similarity=0.4).fit_features(sp.csr_matrix(c), c * 0.5, sp.csr_matrix(r), r * 0.5)
    return audit, c, r, Dataset.from_dict({"row": list(range(n))})


def _hand_disparity(c, r, latents):
    return (c[:, latents] > 0).mean(axis=1) - (r[:, latents] > 0).mean(axis=1)


def test_planted_concept_is_the_flagged_chosen_one(fitted):
    audit, *_ = fitted
    k = audit.concept_of(0)
    assert audit.concepts_.concepts_[k].tolist() == [0, 1, 2]
    assert audit.flagged(leaning="chosen")["concept"].tolist() == [k]


def test_margin_weights_filter_are_exactly_the_disparity(fitted):
    audit, c, r, ds = fitted
    k = audit.concept_of(0)
    hand = _hand_disparity(c, r, [0, 1, 2])
    assert sorted(set(np.round(hand, 6))) != [0.0]
    np.testing.assert_allclose(concept_margin(audit), hand)  # concepts=None -> the flagged chosen concept
    out = add_concept_margin(ds, audit, [k])
    np.testing.assert_allclose(out["concept_margin"], hand.astype(np.float32))
    # the column the statistics were computed from: its mean is the global delta
    glob = audit.statistics_.query("region == -1 and concept == @k").iloc[0]
    assert glob["delta"] == pytest.approx(hand.mean())

    w = pair_weights(audit, [k], strength=0.5, min_weight=0.1)
    np.testing.assert_allclose(w, np.maximum(1 - 0.5 * hand, 0.1))
    wn = add_pair_weights(ds, audit, [k], strength=-1.0, normalize=True, column="w")["w"]
    amp = 1 + hand
    np.testing.assert_allclose(wn, amp / amp.mean(), rtol=1e-6)

    kept, counts = filter_pairs(ds, audit, [k], threshold=2 / 3)
    drop = hand >= 2 / 3 - 1e-12
    assert counts["n_removed"] == drop.sum() > 0 and counts["n_kept"] == len(kept) == (~drop).sum()
    assert kept["row"] == np.flatnonzero(~drop).tolist()
    assert counts["per_concept"] == {k: int(drop.sum())}
    _, rej_counts = filter_pairs(ds, audit, [k], threshold=1 / 3, leaning="rejected")
    assert rej_counts["n_removed"] == (hand <= -1 / 3 + 1e-12).sum()


def test_intervention_errors(fitted):
    audit, _, _, ds = fitted
    with pytest.raises(RowMismatchError, match="audit saw 200 pairs"):
        add_concept_margin(ds.select(range(10)), audit)
    with pytest.raises(InvalidParameterError, match="Unknown concept"):
        pair_weights(audit, [10_000])
    with pytest.raises(InvalidParameterError, match="threshold"):
        filter_pairs(ds, audit, threshold=0.0)
    with pytest.raises(InvalidParameterError, match="leaning must be 'chosen' or 'rejected'; got 'both'"):
        filter_pairs(ds, audit, leaning="both")


def test_dpo_loss_equals_hand_computation():
    pc, pr = torch.tensor([-3.0, -1.0, -2.5]), torch.tensor([-4.0, -1.5, -2.0])
    rc, rr = torch.tensor([-3.5, -1.2, -2.2]), torch.tensor([-3.8, -1.1, -2.4])
    margin = torch.tensor([1.0, -0.5, 0.0])
    beta, lam = 0.5, 2.0
    hand = []
    for i in range(3):
        x = beta * ((pc[i] - rc[i]) - (pr[i] - rr[i])).item() + lam * margin[i].item()
        hand.append(-math.log(1 / (1 + math.exp(-x))))
    got = dpo_loss(pc, pr, rc, rr, beta=beta, margin=margin, lam=lam, reduction="none")
    np.testing.assert_allclose(got.numpy(), hand, rtol=1e-6)
    assert dpo_loss(pc, pr, rc, rr, beta=beta, margin=margin, lam=lam).item() == pytest.approx(np.mean(hand))
    # lam > 0 shrinks the gradient on a pair whose chosen side carries the concept (suppression)
    logp = pc.clone().requires_grad_()
    dpo_loss(logp, pr, rc, rr, beta=beta, margin=margin, lam=lam, reduction="sum").backward()
    shaped = logp.grad[0].abs().item()
    logp.grad = None
    dpo_loss(logp, pr, rc, rr, beta=beta, reduction="sum").backward()
    assert shaped < logp.grad[0].abs().item()
    with pytest.raises(InvalidParameterError, match="margin has shape"):
        dpo_loss(pc, pr, rc, rr, margin=torch.zeros(2), lam=1.0)
    with pytest.raises(InvalidParameterError, match="reduction must be 'mean', 'sum' or 'none'"):
        dpo_loss(pc, pr, rc, rr, reduction="max")
